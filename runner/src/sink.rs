//! The sink path: Kafka → converters → transforms → connector `put`. Every
//! `offset.flush.interval.ms` (and on pause, reassignment or stop) the
//! connector flushes, and only then are the consumed offsets committed to
//! the consumer group `connect-<name>`.
//!
//! Partitions are not handed out by a consumer-group rebalance: each task
//! assigns itself every `task_count`-th partition of its topics (sorted), and
//! resumes from the group's committed offsets. The coordinator already places
//! tasks, so a task that moves after a crash reads on at once instead of
//! waiting for the broker to expire the dead member.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::FutureExt;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::{Message, Offset, TopicPartitionList};
use weir_connect::api::{
    Header, JsonMap, SinkRecord, SinkTask, SourcePosition, TopicPartitionOffset,
};
use weir_connect::config::parse_list;
use weir_connect::converter::Converter;
use weir_connect::data::{Schema, SchemaAndValue, SchemaType, Value};
use weir_connect::transforms::{ConnectRecord, TransformChain};

use crate::config::{ClientRole, ConverterRole, client_config};
use crate::error::{Error, Result};
use crate::task::{TaskContext, TaskEvent};

/// Records handed to the connector per `put`, at most.
const MAX_BATCH: usize = 1000;
/// How often new topics and partitions are looked for.
const REDISCOVER_INTERVAL: Duration = Duration::from_secs(10);
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The topics a sink reads.
enum Subscription {
    Topics(Vec<String>),
    Pattern(regex::Regex),
}

impl Subscription {
    fn wants(&self, topic: &str) -> bool {
        match self {
            Subscription::Topics(topics) => topics.iter().any(|t| t == topic),
            Subscription::Pattern(pattern) => !topic.starts_with("__") && pattern.is_match(topic),
        }
    }
}

/// This task's share of the partitions: every `count`-th of the sorted list.
fn share(all: &BTreeSet<(String, i32)>, index: i32, count: i32) -> BTreeSet<(String, i32)> {
    let count = count.max(1) as usize;
    let index = index.max(0) as usize;
    all.iter()
        .enumerate()
        .filter(|(i, _)| i % count == index)
        .map(|(_, p)| p.clone())
        .collect()
}

struct SinkRun {
    consumer: StreamConsumer,
    subscription: Subscription,
    /// The partitions this task reads; the coordinator, not a consumer-group
    /// rebalance, decides which task runs where.
    owned: BTreeSet<(String, i32)>,
    task_index: i32,
    task_count: i32,
    transforms: TransformChain,
    key_converter: Box<dyn Converter>,
    value_converter: Box<dyn Converter>,
    /// Next offset to commit, per topic partition, for records already put.
    uncommitted: BTreeMap<(String, i32), i64>,
    topics: BTreeSet<String>,
}

pub async fn run(mut context: TaskContext, mut task: Box<dyn SinkTask>) -> Result<()> {
    let mut settings = context
        .worker
        .client_settings(&context.config, ClientRole::Consumer);
    settings.insert(
        "group.id".into(),
        format!("connect-{}", context.key.connector),
    );
    settings.insert("enable.auto.commit".into(), "false".into());
    settings
        .entry("auto.offset.reset".into())
        .or_insert_with(|| "earliest".into());
    let consumer: StreamConsumer = client_config(&settings).create()?;
    let topics = context
        .config
        .get("topics")
        .map(|t| parse_list(t))
        .unwrap_or_default();
    let regex = context
        .config
        .get("topics.regex")
        .map(|r| r.trim().to_owned())
        .unwrap_or_default();
    let subscription = if !topics.is_empty() {
        Subscription::Topics(topics)
    } else if !regex.is_empty() {
        Subscription::Pattern(regex::Regex::new(&format!("^(?:{regex})$")).map_err(|e| {
            Error::Config(format!(
                "Invalid value {regex} for configuration topics.regex: {e}"
            ))
        })?)
    } else {
        return Err(Error::Config(
            "Must configure one of topics or topics.regex".into(),
        ));
    };
    let mut run = SinkRun {
        consumer,
        subscription,
        owned: BTreeSet::new(),
        task_index: context.key.task,
        task_count: context.task_count,
        transforms: TransformChain::from_config(&context.config).map_err(Error::Config)?,
        key_converter: context
            .worker
            .converter(&context.config, ConverterRole::Key)?,
        value_converter: context
            .worker
            .converter(&context.config, ConverterRole::Value)?,
        uncommitted: BTreeMap::new(),
        topics: BTreeSet::new(),
    };
    task.open(&context.config).await?;
    context.report_target().await;

    let outcome = run.pump(&mut context, task.as_mut()).await;
    let committed = match outcome {
        Ok(()) => {
            run.flush_and_commit(&context, task.as_mut(), CommitMode::Sync)
                .await
        }
        Err(_) => Ok(()),
    };
    let stopped = task.stop().await.map_err(Error::from);
    outcome.and(committed).and(stopped)
}

impl SinkRun {
    /// Looks up the subscribed topics' partitions and assigns this task's
    /// share, resuming each from the group's committed offset.
    async fn rediscover(&mut self, context: &TaskContext, task: &mut dyn SinkTask) -> Result<()> {
        let metadata =
            tokio::task::block_in_place(|| self.consumer.fetch_metadata(None, DISCOVERY_TIMEOUT))?;
        let all: BTreeSet<(String, i32)> = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none() && self.subscription.wants(t.name()))
            .flat_map(|t| {
                t.partitions()
                    .iter()
                    .map(move |p| (t.name().to_owned(), p.id()))
            })
            .collect();
        let mine = share(&all, self.task_index, self.task_count);
        if mine == self.owned {
            return Ok(());
        }
        self.flush_and_commit(context, task, CommitMode::Sync)
            .await?;
        let mut assignment = TopicPartitionList::new();
        for (topic, partition) in &mine {
            assignment.add_partition_offset(topic, *partition, Offset::Stored)?;
        }
        self.consumer.assign(&assignment)?;
        if context.is_paused() {
            self.consumer.pause(&assignment)?;
        }
        tracing::info!(task = %context.key, partitions = mine.len(), "sink partitions assigned");
        self.owned = mine;
        Ok(())
    }

    async fn pump(&mut self, context: &mut TaskContext, task: &mut dyn SinkTask) -> Result<()> {
        let mut flush = tokio::time::interval(context.worker.offset_flush_interval);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        flush.tick().await;
        let mut discover = tokio::time::interval(REDISCOVER_INTERVAL);
        discover.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_error_log = None::<std::time::Instant>;
        loop {
            let paused = context.is_paused();
            tokio::select! {
                biased;
                () = context.cancel.cancelled() => return Ok(()),
                changed = context.target.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    self.apply_target(context, task).await?;
                }
                _ = flush.tick() => self.flush_and_commit(context, task, CommitMode::Async).await?,
                _ = discover.tick() => self.rediscover(context, task).await?,
                received = self.consumer.recv(), if !paused => {
                    let first = match received {
                        Ok(message) => message,
                        Err(error) => {
                            // Transient broker errors (e.g. a topic not created yet) are retried by librdkafka.
                            if last_error_log.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                                tracing::warn!(task = %context.key, %error, "consumer error");
                                last_error_log = Some(std::time::Instant::now());
                            }
                            continue;
                        }
                    };
                    let mut batch = Vec::new();
                    let mut consumed = vec![self.take(&first, &mut batch)?];
                    drop(first);
                    while consumed.len() < MAX_BATCH {
                        match self.consumer.recv().now_or_never() {
                            Some(Ok(message)) => consumed.push(self.take(&message, &mut batch)?),
                            _ => break,
                        }
                    }
                    // Committed at the next flush, after `put` — even the records a transform dropped.
                    for (topic_partition, next) in consumed {
                        self.uncommitted.insert(topic_partition, next);
                    }
                    self.put(context, task, batch).await?;
                }
            }
        }
    }

    async fn apply_target(&mut self, context: &TaskContext, task: &mut dyn SinkTask) -> Result<()> {
        let assignment = self.consumer.assignment()?;
        if context.is_paused() {
            self.flush_and_commit(context, task, CommitMode::Async)
                .await?;
            self.consumer.pause(&assignment)?;
        } else {
            self.consumer.resume(&assignment)?;
        }
        context.report_target().await;
        Ok(())
    }

    /// Converts and transforms one consumed message into `batch`; returns
    /// its topic partition and the next offset to commit for it.
    fn take(
        &self,
        message: &BorrowedMessage<'_>,
        batch: &mut Vec<SinkRecord>,
    ) -> Result<((String, i32), i64)> {
        let consumed = (
            (message.topic().to_owned(), message.partition()),
            message.offset() + 1,
        );
        let record = self.to_record(message)?;
        if self.transforms.is_empty() {
            batch.push(record);
            return Ok(consumed);
        }
        let SinkRecord {
            topic,
            partition,
            offset,
            key,
            value,
            timestamp_ms,
            headers,
        } = record;
        let connect = ConnectRecord {
            topic,
            kafka_partition: Some(partition),
            kafka_offset: Some(offset),
            key,
            value,
            timestamp_ms,
            headers,
        };
        if let Some(out) = self.transforms.apply(connect)? {
            batch.push(SinkRecord {
                topic: out.topic,
                partition: out.kafka_partition.unwrap_or(partition),
                offset,
                key: out.key,
                value: out.value,
                timestamp_ms: out.timestamp_ms,
                headers: out.headers,
            });
        }
        Ok(consumed)
    }

    fn to_record(&self, message: &BorrowedMessage<'_>) -> Result<SinkRecord> {
        let topic = message.topic();
        let key = self.key_converter.to_connect(topic, message.key())?;
        let value = self.value_converter.to_connect(topic, message.payload())?;
        let headers = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|header| Header {
                        key: header.key.to_owned(),
                        value: SchemaAndValue {
                            schema: Some(Schema::new(SchemaType::Bytes).optional()),
                            value: header
                                .value
                                .map_or(Value::Null, |v| Value::Bytes(v.to_vec())),
                        },
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(SinkRecord {
            topic: topic.to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            key,
            value,
            timestamp_ms: message.timestamp().to_millis(),
            headers,
        })
    }

    async fn put(
        &mut self,
        context: &TaskContext,
        task: &mut dyn SinkTask,
        batch: Vec<SinkRecord>,
    ) -> Result<()> {
        let mut new_topics = Vec::new();
        for record in &batch {
            if !self.topics.contains(&record.topic) {
                self.topics.insert(record.topic.clone());
                new_topics.push(record.topic.clone());
            }
        }
        task.put(batch).await?;
        if !new_topics.is_empty() {
            context
                .emit(TaskEvent::Topics {
                    connector: context.key.connector.clone(),
                    topics: new_topics,
                })
                .await;
        }
        Ok(())
    }

    /// Flushes the connector, then commits what it has made durable, and
    /// reports the committed offsets in Kafka Connect's sink offset shape.
    async fn flush_and_commit(
        &mut self,
        context: &TaskContext,
        task: &mut dyn SinkTask,
        mode: CommitMode,
    ) -> Result<()> {
        if self.uncommitted.is_empty() {
            return Ok(());
        }
        let offsets: Vec<TopicPartitionOffset> = self
            .uncommitted
            .iter()
            .map(|((topic, partition), offset)| TopicPartitionOffset {
                topic: topic.clone(),
                partition: *partition,
                offset: *offset,
            })
            .collect();
        task.flush(&offsets).await?;
        let mut list = TopicPartitionList::new();
        for entry in &offsets {
            list.add_partition_offset(&entry.topic, entry.partition, Offset::Offset(entry.offset))?;
        }
        match mode {
            CommitMode::Sync => {
                let consumer = &self.consumer;
                tokio::task::block_in_place(|| consumer.commit(&list, CommitMode::Sync))?;
            }
            CommitMode::Async => self.consumer.commit(&list, CommitMode::Async)?,
        }
        self.uncommitted.clear();
        let positions = offsets
            .iter()
            .map(|entry| {
                let mut partition = JsonMap::new();
                partition.insert("kafka_topic".into(), entry.topic.clone().into());
                partition.insert("kafka_partition".into(), entry.partition.into());
                let mut offset = JsonMap::new();
                offset.insert("kafka_offset".into(), entry.offset.into());
                SourcePosition { partition, offset }
            })
            .collect();
        context
            .emit(TaskEvent::OffsetsCommitted {
                connector: context.key.connector.clone(),
                positions,
            })
            .await;
        Ok(())
    }
}
