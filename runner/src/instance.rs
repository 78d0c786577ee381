//! Connector instances: the connector-level logic Kafka Connect runs in a
//! `WorkerConnector`. The leader places each connector on one runner; there
//! the instance checks the config with the plugin's own validation, makes the
//! task configs, reports them and the connector's state, and makes them again
//! whenever the connector asks (its `monitor`, over a sidecar's Watch stream).
//! The coordinator keeps task configs only from the instance of the current
//! generation on the runner it is assigned to.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use weir_connect::api::{ConnectorContext, ConnectorPlugin};
use weir_connect::config::{ConfigMap, base_connector_def};

use crate::context::TargetState;
use crate::events::{ConnectorState, InstanceEvent};

/// Everything a connector instance needs from its runner.
pub struct InstanceContext {
    pub name: String,
    /// The stored config, placeholders and all.
    pub config: ConfigMap,
    /// The config with its `${provider:…}` placeholders resolved: what the
    /// plugin sees.
    pub resolved: ConfigMap,
    pub generation: u64,
    pub plugin: Arc<dyn ConnectorPlugin>,
    pub target: watch::Receiver<TargetState>,
    pub cancel: CancellationToken,
    pub events: mpsc::UnboundedSender<InstanceEvent>,
}

/// Reconfiguration requests that come in a burst make one new set of configs.
const RECONFIGURE_DEBOUNCE: Duration = Duration::from_millis(100);

pub fn spawn(context: InstanceContext) -> JoinHandle<()> {
    tokio::spawn(run(context))
}

fn ran(target: TargetState) -> ConnectorState {
    match target {
        TargetState::Running => ConnectorState::Running,
        TargetState::Paused => ConnectorState::Paused,
    }
}

async fn run(mut context: InstanceContext) {
    let report = |state: ConnectorState, trace: String| {
        let _ = context.events.send(InstanceEvent::Status {
            connector: context.name.clone(),
            generation: context.generation,
            state,
            trace,
        });
    };
    let failed = |message: String| {
        tracing::warn!(connector = %context.name, %message, "connector failed");
        report(
            ConnectorState::Failed,
            format!("org.apache.kafka.connect.errors.ConnectException: {message}"),
        );
    };
    tracing::info!(connector = %context.name, generation = context.generation, origin = %context.plugin.origin(), "starting connector");
    let errors: Vec<String> = context
        .plugin
        .validate(&context.resolved)
        .await
        .into_iter()
        .flat_map(|(key, errors)| errors.into_iter().map(move |e| format!("{key}: {e}")))
        .collect();
    if !errors.is_empty() {
        return failed(format!(
            "Connector configuration is invalid: {}",
            errors.join("; ")
        ));
    }
    if let Err(message) = generate(&context).await {
        return failed(message);
    }
    report(ran(*context.target.borrow()), String::new());

    let (requests, mut requested) = mpsc::unbounded_channel();
    let plugin = context.plugin.clone();
    let config = context.resolved.clone();
    let monitor = plugin.monitor(&config, ConnectorContext::new(requests));
    tokio::pin!(monitor);
    let mut monitoring = true;
    loop {
        tokio::select! {
            () = context.cancel.cancelled() => return,
            changed = context.target.changed() => {
                if changed.is_err() {
                    return;
                }
                let target = *context.target.borrow_and_update();
                report(ran(target), String::new());
            }
            outcome = &mut monitor, if monitoring => {
                monitoring = false;
                if let Err(error) = outcome {
                    return failed(error.to_string());
                }
            }
            Some(()) = requested.recv() => {
                tokio::time::sleep(RECONFIGURE_DEBOUNCE).await;
                while requested.try_recv().is_ok() {}
                tracing::info!(connector = %context.name, "connector asked for task reconfiguration");
                if let Err(message) = generate(&context).await {
                    return failed(message);
                }
            }
        }
    }
}

/// Makes the task configs, each the connector config with the task's own
/// keys over it, and reports them. A task value that is a resolved
/// placeholder of the connector config is stored as the placeholder again
/// (Kafka Connect's reverse transform), so no resolved secret is stored.
async fn generate(context: &InstanceContext) -> Result<(), String> {
    let max_tasks = base_connector_def(context.plugin.kind())
        .only(|key| key == "tasks.max")
        .parse(&context.config)?
        .int("tasks.max")?;
    let max_tasks = usize::try_from(max_tasks).unwrap_or(0);
    let generated = tokio::select! {
        () = context.cancel.cancelled() => return Ok(()),
        generated = context.plugin.task_configs(&context.resolved, max_tasks) => generated,
    };
    let configs: Vec<ConfigMap> = generated
        .map_err(|error| error.to_string())?
        .into_iter()
        .take(max_tasks.max(1))
        .map(|task| {
            let mut full = context.config.clone();
            for (key, value) in task {
                let placeholder = context
                    .config
                    .get(&key)
                    .filter(|raw| context.resolved.get(&key) == Some(&value) && **raw != value);
                let stored = placeholder.cloned().unwrap_or(value);
                full.insert(key, stored);
            }
            full
        })
        .collect();
    tracing::info!(connector = %context.name, tasks = configs.len(), "task configs made");
    let _ = context.events.send(InstanceEvent::TaskConfigs {
        connector: context.name.clone(),
        generation: context.generation,
        configs,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use weir_connect::api::{ConnectorKind, Result, Task};
    use weir_connect::config::{ConfigDef, Direction};

    /// Splits `files` (comma-separated) one per task, and asks for new task
    /// configs once when told to through `grow`.
    struct Splitting {
        grow: tokio::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
    }

    #[async_trait]
    impl ConnectorPlugin for Splitting {
        fn class(&self) -> &'static str {
            "test.Splitting"
        }
        fn kind(&self) -> ConnectorKind {
            Direction::Source
        }
        fn config_def(&self) -> ConfigDef {
            ConfigDef::new()
        }
        async fn validate(&self, config: &ConfigMap) -> Vec<(String, Vec<String>)> {
            match config.get("files") {
                Some(_) => Vec::new(),
                None => vec![(
                    "files".into(),
                    vec!["Missing required configuration".into()],
                )],
            }
        }
        async fn task_configs(&self, config: &ConfigMap, max: usize) -> Result<Vec<ConfigMap>> {
            let files = config.get("files").cloned().unwrap_or_default();
            Ok(files
                .split(',')
                .take(max)
                .map(|file| ConfigMap::from([("file".to_owned(), file.to_owned())]))
                .collect())
        }
        fn create_task(&self) -> Task {
            unreachable!("instances never create tasks")
        }
        async fn monitor(&self, _config: &ConfigMap, context: ConnectorContext) -> Result<()> {
            let grow = self.grow.lock().await.take();
            if let Some(grow) = grow
                && grow.await.is_ok()
            {
                context.request_task_reconfiguration();
            }
            Ok(())
        }
    }

    fn start(
        config: ConfigMap,
        plugin: Arc<dyn ConnectorPlugin>,
    ) -> (
        mpsc::UnboundedReceiver<InstanceEvent>,
        watch::Sender<TargetState>,
        CancellationToken,
        JoinHandle<()>,
    ) {
        let (events, received) = mpsc::unbounded_channel();
        let (target, target_rx) = watch::channel(TargetState::Running);
        let cancel = CancellationToken::new();
        let handle = spawn(InstanceContext {
            name: "c".into(),
            resolved: config.clone(),
            config,
            generation: 7,
            plugin,
            target: target_rx,
            cancel: cancel.clone(),
            events,
        });
        (received, target, cancel, handle)
    }

    fn config(files: &str, max: &str) -> ConfigMap {
        ConfigMap::from([
            ("files".to_owned(), files.to_owned()),
            ("tasks.max".to_owned(), max.to_owned()),
        ])
    }

    #[tokio::test]
    async fn makes_full_task_configs_reports_state_and_reconfigures_on_request() {
        let (grow, grow_rx) = tokio::sync::oneshot::channel();
        let plugin = Arc::new(Splitting {
            grow: tokio::sync::Mutex::new(Some(grow_rx)),
        });
        let (mut events, target, cancel, handle) = start(config("a,b,c", "2"), plugin);
        let Some(InstanceEvent::TaskConfigs {
            generation,
            configs,
            ..
        }) = events.recv().await
        else {
            panic!("expected task configs first");
        };
        assert_eq!(generation, 7);
        assert_eq!(configs.len(), 2, "capped at tasks.max");
        assert_eq!(configs[1].get("file").map(String::as_str), Some("b"));
        assert_eq!(
            configs[1].get("tasks.max").map(String::as_str),
            Some("2"),
            "the connector config is under the task's keys"
        );
        assert!(matches!(
            events.recv().await,
            Some(InstanceEvent::Status {
                state: ConnectorState::Running,
                ..
            })
        ));
        target.send_replace(TargetState::Paused);
        assert!(matches!(
            events.recv().await,
            Some(InstanceEvent::Status {
                state: ConnectorState::Paused,
                ..
            })
        ));
        let _ = grow.send(());
        assert!(matches!(
            events.recv().await,
            Some(InstanceEvent::TaskConfigs { .. })
        ));
        cancel.cancel();
        let _ = handle.await;
    }

    #[tokio::test]
    async fn a_config_its_own_validation_rejects_fails_the_connector() {
        let plugin = Arc::new(Splitting {
            grow: tokio::sync::Mutex::new(None),
        });
        let (mut events, _target, _cancel, handle) =
            start(ConfigMap::from([("tasks.max".into(), "1".into())]), plugin);
        match events.recv().await {
            Some(InstanceEvent::Status {
                state: ConnectorState::Failed,
                trace,
                ..
            }) => assert!(
                trace.contains("files: Missing required configuration"),
                "{trace}"
            ),
            other => panic!("expected FAILED, got {other:?}"),
        }
        let _ = handle.await;
    }
}
