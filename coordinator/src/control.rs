//! The control service: one bidirectional `Join` stream per runner. While
//! the stream lives the runner is registered under `runners/{id}`; its
//! assignment (computed by the leader) is pushed whenever the state changes,
//! and its task status reports are written to the store.

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
        let (outbound, receiver) = mpsc::channel(16);
        let session = Session {
            store: self.store.clone(),
            record: RunnerRecord {
                runner_id: hello.runner_id,
                coordinator_id: self.coordinator_id.clone(),
                session: uuid::Uuid::new_v4().to_string(),
                kafka_cluster_id: hello.kafka_cluster_id,
            },
            outbound,
        };
        tokio::spawn(session.run(inbound));
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}

struct Session {
    store: Store,
    record: RunnerRecord,
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
                            .delete(keys::runner(&runner)),
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
/// the task configs, target states and restart generations.
pub async fn assignment_for(store: &Store, runner: &str) -> Result<Option<pb::Assignment>> {
    let Some(record) = read_json::<AssignmentRecord>(store, &keys::assignment(runner)).await?
    else {
        return Ok(None);
    };
    struct Connector {
        config: ConfigMap,
        target: TargetState,
        tasks: TaskConfigsRecord,
    }
    let mut connectors: BTreeMap<String, Option<Connector>> = BTreeMap::new();
    let mut tasks = Vec::new();
    for task in record.tasks {
        if !connectors.contains_key(&task.connector) {
            let loaded =
                match read_json::<ConfigMap>(store, &keys::connector_config(&task.connector))
                    .await?
                {
                    Some(config) => Some(Connector {
                        config,
                        target: read_json::<TargetRecord>(
                            store,
                            &keys::connector_target(&task.connector),
                        )
                        .await?
                        .map_or(TargetState::Running, |t| t.state),
                        tasks: read_json(store, &keys::task_configs(&task.connector))
                            .await?
                            .unwrap_or_default(),
                    }),
                    None => None,
                };
            connectors.insert(task.connector.clone(), loaded);
        }
        let Some(Some(connector)) = connectors.get(&task.connector) else {
            continue;
        };
        let Some(task_config) = usize::try_from(task.task)
            .ok()
            .and_then(|i| connector.tasks.configs.get(i))
        else {
            continue;
        };
        let target_state = match connector.target {
            TargetState::Running => pb::TargetState::Running,
            TargetState::Paused => pb::TargetState::Paused,
            TargetState::Stopped => continue,
        };
        let mut config = connector.config.clone();
        config.extend(task_config.clone());
        let restart_generation =
            read_json::<u64>(store, &keys::task_restart(&task.connector, task.task))
                .await?
                .unwrap_or(0);
        tasks.push(pb::TaskAssignment {
            connector: task.connector,
            task: task.task,
            config: config.into_iter().collect(),
            target_state: target_state as i32,
            restart_generation,
            task_count: connector.tasks.configs.len() as i32,
        });
    }
    Ok(Some(pb::Assignment {
        epoch: record.epoch,
        tasks,
    }))
}
