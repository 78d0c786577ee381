//! `weir-coordinator`: the distributed-mode control plane. Settings come from
//! flags, their `WEIR_*` environment variables, then an optional
//! `.properties` file, in that order of precedence.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use weir_connect::client::{OVERRIDE_POLICY_KEY, OverridePolicy};
use weir_connect::config::ConfigMap;
use weir_connect::properties::hostname;
use weir_connect::registry::Registry;
use weir_coordinator::control::SessionTiming;
use weir_coordinator::server::parse_listeners;
use weir_coordinator::{Coordinator, CoordinatorConfig, StoreConfig};

#[derive(Parser, Debug)]
#[command(
    name = "weir-coordinator",
    version,
    about = "Weir coordinator: Kafka Connect's REST API and the control plane"
)]
struct Args {
    /// A .properties file with the keys below (`etcd.endpoints`, `listeners`, ...).
    #[arg(long, env = "WEIR_COORDINATOR_CONFIG")]
    config: Option<PathBuf>,
    /// Comma-separated etcd endpoints (`etcd.endpoints`).
    #[arg(long, env = "WEIR_ETCD_ENDPOINTS")]
    etcd_endpoints: Option<String>,
    /// Root key prefix in etcd (`etcd.prefix`), default `/weir/`.
    #[arg(long, env = "WEIR_ETCD_PREFIX")]
    etcd_prefix: Option<String>,
    /// REST listener in Kafka Connect's form (`listeners`), default `http://:8083`.
    #[arg(long, env = "WEIR_LISTENERS")]
    listeners: Option<String>,
    /// gRPC listen address for admin and control (`grpc.listen`), default `0.0.0.0:9083`.
    #[arg(long, env = "WEIR_GRPC_LISTEN")]
    grpc_listen: Option<SocketAddr>,
    /// This coordinator's id (`coordinator.id`), default `<hostname>:<rest port>`.
    #[arg(long, env = "WEIR_COORDINATOR_ID")]
    id: Option<String>,
    /// What connectors may override in their Kafka clients
    /// (`connector.client.config.override.policy`): None, Principal or All (default).
    #[arg(long, env = "WEIR_CONNECTOR_CLIENT_CONFIG_OVERRIDE_POLICY")]
    connector_client_config_override_policy: Option<String>,
    /// How long a runner that no coordinator answers keeps its tasks, and how
    /// long the leader waits before moving a lost runner's tasks
    /// (`session.timeout.ms`), default 6000.
    #[arg(long, env = "WEIR_SESSION_TIMEOUT_MS")]
    session_timeout_ms: Option<String>,
    /// How long the tasks of a runner that stopped cleanly wait for it to
    /// come back before they move (`scheduled.rebalance.max.delay.ms`),
    /// default 10000; 0 moves them at once.
    #[arg(long, env = "WEIR_SCHEDULED_REBALANCE_MAX_DELAY_MS")]
    scheduled_rebalance_max_delay_ms: Option<String>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let file = match &args.config {
        Some(path) => weir_connect::properties::read(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?,
        None => Default::default(),
    };
    weir_connect::logging::init_with_format(
        "info",
        weir_connect::logging::LogFormat::from_properties(&file)?,
    );
    let setting = |flag: Option<String>, key: &str| flag.or_else(|| file.get(key).cloned());

    let endpoints = setting(args.etcd_endpoints, "etcd.endpoints").ok_or(
        "etcd endpoints are required: --etcd-endpoints, WEIR_ETCD_ENDPOINTS or etcd.endpoints",
    )?;
    let endpoints: Vec<String> = endpoints
        .split(',')
        .map(|e| e.trim().to_owned())
        .filter(|e| !e.is_empty())
        .collect();
    let prefix = setting(args.etcd_prefix, "etcd.prefix").unwrap_or_else(|| "/weir/".to_owned());
    let compaction_config: ConfigMap = file
        .iter()
        .filter(|(key, _)| key.as_str() == "etcd.compaction.interval.ms")
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let compaction = weir_coordinator::store::compaction_from_config(&compaction_config)?;
    let rest_listen = parse_listeners(
        &setting(args.listeners, "listeners").unwrap_or_else(|| "http://:8083".to_owned()),
    )?;
    let grpc_listen: SocketAddr = match args.grpc_listen {
        Some(addr) => addr,
        None => file
            .get("grpc.listen")
            .map_or("0.0.0.0:9083", String::as_str)
            .parse()?,
    };
    let id = setting(args.id, "coordinator.id")
        .unwrap_or_else(|| format!("{}:{}", hostname(), rest_listen.port()));

    let override_policy = match setting(
        args.connector_client_config_override_policy,
        OVERRIDE_POLICY_KEY,
    ) {
        Some(raw) => OverridePolicy::parse(&raw)?,
        None => OverridePolicy::All,
    };

    let timing_config: ConfigMap = [
        ("session.timeout.ms", args.session_timeout_ms),
        (
            "scheduled.rebalance.max.delay.ms",
            args.scheduled_rebalance_max_delay_ms,
        ),
    ]
    .into_iter()
    .filter_map(|(key, flag)| setting(flag, key).map(|value| (key.to_owned(), value)))
    .collect();
    let timing = SessionTiming::from_config(&timing_config)?;

    let coordinator = Coordinator::start(
        CoordinatorConfig {
            metrics: None,
            startup: None,
            id,
            grpc_listen,
            rest_listen,
            store: StoreConfig::Etcd {
                endpoints,
                prefix,
                compaction,
            },
            override_policy,
            timing,
        },
        Arc::new(Registry::builtin()),
    )
    .await?;
    println!(
        "weir-coordinator rest={} grpc={}",
        coordinator.rest_addr, coordinator.grpc_addr
    );
    let stopped = coordinator.stopped();
    tokio::select! {
        signal = weir_connect::process::stop_signal() => tracing::info!(?signal, "shutting down"),
        () = stopped.cancelled() => tracing::error!("etcd session lost, shutting down"),
    }
    coordinator.shutdown().await;
    Ok(())
}
