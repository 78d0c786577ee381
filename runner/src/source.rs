//! The source path: connector `poll` → converters → rdkafka producer. Batches
//! are pipelined: the next poll does not wait for the previous batch's acks,
//! up to a bound on records in flight. Acks are counted per batch by the
//! producer's delivery callback (no future or copy per record). Offsets are
//! stored every `offset.flush.interval.ms` (and on stop) for the prefix of
//! batches Kafka has fully acknowledged; only then is the connector told
//! `commit`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};
use rdkafka::producer::BaseRecord;
use tokio::sync::Notify;
use weir_connect::api::{JsonMap, SourceOffset, SourcePosition, SourceRecord, SourceTask, Topic};
use weir_connect::converter::Converter;
use weir_connect::transforms::{ConnectRecord, TransformChain};

use crate::clients::{self, ClientFailures, ClientRole};
use crate::config::ConverterRole;
use crate::context::{TaskContext, within};
use crate::error::{Error, Result};
use crate::events::TaskEvent;
use crate::producers::{BatchAcks, SharedProducer};
use crate::tap::{TapPoint, TapView};
use crate::tolerance::{Backoff, ErrorPolicy, Failure, Stage};

/// Records asked of the connector per poll.
const MAX_POLL_RECORDS: usize = 10_000;
/// Records sent but not yet acknowledged, at most; past it the loop waits.
const MAX_IN_FLIGHT: usize = 20_000;

/// One polled batch on its way to Kafka.
struct InFlight {
    acks: Arc<BatchAcks>,
    /// Records of this batch handed to the producer.
    records: usize,
    /// The last offset per source partition in this batch (usually one).
    positions: Vec<(Arc<JsonMap>, SourceOffset)>,
    /// A record of this batch was not delivered: neither this batch's
    /// positions nor any later batch's may ever be stored.
    failed: bool,
}

fn data_failure(stage: Stage, class_name: &str, error: String) -> Failure {
    Failure {
        stage,
        class_name: class_name.to_owned(),
        error,
        exception_class: "org.apache.kafka.connect.errors.DataException",
    }
}

struct SourceRun {
    metrics: Arc<crate::metrics::TaskMetrics>,
    /// Shared with the runner's other tasks of the same producer settings.
    producer: Option<Arc<SharedProducer>>,
    /// Woken by the delivery callback when a batch settles.
    settled: Arc<Notify>,
    errors: ErrorPolicy,
    transforms: TransformChain,
    key_converter: Box<dyn Converter>,
    key_converter_class: String,
    value_converter: Box<dyn Converter>,
    value_converter_class: String,
    /// `header.converter`.
    header_converter: Box<dyn Converter>,
    header_converter_class: String,
    /// Reused for every record's serialized key and value (the producer copies them).
    key_buffer: Vec<u8>,
    value_buffer: Vec<u8>,
    /// Batches in send order; only a fully acknowledged prefix may be committed.
    in_flight: VecDeque<InFlight>,
    in_flight_records: usize,
    /// Acknowledged by Kafka but not yet stored, by partition.
    acked: BTreeMap<String, SourcePosition>,
    topics: BTreeSet<Topic>,
}

pub async fn run(mut context: TaskContext, mut task: Box<dyn SourceTask>) -> Result<()> {
    let mut settings = context
        .worker
        .client_settings(&context.config, ClientRole::Producer)?;
    settings.apply_producer_defaults();
    settings.set_default("linger.ms", "5");
    let settled = Arc::new(Notify::new());
    let producer = context.producers.acquire(&settings)?;
    let mut failures = producer.failures();
    let errors = ErrorPolicy::from_config(
        &context.key.connector,
        context.key.task,
        &context.config,
        &context.worker,
        false,
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
    context.metrics.set_kind(crate::metrics::TaskKind::Source);
    let mut errors = errors;
    errors.count_into(context.metrics.clone());
    let mut run = SourceRun {
        metrics: context.metrics.clone(),
        errors,
        producer: Some(producer),
        settled,
        transforms: TransformChain::from_config(&context.config).map_err(Error::Config)?,
        key_converter,
        key_converter_class,
        value_converter,
        value_converter_class,
        header_converter,
        header_converter_class,
        key_buffer: Vec::new(),
        value_buffer: Vec::new(),
        in_flight: VecDeque::new(),
        in_flight_records: 0,
        acked: BTreeMap::new(),
        topics: BTreeSet::new(),
    };
    let positions = context.offsets.load(&context.key.connector).await?;
    task.open(&context.config, &positions).await?;
    context.report_target().await;

    // A stop gives in-flight work `task.shutdown.graceful.timeout.ms` to
    // finish; past it the loop is cut short wherever it waits (a broker
    // that is down, a connector stuck in `poll`). What Kafka acknowledged is
    // still committed, and the connector is always told `stop`.
    let grace = context.worker.task_shutdown_timeout;
    let deadline = context.stop_deadline();
    // The loop and, on a clean stop, waiting for what is in flight (so its
    // offsets are stored too) share one deadline.
    let work = async {
        let outcome = run
            .pump(&mut context, task.as_mut(), &mut failures)
            .await
            .map_err(|error| clients::explain(error, &failures));
        match outcome {
            Ok(()) => run.settle_all().await,
            Err(error) => Err(error),
        }
    };
    let outcome = tokio::select! {
        outcome = work => outcome,
        () = deadline => {
            tracing::warn!(task = %context.key, "task did not finish in-flight work in time; unacknowledged records are not committed");
            Ok(())
        }
    };
    let committed = within(
        grace,
        run.commit(&context, task.as_mut(), true),
        Error::Offsets("the final offset commit timed out".into()),
    )
    .await;
    let stopped = within(
        grace,
        task.stop(),
        Error::Internal("the connector's stop did not return in time".into()),
    )
    .await;
    // Dropping the last hold of a producer joins its polling thread: not on the runtime.
    if let Some(producer) = run.producer.take() {
        tokio::task::spawn_blocking(move || drop(producer));
    }
    outcome.and(committed).and(stopped)
}

impl SourceRun {
    async fn pump(
        &mut self,
        context: &mut TaskContext,
        task: &mut dyn SourceTask,
        failures: &mut ClientFailures,
    ) -> Result<()> {
        let mut flush = tokio::time::interval(context.worker.offset_flush_interval);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        flush.tick().await;
        let mut poll_backoff: Option<Backoff> = None;
        loop {
            let paused = context.is_paused();
            let polling_since = std::time::Instant::now();
            tokio::select! {
                biased;
                () = context.cancel.cancelled() => return Ok(()),
                error = clients::failed(failures) => return Err(error),
                changed = context.target.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    context.report_target().await;
                }
                _ = flush.tick() => self.commit(context, task, false).await?,
                polled = task.poll(MAX_POLL_RECORDS), if !paused => {
                    let records = match polled {
                        Ok(records) => {
                            poll_backoff = None;
                            self.metrics.batches.record(polling_since.elapsed());
                            self.metrics.records_in.add(records.len() as u64);
                            records
                        }
                        // A retriable failure is retried until it succeeds, as Kafka
                        // Connect retries a RetriableException from `poll`.
                        Err(error) if error.is_retriable() => {
                            let backoff = poll_backoff.get_or_insert_with(|| self.errors.connector_backoff());
                            let delay = backoff.next_delay().unwrap_or(backoff.max_delay());
                            tracing::warn!(task = %context.key, %error, ?delay, "retriable poll failure; retrying");
                            tokio::select! {
                                () = context.cancel.cancelled() => return Ok(()),
                                () = tokio::time::sleep(delay) => continue,
                            }
                        }
                        Err(error) => return Err(error.into()),
                    };
                    if !records.is_empty() {
                        self.send(context, records).await?;
                    }
                }
            }
        }
    }

    /// Hands a batch to the producer without waiting for its acks, then
    /// waits only while too many records are in flight.
    async fn send(&mut self, context: &TaskContext, records: Vec<SourceRecord>) -> Result<()> {
        let Some(producer) = self.producer.as_ref() else {
            return Err(Error::Internal("the source producer is gone".into()));
        };
        let mut batch = InFlight {
            acks: BatchAcks::new(self.settled.clone()),
            records: 0,
            positions: Vec::new(),
            failed: false,
        };
        let mut new_topics = Vec::new();
        let tap = &context.tap;
        for source in records {
            if tap.listening(TapPoint::AfterPoll) {
                tap.offer(TapPoint::AfterPoll, &TapView::from(&source));
            }
            let SourceRecord {
                source_partition,
                source_offset,
                topic,
                kafka_partition,
                key,
                value,
                timestamp_ms,
                headers,
            } = source;
            // The offset counts as handled even when a transform drops the record.
            match batch.positions.iter_mut().find(|(partition, _)| {
                Arc::ptr_eq(partition, &source_partition) || *partition == source_partition
            }) {
                Some((_, offset)) => *offset = source_offset,
                None => batch.positions.push((source_partition, source_offset)),
            }
            let record = ConnectRecord {
                topic,
                kafka_partition,
                kafka_offset: None,
                key,
                value,
                timestamp_ms,
                headers,
            };
            let record = if self.transforms.is_empty() {
                record
            } else {
                match self.transforms.apply_naming_failures(record) {
                    Ok(Some(record)) => record,
                    Ok(None) => continue,
                    Err(failed) => {
                        let failure =
                            data_failure(Stage::Transformation, &failed.class, failed.error.0);
                        self.errors.tolerate(failure, None).await?;
                        continue;
                    }
                }
            };
            if tap.listening(TapPoint::AfterTransforms) {
                tap.offer(TapPoint::AfterTransforms, &TapView::from(&record));
            }
            let key = match self.key_converter.to_kafka_into(
                &record.topic,
                &record.key,
                &mut self.key_buffer,
            ) {
                Ok(present) => present.then_some(self.key_buffer.as_slice()),
                Err(error) => {
                    self.errors
                        .tolerate(
                            data_failure(Stage::KeyConverter, &self.key_converter_class, error.0),
                            None,
                        )
                        .await?;
                    continue;
                }
            };
            let value = match self.value_converter.to_kafka_into(
                &record.topic,
                &record.value,
                &mut self.value_buffer,
            ) {
                Ok(present) => present.then_some(self.value_buffer.as_slice()),
                Err(error) => {
                    self.errors
                        .tolerate(
                            data_failure(
                                Stage::ValueConverter,
                                &self.value_converter_class,
                                error.0,
                            ),
                            None,
                        )
                        .await?;
                    continue;
                }
            };
            if tap.listening(TapPoint::BeforePut) {
                tap.offer(TapPoint::BeforePut, &TapView::from(&record));
            }
            // Headers are converted before anything is handed to the
            // producer: a header that fails is tolerated (stage
            // HEADER_CONVERTER) like the key and the value, as Kafka
            // Connect's source tasks and Weir's sinks do.
            let headers = if record.headers.is_empty() {
                None
            } else {
                let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
                let mut failed = None;
                for header in &record.headers {
                    match self.header_converter.to_kafka(&record.topic, &header.value) {
                        Ok(bytes) => {
                            headers = headers.insert(KafkaHeader {
                                key: &header.key,
                                value: bytes.as_deref(),
                            });
                        }
                        Err(error) => {
                            failed = Some(error);
                            break;
                        }
                    }
                }
                if let Some(error) = failed {
                    self.errors
                        .tolerate(
                            data_failure(
                                Stage::HeaderConverter,
                                &self.header_converter_class,
                                error.0,
                            ),
                            None,
                        )
                        .await?;
                    continue;
                }
                Some(headers)
            };
            let mut message = BaseRecord::with_opaque_to(&record.topic, batch.acks.clone());
            if let Some(headers) = headers {
                message = message.headers(headers);
            }
            if let Some(key) = key {
                message = message.key(key);
            }
            if let Some(value) = value {
                message = message.payload(value);
            }
            if let Some(partition) = record.kafka_partition {
                message = message.partition(partition);
            }
            if let Some(timestamp) = record.timestamp_ms {
                message = message.timestamp(timestamp);
            }
            batch.acks.outstanding.fetch_add(1, Ordering::AcqRel);
            loop {
                match producer.producer.send(message) {
                    Ok(()) => {
                        batch.records += 1;
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                        message = returned;
                        // The producer's queue is full: wait for deliveries to make room.
                        tokio::select! {
                            () = self.settled.notified() => {}
                            () = tokio::time::sleep(std::time::Duration::from_millis(10)) => {}
                        }
                    }
                    Err((error, _)) => {
                        batch.acks.outstanding.fetch_sub(1, Ordering::AcqRel);
                        return Err(error.into());
                    }
                }
            }
            if !self.topics.contains(&record.topic) {
                self.topics.insert(record.topic.clone());
                new_topics.push(record.topic.to_string());
            }
        }
        // The sender's hold: from here the count can reach zero.
        batch.acks.sent();
        self.in_flight_records += batch.records;
        self.in_flight.push_back(batch);
        while self.in_flight_records > MAX_IN_FLIGHT {
            self.settle_one().await?;
        }
        context.emit_topics(new_topics).await;
        Ok(())
    }

    /// Waits until the oldest batch in flight settles; false if nothing is
    /// in flight.
    async fn settle_one(&mut self) -> Result<bool> {
        loop {
            let Some(front) = self.in_flight.front() else {
                return Ok(false);
            };
            if front.failed {
                // Nothing after an undelivered record can ever be committed.
                return Ok(false);
            }
            if front.acks.settled() {
                self.settle_ready()?;
                return Ok(true);
            }
            // A wake-up between the check and here is kept as a permit.
            self.settled.notified().await;
        }
    }

    /// Retires the batches at the front that Kafka fully acknowledged,
    /// without waiting; the first undelivered record's error otherwise.
    fn settle_ready(&mut self) -> Result<()> {
        while let Some(front) = self.in_flight.front_mut() {
            if front.failed {
                return Ok(());
            }
            if let Some(error) = front.acks.failure.get() {
                front.failed = true;
                return Err(error.clone().into());
            }
            if !front.acks.settled() {
                return Ok(());
            }
            self.retire_front();
        }
        Ok(())
    }

    async fn settle_all(&mut self) -> Result<()> {
        while self.settle_one().await? {}
        Ok(())
    }

    /// Moves the fully acknowledged batch at the front into `acked`. A batch
    /// with an undelivered record is never retired, so neither it nor any
    /// batch after it is committed.
    fn retire_front(&mut self) {
        if let Some(batch) = self.in_flight.pop_front() {
            self.in_flight_records -= batch.records;
            self.metrics.records_out.add(batch.records as u64);
            for (partition, offset) in batch.positions {
                let key = serde_json::to_string(&*partition).unwrap_or_default();
                let position = SourcePosition {
                    partition: Arc::unwrap_or_clone(partition),
                    offset: offset.into_map(),
                };
                self.acked.insert(key, position);
            }
        }
    }

    /// Stores acknowledged offsets, then tells the connector they are
    /// committed. A store that fails keeps the positions for the next try;
    /// `final_commit` (at stop) reports the failure instead.
    async fn commit(
        &mut self,
        context: &TaskContext,
        task: &mut dyn SourceTask,
        final_commit: bool,
    ) -> Result<()> {
        // A failed delivery found now still lets what Kafka acknowledged
        // before it be stored; the failure is reported after that.
        let undelivered = self.settle_ready().err();
        if self.acked.is_empty() {
            return undelivered.map_or(Ok(()), Err);
        }
        context.may_commit()?;
        let pending = std::mem::take(&mut self.acked);
        let positions: Vec<SourcePosition> = pending.values().cloned().collect();
        let committing = std::time::Instant::now();
        let stored = context
            .within_lease(context.offsets.commit(&context.key.connector, &positions))
            .await?;
        match &stored {
            Ok(()) => self.metrics.commits.record(committing.elapsed()),
            Err(_) => self.metrics.commit_failures.add(1),
        }
        if let Err(error) = stored {
            // Positions acknowledged since are newer; keep those.
            for (key, position) in pending {
                self.acked.entry(key).or_insert(position);
            }
            if let Some(undelivered) = undelivered {
                return Err(undelivered);
            }
            if final_commit {
                return Err(error);
            }
            tracing::warn!(task = %context.key, %error, "offset commit failed; retrying at the next flush");
            return Ok(());
        }
        tracing::debug!(task = %context.key, partitions = positions.len(), "source offsets committed");
        task.commit(&positions).await?;
        context
            .emit(TaskEvent::OffsetsCommitted {
                connector: context.key.connector.clone(),
                positions,
            })
            .await;
        undelivered.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use rdkafka::mocking::MockCluster;
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    use tokio::sync::{mpsc, watch};
    use tokio_util::sync::CancellationToken;
    use weir_connect::config::ConfigMap;
    use weir_connect::data::{SchemaAndValue, Value};

    use super::*;
    use crate::config::WorkerConfig;
    use crate::context::TargetState;
    use crate::events::TaskId;
    use crate::offsets::{FileOffsetStore, OffsetStore};

    /// Polls the given records once, then nothing; remembers what it was
    /// told is committed and whether it was stopped.
    struct ScriptedSource {
        records: Vec<SourceRecord>,
        committed: Arc<Mutex<Vec<SourcePosition>>>,
        stopped: Arc<Mutex<bool>>,
        polled: Arc<tokio::sync::Notify>,
    }

    #[async_trait::async_trait]
    impl SourceTask for ScriptedSource {
        async fn open(
            &mut self,
            _config: &ConfigMap,
            _positions: &[SourcePosition],
        ) -> weir_connect::api::Result<()> {
            Ok(())
        }

        async fn poll(&mut self, _max: usize) -> weir_connect::api::Result<Vec<SourceRecord>> {
            if self.records.is_empty() {
                // Nothing more: wait as a connector blocked upstream would.
                std::future::pending::<()>().await;
            }
            self.polled.notify_one();
            Ok(std::mem::take(&mut self.records))
        }

        async fn commit(&mut self, positions: &[SourcePosition]) -> weir_connect::api::Result<()> {
            self.committed.lock().unwrap().extend_from_slice(positions);
            Ok(())
        }

        async fn stop(&mut self) -> weir_connect::api::Result<()> {
            *self.stopped.lock().unwrap() = true;
            Ok(())
        }
    }

    fn record(line: u64) -> SourceRecord {
        let mut partition = JsonMap::new();
        partition.insert("filename".into(), "in.txt".into());
        let mut offset = JsonMap::new();
        offset.insert("position".into(), line.into());
        SourceRecord {
            source_partition: Arc::new(partition),
            source_offset: offset.into(),
            topic: "out".into(),
            kafka_partition: None,
            key: SchemaAndValue::null(),
            value: SchemaAndValue {
                schema: None,
                value: Value::String(format!("line {line}")),
            },
            timestamp_ms: None,
            headers: Vec::new(),
        }
    }

    struct Harness {
        context: TaskContext,
        offsets: Arc<FileOffsetStore>,
        cancel: CancellationToken,
        _target: watch::Sender<TargetState>,
        _dir: tempfile::TempDir,
    }

    fn harness(bootstrap: &str) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let properties: ConfigMap = [
            ("bootstrap.servers", bootstrap),
            ("offset.storage.file.filename", "unused"),
            ("offset.flush.interval.ms", "100"),
            ("task.shutdown.graceful.timeout.ms", "500"),
            (
                "value.converter",
                "org.apache.kafka.connect.storage.StringConverter",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let worker = Arc::new(WorkerConfig::from_properties(properties, true).unwrap());
        let offsets = Arc::new(FileOffsetStore::new(dir.path().join("offsets.json")));
        let (target, target_rx) = watch::channel(TargetState::Running);
        let (events, _) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let context = TaskContext {
            key: TaskId {
                connector: "src".into(),
                task: 0,
            },
            task_count: 1,
            config: ConfigMap::new(),
            epoch: 1,
            worker,
            offsets: offsets.clone(),
            target: target_rx,
            cancel: cancel.clone(),
            events,
            lease: crate::lease::Lease::unbounded(),
            metrics: crate::metrics::TaskMetrics::detached(),
            tap: crate::tap::TaskTap::detached("c", 0),
            claims: crate::claims::PartitionClaims::unclaimed(),
            producers: crate::producers::ProducerPool::default(),
        };
        Harness {
            context,
            offsets,
            cancel,
            _target: target,
            _dir: dir,
        }
    }

    type Committed = Arc<Mutex<Vec<SourcePosition>>>;

    fn scripted(records: Vec<SourceRecord>) -> (ScriptedSource, Committed, Arc<Mutex<bool>>) {
        let committed = Arc::new(Mutex::new(Vec::new()));
        let stopped = Arc::new(Mutex::new(false));
        let task = ScriptedSource {
            records,
            committed: committed.clone(),
            stopped: stopped.clone(),
            polled: Arc::new(tokio::sync::Notify::new()),
        };
        (task, committed, stopped)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_delivery_in_a_one_record_batch_commits_nothing() {
        let cluster = MockCluster::new(1).unwrap();
        // Not retriable: the broker refuses the record for good.
        cluster.request_errors(
            RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 10],
        );
        let harness = harness(&cluster.bootstrap_servers());
        let (task, committed, stopped) = scripted(vec![record(1)]);
        let outcome = tokio::time::timeout(
            Duration::from_secs(60),
            run(harness.context, Box::new(task)),
        )
        .await
        .expect("the task ends after the failed delivery");
        assert!(outcome.is_err(), "a record Kafka refused fails the task");
        assert!(
            committed.lock().unwrap().is_empty(),
            "the connector was told nothing is committed"
        );
        assert!(
            harness.offsets.load("src").await.unwrap().is_empty(),
            "no offset was stored for a record Kafka never accepted"
        );
        assert!(*stopped.lock().unwrap(), "the connector is stopped");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn delivered_records_are_committed() {
        let cluster = MockCluster::new(1).unwrap();
        let harness = harness(&cluster.bootstrap_servers());
        let (task, committed, _) = scripted(vec![record(1), record(2)]);
        let cancel = harness.cancel.clone();
        let offsets = harness.offsets.clone();
        let running = tokio::spawn(run(harness.context, Box::new(task)));
        while offsets.load("src").await.unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cancel.cancel();
        running.await.unwrap().unwrap();
        let stored = offsets.load("src").await.unwrap();
        assert_eq!(stored[0].offset["position"], 2);
        assert_eq!(
            committed.lock().unwrap().last().unwrap().offset["position"],
            2
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stop_with_records_stuck_in_flight_ends_and_commits_nothing() {
        // A broker that is down: nothing listens on the port.
        let unreachable = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let harness = harness(&unreachable.to_string());
        let (task, committed, stopped) = scripted(vec![record(1)]);
        let polled = task.polled.clone();
        let cancel = harness.cancel.clone();
        let running = tokio::spawn(run(harness.context, Box::new(task)));
        // The record goes to the producer, whose broker is down.
        polled.notified().await;
        cancel.cancel();
        let outcome = tokio::time::timeout(Duration::from_secs(30), running)
            .await
            .expect("a stop does not wait for a broker that is down");
        assert!(outcome.unwrap().is_ok());
        assert!(committed.lock().unwrap().is_empty());
        assert!(harness.offsets.load("src").await.unwrap().is_empty());
        assert!(*stopped.lock().unwrap(), "the connector is stopped");
    }
}
