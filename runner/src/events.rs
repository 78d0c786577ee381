//! What a runner's tasks and connector instances report to it, which it
//! forwards to the coordinator ([`TaskEvent`], [`InstanceEvent`]), and the
//! identities and states those reports carry ([`TaskId`], [`TaskState`],
//! [`ConnectorState`]). A leaf: it names no other module of the runner.

use weir_connect::api::SourcePosition;
use weir_connect::config::ConfigMap;

pub use weir_connect::api::TaskId;

/// A task's observed lifecycle state, as reported to the coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    Running,
    Paused,
    Failed,
}

/// What tasks tell the runner, which forwards it to the coordinator.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskEvent {
    Status {
        key: TaskId,
        state: TaskState,
        trace: String,
        epoch: u64,
    },
    Topics {
        connector: String,
        topics: Vec<String>,
    },
    OffsetsCommitted {
        connector: String,
        positions: Vec<SourcePosition>,
    },
    /// From a connector instance rather than a task.
    Instance(InstanceEvent),
}

/// A connector instance's state, as reported to the coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorState {
    Running,
    Paused,
    Failed,
}

/// What a connector instance tells the runner.
#[derive(Debug, Clone, PartialEq)]
pub enum InstanceEvent {
    Status {
        connector: String,
        generation: u64,
        state: ConnectorState,
        trace: String,
    },
    TaskConfigs {
        connector: String,
        generation: u64,
        configs: Vec<ConfigMap>,
    },
}
