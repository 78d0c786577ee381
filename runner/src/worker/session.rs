//! The session half of the runner: the [`Runner`] and its sessions with
//! coordinators. It joins one over the control protocol (telling it which
//! plugins it has), sends heartbeats from a task of their own and renews
//! its lease from the task that reads the coordinator's stream, so that
//! applying an assignment (stopping tasks can take a while) never lets the
//! lease lapse; it hands each assignment to the assignment half
//! ([`super::assignment::Hosted`]) and reports what was applied, forwards
//! what the tasks and instances report, answers the coordinator's offsets
//! and validate requests, and attaches its live taps. If the coordinator is
//! lost, the runner joins the next one with backoff; its tasks run on while
//! the lease holds, and are stopped (fenced) once it lapses.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use weir_connect::config::ConfigMap;
use weir_connect::registry::Registry;
use weir_proto::control::v1 as pb;
use weir_proto::control::v1::control_client::ControlClient;

use super::assignment::Hosted;
use super::launcher::Launcher;
use crate::claims::PartitionClaims;
use crate::clients::{ClientRole, WatchedContext};
use crate::config::{OffsetStorage, WorkerConfig};
use crate::error::{Error, Result};
use crate::events::TaskEvent;
use crate::lease::Lease;
use crate::metrics::RunnerMetrics;
use crate::offsets::{FileOffsetStore, OffsetStore, TopicOffsetStore};
use crate::tap::{SessionTaps, Taps};

/// How often the runner and the coordinator hear from each other; three
/// silent intervals end the session on either side.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

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

/// A runner and the connector instances and tasks it hosts.
pub struct Runner {
    config: RunnerConfig,
    worker: Arc<WorkerConfig>,
    registry: Arc<Registry>,
    offsets: Arc<dyn OffsetStore>,
    /// The connector instances and tasks this runner hosts.
    hosted: Hosted<Launcher>,
    kafka_cluster_id: String,
    /// Unique per process: a reconnect may replace this runner's own
    /// registration, another process with the same id may not.
    instance: String,
    lease: Lease,
    session_timeout: Duration,
    metrics: Arc<RunnerMetrics>,
    /// Live taps coordinators attached to this runner's tasks.
    taps: Taps,
    /// Sink tasks' partition claims, carried over the current session.
    claims: PartitionClaims,
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
        let taps = Taps::new(&config.runner_id);
        let lease = Lease::new();
        let metrics: Arc<RunnerMetrics> = Arc::default();
        let claims = PartitionClaims::coordinated();
        let launcher = Launcher {
            runner_id: config.runner_id.clone(),
            registry: registry.clone(),
            providers,
            worker: worker.clone(),
            offsets: offsets.clone(),
            lease: lease.clone(),
            taps: taps.clone(),
            claims: claims.clone(),
            producers: crate::producers::ProducerPool::default(),
        };
        let hosted = Hosted::new(
            launcher,
            config.runner_id.clone(),
            lease.clone(),
            metrics.clone(),
            worker.task_shutdown_timeout,
        );
        Ok(Runner {
            config,
            worker,
            registry,
            offsets,
            hosted,
            kafka_cluster_id,
            instance: uuid::Uuid::new_v4().to_string(),
            lease,
            metrics,
            taps,
            claims,
            session_timeout: DEFAULT_SESSION_TIMEOUT,
        })
    }

    /// This runner's metrics, for an HTTP endpoint to render.
    pub fn metrics(&self) -> Arc<RunnerMetrics> {
        self.metrics.clone()
    }

    /// Runs until `shutdown`. When its coordinator goes away, the runner
    /// joins the next one it knows (round robin, with backoff after each full
    /// round) and keeps its tasks running meanwhile, for as long as its lease
    /// holds; then it stops them, committing nothing more.
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
                self.hosted.stop_all(&mut events_rx, None).await;
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
                        self.hosted.stop_all(&mut events_rx, None).await;
                        return Ok(());
                    }
                    () = tokio::time::sleep_until(until) => break,
                    () = self.hosted.lease_lapses() => self.hosted.fence(&mut events_rx).await,
                    Some(event) = events_rx.recv() => {
                        // Kept for the next session (statuses); the rest is a mirror.
                        let _ = self.hosted.report(event);
                    }
                }
            }
        }
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
        self.hosted.fence(events_rx).await;
        self.hosted.session_started();
        self.session_timeout = Duration::from_millis(u64::from(welcome.session_timeout_ms.max(1)));
        self.lease.renewed_from(hello_sent, self.session_timeout);
        tracing::info!(%coordinator, coordinator_id = %welcome.coordinator_id, runner = %self.config.runner_id, "joined coordinator");
        self.metrics.mark_ready();
        for report in self.hosted.last_statuses() {
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
        let mut session_taps = SessionTaps::new(self.taps.clone());
        loop {
            tokio::select! {
                () = shutdown.cancelled() => {
                    // A clean stop: final commits and statuses still reach the
                    // coordinator, then the leader is told to hold the
                    // assignment for the restart grace period.
                    self.hosted.stop_all(events_rx, Some(&outbound)).await;
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
                () = self.hosted.lease_lapses() => self.hosted.fence(events_rx).await,
                _ = regain.tick(), if self.hosted.is_fenced() => {
                    if let Some(assignment) = self.hosted.assignment_to_restart() {
                        tracing::info!(runner = %self.config.runner_id, epoch = assignment.epoch, "lease renewed after fencing; starting the assignment again");
                        if !self.apply_and_report(assignment, events_tx, events_rx, &outbound).await {
                            return Ok(());
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
                    if let Some(message) = self.hosted.report(event)
                        && outbound.send(message).await.is_err() {
                            return Ok(());
                        }
                }
            }
        }
    }

    /// Applies an assignment, then tells the coordinator which tasks run
    /// now (nothing if the assignment was stale); false if the session's
    /// stream has closed.
    async fn apply_and_report(
        &mut self,
        assignment: pb::Assignment,
        events_tx: &mpsc::UnboundedSender<TaskEvent>,
        events_rx: &mut mpsc::UnboundedReceiver<TaskEvent>,
        outbound: &mpsc::Sender<pb::RunnerMessage>,
    ) -> bool {
        let Some(applied) = self
            .hosted
            .apply(assignment, events_tx, events_rx, outbound)
            .await
        else {
            return true;
        };
        let applied = pb::RunnerMessage {
            body: Some(pb::runner_message::Body::Applied(applied)),
        };
        outbound.send(applied).await.is_ok()
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
    claims: PartitionClaims,
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
