//! Starting and stopping a coordinator: binds the gRPC (admin + control) and
//! REST listeners, opens the state store and runs the leader loop, all under
//! one cancellation token with a shutdown deadline.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use weir_connect::client::OverridePolicy;
use weir_connect::registry::Registry;
use weir_proto::admin::v1::admin_server::AdminServer;
use weir_proto::control::v1::control_server::ControlServer;

use crate::admin::AdminService;
use crate::control::ControlService;
use crate::error::{Error, Result};
use crate::store::{EtcdStore, LocalStore, Store};
use crate::{keys, leader, rest};

/// Where the coordinator keeps its state.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// etcd, under a root prefix (distributed mode).
    Etcd {
        endpoints: Vec<String>,
        prefix: String,
        /// History older than this is compacted, every this often; `None`
        /// leaves compaction to etcd's own `--auto-compaction-*`.
        compaction: Option<Duration>,
    },
    /// In this process; connector configs saved to `file` when given (standalone mode).
    Local { file: Option<PathBuf> },
}

#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// Shown as the connector `worker_id`; unique per coordinator.
    pub id: String,
    pub grpc_listen: SocketAddr,
    pub rest_listen: SocketAddr,
    pub store: StoreConfig,
    /// `connector.client.config.override.policy`, checked when connectors are validated.
    pub override_policy: OverridePolicy,
    /// Session timeout and restart grace for runners.
    pub timing: crate::control::SessionTiming,
    /// Metrics served at `GET /metrics` on the REST port after the
    /// cluster's own (standalone: its runner's).
    pub metrics: Option<crate::rest::MetricsSource>,
    /// Standalone: `GET /health` answers 503 `starting` until this says the
    /// worker started (its runner joined, its connector files applied).
    pub startup: Option<crate::startup::StartupProbe>,
}

/// A running coordinator.
pub struct Coordinator {
    pub grpc_addr: SocketAddr,
    pub rest_addr: SocketAddr,
    store: Store,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
}

/// How long shutdown waits for servers to drain.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

impl Coordinator {
    pub async fn start(config: CoordinatorConfig, registry: Arc<Registry>) -> Result<Self> {
        let shutdown = CancellationToken::new();
        let store: Store = match &config.store {
            StoreConfig::Etcd {
                endpoints,
                prefix,
                compaction,
            } => {
                let store = EtcdStore::connect(endpoints, prefix).await?;
                if let Some(interval) = compaction {
                    store.compact_history_every(*interval);
                }
                let session = store.session_ended();
                let whole = shutdown.clone();
                // Without its lease this coordinator cannot vouch for its runners: stop.
                tokio::spawn(async move {
                    session.cancelled().await;
                    whole.cancel();
                });
                store
            }
            StoreConfig::Local { file: Some(file) } => Arc::new(LocalStore::persistent(
                file.clone(),
                &[keys::CONNECTORS, keys::TASKS],
            )?),
            StoreConfig::Local { file: None } => Arc::new(LocalStore::in_memory()),
        };

        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|e| Error::Internal(format!("binding {addr}: {e}")))
        };
        let grpc_listener = bind(config.grpc_listen).await?;
        let rest_listener = bind(config.rest_listen).await?;
        let grpc_addr = local_addr(&grpc_listener)?;
        let rest_addr = local_addr(&rest_listener)?;

        let links = crate::links::RunnerLinks::default();
        let leader_metrics = Arc::new(crate::metrics::LeaderMetrics::default());
        let admin = AdminService::new(store.clone(), registry, config.id.clone())
            .with_override_policy(config.override_policy)
            .with_runner_links(links.clone())
            .with_leader_metrics(leader_metrics.clone());
        let admin = match config.startup.clone() {
            Some(probe) => admin.with_startup_probe(probe),
            None => admin,
        };
        let control = ControlService::new(
            store.clone(),
            config.id.clone(),
            config.timing,
            links.clone(),
        );
        let mut tasks = JoinSet::new();
        // Tap streams never end by themselves: end them, so the servers can drain.
        let taps_shutdown = shutdown.clone();
        tasks.spawn(async move {
            taps_shutdown.cancelled().await;
            links.close_taps();
        });

        let grpc_shutdown = shutdown.clone();
        let grpc_admin = admin.clone();
        tasks.spawn(async move {
            let served = tonic::transport::Server::builder()
                .add_service(AdminServer::new(grpc_admin))
                .add_service(ControlServer::new(control))
                .serve_with_incoming_shutdown(
                    TcpListenerStream::new(grpc_listener),
                    grpc_shutdown.cancelled_owned(),
                )
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "gRPC server failed");
            }
        });

        let rest_shutdown = shutdown.clone();
        let metrics = config.metrics.clone();
        tasks.spawn(async move {
            let served = axum::serve(rest_listener, rest::router_with_metrics(admin, metrics))
                .with_graceful_shutdown(rest_shutdown.cancelled_owned())
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "REST server failed");
            }
        });

        tasks.spawn(crate::loggers::follow(store.clone(), shutdown.clone()));
        tasks.spawn(leader::run(
            store.clone(),
            config.id.clone(),
            config.timing,
            leader_metrics,
            shutdown.clone(),
        ));

        tracing::info!(id = %config.id, grpc = %grpc_addr, rest = %rest_addr, "coordinator started");
        Ok(Coordinator {
            grpc_addr,
            rest_addr,
            store,
            shutdown,
            tasks,
        })
    }

    /// Resolves when the coordinator must stop on its own (its etcd session ended).
    pub fn stopped(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops serving, waits up to a deadline for servers to finish, and
    /// ends the store session (dropping leadership and runner records).
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        let drained = tokio::time::timeout(SHUTDOWN_DEADLINE, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("coordinator tasks did not stop in time; aborting them");
            self.tasks.abort_all();
        }
        if let Err(error) = self.store.close().await {
            tracing::warn!(%error, "closing the state store failed");
        }
        tracing::info!("coordinator stopped");
    }
}

fn local_addr(listener: &TcpListener) -> Result<SocketAddr> {
    listener
        .local_addr()
        .map_err(|e| Error::Internal(format!("reading bound address: {e}")))
}

/// Parses Kafka Connect's `listeners` (e.g. `http://:8083,http://host:8084`)
/// into the first address to bind.
pub fn parse_listeners(listeners: &str) -> Result<SocketAddr> {
    let first = listeners
        .split(',')
        .map(str::trim)
        .find(|l| !l.is_empty())
        .ok_or_else(|| Error::BadRequest("listeners is empty".into()))?;
    let without_scheme = first
        .strip_prefix("http://")
        .or_else(|| first.strip_prefix("HTTP://"))
        .ok_or_else(|| {
            Error::BadRequest(format!(
                "unsupported listener {first}: only http:// is supported"
            ))
        })?;
    let (host, port) = without_scheme
        .rsplit_once(':')
        .ok_or_else(|| Error::BadRequest(format!("listener {first} has no port")))?;
    let host = match host.trim_matches(['[', ']']) {
        "" | "0.0.0.0" => "0.0.0.0",
        "localhost" => "127.0.0.1",
        other => other,
    };
    format!("{host}:{port}")
        .parse()
        .or_else(|_| format!("[{host}]:{port}").parse())
        .map_err(|_| Error::BadRequest(format!("cannot parse listener {first}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_parse_like_kafka_connect() {
        assert_eq!(
            parse_listeners("http://:8083").unwrap(),
            "0.0.0.0:8083".parse().unwrap()
        );
        assert_eq!(
            parse_listeners("http://localhost:9000").unwrap(),
            "127.0.0.1:9000".parse().unwrap()
        );
        assert_eq!(
            parse_listeners("http://127.0.0.1:0,http://x:1").unwrap(),
            "127.0.0.1:0".parse().unwrap()
        );
        assert!(parse_listeners("https://:8443").is_err());
    }
}
