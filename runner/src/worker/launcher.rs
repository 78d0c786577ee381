//! How the runner really starts what it is assigned ([`Launcher`], the
//! [`Launch`] of [`super::assignment::Hosted`]): it finds the plugin of a
//! connector instance or task by its `connector.class`, resolves the
//! config's placeholders through the config providers (again at every
//! start, so a restart sees new values), and spawns the instance, or the
//! task's loop with its [`TaskContext`].

use std::sync::Arc;

use weir_connect::api::{ConnectorPlugin, TaskIdentity};
use weir_connect::config::ConfigMap;
use weir_connect::providers::ConfigProviders;
use weir_connect::registry::Registry;

use super::assignment::{ConnectorStart, Launch, TaskStart};
use crate::claims::PartitionClaims;
use crate::config::WorkerConfig;
use crate::context::TaskContext;
use crate::events::TaskEvent;
use crate::instance::{self, InstanceContext};
use crate::lease::Lease;
use crate::offsets::OffsetStore;
use crate::producers::ProducerPool;
use crate::tap::Taps;
use crate::task;

/// What every start needs from its runner.
pub(super) struct Launcher {
    pub runner_id: String,
    pub registry: Arc<Registry>,
    /// `config.providers`: resolves placeholders when a connector or task starts.
    pub providers: Arc<ConfigProviders>,
    pub worker: Arc<WorkerConfig>,
    pub offsets: Arc<dyn OffsetStore>,
    pub lease: Lease,
    /// Live taps coordinators attached to this runner's tasks.
    pub taps: Taps,
    /// Sink tasks' partition claims, carried over the current session.
    pub claims: PartitionClaims,
    /// Source producers, shared by tasks of equal producer settings.
    pub producers: ProducerPool,
}

impl Launcher {
    /// The plugin of a connector or task about to start, and its config
    /// with placeholders resolved; the FAILED trace if either cannot be had.
    fn prepare(&self, config: &ConfigMap) -> Result<(Arc<dyn ConnectorPlugin>, ConfigMap), String> {
        let class = config
            .get("connector.class")
            .map_or("<none>", String::as_str);
        let plugin = self.registry.connector(class).ok_or_else(|| {
            format!(
                "org.apache.kafka.connect.errors.ConnectException: no connector plugin for {class} on runner {}",
                self.runner_id
            )
        })?;
        let resolved = self.providers.resolve(config).map_err(|error| {
            format!("org.apache.kafka.connect.errors.ConnectException: {error}")
        })?;
        Ok((plugin, resolved))
    }
}

impl Launch for Launcher {
    fn task(&self, start: TaskStart) -> Result<tokio::task::JoinHandle<()>, String> {
        let (plugin, resolved) = self.prepare(&start.config)?;
        let key = start.key;
        let target = *start.target.borrow();
        let context = TaskContext {
            key: key.clone(),
            task_count: start.task_count,
            config: resolved,
            epoch: start.epoch,
            worker: self.worker.clone(),
            offsets: self.offsets.clone(),
            target: start.target,
            cancel: start.cancel,
            events: start.events,
            lease: self.lease.clone(),
            metrics: start.metrics,
            tap: self.taps.for_task(&key.connector, key.task),
            claims: self.claims.clone(),
            producers: self.producers.clone(),
        };
        tracing::info!(task = %key, ?target, "starting task");
        let identity = TaskIdentity {
            connector: key.connector.clone(),
            task: key.task,
            epoch: start.epoch,
        };
        Ok(task::spawn(context, plugin.create_task_for(&identity)))
    }

    fn connector(&self, start: ConnectorStart) -> Result<tokio::task::JoinHandle<()>, String> {
        let (plugin, resolved) = self.prepare(&start.config)?;
        // Instance events go out on the runner's one event channel.
        let (reported, mut forwarded) = tokio::sync::mpsc::unbounded_channel();
        let events = start.events;
        tokio::spawn(async move {
            while let Some(event) = forwarded.recv().await {
                if events.send(TaskEvent::Instance(event)).is_err() {
                    return;
                }
            }
        });
        Ok(instance::spawn(InstanceContext {
            name: start.name,
            config: start.config,
            resolved,
            generation: start.generation,
            plugin,
            target: start.target,
            cancel: start.cancel,
            events: reported,
        }))
    }
}
