//! The admin service: every connector, task, status and plugin operation.
//! It implements the gRPC `Admin` service, and the REST layer calls the same
//! implementation in-process, so REST and gRPC share one code path.
//!
//! It writes what the user asked for (configs, target states, restart
//! requests) and bumps the connector's generation when its task configs must
//! be made again. It never runs connector code beyond validation: the leader
//! places each connector instance on a runner with its plugin, and that
//! runner generates the task configs (see `control`).

use std::collections::BTreeMap;
use std::sync::Arc;

use tonic::{Request, Response, Status};
use weir_connect::client::{
    HIDDEN, OverridePolicy, is_secret_key, mask_secrets, restore_hidden_secrets,
};
use weir_connect::config::{ConfigMap, Direction};
use weir_connect::registry::Registry;
use weir_proto::admin::v1 as pb;
use weir_proto::admin::v1::admin_server::Admin;

use crate::error::{Error, Result};
use crate::keys;
use crate::links::RunnerLinks;
use crate::model::{
    AppliedRecord, AssignmentRecord, ClusterLogLevel, InstanceState, RunnerRecord, StatusRecord,
    TargetRecord, TargetState, TaskConfigsRecord, TaskId, read_json, stored_task_count, to_json,
};
use crate::plugins::{Catalog, Plugin, PluginLists};
use crate::startup::StartupProbe;
use crate::store::{Condition, Store, Txn};
use crate::validate::{config_infos, invalid_config_message, key_definition};

/// The admin service over a state store.
#[derive(Clone)]
pub struct AdminService {
    store: Store,
    registry: Arc<Registry>,
    /// Shown as the connector's `worker_id`: the coordinator that ran its logic.
    coordinator_id: String,
    /// `connector.client.config.override.policy`.
    override_policy: OverridePolicy,
    /// The runners connected here, which reach the offsets for the offsets API.
    links: RunnerLinks,
    leader_metrics: Arc<crate::metrics::LeaderMetrics>,
    startup: Option<StartupProbe>,
    plugin_lists: PluginLists,
}

/// Everything stored about one connector's configuration.
struct ConnectorEntry {
    config: ConfigMap,
    raw_config: Vec<u8>,
    target: TargetState,
    /// How many task configs it has.
    task_count: usize,
    /// Bumped whenever the task configs must be generated again.
    generation: u64,
    /// The stored bytes of the target state and generation, so a write can
    /// require that neither changed since they were read.
    raw_target: Option<Vec<u8>>,
    raw_generation: Option<Vec<u8>>,
}

impl ConnectorEntry {
    /// A connector's entry from its stored keys.
    fn from_stored(
        raw_config: Vec<u8>,
        raw_target: Option<Vec<u8>>,
        raw_generation: Option<Vec<u8>>,
        raw_tasks: Option<&[u8]>,
    ) -> Result<ConnectorEntry> {
        let target = match &raw_target {
            Some(bytes) => serde_json::from_slice::<TargetRecord>(bytes)?.state,
            None => TargetState::Running,
        };
        let generation = match &raw_generation {
            Some(bytes) => serde_json::from_slice::<u64>(bytes)?,
            None => 0,
        };
        Ok(ConnectorEntry {
            config: serde_json::from_slice(&raw_config)?,
            raw_config,
            target,
            task_count: raw_tasks.map(stored_task_count).transpose()?.unwrap_or(0),
            generation,
            raw_target,
            raw_generation,
        })
    }
}

/// A connector's kind as the catalog knows its class.
fn connector_type_in(catalog: &Catalog, config: &ConfigMap) -> pb::ConnectorType {
    match config
        .get("connector.class")
        .and_then(|class| catalog.find(class))
        .map(|plugin| plugin.kind())
    {
        Some(Direction::Source) => pb::ConnectorType::Source,
        Some(Direction::Sink) => pb::ConnectorType::Sink,
        None => pb::ConnectorType::Unknown,
    }
}

fn info_of(name: &str, entry: &ConnectorEntry, kind: pb::ConnectorType) -> pb::ConnectorInfo {
    pb::ConnectorInfo {
        name: name.to_owned(),
        config: mask_secrets(&entry.config).into_iter().collect(),
        tasks: (0..entry.task_count)
            .map(|task| pb::TaskRef {
                connector: name.to_owned(),
                task: task as i32,
            })
            .collect(),
        r#type: kind as i32,
    }
}

/// Every connector's stored state, read with one list per key prefix: what
/// `GET /connectors?expand=…` needs, instead of several reads per connector.
/// Read from the store's watched copy (`list_recent`): a status page need
/// not cost etcd four range reads of every connector and task.
#[derive(Default)]
struct Everything {
    entries: BTreeMap<String, ConnectorEntry>,
    connector_status: BTreeMap<String, StatusRecord>,
    task_status: BTreeMap<String, BTreeMap<i32, StatusRecord>>,
}

impl Everything {
    async fn read(store: &Store, with_status: bool) -> Result<Everything> {
        #[derive(Default)]
        struct Parts {
            config: Option<Vec<u8>>,
            target: Option<Vec<u8>>,
            generation: Option<Vec<u8>>,
        }
        let mut parts: BTreeMap<String, Parts> = BTreeMap::new();
        for (key, value) in store.list_recent(keys::CONNECTORS).await? {
            let Some((name, field)) = keys::connector_field_of_key(&key) else {
                continue;
            };
            let part = parts.entry(name).or_default();
            match field {
                "config" => part.config = Some(value),
                "target" => part.target = Some(value),
                "generation" => part.generation = Some(value),
                _ => {}
            }
        }
        let mut tasks: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for (key, value) in store.list_recent(keys::TASKS).await? {
            if let Some(name) = keys::connector_name_of_task_configs_key(&key) {
                tasks.insert(name, value);
            }
        }
        let mut everything = Everything::default();
        for (name, part) in parts {
            // Half-written (a config deleted while listing) is skipped.
            let Some(config) = part.config else { continue };
            let entry = ConnectorEntry::from_stored(
                config,
                part.target,
                part.generation,
                tasks.get(&name).map(Vec::as_slice),
            )?;
            everything.entries.insert(name, entry);
        }
        if with_status {
            for (key, value) in store.list_recent(keys::STATUS_CONNECTORS).await? {
                if let (Some(name), Ok(status)) = (
                    keys::connector_name_of_status_key(&key),
                    serde_json::from_slice(&value),
                ) {
                    everything.connector_status.insert(name, status);
                }
            }
            for (key, value) in store.list_recent(keys::STATUS_TASKS).await? {
                if let (Some((name, task)), Ok(status)) = (
                    keys::task_of_status_key(&key),
                    serde_json::from_slice(&value),
                ) {
                    everything
                        .task_status
                        .entry(name)
                        .or_default()
                        .insert(task, status);
                }
            }
        }
        Ok(everything)
    }
}

/// Requires `key` to still hold what was read (or still be absent).
fn still(key: String, read: &Option<Vec<u8>>) -> Condition {
    match read {
        Some(bytes) => Condition::ValueEquals(key, bytes.clone()),
        None => Condition::Absent(key),
    }
}

impl ConnectorEntry {
    /// Conditions that make a transaction fail if a concurrent change to
    /// this connector's config, target state or generation landed first.
    /// (Task configs a runner writes meanwhile do not conflict.)
    fn unchanged(&self, name: &str, txn: Txn) -> Txn {
        txn.when(Condition::ValueEquals(
            keys::connector_config(name),
            self.raw_config.clone(),
        ))
        .when(still(keys::connector_target(name), &self.raw_target))
        .when(still(
            keys::connector_generation(name),
            &self.raw_generation,
        ))
    }

    /// Writes the next generation: the connector instance starts again and
    /// makes new task configs.
    fn next_generation(&self, name: &str, txn: Txn) -> Result<(Txn, u64)> {
        let generation = self.generation + 1;
        Ok((
            txn.put(keys::connector_generation(name), to_json(&generation)?),
            generation,
        ))
    }
}

/// How long an offsets change waits for a STOPPED connector's tasks to
/// finish stopping (three graceful phases of 5 s and slack, twice over).
const TASKS_STOPPING_WAIT: std::time::Duration = std::time::Duration::from_secs(40);

const STALE_CONFIG: &str = "Cannot complete request momentarily due to stale configuration (typically caused by a concurrent config change)";

impl AdminService {
    /// Whether this coordinator is sure its store session (the etcd lease)
    /// is alive, so that what it answers is current (`GET /health`).
    pub fn session_valid(&self) -> bool {
        self.store.session_valid()
    }

    /// The cluster's metrics (`GET /metrics`).
    pub async fn cluster_metrics(&self) -> crate::error::Result<String> {
        crate::metrics::render(&self.store, &self.coordinator_id, &self.leader_metrics).await
    }

    pub fn new(store: Store, registry: Arc<Registry>, coordinator_id: String) -> Self {
        AdminService {
            store,
            registry,
            coordinator_id,
            override_policy: OverridePolicy::All,
            links: RunnerLinks::default(),
            leader_metrics: Arc::default(),
            startup: None,
            plugin_lists: PluginLists::default(),
        }
    }

    /// Makes `GET /health` answer `starting` until `probe` says started.
    pub fn with_startup_probe(mut self, probe: StartupProbe) -> Self {
        self.startup = Some(probe);
        self
    }

    /// Whether the process has finished starting (always, without a probe).
    pub fn started(&self) -> bool {
        self.startup.as_ref().is_none_or(|probe| (probe.0)())
    }

    /// Shares what the leader loop of this coordinator measures.
    pub fn with_leader_metrics(mut self, metrics: Arc<crate::metrics::LeaderMetrics>) -> Self {
        self.leader_metrics = metrics;
        self
    }

    /// Sets the runners this coordinator can ask to reach offsets.
    pub fn with_runner_links(mut self, links: RunnerLinks) -> Self {
        self.links = links;
        self
    }

    /// Every registered runner with its current assignment.
    async fn runner_assignments(
        &self,
    ) -> Result<
        Vec<(
            crate::model::RunnerRecord,
            Option<crate::model::AssignmentRecord>,
        )>,
    > {
        let mut runners = Vec::new();
        for (_, value) in self.store.list(keys::RUNNERS).await? {
            let Ok(record) = serde_json::from_slice::<crate::model::RunnerRecord>(&value) else {
                continue;
            };
            let assignment = read_json(&self.store, &keys::assignment(&record.runner_id)).await?;
            runners.push((record, assignment));
        }
        Ok(runners)
    }

    /// Has a runner carry out an offsets operation on a connector.
    async fn offsets_op(
        &self,
        name: &str,
        entry: &ConnectorEntry,
        op: weir_proto::control::v1::OffsetsOp,
        offsets: Vec<pb::ConnectorOffset>,
    ) -> Result<Vec<pb::ConnectorOffset>> {
        use weir_proto::control::v1 as control;
        let reply = self
            .links
            .offsets(control::OffsetsRequest {
                id: 0,
                connector: name.to_owned(),
                config: entry.config.clone().into_iter().collect(),
                op: op as i32,
                offsets: offsets
                    .into_iter()
                    .map(|o| control::SourceOffset {
                        partition_json: o.partition_json,
                        offset_json: o.offset_json,
                    })
                    .collect(),
            })
            .await?;
        if !reply.error.is_empty() {
            return Err(Error::BadRequest(reply.error));
        }
        Ok(reply
            .offsets
            .into_iter()
            .map(|o| pb::ConnectorOffset {
                partition_json: o.partition_json,
                offset_json: o.offset_json,
            })
            .collect())
    }

    /// The connector, which must exist and be STOPPED for its offsets to change.
    async fn stopped(&self, name: &str) -> Result<ConnectorEntry> {
        let entry = self
            .existing(name, || format!("Connector {name} not found"))
            .await?;
        if entry.target != TargetState::Stopped {
            return Err(Error::BadRequest(format!(
                "Connectors must be in the STOPPED state before their offsets can be modified. This can be done for the specified connector by issuing a 'PUT' request to the '/connectors/{name}/stop' endpoint"
            )));
        }
        // STOPPED is the target; a task still stopping makes its final
        // commit, which would undo a change acknowledged now: wait for it.
        let mut changes = self.store.changes();
        let deadline = tokio::time::Instant::now() + TASKS_STOPPING_WAIT;
        while let Some(runner) = self.runner_still_running_tasks_of(name).await? {
            let waited = tokio::time::timeout_at(deadline, changes.changed()).await;
            if waited.is_err() {
                return Err(Error::Conflict(format!(
                    "Connector {name} is STOPPED but its tasks are still stopping on runner {runner}; its offsets can be modified once they have stopped. Try again shortly"
                )));
            }
        }
        Ok(entry)
    }

    /// A runner that may still run a task of `name`: the task is in its
    /// assignment, in its unconfirmed revokes, or in what it last reported
    /// running (`applied/`).
    async fn runner_still_running_tasks_of(&self, name: &str) -> Result<Option<String>> {
        let of_connector = |tasks: &[TaskId]| tasks.iter().any(|t| t.connector == name);
        for (key, value) in self.store.list(keys::ASSIGNMENTS).await? {
            let record: AssignmentRecord = serde_json::from_slice(&value)?;
            if of_connector(&record.tasks) || of_connector(&record.revoking) {
                return Ok(key.strip_prefix(keys::ASSIGNMENTS).map(keys::decode));
            }
        }
        for (key, value) in self.store.list(keys::APPLIED).await? {
            let record: AppliedRecord = serde_json::from_slice(&value)?;
            if of_connector(&record.tasks) {
                return Ok(key.strip_prefix(keys::APPLIED).map(keys::decode));
            }
        }
        Ok(None)
    }

    /// Sets what connectors may override in their clients' settings.
    pub fn with_override_policy(mut self, policy: OverridePolicy) -> Self {
        self.override_policy = policy;
        self
    }

    async fn entry(&self, name: &str) -> Result<Option<ConnectorEntry>> {
        let Some(raw_config) = self.store.get(&keys::connector_config(name)).await? else {
            return Ok(None);
        };
        let raw_target = self.store.get(&keys::connector_target(name)).await?;
        let tasks = self.store.get(&keys::task_configs(name)).await?;
        let raw_generation = self.store.get(&keys::connector_generation(name)).await?;
        ConnectorEntry::from_stored(raw_config, raw_target, raw_generation, tasks.as_deref())
            .map(Some)
    }

    async fn existing(
        &self,
        name: &str,
        not_found: impl FnOnce() -> String,
    ) -> Result<ConnectorEntry> {
        self.entry(name)
            .await?
            .ok_or_else(|| Error::NotFound(not_found()))
    }

    async fn catalog(&self) -> Result<Catalog> {
        Catalog::read_recent(&self.store, self.registry.clone(), &self.plugin_lists).await
    }

    async fn plugin(&self, config: &ConfigMap) -> Result<Plugin> {
        let Some(class) = config.get("connector.class") else {
            return Err(Error::BadRequest(format!(
                "Connector config {} contains no connector type",
                java_map(config)
            )));
        };
        let catalog = self.catalog().await?;
        match catalog.find(class) {
            Some(Plugin::Reported(described, _)) => {
                let remote = crate::plugins::RemoteValidate {
                    links: self.links.clone(),
                    runners: catalog.runners_with(class),
                };
                Ok(Plugin::Reported(described, Some(remote)))
            }
            Some(local) => Ok(local),
            None => Err(Error::BadRequest(format!(
                "Failed to find any class that implements Connector and which name matches {class}, available connectors are: {}",
                catalog.classes().join(", ")
            ))),
        }
    }

    /// Validates a config for create/update.
    async fn check_config(&self, config: &ConfigMap) -> Result<()> {
        let plugin = self.plugin(config).await?;
        let infos = config_infos(&plugin, config, self.override_policy).await;
        if infos.error_count > 0 {
            return Err(Error::BadRequest(invalid_config_message(&infos)));
        }
        Ok(())
    }

    async fn info(&self, name: &str, entry: &ConnectorEntry) -> pb::ConnectorInfo {
        let kind = self.connector_type(&entry.config).await;
        info_of(name, entry, kind)
    }

    async fn connector_type(&self, config: &ConfigMap) -> pb::ConnectorType {
        match self.catalog().await {
            Ok(catalog) => connector_type_in(&catalog, config),
            Err(_) => pb::ConnectorType::Unknown,
        }
    }

    async fn status(&self, name: &str, entry: &ConnectorEntry) -> Result<pb::ConnectorStatus> {
        let connector =
            read_json::<StatusRecord>(&self.store, &keys::connector_status(name)).await?;
        let reported: BTreeMap<i32, StatusRecord> = self
            .store
            .list(&keys::task_status_prefix(name))
            .await?
            .into_iter()
            .filter_map(|(key, value)| {
                let (_, task) = keys::task_of_status_key(&key)?;
                Some((task, serde_json::from_slice(&value).ok()?))
            })
            .collect();
        let kind = self.connector_type(&entry.config).await;
        Ok(self.status_of(name, entry, connector, &reported, kind))
    }

    /// A connector's status from its stored records: a missing record is
    /// UNASSIGNED (the connector's on this coordinator, as Kafka Connect
    /// shows the worker that answers).
    fn status_of(
        &self,
        name: &str,
        entry: &ConnectorEntry,
        connector: Option<StatusRecord>,
        reported: &BTreeMap<i32, StatusRecord>,
        kind: pb::ConnectorType,
    ) -> pb::ConnectorStatus {
        let connector = connector.unwrap_or(StatusRecord {
            state: InstanceState::Unassigned,
            worker_id: self.coordinator_id.clone(),
            trace: String::new(),
            epoch: 0,
        });
        let tasks = (0..entry.task_count as i32)
            .map(|task| pb::TaskStatus {
                id: task,
                status: Some(instance(reported.get(&task).cloned().unwrap_or(
                    StatusRecord {
                        state: InstanceState::Unassigned,
                        worker_id: String::new(),
                        trace: String::new(),
                        epoch: 0,
                    },
                ))),
            })
            .collect();
        pb::ConnectorStatus {
            name: name.to_owned(),
            connector: Some(instance(connector)),
            tasks,
            r#type: kind as i32,
        }
    }

    async fn connector_names(&self) -> Result<Vec<String>> {
        Ok(self
            .store
            .list(keys::CONNECTORS)
            .await?
            .into_iter()
            .filter_map(|(key, _)| keys::connector_name_of_config_key(&key))
            .collect())
    }

    /// Writes a new config (create or update) with freshly generated tasks.
    async fn write_config(
        &self,
        name: &str,
        config: ConfigMap,
        previous: Option<&ConnectorEntry>,
        initial: TargetState,
    ) -> Result<ConnectorEntry> {
        let mut config = config;
        if let Some(previous) = previous {
            restore_hidden_secrets(&mut config, &previous.config);
        }
        // A secret copied from a masked GET with nothing stored to restore.
        if let Some(key) = config
            .iter()
            .find(|(key, value)| *value == HIDDEN && is_secret_key(key))
            .map(|(key, _)| key)
        {
            return Err(Error::BadRequest(format!(
                "The value of {key} is {HIDDEN}, the placeholder GET responses show for secrets, and there is no stored value to keep; give the secret itself"
            )));
        }
        self.check_config(&config).await?;
        let target = previous.map_or(initial, |p| p.target);
        let generation = previous.map_or(1, |p| p.generation + 1);
        let raw_config = to_json(&config)?;
        let raw_generation = to_json(&generation)?;
        let mut txn = Txn::new()
            .put(keys::connector_config(name), raw_config.clone())
            .put(keys::connector_generation(name), raw_generation.clone());
        match previous {
            // The tasks keep their configs until the connector instance
            // has made new ones from this config.
            Some(previous) => txn = previous.unchanged(name, txn),
            None => {
                txn = txn
                    .when(Condition::Absent(keys::connector_config(name)))
                    .put(
                        keys::connector_target(name),
                        to_json(&TargetRecord { state: target })?,
                    )
                    .delete(keys::task_configs(name))
                    .delete(keys::connector_status(name))
                    .delete_prefix(keys::task_status_prefix(name))
                    .delete_prefix(keys::restarts_prefix(name))
                    .delete_prefix(keys::topics_prefix(name));
                if target == TargetState::Stopped {
                    txn = txn.put(
                        keys::connector_status(name),
                        to_json(&self.stopped_status())?,
                    );
                }
            }
        }
        if !self.store.txn(txn).await? {
            return Err(match previous {
                None => Error::AlreadyExists(format!("Connector {name} already exists")),
                Some(_) => Error::Conflict(STALE_CONFIG.to_owned()),
            });
        }
        tracing::info!(connector = name, generation, "connector config written");
        let (task_count, raw_target) = match previous {
            Some(previous) => (previous.task_count, previous.raw_target.clone()),
            None => (0, Some(to_json(&TargetRecord { state: target })?)),
        };
        Ok(ConnectorEntry {
            config,
            raw_config,
            target,
            task_count,
            generation,
            raw_target,
            raw_generation: Some(raw_generation),
        })
    }

    fn stopped_status(&self) -> StatusRecord {
        StatusRecord {
            state: InstanceState::Stopped,
            worker_id: self.coordinator_id.clone(),
            trace: String::new(),
            epoch: 0,
        }
    }

    /// Changes the target state. Entering STOPPED empties the task configs;
    /// leaving it has the connector instance make them again.
    async fn set_target(&self, name: &str, target: TargetState) -> Result<()> {
        let entry = self
            .existing(name, || format!("Unknown connector {name}"))
            .await?;
        let mut txn = entry.unchanged(name, Txn::new()).put(
            keys::connector_target(name),
            to_json(&TargetRecord { state: target })?,
        );
        let stopping = target == TargetState::Stopped && entry.target != TargetState::Stopped;
        let starting = entry.target == TargetState::Stopped && target != TargetState::Stopped;
        if stopping || starting {
            let (next, generation) = entry.next_generation(name, txn)?;
            txn = next;
            if stopping {
                let empty = TaskConfigsRecord {
                    generation,
                    configs: Vec::new(),
                };
                txn = txn
                    .put(keys::task_configs(name), to_json(&empty)?)
                    .put(
                        keys::connector_status(name),
                        to_json(&self.stopped_status())?,
                    )
                    .delete_prefix(keys::task_status_prefix(name));
            } else {
                txn = txn.delete(keys::connector_status(name));
            }
        }
        if !self.store.txn(txn).await? {
            return Err(Error::Conflict(STALE_CONFIG.to_owned()));
        }
        tracing::info!(connector = name, ?target, "target state changed");
        Ok(())
    }

    /// Bumps a task's restart generation and shows it RESTARTING.
    fn restart_task_ops(
        &self,
        txn: Txn,
        name: &str,
        task: i32,
        generation: u64,
        worker_id: String,
    ) -> Result<Txn> {
        let status = StatusRecord {
            state: InstanceState::Restarting,
            worker_id,
            trace: String::new(),
            epoch: 0,
        };
        Ok(txn
            .put(keys::task_restart(name, task), to_json(&(generation + 1))?)
            .put(keys::task_status(name, task), to_json(&status)?))
    }

    async fn restart_generation(&self, name: &str, task: i32) -> Result<u64> {
        Ok(
            read_json::<u64>(&self.store, &keys::task_restart(name, task))
                .await?
                .unwrap_or(0),
        )
    }

    /// The cluster id a connected runner reported, if any.
    async fn kafka_cluster_id(&self) -> Result<String> {
        Ok(self
            .store
            .list(keys::RUNNERS)
            .await?
            .into_iter()
            .filter_map(|(_, value)| serde_json::from_slice::<RunnerRecord>(&value).ok())
            .map(|runner| runner.kafka_cluster_id)
            .find(|id| !id.is_empty())
            .unwrap_or_default())
    }
}

fn instance(record: StatusRecord) -> pb::InstanceStatus {
    let state = match record.state {
        InstanceState::Unassigned => pb::State::Unassigned,
        InstanceState::Running => pb::State::Running,
        InstanceState::Paused => pb::State::Paused,
        InstanceState::Failed => pb::State::Failed,
        InstanceState::Restarting => pb::State::Restarting,
        InstanceState::Stopped => pb::State::Stopped,
    };
    pb::InstanceStatus {
        state: state as i32,
        worker_id: record.worker_id,
        trace: record.trace,
    }
}

/// A sink offset's shape, with Kafka Connect's messages (`SinkUtils`).
fn check_sink_offset(offset: &pb::ConnectorOffset) -> Result<()> {
    let bad = |message: &str| Err(Error::BadRequest(message.to_owned()));
    let partition: serde_json::Value =
        serde_json::from_str(&offset.partition_json).unwrap_or(serde_json::Value::Null);
    let Some(partition) = partition.as_object() else {
        return bad("The partition for a sink connector offset cannot be null or missing");
    };
    let (Some(topic), Some(number)) = (
        partition.get("kafka_topic"),
        partition.get("kafka_partition"),
    ) else {
        return bad(
            "The partition for a sink connector offset must contain the keys 'kafka_topic' and 'kafka_partition'",
        );
    };
    if !topic.is_string() || !number.is_i64() {
        return bad("Partition values for sink connectors need to be integers");
    }
    if offset.offset_json.is_empty() {
        return Ok(());
    }
    let value: serde_json::Value =
        serde_json::from_str(&offset.offset_json).unwrap_or(serde_json::Value::Null);
    match value.as_object().and_then(|o| o.get("kafka_offset")) {
        None => bad(
            "The offset for a sink connector should either be null or contain the key 'kafka_offset'",
        ),
        Some(at) if !at.is_i64() => bad("Offset values for sink connectors need to be integers"),
        Some(_) => Ok(()),
    }
}

fn logger_level(level: weir_connect::logging::LoggerLevel) -> pb::LoggerLevel {
    pb::LoggerLevel {
        level: level.level,
        last_modified: level.last_modified,
    }
}

/// The ConfigDef of a converter, SMT or predicate, by class name or alias.
fn plugin_def(name: &str) -> Option<weir_connect::config::ConfigDef> {
    use weir_connect::transforms::{defs, predicate_classes, transform_classes};
    if let Some(def) = weir_connect::converter::converter_def(name) {
        return Some(def);
    }
    let named = |class: &String| class == name || class.rsplit('.').next() == Some(name.trim());
    if let Some(class) = transform_classes().into_iter().find(named) {
        let (simple, _) = weir_connect::transforms::split_class(&class);
        return defs::transform_def(&simple);
    }
    let class = predicate_classes().into_iter().find(named)?;
    defs::predicate_def(weir_connect::transforms::predicate_simple_name(&class))
}

/// Java's `Map.toString()`, which Kafka Connect puts in some messages.
/// A config as Java prints a map, secrets hidden.
fn java_map(config: &ConfigMap) -> String {
    let entries: Vec<String> = mask_secrets(config)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!("{{{}}}", entries.join(", "))
}

fn target_from_pb(state: i32) -> Result<TargetState> {
    match pb::TargetState::try_from(state) {
        Ok(pb::TargetState::Running) => Ok(TargetState::Running),
        Ok(pb::TargetState::Paused) => Ok(TargetState::Paused),
        Ok(pb::TargetState::Stopped) => Ok(TargetState::Stopped),
        Err(_) => Err(Error::BadRequest(format!("Invalid initial state {state}"))),
    }
}

/// Checks the `name` key against the name in the request, injecting it when absent.
fn reconcile_name(name: &str, config: &mut ConfigMap) -> Result<()> {
    match config.get("name") {
        Some(configured) if configured != name => Err(Error::BadRequest(format!(
            "Connector name configuration ({configured}) doesn't match connector name in the URL ({name})"
        ))),
        Some(_) => Ok(()),
        None => {
            config.insert("name".to_owned(), name.to_owned());
            Ok(())
        }
    }
}

type Reply<T> = std::result::Result<Response<T>, Status>;

#[tonic::async_trait]
impl Admin for AdminService {
    async fn server_info(
        &self,
        _request: Request<pb::ServerInfoRequest>,
    ) -> Reply<pb::ServerInfoResponse> {
        Ok(Response::new(pb::ServerInfoResponse {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            commit: option_env!("WEIR_COMMIT").unwrap_or("unknown").to_owned(),
            kafka_cluster_id: self.kafka_cluster_id().await?,
        }))
    }

    async fn list_connectors(
        &self,
        request: Request<pb::ListConnectorsRequest>,
    ) -> Reply<pb::ListConnectorsResponse> {
        let request = request.into_inner();
        if !request.expand_status && !request.expand_info {
            let connectors = self
                .connector_names()
                .await?
                .into_iter()
                .map(|name| pb::ExpandedConnector {
                    name,
                    status: None,
                    info: None,
                })
                .collect();
            return Ok(Response::new(pb::ListConnectorsResponse { connectors }));
        }
        let mut everything = Everything::read(&self.store, request.expand_status).await?;
        let catalog = self.catalog().await.ok();
        let no_tasks = BTreeMap::new();
        let connectors = everything
            .entries
            .iter()
            .map(|(name, entry)| {
                let kind = catalog.as_ref().map_or(pb::ConnectorType::Unknown, |c| {
                    connector_type_in(c, &entry.config)
                });
                let status = request.expand_status.then(|| {
                    self.status_of(
                        name,
                        entry,
                        everything.connector_status.remove(name),
                        everything.task_status.get(name).unwrap_or(&no_tasks),
                        kind,
                    )
                });
                let info = request.expand_info.then(|| info_of(name, entry, kind));
                pb::ExpandedConnector {
                    name: name.clone(),
                    status,
                    info,
                }
            })
            .collect();
        Ok(Response::new(pb::ListConnectorsResponse { connectors }))
    }

    async fn create_connector(
        &self,
        request: Request<pb::CreateConnectorRequest>,
    ) -> Reply<pb::ConnectorInfo> {
        let request = request.into_inner();
        let name = request.name.trim().to_owned();
        let mut config: ConfigMap = request.config.into_iter().collect();
        reconcile_name(&name, &mut config)?;
        let initial = match request.initial_state {
            Some(state) => target_from_pb(state)?,
            None => TargetState::Running,
        };
        let entry = self.write_config(&name, config, None, initial).await?;
        Ok(Response::new(self.info(&name, &entry).await))
    }

    async fn get_connector(&self, request: Request<pb::ConnectorRef>) -> Reply<pb::ConnectorInfo> {
        let name = request.into_inner().name;
        let entry = self
            .existing(&name, || format!("Connector {name} not found"))
            .await?;
        Ok(Response::new(self.info(&name, &entry).await))
    }

    async fn get_connector_config(
        &self,
        request: Request<pb::ConnectorRef>,
    ) -> Reply<pb::ConnectorConfig> {
        let name = request.into_inner().name;
        let entry = self
            .existing(&name, || format!("Connector {name} not found"))
            .await?;
        Ok(Response::new(pb::ConnectorConfig {
            config: mask_secrets(&entry.config).into_iter().collect(),
        }))
    }

    async fn put_connector_config(
        &self,
        request: Request<pb::PutConnectorConfigRequest>,
    ) -> Reply<pb::PutConnectorConfigResponse> {
        let request = request.into_inner();
        let name = request.name;
        let mut config: ConfigMap = request.config.into_iter().collect();
        reconcile_name(&name, &mut config)?;
        let previous = self.entry(&name).await?;
        let entry = self
            .write_config(&name, config, previous.as_ref(), TargetState::Running)
            .await?;
        Ok(Response::new(pb::PutConnectorConfigResponse {
            created: previous.is_none(),
            info: Some(self.info(&name, &entry).await),
        }))
    }

    async fn patch_connector_config(
        &self,
        request: Request<pb::PatchConnectorConfigRequest>,
    ) -> Reply<pb::ConnectorInfo> {
        let request = request.into_inner();
        let name = request.name;
        // PATCH never creates a connector.
        let previous = self
            .existing(&name, || format!("Connector {name} not found"))
            .await?;
        let mut config = previous.config.clone();
        for key in &request.remove {
            config.remove(key);
        }
        config.extend(request.set);
        reconcile_name(&name, &mut config)?;
        let entry = self
            .write_config(&name, config, Some(&previous), TargetState::Running)
            .await?;
        Ok(Response::new(self.info(&name, &entry).await))
    }

    async fn get_connector_status(
        &self,
        request: Request<pb::ConnectorRef>,
    ) -> Reply<pb::ConnectorStatus> {
        let name = request.into_inner().name;
        let entry = self
            .existing(&name, || format!("No status found for connector {name}"))
            .await?;
        Ok(Response::new(self.status(&name, &entry).await?))
    }

    async fn restart_connector(
        &self,
        request: Request<pb::RestartConnectorRequest>,
    ) -> Reply<pb::RestartConnectorResponse> {
        let request = request.into_inner();
        let name = request.name;
        let entry = self
            .existing(&name, || format!("Unknown connector: {name}"))
            .await?;
        let before = self.status(&name, &entry).await?;
        let failed = |status: &Option<pb::InstanceStatus>| {
            status
                .as_ref()
                .is_some_and(|s| s.state == pb::State::Failed as i32)
        };
        let restart_connector = !request.only_failed || failed(&before.connector);
        let mut txn = entry.unchanged(&name, Txn::new());
        let mut shown = before.clone();
        if restart_connector && entry.target != TargetState::Stopped {
            let (next, _) = entry.next_generation(&name, txn)?;
            let worker_id = before
                .connector
                .as_ref()
                .map(|c| c.worker_id.clone())
                .unwrap_or_default();
            let restarting = StatusRecord {
                state: InstanceState::Restarting,
                worker_id,
                trace: String::new(),
                epoch: 0,
            };
            txn = next.put(keys::connector_status(&name), to_json(&restarting)?);
            if let Some(connector) = shown.connector.as_mut() {
                connector.state = pb::State::Restarting as i32;
            }
        }
        if request.include_tasks {
            for task in shown.tasks.iter_mut() {
                if request.only_failed && !failed(&task.status) {
                    continue;
                }
                let generation = self.restart_generation(&name, task.id).await?;
                let worker = task
                    .status
                    .as_ref()
                    .map(|s| s.worker_id.clone())
                    .unwrap_or_default();
                txn = self.restart_task_ops(txn, &name, task.id, generation, worker)?;
                if let Some(status) = task.status.as_mut() {
                    status.state = pb::State::Restarting as i32;
                }
            }
        }
        if !self.store.txn(txn).await? {
            return Err(Error::Conflict(STALE_CONFIG.to_owned()).into());
        }
        tracing::info!(connector = %name, include_tasks = request.include_tasks, only_failed = request.only_failed, "restart requested");
        let status = (request.include_tasks || request.only_failed).then_some(shown);
        Ok(Response::new(pb::RestartConnectorResponse { status }))
    }

    async fn pause_connector(&self, request: Request<pb::ConnectorRef>) -> Reply<pb::Empty> {
        self.set_target(&request.into_inner().name, TargetState::Paused)
            .await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn resume_connector(&self, request: Request<pb::ConnectorRef>) -> Reply<pb::Empty> {
        self.set_target(&request.into_inner().name, TargetState::Running)
            .await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn stop_connector(&self, request: Request<pb::ConnectorRef>) -> Reply<pb::Empty> {
        self.set_target(&request.into_inner().name, TargetState::Stopped)
            .await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn delete_connector(&self, request: Request<pb::ConnectorRef>) -> Reply<pb::Empty> {
        let name = request.into_inner().name;
        let txn = Txn::new()
            .when(Condition::Present(keys::connector_config(&name)))
            .delete_prefix(keys::connector_prefix(&name))
            .delete(keys::task_configs(&name))
            .delete(keys::connector_status(&name))
            .delete_prefix(keys::task_status_prefix(&name))
            .delete_prefix(keys::restarts_prefix(&name))
            .delete_prefix(keys::topics_prefix(&name))
            .delete(keys::offsets(&name));
        if !self.store.txn(txn).await? {
            return Err(Error::NotFound(format!("Connector {name} not found")).into());
        }
        tracing::info!(connector = %name, "connector deleted");
        Ok(Response::new(pb::Empty {}))
    }

    async fn list_tasks(&self, request: Request<pb::ConnectorRef>) -> Reply<pb::ListTasksResponse> {
        let name = request.into_inner().name;
        self.existing(&name, || format!("Connector {name} not found"))
            .await?;
        let tasks = read_json::<TaskConfigsRecord>(&self.store, &keys::task_configs(&name))
            .await?
            .unwrap_or_default()
            .configs
            .into_iter()
            .enumerate()
            .map(|(task, config)| pb::TaskInfo {
                id: Some(pb::TaskRef {
                    connector: name.clone(),
                    task: task as i32,
                }),
                config: mask_secrets(&config).into_iter().collect(),
            })
            .collect();
        Ok(Response::new(pb::ListTasksResponse { tasks }))
    }

    async fn get_task_status(&self, request: Request<pb::TaskRef>) -> Reply<pb::TaskStatus> {
        let task = request.into_inner();
        let not_found = || {
            Error::NotFound(format!(
                "No status found for task {}-{}",
                task.connector, task.task
            ))
        };
        let entry = self.entry(&task.connector).await?.ok_or_else(not_found)?;
        let status = self.status(&task.connector, &entry).await?;
        let found = status
            .tasks
            .into_iter()
            .find(|t| t.id == task.task)
            .ok_or_else(not_found)?;
        Ok(Response::new(found))
    }

    async fn restart_task(&self, request: Request<pb::TaskRef>) -> Reply<pb::Empty> {
        let task = request.into_inner();
        let unknown = || Error::NotFound(format!("Unknown task: {}-{}", task.connector, task.task));
        let entry = self.entry(&task.connector).await?.ok_or_else(unknown)?;
        if task.task < 0 || task.task as usize >= entry.task_count {
            return Err(unknown().into());
        }
        let generation = self.restart_generation(&task.connector, task.task).await?;
        let worker =
            read_json::<StatusRecord>(&self.store, &keys::task_status(&task.connector, task.task))
                .await?
                .map(|s| s.worker_id)
                .unwrap_or_default();
        let txn = self.restart_task_ops(
            entry.unchanged(&task.connector, Txn::new()),
            &task.connector,
            task.task,
            generation,
            worker,
        )?;
        if !self.store.txn(txn).await? {
            return Err(Error::Conflict(STALE_CONFIG.to_owned()).into());
        }
        Ok(Response::new(pb::Empty {}))
    }

    async fn get_connector_topics(
        &self,
        request: Request<pb::ConnectorRef>,
    ) -> Reply<pb::ConnectorTopics> {
        let name = request.into_inner().name;
        let topics = self
            .store
            .list(&keys::topics_prefix(&name))
            .await
            .map_err(Status::from)?
            .into_iter()
            .filter_map(|(key, _)| key.rsplit('/').next().map(keys::decode))
            .collect();
        Ok(Response::new(pb::ConnectorTopics { name, topics }))
    }

    async fn get_connector_offsets(
        &self,
        request: Request<pb::ConnectorRef>,
    ) -> Reply<pb::ConnectorOffsets> {
        let name = request.into_inner().name;
        let entry = self
            .existing(&name, || format!("Connector {name} not found"))
            .await?;
        // From where the offsets really are: the offsets store or the
        // sink's consumer group, read by a runner.
        let offsets = self
            .offsets_op(
                &name,
                &entry,
                weir_proto::control::v1::OffsetsOp::Get,
                Vec::new(),
            )
            .await?;
        Ok(Response::new(pb::ConnectorOffsets { offsets }))
    }

    async fn alter_connector_offsets(
        &self,
        request: Request<pb::AlterOffsetsRequest>,
    ) -> Reply<pb::OffsetsMessage> {
        let request = request.into_inner();
        let name = request.name;
        let entry = self.stopped(&name).await?;
        if request.offsets.is_empty() {
            return Err(Error::BadRequest(
                "Partitions / offsets need to be provided for an alter offsets request".to_owned(),
            )
            .into());
        }
        if self.plugin(&entry.config).await?.kind() == Direction::Sink {
            for offset in &request.offsets {
                check_sink_offset(offset)?;
            }
        }
        self.offsets_op(
            &name,
            &entry,
            weir_proto::control::v1::OffsetsOp::Alter,
            request.offsets,
        )
        .await?;
        self.store.delete(&keys::offsets(&name)).await?;
        tracing::info!(connector = %name, "offsets altered");
        Ok(Response::new(pb::OffsetsMessage {
            message: "The offsets for this connector have been altered successfully".to_owned(),
        }))
    }

    async fn reset_connector_offsets(
        &self,
        request: Request<pb::ConnectorRef>,
    ) -> Reply<pb::OffsetsMessage> {
        let name = request.into_inner().name;
        let entry = self.stopped(&name).await?;
        self.offsets_op(
            &name,
            &entry,
            weir_proto::control::v1::OffsetsOp::Reset,
            Vec::new(),
        )
        .await?;
        self.store.delete(&keys::offsets(&name)).await?;
        tracing::info!(connector = %name, "offsets reset");
        Ok(Response::new(pb::OffsetsMessage {
            message: "The offsets for this connector have been reset successfully".to_owned(),
        }))
    }

    async fn list_plugins(
        &self,
        request: Request<pb::ListPluginsRequest>,
    ) -> Reply<pb::ListPluginsResponse> {
        let plugins = self
            .catalog()
            .await?
            .summaries(request.into_inner().connectors_only)
            .into_iter()
            .map(|p| pb::PluginInfo {
                class: p.class,
                r#type: p.plugin_type.to_owned(),
                version: p.version,
            })
            .collect();
        Ok(Response::new(pb::ListPluginsResponse { plugins }))
    }

    async fn list_runners(&self, _request: Request<pb::Empty>) -> Reply<pb::ListRunnersResponse> {
        let mut runners = Vec::new();
        for (record, assignment) in self.runner_assignments().await? {
            let (connectors, tasks) = assignment.map_or_else(Default::default, |a| {
                let tasks = a
                    .tasks
                    .iter()
                    .map(|t| format!("{}-{}", t.connector, t.task))
                    .collect();
                (a.connectors, tasks)
            });
            runners.push(pb::RunnerInfo {
                id: record.runner_id,
                coordinator_id: record.coordinator_id,
                connectors,
                tasks,
            });
        }
        Ok(Response::new(pb::ListRunnersResponse { runners }))
    }

    type TapConnectorStream = crate::tap::TapStream;

    async fn tap_connector(
        &self,
        request: Request<pb::TapRequest>,
    ) -> Reply<Self::TapConnectorStream> {
        let mut request = request.into_inner();
        let name = request.connector.clone();
        let entry = self
            .existing(&name, || format!("Connector {name} not found"))
            .await?;
        if let Some(task) = request.task
            && (task < 0 || task as usize >= entry.task_count)
        {
            return Err(Error::NotFound(format!("Unknown task: {name}-{task}")).into());
        }
        request.max_records_per_second = request.max_records_per_second.min(crate::tap::MAX_RATE);
        // Runners join one coordinator each, and a tap reaches the runners
        // connected here: a tap that would miss tasks running elsewhere is
        // refused rather than silently partial.
        let linked = self.links.runner_ids();
        let mut elsewhere = Vec::new();
        for (record, assignment) in self.runner_assignments().await? {
            if linked.contains(&record.runner_id) {
                continue;
            }
            for task in assignment.iter().flat_map(|a| &a.tasks) {
                if task.connector == name && request.task.is_none_or(|n| n == task.task) {
                    elsewhere.push(format!(
                        "task {} on runner {} of coordinator {}",
                        task.task, record.runner_id, record.coordinator_id
                    ));
                }
            }
        }
        if !elsewhere.is_empty() {
            return Err(Error::Conflict(format!(
                "Connector {name} has tasks on runners connected to other coordinators ({}); tap through those coordinators, one task at a time if they differ",
                elsewhere.join(", ")
            ))
            .into());
        }
        let stream = self.links.tap(request).await?;
        Ok(Response::new(stream))
    }

    async fn list_loggers(&self, _request: Request<pb::Empty>) -> Reply<pb::LoggerLevels> {
        let loggers = weir_connect::logging::loggers()
            .all()
            .into_iter()
            .map(|(name, level)| (name, logger_level(level)))
            .collect();
        Ok(Response::new(pb::LoggerLevels { loggers }))
    }

    async fn get_logger(&self, request: Request<pb::LoggerRef>) -> Reply<pb::LoggerLevel> {
        let name = request.into_inner().name;
        let level = weir_connect::logging::loggers()
            .get(&name)
            .ok_or_else(|| Error::NotFound(format!("Logger {name} not found.")))?;
        Ok(Response::new(logger_level(level)))
    }

    async fn set_log_level(
        &self,
        request: Request<pb::SetLogLevelRequest>,
    ) -> Reply<pb::SetLogLevelResponse> {
        let request = request.into_inner();
        if request.level.trim().is_empty() {
            return Err(Error::BadRequest(
                "Desired 'level' parameter was not specified in request.".to_owned(),
            )
            .into());
        }
        let loggers = weir_connect::logging::loggers();
        let invalid = |level: &str| Error::NotFound(format!("invalid log level '{level}'."));
        let affected = loggers
            .set(&request.name, &request.level)
            .map_err(|weir_connect::logging::LevelError::InvalidLevel(level)| invalid(&level))?;
        if !request.cluster {
            return Ok(Response::new(pb::SetLogLevelResponse { affected }));
        }
        // Every coordinator, and through them every runner, applies it.
        let record = ClusterLogLevel {
            logger: request.name.clone(),
            level: request.level.to_ascii_uppercase(),
            last_modified: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        };
        self.store
            .put(&keys::logger(&request.name), to_json(&record)?)
            .await?;
        tracing::info!(logger = %request.name, level = %record.level, "log level set for the cluster");
        Ok(Response::new(pb::SetLogLevelResponse {
            affected: Vec::new(),
        }))
    }

    async fn get_plugin_config(&self, request: Request<pb::PluginRef>) -> Reply<pb::PluginConfig> {
        let name = request.into_inner().plugin;
        let def = match self.catalog().await?.find(&name) {
            Some(plugin) => Some(plugin.described().config_def),
            None => plugin_def(&name),
        }
        .ok_or_else(|| Error::NotFound(format!("Unknown plugin {name}.")))?;
        Ok(Response::new(pb::PluginConfig {
            keys: def.keys.iter().map(key_definition).collect(),
        }))
    }

    async fn validate_config(
        &self,
        request: Request<pb::ValidateConfigRequest>,
    ) -> Reply<pb::ConfigInfos> {
        let request = request.into_inner();
        let config: ConfigMap = request.config.into_iter().collect();
        let plugin = self.plugin(&config).await?;
        let included = config
            .get("connector.class")
            .map(String::as_str)
            .unwrap_or_default();
        let normalized = |name: &str| name.trim_end_matches("Connector").to_owned();
        if !normalized(included).ends_with(&normalized(&request.plugin)) {
            return Err(Error::BadRequest(format!(
                "Included connector type {included} does not match request type {}",
                request.plugin
            ))
            .into());
        }
        Ok(Response::new(
            config_infos(&plugin, &config, self.override_policy).await,
        ))
    }
}

#[cfg(test)]
mod tests;
