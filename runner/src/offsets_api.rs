//! The runner's side of the offsets API (KIP-875): reads or changes a
//! stopped connector's offsets where they really are. A source's are in the
//! offsets store (file or topic; a reset writes tombstones); a sink's are its
//! consumer group's committed offsets (`connect-<name>`, or
//! `consumer.override.group.id`). A sink reset commits, for every partition
//! of its topics, where a consumer without offsets would start (the earliest
//! offset, or the latest with `auto.offset.reset=latest`): it works with
//! every broker, including the embedded one, which has no DeleteGroups.
//! Every change is durable before the answer.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value as Json, json};
use weir_connect::api::{JsonMap, SourcePosition};
use weir_connect::config::{ConfigMap, Direction};
use weir_proto::control::v1 as pb;

use crate::clients::{ClientRole, WatchedContext};
use crate::config::WorkerConfig;
use crate::offsets::OffsetStore;

const KAFKA_TIMEOUT: Duration = Duration::from_secs(15);

type Outcome = Result<Vec<pb::SourceOffset>, String>;

fn entry(partition: &JsonMap, offset: Option<&JsonMap>) -> pb::SourceOffset {
    pb::SourceOffset {
        partition_json: Json::Object(partition.clone()).to_string(),
        offset_json: offset.map_or_else(String::new, |o| Json::Object(o.clone()).to_string()),
    }
}

fn object(text: &str, what: &str) -> Result<JsonMap, String> {
    match serde_json::from_str(text) {
        Ok(Json::Object(map)) => Ok(map),
        _ => Err(format!("the {what} must be a JSON object")),
    }
}

/// Carries out one offsets request for a connector of kind `kind`.
pub async fn handle(
    request: &pb::OffsetsRequest,
    kind: Direction,
    worker: &WorkerConfig,
    store: &dyn OffsetStore,
) -> Outcome {
    let op = pb::OffsetsOp::try_from(request.op).map_err(|_| "unknown offsets operation")?;
    let config: ConfigMap = request.config.clone().into_iter().collect();
    match kind {
        Direction::Source => source(op, request, store).await,
        Direction::Sink => sink(op, request, &config, worker).await,
    }
}

async fn source(
    op: pb::OffsetsOp,
    request: &pb::OffsetsRequest,
    store: &dyn OffsetStore,
) -> Outcome {
    let connector = &request.connector;
    let stored = store.load(connector).await.map_err(|e| e.to_string())?;
    match op {
        pb::OffsetsOp::Get => Ok(stored
            .iter()
            .map(|p| entry(&p.partition, Some(&p.offset)))
            .collect()),
        pb::OffsetsOp::Reset => {
            let partitions: Vec<JsonMap> = stored.into_iter().map(|p| p.partition).collect();
            store
                .remove(connector, &partitions)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Vec::new())
        }
        pb::OffsetsOp::Alter => {
            let mut positions = Vec::new();
            let mut removed = Vec::new();
            for offset in &request.offsets {
                let partition = object(&offset.partition_json, "source partition")?;
                if offset.offset_json.is_empty() {
                    removed.push(partition);
                } else {
                    let offset = object(&offset.offset_json, "source offset")?;
                    positions.push(SourcePosition { partition, offset });
                }
            }
            if !positions.is_empty() {
                store
                    .commit(connector, &positions)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            if !removed.is_empty() {
                store
                    .remove(connector, &removed)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok(Vec::new())
        }
    }
}

fn group_of(connector: &str, config: &ConfigMap) -> String {
    config
        .get("consumer.override.group.id")
        .cloned()
        .unwrap_or_else(|| format!("connect-{connector}"))
}

async fn sink(
    op: pb::OffsetsOp,
    request: &pb::OffsetsRequest,
    config: &ConfigMap,
    worker: &WorkerConfig,
) -> Outcome {
    let group = group_of(&request.connector, config);
    let mut settings = worker
        .client_settings(config, ClientRole::Consumer)
        .map_err(|e| e.to_string())?;
    settings.set("group.id", &group);
    settings.set("enable.auto.commit", "false");
    let subscription = crate::sink::Subscription::from_config(config).map_err(|e| e.to_string())?;
    let offsets = request.offsets.clone();
    let reset_to_latest = config
        .get("consumer.override.auto.offset.reset")
        .or_else(|| worker.properties.get("consumer.auto.offset.reset"))
        .is_some_and(|reset| reset.trim() == "latest");
    match op {
        pb::OffsetsOp::Get | pb::OffsetsOp::Alter | pb::OffsetsOp::Reset => {
            tokio::task::spawn_blocking(move || {
                let (consumer, _): (BaseConsumer<WatchedContext>, _) =
                    settings.create().map_err(|e| e.to_string())?;
                if op == pb::OffsetsOp::Alter {
                    let mut list = TopicPartitionList::new();
                    for offset in &offsets {
                        let partition = object(&offset.partition_json, "sink partition")?;
                        let topic = partition["kafka_topic"].as_str().unwrap_or_default();
                        let number = partition["kafka_partition"].as_i64().unwrap_or_default();
                        let at = if offset.offset_json.is_empty() {
                            // null: this partition starts where a consumer
                            // without offsets would, as a reset does.
                            let (low, high) = consumer
                                .fetch_watermarks(topic, number as i32, KAFKA_TIMEOUT)
                                .map_err(|e| format!("reading {topic}-{number}: {e}"))?;
                            if reset_to_latest { high } else { low }
                        } else {
                            let value = object(&offset.offset_json, "sink offset")?;
                            value["kafka_offset"].as_i64().unwrap_or_default()
                        };
                        list.add_partition_offset(topic, number as i32, Offset::Offset(at))
                            .map_err(|e| e.to_string())?;
                    }
                    consumer
                        .commit(&list, CommitMode::Sync)
                        .map_err(|e| format!("committing offsets of group {group}: {e}"))?;
                    return Ok(Vec::new());
                }
                if op == pb::OffsetsOp::Reset {
                    // Where a consumer with no committed offsets would start
                    // (auto.offset.reset: earliest unless set to latest),
                    // committed, so the next start reads from there.
                    let latest = reset_to_latest;
                    let mut list = TopicPartitionList::new();
                    for (topic, partition) in subscription
                        .partitions(&consumer, KAFKA_TIMEOUT)
                        .map_err(|e| e.to_string())?
                    {
                        let (low, high) = consumer
                            .fetch_watermarks(&topic, partition, KAFKA_TIMEOUT)
                            .map_err(|e| format!("reading {topic}-{partition}: {e}"))?;
                        let at = if latest { high } else { low };
                        list.add_partition_offset(&topic, partition, Offset::Offset(at))
                            .map_err(|e| e.to_string())?;
                    }
                    consumer
                        .commit(&list, CommitMode::Sync)
                        .map_err(|e| format!("committing offsets of group {group}: {e}"))?;
                    return Ok(Vec::new());
                }
                let mut list = TopicPartitionList::new();
                for (topic, partition) in subscription
                        .partitions(&consumer, KAFKA_TIMEOUT)
                        .map_err(|e| e.to_string())?
                    {
                    list.add_partition(&topic, partition);
                }
                let committed = consumer
                    .committed_offsets(list, KAFKA_TIMEOUT)
                    .map_err(|e| format!("reading offsets of group {group}: {e}"))?;
                Ok(committed
                    .elements()
                    .iter()
                    .filter_map(|element| match element.offset() {
                        Offset::Offset(at) => {
                            let partition = json!({"kafka_topic": element.topic(), "kafka_partition": element.partition()});
                            let offset = json!({"kafka_offset": at});
                            Some(pb::SourceOffset {
                                partition_json: partition.to_string(),
                                offset_json: offset.to_string(),
                            })
                        }
                        _ => None,
                    })
                    .collect())
            })
            .await
            .map_err(|e| format!("offsets reader panicked: {e}"))?
        }
    }
}
