//! Source offset storage. Offsets are written only after Kafka acknowledged
//! the records they cover. Standalone mode keeps them in a local JSON file;
//! distributed mode in a compacted topic whose records have Kafka Connect's
//! shape: key `["<connector>",{<partition>}]`, value `{<offset>}`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value as Json, json};
use tokio::sync::Mutex;
use weir_connect::api::{JsonMap, SourcePosition};

use crate::clients::{ClientSettings, WatchedContext};
use crate::error::{Error, Result};

/// Where a runner reads and writes source offsets.
#[async_trait::async_trait]
pub trait OffsetStore: Send + Sync {
    /// Every committed position of `connector`.
    async fn load(&self, connector: &str) -> Result<Vec<SourcePosition>>;
    /// Durably stores positions; returns once they are safe.
    async fn commit(&self, connector: &str, positions: &[SourcePosition]) -> Result<()>;
    /// Durably forgets the positions of these partitions (the offsets
    /// API's reset): a task started afterwards begins them afresh.
    async fn remove(&self, connector: &str, partitions: &[JsonMap]) -> Result<()>;
}

/// Canonical text of a partition, to key maps by it.
fn partition_key(partition: &JsonMap) -> String {
    Json::Object(partition.clone()).to_string()
}

/// Every connector's positions, by connector and then by partition key.
type AllPositions = BTreeMap<String, BTreeMap<String, SourcePosition>>;

/// Offsets in a local JSON file: `{"<connector>": [{"partition":…,"offset":…}]}`.
pub struct FileOffsetStore {
    path: PathBuf,
    /// Also serializes writes: a write holds the guard until it is on disk,
    /// even when the commit that started it was given up.
    cache: Arc<Mutex<Option<AllPositions>>>,
}

impl FileOffsetStore {
    pub fn new(path: PathBuf) -> Self {
        FileOffsetStore {
            path,
            cache: Arc::new(Mutex::new(None)),
        }
    }

    async fn read_file(&self) -> Result<AllPositions> {
        let bytes = match tokio::fs::read(&self.path).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => {
                return Err(Error::Offsets(format!(
                    "reading {}: {e}",
                    self.path.display()
                )));
            }
        };
        let document: BTreeMap<String, Vec<Json>> = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Offsets(format!("parsing {}: {e}", self.path.display())))?;
        let mut all = BTreeMap::new();
        for (connector, entries) in document {
            let mut positions = BTreeMap::new();
            for entry in entries {
                if let (Some(Json::Object(partition)), Some(Json::Object(offset))) =
                    (entry.get("partition"), entry.get("offset"))
                {
                    positions.insert(
                        partition_key(partition),
                        SourcePosition {
                            partition: partition.clone(),
                            offset: offset.clone(),
                        },
                    );
                }
            }
            all.insert(connector, positions);
        }
        Ok(all)
    }
}

#[async_trait::async_trait]
impl OffsetStore for FileOffsetStore {
    async fn load(&self, connector: &str) -> Result<Vec<SourcePosition>> {
        let mut cache = self.cache.clone().lock_owned().await;
        if cache.is_none() {
            *cache = Some(self.read_file().await?);
        }
        Ok(cache
            .as_ref()
            .and_then(|all| all.get(connector))
            .map(|positions| positions.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn commit(&self, connector: &str, positions: &[SourcePosition]) -> Result<()> {
        self.change(connector, |entry| {
            for position in positions {
                entry.insert(partition_key(&position.partition), position.clone());
            }
        })
        .await
    }

    async fn remove(&self, connector: &str, partitions: &[JsonMap]) -> Result<()> {
        self.change(connector, |entry| {
            for partition in partitions {
                entry.remove(&partition_key(partition));
            }
        })
        .await
    }
}

impl FileOffsetStore {
    /// Changes one connector's positions and writes the file durably.
    async fn change(
        &self,
        connector: &str,
        change: impl FnOnce(&mut BTreeMap<String, SourcePosition>),
    ) -> Result<()> {
        let mut cache = self.cache.clone().lock_owned().await;
        if cache.is_none() {
            *cache = Some(self.read_file().await?);
        }
        let Some(all) = cache.as_mut() else {
            return Err(Error::Internal("offset cache missing".into()));
        };
        change(all.entry(connector.to_owned()).or_default());
        let document: BTreeMap<&String, Vec<Json>> = all
            .iter()
            .map(|(connector, positions)| {
                let list = positions
                    .values()
                    .map(|p| json!({"partition": p.partition, "offset": p.offset}))
                    .collect();
                (connector, list)
            })
            .collect();
        let bytes =
            serde_json::to_vec_pretty(&document).map_err(|e| Error::Offsets(e.to_string()))?;
        let path = self.path.clone();
        let write = tokio::task::spawn_blocking(move || {
            let written = weir_connect::durable::replace_file(&path, &bytes);
            drop(cache);
            written
        });
        write
            .await
            .map_err(|e| Error::Internal(format!("offsets writer panicked: {e}")))?
            .map_err(|e| Error::Offsets(format!("writing {}: {e}", self.path.display())))
    }
}

/// Whether the broker knows `topic` (brokers that auto-create may create it here).
fn topic_exists(settings: &ClientSettings, topic: &str) -> Result<bool> {
    let (consumer, _): (BaseConsumer<WatchedContext>, _) = settings.create()?;
    let metadata = consumer.fetch_metadata(Some(topic), READ_TIMEOUT)?;
    Ok(metadata
        .topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty()))
}

/// How a topic Weir depends on is created when it is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSpec {
    pub partitions: i32,
    pub replication_factor: i32,
    pub compacted: bool,
}

/// Creates `topic` unless the broker already has it (or creates it on lookup).
pub async fn ensure_topic(settings: &ClientSettings, topic: &str, spec: TopicSpec) -> Result<()> {
    let known = {
        let settings = settings.clone();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || topic_exists(&settings, &topic))
            .await
            .map_err(|e| Error::Internal(format!("metadata lookup panicked: {e}")))??
    };
    if known {
        return Ok(());
    }
    let (admin, _): (AdminClient<WatchedContext>, _) = settings.create()?;
    let mut new_topic = NewTopic::new(
        topic,
        spec.partitions,
        TopicReplication::Fixed(spec.replication_factor),
    );
    if spec.compacted {
        new_topic = new_topic.set("cleanup.policy", "compact");
    }
    let options = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(15)));
    for result in admin.create_topics([&new_topic], &options).await? {
        match result {
            Ok(name) => tracing::info!(topic = %name, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(Error::Offsets(format!("creating topic {name}: {code}")));
            }
        }
    }
    Ok(())
}

/// Offsets in a compacted Kafka topic, as Kafka Connect's `connect-offsets`.
/// One reader per runner follows the whole topic into memory (Kafka
/// Connect's `KafkaBasedLog`): a task's `load` waits until the reader has
/// caught up with the topic's end as it is now, then answers from memory.
/// Reading the topic from the start for each task instead made task starts
/// slower the more tasks ran (issue 21).
pub struct TopicOffsetStore {
    topic: String,
    producer: FutureProducer<WatchedContext>,
    log: Arc<OffsetLog>,
}

/// What the reader of the offsets topic has read so far.
#[derive(Default)]
struct LogState {
    /// By connector, then by partition key: the latest offset (`None`: a
    /// tombstone).
    latest: BTreeMap<String, BTreeMap<String, Option<SourcePosition>>>,
    /// The next offset the reader will read, by topic partition.
    next: BTreeMap<i32, i64>,
    /// The reader ended (the store was dropped, or the consumer failed).
    ended: Option<String>,
}

/// The topic's reader: its consumer, run on a thread of its own, and what
/// it read, with a condition variable that tells waiting loads of progress.
struct OffsetLog {
    topic: String,
    consumer: BaseConsumer<WatchedContext>,
    state: std::sync::Mutex<LogState>,
    progressed: std::sync::Condvar,
    stop: std::sync::atomic::AtomicBool,
}

impl OffsetLog {
    fn state(&self) -> std::sync::MutexGuard<'_, LogState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads the topic until stopped.
    fn follow(&self) {
        while !self.stop.load(std::sync::atomic::Ordering::Relaxed) {
            let Some(message) = self.consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let message = match message {
                Ok(message) => message,
                Err(error) => {
                    tracing::debug!(topic = %self.topic, %error, "offsets reader error; retrying");
                    continue;
                }
            };
            let mut state = self.state();
            state.next.insert(message.partition(), message.offset() + 1);
            if let Some((connector, key, position)) = offset_record(&message) {
                state
                    .latest
                    .entry(connector)
                    .or_default()
                    .insert(key, position);
            }
            drop(state);
            self.progressed.notify_all();
        }
        self.state().ended = Some("the offsets reader stopped".to_owned());
        self.progressed.notify_all();
    }

    /// `connector`'s positions once everything written to the topic before
    /// this call has been read. Blocks: call on a blocking thread.
    fn load(&self, connector: &str) -> Result<Vec<SourcePosition>> {
        // Each assigned partition's end, as a watermark query (one round trip
        // each; the reader is assigned every partition when it opens).
        let assigned = self.consumer.assignment()?;
        let mut ends = BTreeMap::new();
        for partition in assigned.elements() {
            let (_, high) =
                self.consumer
                    .fetch_watermarks(&self.topic, partition.partition(), READ_TIMEOUT)?;
            ends.insert(partition.partition(), high);
        }
        let deadline = std::time::Instant::now() + READ_TIMEOUT;
        let mut state = self.state();
        loop {
            if let Some(reason) = &state.ended {
                return Err(Error::Offsets(format!(
                    "reading offsets topic {}: {reason}",
                    self.topic
                )));
            }
            let caught_up = ends.iter().all(|(partition, end)| {
                // An empty (or wholly compacted away) partition has nothing to read.
                *end <= 0 || state.next.get(partition).is_some_and(|next| next >= end)
            });
            if caught_up {
                return Ok(state
                    .latest
                    .get(connector)
                    .map(|positions| positions.values().flatten().cloned().collect())
                    .unwrap_or_default());
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(Error::Offsets(format!(
                    "timed out reading offsets topic {}",
                    self.topic
                )));
            }
            state = self
                .progressed
                .wait_timeout(state, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }
}

impl Drop for TopicOffsetStore {
    fn drop(&mut self) {
        self.log
            .stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A record of the offsets topic as (connector, partition key, position);
/// `None` for a record that is not one (another tool's, malformed).
fn offset_record<M: Message>(message: &M) -> Option<(String, String, Option<SourcePosition>)> {
    let Some(Ok(Json::Array(key))) = message.key().map(serde_json::from_slice::<Json>) else {
        return None;
    };
    let (Some(Json::String(owner)), Some(Json::Object(partition))) = (key.first(), key.get(1))
    else {
        return None;
    };
    let position = match message.payload().map(serde_json::from_slice::<Json>) {
        Some(Ok(Json::Object(offset))) => Some(SourcePosition {
            partition: partition.clone(),
            offset,
        }),
        _ => None,
    };
    Some((owner.clone(), partition_key(partition), position))
}

const READ_TIMEOUT: Duration = Duration::from_secs(30);

impl TopicOffsetStore {
    /// Waits for every write to the offsets topic; the first failure fails all.
    async fn all_written<F, D>(&self, deliveries: impl IntoIterator<Item = F>) -> Result<()>
    where
        F: std::future::Future<
                Output = std::result::Result<
                    D,
                    (rdkafka::error::KafkaError, rdkafka::message::OwnedMessage),
                >,
            >,
    {
        for delivery in futures::future::join_all(deliveries).await {
            delivery.map_err(|(error, _)| {
                Error::Offsets(format!("writing offsets topic {}: {error}", self.topic))
            })?;
        }
        Ok(())
    }

    /// Creates the topic (compacted) if the broker allows it, and a producer for it.
    pub async fn open(
        settings: ClientSettings,
        topic: String,
        partitions: i32,
        replication_factor: i32,
    ) -> Result<Arc<Self>> {
        let spec = TopicSpec {
            partitions,
            replication_factor,
            compacted: true,
        };
        ensure_topic(&settings, &topic, spec).await?;
        let mut producer_settings = settings.clone();
        producer_settings.apply_producer_defaults();
        producer_settings.set("linger.ms", "0");
        // A flush that cannot be written in time fails and is retried at
        // the next flush (`offset.flush.interval.ms`) instead of waiting forever.
        producer_settings.set("delivery.timeout.ms", "30000");
        // Keys land in the partition Kafka Connect's Java workers choose, so
        // an offsets topic shared with (or migrated from) them stays consistent.
        producer_settings.set("partitioner", "murmur2_random");
        let (producer, _) = producer_settings.create()?;
        let log = tokio::task::spawn_blocking({
            let (settings, topic) = (settings.clone(), topic.clone());
            move || OffsetLog::open(&settings, &topic)
        })
        .await
        .map_err(|e| Error::Internal(format!("offsets reader panicked: {e}")))??;
        let log = Arc::new(log);
        let following = log.clone();
        std::thread::Builder::new()
            .name("offsets-reader".to_owned())
            .spawn(move || following.follow())
            .map_err(|e| Error::Internal(format!("cannot start the offsets reader: {e}")))?;
        Ok(Arc::new(TopicOffsetStore {
            topic,
            producer,
            log,
        }))
    }
}

impl OffsetLog {
    /// A consumer of every partition of the topic, from the start.
    fn open(settings: &ClientSettings, topic: &str) -> Result<OffsetLog> {
        let mut consumer_settings = settings.clone();
        consumer_settings.set("group.id", "weir-offsets-reader");
        consumer_settings.set("enable.auto.commit", "false");
        consumer_settings.set("enable.partition.eof", "false");
        // A broker that does not answer a waiting fetch as soon as data
        // arrives (librdkafka's mock cluster) would otherwise hold every
        // `load`, and so every task start, for up to 500 ms.
        consumer_settings.set("fetch.wait.max.ms", "50");
        let (consumer, _): (BaseConsumer<WatchedContext>, _) = consumer_settings.create()?;
        let metadata = consumer.fetch_metadata(Some(topic), READ_TIMEOUT)?;
        let mut assignment = TopicPartitionList::new();
        for found in metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
        {
            for partition in found.partitions() {
                assignment.add_partition_offset(topic, partition.id(), Offset::Beginning)?;
            }
        }
        consumer.assign(&assignment)?;
        Ok(OffsetLog {
            topic: topic.to_owned(),
            consumer,
            state: std::sync::Mutex::new(LogState::default()),
            progressed: std::sync::Condvar::new(),
            stop: std::sync::atomic::AtomicBool::new(false),
        })
    }
}

#[async_trait::async_trait]
impl OffsetStore for TopicOffsetStore {
    async fn load(&self, connector: &str) -> Result<Vec<SourcePosition>> {
        let log = self.log.clone();
        let connector = connector.to_owned();
        tokio::task::spawn_blocking(move || log.load(&connector))
            .await
            .map_err(|e| Error::Internal(format!("offsets reader panicked: {e}")))?
    }

    async fn commit(&self, connector: &str, positions: &[SourcePosition]) -> Result<()> {
        let encoded: Vec<(String, String)> = positions
            .iter()
            .map(|p| {
                (
                    json!([connector, p.partition]).to_string(),
                    Json::Object(p.offset.clone()).to_string(),
                )
            })
            .collect();
        let deliveries = encoded.iter().map(|(key, value)| {
            self.producer.send(
                FutureRecord::to(&self.topic).key(key).payload(value),
                Duration::from_secs(30),
            )
        });
        self.all_written(deliveries).await
    }

    /// Tombstones: the compacted topic forgets these partitions.
    async fn remove(&self, connector: &str, partitions: &[JsonMap]) -> Result<()> {
        let keys: Vec<String> = partitions
            .iter()
            .map(|partition| json!([connector, partition]).to_string())
            .collect();
        let deliveries = keys.iter().map(|key| {
            self.producer.send(
                FutureRecord::<String, [u8]>::to(&self.topic).key(key),
                Duration::from_secs(30),
            )
        });
        self.all_written(deliveries).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position(file: &str, at: u64) -> SourcePosition {
        let mut partition = JsonMap::new();
        partition.insert("filename".into(), json!(file));
        let mut offset = JsonMap::new();
        offset.insert("position".into(), json!(at));
        SourcePosition { partition, offset }
    }

    #[tokio::test]
    async fn file_store_survives_reopen_and_keeps_latest_per_partition() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("offsets.json");
        {
            let store = FileOffsetStore::new(path.clone());
            store
                .commit("c", &[position("a", 10), position("b", 3)])
                .await
                .unwrap();
            store.commit("c", &[position("a", 20)]).await.unwrap();
            store.commit("other", &[position("a", 1)]).await.unwrap();
        }
        let store = FileOffsetStore::new(path);
        let mut loaded = store.load("c").await.unwrap();
        loaded.sort_by_key(|p| p.partition["filename"].to_string());
        assert_eq!(loaded, vec![position("a", 20), position("b", 3)]);
        assert!(store.load("missing").await.unwrap().is_empty());
    }
}
