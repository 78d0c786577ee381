//! The assignment half of the runner: the connector instances and tasks it
//! hosts ([`Hosted`]), kept equal to the latest assignment a coordinator
//! sent. Applying one ignores it if its epoch is older than the last;
//! otherwise it stops what was removed or changed (a new config, generation,
//! task count or restart generation), starts what was added or changed,
//! and only passes its target state to what is unchanged. It also stops
//! everything once the lease lapses (fencing) and says which assignment to
//! start again when the lease holds again, and it turns what tasks and
//! instances report into control messages, dropping the reports of what it
//! no longer hosts.
//!
//! Starting is left to a [`Launch`] (the real one is
//! [`super::launcher::Launcher`]), so this half runs without a coordinator
//! or plugins in its tests.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use weir_connect::config::ConfigMap;
use weir_proto::control::v1 as pb;

use crate::context::TargetState;
use crate::events::{ConnectorState, InstanceEvent, TaskEvent, TaskId, TaskState};
use crate::lease::Lease;
use crate::metrics::{RunnerMetrics, TaskMetrics};

/// How long a stopping task may take before it is aborted, beyond the three
/// graceful phases it bounds itself (in-flight work, final commit, `stop`).
const TASK_STOP_SLACK: Duration = Duration::from_secs(2);

/// Starts connector instances and tasks for [`Hosted`].
pub(super) trait Launch {
    /// Starts a task's loop; the handle ends when the loop does. `Err` is the
    /// trace the task is reported FAILED with, having never run.
    fn task(&self, start: TaskStart) -> Result<JoinHandle<()>, String>;

    /// Starts a connector instance, its events sent on as
    /// [`TaskEvent::Instance`]; `Err` is the trace it is reported FAILED with.
    fn connector(&self, start: ConnectorStart) -> Result<JoinHandle<()>, String>;
}

/// What a task is started with.
pub(super) struct TaskStart {
    pub key: TaskId,
    /// How many tasks the connector has, at least 1.
    pub task_count: i32,
    /// As assigned: placeholders not yet resolved.
    pub config: ConfigMap,
    pub epoch: u64,
    pub target: watch::Receiver<TargetState>,
    pub cancel: CancellationToken,
    pub events: mpsc::UnboundedSender<TaskEvent>,
    pub metrics: Arc<TaskMetrics>,
}

/// What a connector instance is started with.
pub(super) struct ConnectorStart {
    pub name: String,
    /// As assigned: placeholders not yet resolved.
    pub config: ConfigMap,
    pub generation: u64,
    pub target: watch::Receiver<TargetState>,
    pub cancel: CancellationToken,
    pub events: mpsc::UnboundedSender<TaskEvent>,
}

/// A task this runner hosts: running, or ended (FAILED) and left as it is
/// until its assignment changes.
struct RunningTask {
    config: ConfigMap,
    restart_generation: u64,
    task_count: i32,
    target: watch::Sender<TargetState>,
    cancel: CancellationToken,
    handle: JoinHandle<()>,
}

impl RunningTask {
    /// Whether the task runs as `wanted` asks: a task whose config, task
    /// count or restart generation changed is started again.
    fn is_as(&self, wanted: &pb::TaskAssignment) -> bool {
        self.restart_generation == wanted.restart_generation
            && self.task_count == wanted.task_count
            && self.config == wanted.config.clone().into_iter().collect::<ConfigMap>()
    }
}

/// A connector instance this runner hosts.
struct RunningConnector {
    config: ConfigMap,
    generation: u64,
    target: watch::Sender<TargetState>,
    cancel: CancellationToken,
    handle: JoinHandle<()>,
}

/// The connector instances and tasks a runner hosts, and what it keeps
/// about its assignments.
pub(super) struct Hosted<L> {
    launcher: L,
    runner_id: String,
    tasks: BTreeMap<TaskId, RunningTask>,
    connectors: BTreeMap<String, RunningConnector>,
    /// Last status of each task, re-sent after a reconnect.
    last_status: BTreeMap<TaskId, pb::TaskStatusReport>,
    last_epoch: u64,
    /// The last assignment applied, started again when the lease holds
    /// again after a fence within a live session.
    assignment: Option<pb::Assignment>,
    /// Everything was stopped because the lease lapsed; the assignment has
    /// not been applied since.
    fenced: bool,
    /// Fenced, then joined a new session: the assignment kept is from the
    /// old one and may be stale (the leader moves a lost runner's tasks);
    /// only the assignment the new session sends is applied.
    awaiting_session_assignment: bool,
    lease: Lease,
    metrics: Arc<RunnerMetrics>,
    /// `task.shutdown.graceful.timeout.ms`: each of a stopping task's three
    /// phases is bounded by it.
    task_shutdown_timeout: Duration,
}

impl<L: Launch> Hosted<L> {
    pub(super) fn new(
        launcher: L,
        runner_id: String,
        lease: Lease,
        metrics: Arc<RunnerMetrics>,
        task_shutdown_timeout: Duration,
    ) -> Self {
        Hosted {
            launcher,
            runner_id,
            tasks: BTreeMap::new(),
            connectors: BTreeMap::new(),
            last_status: BTreeMap::new(),
            last_epoch: 0,
            assignment: None,
            fenced: false,
            awaiting_session_assignment: false,
            lease,
            metrics,
            task_shutdown_timeout,
        }
    }

    fn is_empty(&self) -> bool {
        self.tasks.is_empty() && self.connectors.is_empty()
    }

    /// The last status of each hosted task, for a new session.
    pub(super) fn last_statuses(&self) -> impl Iterator<Item = &pb::TaskStatusReport> {
        self.last_status.values()
    }

    /// Resolves when the lease runs out while anything is running.
    pub(super) async fn lease_lapses(&self) {
        match self.lease.deadline() {
            Some(deadline) if !self.is_empty() => {
                tokio::time::sleep_until(deadline).await;
            }
            _ => std::future::pending().await,
        }
    }

    /// The lease ran out: another runner may own these tasks now. Stop
    /// everything; the tasks' commits are refused (`TaskContext::may_commit`).
    pub(super) async fn fence(&mut self, events_rx: &mut mpsc::UnboundedReceiver<TaskEvent>) {
        if self.lease.holds() || self.is_empty() {
            return;
        }
        tracing::warn!(
            runner = %self.runner_id,
            "no coordinator answered within the session timeout; stopping every task without committing"
        );
        self.stop_all(events_rx, None).await;
        self.fenced = true;
    }

    /// A new session with a coordinator began. A fenced runner then starts
    /// nothing of its old assignment: the leader may have moved those tasks
    /// while it was gone, and restarting them would run them twice. The new
    /// session sends the current assignment first thing.
    pub(super) fn session_started(&mut self) {
        if self.fenced {
            self.awaiting_session_assignment = true;
        }
    }

    /// Whether everything was stopped by a fence and not started again since.
    pub(super) fn is_fenced(&self) -> bool {
        self.fenced
    }

    /// After a fence, once the lease holds again: the assignment to apply
    /// again. With none applied before, the runner is simply no longer fenced.
    pub(super) fn assignment_to_restart(&mut self) -> Option<pb::Assignment> {
        if !self.fenced || self.awaiting_session_assignment || !self.lease.holds() {
            return None;
        }
        if self.assignment.is_none() {
            self.fenced = false;
        }
        self.assignment.clone()
    }

    /// Makes the hosted connector instances and tasks match `assignment`,
    /// stopping what goes first (forwarding what tasks report meanwhile to
    /// `outbound`). Returns the report of what runs now, or `None` if the
    /// assignment was stale and ignored.
    pub(super) async fn apply(
        &mut self,
        assignment: pb::Assignment,
        events: &mpsc::UnboundedSender<TaskEvent>,
        events_rx: &mut mpsc::UnboundedReceiver<TaskEvent>,
        outbound: &mpsc::Sender<pb::RunnerMessage>,
    ) -> Option<pb::Applied> {
        if assignment.epoch < self.last_epoch {
            tracing::debug!(
                epoch = assignment.epoch,
                last = self.last_epoch,
                "ignoring stale assignment"
            );
            return None;
        }
        self.last_epoch = assignment.epoch;
        self.assignment = Some(assignment.clone());
        self.fenced = false;
        self.awaiting_session_assignment = false;
        self.apply_connectors(assignment.connectors, events);
        let wanted: BTreeMap<TaskId, pb::TaskAssignment> = assignment
            .tasks
            .into_iter()
            .map(|t| {
                (
                    TaskId {
                        connector: t.connector.clone(),
                        task: t.task,
                    },
                    t,
                )
            })
            .collect();

        // A task whose loop has ended (FAILED) is kept too: it stays failed
        // until its assignment changes (a restart raises its generation).
        let to_stop: Vec<TaskId> = self
            .tasks
            .iter()
            .filter(|(key, running)| !wanted.get(*key).is_some_and(|w| running.is_as(w)))
            .map(|(key, _)| key.clone())
            .collect();
        self.stop_many(to_stop, events_rx, Some(outbound)).await;

        for (key, wanted) in wanted {
            let target = target_of(wanted.target_state);
            if let Some(running) = self.tasks.get(&key) {
                retarget(&running.target, target);
                continue;
            }
            self.start_task(key, wanted, target, assignment.epoch, events.clone());
        }
        Some(pb::Applied {
            epoch: assignment.epoch,
            tasks: self
                .tasks
                .keys()
                .map(|key| pb::TaskRef {
                    connector: key.connector.clone(),
                    task: key.task,
                })
                .collect(),
        })
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
        let started = self.launcher.connector(ConnectorStart {
            name: name.clone(),
            config: config.clone(),
            generation: wanted.generation,
            target: target_rx,
            cancel: cancel.clone(),
            events: events.clone(),
        });
        let handle = match started {
            Ok(handle) => handle,
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

    fn start_task(
        &mut self,
        key: TaskId,
        wanted: pb::TaskAssignment,
        target: TargetState,
        epoch: u64,
        events: mpsc::UnboundedSender<TaskEvent>,
    ) {
        let config: ConfigMap = wanted.config.into_iter().collect();
        let (target_tx, target_rx) = watch::channel(target);
        let cancel = CancellationToken::new();
        let metrics = self.metrics.register(&key);
        let started = self.launcher.task(TaskStart {
            key: key.clone(),
            task_count: wanted.task_count.max(1),
            config: config.clone(),
            epoch,
            target: target_rx,
            cancel: cancel.clone(),
            events: events.clone(),
            metrics: metrics.clone(),
        });
        let handle = match started {
            Ok(handle) => handle,
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
    pub(super) async fn stop_all(
        &mut self,
        events_rx: &mut mpsc::UnboundedReceiver<TaskEvent>,
        outbound: Option<&mpsc::Sender<pb::RunnerMessage>>,
    ) {
        let names: Vec<String> = self.connectors.keys().cloned().collect();
        for name in names {
            self.stop_connector(&name);
        }
        let keys: Vec<TaskId> = self.tasks.keys().cloned().collect();
        self.stop_many(keys, events_rx, outbound).await;
    }

    /// Cancels the tasks all at once and waits for them together, each
    /// under the same deadline; one that overruns it is aborted. Meanwhile
    /// task events (offsets committed while stopping, say) keep flowing to
    /// `outbound` when there is one.
    async fn stop_many(
        &mut self,
        keys: Vec<TaskId>,
        events_rx: &mut mpsc::UnboundedReceiver<TaskEvent>,
        outbound: Option<&mpsc::Sender<pb::RunnerMessage>>,
    ) {
        let stopping: Vec<(TaskId, RunningTask)> = keys
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
            tokio::time::Instant::now() + self.task_shutdown_timeout * 3 + TASK_STOP_SLACK;
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
                    if let (Some(message), Some(outbound)) = (self.report(event), outbound) {
                        let _ = outbound.send(message).await;
                    }
                }
            }
        }
    }

    /// The control message for what a task or connector instance reported;
    /// `None` for the status of a task or instance no longer hosted as it
    /// was (stopped, or started again since). A task's status is also kept
    /// for the next session.
    pub(super) fn report(&mut self, event: TaskEvent) -> Option<pb::RunnerMessage> {
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

#[cfg(test)]
mod tests;
