//! Starts a task's loop ([`spawn`]): the source or sink record path, in a
//! span naming the task, reporting FAILED with the error as `trace` if the
//! loop ends in an error. It sits above the record paths; what they share
//! lives in [`crate::context`] and [`crate::events`], re-exported here for
//! callers that start tasks.

use tokio::task::JoinHandle;
use weir_connect::api::Task;

pub use crate::context::{TargetState, TaskContext, within};
pub use crate::events::{TaskEvent, TaskId, TaskState};
use crate::{sink, source};

/// Starts a task's loop.
pub fn spawn(context: TaskContext, task: Task) -> JoinHandle<()> {
    // Every line logged by the task's loop and its connector carries the
    // task's `connector` and `task` (Kafka Connect's connector context).
    let span = tracing::info_span!(
        "task",
        connector = %context.key.connector,
        task = context.key.task
    );
    let run = async move {
        let key = context.key.clone();
        let events = context.events.clone();
        let epoch = context.epoch;
        let metrics = context.metrics.clone();
        let outcome = match task {
            Task::Source(task) => source::run(context, task).await,
            Task::Sink(task) => sink::run(context, task).await,
        };
        match outcome {
            Ok(()) => tracing::info!(task = %key, "task stopped"),
            Err(error) => {
                tracing::error!(task = %key, %error, "task failed");
                metrics.set_state(TaskState::Failed);
                let trace = format!("{error}\n\tat task {key}");
                let _ = events.send(TaskEvent::Status {
                    key,
                    state: TaskState::Failed,
                    trace,
                    epoch,
                });
            }
        }
    };
    tokio::spawn(tracing::Instrument::instrument(run, span))
}
