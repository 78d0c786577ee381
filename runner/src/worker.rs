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
use tokio_util::task::AbortOnDropHandle;
use weir_connect::config::ConfigMap;
use weir_connect::registry::Registry;
use weir_proto::control::v1 as pb;
use weir_proto::control::v1::control_client::ControlClient;

use crate::clients::{ClientRole, WatchedContext};
use crate::config::{OffsetStorage, WorkerConfig};
use crate::context::{TargetState, TaskContext};
use crate::error::{Error, Result};
use crate::events::{ConnectorState, InstanceEvent, TaskEvent, TaskKey, TaskState};
use crate::instance::{self, InstanceContext};
use crate::lease::Lease;
use crate::offsets::{FileOffsetStore, OffsetStore, TopicOffsetStore};
use crate::task;

/// How often the runner and the coordinator hear from each other; three
/// silent intervals end the session on either side.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// How long a stopping task may take before it is aborted, beyond the three
/// graceful phases it bounds itself (in-flight work, final commit, `stop`).
const TASK_STOP_SLACK: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct RunnerConfig {
    pub runner_id: String,
    /// `http://host:port` of every coordinator's gRPC listener (at least
    /// one; see [`parse_coordinators`]).
    pub coordinators: Vec<String>,
    pub worker: WorkerConfig,
}

/// How long joining one coordinator may take before the next is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a coordinator may take to register this runner and welcome it.
const JOIN_TIMEOUT: Duration = Duration::from_secs(3);

/// The session timeout assumed until a coordinator's Welcome gives it.
const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(6);

/// Parses `coordinator.url`: a comma-separated list of `http://host:port`
/// (or `https://`) addresses. A bad entry is a configuration error naming it.
pub fn parse_coordinators(raw: &str) -> Result<Vec<String>> {
    let mut coordinators = Vec::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let valid = (entry.starts_with("http://") || entry.starts_with("https://"))
            && tonic::transport::Endpoint::from_shared(entry.to_owned()).is_ok();
        if !valid {
            return Err(Error::Config(format!(
                "coordinator.url: {entry:?} is not an http://host:port or https://host:port address (give several separated by commas)"
            )));
        }
        coordinators.push(entry.to_owned());
    }
    if coordinators.is_empty() {
        return Err(Error::Config(
            "coordinator.url: no coordinator address given".into(),
        ));
    }
    Ok(coordinators)
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
    /// The last assignment applied, started again when the lease holds
    /// again after a fence within a live session.
    assignment: Option<pb::Assignment>,
    /// Everything was stopped because the lease lapsed; the assignment has
    /// not been applied since.
    fenced: bool,
    kafka_cluster_id: String,
    /// Unique per process: a reconnect may replace this runner's own
    /// registration, another process with the same id may not.
    instance: String,
    lease: Lease,
    session_timeout: Duration,
    /// `config.providers`: resolves placeholders when a connector or task starts.
    providers: Arc<weir_connect::providers::ConfigProviders>,
    metrics: Arc<crate::metrics::RunnerMetrics>,
    /// Live taps coordinators attached to this runner's tasks.
    taps: crate::tap::Taps,
    /// Sink tasks' partition claims, carried over the current session.
    claims: crate::claims::PartitionClaims,
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
        let providers = Arc::new(
            weir_connect::providers::ConfigProviders::from_worker(&worker.properties)
                .map_err(Error::Config)?,
        );
        let kafka_cluster_id = cluster_id(&worker).await;
        let taps = crate::tap::Taps::new(&config.runner_id);
        Ok(Runner {
            config,
            worker,
            registry,
            offsets,
            tasks: BTreeMap::new(),
            connectors: BTreeMap::new(),
            last_status: BTreeMap::new(),
            last_epoch: 0,
            assignment: None,
            fenced: false,
            kafka_cluster_id,
            instance: uuid::Uuid::new_v4().to_string(),
            lease: Lease::new(),
            metrics: Arc::default(),
            taps,
            claims: crate::claims::PartitionClaims::coordinated(),
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            providers,
        })
    }

    /// Runs until `shutdown`. When its coordinator goes away, the runner
    /// joins the next one it knows (round robin, with backoff after each full
    /// round) and keeps its tasks running meanwhile, for as long as its lease
    /// holds; then it stops them, committing nothing more.
    /// This runner's metrics, for an HTTP endpoint to render.
    pub fn metrics(&self) -> Arc<crate::metrics::RunnerMetrics> {
        self.metrics.clone()
    }

    pub async fn run(mut self, shutdown: CancellationToken) -> Result<()> {
        let (events_tx, mut events_rx) = mpsc::unbounded_channel::<TaskEvent>();
        let mut backoff = Duration::from_millis(100);
        let mut attempt = 0usize;
        loop {
            let coordinator =
                self.config.coordinators[attempt % self.config.coordinators.len()].clone();
            let session = self
                .session(&coordinator, &shutdown, &events_tx, &mut events_rx)
                .await;
            if shutdown.is_cancelled() {
                self.stop_all(&mut events_rx, None).await;
                return Ok(());
            }
            match session {
                Ok(()) => {
                    tracing::warn!(%coordinator, "coordinator closed the session; reconnecting");
                    backoff = Duration::from_millis(100);
                }
                Err(error) => {
                    tracing::warn!(%coordinator, %error, "coordinator unreachable; trying the next")
                }
            }
            attempt += 1;
            // The next coordinator at once; after a full round, back off.
            let pause = if attempt.is_multiple_of(self.config.coordinators.len()) {
                let pause = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                pause
            } else {
                Duration::ZERO
            };
            let until = tokio::time::Instant::now() + pause;
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => {
                        self.stop_all(&mut events_rx, None).await;
                        return Ok(());
                    }
                    () = tokio::time::sleep_until(until) => break,
                    () = self.lease_lapses() => self.fence(&mut events_rx).await,
                    Some(event) = events_rx.recv() => {
                        // Kept for the next session (statuses); the rest is a mirror.
                        let _ = self.message_for(event);
                    }
                }
            }
        }
    }

    /// Resolves when the lease runs out while anything is running.
    async fn lease_lapses(&self) {
        match self.lease.deadline() {
            Some(deadline) if !self.tasks.is_empty() || !self.connectors.is_empty() => {
                tokio::time::sleep_until(deadline).await;
            }
            _ => std::future::pending().await,
        }
    }

    /// The lease ran out: another runner may own these tasks now. Stop
    /// everything; the tasks' commits are refused (`TaskContext::may_commit`).
    async fn fence(&mut self, events_rx: &mut mpsc::UnboundedReceiver<TaskEvent>) {
        if self.lease.holds() || (self.tasks.is_empty() && self.connectors.is_empty()) {
            return;
        }
        tracing::warn!(
            runner = %self.config.runner_id,
            "no coordinator answered within the session timeout; stopping every task without committing"
        );
        self.stop_all(events_rx, None).await;
        self.fenced = true;
    }

    async fn session(
        &mut self,
        coordinator: &str,
        shutdown: &CancellationToken,
        events_tx: &mpsc::UnboundedSender<TaskEvent>,
        events_rx: &mut mpsc::UnboundedReceiver<TaskEvent>,
    ) -> Result<()> {
        let channel = tonic::transport::Endpoint::from_shared(coordinator.to_owned())
            .map_err(|e| Error::Config(format!("coordinator.url {coordinator}: {e}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .connect()
            .await?;
        let (outbound, receiver) = mpsc::channel::<pb::RunnerMessage>(256);
        let hello = pb::RunnerMessage {
            body: Some(pb::runner_message::Body::Hello(pb::Hello {
                runner_id: self.config.runner_id.clone(),
                protocol_version: pb::PROTOCOL_VERSION,
                kafka_cluster_id: self.kafka_cluster_id.clone(),
                instance: self.instance.clone(),
                plugins: self
                    .registry
                    .connectors()
                    .iter()
                    .map(|plugin| weir_connect::wire::plugin_to_wire(plugin.as_ref()))
                    .collect(),
            })),
        };
        let hello_sent = tokio::time::Instant::now();
        outbound
            .send(hello)
            .await
            .map_err(|_| Error::Internal("outbound channel closed".into()))?;
        // Bounded: a coordinator stuck on its store must not hold this
        // runner here while its lease runs out; the next one is tried.
        let joined = tokio::time::timeout(JOIN_TIMEOUT, async {
            let mut inbound = ControlClient::new(channel)
                .join(ReceiverStream::new(receiver))
                .await?
                .into_inner();
            match inbound.message().await? {
                Some(pb::CoordinatorMessage {
                    body: Some(pb::coordinator_message::Body::Welcome(welcome)),
                }) => Ok((inbound, welcome)),
                other => Err(Error::Coordinator(format!(
                    "expected Welcome, got {other:?}"
                ))),
            }
        })
        .await
        .map_err(|_| {
            Error::Coordinator("the coordinator did not welcome this runner in time".into())
        })?;
        let (inbound, welcome) = joined?;
        // If the lease ran out while this runner was between sessions, its
        // tasks may have been fenced: stop them now; the assignment that
        // follows starts them again.
        self.fence(events_rx).await;
        self.session_timeout = Duration::from_millis(u64::from(welcome.session_timeout_ms.max(1)));
        self.lease.renewed_from(hello_sent, self.session_timeout);
        tracing::info!(%coordinator, coordinator_id = %welcome.coordinator_id, runner = %self.config.runner_id, "joined coordinator");
        self.metrics.mark_ready();
        for report in self.last_status.values() {
            let _ = outbound
                .send(pb::RunnerMessage {
                    body: Some(pb::runner_message::Body::TaskStatus(report.clone())),
                })
                .await;
        }
        // Heartbeats go out from their own task, and their answers are read
        // by another that renews the lease itself, so a slow task stop in
        // `apply` can neither make the coordinator think this runner is gone
        // nor let the runner's own lease lapse while the coordinator answers.
        let beats = outbound.clone();
        let lease = self.lease.clone();
        let heartbeats = AbortOnDropHandle::new(tokio::spawn(async move {
            let mut ticker = tokio::time::interval(HEARTBEAT_INTERVAL);
            loop {
                ticker.tick().await;
                let beat = pb::RunnerMessage {
                    body: Some(pb::runner_message::Body::Heartbeat(pb::Heartbeat {
                        seq: lease.heartbeat_sent(),
                    })),
                };
                if beats.send(beat).await.is_err() {
                    break;
                }
            }
        }));
        let (received_tx, mut received) = mpsc::unbounded_channel();
        let reader = AbortOnDropHandle::new(tokio::spawn(read_coordinator(
            inbound,
            self.lease.clone(),
            self.session_timeout,
            self.claims.clone(),
            received_tx,
        )));
        // Sink tasks claim partitions over this session while it lasts.
        let _claims = self.claims.attach(outbound.clone());
        // While tasks are fenced with the session alive, this checks each
        // heartbeat interval whether the lease holds again.
        let mut regain = tokio::time::interval(HEARTBEAT_INTERVAL);
        regain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Taps belong to the session that attached them.
        let mut session_taps = crate::tap::SessionTaps::new(self.taps.clone());
        loop {
            tokio::select! {
                () = shutdown.cancelled() => {
                    // A clean stop: final commits and statuses still reach the
                    // coordinator, then the leader is told to hold the
                    // assignment for the restart grace period.
                    self.stop_all(events_rx, Some(&outbound)).await;
                    let leaving = pb::RunnerMessage {
                        body: Some(pb::runner_message::Body::Leaving(pb::Leaving {})),
                    };
                    let _ = outbound.send(leaving).await;
                    drop(heartbeats);
                    // Let the coordinator read Leaving before the stream closes.
                    let _ = tokio::time::timeout(Duration::from_secs(2), async {
                        while let Some(Inbound::Message(_)) = received.recv().await {}
                    })
                    .await;
                    drop(reader);
                    return Ok(());
                }
                () = self.lease_lapses() => self.fence(events_rx).await,
                _ = regain.tick(), if self.fenced => {
                    if self.lease.holds() {
                        match self.assignment.clone() {
                            Some(assignment) => {
                                tracing::info!(runner = %self.config.runner_id, epoch = assignment.epoch, "lease renewed after fencing; starting the assignment again");
                                if !self.apply_and_report(assignment, events_tx, events_rx, &outbound).await {
                                    return Ok(());
                                }
                            }
                            None => self.fenced = false,
                        }
                    }
                }
                inbound = received.recv() => {
                    let message = match inbound {
                        Some(Inbound::Message(message)) => message,
                        // Silence, or the stream ended: try another
                        // coordinator; the tasks run on while the lease holds.
                        Some(Inbound::Ended(outcome)) => return outcome,
                        None => return Ok(()),
                    };
                    match message.body {
                        Some(pb::coordinator_message::Body::OffsetsRequest(request)) => {
                            self.answer_offsets(request, outbound.clone());
                        }
                        Some(pb::coordinator_message::Body::ValidateRequest(request)) => {
                            self.answer_validate(request, outbound.clone());
                        }
                        Some(pb::coordinator_message::Body::TapStart(start)) => {
                            if let Some(request) = start.request {
                                let records = session_taps.attach(start.id, &request);
                                tokio::spawn(crate::tap::forward(start.id, records, outbound.clone()));
                            }
                        }
                        Some(pb::coordinator_message::Body::TapStop(stop)) => {
                            session_taps.detach(stop.id);
                        }
                        Some(pb::coordinator_message::Body::LogLevel(level)) => {
                            match weir_connect::logging::loggers().set(&level.logger, &level.level) {
                                Ok(_) => tracing::info!(logger = %level.logger, level = %level.level, "log level set for the cluster"),
                                Err(error) => tracing::warn!(logger = %level.logger, ?error, "cluster log level not applied"),
                            }
                        }
                        Some(pb::coordinator_message::Body::Assignment(assignment)) => {
                            let open = self.apply_and_report(assignment, events_tx, events_rx, &outbound).await;
                            if !open {
                                return Ok(());
                            }
                        }
                        _ => {}
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

    /// Applies an assignment, then tells the coordinator which tasks run
    /// now; false if the session's stream has closed.
    async fn apply_and_report(
        &mut self,
        assignment: pb::Assignment,
        events_tx: &mpsc::UnboundedSender<TaskEvent>,
        events_rx: &mut mpsc::UnboundedReceiver<TaskEvent>,
        outbound: &mpsc::Sender<pb::RunnerMessage>,
    ) -> bool {
        let epoch = assignment.epoch;
        if !self.apply(assignment, events_tx, events_rx, outbound).await {
            return true;
        }
        let applied = pb::RunnerMessage {
            body: Some(pb::runner_message::Body::Applied(pb::Applied {
                epoch,
                tasks: self
                    .tasks
                    .keys()
                    .map(|key| pb::TaskRef {
                        connector: key.connector.clone(),
                        task: key.task,
                    })
                    .collect(),
            })),
        };
        outbound.send(applied).await.is_ok()
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

    /// The plugin a coordinator's request names by its config's `connector.class`.
    fn plugin_of(
        &self,
        config: &std::collections::HashMap<String, String>,
    ) -> Option<Arc<dyn weir_connect::api::ConnectorPlugin>> {
        config
            .get("connector.class")
            .and_then(|class| self.registry.connector(class))
    }

    /// Runs a plugin's own validate for a coordinator (which cannot run a
    /// sidecar plugin's) in the background and answers on the session.
    fn answer_validate(
        &self,
        request: pb::ValidateRequest,
        outbound: mpsc::Sender<pb::RunnerMessage>,
    ) {
        let plugin = self.plugin_of(&request.config);
        tokio::spawn(async move {
            let config: weir_connect::config::ConfigMap = request.config.into_iter().collect();
            let (error, errors) = match plugin {
                Some(plugin) => (String::new(), plugin.validate(&config).await),
                None => (
                    "this runner does not have the connector's plugin".to_owned(),
                    Vec::new(),
                ),
            };
            let reply = pb::RunnerMessage {
                body: Some(pb::runner_message::Body::ValidateReply(pb::ValidateReply {
                    id: request.id,
                    error,
                    errors: errors
                        .into_iter()
                        .map(|(name, errors)| weir_proto::connector::v2::KeyErrors { name, errors })
                        .collect(),
                })),
            };
            let _ = outbound.send(reply).await;
        });
    }

    /// Carries out an offsets API request in the background and answers it
    /// on the session once the change is durable.
    fn answer_offsets(
        &self,
        request: pb::OffsetsRequest,
        outbound: mpsc::Sender<pb::RunnerMessage>,
    ) {
        let worker = self.worker.clone();
        let store = self.offsets.clone();
        let plugin = self.plugin_of(&request.config);
        tokio::spawn(async move {
            let outcome = match plugin {
                Some(plugin) => {
                    crate::offsets_api::handle(&request, plugin.kind(), &worker, store.as_ref())
                        .await
                }
                None => Err("this runner does not have the connector's plugin".to_owned()),
            };
            let (error, offsets) = match outcome {
                Ok(offsets) => (String::new(), offsets),
                Err(error) => (error, Vec::new()),
            };
            let reply = pb::RunnerMessage {
                body: Some(pb::runner_message::Body::OffsetsReply(pb::OffsetsReply {
                    id: request.id,
                    error,
                    offsets,
                })),
            };
            let _ = outbound.send(reply).await;
        });
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
        let (reported, mut forwarded) = mpsc::unbounded_channel();
        let handle = match self.prepare(&config) {
            Ok((plugin, resolved)) => {
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
                    resolved,
                    generation: wanted.generation,
                    plugin,
                    target: target_rx,
                    cancel: cancel.clone(),
                    events: reported,
                })
            }
            Err(trace) => {
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
        self.metrics.set_connector_count(self.connectors.len());
    }

    /// The plugin of a connector or task about to start, and its config
    /// with placeholders resolved (again at every start, so a restart sees
    /// new values); the FAILED trace if either cannot be had.
    fn prepare(
        &self,
        config: &ConfigMap,
    ) -> std::result::Result<(Arc<dyn weir_connect::api::ConnectorPlugin>, ConfigMap), String> {
        let class = config
            .get("connector.class")
            .map_or("<none>", String::as_str);
        let plugin = self.registry.connector(class).ok_or_else(|| {
            format!(
                "org.apache.kafka.connect.errors.ConnectException: no connector plugin for {class} on runner {}",
                self.config.runner_id
            )
        })?;
        let resolved = self.providers.resolve(config).map_err(|error| {
            format!("org.apache.kafka.connect.errors.ConnectException: {error}")
        })?;
        Ok((plugin, resolved))
    }

    /// Connector instances hold no data: stopping one is cancelling it.
    fn stop_connector(&mut self, name: &str) {
        let removed = self.connectors.remove(name);
        self.metrics.set_connector_count(self.connectors.len());
        if let Some(running) = removed {
            tracing::info!(connector = %name, "stopping connector");
            running.cancel.cancel();
            running.handle.abort();
        }
    }

    /// Makes the running tasks match `assignment`; false if it was stale
    /// and ignored.
    async fn apply(
        &mut self,
        assignment: pb::Assignment,
        events: &mpsc::UnboundedSender<TaskEvent>,
        events_rx: &mut mpsc::UnboundedReceiver<TaskEvent>,
        outbound: &mpsc::Sender<pb::RunnerMessage>,
    ) -> bool {
        if assignment.epoch < self.last_epoch {
            tracing::debug!(
                epoch = assignment.epoch,
                last = self.last_epoch,
                "ignoring stale assignment"
            );
            return false;
        }
        self.last_epoch = assignment.epoch;
        self.assignment = Some(assignment.clone());
        self.fenced = false;
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
        true
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
        let metrics = self.metrics.register(&key);
        let handle = match self.prepare(&config) {
            Ok((plugin, resolved)) => {
                let context = TaskContext {
                    key: key.clone(),
                    task_count: wanted.task_count.max(1),
                    config: resolved,
                    epoch,
                    worker: self.worker.clone(),
                    offsets: self.offsets.clone(),
                    target: target_rx,
                    cancel: cancel.clone(),
                    events,
                    lease: self.lease.clone(),
                    metrics,
                    tap: self.taps.for_task(&key.connector, key.task),
                    claims: self.claims.clone(),
                };
                tracing::info!(task = %key, ?target, "starting task");
                let identity = weir_connect::api::TaskIdentity {
                    connector: key.connector.clone(),
                    task: key.task,
                    epoch,
                };
                task::spawn(context, plugin.create_task_for(&identity))
            }
            Err(trace) => {
                self.metrics.task_startup_failures.add(1);
                metrics.set_state(TaskState::Failed);
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

    /// Stops every connector instance and task, all at once, forwarding what
    /// the tasks report meanwhile to `outbound` when there is one.
    async fn stop_all(
        &mut self,
        events_rx: &mut mpsc::UnboundedReceiver<TaskEvent>,
        outbound: Option<&mpsc::Sender<pb::RunnerMessage>>,
    ) {
        let names: Vec<String> = self.connectors.keys().cloned().collect();
        for name in names {
            self.stop_connector(&name);
        }
        let keys: Vec<TaskKey> = self.tasks.keys().cloned().collect();
        self.stop_many(keys, events_rx, outbound).await;
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
                self.metrics.unregister(&key);
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

/// What the session loop hears from the task reading the coordinator's stream.
enum Inbound {
    Message(pb::CoordinatorMessage),
    /// The stream ended (`Ok`) or failed or went silent (`Err`).
    Ended(Result<()>),
}

/// Reads the coordinator's stream: renews the lease on each heartbeat answer
/// itself, so renewal never waits behind the session loop's work (stopping
/// tasks, say), hands answers to partition claims to the tasks waiting for
/// them, and passes every other message on. Ends the session after three
/// heartbeat intervals without any message.
async fn read_coordinator(
    mut inbound: tonic::Streaming<pb::CoordinatorMessage>,
    lease: Lease,
    session_timeout: Duration,
    claims: crate::claims::PartitionClaims,
    messages: mpsc::UnboundedSender<Inbound>,
) {
    loop {
        let ended = match tokio::time::timeout(HEARTBEAT_INTERVAL * 3, inbound.message()).await {
            Err(_) => Err(Error::Coordinator(
                "no message from the coordinator for three heartbeat intervals".into(),
            )),
            Ok(Err(status)) => Err(Error::from(status)),
            Ok(Ok(None)) => Ok(()),
            Ok(Ok(Some(pb::CoordinatorMessage {
                body: Some(pb::coordinator_message::Body::Heartbeat(beat)),
            }))) => {
                if beat.seq > 0 {
                    lease.answered(beat.seq, session_timeout);
                }
                continue;
            }
            Ok(Ok(Some(pb::CoordinatorMessage {
                body: Some(pb::coordinator_message::Body::PartitionsClaimed(reply)),
            }))) => {
                claims.answered(reply);
                continue;
            }
            Ok(Ok(Some(message))) => {
                if messages.send(Inbound::Message(message)).is_err() {
                    return;
                }
                continue;
            }
        };
        let _ = messages.send(Inbound::Ended(ended));
        return;
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
