//! What a runner's tasks and connector instances report to it, which it
//! forwards to the coordinator ([`TaskEvent`], [`InstanceEvent`]), and the
//! identities and states those reports carry ([`TaskKey`], [`TaskState`],
//! [`ConnectorState`]). A leaf: it names no other module of the runner.

use weir_connect::api::SourcePosition;
use weir_connect::config::ConfigMap;

/// Identifies a task of a connector.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskKey {
    pub connector: String,
    pub task: i32,
}

impl std::fmt::Display for TaskKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.connector, self.task)
    }
}

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
        key: TaskKey,
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
