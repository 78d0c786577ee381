//! The connector API: what a connector implements, in-process or behind the
//! gRPC connector protocol (`proto/weir/connector/v2`), whose messages these
//! traits mirror: `describe`/`validate`/`task_configs` on [`ConnectorPlugin`],
//! `open`/`poll`/`commit`/`stop` on [`SourceTask`], `open`/`put`/`flush`/`stop`
//! on [`SinkTask`].

use async_trait::async_trait;

use crate::config::{ConfigDef, ConfigMap, Direction};
use crate::data::SchemaAndValue;

/// A topic name, shared: a task's records nearly all go to (or come from)
/// a few topics, so each record holds a count on one name, not a copy.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Topic(std::sync::Arc<str>);

impl Topic {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Topic {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Topic {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Topic {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// How many names [`TopicNames`] keeps: a task reads or writes a few topics;
/// past this, names are no longer shared.
const KNOWN_TOPICS: usize = 64;

/// The topic names a task has seen, so that its records of one topic share
/// one name instead of each allocating a copy.
#[derive(Debug, Default)]
pub struct TopicNames(std::sync::Mutex<Vec<Topic>>);

impl TopicNames {
    /// The shared name for `name`.
    pub fn get(&self, name: &str) -> Topic {
        let mut known = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(topic) = known.iter().find(|topic| **topic == *name) {
            return topic.clone();
        }
        let topic = Topic::from(name);
        if known.len() < KNOWN_TOPICS {
            known.push(topic.clone());
        }
        topic
    }
}

impl serde::Serialize for Topic {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl std::fmt::Debug for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::fmt::Display for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Topic {
    fn from(name: &str) -> Self {
        Topic(name.into())
    }
}

impl From<String> for Topic {
    fn from(name: String) -> Self {
        Topic(name.into())
    }
}

impl From<&String> for Topic {
    fn from(name: &String) -> Self {
        Topic(name.as_str().into())
    }
}

impl PartialEq<str> for Topic {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for Topic {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<String> for Topic {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<Topic> for str {
    fn eq(&self, other: &Topic) -> bool {
        *self == *other.0
    }
}

impl PartialEq<Topic> for &str {
    fn eq(&self, other: &Topic) -> bool {
        **self == *other.0
    }
}

impl PartialEq<Topic> for String {
    fn eq(&self, other: &Topic) -> bool {
        **self == *other.0
    }
}

/// A JSON object, as Kafka Connect keeps source partitions and offsets.
pub type JsonMap = serde_json::Map<String, serde_json::Value>;

/// Whether a connector is a source or a sink.
pub type ConnectorKind = Direction;

/// A source record's offset within its source partition: a JSON object, as
/// Kafka Connect keeps it, with the common one-number form (a file
/// position, a log sequence number) held without allocating, since a
/// source makes one per record.
#[derive(Debug, Clone)]
pub enum SourceOffset {
    /// `{key: value}`.
    Number(&'static str, i64),
    /// Any JSON object.
    Map(JsonMap),
}

impl SourceOffset {
    /// The offset as Kafka Connect's JSON object.
    pub fn to_map(&self) -> JsonMap {
        match self {
            SourceOffset::Number(key, value) => {
                JsonMap::from_iter([((*key).to_owned(), serde_json::Value::from(*value))])
            }
            SourceOffset::Map(map) => map.clone(),
        }
    }

    /// The offset as Kafka Connect's JSON object, taking it.
    pub fn into_map(self) -> JsonMap {
        match self {
            SourceOffset::Map(map) => map,
            number => number.to_map(),
        }
    }

    /// The value of one key of the offset.
    pub fn get(&self, key: &str) -> Option<serde_json::Value> {
        match self {
            SourceOffset::Number(name, value) => (*name == key).then(|| (*value).into()),
            SourceOffset::Map(map) => map.get(key).cloned(),
        }
    }
}

impl Default for SourceOffset {
    fn default() -> Self {
        SourceOffset::Map(JsonMap::new())
    }
}

impl From<JsonMap> for SourceOffset {
    fn from(map: JsonMap) -> Self {
        SourceOffset::Map(map)
    }
}

/// Offsets are equal when their JSON objects are.
impl PartialEq for SourceOffset {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (SourceOffset::Number(a, x), SourceOffset::Number(b, y)) => a == b && x == y,
            (SourceOffset::Map(a), SourceOffset::Map(b)) => a == b,
            _ => self.to_map() == other.to_map(),
        }
    }
}

impl serde::Serialize for SourceOffset {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            SourceOffset::Number(key, value) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry(key, value)?;
                map.end()
            }
            SourceOffset::Map(map) => map.serialize(serializer),
        }
    }
}

/// A committed position: a source partition and the offset within it.
#[derive(Debug, Clone, PartialEq)]
pub struct SourcePosition {
    pub partition: JsonMap,
    pub offset: JsonMap,
}

/// A record header.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub key: String,
    pub value: SchemaAndValue,
}

/// A record produced by a source task.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord {
    /// Shared: a task's records usually come from one partition, so this is
    /// built once and cloned cheaply per record.
    pub source_partition: std::sync::Arc<JsonMap>,
    pub source_offset: SourceOffset,
    pub topic: Topic,
    pub kafka_partition: Option<i32>,
    pub key: SchemaAndValue,
    pub value: SchemaAndValue,
    pub timestamp_ms: Option<i64>,
    pub headers: Vec<Header>,
}

/// A record delivered to a sink task.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkRecord {
    pub topic: Topic,
    pub partition: i32,
    pub offset: i64,
    pub key: SchemaAndValue,
    pub value: SchemaAndValue,
    pub timestamp_ms: Option<i64>,
    pub headers: Vec<Header>,
}

/// A topic partition and the next offset to consume from it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicPartitionOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// Errors a connector reports. Retriable ones may succeed when tried again.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Retriable(String),
    #[error("{0}")]
    Fatal(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// From a sink's `put`: the batch was taken except these records. The
    /// runner puts the retriable ones again, and sends the others through
    /// error tolerance (`errors.tolerance`, the DLQ), as Kafka Connect's
    /// errant record reporter does.
    #[error("{} record(s) failed, the first: {}", .0.len(), .0.first().map_or("", |r| r.message.as_str()))]
    Records(Vec<RecordError>),
    /// From a sink that keeps a batch in flight past `put` (a sidecar sink):
    /// records of an earlier `put` that failed. The call that returns it did
    /// not do its own work: a `put`'s batch was not taken, a flush did not
    /// flush. The runner puts the retriable records again, ahead of anything
    /// newer, and sends the others through error tolerance.
    #[error("{} record(s) of an earlier put failed, the first: {}", .0.len(), .0.first().map_or("", |r| r.message.as_str()))]
    Earlier(Vec<EarlierFailure>),
}

/// A record of an earlier `put` that failed (see [`ConnectorError::Earlier`]).
#[derive(Debug, Clone, PartialEq)]
pub struct EarlierFailure {
    pub record: SinkRecord,
    pub retriable: bool,
    pub message: String,
}

/// One record of a `put` batch that failed on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// Its index in the batch.
    pub index: usize,
    pub retriable: bool,
    pub message: String,
}

impl ConnectorError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ConnectorError::Io {
            context: context.into(),
            source,
        }
    }

    pub fn is_retriable(&self) -> bool {
        matches!(self, ConnectorError::Retriable(_))
    }
}

pub type Result<T, E = ConnectorError> = std::result::Result<T, E>;

/// A connector plugin: describes itself, validates configs, splits work into
/// task configs and creates tasks. `validate` and `task_configs` are async
/// because a sidecar plugin answers them over the wire.
#[async_trait]
pub trait ConnectorPlugin: Send + Sync {
    /// Fully qualified class name, e.g. `org.apache.kafka.connect.file.FileStreamSourceConnector`.
    fn class(&self) -> &'static str;
    fn kind(&self) -> ConnectorKind;
    fn version(&self) -> &'static str {
        env!("CARGO_PKG_VERSION")
    }
    /// The connector's own keys (without the base keys every connector has).
    fn config_def(&self) -> ConfigDef;
    /// Cross-key checks beyond [`ConfigDef`]; the default has none.
    async fn validate(&self, _config: &ConfigMap) -> Vec<(String, Vec<String>)> {
        Vec::new()
    }
    /// Splits the connector config into at most `max_tasks` task configs.
    async fn task_configs(&self, config: &ConfigMap, max_tasks: usize) -> Result<Vec<ConfigMap>>;
    fn create_task(&self) -> Task;
    /// Creates the task that will run as `identity`; plugins whose tasks
    /// live elsewhere (sidecars) need to know which one it is.
    fn create_task_for(&self, _identity: &TaskIdentity) -> Task {
        self.create_task()
    }
    /// Where the plugin comes from, for messages: built in, or a sidecar.
    fn origin(&self) -> String {
        "built-in".to_owned()
    }
    /// Runs beside a connector instance for as long as it runs, to watch the
    /// external system: a connector whose work changes (a new table, a new
    /// file) calls [`ConnectorContext::request_task_reconfiguration`], and the
    /// runner makes its task configs again. Returning ends the watch, not
    /// the connector; an error fails the connector. The default watches
    /// nothing.
    async fn monitor(&self, _config: &ConfigMap, _context: ConnectorContext) -> Result<()> {
        Ok(())
    }
}

/// What a connector instance may ask of the runner that hosts it (Kafka
/// Connect's `ConnectorContext`).
#[derive(Debug, Clone)]
pub struct ConnectorContext {
    reconfigure: tokio::sync::mpsc::UnboundedSender<()>,
}

impl ConnectorContext {
    pub fn new(reconfigure: tokio::sync::mpsc::UnboundedSender<()>) -> Self {
        ConnectorContext { reconfigure }
    }

    /// Asks for the task configs to be made again; tasks whose config
    /// changes are restarted with the new one.
    pub fn request_task_reconfiguration(&self) {
        // The instance is gone if nobody receives: nothing left to reconfigure.
        let _ = self.reconfigure.send(());
    }
}

/// Which task of which connector: the one name for a task everywhere (the
/// coordinator stores it, the runner keys its tasks by it).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct TaskId {
    pub connector: String,
    pub task: i32,
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.connector, self.task)
    }
}

/// Which task of which connector, under which assignment epoch: one
/// incarnation of a [`TaskId`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskIdentity {
    pub connector: String,
    pub task: i32,
    pub epoch: u64,
}

/// A task instance of either kind.
pub enum Task {
    Source(Box<dyn SourceTask>),
    Sink(Box<dyn SinkTask>),
}

/// A task reading from an external system.
#[async_trait]
pub trait SourceTask: Send {
    /// Starts the task with the positions committed so far for its connector.
    async fn open(&mut self, config: &ConfigMap, positions: &[SourcePosition]) -> Result<()>;
    /// Returns the next records; an empty batch means nothing is available
    /// now. Implementations wait briefly rather than spin, and must be safe to
    /// cancel at any await point.
    async fn poll(&mut self, max_records: usize) -> Result<Vec<SourceRecord>>;
    /// These positions are durably stored; upstream may be pruned up to them.
    async fn commit(&mut self, _positions: &[SourcePosition]) -> Result<()> {
        Ok(())
    }
    async fn stop(&mut self) -> Result<()>;
}

/// A task writing to an external system.
#[async_trait]
pub trait SinkTask: Send {
    async fn open(&mut self, config: &ConfigMap) -> Result<()>;
    /// Borrowed, as Kafka Connect's `put(Collection)`: a sink that keeps
    /// records past the call copies them.
    async fn put(&mut self, records: &[SinkRecord]) -> Result<()>;
    /// Whether a batch already put may still fail: the task keeps one in
    /// flight past `put` (see [`ConnectorError::Earlier`]).
    fn unsettled(&self) -> bool {
        false
    }
    /// Waits until every batch put so far has been taken, returning
    /// [`ConnectorError::Earlier`] for records that failed. A task that takes
    /// its batch within `put` (the default) has nothing to wait for. Must be
    /// cancel-safe: the runner waits for it beside new records.
    async fn settle(&mut self) -> Result<()> {
        Ok(())
    }
    /// Makes everything put so far durable; the runner commits `offsets` to
    /// Kafka only after this returns.
    async fn flush(&mut self, offsets: &[TopicPartitionOffset]) -> Result<()>;
    /// Kafka Connect's `preCommit`: which of `offsets` (the next offset to
    /// read of each partition consumed since the last commit) are safe to
    /// commit now. The default flushes and answers all of them; a sink that
    /// writes asynchronously answers only what has landed.
    async fn pre_commit(
        &mut self,
        offsets: &[TopicPartitionOffset],
    ) -> Result<Vec<TopicPartitionOffset>> {
        self.flush(offsets).await?;
        Ok(offsets.to_vec())
    }
    /// The task now reads these partitions (Kafka Connect's `open`).
    async fn open_partitions(&mut self, _partitions: &[(String, i32)]) -> Result<()> {
        Ok(())
    }
    /// The task no longer reads these partitions (Kafka Connect's `close`);
    /// offsets of theirs not yet committed are read again by their next owner.
    async fn close_partitions(&mut self, _partitions: &[(String, i32)]) -> Result<()> {
        Ok(())
    }
    async fn stop(&mut self) -> Result<()>;
}

/// The short names a connector class also answers to: its simple name and
/// the simple name without `Connector` (`FileStreamSource`).
pub fn aliases(class: &str) -> Vec<String> {
    let simple = class.rsplit('.').next().unwrap_or(class);
    let mut aliases = vec![simple.to_owned()];
    if let Some(short) = simple.strip_suffix("Connector") {
        aliases.push(short.to_owned());
    }
    aliases
}

/// Whether `name` names the connector `class`: the full name or an alias.
pub fn answers_to(class: &str, name: &str) -> bool {
    let name = name.trim();
    name == class || aliases(class).iter().any(|alias| alias == name)
}
