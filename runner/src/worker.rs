//! The runner process: joins a coordinator over the control protocol (telling
//! it which plugins it has), keeps its connector instances and tasks equal to
//! the latest assignment, and forwards what they report: connector and task
//! status, task configs, topics and committed offsets. If the coordinator
//! connection is lost, everything is stopped (another runner may be given it)
//! and the runner reconnects with backoff.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use weir_connect::config::ConfigMap;
use weir_connect::registry::Registry;
use weir_proto::control::v1 as pb;
use weir_proto::control::v1::control_client::ControlClient;

use crate::clients::{ClientRole, WatchedContext};
use crate::config::{OffsetStorage, WorkerConfig};
use crate::error::{Error, Result};
use crate::instance::{self, ConnectorState, InstanceContext, InstanceEvent};
use crate::offsets::{FileOffsetStore, OffsetStore, TopicOffsetStore};
use crate::task::{self, TargetState, TaskContext, TaskEvent, TaskKey, TaskState};

/// How often the runner and the coordinator hear from each other; three
/// silent intervals end the session on either side.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// Aborts a background task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long a stopping task may take before it is aborted, beyond the three
/// graceful phases it bounds itself (in-flight work, final commit, `stop`).
const TASK_STOP_SLACK: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct RunnerConfig {
    pub runner_id: String,
    /// `http://host:port` of a coordinator's gRPC listener.
    pub coordinator: String,
    pub worker: WorkerConfig,
}

struct RunningTask {
    config: ConfigMap,
    restart_generation: u64,
    task_count: i32,
    target: watch::Sender<TargetState>,
    cancel: CancellationToken,
    handle: JoinHandle<()>,
}

/// A connector instance this runner hosts.
struct RunningConnector {
    config: ConfigMap,
    generation: u64,
    target: watch::Sender<TargetState>,
    cancel: CancellationToken,
    handle: JoinHandle<()>,
}

/// A runner and the connector instances and tasks it hosts.
pub struct Runner {
    config: RunnerConfig,
    worker: Arc<WorkerConfig>,
    registry: Arc<Registry>,
    offsets: Arc<dyn OffsetStore>,
    tasks: BTreeMap<TaskKey, RunningTask>,
    connectors: BTreeMap<String, RunningConnector>,
    /// Last status of each task, re-sent after a reconnect.
    last_status: BTreeMap<TaskKey, pb::TaskStatusReport>,
    last_epoch: u64,
    kafka_cluster_id: String,
}

impl Runner {
    /// Opens offset storage; fails if it cannot be reached.
    pub async fn new(config: RunnerConfig, registry: Arc<Registry>) -> Result<Self> {
        let worker = Arc::new(config.worker.clone());
        let offsets: Arc<dyn OffsetStore> = match &worker.offset_storage {
            OffsetStorage::File(path) => Arc::new(FileOffsetStore::new(path.clone())),
            OffsetStorage::Topic {
                name,
                partitions,
                replication_factor,
            } => {
                let settings = worker.client_settings(&ConfigMap::new(), ClientRole::Worker)?;
                TopicOffsetStore::open(settings, name.clone(), *partitions, *replication_factor)
                    .await?
            }
        };
        let kafka_cluster_id = cluster_id(&worker).await;
        Ok(Runner {
            config,
            worker,
            registry,
            offsets,
            tasks: BTreeMap::new(),
            connectors: BTreeMap::new(),
            last_status: BTreeMap::new(),
            last_epoch: 0,
            kafka_cluster_id,
        })
    }

    /// Runs until `shutdown`, reconnecting to the coordinator as needed.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<()> {
        let (events_tx, mut events_rx) = mpsc::unbounded_channel::<TaskEvent>();
        let mut backoff = Duration::from_millis(100);
        loop {
            let session = self.session(&shutdown, &events_tx, &mut events_rx).await;
            self.stop_all(&mut events_rx).await;
            match session {
                Ok(()) if shutdown.is_cancelled() => return Ok(()),
                Ok(()) => {
                    tracing::warn!("coordinator closed the session; reconnecting");
                    backoff = Duration::from_millis(100);
                }
                Err(error) => tracing::warn!(%error, ?backoff, "coordinator unreachable; retrying"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn session(
        &mut self,
        shutdown: &CancellationToken,
        events_tx: &mpsc::UnboundedSender<TaskEvent>,
        events_rx: &mut mpsc::UnboundedReceiver<TaskEvent>,
    ) -> Result<()> {
        let channel = tonic::transport::Endpoint::from_shared(self.config.coordinator.clone())
            .map_err(|e| {
                Error::Config(format!(
                    "coordinator address {}: {e}",
                    self.config.coordinator
                ))
            })?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .connect()
            .await?;
        let (outbound, receiver) = mpsc::channel::<pb::RunnerMessage>(256);
        let hello = pb::RunnerMessage {
            body: Some(pb::runner_message::Body::Hello(pb::Hello {
                runner_id: self.config.runner_id.clone(),
                protocol_version: pb::PROTOCOL_VERSION,
                kafka_cluster_id: self.kafka_cluster_id.clone(),
                plugins: self
                    .registry
                    .connectors()
                    .iter()
                    .map(|plugin| weir_connect::wire::plugin_to_wire(plugin.as_ref()))
                    .collect(),
            })),
        };
        outbound
            .send(hello)
            .await
            .map_err(|_| Error::Internal("outbound channel closed".into()))?;
        let mut inbound = ControlClient::new(channel)
            .join(ReceiverStream::new(receiver))
            .await?
            .into_inner();
        tracing::info!(coordinator = %self.config.coordinator, runner = %self.config.runner_id, "joined coordinator");
        for report in self.last_status.values() {
            let _ = outbound
                .send(pb::RunnerMessage {
                    body: Some(pb::runner_message::Body::TaskStatus(report.clone())),
                })
                .await;
        }
        // Heartbeats go out from their own task, so a slow task stop in
        // `apply` cannot make the coordinator think this runner is gone.
        let beats = outbound.clone();
        let heartbeats = AbortOnDrop(tokio::spawn(async move {
            let mut ticker = tokio::time::interval(HEARTBEAT_INTERVAL);
            loop {
                ticker.tick().await;
                let beat = pb::RunnerMessage {
                    body: Some(pb::runner_message::Body::Heartbeat(pb::Heartbeat {})),
                };
                if beats.send(beat).await.is_err() {
                    break;
                }
            }
        }));
        let mut silent_after = tokio::time::Instant::now() + HEARTBEAT_INTERVAL * 3;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                // Silence from the coordinator: it may have dropped this runner and
                // given its tasks to another, so stop them (the caller does) and rejoin.
                () = tokio::time::sleep_until(silent_after) => {
                    drop(heartbeats);
                    return Err(Error::Coordinator("no message from the coordinator for three heartbeat intervals".into()));
                }
                message = inbound.message() => {
                    silent_after = tokio::time::Instant::now() + HEARTBEAT_INTERVAL * 3;
                    match message? {
                        None => return Ok(()),
                        Some(pb::CoordinatorMessage { body: Some(pb::coordinator_message::Body::Welcome(welcome)) }) => {
                            tracing::debug!(coordinator = %welcome.coordinator_id, "welcomed");
                        }
                        Some(pb::CoordinatorMessage { body: Some(pb::coordinator_message::Body::Assignment(assignment)) }) => {
                            self.apply(assignment, events_tx, events_rx, &outbound).await;
                            // Stopping tasks may have taken a while; messages
                            // that arrived meanwhile are waiting, not missing.
                            silent_after = tokio::time::Instant::now() + HEARTBEAT_INTERVAL * 3;
                        }
                        Some(_) => {}
                    }
                },
                Some(event) = events_rx.recv() => {
                    if let Some(message) = self.message_for(event)
                        && outbound.send(message).await.is_err() {
                            return Ok(());
                        }
                }
            }
        }
    }

    fn message_for(&mut self, event: TaskEvent) -> Option<pb::RunnerMessage> {
        use pb::runner_message::Body;
        let body = match event {
            TaskEvent::Status {
                key,
                state,
                trace,
                epoch,
            } => {
                if !self.tasks.contains_key(&key) {
                    return None;
                }
                let state = match state {
                    TaskState::Running => pb::TaskState::Running,
                    TaskState::Paused => pb::TaskState::Paused,
                    TaskState::Failed => pb::TaskState::Failed,
                };
                let report = pb::TaskStatusReport {
                    connector: key.connector.clone(),
                    task: key.task,
                    state: state as i32,
                    trace,
                    epoch,
                };
                self.last_status.insert(key, report.clone());
                Body::TaskStatus(report)
            }
            TaskEvent::Topics { connector, topics } => {
                Body::Topics(pb::TopicsReport { connector, topics })
            }
            TaskEvent::Instance(event) => return self.instance_message(event),
            TaskEvent::OffsetsCommitted {
                connector,
                positions,
            } => Body::Offsets(pb::OffsetsReport {
                connector,
                offsets: positions
                    .into_iter()
                    .map(|p| pb::SourceOffset {
                        partition_json: serde_json::Value::Object(p.partition).to_string(),
                        offset_json: serde_json::Value::Object(p.offset).to_string(),
                    })
                    .collect(),
            }),
        };
        Some(pb::RunnerMessage { body: Some(body) })
    }

    /// What a connector instance reported, if it still runs under that generation.
    fn instance_message(&self, event: InstanceEvent) -> Option<pb::RunnerMessage> {
        use pb::runner_message::Body;
        let current = |connector: &str, generation: u64| {
            self.connectors
                .get(connector)
                .is_some_and(|c| c.generation == generation)
        };
        let body = match event {
            InstanceEvent::Status {
                connector,
                generation,
                state,
                trace,
            } => {
                if !current(&connector, generation) {
                    return None;
                }
                let state = match state {
                    ConnectorState::Running => pb::ConnectorState::Running,
                    ConnectorState::Paused => pb::ConnectorState::Paused,
                    ConnectorState::Failed => pb::ConnectorState::Failed,
                };
                Body::ConnectorStatus(pb::ConnectorStatusReport {
                    connector,
                    state: state as i32,
                    trace,
                    generation,
                })
            }
            InstanceEvent::TaskConfigs {
                connector,
                generation,
                configs,
            } => {
                if !current(&connector, generation) {
                    return None;
                }
                Body::TaskConfigs(pb::TaskConfigsReport {
                    connector,
                    generation,
                    configs: configs
                        .into_iter()
                        .map(|config| pb::TaskConfig {
                            config: config.into_iter().collect(),
                        })
                        .collect(),
                })
            }
        };
        Some(pb::RunnerMessage { body: Some(body) })
    }

    /// Makes the running connector instances match the assignment's.
    fn apply_connectors(
        &mut self,
        wanted: Vec<pb::ConnectorAssignment>,
        events: &mpsc::UnboundedSender<TaskEvent>,
    ) {
        let wanted: BTreeMap<String, pb::ConnectorAssignment> =
            wanted.into_iter().map(|c| (c.name.clone(), c)).collect();
        let stale: Vec<String> = self
            .connectors
            .iter()
            .filter(|(name, running)| {
                wanted.get(*name).is_none_or(|w| {
                    w.generation != running.generation
                        || running.config != w.config.clone().into_iter().collect::<ConfigMap>()
                })
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            self.stop_connector(&name);
        }
        for (name, wanted) in wanted {
            let target = target_of(wanted.target_state);
            if let Some(running) = self.connectors.get(&name) {
                retarget(&running.target, target);
                continue;
            }
            self.start_connector(name, wanted, target, events.clone());
        }
    }

    fn start_connector(
        &mut self,
        name: String,
        wanted: pb::ConnectorAssignment,
        target: TargetState,
        events: mpsc::UnboundedSender<TaskEvent>,
    ) {
        let config: ConfigMap = wanted.config.into_iter().collect();
        let (target_tx, target_rx) = watch::channel(target);
        let cancel = CancellationToken::new();
        let plugin = config
            .get("connector.class")
            .and_then(|class| self.registry.connector(class));
        let (reported, mut forwarded) = mpsc::unbounded_channel();
        let handle = match plugin {
            Some(plugin) => {
                // Instance events go out on the runner's one event channel.
                let events = events.clone();
                tokio::spawn(async move {
                    while let Some(event) = forwarded.recv().await {
                        if events.send(TaskEvent::Instance(event)).is_err() {
                            return;
                        }
                    }
                });
                instance::spawn(InstanceContext {
                    name: name.clone(),
                    config: config.clone(),
                    generation: wanted.generation,
                    plugin,
                    target: target_rx,
                    cancel: cancel.clone(),
                    events: reported,
                })
            }
            None => {
                let trace = self.missing_plugin(&config);
                let _ = events.send(TaskEvent::Instance(InstanceEvent::Status {
                    connector: name.clone(),
                    generation: wanted.generation,
                    state: ConnectorState::Failed,
                    trace,
                }));
                tokio::spawn(async {})
            }
        };
        self.connectors.insert(
            name,
            RunningConnector {
                config,
                generation: wanted.generation,
                target: target_tx,
                cancel,
                handle,
            },
        );
    }

    /// The trace of a connector or task whose plugin this runner lacks.
    fn missing_plugin(&self, config: &ConfigMap) -> String {
        format!(
            "org.apache.kafka.connect.errors.ConnectException: no connector plugin for {} on runner {}",
            config
                .get("connector.class")
                .map_or("<none>", String::as_str),
            self.config.runner_id
        )
    }

    /// Connector instances hold no data: stopping one is cancelling it.
    fn stop_connector(&mut self, name: &str) {
        if let Some(running) = self.connectors.remove(name) {
            tracing::info!(connector = %name, "stopping connector");
            running.cancel.cancel();
            running.handle.abort();
        }
    }

    /// Makes the running tasks match `assignment`.
    async fn apply(
        &mut self,
        assignment: pb::Assignment,
        events: &mpsc::UnboundedSender<TaskEvent>,
        events_rx: &mut mpsc::UnboundedReceiver<TaskEvent>,
        outbound: &mpsc::Sender<pb::RunnerMessage>,
    ) {
        if assignment.epoch < self.last_epoch {
            tracing::debug!(
                epoch = assignment.epoch,
                last = self.last_epoch,
                "ignoring stale assignment"
            );
            return;
        }
        self.last_epoch = assignment.epoch;
        self.apply_connectors(assignment.connectors, events);
        let wanted: BTreeMap<TaskKey, pb::TaskAssignment> = assignment
            .tasks
            .into_iter()
            .map(|t| {
                (
                    TaskKey {
                        connector: t.connector.clone(),
                        task: t.task,
                    },
                    t,
                )
            })
            .collect();

        let mut to_stop = Vec::new();
        for (key, running) in &self.tasks {
            let keep = wanted.get(key).is_some_and(|w| {
                running.restart_generation == w.restart_generation
                    && running.task_count == w.task_count
                    && running.config == w.config.clone().into_iter().collect::<ConfigMap>()
                    && !running.handle.is_finished()
            });
            let failed_and_unchanged = wanted.get(key).is_some_and(|w| {
                running.handle.is_finished()
                    && running.restart_generation == w.restart_generation
                    && running.task_count == w.task_count
                    && running.config == w.config.clone().into_iter().collect::<ConfigMap>()
            });
            if !keep && !failed_and_unchanged {
                to_stop.push(key.clone());
            }
        }
        self.stop_many(to_stop, events_rx, Some(outbound)).await;

        for (key, wanted) in wanted {
            let target = target_of(wanted.target_state);
            if let Some(running) = self.tasks.get(&key) {
                retarget(&running.target, target);
                continue;
            }
            self.start(key, wanted, target, assignment.epoch, events.clone());
        }
    }

    fn start(
        &mut self,
        key: TaskKey,
        wanted: pb::TaskAssignment,
        target: TargetState,
        epoch: u64,
        events: mpsc::UnboundedSender<TaskEvent>,
    ) {
        let config: ConfigMap = wanted.config.into_iter().collect();
        let (target_tx, target_rx) = watch::channel(target);
        let cancel = CancellationToken::new();
        let handle = match config
            .get("connector.class")
            .and_then(|class| self.registry.connector(class))
        {
            Some(plugin) => {
                let context = TaskContext {
                    key: key.clone(),
                    task_count: wanted.task_count.max(1),
                    config: config.clone(),
                    epoch,
                    worker: self.worker.clone(),
                    offsets: self.offsets.clone(),
                    target: target_rx,
                    cancel: cancel.clone(),
                    events,
                };
                tracing::info!(task = %key, ?target, "starting task");
                let identity = weir_connect::api::TaskIdentity {
                    connector: key.connector.clone(),
                    task: key.task,
                    epoch,
                };
                task::spawn(context, plugin.create_task_for(&identity))
            }
            None => {
                let trace = self.missing_plugin(&config);
                let failed = TaskEvent::Status {
                    key: key.clone(),
                    state: TaskState::Failed,
                    trace,
                    epoch,
                };
                let _ = events.send(failed);
                // The task never runs: its handle is one that has finished.
                tokio::spawn(async {})
            }
        };
        self.tasks.insert(
            key,
            RunningTask {
                config,
                restart_generation: wanted.restart_generation,
                task_count: wanted.task_count,
                target: target_tx,
                cancel,
                handle,
            },
        );
    }

    /// Stops every connector instance and task, all at once.
    async fn stop_all(&mut self, events_rx: &mut mpsc::UnboundedReceiver<TaskEvent>) {
        let names: Vec<String> = self.connectors.keys().cloned().collect();
        for name in names {
            self.stop_connector(&name);
        }
        let keys: Vec<TaskKey> = self.tasks.keys().cloned().collect();
        self.stop_many(keys, events_rx, None).await;
    }

    /// Cancels the tasks all at once and waits for them together, each
    /// under the same deadline; one that overruns it is aborted. Meanwhile
    /// task events (offsets committed while stopping, say) keep flowing to
    /// `outbound` when there is one.
    async fn stop_many(
        &mut self,
        keys: Vec<TaskKey>,
        events_rx: &mut mpsc::UnboundedReceiver<TaskEvent>,
        outbound: Option<&mpsc::Sender<pb::RunnerMessage>>,
    ) {
        let stopping: Vec<(TaskKey, RunningTask)> = keys
            .into_iter()
            .filter_map(|key| {
                self.last_status.remove(&key);
                self.tasks.remove(&key).map(|running| (key, running))
            })
            .collect();
        if stopping.is_empty() {
            return;
        }
        for (_, running) in &stopping {
            running.cancel.cancel();
        }
        let deadline =
            tokio::time::Instant::now() + self.worker.task_shutdown_timeout * 3 + TASK_STOP_SLACK;
        let all_stopped =
            futures::future::join_all(stopping.into_iter().map(|(key, running)| async move {
                let mut handle = running.handle;
                if tokio::time::timeout_at(deadline, &mut handle)
                    .await
                    .is_err()
                {
                    tracing::warn!(task = %key, "task did not stop in time; aborting it");
                    handle.abort();
                }
            }));
        tokio::pin!(all_stopped);
        loop {
            tokio::select! {
                _ = &mut all_stopped => return,
                Some(event) = events_rx.recv(), if outbound.is_some() => {
                    if let (Some(message), Some(outbound)) = (self.message_for(event), outbound) {
                        let _ = outbound.send(message).await;
                    }
                }
            }
        }
    }
}

fn target_of(wire: i32) -> TargetState {
    match pb::TargetState::try_from(wire) {
        Ok(pb::TargetState::Paused) => TargetState::Paused,
        _ => TargetState::Running,
    }
}

/// Tells a running connector instance or task its target state, if it changed.
fn retarget(sender: &watch::Sender<TargetState>, target: TargetState) {
    sender.send_if_modified(|current| {
        let changed = *current != target;
        *current = target;
        changed
    });
}

/// The Kafka cluster id, for `GET /`; empty if the broker does not answer soon.
async fn cluster_id(worker: &WorkerConfig) -> String {
    let Ok(settings) = worker.client_settings(&ConfigMap::new(), ClientRole::Worker) else {
        return String::new();
    };
    tokio::task::spawn_blocking(move || {
        let (consumer, _): (BaseConsumer<WatchedContext>, _) = settings.create().ok()?;
        consumer.client().fetch_cluster_id(Duration::from_secs(5))
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_default()
}
