//! The control service: one bidirectional `Join` stream per runner. While
//! the stream lives the runner is registered under `runners/{id}` with its
//! plugins under `plugins/{id}`; its assignment (computed by the leader) is
//! pushed whenever the state changes. What it reports is written to the
//! store only while it still owns what it reports on: task and connector
//! status, the task configs its connector instances make, offsets, topics.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use weir_connect::config::{
    ConfigDef, ConfigKey, ConfigMap, ConfigType, Default as ConfigDefault, Importance, Validator,
};
use weir_proto::control::v1 as pb;
use weir_proto::control::v1::control_server::Control;
use weir_proto::control::v1::runner_message::Body;

use crate::error::Result;
use crate::keys;
use crate::links::{Outbound, RunnerAnswer, RunnerLinks, tap_stop};
use crate::model::{
    AppliedRecord, AssignmentRecord, ClaimsRecord, DepartedRecord, InstanceState, OffsetEntry,
    RunnerRecord, StatusRecord, TargetRecord, TargetState, TaskConfigsRecord, TaskId, read_json,
    to_json,
};
use crate::store::{Condition, Store, Txn};

/// How often runners heartbeat; three missed beats end the session.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// Pause before a store operation a session needs is tried again.
const STORE_RETRY: Duration = Duration::from_millis(500);
/// How many queued runner reports a session handles before it reads the
/// assignment again, so that a flood of reports cannot hold back a change.
const REPORTS_PER_READ: usize = 256;
/// Task statuses written in one transaction at most: with a condition on
/// each one's connector, well under etcd's default of 128 operations.
const STATUSES_PER_TXN: usize = 50;

/// How long a runner report is retried against a failing store.
const STORE_GIVE_UP: Duration = Duration::from_secs(10);

/// How long sessions may go unanswered, and how long a departed runner's
/// work is held for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTiming {
    /// A runner keeps running its tasks this long after the send time of its
    /// last answered heartbeat (`session.timeout.ms`); the leader moves a
    /// lost runner's tasks this long after it saw the session end.
    pub session_timeout: Duration,
    /// How long the tasks of a runner that left cleanly wait for it to come
    /// back (`scheduled.rebalance.max.delay.ms`); 0 moves them at once.
    pub restart_grace: Duration,
}

impl SessionTiming {
    /// The coordinator's session keys, with their defaults: the one place
    /// each is defined and parsed. Runners heartbeat every second, so a
    /// session may not time out in under two.
    pub fn config_def() -> ConfigDef {
        ConfigDef::new()
            .define(
                ConfigKey::new(
                    "session.timeout.ms",
                    ConfigType::Long,
                    ConfigDefault::Value("6000"),
                )
                .importance(Importance::High)
                .doc("How long a runner may go without an answered heartbeat before its session ends and its tasks move.")
                .validator(Validator::AtLeast(2000)),
            )
            .define(
                ConfigKey::new(
                    "scheduled.rebalance.max.delay.ms",
                    ConfigType::Long,
                    ConfigDefault::Value("10000"),
                )
                .importance(Importance::Medium)
                .doc("How long the tasks of a runner that stopped cleanly wait for it to come back before they move; 0 moves them at once.")
                .validator(Validator::AtLeast(0)),
            )
    }

    /// The timing `config` sets, with Kafka Connect's message for a bad value.
    pub fn from_config(config: &ConfigMap) -> Result<Self, String> {
        let def = Self::config_def();
        let parsed = def.parse(config)?;
        let millis = |name: &str| -> Result<Duration, String> {
            Ok(Duration::from_millis(
                u64::try_from(parsed.long(name)?).unwrap_or(0),
            ))
        };
        Ok(SessionTiming {
            session_timeout: millis("session.timeout.ms")?,
            restart_grace: millis("scheduled.rebalance.max.delay.ms")?,
        })
    }
}

impl Default for SessionTiming {
    /// The definition's defaults (they satisfy its validators, which a unit
    /// test checks).
    fn default() -> Self {
        Self::from_config(&ConfigMap::new())
            .unwrap_or_else(|error| unreachable!("the session keys' defaults are invalid: {error}"))
    }
}

#[derive(Clone)]
pub struct ControlService {
    store: Store,
    coordinator_id: String,
    timing: SessionTiming,
    links: RunnerLinks,
}

impl ControlService {
    pub fn new(
        store: Store,
        coordinator_id: String,
        timing: SessionTiming,
        links: RunnerLinks,
    ) -> Self {
        ControlService {
            store,
            coordinator_id,
            timing,
            links,
        }
    }

    /// Registers the runner under `runners/{id}` (and its plugins), unless
    /// another process holds that id: a reconnect of the same process
    /// (same `instance`) replaces its own registration.
    async fn register(&self, record: &RunnerRecord, plugins: Vec<u8>) -> Result<()> {
        let key = keys::runner(&record.runner_id);
        let mine = to_json(record)?;
        loop {
            let existing = self.store.get(&key).await?;
            let condition = match &existing {
                None => Condition::Absent(key.clone()),
                Some(bytes) => {
                    let holder: RunnerRecord = serde_json::from_slice(bytes)?;
                    if holder.instance.is_empty() || holder.instance != record.instance {
                        return Err(crate::error::Error::AlreadyExists(format!(
                            "runner id {} is already registered by another runner process (connected to coordinator {}); give every runner its own runner.id",
                            record.runner_id, holder.coordinator_id
                        )));
                    }
                    Condition::ValueEquals(key.clone(), bytes.clone())
                }
            };
            // Plugins with the record: once the leader sees the runner, it
            // can place work on it.
            let txn = Txn::new()
                .when(condition)
                .put_ephemeral(keys::plugins(&record.runner_id), plugins.clone())
                .put_ephemeral(key.clone(), mine.clone())
                .delete(keys::departed(&record.runner_id));
            if self.store.txn(txn).await? {
                return Ok(());
            }
        }
    }
}

#[tonic::async_trait]
impl Control for ControlService {
    type JoinStream = ReceiverStream<Outbound>;

    async fn join(
        &self,
        request: Request<Streaming<pb::RunnerMessage>>,
    ) -> std::result::Result<Response<Self::JoinStream>, Status> {
        let mut inbound = request.into_inner();
        let hello = match inbound.message().await? {
            Some(pb::RunnerMessage {
                body: Some(Body::Hello(hello)),
            }) => hello,
            _ => {
                return Err(Status::invalid_argument(
                    "the first message on Join must be Hello",
                ));
            }
        };
        if hello.runner_id.trim().is_empty() {
            return Err(Status::invalid_argument("runner_id must not be empty"));
        }
        if hello.protocol_version < pb::PROTOCOL_VERSION {
            return Err(Status::failed_precondition(format!(
                "runner {} speaks control protocol {}; this coordinator needs {} (runners make task configs since 2): upgrade the runner",
                hello.runner_id,
                hello.protocol_version,
                pb::PROTOCOL_VERSION
            )));
        }
        let record = RunnerRecord {
            runner_id: hello.runner_id,
            coordinator_id: self.coordinator_id.clone(),
            session: uuid::Uuid::new_v4().to_string(),
            kafka_cluster_id: hello.kafka_cluster_id,
            instance: hello.instance,
        };
        self.register(&record, crate::plugins::encode(hello.plugins))
            .await?;
        tracing::info!(runner = %record.runner_id, "runner joined");
        let (outbound, receiver) = mpsc::channel(64);
        let session = Session {
            store: self.store.clone(),
            record,
            timing: self.timing,
            links: self.links.clone(),
            outbound,
            leaving: std::sync::atomic::AtomicBool::new(false),
        };
        tokio::spawn(session.run(inbound));
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}

struct Session {
    store: Store,
    record: RunnerRecord,
    timing: SessionTiming,
    links: RunnerLinks,
    outbound: mpsc::Sender<Outbound>,
    /// The runner said it is stopping on purpose.
    leaving: std::sync::atomic::AtomicBool,
}

impl Session {
    async fn run(self, inbound: Streaming<pb::RunnerMessage>) {
        let runner = self.record.runner_id.clone();
        if let Err(error) = self.serve(inbound).await {
            tracing::warn!(%runner, %error, "runner session failed");
        }
        self.links.remove(&self.record.session);
        // Deregister, unless a newer session of the runner replaced this one,
        // and tell the leader how it left.
        let key = keys::runner(&runner);
        let departure = DepartedRecord {
            graceful: self.leaving.load(std::sync::atomic::Ordering::Relaxed),
        };
        let leave = match (to_json(&self.record), to_json(&departure)) {
            (Ok(mine), Ok(departure)) => {
                self.store
                    .txn(
                        Txn::new()
                            .when(Condition::ValueEquals(key, mine))
                            .delete(keys::runner(&runner))
                            .delete(keys::plugins(&runner))
                            .put(keys::departed(&runner), departure),
                    )
                    .await
            }
            (Err(error), _) | (_, Err(error)) => Err(error),
        };
        if let Err(error) = leave {
            tracing::warn!(%runner, %error, "could not deregister runner");
        }
        tracing::info!(%runner, "runner left");
    }

    async fn serve(&self, inbound: Streaming<pb::RunnerMessage>) -> Result<()> {
        let runner = &self.record.runner_id;
        let welcome = pb::CoordinatorMessage {
            body: Some(pb::coordinator_message::Body::Welcome(pb::Welcome {
                coordinator_id: self.record.coordinator_id.clone(),
                protocol_version: pb::PROTOCOL_VERSION,
                heartbeat_interval_ms: HEARTBEAT_INTERVAL.as_millis() as u32,
                session_timeout_ms: u32::try_from(self.timing.session_timeout.as_millis())
                    .unwrap_or(u32::MAX),
            })),
        };
        if self.outbound.send(Ok(welcome)).await.is_err() {
            return Ok(());
        }
        // Linked only after the Welcome, which must be the first message:
        // live taps follow it.
        let taps = self.links.add(
            &self.record.session,
            &self.record.runner_id,
            self.outbound.clone(),
        );
        for start in taps {
            if self.outbound.send(Ok(start)).await.is_err() {
                return Ok(());
            }
        }
        // Heartbeats are answered by their own task, never behind store I/O:
        // a slow store must not make a runner think it lost its session.
        let (messages, mut received) = mpsc::unbounded_channel();
        let reader = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(read_runner(
            inbound,
            self.outbound.clone(),
            self.store.clone(),
            messages,
            runner.clone(),
            self.record.session.clone(),
            self.links.clone(),
        )));
        // What the loop below reads: the assignment (with its connectors'
        // configs and task configs) and the cluster log levels.
        let mut changes = self.store.changes_under(&[
            keys::ASSIGNMENTS,
            keys::CONNECTORS,
            keys::TASKS,
            keys::LOGGERS,
        ]);
        let mut last_sent: Option<pb::Assignment> = None;
        let mut levels = crate::loggers::Applied::default();
        let mut dropped = DroppedReports::default();
        // The assignment and log levels are read again only after the store
        // changed: a burst of runner reports must not cost a full read each
        // (with many tasks, that read is a few hundred keys).
        let mut stale = true;
        loop {
            self.retry_dropped(&mut dropped).await;
            if !stale {
                tokio::select! {
                    changed = changes.changed() => {
                        if changed.is_err() {
                            return Ok(());
                        }
                        stale = true;
                    }
                    message = received.recv() => match message {
                        // The reader ended: the stream closed or went silent.
                        None => {
                            drop(reader);
                            return Ok(());
                        }
                        Some(message) => {
                            // What else is queued is handled before the next read.
                            let mut queued = vec![message];
                            while queued.len() < REPORTS_PER_READ {
                                let Ok(message) = received.try_recv() else {
                                    break;
                                };
                                queued.push(message);
                            }
                            self.handle_queued(queued, &mut dropped).await;
                        }
                    },
                    // Reports the store would not take are tried again.
                    () = tokio::time::sleep(STORE_RETRY), if !dropped.is_empty() => {}
                }
                continue;
            }
            // Cluster-wide log levels reach the runner too.
            if let Ok(all) = crate::loggers::cluster_levels(&self.store).await {
                for level in levels.fresh(all) {
                    let message = pb::CoordinatorMessage {
                        body: Some(pb::coordinator_message::Body::LogLevel(pb::LogLevel {
                            logger: level.logger,
                            level: level.level,
                        })),
                    };
                    if self.outbound.send(Ok(message)).await.is_err() {
                        return Ok(());
                    }
                }
            }
            // A store error (an etcd blip) does not end the session: the
            // runner keeps its tasks; the assignment is read again shortly.
            let mut assignment = match assignment_for(&self.store, runner).await {
                Ok(assignment) => assignment,
                Err(error) => {
                    tracing::warn!(%runner, %error, "reading the assignment failed; retrying");
                    tokio::time::sleep(STORE_RETRY).await;
                    continue;
                }
            };
            if assignment.is_none()
                && let Some(previous) = &last_sent
            {
                // The leader took every task away (or the runner record was
                // dropped): tell the runner to stop them.
                assignment = Some(pb::Assignment {
                    epoch: previous.epoch,
                    tasks: Vec::new(),
                    connectors: Vec::new(),
                });
            }
            if assignment.is_some() && assignment != last_sent {
                let message = pb::CoordinatorMessage {
                    body: assignment
                        .clone()
                        .map(pb::coordinator_message::Body::Assignment),
                };
                if self.outbound.send(Ok(message)).await.is_err() {
                    return Ok(());
                }
                last_sent = assignment;
            }
            stale = false;
        }
    }

    /// Handles a runner message, retrying store errors for a while. A state
    /// report (applied tasks, a task's or connector's status) that still
    /// cannot be written is kept in `dropped` until it is, or a newer one
    /// replaces it: it is sent only once, and losing it would leave a task
    /// placed nowhere or a status that lies. Other reports are dropped with
    /// a warning (the next one carries the same information).
    async fn handle_retrying(&self, message: pb::RunnerMessage, dropped: &mut DroppedReports) {
        // A newer report supersedes a kept older one of the same thing.
        dropped.superseded_by(&message);
        let give_up = tokio::time::Instant::now() + STORE_GIVE_UP;
        loop {
            match self.handle(message.clone()).await {
                Ok(()) => return,
                Err(error) if tokio::time::Instant::now() < give_up => {
                    tracing::debug!(runner = %self.record.runner_id, %error, "store write failed; retrying");
                    tokio::time::sleep(STORE_RETRY).await;
                }
                Err(error) => {
                    if dropped.keep(message) {
                        tracing::warn!(runner = %self.record.runner_id, %error, "the store would not take a runner's state report; trying it again until it does");
                    } else {
                        tracing::warn!(runner = %self.record.runner_id, %error, "dropping a runner report the store would not take");
                    }
                    return;
                }
            }
        }
    }

    /// Handles queued reports in order; each run of task statuses is
    /// written in as few transactions as it can (a runner starting hundreds
    /// of tasks reports them all at once).
    async fn handle_queued(&self, queued: Vec<pb::RunnerMessage>, dropped: &mut DroppedReports) {
        let mut statuses: Vec<pb::RunnerMessage> = Vec::new();
        for message in queued {
            if matches!(message.body, Some(Body::TaskStatus(_))) {
                statuses.push(message);
                continue;
            }
            self.handle_statuses(std::mem::take(&mut statuses), dropped)
                .await;
            self.handle_retrying(message, dropped).await;
        }
        self.handle_statuses(statuses, dropped).await;
    }

    /// Writes a run of task statuses: the latest of each task, together in
    /// chunks while every task is this runner's and every connector exists,
    /// else each as [`Self::record_status`] would.
    async fn handle_statuses(
        &self,
        statuses: Vec<pb::RunnerMessage>,
        dropped: &mut DroppedReports,
    ) {
        let mut latest: BTreeMap<(String, i32), pb::RunnerMessage> = BTreeMap::new();
        for message in statuses {
            if let Some(Body::TaskStatus(report)) = &message.body {
                dropped.superseded_by(&message);
                latest.insert((report.connector.clone(), report.task), message);
            }
        }
        let latest: Vec<pb::RunnerMessage> = latest.into_values().collect();
        for chunk in latest.chunks(STATUSES_PER_TXN) {
            if chunk.len() > 1 && matches!(self.record_statuses_together(chunk).await, Ok(true)) {
                continue;
            }
            for message in chunk {
                self.handle_retrying(message.clone(), dropped).await;
            }
        }
    }

    /// Writes these statuses in one transaction if, when it lands, every
    /// task is in this runner's assignment (or being revoked) and every
    /// connector exists; false (nothing written) otherwise.
    async fn record_statuses_together(&self, statuses: &[pb::RunnerMessage]) -> Result<bool> {
        let Some((raw, assignment)) = self.stored_assignment().await? else {
            return Ok(false);
        };
        let assignment_key = keys::assignment(&self.record.runner_id);
        let mut txn = Txn::new().when(Condition::ValueEquals(assignment_key, raw));
        let mut connectors = BTreeSet::new();
        for message in statuses {
            let Some(Body::TaskStatus(report)) = &message.body else {
                return Ok(false);
            };
            if !Listed::OrRevoking.includes(&assignment, &report.connector, report.task) {
                return Ok(false);
            }
            if connectors.insert(report.connector.clone()) {
                txn = txn.when(Condition::Present(keys::connector_config(
                    &report.connector,
                )));
            }
            txn = txn.put(
                keys::task_status(&report.connector, report.task),
                self.status_record(report)?,
            );
        }
        self.store.txn(txn).await
    }

    /// Tries once more to write the state reports the store refused.
    async fn retry_dropped(&self, dropped: &mut DroppedReports) {
        for message in dropped.take() {
            if let Err(error) = self.handle(message.clone()).await {
                tracing::debug!(runner = %self.record.runner_id, %error, "a kept state report still cannot be written");
                dropped.keep(message);
            }
        }
    }

    async fn handle(&self, message: pb::RunnerMessage) -> Result<()> {
        match message.body {
            Some(Body::TaskStatus(report)) => self.record_status(report).await,
            Some(Body::Topics(report)) => {
                for topic in report.topics {
                    let key = keys::topic(&report.connector, &topic);
                    let txn = Txn::new()
                        .when(Condition::Present(keys::connector_config(
                            &report.connector,
                        )))
                        .when(Condition::Absent(key.clone()))
                        .put(key, b"{}".to_vec());
                    self.store.txn(txn).await?;
                }
                Ok(())
            }
            Some(Body::Offsets(report)) => self.record_offsets(report).await,
            Some(Body::TaskConfigs(report)) => self.record_task_configs(report).await,
            Some(Body::ConnectorStatus(report)) => self.record_connector_status(report).await,
            Some(Body::Applied(applied)) => self.record_applied(applied).await,
            Some(Body::ClaimPartitions(claim)) => {
                let id = claim.id;
                let reply = match self.claim_partitions(claim).await {
                    Ok(granted) => pb::PartitionsClaimed {
                        id,
                        granted: granted
                            .into_iter()
                            .map(|(topic, partition)| pb::TopicPartition { topic, partition })
                            .collect(),
                        error: String::new(),
                    },
                    Err(error) => pb::PartitionsClaimed {
                        id,
                        granted: Vec::new(),
                        error: error.to_string(),
                    },
                };
                let answer = pb::CoordinatorMessage {
                    body: Some(pb::coordinator_message::Body::PartitionsClaimed(reply)),
                };
                // The task asks again if the answer is lost.
                let _ = self.outbound.send(Ok(answer)).await;
                Ok(())
            }
            Some(Body::Leaving(_)) => {
                tracing::info!(runner = %self.record.runner_id, "runner leaving on purpose");
                self.leaving
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            }
            Some(Body::Heartbeat(_))
            | Some(Body::Hello(_))
            | Some(Body::OffsetsReply(_))
            | Some(Body::ValidateReply(_))
            | Some(Body::TapRecords(_))
            | None => Ok(()),
        }
    }

    /// This runner's stored assignment: its bytes (for a write conditioned
    /// on it) and the record.
    async fn stored_assignment(&self) -> Result<Option<(Vec<u8>, AssignmentRecord)>> {
        let Some(raw) = self
            .store
            .get(&keys::assignment(&self.record.runner_id))
            .await?
        else {
            return Ok(None);
        };
        let assignment = serde_json::from_slice(&raw)?;
        Ok(Some((raw, assignment)))
    }

    /// This runner's stored assignment, as read, if it lists task `task` of
    /// `connector`: a write conditioned on it lands only while it still does.
    async fn assignment_listing(
        &self,
        connector: &str,
        task: i32,
        listed: Listed,
    ) -> Result<Option<Vec<u8>>> {
        let Some((raw, assignment)) = self.stored_assignment().await? else {
            return Ok(None);
        };
        Ok(listed.includes(&assignment, connector, task).then_some(raw))
    }

    /// Records a sink task's claim: it now holds what it asked for that no
    /// other task of its connector holds, and nothing else. Only while the
    /// task is in this runner's assignment (the two-step handover makes that
    /// one runner at a time), in one transaction over the connector's whole
    /// claims record, so two tasks never both hold a partition.
    async fn claim_partitions(
        &self,
        claim: pb::ClaimPartitions,
    ) -> Result<BTreeSet<(String, i32)>> {
        let wanted: BTreeSet<(String, i32)> = claim
            .partitions
            .into_iter()
            .map(|p| (p.topic, p.partition))
            .collect();
        let assignment_key = keys::assignment(&self.record.runner_id);
        let claims_key = keys::claims(&claim.connector);
        loop {
            let Some(raw_assignment) = self
                .assignment_listing(&claim.connector, claim.task, Listed::Assigned)
                .await?
            else {
                return Err(crate::error::Error::Conflict(format!(
                    "task {}-{} is not assigned to runner {}",
                    claim.connector, claim.task, self.record.runner_id
                )));
            };
            let raw_claims = self.store.get(&claims_key).await?;
            let mut claims: ClaimsRecord = match &raw_claims {
                Some(raw) => serde_json::from_slice(raw)?,
                None => ClaimsRecord::default(),
            };
            let others = claims.held_by_others(claim.task);
            let granted: BTreeSet<(String, i32)> = wanted.difference(&others).cloned().collect();
            if claims.tasks.get(&claim.task) == Some(&granted) {
                return Ok(granted);
            }
            if granted.is_empty() {
                claims.tasks.remove(&claim.task);
            } else {
                claims.tasks.insert(claim.task, granted.clone());
            }
            let unchanged = match raw_claims {
                Some(raw) => Condition::ValueEquals(claims_key.clone(), raw),
                None => Condition::Absent(claims_key.clone()),
            };
            let txn = Txn::new()
                .when(Condition::Present(keys::connector_config(&claim.connector)))
                .when(Condition::ValueEquals(
                    assignment_key.clone(),
                    raw_assignment,
                ))
                .when(unchanged)
                .put(claims_key.clone(), to_json(&claims)?);
            if self.store.txn(txn).await? {
                return Ok(granted);
            }
            if self
                .store
                .get(&keys::connector_config(&claim.connector))
                .await?
                .is_none()
            {
                return Err(crate::error::Error::NotFound(format!(
                    "Connector {} not found",
                    claim.connector
                )));
            }
        }
    }

    /// Stores the tasks the runner runs after applying an assignment, while
    /// this session is still the runner's: the leader hands a task to
    /// another runner only once its old owner no longer lists it.
    async fn record_applied(&self, applied: pb::Applied) -> Result<()> {
        let record = AppliedRecord {
            epoch: applied.epoch,
            tasks: applied
                .tasks
                .into_iter()
                .map(|t| TaskId {
                    connector: t.connector,
                    task: t.task,
                })
                .collect(),
        };
        let txn = Txn::new()
            .when(Condition::ValueEquals(
                keys::runner(&self.record.runner_id),
                to_json(&self.record)?,
            ))
            .put(keys::applied(&self.record.runner_id), to_json(&record)?);
        self.store.txn(txn).await?;
        Ok(())
    }

    /// Merges reported offsets into `offsets/{connector}`, per partition.
    /// A concurrent report from another task may land first: then merge
    /// again into what it wrote.
    async fn record_offsets(&self, report: pb::OffsetsReport) -> Result<()> {
        let key = keys::offsets(&report.connector);
        let connector_key = keys::connector_config(&report.connector);
        let reported: Vec<(serde_json::Value, serde_json::Value)> = report
            .offsets
            .iter()
            .filter_map(|reported| {
                Some((
                    serde_json::from_str(&reported.partition_json).ok()?,
                    serde_json::from_str(&reported.offset_json).ok()?,
                ))
            })
            .collect();
        loop {
            let previous = self.store.get(&key).await?;
            let mut entries: Vec<OffsetEntry> = match &previous {
                Some(bytes) => serde_json::from_slice(bytes)?,
                None => Vec::new(),
            };
            for (partition, offset) in &reported {
                match entries.iter_mut().find(|e| &e.partition == partition) {
                    Some(entry) => entry.offset = offset.clone(),
                    None => entries.push(OffsetEntry {
                        partition: partition.clone(),
                        offset: offset.clone(),
                    }),
                }
            }
            let unchanged = match previous {
                Some(bytes) => Condition::ValueEquals(key.clone(), bytes),
                None => Condition::Absent(key.clone()),
            };
            let txn = Txn::new()
                .when(Condition::Present(connector_key.clone()))
                .when(unchanged)
                .put(key.clone(), to_json(&entries)?);
            if self.store.txn(txn).await? || self.store.get(&connector_key).await?.is_none() {
                return Ok(());
            }
        }
    }

    /// The runner's assignment as stored, if the connector instance `name`
    /// is part of it, and the connector's generation is `generation`.
    async fn hosting(&self, name: &str, generation: u64) -> Result<Option<Vec<u8>>> {
        let Some((raw, assignment)) = self.stored_assignment().await? else {
            return Ok(None);
        };
        let current = read_json::<u64>(&self.store, &keys::connector_generation(name)).await?;
        let hosts = assignment.connectors.iter().any(|c| c == name);
        Ok((hosts && current == Some(generation)).then_some(raw))
    }

    /// Stores the task configs a connector instance made, if they differ
    /// from the stored ones, and only while the instance is still this
    /// runner's and its generation current: a late answer from an instance
    /// that was moved, restarted or reconfigured since is dropped.
    async fn record_task_configs(&self, report: pb::TaskConfigsReport) -> Result<()> {
        let name = &report.connector;
        let configs: Vec<ConfigMap> = report
            .configs
            .into_iter()
            .map(|task| task.config.into_iter().collect())
            .collect();
        loop {
            let Some(raw_assignment) = self.hosting(name, report.generation).await? else {
                tracing::debug!(connector = %name, generation = report.generation, "ignoring task configs from a stale connector instance");
                return Ok(());
            };
            let stored = read_json::<TaskConfigsRecord>(&self.store, &keys::task_configs(name))
                .await?
                .unwrap_or_default();
            if stored.configs == configs && stored.generation == report.generation {
                return Ok(());
            }
            let record = TaskConfigsRecord {
                generation: report.generation,
                configs: configs.clone(),
            };
            let mut txn = Txn::new()
                .when(Condition::ValueEquals(
                    keys::assignment(&self.record.runner_id),
                    raw_assignment,
                ))
                .when(Condition::ValueEquals(
                    keys::connector_generation(name),
                    to_json(&report.generation)?,
                ))
                .put(keys::task_configs(name), to_json(&record)?);
            for task in configs.len()..stored.configs.len() {
                txn = txn.delete(keys::task_status(name, task as i32));
            }
            if self.store.txn(txn).await? {
                tracing::info!(connector = %name, tasks = configs.len(), generation = report.generation, "task configs written");
                return Ok(());
            }
        }
    }

    /// Writes the state of a connector instance this runner hosts.
    async fn record_connector_status(&self, report: pb::ConnectorStatusReport) -> Result<()> {
        let name = &report.connector;
        let state = match pb::ConnectorState::try_from(report.state) {
            Ok(pb::ConnectorState::Running) => InstanceState::Running,
            Ok(pb::ConnectorState::Paused) => InstanceState::Paused,
            Ok(pb::ConnectorState::Failed) => InstanceState::Failed,
            Ok(pb::ConnectorState::Unassigned) | Err(_) => InstanceState::Unassigned,
        };
        let status = to_json(&StatusRecord {
            state,
            worker_id: self.record.runner_id.clone(),
            trace: report.trace,
            epoch: 0,
        })?;
        loop {
            let Some(raw_assignment) = self.hosting(name, report.generation).await? else {
                return Ok(());
            };
            let txn = Txn::new()
                .when(Condition::ValueEquals(
                    keys::assignment(&self.record.runner_id),
                    raw_assignment,
                ))
                .when(Condition::ValueEquals(
                    keys::connector_generation(name),
                    to_json(&report.generation)?,
                ))
                .put(keys::connector_status(name), status.clone());
            if self.store.txn(txn).await? {
                return Ok(());
            }
        }
    }

    /// The stored form of a task's status as this runner reported it.
    fn status_record(&self, report: &pb::TaskStatusReport) -> Result<Vec<u8>> {
        let state = match pb::TaskState::try_from(report.state) {
            Ok(pb::TaskState::Running) => InstanceState::Running,
            Ok(pb::TaskState::Paused) => InstanceState::Paused,
            Ok(pb::TaskState::Failed) => InstanceState::Failed,
            Ok(pb::TaskState::Unassigned) | Err(_) => InstanceState::Unassigned,
        };
        to_json(&StatusRecord {
            state,
            worker_id: self.record.runner_id.clone(),
            trace: report.trace.clone(),
            epoch: report.epoch,
        })
    }

    /// Writes a task's status, but only while this runner owns the task, so a
    /// late report from a previous owner cannot overwrite the new one's.
    async fn record_status(&self, report: pb::TaskStatusReport) -> Result<()> {
        let runner = &self.record.runner_id;
        let assignment_key = keys::assignment(runner);
        let status = self.status_record(&report)?;
        // Written only if the task is still assigned here (or being revoked,
        // not yet confirmed stopped) when the write lands. The leader may rewrite this runner's assignment (adding
        // another task) between the read and the write: then read again.
        loop {
            let Some(raw_assignment) = self
                .assignment_listing(&report.connector, report.task, Listed::OrRevoking)
                .await?
            else {
                tracing::debug!(%runner, connector = %report.connector, task = report.task, "ignoring status for a task not assigned here");
                return Ok(());
            };
            let connector_key = keys::connector_config(&report.connector);
            let txn = Txn::new()
                .when(Condition::Present(connector_key.clone()))
                .when(Condition::ValueEquals(
                    assignment_key.clone(),
                    raw_assignment,
                ))
                .put(
                    keys::task_status(&report.connector, report.task),
                    status.clone(),
                );
            if self.store.txn(txn).await? {
                return Ok(());
            }
            if self.store.get(&connector_key).await?.is_none() {
                return Ok(());
            }
        }
    }
}

/// Which tasks of a runner's stored assignment count as its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listed {
    /// Only the tasks it runs now (what a claim needs).
    Assigned,
    /// Also the tasks being taken away that it has not confirmed stopped:
    /// no other runner has them yet, and the leader may give them back
    /// before the runner ever sees the revoke, so a status it reports for
    /// one is still true and may be the only one it sends.
    OrRevoking,
}

impl Listed {
    /// Whether `assignment` counts task `task` of `connector` as the runner's.
    fn includes(self, assignment: &AssignmentRecord, connector: &str, task: i32) -> bool {
        let is_it = |t: &TaskId| t.connector == connector && t.task == task;
        assignment.tasks.iter().any(is_it)
            || (self == Listed::OrRevoking && assignment.revoking.iter().any(is_it))
    }
}

/// State reports a session could not write yet: only the latest of each
/// (one `Applied`, one status per task and per connector).
#[derive(Default)]
struct DroppedReports {
    applied: Option<pb::RunnerMessage>,
    statuses: BTreeMap<(String, i32), pb::RunnerMessage>,
    connector_statuses: BTreeMap<String, pb::RunnerMessage>,
}

impl DroppedReports {
    fn is_empty(&self) -> bool {
        self.applied.is_none() && self.statuses.is_empty() && self.connector_statuses.is_empty()
    }

    /// Keeps a state report; false for any other message.
    fn keep(&mut self, message: pb::RunnerMessage) -> bool {
        match &message.body {
            Some(Body::Applied(_)) => self.applied = Some(message),
            Some(Body::TaskStatus(report)) => {
                let key = (report.connector.clone(), report.task);
                self.statuses.insert(key, message);
            }
            Some(Body::ConnectorStatus(report)) => {
                let key = report.connector.clone();
                self.connector_statuses.insert(key, message);
            }
            _ => return false,
        }
        true
    }

    /// Forgets a kept report that `newer` replaces.
    fn superseded_by(&mut self, newer: &pb::RunnerMessage) {
        match &newer.body {
            Some(Body::Applied(_)) => self.applied = None,
            Some(Body::TaskStatus(report)) => {
                self.statuses
                    .remove(&(report.connector.clone(), report.task));
            }
            Some(Body::ConnectorStatus(report)) => {
                self.connector_statuses.remove(&report.connector);
            }
            _ => {}
        }
    }

    fn take(&mut self) -> Vec<pb::RunnerMessage> {
        let mut all: Vec<pb::RunnerMessage> = self.applied.take().into_iter().collect();
        all.extend(std::mem::take(&mut self.statuses).into_values());
        all.extend(std::mem::take(&mut self.connector_statuses).into_values());
        all
    }
}

/// Reads a runner's stream: answers each heartbeat at once (echoing its
/// number, while this coordinator's own store session is valid) and passes
/// every other message on. Ends when the stream ends or the runner is
/// silent for three heartbeat intervals.
async fn read_runner(
    mut inbound: Streaming<pb::RunnerMessage>,
    outbound: mpsc::Sender<Outbound>,
    store: Store,
    messages: mpsc::UnboundedSender<pb::RunnerMessage>,
    runner: String,
    session: String,
    links: RunnerLinks,
) {
    loop {
        let message = match tokio::time::timeout(HEARTBEAT_INTERVAL * 3, inbound.message()).await {
            Err(_) => {
                tracing::warn!(%runner, "runner missed its heartbeats");
                return;
            }
            Ok(Err(status)) => {
                tracing::info!(%runner, %status, "runner stream ended");
                return;
            }
            Ok(Ok(None)) => return,
            Ok(Ok(Some(message))) => message,
        };
        match message.body {
            Some(Body::OffsetsReply(reply)) => {
                links.answered(reply.id, RunnerAnswer::Offsets(reply))
            }
            Some(Body::ValidateReply(reply)) => {
                links.answered(reply.id, RunnerAnswer::Validate(reply))
            }
            Some(Body::TapRecords(records)) => {
                let id = records.id;
                if !links.tapped(&session, records) {
                    // A tap that ended here while its stop was lost.
                    let _ = outbound.try_send(Ok(tap_stop(id)));
                }
            }
            Some(Body::Heartbeat(beat)) => {
                // A coordinator that may have lost its store session must
                // not renew a runner's lease (the leader may be moving its
                // tasks): it ends the session, and the runner joins another.
                if !store.session_valid() {
                    tracing::warn!(%runner, "this coordinator's store session is in doubt; ending the runner's session");
                    return;
                }
                let answer = pb::CoordinatorMessage {
                    body: Some(pb::coordinator_message::Body::Heartbeat(pb::Heartbeat {
                        seq: beat.seq,
                    })),
                };
                if outbound.send(Ok(answer)).await.is_err() {
                    return;
                }
            }
            _ => {
                if messages.send(message).is_err() {
                    return;
                }
            }
        }
    }
}

/// Builds the assignment message for `runner` from the leader's placement,
/// the connector configs and generations, task configs, target states and
/// restart generations.
pub async fn assignment_for(store: &Store, runner: &str) -> Result<Option<pb::Assignment>> {
    // From the store's watched copy: the session reads after the watch woke
    // it, and the copy already holds what woke it (at 1,000 connectors a
    // read from etcd took 200 ms and delayed every move).
    let Some(record) = store
        .get_many_recent(&[keys::assignment(runner)])
        .await?
        .pop()
        .flatten()
        .map(|raw| serde_json::from_slice::<AssignmentRecord>(&raw))
        .transpose()?
    else {
        return Ok(None);
    };
    struct Connector {
        config: ConfigMap,
        target: TargetState,
        generation: u64,
        tasks: TaskConfigsRecord,
    }
    fn decode<T: serde::de::DeserializeOwned>(bytes: Option<Vec<u8>>) -> Result<Option<T>> {
        bytes
            .map(|bytes| serde_json::from_slice(&bytes))
            .transpose()
            .map_err(Into::into)
    }
    let wire_target = |target: TargetState| match target {
        TargetState::Running => Some(pb::TargetState::Running),
        TargetState::Paused => Some(pb::TargetState::Paused),
        TargetState::Stopped => None,
    };
    // Every key the assignment needs, read together: four per connector and
    // one per task, in one round trip per hundred, not one each.
    let names: std::collections::BTreeSet<&String> = record
        .connectors
        .iter()
        .chain(record.tasks.iter().map(|t| &t.connector))
        .collect();
    let mut wanted = Vec::with_capacity(names.len() * 4 + record.tasks.len());
    for name in &names {
        wanted.push(keys::connector_config(name));
        wanted.push(keys::connector_target(name));
        wanted.push(keys::connector_generation(name));
        wanted.push(keys::task_configs(name));
    }
    for task in &record.tasks {
        wanted.push(keys::task_restart(&task.connector, task.task));
    }
    let mut values = store.get_many_recent(&wanted).await?.into_iter();
    let mut next = || values.next().flatten();
    let mut connectors: BTreeMap<String, Option<Connector>> = BTreeMap::new();
    for name in names {
        let (config, target, generation, tasks) = (next(), next(), next(), next());
        let connector = match decode::<ConfigMap>(config)? {
            None => None,
            Some(config) => Some(Connector {
                config,
                target: decode::<TargetRecord>(target)?.map_or(TargetState::Running, |t| t.state),
                generation: decode(generation)?.unwrap_or(0),
                tasks: decode(tasks)?.unwrap_or_default(),
            }),
        };
        connectors.insert(name.clone(), connector);
    }
    let mut restart_generations = Vec::with_capacity(record.tasks.len());
    for _ in &record.tasks {
        restart_generations.push(decode::<u64>(next())?.unwrap_or(0));
    }
    let mut instances = Vec::new();
    for name in &record.connectors {
        let Some(Some(connector)) = connectors.get(name) else {
            continue;
        };
        let Some(target_state) = wire_target(connector.target) else {
            continue;
        };
        instances.push(pb::ConnectorAssignment {
            name: name.clone(),
            config: connector.config.clone().into_iter().collect(),
            target_state: target_state as i32,
            generation: connector.generation,
        });
    }
    let mut tasks = Vec::new();
    for (task, restart_generation) in record.tasks.into_iter().zip(restart_generations) {
        let Some(Some(connector)) = connectors.get(&task.connector) else {
            continue;
        };
        let Some(task_config) = usize::try_from(task.task)
            .ok()
            .and_then(|i| connector.tasks.configs.get(i))
        else {
            continue;
        };
        let Some(target_state) = wire_target(connector.target) else {
            continue;
        };
        tasks.push(pb::TaskAssignment {
            connector: task.connector,
            task: task.task,
            config: task_config.clone().into_iter().collect(),
            target_state: target_state as i32,
            restart_generation,
            task_count: connector.tasks.configs.len() as i32,
        });
    }
    Ok(Some(pb::Assignment {
        epoch: record.epoch,
        tasks,
        connectors: instances,
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use async_trait::async_trait;
    use tokio::sync::watch;

    use super::*;

    #[test]
    fn session_timing_parses_through_its_definition() {
        assert_eq!(
            SessionTiming::default(),
            SessionTiming {
                session_timeout: Duration::from_secs(6),
                restart_grace: Duration::from_secs(10),
            }
        );
        let config = |pairs: &[(&str, &str)]| -> ConfigMap {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(
            SessionTiming::from_config(&config(&[
                ("session.timeout.ms", "3000"),
                ("scheduled.rebalance.max.delay.ms", "0")
            ])),
            Ok(SessionTiming {
                session_timeout: Duration::from_secs(3),
                restart_grace: Duration::ZERO,
            })
        );
        assert_eq!(
            SessionTiming::from_config(&config(&[("session.timeout.ms", "1000")])),
            Err("Invalid value 1000 for configuration session.timeout.ms: Value must be at least 2000".to_owned())
        );
        assert_eq!(
            SessionTiming::from_config(&config(&[("scheduled.rebalance.max.delay.ms", "soon")])),
            Err("Invalid value soon for configuration scheduled.rebalance.max.delay.ms: Not a number of type LONG".to_owned())
        );
    }
    use crate::error::Error;
    use crate::store::{KvStore, LocalStore};

    /// A local store whose writes fail while `down` is set (an etcd outage).
    struct OutageStore {
        inner: LocalStore,
        down: AtomicBool,
        /// Transactions tried.
        txns: std::sync::atomic::AtomicUsize,
    }

    impl OutageStore {
        fn check(&self) -> Result<()> {
            if self.down.load(Ordering::SeqCst) {
                Err(Error::Store("etcd unavailable".into()))
            } else {
                Ok(())
            }
        }
    }

    #[async_trait]
    impl KvStore for OutageStore {
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
            self.check()?;
            self.inner.get(key).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
            self.check()?;
            self.inner.list(prefix).await
        }
        async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
            self.check()?;
            self.inner.put(key, value).await
        }
        async fn delete(&self, key: &str) -> Result<()> {
            self.check()?;
            self.inner.delete(key).await
        }
        async fn txn(&self, txn: Txn) -> Result<bool> {
            self.txns.fetch_add(1, Ordering::SeqCst);
            self.check()?;
            self.inner.txn(txn).await
        }
        async fn create_ephemeral(&self, key: &str, value: Vec<u8>) -> Result<bool> {
            self.check()?;
            self.inner.create_ephemeral(key, value).await
        }
        async fn put_ephemeral(&self, key: &str, value: Vec<u8>) -> Result<()> {
            self.check()?;
            self.inner.put_ephemeral(key, value).await
        }
        fn changes(&self) -> watch::Receiver<u64> {
            self.inner.changes()
        }
        async fn close(&self) -> Result<()> {
            self.inner.close().await
        }
    }

    fn applied(epoch: u64, tasks: &[i32]) -> pb::RunnerMessage {
        pb::RunnerMessage {
            body: Some(Body::Applied(pb::Applied {
                epoch,
                tasks: tasks
                    .iter()
                    .map(|task| pb::TaskRef {
                        connector: "c".into(),
                        task: *task,
                    })
                    .collect(),
            })),
        }
    }

    async fn session() -> (Session, Arc<OutageStore>) {
        let outage = Arc::new(OutageStore {
            inner: LocalStore::in_memory(),
            down: AtomicBool::new(false),
            txns: std::sync::atomic::AtomicUsize::new(0),
        });
        let store: Store = outage.clone();
        let record = RunnerRecord {
            runner_id: "r1".into(),
            coordinator_id: "c1".into(),
            session: "s1".into(),
            kafka_cluster_id: String::new(),
            instance: "i1".into(),
        };
        store
            .put(&keys::runner("r1"), to_json(&record).unwrap())
            .await
            .unwrap();
        let (outbound, _) = mpsc::channel(8);
        let session = Session {
            store,
            record,
            timing: SessionTiming::default(),
            links: RunnerLinks::default(),
            outbound,
            leaving: std::sync::atomic::AtomicBool::new(false),
        };
        (session, outage)
    }

    async fn stored_applied(store: &OutageStore) -> Option<AppliedRecord> {
        store
            .inner
            .get(&keys::applied("r1"))
            .await
            .unwrap()
            .map(|raw| serde_json::from_slice(&raw).unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn an_applied_report_outliving_the_retries_is_written_once_the_store_is_back() {
        let (session, store) = session().await;
        let mut dropped = DroppedReports::default();
        // An outage longer than the retries (10 s): the revoke's Applied
        // cannot be written.
        store.down.store(true, Ordering::SeqCst);
        session
            .handle_retrying(applied(7, &[0]), &mut dropped)
            .await;
        assert!(!dropped.is_empty(), "the report is kept, not dropped");
        session.retry_dropped(&mut dropped).await;
        assert!(stored_applied(&store).await.is_none());
        store.down.store(false, Ordering::SeqCst);
        session.retry_dropped(&mut dropped).await;
        let written = stored_applied(&store)
            .await
            .expect("written after the outage");
        assert_eq!(written.epoch, 7);
        assert!(dropped.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_report_never_overwrites_a_newer_one() {
        let (session, store) = session().await;
        let mut dropped = DroppedReports::default();
        store.down.store(true, Ordering::SeqCst);
        session
            .handle_retrying(applied(7, &[0, 1]), &mut dropped)
            .await;
        store.down.store(false, Ordering::SeqCst);
        session
            .handle_retrying(applied(8, &[0]), &mut dropped)
            .await;
        session.retry_dropped(&mut dropped).await;
        assert_eq!(stored_applied(&store).await.map(|a| a.epoch), Some(8));
    }

    fn claim(task: i32, partitions: &[(&str, i32)]) -> pb::ClaimPartitions {
        pb::ClaimPartitions {
            id: 1,
            connector: "c".into(),
            task,
            partitions: partitions
                .iter()
                .map(|(topic, partition)| pb::TopicPartition {
                    topic: (*topic).to_owned(),
                    partition: *partition,
                })
                .collect(),
        }
    }

    fn held(partitions: &[(&str, i32)]) -> BTreeSet<(String, i32)> {
        partitions
            .iter()
            .map(|(t, p)| ((*t).to_owned(), *p))
            .collect()
    }

    /// Connector `c` exists and runner r1 is assigned `tasks` of it.
    async fn assigned(store: &OutageStore, tasks: &[i32]) {
        store
            .inner
            .put(&keys::connector_config("c"), b"{}".to_vec())
            .await
            .unwrap();
        let assignment = AssignmentRecord {
            epoch: 1,
            tasks: tasks
                .iter()
                .map(|task| TaskId {
                    connector: "c".into(),
                    task: *task,
                })
                .collect(),
            connectors: Vec::new(),
            revoking: Vec::new(),
        };
        store
            .inner
            .put(&keys::assignment("r1"), to_json(&assignment).unwrap())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_partition_another_task_holds_is_granted_only_once_that_task_released_it() {
        let (session, store) = session().await;
        assigned(&store, &[0, 1]).await;
        let granted = session
            .claim_partitions(claim(0, &[("t", 0), ("t", 1)]))
            .await
            .unwrap();
        assert_eq!(granted, held(&[("t", 0), ("t", 1)]));
        // Task 1 now wants partition 1 too (it saw a new task count first).
        let granted = session
            .claim_partitions(claim(1, &[("t", 1), ("t", 2)]))
            .await
            .unwrap();
        assert_eq!(granted, held(&[("t", 2)]), "t-1 is still task 0's");
        // Task 0 committed and released t-1: task 1 gets it on its next claim.
        session
            .claim_partitions(claim(0, &[("t", 0)]))
            .await
            .unwrap();
        let granted = session
            .claim_partitions(claim(1, &[("t", 1), ("t", 2)]))
            .await
            .unwrap();
        assert_eq!(granted, held(&[("t", 1), ("t", 2)]));
    }

    #[tokio::test]
    async fn a_task_not_assigned_to_the_runner_cannot_claim() {
        let (session, store) = session().await;
        assigned(&store, &[0]).await;
        let refused = session.claim_partitions(claim(1, &[("t", 0)])).await;
        assert!(matches!(refused, Err(Error::Conflict(_))), "{refused:?}");
        assert!(store.inner.get(&keys::claims("c")).await.unwrap().is_none());
    }

    async fn stored_task_status(store: &OutageStore, task: i32) -> Option<StatusRecord> {
        store
            .inner
            .get(&keys::task_status("c", task))
            .await
            .unwrap()
            .map(|raw| serde_json::from_slice(&raw).unwrap())
    }

    async fn store_assignment(store: &OutageStore, epoch: u64, tasks: &[i32], revoking: &[i32]) {
        let ids = |tasks: &[i32]| {
            tasks
                .iter()
                .map(|task| TaskId {
                    connector: "c".into(),
                    task: *task,
                })
                .collect()
        };
        let assignment = AssignmentRecord {
            epoch,
            tasks: ids(tasks),
            connectors: Vec::new(),
            revoking: ids(revoking),
        };
        store
            .inner
            .put(&keys::assignment("r1"), to_json(&assignment).unwrap())
            .await
            .unwrap();
    }

    fn running(task: i32, epoch: u64) -> pb::TaskStatusReport {
        pb::TaskStatusReport {
            connector: "c".into(),
            task,
            state: pb::TaskState::Running as i32,
            trace: String::new(),
            epoch,
        }
    }

    /// Issue 21: the leader took task 0 away (epoch 2) and gave it back
    /// (epoch 3) before the runner saw either; the runner's one RUNNING
    /// report arrived in between and must not be lost.
    #[tokio::test]
    async fn a_status_reported_while_the_task_is_being_revoked_is_recorded() {
        let (session, store) = session().await;
        assigned(&store, &[0]).await;
        store_assignment(&store, 2, &[], &[0]).await;
        session.record_status(running(0, 1)).await.unwrap();
        store_assignment(&store, 3, &[0], &[]).await;
        let status = stored_task_status(&store, 0).await.expect("recorded");
        assert_eq!(status.state, InstanceState::Running);
        assert_eq!(status.worker_id, "r1");
        // A task neither assigned nor being revoked here is still ignored.
        session.record_status(running(1, 1)).await.unwrap();
        assert!(stored_task_status(&store, 1).await.is_none());
    }

    #[tokio::test]
    async fn a_task_being_revoked_cannot_claim() {
        let (session, store) = session().await;
        assigned(&store, &[]).await;
        store_assignment(&store, 2, &[], &[0]).await;
        let refused = session.claim_partitions(claim(0, &[("t", 0)])).await;
        assert!(matches!(refused, Err(Error::Conflict(_))), "{refused:?}");
    }

    /// Issue 21: a runner starting many tasks reports them all at once.
    /// Their statuses are written in one transaction, the latest of each
    /// task; with a task not assigned here among them, the others still
    /// land (each on its own) and that one is still ignored.
    #[tokio::test]
    async fn queued_statuses_are_written_together_and_one_not_assigned_here_is_ignored() {
        let (session, store) = session().await;
        assigned(&store, &[0, 1, 2]).await;
        let status = |report| pb::RunnerMessage {
            body: Some(Body::TaskStatus(report)),
        };
        let mut failed = running(1, 1);
        failed.state = pb::TaskState::Failed as i32;
        let mut dropped = DroppedReports::default();
        let before = store.txns.load(Ordering::SeqCst);
        session
            .handle_queued(
                vec![
                    status(running(0, 1)),
                    status(running(1, 1)),
                    status(failed),
                    status(running(2, 1)),
                ],
                &mut dropped,
            )
            .await;
        assert_eq!(
            store.txns.load(Ordering::SeqCst) - before,
            1,
            "one transaction"
        );
        let store = &store;
        let state = |task| async move { stored_task_status(store, task).await.map(|s| s.state) };
        assert_eq!(state(0).await, Some(InstanceState::Running));
        assert_eq!(
            state(1).await,
            Some(InstanceState::Failed),
            "the latest report wins"
        );
        assert_eq!(state(2).await, Some(InstanceState::Running));

        let mut paused = running(0, 1);
        paused.state = pb::TaskState::Paused as i32;
        session
            .handle_queued(vec![status(paused), status(running(5, 1))], &mut dropped)
            .await;
        assert_eq!(state(0).await, Some(InstanceState::Paused));
        assert_eq!(state(5).await, None, "task 5 is not this runner's");
        assert!(dropped.is_empty());
    }
}
