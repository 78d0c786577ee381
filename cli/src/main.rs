//! `weir`: Kafka Connect's standalone mode (`weir standalone worker.properties
//! connector.properties ...`), the embedded development broker
//! (`weir dev-kafka`), and the operator commands over Kafka Connect's REST
//! API (`weir connectors …`, see [`ops`]). Distributed mode uses
//! `weir-coordinator` and `weir-runner`.

mod ops;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use weir_connect::client::OverridePolicy;
use weir_connect::config::ConfigMap;
use weir_connect::logging::LogFormat;
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

/// Which cluster a client command talks to, and how it prints: only on the
/// commands that call a REST API (not on `standalone` or `dev-kafka`).
#[derive(clap::Args, Clone)]
struct ClientOptions {
    /// The cluster's REST URL (default: WEIR_URL, then the current context, then http://localhost:8083).
    #[arg(long, global = true)]
    url: Option<String>,
    /// A named cluster from the contexts file (`weir context`).
    #[arg(long, global = true)]
    context: Option<String>,
    /// Output: table for people, json or yaml for scripts.
    #[arg(short = 'o', long, global = true, value_enum, default_value = "table")]
    output: ops::output::Format,
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
    /// Manage connectors (any Kafka Connect REST API).
    Connectors {
        #[command(subcommand)]
        command: ops::ConnectorsCommand,
        #[command(flatten)]
        client: ClientOptions,
    },
    /// Read, reset or alter a connector's offsets.
    Offsets {
        #[command(subcommand)]
        command: ops::OffsetsCommand,
        #[command(flatten)]
        client: ClientOptions,
    },
    /// The connector plugins of the cluster (`--all`: converters and transforms too).
    Plugins {
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        client: ClientOptions,
    },
    /// A connector's tasks and their states.
    Tasks {
        name: String,
        #[command(flatten)]
        client: ClientOptions,
    },
    /// Weir only: the runners and what each is assigned.
    Runners {
        #[command(flatten)]
        client: ClientOptions,
    },
    /// Weir only: print the records passing a connector's tasks, live.
    Tap {
        name: String,
        #[command(flatten)]
        client: ClientOptions,
        /// One task only (all of the connector's tasks by default).
        #[arg(long)]
        task: Option<i32>,
        /// Where: after_poll, after_transforms or before_put.
        #[arg(long, default_value = "after_poll")]
        point: String,
        /// Records per second per task at most (the server's default is 10).
        #[arg(long)]
        rate: Option<u32>,
        /// Exit after this many records.
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Named clusters, as kcctl's contexts.
    #[command(subcommand)]
    Context(ContextCommand),
}

#[derive(Subcommand)]
enum ContextCommand {
    /// Adds or changes a context (the first one becomes current).
    Set {
        name: String,
        #[arg(long = "cluster")]
        cluster: String,
    },
    /// Makes a context current.
    Use { name: String },
    /// Lists the contexts.
    List,
}

fn main() {
    let Cli { command } = Cli::parse();
    let target = |client: ClientOptions| -> ops::rest::Result<ops::Target> {
        let url = ops::context::resolve(client.url.as_deref(), client.context.as_deref())?;
        Ok(ops::Target {
            rest: ops::rest::Rest::new(&url),
            format: client.output,
        })
    };
    let operated = match command {
        Command::Standalone { worker, connectors } => {
            // `log.format` is a worker property: read before logging starts
            // (a file that cannot be read is reported by `standalone`).
            let format = match weir_connect::properties::read(&worker) {
                Ok(properties) => LogFormat::from_properties(&properties),
                Err(_) => Ok(LogFormat::Text),
            };
            return match format {
                Ok(format) => serve(format, || standalone(worker, connectors)),
                Err(error) => {
                    eprintln!("error: {error}");
                    std::process::exit(2);
                }
            };
        }
        Command::DevKafka { port } => return serve(LogFormat::Text, || dev_kafka(port)),
        Command::Connectors { command, client } => {
            target(client).and_then(|t| ops::commands::connectors(&t, command))
        }
        Command::Offsets { command, client } => {
            target(client).and_then(|t| ops::commands::offsets(&t, command))
        }
        Command::Plugins { all, client } => {
            target(client).and_then(|t| ops::commands::plugins(&t, all))
        }
        Command::Tasks { name, client } => {
            target(client).and_then(|t| ops::commands::tasks(&t, &name))
        }
        Command::Runners { client } => target(client).and_then(|t| ops::commands::runners(&t)),
        Command::Tap {
            name,
            client,
            task,
            point,
            rate,
            limit,
        } => target(client).and_then(|t| {
            let options = ops::commands::TapOptions {
                task,
                point,
                rate,
                limit,
            };
            ops::commands::tap(&t, &name, &options)
        }),
        Command::Context(command) => contexts(&command),
    };
    if let Err(error) = operated {
        eprintln!("error: {error}");
        std::process::exit(error.exit_code());
    }
}

/// Runs a server command (standalone, dev-kafka) on a Tokio runtime.
fn serve<F>(format: LogFormat, run: impl FnOnce() -> F)
where
    F: std::future::Future<Output = Result<(), BoxError>>,
{
    weir_connect::logging::init_with_format("info", format);
    let outcome = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(run()),
        Err(error) => Err(error.into()),
    };
    if let Err(error) = outcome {
        tracing::error!(%error, "weir failed");
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

fn contexts(command: &ContextCommand) -> ops::rest::Result<()> {
    match command {
        ContextCommand::Set { name, cluster } => ops::context::set(name, cluster),
        ContextCommand::Use { name } => ops::context::use_context(name),
        ContextCommand::List => {
            let contexts = ops::context::load()?;
            let current = contexts["current"].as_str().unwrap_or_default();
            for (name, entry) in contexts["contexts"].as_object().into_iter().flatten() {
                let marker = if name == current { "*" } else { " " };
                println!(
                    "{marker} {name}\t{}",
                    entry["url"].as_str().unwrap_or_default()
                );
            }
            Ok(())
        }
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
    // The runner is made after the coordinator (it joins it): its metrics
    // reach `/metrics` through a slot filled once it exists.
    let runner_metrics: Arc<std::sync::OnceLock<Arc<weir_runner::metrics::RunnerMetrics>>> =
        Arc::default();
    let metrics_slot = runner_metrics.clone();
    // Started once the runner joined and the connector files are applied,
    // as Kafka Connect's standalone herder is once it created them.
    let files_applied = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (applied, joined) = (files_applied.clone(), runner_metrics.clone());
    let coordinator = Coordinator::start(
        CoordinatorConfig {
            startup: Some(weir_coordinator::rest::StartupProbe(Arc::new(move || {
                applied.load(std::sync::atomic::Ordering::Relaxed)
                    && joined.get().is_some_and(|m| m.health().0 == 200)
            }))),
            metrics: Some(weir_coordinator::rest::MetricsSource(Arc::new(move || {
                metrics_slot.get().map(|m| m.render()).unwrap_or_default()
            }))),
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
    let _ = runner_metrics.set(runner.metrics());
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
    files_applied.store(true, std::sync::atomic::Ordering::Relaxed);

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
    let signal = weir_connect::process::stop_signal().await;
    tracing::info!(?signal, "shutting down");
}
