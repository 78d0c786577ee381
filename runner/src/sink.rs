//! The sink path: Kafka → converters → transforms → connector `put`. Every
//! `offset.flush.interval.ms` (and on pause, reassignment or stop) the
//! connector flushes, and only then are the consumed offsets committed to
//! the consumer group `connect-<name>`.
//!
//! Partitions are not handed out by a consumer-group rebalance: each task
//! wants every `task_count`-th partition of its topics (sorted), claims them
//! from the coordinator (`crate::claims`), reads those it was granted, and
//! resumes from the group's committed offsets. A partition is granted to one
//! task of the connector at a time and released only after its offsets were
//! committed, so tasks that disagree for a moment (a new topic or task count
//! seen at different times) never read one partition together. The
//! coordinator already places tasks, so a task that moves after a crash
//! reads on at once instead of waiting for the broker to expire the dead
//! member.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use weir_connect::api::{
    ConnectorError, EarlierFailure, Header, JsonMap, SinkRecord, SinkTask, SourcePosition, Topic,
    TopicNames, TopicPartitionOffset,
};
use weir_connect::config::{ConfigMap, Direction, base_connector_def};
use weir_connect::converter::Converter;
use weir_connect::data::SchemaAndValue;
use weir_connect::transforms::{ConnectRecord, TransformChain};

use crate::clients::{self, ClientFailures, ClientRole, WatchedContext};
use crate::config::ConverterRole;
use crate::context::{TaskContext, within};
use crate::error::{Error, Result};
use crate::events::TaskEvent;
use crate::tap::{TapPoint, TapView, TaskTap};
use crate::tolerance::{Backoff, ErrorPolicy, Failure, OriginalRecord, Stage};

/// Records handed to the connector per `put`, at most.
const MAX_BATCH: usize = 1000;
/// How often new topics and partitions are looked for.
const REDISCOVER_INTERVAL: Duration = Duration::from_secs(10);
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often partitions another task still holds are asked for again.
const CLAIM_RETRY_INTERVAL: Duration = Duration::from_millis(500);

/// The topics a sink reads.
pub(crate) enum Subscription {
    Topics(Vec<String>),
    Pattern(regex::Regex),
}

impl Subscription {
    /// From `topics` or `topics.regex` (matched against whole topic names,
    /// as Java's `Pattern.matches`).
    pub(crate) fn from_config(config: &ConfigMap) -> Result<Subscription> {
        let def = base_connector_def(Direction::Sink)
            .only(|key| key == "topics" || key == "topics.regex");
        let parsed = def.parse(config).map_err(Error::Config)?;
        let topics = parsed.list("topics").map_err(Error::Config)?.to_vec();
        let regex = parsed
            .string("topics.regex")
            .map_err(Error::Config)?
            .trim()
            .to_owned();
        if !topics.is_empty() {
            Ok(Subscription::Topics(topics))
        } else if !regex.is_empty() {
            let pattern = regex::Regex::new(&format!("^(?:{regex})$")).map_err(|e| {
                Error::Config(format!(
                    "Invalid value {regex} for configuration topics.regex: {e}"
                ))
            })?;
            Ok(Subscription::Pattern(pattern))
        } else {
            Err(Error::Config(
                "Must configure one of topics or topics.regex".into(),
            ))
        }
    }

    fn wants(&self, topic: &str) -> bool {
        match self {
            Subscription::Topics(topics) => topics.iter().any(|t| t == topic),
            Subscription::Pattern(pattern) => !topic.starts_with("__") && pattern.is_match(topic),
        }
    }

    /// The partitions of the subscribed topics, from metadata of just those
    /// topics (or of all, for a pattern). Blocks: call on a blocking thread.
    pub(crate) fn partitions<C, X>(&self, consumer: &C, timeout: Duration) -> Result<Partitions>
    where
        C: Consumer<X>,
        X: rdkafka::consumer::ConsumerContext,
    {
        let fetch = |topic: Option<&str>| -> Result<Vec<(String, Vec<i32>)>> {
            let metadata = consumer.fetch_metadata(topic, timeout)?;
            Ok(metadata
                .topics()
                .iter()
                .filter(|t| t.error().is_none())
                .map(|t| {
                    let partitions = t.partitions().iter().map(|p| p.id()).collect();
                    (t.name().to_owned(), partitions)
                })
                .collect())
        };
        let topics = match self {
            Subscription::Topics(topics) => {
                let mut found = Vec::new();
                for topic in topics {
                    found.extend(fetch(Some(topic))?);
                }
                found
            }
            Subscription::Pattern(_) => fetch(None)?,
        };
        Ok(topics
            .into_iter()
            .filter(|(name, _)| self.wants(name))
            .flat_map(|(name, partitions)| partitions.into_iter().map(move |p| (name.clone(), p)))
            .collect())
    }
}

pub(crate) type Partitions = BTreeSet<(String, i32)>;

/// The partitions of the subscribed topics, fetched on a blocking thread.
async fn discover_partitions(
    consumer: Arc<StreamConsumer<WatchedContext>>,
    subscription: Arc<Subscription>,
) -> Result<Partitions> {
    tokio::task::spawn_blocking(move || {
        subscription.partitions(consumer.as_ref(), DISCOVERY_TIMEOUT)
    })
    .await
    .map_err(|e| Error::Internal(format!("metadata lookup panicked: {e}")))?
}

/// Looks up the subscribed partitions every [`REDISCOVER_INTERVAL`] in the
/// background, so a slow or failing metadata request never holds up the
/// record loop; failures (a broker restarting) are retried. Ends when the
/// receiver is dropped.
fn watch_partitions(
    consumer: Arc<StreamConsumer<WatchedContext>>,
    subscription: Arc<Subscription>,
    task: String,
) -> watch::Receiver<Option<Partitions>> {
    let (sender, receiver) = watch::channel(None);
    tokio::spawn(async move {
        while !sender.is_closed() {
            match discover_partitions(consumer.clone(), subscription.clone()).await {
                Ok(found) => {
                    sender.send_if_modified(|current| {
                        let changed = current.as_ref() != Some(&found);
                        *current = Some(found);
                        changed
                    });
                }
                Err(error) => {
                    tracing::warn!(%task, %error, "partition discovery failed; retrying");
                }
            }
            tokio::select! {
                () = sender.closed() => break,
                () = tokio::time::sleep(REDISCOVER_INTERVAL) => {}
            }
        }
    });
    receiver
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

/// What became of one consumed message (failures are rare: boxed).
type Taken = std::result::Result<Option<SinkRecord>, Box<(Failure, OriginalRecord)>>;

/// The next offset to commit per topic partition of one batch, in the
/// order consumed; a run of messages of one partition is one entry, so the
/// topic name is copied once per run rather than once per message.
#[derive(Default)]
struct Consumed(Vec<((String, i32), i64)>);

impl Consumed {
    fn record(&mut self, message: &BorrowedMessage<'_>) {
        let next = message.offset() + 1;
        match self.0.last_mut() {
            Some(((topic, partition), offset))
                if *partition == message.partition() && topic == message.topic() =>
            {
                *offset = next;
            }
            _ => self
                .0
                .push(((message.topic().to_owned(), message.partition()), next)),
        }
    }
}

fn original_of(message: &BorrowedMessage<'_>) -> OriginalRecord {
    OriginalRecord {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        timestamp_ms: message.timestamp().to_millis(),
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().map(<[u8]>::to_vec),
        headers: message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

const DATA_EXCEPTION: &str = "org.apache.kafka.connect.errors.DataException";
const CONNECT_EXCEPTION: &str = "org.apache.kafka.connect.errors.ConnectException";

struct SinkRun {
    /// Shared so blocking calls (metadata, synchronous commits) can run off
    /// the async workers.
    consumer: Arc<StreamConsumer<WatchedContext>>,
    errors: ErrorPolicy,
    subscription: Arc<Subscription>,
    /// The partitions this task reads: granted by the coordinator, which
    /// records that no other task of the connector reads them.
    owned: BTreeSet<(String, i32)>,
    /// This task's share of the subscribed partitions.
    wanted: BTreeSet<(String, i32)>,
    /// A claim failed or another task still holds part of `wanted`: claim
    /// again at the next retry.
    claim_pending: bool,
    task_index: i32,
    task_count: i32,
    transforms: TransformChain,
    key_converter: Box<dyn Converter>,
    key_converter_class: String,
    value_converter: Box<dyn Converter>,
    value_converter_class: String,
    /// `header.converter`.
    header_converter: Box<dyn Converter>,
    header_converter_class: String,
    /// Next offset to commit, per topic partition, for records already put.
    uncommitted: BTreeMap<(String, i32), i64>,
    topics: BTreeSet<Topic>,
    /// The names of the topics read, shared by their records.
    topic_names: TopicNames,
    /// A stop interrupted a `put` (retrying it): `uncommitted` may cover
    /// records the connector never took, so it must not be committed.
    interrupted: bool,
    tap: TaskTap,
}

pub async fn run(mut context: TaskContext, mut task: Box<dyn SinkTask>) -> Result<()> {
    let mut settings = context
        .worker
        .client_settings(&context.config, ClientRole::Consumer)?;
    settings.set_default("group.id", &format!("connect-{}", context.key.connector));
    settings.set("enable.auto.commit", "false");
    settings.set_default("auto.offset.reset", "earliest");
    // librdkafka pauses a partition's fetching for `fetch.queue.backoff.ms`
    // (1 s by default) whenever its prefetch queue is full, which stalls a
    // sink that is busy for a moment; and it prefetches up to 64 MiB. A
    // short backoff and a 4 MiB queue keep the sink at full speed and small.
    settings.set_default("fetch.queue.backoff.ms", "10");
    settings.set_default("queued.max.messages.kbytes", "4096");
    let (consumer, mut failures): (StreamConsumer<WatchedContext>, _) = settings.create()?;
    let subscription = Subscription::from_config(&context.config)?;
    let errors = ErrorPolicy::from_config(
        &context.key.connector,
        context.key.task,
        &context.config,
        &context.worker,
        true,
    )
    .await?;
    let (key_converter, key_converter_class) = context
        .worker
        .converter(&context.config, ConverterRole::Key)?;
    let (value_converter, value_converter_class) = context
        .worker
        .converter(&context.config, ConverterRole::Value)?;
    let (header_converter, header_converter_class) = context
        .worker
        .converter(&context.config, ConverterRole::Header)?;
    context.metrics.set_kind(crate::metrics::TaskKind::Sink);
    let mut errors = errors;
    errors.count_into(context.metrics.clone());
    let mut run = SinkRun {
        consumer: Arc::new(consumer),
        errors,
        subscription: Arc::new(subscription),
        owned: BTreeSet::new(),
        wanted: BTreeSet::new(),
        claim_pending: false,
        task_index: context.key.task,
        task_count: context.task_count,
        transforms: TransformChain::from_config(&context.config).map_err(Error::Config)?,
        key_converter,
        key_converter_class,
        value_converter,
        value_converter_class,
        header_converter,
        header_converter_class,
        uncommitted: BTreeMap::new(),
        topics: BTreeSet::new(),
        topic_names: TopicNames::default(),
        interrupted: false,
        tap: context.tap.clone(),
    };
    task.open(&context.config).await?;
    context.report_target().await;

    // A stop gives the loop `task.shutdown.graceful.timeout.ms` to finish
    // the batch at hand; past it the loop is cut short (a connector stuck in
    // `put`, say), nothing more is committed, and `stop` is still called.
    let grace = context.worker.task_shutdown_timeout;
    let deadline = context.stop_deadline();
    let outcome = tokio::select! {
        outcome = run.pump(&mut context, task.as_mut(), &mut failures) => {
            Some(outcome.map_err(|error| clients::explain(error, &failures)))
        }
        () = deadline => None,
    };
    let cut_short = outcome.is_none();
    if cut_short {
        tracing::warn!(task = %context.key, "task did not finish its batch in time; it is not committed");
    }
    let outcome = outcome.unwrap_or(Ok(()));
    // What was put is flushed and committed; an interrupted batch is not.
    let committed = if outcome.is_ok() && !cut_short && !run.interrupted {
        within(
            grace,
            run.flush_and_commit(&context, task.as_mut(), CommitMode::Sync),
            Error::Offsets("the final flush and commit timed out".into()),
        )
        .await
    } else {
        Ok(())
    };
    let stopped = within(
        grace,
        task.stop(),
        Error::Internal("the connector's stop did not return in time".into()),
    )
    .await;
    outcome.and(committed).and(stopped)
}

impl SinkRun {
    /// Makes this task's share of `all` (every `task_count`-th partition)
    /// what it wants to read, and claims it.
    async fn reassign(
        &mut self,
        context: &TaskContext,
        task: &mut dyn SinkTask,
        all: &BTreeSet<(String, i32)>,
    ) -> Result<()> {
        self.wanted = share(all, self.task_index, self.task_count);
        self.settle_claims(context, task).await
    }

    /// Brings what the task reads (`owned`) towards what it wants: a
    /// partition it no longer wants is flushed, committed and closed before
    /// its release is claimed; one it wants is read only once the
    /// coordinator granted it (no other task of the connector holds it),
    /// from the group's committed offset. Partitions another task still
    /// holds are asked for again later (`claim_pending`).
    async fn settle_claims(
        &mut self,
        context: &TaskContext,
        task: &mut dyn SinkTask,
    ) -> Result<()> {
        let released: Vec<(String, i32)> = self.owned.difference(&self.wanted).cloned().collect();
        if released.is_empty() && self.owned == self.wanted && !self.claim_pending {
            return Ok(());
        }
        if !released.is_empty() {
            self.flush_and_commit(context, task, CommitMode::Sync)
                .await?;
            task.close_partitions(&released).await?;
            // What the connector did not declare safe is read again by the next owner.
            let wanted = &self.wanted;
            self.uncommitted
                .retain(|partition, _| wanted.contains(partition));
            self.owned.retain(|partition| wanted.contains(partition));
            self.assign_owned(context)?;
        }
        let granted = match context.claims.claim(&context.key, &self.wanted).await {
            Ok(granted) => granted,
            Err(error) => {
                // Between coordinators this fails every retry: say it once.
                if !self.claim_pending {
                    tracing::warn!(task = %context.key, %error, "sink partitions could not be claimed; asking again shortly");
                } else {
                    tracing::debug!(task = %context.key, %error, "sink partitions still cannot be claimed");
                }
                self.claim_pending = true;
                return Ok(());
            }
        };
        // The coordinator may have released a partition this task held
        // (it judged the task stopped): stop reading it, committing first.
        let lost: Vec<(String, i32)> = self.owned.difference(&granted).cloned().collect();
        if !lost.is_empty() {
            tracing::warn!(task = %context.key, partitions = lost.len(), "sink partitions no longer held; closing them");
            self.flush_and_commit(context, task, CommitMode::Sync)
                .await?;
            task.close_partitions(&lost).await?;
            self.uncommitted
                .retain(|partition, _| granted.contains(partition));
        }
        let opened: Vec<(String, i32)> = granted.difference(&self.owned).cloned().collect();
        self.claim_pending = granted != self.wanted;
        if opened.is_empty() && lost.is_empty() {
            return Ok(());
        }
        if !opened.is_empty() {
            // Reassigning resumes every partition from its committed offset.
            self.flush_and_commit(context, task, CommitMode::Sync)
                .await?;
        }
        self.owned = granted;
        self.assign_owned(context)?;
        tracing::info!(task = %context.key, partitions = self.owned.len(), waiting = self.wanted.len() - self.owned.len(), "sink partitions assigned");
        if !opened.is_empty() {
            task.open_partitions(&opened).await?;
        }
        Ok(())
    }

    /// Has the consumer read exactly `owned`, each from the group's
    /// committed offset.
    fn assign_owned(&self, context: &TaskContext) -> Result<()> {
        let mut assignment = TopicPartitionList::new();
        for (topic, partition) in &self.owned {
            assignment.add_partition_offset(topic, *partition, Offset::Stored)?;
        }
        self.consumer.assign(&assignment)?;
        if context.is_paused() {
            self.consumer.pause(&assignment)?;
        }
        Ok(())
    }

    async fn pump(
        &mut self,
        context: &mut TaskContext,
        task: &mut dyn SinkTask,
        failures: &mut ClientFailures,
    ) -> Result<()> {
        let mut flush = tokio::time::interval(context.worker.offset_flush_interval);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        flush.tick().await;
        let mut partitions = watch_partitions(
            self.consumer.clone(),
            self.subscription.clone(),
            context.key.to_string(),
        );
        let mut last_error_log = None::<std::time::Instant>;
        let mut claim_retry = tokio::time::interval(CLAIM_RETRY_INTERVAL);
        claim_retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let paused = context.is_paused();
            tokio::select! {
                biased;
                () = context.cancel.cancelled() => return Ok(()),
                error = clients::failed(failures) => return Err(error),
                _ = claim_retry.tick(), if self.claim_pending => self.settle_claims(context, task).await?,
                changed = context.target.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    self.apply_target(context, task).await?;
                }
                _ = flush.tick() => self.flush_and_commit(context, task, CommitMode::Async).await?,
                changed = partitions.changed() => {
                    if changed.is_err() {
                        return Err(Error::Internal("partition discovery ended".into()));
                    }
                    let found = partitions.borrow_and_update().clone();
                    if let Some(all) = found {
                        self.reassign(context, task, &all).await?;
                    }
                }
                settled = task.settle(), if task.unsettled() => match settled {
                    Ok(()) => {}
                    Err(ConnectorError::Earlier(failed)) => self.take_back(context, task, failed).await?,
                    Err(error) => return Err(error.into()),
                },
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
                    let mut consumed = Consumed::default();
                    let mut taken = vec![self.take(&first, &mut consumed)];
                    drop(first);
                    while taken.len() < MAX_BATCH {
                        match self.consumer.recv().now_or_never() {
                            Some(Ok(message)) => taken.push(self.take(&message, &mut consumed)),
                            _ => break,
                        }
                    }
                    // Committed at the next flush, after `put`: even records skipped or dropped.
                    self.uncommitted.extend(consumed.0);
                    context.metrics.records_in.add(taken.len() as u64);
                    let mut batch = Vec::with_capacity(taken.len());
                    for outcome in taken {
                        match outcome {
                            Ok(Some(record)) => {
                                batch.push(record);
                            }
                            Ok(None) => {}
                            Err(failed) => {
                                let (failure, original) = *failed;
                                self.errors.tolerate(failure, Some(&original)).await?;
                            }
                        }
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

    /// Converts and transforms one consumed message.
    fn take(&self, message: &BorrowedMessage<'_>, consumed: &mut Consumed) -> Taken {
        consumed.record(message);
        self.convert_and_transform(message)
            .map_err(|failure| Box::new((failure, original_of(message))))
    }

    fn convert_and_transform(
        &self,
        message: &BorrowedMessage<'_>,
    ) -> std::result::Result<Option<SinkRecord>, Failure> {
        let record = self.to_record(message)?;
        if self.tap.listening(TapPoint::AfterPoll) {
            self.tap.offer(TapPoint::AfterPoll, &TapView::from(&record));
        }
        if self.transforms.is_empty() {
            if self.tap.listening(TapPoint::AfterTransforms) {
                self.tap
                    .offer(TapPoint::AfterTransforms, &TapView::from(&record));
            }
            return Ok(Some(record));
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
        let out = self
            .transforms
            .apply_naming_failures(connect)
            .map_err(|failed| Failure {
                stage: Stage::Transformation,
                class_name: failed.class,
                error: failed.error.0,
                exception_class: DATA_EXCEPTION,
            })?;
        if let Some(out) = &out
            && self.tap.listening(TapPoint::AfterTransforms)
        {
            self.tap
                .offer(TapPoint::AfterTransforms, &TapView::from(out));
        }
        Ok(out.map(|out| SinkRecord {
            topic: out.topic,
            partition: out.kafka_partition.unwrap_or(partition),
            offset,
            key: out.key,
            value: out.value,
            timestamp_ms: out.timestamp_ms,
            headers: out.headers,
        }))
    }

    fn to_record(&self, message: &BorrowedMessage<'_>) -> std::result::Result<SinkRecord, Failure> {
        let topic = message.topic();
        let failure = |stage, class: &str, error: weir_connect::converter::ConvertError| Failure {
            stage,
            class_name: class.to_owned(),
            error: error.0,
            exception_class: DATA_EXCEPTION,
        };
        let key = self
            .key_converter
            .to_connect(topic, message.key())
            .map_err(|e| failure(Stage::KeyConverter, &self.key_converter_class, e))?;
        let value = self
            .value_converter
            .to_connect(topic, message.payload())
            .map_err(|e| failure(Stage::ValueConverter, &self.value_converter_class, e))?;
        let mut headers = Vec::new();
        if let Some(raw) = message.headers() {
            for header in raw.iter() {
                let value = self
                    .header_converter
                    .to_connect(topic, header.value)
                    .map_err(|e| {
                        failure(Stage::HeaderConverter, &self.header_converter_class, e)
                    })?;
                headers.push(Header {
                    key: header.key.to_owned(),
                    value,
                });
            }
        }
        Ok(SinkRecord {
            topic: self.topic_names.get(topic),
            partition: message.partition(),
            offset: message.offset(),
            key,
            value,
            timestamp_ms: message.timestamp().to_millis(),
            headers,
        })
    }

    /// Hands a batch to the connector. A retriable failure is retried until
    /// it succeeds (Kafka Connect retries a RetriableException from `put`);
    /// any other failure fails the task, whatever `errors.tolerance` says:
    /// tolerance covers conversion and transformation, not the connector.
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
                new_topics.push(record.topic.to_string());
            }
        }
        if batch.is_empty() {
            return Ok(());
        }
        if self.tap.listening(TapPoint::BeforePut) {
            for record in &batch {
                self.tap.offer(TapPoint::BeforePut, &TapView::from(record));
            }
        }
        let backoff = self.errors.connector_backoff();
        let records = batch.len() as u64;
        let putting = std::time::Instant::now();
        let put = put_until_done(task, batch, backoff, &context.cancel).await?;
        context.metrics.batches.record(putting.elapsed());
        context.metrics.records_out.add(records);
        self.tolerate_put(context, put).await?;
        context.emit_topics(new_topics).await;
        Ok(())
    }

    /// Sends the records a connector rejected through error tolerance.
    async fn tolerate_put(&mut self, context: &TaskContext, put: Put) -> Result<()> {
        match put {
            Put::Done { rejected } => {
                let class = context
                    .config
                    .get("connector.class")
                    .cloned()
                    .unwrap_or_default();
                for (record, message) in rejected {
                    let failure = Failure {
                        stage: Stage::TaskPut,
                        class_name: class.clone(),
                        error: message,
                        exception_class: CONNECT_EXCEPTION,
                    };
                    let original = self.original_of_record(&record);
                    self.errors.tolerate(failure, Some(&original)).await?;
                }
            }
            Put::Cancelled => self.interrupted = true,
        }
        Ok(())
    }

    /// Puts again the records of an earlier put that failed retriably, and
    /// tolerates the others.
    async fn take_back(
        &mut self,
        context: &TaskContext,
        task: &mut dyn SinkTask,
        failed: Vec<EarlierFailure>,
    ) -> Result<()> {
        let (again, rejected) = retry_or_reject(failed);
        self.tolerate_put(context, Put::Done { rejected }).await?;
        if again.is_empty() {
            return Ok(());
        }
        let mut backoff = self.errors.connector_backoff();
        let delay = backoff.next_delay().unwrap_or(backoff.max_delay());
        tracing::warn!(task = %context.key, records = again.len(), ?delay, "records of an earlier put failed retriably; retrying");
        tokio::select! {
            () = context.cancel.cancelled() => {
                self.interrupted = true;
                return Ok(());
            }
            () = tokio::time::sleep(delay) => {}
        }
        let put = put_until_done(task, again, backoff, &context.cancel).await?;
        self.tolerate_put(context, put).await?;
        Ok(())
    }

    /// Waits until the connector has taken every batch put so far (a
    /// sidecar sink keeps one in flight). Records of them that failed are
    /// put again or tolerated as a `put`'s are.
    async fn settle(&mut self, context: &TaskContext, task: &mut dyn SinkTask) -> Result<()> {
        loop {
            match task.settle().await {
                Ok(()) => return Ok(()),
                Err(ConnectorError::Earlier(failed)) => {
                    self.take_back(context, task, failed).await?;
                    if self.interrupted {
                        return Ok(());
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// The consumed record a connector rejected, for the DLQ. The consumed
    /// bytes are not kept, so the record is converted back with the
    /// connector's converters, as Kafka Connect's errant record reporter does
    /// for a record it has no original of (with transforms, the DLQ gets the
    /// transformed record).
    fn original_of_record(&self, record: &SinkRecord) -> OriginalRecord {
        let bytes = |converter: &dyn Converter, data: &SchemaAndValue| {
            converter.to_kafka(&record.topic, data).ok().flatten()
        };
        OriginalRecord {
            topic: record.topic.to_string(),
            partition: record.partition,
            offset: record.offset,
            timestamp_ms: record.timestamp_ms,
            key: bytes(self.key_converter.as_ref(), &record.key),
            value: bytes(self.value_converter.as_ref(), &record.value),
            headers: record
                .headers
                .iter()
                .map(|header| {
                    (
                        header.key.clone(),
                        bytes(self.header_converter.as_ref(), &header.value),
                    )
                })
                .collect(),
        }
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
            context.metrics.commit_skips.add(1);
            return Ok(());
        }
        let committing = std::time::Instant::now();
        let outcome = self.commit_put(context, task, mode).await;
        match &outcome {
            Ok(()) => context.metrics.commits.record(committing.elapsed()),
            Err(_) => context.metrics.commit_failures.add(1),
        }
        outcome
    }

    /// Flushes the connector and commits what it declares safe.
    async fn commit_put(
        &mut self,
        context: &TaskContext,
        task: &mut dyn SinkTask,
        mode: CommitMode,
    ) -> Result<()> {
        let offsets: Vec<TopicPartitionOffset> = self
            .uncommitted
            .iter()
            .map(|((topic, partition), offset)| TopicPartitionOffset {
                topic: topic.clone(),
                partition: *partition,
                offset: *offset,
            })
            .collect();
        self.settle(context, task).await?;
        if self.interrupted {
            return Ok(());
        }
        // Only what the connector declares safe is committed, and never past
        // what was consumed.
        let offsets: Vec<TopicPartitionOffset> = task
            .pre_commit(&offsets)
            .await?
            .into_iter()
            .filter(|safe| {
                self.uncommitted
                    .get(&(safe.topic.clone(), safe.partition))
                    .is_some_and(|consumed| safe.offset <= *consumed)
            })
            .collect();
        if offsets.is_empty() {
            return Ok(());
        }
        context.may_commit()?;
        let mut list = TopicPartitionList::new();
        for entry in &offsets {
            list.add_partition_offset(&entry.topic, entry.partition, Offset::Offset(entry.offset))?;
        }
        match mode {
            CommitMode::Sync => {
                let consumer = self.consumer.clone();
                context
                    .within_lease(tokio::task::spawn_blocking(move || {
                        consumer.commit(&list, CommitMode::Sync)
                    }))
                    .await?
                    .map_err(|e| Error::Internal(format!("offset commit panicked: {e}")))??;
            }
            CommitMode::Async => self.consumer.commit(&list, CommitMode::Async)?,
        }
        for entry in &offsets {
            let key = (entry.topic.clone(), entry.partition);
            if self.uncommitted.get(&key) == Some(&entry.offset) {
                self.uncommitted.remove(&key);
            }
        }
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

/// How a `put` ended that did not fail.
#[derive(Debug, Clone, PartialEq)]
pub enum Put {
    /// Taken, except the records the connector rejected (with why).
    Done { rejected: Vec<(SinkRecord, String)> },
    /// The task was stopped while the batch was being retried.
    Cancelled,
}

/// Records of an earlier put that failed: those to put again, and those
/// rejected for good (with why).
fn retry_or_reject(failed: Vec<EarlierFailure>) -> (Vec<SinkRecord>, Vec<(SinkRecord, String)>) {
    let mut again = Vec::new();
    let mut rejected = Vec::new();
    for failure in failed {
        if failure.retriable {
            again.push(failure.record);
        } else {
            rejected.push((failure.record, failure.message));
        }
    }
    (again, rejected)
}

/// Puts `batch`, retrying retriable failures with `backoff` until it is
/// taken or the task stops: the whole batch, or only the records that
/// failed retriably on their own. Records that failed fatally on their own
/// are returned; any other fatal failure is the error.
pub async fn put_until_done(
    task: &mut dyn SinkTask,
    batch: Vec<SinkRecord>,
    mut backoff: Backoff,
    cancel: &CancellationToken,
) -> std::result::Result<Put, ConnectorError> {
    let mut batch = batch;
    let mut rejected = Vec::new();
    loop {
        let error = match task.put(&batch).await {
            Ok(()) => return Ok(Put::Done { rejected }),
            Err(ConnectorError::Records(failed)) => {
                let mut again = Vec::new();
                for failure in failed {
                    let Some(record) = batch.get(failure.index) else {
                        continue;
                    };
                    if failure.retriable {
                        again.push(record.clone());
                    } else {
                        rejected.push((record.clone(), failure.message));
                    }
                }
                if again.is_empty() {
                    return Ok(Put::Done { rejected });
                }
                let error = format!("{} record(s) failed retriably", again.len());
                batch = again;
                error
            }
            Err(ConnectorError::Earlier(failed)) => {
                // This batch was not taken: it goes again, after the earlier
                // records that may be retried.
                let (mut again, refused) = retry_or_reject(failed);
                rejected.extend(refused);
                let retrying = again.len();
                again.append(&mut batch);
                batch = again;
                if retrying == 0 {
                    continue;
                }
                format!("{retrying} record(s) of an earlier put failed retriably")
            }
            Err(error) if error.is_retriable() => error.to_string(),
            Err(error) => return Err(error),
        };
        let delay = backoff.next_delay().unwrap_or(backoff.max_delay());
        tracing::warn!(%error, ?delay, "retriable put failure; retrying");
        tokio::select! {
            () = cancel.cancelled() => return Ok(Put::Cancelled),
            () = tokio::time::sleep(delay) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WorkerConfig;
    use weir_connect::data::Value;

    /// Fails every record whose value is "bad", and the first `busy` calls retryably.
    struct FlakySink {
        busy: usize,
        calls: usize,
        written: Vec<String>,
    }

    #[async_trait::async_trait]
    impl SinkTask for FlakySink {
        async fn open(
            &mut self,
            _config: &weir_connect::config::ConfigMap,
        ) -> weir_connect::api::Result<()> {
            Ok(())
        }

        async fn put(&mut self, records: &[SinkRecord]) -> weir_connect::api::Result<()> {
            self.calls += 1;
            if self.calls <= self.busy {
                return Err(ConnectorError::Retriable("busy".into()));
            }
            if records
                .iter()
                .any(|r| r.value.value == Value::String("bad".into()))
            {
                return Err(ConnectorError::Fatal("cannot write bad".into()));
            }
            self.written
                .extend(records.iter().map(|r| r.value.value.to_display_string()));
            Ok(())
        }

        async fn flush(
            &mut self,
            _offsets: &[TopicPartitionOffset],
        ) -> weir_connect::api::Result<()> {
            Ok(())
        }

        async fn stop(&mut self) -> weir_connect::api::Result<()> {
            Ok(())
        }
    }

    fn records(values: &[&str]) -> Vec<SinkRecord> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| SinkRecord {
                topic: "t".into(),
                partition: 0,
                offset: i as i64,
                key: SchemaAndValue::null(),
                value: SchemaAndValue {
                    schema: None,
                    value: Value::String((*v).into()),
                },
                timestamp_ms: None,
                headers: Vec::new(),
            })
            .collect()
    }

    async fn policy(pairs: &[(&str, &str)]) -> ErrorPolicy {
        let worker = WorkerConfig::from_properties(
            [(
                "offset.storage.file.filename".to_owned(),
                "/tmp/unused".to_owned(),
            )]
            .into(),
            true,
        )
        .unwrap();
        let config = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ErrorPolicy::from_config("c", 0, &config, &worker, false)
            .await
            .unwrap()
    }

    #[test]
    fn every_partition_is_read_by_exactly_one_task() {
        for topics in 1..4 {
            for partitions in 1..7 {
                let all: BTreeSet<(String, i32)> = (0..topics)
                    .flat_map(|t| (0..partitions).map(move |p| (format!("topic-{t}"), p)))
                    .collect();
                for count in 1..6 {
                    let shares: Vec<_> =
                        (0..count).map(|index| share(&all, index, count)).collect();
                    let mut seen = BTreeSet::new();
                    for owned in &shares {
                        for partition in owned {
                            assert!(seen.insert(partition.clone()), "{partition:?} read twice");
                        }
                    }
                    assert_eq!(
                        seen, all,
                        "{topics} topics × {partitions} partitions over {count} tasks"
                    );
                    let sizes: Vec<usize> = shares.iter().map(BTreeSet::len).collect();
                    let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                    assert!(max - min <= 1, "unbalanced {sizes:?}");
                }
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retriable_put_failures_are_retried_until_they_succeed() {
        let mut sink = FlakySink {
            busy: 3,
            calls: 0,
            written: Vec::new(),
        };
        // errors.retry.timeout (0 by default) does not bound connector retries.
        let policy = policy(&[]).await;
        let put = put_until_done(
            &mut sink,
            records(&["a", "b"]),
            policy.connector_backoff(),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        assert_eq!(put, Put::Done { rejected: vec![] });
        assert_eq!(sink.written, ["a", "b"]);
        assert_eq!(sink.calls, 4);
    }

    /// Takes every record but rejects "poison" for good and "later" once.
    struct PickySink {
        later_failed: bool,
        puts: Vec<Vec<String>>,
    }

    #[async_trait::async_trait]
    impl SinkTask for PickySink {
        async fn open(
            &mut self,
            _config: &weir_connect::config::ConfigMap,
        ) -> weir_connect::api::Result<()> {
            Ok(())
        }

        async fn put(&mut self, records: &[SinkRecord]) -> weir_connect::api::Result<()> {
            let values: Vec<String> = records
                .iter()
                .map(|r| r.value.value.to_display_string())
                .collect();
            self.puts.push(values.clone());
            let mut failed = Vec::new();
            for (index, value) in values.iter().enumerate() {
                if value == "poison" {
                    failed.push(weir_connect::api::RecordError {
                        index,
                        retriable: false,
                        message: "cannot store poison".into(),
                    });
                } else if value == "later" && !self.later_failed {
                    self.later_failed = true;
                    failed.push(weir_connect::api::RecordError {
                        index,
                        retriable: true,
                        message: "busy".into(),
                    });
                }
            }
            if failed.is_empty() {
                Ok(())
            } else {
                Err(ConnectorError::Records(failed))
            }
        }

        async fn flush(
            &mut self,
            _offsets: &[TopicPartitionOffset],
        ) -> weir_connect::api::Result<()> {
            Ok(())
        }

        async fn stop(&mut self) -> weir_connect::api::Result<()> {
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn records_a_sink_rejects_are_returned_and_retriable_ones_put_again() {
        let mut sink = PickySink {
            later_failed: false,
            puts: Vec::new(),
        };
        let policy = policy(&[]).await;
        let put = put_until_done(
            &mut sink,
            records(&["a", "poison", "later", "b"]),
            policy.connector_backoff(),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        let Put::Done { rejected } = put else {
            panic!("expected the batch taken");
        };
        let rejected: Vec<(String, String)> = rejected
            .into_iter()
            .map(|(record, why)| (record.value.value.to_display_string(), why))
            .collect();
        assert_eq!(
            rejected,
            [("poison".to_owned(), "cannot store poison".to_owned())]
        );
        assert_eq!(
            sink.puts,
            [vec!["a", "poison", "later", "b"], vec!["later"]],
            "only the retriable record is put again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_fatal_put_failure_fails_even_with_tolerance_all() {
        let mut sink = FlakySink {
            busy: 0,
            calls: 0,
            written: Vec::new(),
        };
        let tolerant = policy(&[("errors.tolerance", "all")]).await;
        let error = put_until_done(
            &mut sink,
            records(&["a", "bad"]),
            tolerant.connector_backoff(),
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
        assert!(!error.is_retriable());
        assert!(
            sink.written.is_empty(),
            "nothing of the failed batch was taken"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_interrupts_put_retries() {
        let mut sink = FlakySink {
            busy: usize::MAX,
            calls: 0,
            written: Vec::new(),
        };
        let policy = policy(&[]).await;
        let cancel = CancellationToken::new();
        let stopper = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            stopper.cancel();
        });
        let put = put_until_done(
            &mut sink,
            records(&["a"]),
            policy.connector_backoff(),
            &cancel,
        )
        .await
        .unwrap();
        assert_eq!(put, Put::Cancelled);
        assert!(sink.calls > 3, "it retried until the stop");
    }

    /// Keeps one batch in flight, as a sidecar sink does: a put is judged
    /// when the next put comes. Fails "poison" for good and "later" once.
    #[derive(Default)]
    struct PipelinedSink {
        in_flight: Vec<SinkRecord>,
        failed_later: bool,
        written: Vec<String>,
    }

    #[async_trait::async_trait]
    impl SinkTask for PipelinedSink {
        async fn open(
            &mut self,
            _config: &weir_connect::config::ConfigMap,
        ) -> weir_connect::api::Result<()> {
            Ok(())
        }

        async fn put(&mut self, records: &[SinkRecord]) -> weir_connect::api::Result<()> {
            self.settle().await?;
            self.in_flight = records.to_vec();
            Ok(())
        }

        fn unsettled(&self) -> bool {
            !self.in_flight.is_empty()
        }

        async fn settle(&mut self) -> weir_connect::api::Result<()> {
            let mut failed = Vec::new();
            for record in std::mem::take(&mut self.in_flight) {
                let value = record.value.value.to_display_string();
                let failure = |retriable: bool| EarlierFailure {
                    record: record.clone(),
                    retriable,
                    message: format!("cannot write {value}"),
                };
                match value.as_str() {
                    "poison" => failed.push(failure(false)),
                    "later" if !self.failed_later => {
                        self.failed_later = true;
                        failed.push(failure(true));
                    }
                    _ => self.written.push(value),
                }
            }
            if failed.is_empty() {
                Ok(())
            } else {
                Err(ConnectorError::Earlier(failed))
            }
        }

        async fn flush(
            &mut self,
            _offsets: &[TopicPartitionOffset],
        ) -> weir_connect::api::Result<()> {
            self.settle().await
        }

        async fn stop(&mut self) -> weir_connect::api::Result<()> {
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_refused_for_an_earlier_put_s_failures_goes_after_their_retries() {
        let mut sink = PipelinedSink::default();
        let policy = policy(&[]).await;
        let cancel = CancellationToken::new();
        let first = put_until_done(
            &mut sink,
            records(&["a", "later", "poison", "b"]),
            policy.connector_backoff(),
            &cancel,
        )
        .await
        .unwrap();
        assert_eq!(first, Put::Done { rejected: vec![] }, "judged only later");
        let second = put_until_done(
            &mut sink,
            records(&["c", "d"]),
            policy.connector_backoff(),
            &cancel,
        )
        .await
        .unwrap();
        let Put::Done { rejected } = second else {
            panic!("not done: {second:?}");
        };
        let rejected: Vec<String> = rejected
            .iter()
            .map(|(record, _)| record.value.value.to_display_string())
            .collect();
        assert_eq!(rejected, ["poison"]);
        sink.settle().await.unwrap();
        // The retried record keeps its place ahead of the batch refused for it.
        assert_eq!(sink.written, ["a", "b", "later", "c", "d"]);
    }
}
