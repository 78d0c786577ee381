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
pub struct TopicOffsetStore {
    topic: String,
    settings: ClientSettings,
    producer: FutureProducer<WatchedContext>,
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
        Ok(Arc::new(TopicOffsetStore {
            topic,
            settings,
            producer,
        }))
    }

    /// Reads the whole topic up to its end: the latest offset per partition key.
    fn read_all(
        settings: &ClientSettings,
        topic: &str,
        connector: &str,
    ) -> Result<Vec<SourcePosition>> {
        let mut consumer_settings = settings.clone();
        consumer_settings.set("group.id", "weir-offsets-reader");
        consumer_settings.set("enable.auto.commit", "false");
        consumer_settings.set("enable.partition.eof", "false");
        let (consumer, _): (BaseConsumer<WatchedContext>, _) = consumer_settings.create()?;
        let metadata = consumer.fetch_metadata(Some(topic), READ_TIMEOUT)?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        let mut ends = BTreeMap::new();
        let mut assignment = TopicPartitionList::new();
        for partition in partitions {
            let (low, high) = consumer.fetch_watermarks(topic, partition, READ_TIMEOUT)?;
            if high > low {
                ends.insert(partition, high);
                assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
            }
        }
        let mut latest: BTreeMap<String, Option<SourcePosition>> = BTreeMap::new();
        if ends.is_empty() {
            return Ok(Vec::new());
        }
        consumer.assign(&assignment)?;
        let deadline = std::time::Instant::now() + READ_TIMEOUT;
        while !ends.is_empty() {
            if std::time::Instant::now() > deadline {
                return Err(Error::Offsets(format!(
                    "timed out reading offsets topic {topic}"
                )));
            }
            let Some(message) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let message = message?;
            if ends
                .get(&message.partition())
                .is_some_and(|end| message.offset() + 1 >= *end)
            {
                ends.remove(&message.partition());
            }
            let Some(Ok(Json::Array(key))) = message.key().map(serde_json::from_slice::<Json>)
            else {
                continue;
            };
            let (Some(Json::String(owner)), Some(Json::Object(partition))) =
                (key.first(), key.get(1))
            else {
                continue;
            };
            if owner != connector {
                continue;
            }
            let offset = match message.payload().map(serde_json::from_slice::<Json>) {
                Some(Ok(Json::Object(offset))) => Some(SourcePosition {
                    partition: partition.clone(),
                    offset,
                }),
                _ => None,
            };
            latest.insert(partition_key(partition), offset);
        }
        Ok(latest.into_values().flatten().collect())
    }
}

#[async_trait::async_trait]
impl OffsetStore for TopicOffsetStore {
    async fn load(&self, connector: &str) -> Result<Vec<SourcePosition>> {
        let settings = self.settings.clone();
        let topic = self.topic.clone();
        let connector = connector.to_owned();
        tokio::task::spawn_blocking(move || Self::read_all(&settings, &topic, &connector))
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
