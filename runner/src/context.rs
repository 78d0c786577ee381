//! What a runner gives each task loop it starts ([`TaskContext`]): the
//! task's identity and config, its target state ([`TargetState`], also a
//! connector instance's), its cancellation token, the lease its commits are
//! bounded by, and the channel its reports go out on; and [`within`], the
//! bound on each phase of a task's stop.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use weir_connect::config::ConfigMap;

use crate::claims::PartitionClaims;
use crate::config::WorkerConfig;
use crate::error::Error;
use crate::events::{TaskEvent, TaskId, TaskState};
use crate::lease::Lease;
use crate::metrics::TaskMetrics;
use crate::offsets::OffsetStore;
use crate::producers::ProducerPool;
use crate::tap::TaskTap;

/// What the coordinator wants a task to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState {
    Running,
    Paused,
}

/// Everything a task loop needs from its runner.
pub struct TaskContext {
    pub key: TaskId,
    /// How many tasks the connector has (sink tasks split partitions by it).
    pub task_count: i32,
    pub config: ConfigMap,
    pub epoch: u64,
    pub worker: Arc<WorkerConfig>,
    pub offsets: Arc<dyn OffsetStore>,
    pub target: watch::Receiver<TargetState>,
    pub cancel: CancellationToken,
    /// Unbounded, so a task never waits on the runner to report (a runner
    /// busy stopping other tasks could not drain it).
    pub events: mpsc::UnboundedSender<TaskEvent>,
    /// Offsets are committed only while it holds: once it lapses, another
    /// runner may own the task.
    pub lease: Lease,
    /// What the task's loop counts, for `/metrics`.
    pub metrics: Arc<TaskMetrics>,
    /// Where the task's loop offers records to live taps.
    pub tap: TaskTap,
    /// Where a sink task claims the partitions it reads.
    pub claims: PartitionClaims,
    /// The runner's source producers, shared by tasks of equal settings.
    pub producers: ProducerPool,
}

impl TaskContext {
    pub async fn report(&self, state: TaskState, trace: String) {
        self.metrics.set_state(state);
        let event = TaskEvent::Status {
            key: self.key.clone(),
            state,
            trace,
            epoch: self.epoch,
        };
        // The runner may be shutting down; a lost report is then harmless.
        let _ = self.events.send(event);
    }

    pub async fn report_target(&self) {
        let state = match *self.target.borrow() {
            TargetState::Running => TaskState::Running,
            TargetState::Paused => TaskState::Paused,
        };
        self.report(state, String::new()).await;
    }

    pub async fn emit(&self, event: TaskEvent) {
        let _ = self.events.send(event);
    }

    /// Resolves once the task has been asked to stop and its graceful
    /// shutdown time (`task.shutdown.graceful.timeout.ms`) has passed.
    pub fn stop_deadline(&self) -> impl std::future::Future<Output = ()> + 'static {
        let cancel = self.cancel.clone();
        let grace = self.worker.task_shutdown_timeout;
        async move {
            cancel.cancelled().await;
            tokio::time::sleep(grace).await;
        }
    }

    /// Reports topics a task started using (`GET /connectors/{c}/topics`).
    pub async fn emit_topics(&self, topics: Vec<String>) {
        if !topics.is_empty() {
            self.emit(TaskEvent::Topics {
                connector: self.key.connector.clone(),
                topics,
            })
            .await;
        }
    }

    /// Fails once the runner's lease has lapsed: a commit now could land
    /// after the task's next owner committed.
    pub fn may_commit(&self) -> Result<(), Error> {
        if self.lease.holds() {
            Ok(())
        } else {
            Err(Error::Fenced(format!(
                "task {} no longer owned: no coordinator answered this runner within its session timeout; nothing more is committed",
                self.key
            )))
        }
    }

    /// Runs a commit only while the lease holds: one still under way when
    /// the lease lapses is abandoned and the task fails (fenced), so it never
    /// tells its connector, or reports, a commit made after another runner
    /// may own the task. A write already handed to the store or to Kafka may
    /// still land (ARCHITECTURE.md, "late writes").
    pub async fn within_lease<T>(
        &self,
        commit: impl std::future::Future<Output = T>,
    ) -> Result<T, Error> {
        self.may_commit()?;
        self.lease.bound(commit).await.ok_or_else(|| {
            Error::Fenced(format!(
                "task {}: the runner's lease lapsed during a commit; nothing more is committed",
                self.key
            ))
        })
    }

    pub fn is_paused(&self) -> bool {
        *self.target.borrow() == TargetState::Paused
    }
}

/// Runs one stop phase (the final commit, the connector's `stop`) within
/// `grace`; one that overruns it is the `late` error.
pub async fn within<T, E>(
    grace: std::time::Duration,
    phase: impl std::future::Future<Output = Result<T, E>>,
    late: Error,
) -> Result<T, Error>
where
    Error: From<E>,
{
    match tokio::time::timeout(grace, phase).await {
        Ok(done) => done.map_err(Error::from),
        Err(_) => Err(late),
    }
}
