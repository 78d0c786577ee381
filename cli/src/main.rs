//! `weir`: Kafka Connect's standalone mode (`weir standalone worker.properties
//! connector.properties ...`) and the embedded development broker
//! (`weir dev-kafka`). Distributed mode uses `weir-coordinator` and `weir-runner`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use weir_connect::client::OverridePolicy;
use weir_connect::config::ConfigMap;
use weir_connect::properties::hostname;
use weir_coordinator::server::parse_listeners;
use weir_coordinator::{Coordinator, CoordinatorConfig, StoreConfig};
use weir_proto::admin::v1::PutConnectorConfigRequest;
use weir_proto::admin::v1::admin_client::AdminClient;
use weir_runner::devkafka::DevKafka;
use weir_runner::host::Sidecars;
use weir_runner::{Runner, RunnerConfig, WorkerConfig};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Parser)]
#[command(name = "weir", version, about = "Weir: Kafka Connect, rebuilt in Rust")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a worker and its connectors in one process, as Kafka Connect's connect-standalone.
    Standalone {
        /// Worker properties (bootstrap.servers, converters, offset.storage.file.filename, listeners, ...).
        worker: PathBuf,
        /// Connector properties files, created (or updated) at start.
        connectors: Vec<PathBuf>,
    },
    /// Run the embedded Kafka-protocol broker on its own.
    DevKafka {
        /// Loopback port to listen on.
        #[arg(long, default_value_t = 9092)]
        port: u16,
    },
}

#[tokio::main]
async fn main() {
    weir_connect::logging::init("info");
    let outcome = match Cli::parse().command {
        Command::Standalone { worker, connectors } => standalone(worker, connectors).await,
        Command::DevKafka { port } => dev_kafka(port).await,
    };
    if let Err(error) = outcome {
        tracing::error!(%error, "weir failed");
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

async fn dev_kafka(port: u16) -> Result<(), BoxError> {
    let broker = DevKafka::start(port).await?;
    println!("dev-kafka bootstrap.servers={}", broker.bootstrap_servers());
    wait_for_signal().await;
    broker.shutdown();
    Ok(())
}

async fn standalone(worker_file: PathBuf, connector_files: Vec<PathBuf>) -> Result<(), BoxError> {
    let mut properties = read_properties(&worker_file)?;
    let connectors: Vec<ConfigMap> = connector_files
        .iter()
        .map(|f| read_properties(f))
        .collect::<Result<_, _>>()?;

    // Without bootstrap.servers, run the embedded broker.
    let embedded = if properties.contains_key("bootstrap.servers") {
        None
    } else {
        let broker = DevKafka::start(0).await?;
        properties.insert("bootstrap.servers".into(), broker.bootstrap_servers());
        println!(
            "embedded Kafka broker bootstrap.servers={}",
            broker.bootstrap_servers()
        );
        Some(broker)
    };
    let rest_listen = parse_listeners(
        properties
            .get("listeners")
            .map_or("http://:8083", String::as_str),
    )?;
    let id = format!("{}:{}", hostname(), rest_listen.port());
    let runtime_dir = std::env::temp_dir().join(format!("weir-{}", std::process::id()));
    let (registry, sidecars) = Sidecars::load(&properties, runtime_dir, &id).await?;
    let registry = Arc::new(registry);
    let grpc_listen: SocketAddr = "127.0.0.1:0".parse()?;
    let state_file = properties
        .get("config.storage.file.filename")
        .map(PathBuf::from);
    let override_policy = OverridePolicy::from_worker(&properties)?;
    let worker = WorkerConfig::from_properties(properties, true)?;
    let coordinator = Coordinator::start(
        CoordinatorConfig {
            id: id.clone(),
            grpc_listen,
            rest_listen,
            store: StoreConfig::Local { file: state_file },
            override_policy,
            timing: weir_coordinator::control::SessionTiming::default(),
        },
        registry.clone(),
    )
    .await?;
    println!(
        "weir standalone REST API on http://{}",
        coordinator.rest_addr
    );

    let runner = Runner::new(
        RunnerConfig {
            runner_id: id,
            coordinators: vec![format!("http://{}", coordinator.grpc_addr)],
            worker,
        },
        registry,
    )
    .await?;
    let shutdown = CancellationToken::new();
    let runner_task = tokio::spawn(runner.run(shutdown.clone()));

    let mut admin = AdminClient::connect(format!("http://{}", coordinator.grpc_addr)).await?;
    for (config, file) in connectors.into_iter().zip(&connector_files) {
        let name = config
            .get("name")
            .cloned()
            .ok_or_else(|| format!("{}: connector properties need a name", file.display()))?;
        let reply = admin
            .put_connector_config(PutConnectorConfigRequest {
                name: name.clone(),
                config: config.into_iter().collect(),
            })
            .await
            .map_err(|status| {
                format!(
                    "creating connector {name} from {}: {}",
                    file.display(),
                    status.message()
                )
            })?;
        let verb = if reply.into_inner().created {
            "created"
        } else {
            "updated"
        };
        println!("connector {name} {verb}");
    }

    wait_for_signal().await;
    shutdown.cancel();
    if let Ok(Err(error)) = runner_task.await {
        tracing::warn!(%error, "runner stopped with an error");
    }
    coordinator.shutdown().await;
    // Sidecars stop after the tasks that used them: SIGTERM, then SIGKILL.
    sidecars.stop().await;
    drop(embedded);
    Ok(())
}

fn read_properties(path: &std::path::Path) -> Result<ConfigMap, BoxError> {
    weir_connect::properties::read(path)
        .map_err(|e| format!("reading {}: {e}", path.display()).into())
}

async fn wait_for_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
