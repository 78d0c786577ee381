//! The control service: one bidirectional `Join` stream per runner. While
//! the stream lives the runner is registered under `runners/{id}` with its
//! plugins under `plugins/{id}`; its assignment (computed by the leader) is
//! pushed whenever the state changes. What it reports is written to the
//! store only while it still owns what it reports on: task and connector
//! status, the task configs its connector instances make, offsets, topics.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use weir_connect::config::ConfigMap;
use weir_proto::control::v1 as pb;
use weir_proto::control::v1::control_server::Control;
use weir_proto::control::v1::runner_message::Body;

use crate::admin::{read_json, to_json};
use crate::error::Result;
use crate::keys;
use crate::model::{
    AssignmentRecord, InstanceState, OffsetEntry, RunnerRecord, StatusRecord, TargetRecord,
    TargetState, TaskConfigsRecord,
};
use crate::store::{Condition, Store, Txn};

/// How often runners heartbeat; three missed beats end the session.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct ControlService {
    store: Store,
    coordinator_id: String,
}

impl ControlService {
    pub fn new(store: Store, coordinator_id: String) -> Self {
        ControlService {
            store,
            coordinator_id,
        }
    }
}

type Outbound = std::result::Result<pb::CoordinatorMessage, Status>;

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
        let (outbound, receiver) = mpsc::channel(16);
        let session = Session {
            store: self.store.clone(),
            record: RunnerRecord {
                runner_id: hello.runner_id,
                coordinator_id: self.coordinator_id.clone(),
                session: uuid::Uuid::new_v4().to_string(),
                kafka_cluster_id: hello.kafka_cluster_id,
            },
            plugins: crate::plugins::encode(hello.plugins),
            outbound,
        };
        tokio::spawn(session.run(inbound));
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}

struct Session {
    store: Store,
    record: RunnerRecord,
    /// The runner's plugins, encoded for `plugins/{runner}`.
    plugins: Vec<u8>,
    outbound: mpsc::Sender<Outbound>,
}

impl Session {
    async fn run(self, mut inbound: Streaming<pb::RunnerMessage>) {
        let runner = self.record.runner_id.clone();
        if let Err(error) = self.serve(&mut inbound).await {
            tracing::warn!(%runner, %error, "runner session failed");
        }
        let key = keys::runner(&runner);
        let leave = match to_json(&self.record) {
            Ok(mine) => {
                self.store
                    .txn(
                        Txn::new()
                            .when(Condition::ValueEquals(key, mine))
                            .delete(keys::runner(&runner))
                            .delete(keys::plugins(&runner)),
                    )
                    .await
            }
            Err(error) => Err(error),
        };
        if let Err(error) = leave {
            tracing::warn!(%runner, %error, "could not deregister runner");
        }
        tracing::info!(%runner, "runner left");
    }

    async fn serve(&self, inbound: &mut Streaming<pb::RunnerMessage>) -> Result<()> {
        let runner = &self.record.runner_id;
        // Plugins first: once the leader sees the runner, it can place work on it.
        self.store
            .put_ephemeral(&keys::plugins(runner), self.plugins.clone())
            .await?;
        self.store
            .put_ephemeral(&keys::runner(runner), to_json(&self.record)?)
            .await?;
        tracing::info!(%runner, "runner joined");
        let welcome = pb::CoordinatorMessage {
            body: Some(pb::coordinator_message::Body::Welcome(pb::Welcome {
                coordinator_id: self.record.coordinator_id.clone(),
                protocol_version: pb::PROTOCOL_VERSION,
                heartbeat_interval_ms: HEARTBEAT_INTERVAL.as_millis() as u32,
            })),
        };
        if self.outbound.send(Ok(welcome)).await.is_err() {
            return Ok(());
        }
        let mut changes = self.store.changes();
        let mut last_sent: Option<pb::Assignment> = None;
        let mut silent_after = tokio::time::Instant::now() + HEARTBEAT_INTERVAL * 3;
        let mut beat = tokio::time::interval(HEARTBEAT_INTERVAL);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut assignment = assignment_for(&self.store, runner).await?;
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
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                }
                // Only the runner's own messages move this deadline.
                () = tokio::time::sleep_until(silent_after) => {
                    tracing::warn!(%runner, "runner missed its heartbeats");
                    return Ok(());
                }
                _ = beat.tick() => {
                    let heartbeat = pb::CoordinatorMessage {
                        body: Some(pb::coordinator_message::Body::Heartbeat(pb::Heartbeat {})),
                    };
                    if self.outbound.send(Ok(heartbeat)).await.is_err() {
                        return Ok(());
                    }
                }
                message = inbound.message() => match message {
                    Err(status) => {
                        tracing::info!(%runner, %status, "runner stream ended");
                        return Ok(());
                    }
                    Ok(None) => return Ok(()),
                    Ok(Some(message)) => {
                        silent_after = tokio::time::Instant::now() + HEARTBEAT_INTERVAL * 3;
                        self.handle(message).await?;
                    }
                },
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
            Some(Body::Heartbeat(_)) | Some(Body::Hello(_)) | None => Ok(()),
        }
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
        let Some(raw) = self
            .store
            .get(&keys::assignment(&self.record.runner_id))
            .await?
        else {
            return Ok(None);
        };
        let assignment: AssignmentRecord = serde_json::from_slice(&raw)?;
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

    /// Writes a task's status, but only while this runner owns the task, so a
    /// late report from a previous owner cannot overwrite the new one's.
    async fn record_status(&self, report: pb::TaskStatusReport) -> Result<()> {
        let runner = &self.record.runner_id;
        let assignment_key = keys::assignment(runner);
        let state = match pb::TaskState::try_from(report.state) {
            Ok(pb::TaskState::Running) => InstanceState::Running,
            Ok(pb::TaskState::Paused) => InstanceState::Paused,
            Ok(pb::TaskState::Failed) => InstanceState::Failed,
            Ok(pb::TaskState::Unassigned) | Err(_) => InstanceState::Unassigned,
        };
        let status = to_json(&StatusRecord {
            state,
            worker_id: runner.clone(),
            trace: report.trace,
            epoch: report.epoch,
        })?;
        // Written only if the task is still assigned here when the write
        // lands. The leader may rewrite this runner's assignment (adding
        // another task) between the read and the write: then read again.
        loop {
            let Some(raw_assignment) = self.store.get(&assignment_key).await? else {
                return Ok(());
            };
            let assignment: AssignmentRecord = serde_json::from_slice(&raw_assignment)?;
            let owns = assignment
                .tasks
                .iter()
                .any(|t| t.connector == report.connector && t.task == report.task);
            if !owns {
                tracing::debug!(%runner, connector = %report.connector, task = report.task, "ignoring status for a task not assigned here");
                return Ok(());
            }
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

/// Builds the assignment message for `runner` from the leader's placement,
/// the connector configs and generations, task configs, target states and
/// restart generations.
pub async fn assignment_for(store: &Store, runner: &str) -> Result<Option<pb::Assignment>> {
    let Some(record) = read_json::<AssignmentRecord>(store, &keys::assignment(runner)).await?
    else {
        return Ok(None);
    };
    struct Connector {
        config: ConfigMap,
        target: TargetState,
        generation: u64,
        tasks: TaskConfigsRecord,
    }
    async fn load(store: &Store, name: &str) -> Result<Option<Connector>> {
        let Some(config) = read_json::<ConfigMap>(store, &keys::connector_config(name)).await?
        else {
            return Ok(None);
        };
        Ok(Some(Connector {
            config,
            target: read_json::<TargetRecord>(store, &keys::connector_target(name))
                .await?
                .map_or(TargetState::Running, |t| t.state),
            generation: read_json(store, &keys::connector_generation(name))
                .await?
                .unwrap_or(0),
            tasks: read_json(store, &keys::task_configs(name))
                .await?
                .unwrap_or_default(),
        }))
    }
    let wire_target = |target: TargetState| match target {
        TargetState::Running => Some(pb::TargetState::Running),
        TargetState::Paused => Some(pb::TargetState::Paused),
        TargetState::Stopped => None,
    };
    let mut connectors: BTreeMap<String, Option<Connector>> = BTreeMap::new();
    let names = record
        .connectors
        .iter()
        .chain(record.tasks.iter().map(|t| &t.connector));
    for name in names {
        if !connectors.contains_key(name) {
            connectors.insert(name.clone(), load(store, name).await?);
        }
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
    for task in record.tasks {
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
        let restart_generation =
            read_json::<u64>(store, &keys::task_restart(&task.connector, task.task))
                .await?
                .unwrap_or(0);
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
