//! `weir-runner`: a distributed-mode runner. It reads worker properties
//! (Kafka Connect's names: `bootstrap.servers`, converters,
//! `offset.storage.topic`, ...) from `--config`, with flags and `WEIR_*`
//! environment variables taking precedence for the keys below.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use tokio_util::sync::CancellationToken;
use weir_runner::host::Sidecars;
use weir_runner::{Runner, RunnerConfig, WorkerConfig};

#[derive(Parser, Debug)]
#[command(
    name = "weir-runner",
    version,
    about = "Weir runner: hosts connector tasks"
)]
struct Args {
    /// Worker .properties file.
    #[arg(long, env = "WEIR_RUNNER_CONFIG")]
    config: Option<PathBuf>,
    /// Coordinator gRPC addresses (`coordinator.url`), comma-separated, e.g.
    /// http://a:9083,http://b:9083. The runner joins one and moves to the
    /// next when it goes away.
    #[arg(long, env = "WEIR_COORDINATOR")]
    coordinator: Option<String>,
    /// Kafka bootstrap servers (`bootstrap.servers`).
    #[arg(long, env = "WEIR_BOOTSTRAP_SERVERS")]
    bootstrap_servers: Option<String>,
    /// Stable runner id (`runner.id`), default the host name; shown as worker_id.
    #[arg(long, env = "WEIR_RUNNER_ID")]
    runner_id: Option<String>,
    /// Directories of sidecar connector plugins (`plugin.path`, comma-separated):
    /// each sub-directory with a `weir-plugin.json` manifest is a plugin.
    #[arg(long, env = "WEIR_PLUGIN_PATH")]
    plugin_path: Option<String>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut properties = match &args.config {
        Some(path) => weir_connect::properties::read(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?,
        None => Default::default(),
    };
    weir_connect::logging::init_with_format(
        "info",
        weir_connect::logging::LogFormat::from_properties(&properties)?,
    );
    for (key, value) in [
        ("coordinator.url", args.coordinator),
        ("bootstrap.servers", args.bootstrap_servers),
        ("runner.id", args.runner_id),
        ("plugin.path", args.plugin_path),
    ] {
        if let Some(value) = value {
            properties.insert(key.to_owned(), value);
        }
    }
    // Checked before anything starts: a bad address is a configuration
    // error, never a retry loop.
    let coordinators = weir_runner::worker::parse_coordinators(
        properties
            .get("coordinator.url")
            .map_or("http://127.0.0.1:9083", String::as_str),
    )?;
    let runner_id = properties
        .get("runner.id")
        .cloned()
        .unwrap_or_else(weir_connect::properties::hostname);
    // The runner reports its plugins when it joins, so the coordinators can
    // validate and list them.
    let runtime_dir = std::env::temp_dir().join(format!("weir-runner-{}", std::process::id()));
    let (registry, sidecars) = Sidecars::load(&properties, runtime_dir, &runner_id).await?;
    // `metrics.listener` (host:port, port 0 picks one): where `/metrics` is served.
    let metrics_listener = match properties.remove("metrics.listener") {
        Some(address) => {
            let address = address.trim().trim_start_matches("http://").to_owned();
            let listener = tokio::net::TcpListener::bind(&address)
                .await
                .map_err(|e| format!("metrics.listener {address}: {e}"))?;
            Some(listener)
        }
        None => None,
    };
    let worker = WorkerConfig::from_properties(properties, false)?;
    let runner = Runner::new(
        RunnerConfig {
            runner_id,
            coordinators,
            worker,
        },
        Arc::new(registry),
    )
    .await?;
    let shutdown = CancellationToken::new();
    if let Some(listener) = metrics_listener {
        let metrics = runner.metrics();
        let health = runner.metrics();
        let address = listener.local_addr()?;
        let routes = axum::Router::new()
            .route(
                "/health",
                axum::routing::get(move || {
                    let (status, body) = health.health();
                    let status = axum::http::StatusCode::from_u16(status)
                        .unwrap_or(axum::http::StatusCode::SERVICE_UNAVAILABLE);
                    async move {
                        (
                            status,
                            [(axum::http::header::CONTENT_TYPE, "application/json")],
                            body,
                        )
                    }
                }),
            )
            .route(
                "/metrics",
                axum::routing::get(move || {
                    let metrics = metrics.clone();
                    async move {
                        (
                            [(
                                axum::http::header::CONTENT_TYPE,
                                "text/plain; version=0.0.4; charset=utf-8",
                            )],
                            metrics.render(),
                        )
                    }
                }),
            );
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, routes)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "metrics server failed");
            }
        });
        tracing::info!("runner metrics on http://{address}/metrics");
    }
    let signal = shutdown.clone();
    tokio::spawn(async move {
        let stop = weir_connect::process::stop_signal().await;
        tracing::info!(signal = ?stop, "shutting down");
        signal.cancel();
    });
    let outcome = runner.run(shutdown).await;
    // Sidecars stop after the tasks that used them.
    sidecars.stop().await;
    outcome?;
    Ok(())
}
