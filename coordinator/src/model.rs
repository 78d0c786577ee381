//! The records kept in the state store (see [`crate::keys`] for where),
//! the lifecycle enums they use, and how a record is read from and encoded
//! for the store (JSON).

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use weir_connect::config::ConfigMap;

use crate::error::{Error, Result};
use crate::store::Store;

/// Reads a JSON record.
pub(crate) async fn read_json<T: DeserializeOwned>(store: &Store, key: &str) -> Result<Option<T>> {
    match store.get(key).await? {
        Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
        None => Ok(None),
    }
}

/// Encodes a record as JSON, as it is stored.
pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::Internal(format!("encoding record: {e}")))
}

/// What the user asked a connector to be: Kafka Connect's target state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TargetState {
    Running,
    Paused,
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetRecord {
    pub state: TargetState,
}

/// The task configs a connector instance generated, each a full task config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TaskConfigsRecord {
    /// The connector generation they were generated under.
    pub generation: u64,
    pub configs: Vec<ConfigMap>,
}

/// How many task configs a stored [`TaskConfigsRecord`] holds, read
/// without building them (placement and status need only the count).
pub fn stored_task_count(raw: &[u8]) -> serde_json::Result<usize> {
    #[derive(Deserialize)]
    struct Counted {
        configs: Vec<serde::de::IgnoredAny>,
    }
    Ok(serde_json::from_slice::<Counted>(raw)?.configs.len())
}

/// A connector's or task's observed state, as the status endpoints show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InstanceState {
    Unassigned,
    Running,
    Paused,
    Failed,
    Restarting,
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRecord {
    pub state: InstanceState,
    pub worker_id: String,
    #[serde(default)]
    pub trace: String,
    /// Assignment epoch the reporting runner ran under (tasks only).
    #[serde(default)]
    pub epoch: u64,
}

/// A runner that is connected to some coordinator right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerRecord {
    pub runner_id: String,
    pub coordinator_id: String,
    /// Unique per connection, so a stale session cannot delete a newer one's record.
    pub session: String,
    #[serde(default)]
    pub kafka_cluster_id: String,
    /// Unique per runner process (see `Hello.instance`).
    #[serde(default)]
    pub instance: String,
}

/// A log level set for the whole cluster (`PUT /admin/loggers/{name}?scope=cluster`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterLogLevel {
    pub logger: String,
    pub level: String,
    pub last_modified: u64,
}

/// How a runner's last session ended, for the leader's hold on its work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepartedRecord {
    /// It said it was leaving (a clean stop): hold its work for the restart
    /// grace period rather than the session timeout.
    pub graceful: bool,
}

/// The tasks a runner reported running after applying an assignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AppliedRecord {
    pub epoch: u64,
    pub tasks: Vec<TaskId>,
}

pub use weir_connect::api::TaskId;

/// The connector instances and tasks the leader placed on one runner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AssignmentRecord {
    pub epoch: u64,
    pub tasks: Vec<TaskId>,
    #[serde(default)]
    pub connectors: Vec<String>,
    /// Tasks taken away from the runner that it has not yet confirmed
    /// stopped: kept until its `applied/` epoch reaches this record's, so no
    /// other runner gets them while an older assignment that started them
    /// may still be on its way.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revoking: Vec<TaskId>,
}

/// The topic partitions each sink task of one connector holds
/// (`claims/{connector}`): a partition is held by at most one task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ClaimsRecord {
    /// By task index.
    pub tasks: BTreeMap<i32, BTreeSet<(String, i32)>>,
}

impl ClaimsRecord {
    /// The partitions tasks other than `task` hold.
    pub fn held_by_others(&self, task: i32) -> BTreeSet<(String, i32)> {
        self.tasks
            .iter()
            .filter(|(other, _)| **other != task)
            .flat_map(|(_, held)| held.iter().cloned())
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderRecord {
    pub coordinator_id: String,
}

/// One committed position, as the offsets API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OffsetEntry {
    pub partition: serde_json::Value,
    pub offset: serde_json::Value,
}
