//! The source path: connector `poll` → converters → rdkafka producer. Batches
//! are pipelined: the next poll does not wait for the previous batch's acks,
//! up to a bound on records in flight. Offsets are stored every
//! `offset.flush.interval.ms` (and on stop) for the prefix of batches Kafka
//! has fully acknowledged; only then is the connector told `commit`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use futures::FutureExt;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use weir_connect::api::{SourcePosition, SourceRecord, SourceTask};
use weir_connect::converter::Converter;
use weir_connect::transforms::{ConnectRecord, TransformChain};

use crate::clients::{self, ClientFailures, ClientRole, WatchedContext};
use crate::config::ConverterRole;
use crate::error::{Error, Result};
use crate::errors::{Backoff, ErrorPolicy, Failure, Stage};
use crate::task::{TaskContext, TaskEvent};

/// Records asked of the connector per poll.
const MAX_POLL_RECORDS: usize = 10_000;
/// Records sent but not yet acknowledged, at most; past it the loop waits.
const MAX_IN_FLIGHT: usize = 20_000;

/// One polled batch on its way to Kafka.
struct InFlight {
    deliveries: VecDeque<DeliveryFuture>,
    /// The last position per source partition in this batch (usually one).
    positions: Vec<SourcePosition>,
}

fn data_failure(stage: Stage, error: String) -> Failure {
    Failure {
        stage,
        error,
        exception_class: "org.apache.kafka.connect.errors.DataException",
    }
}

struct SourceRun {
    producer: FutureProducer<WatchedContext>,
    errors: ErrorPolicy,
    transforms: TransformChain,
    key_converter: Box<dyn Converter>,
    value_converter: Box<dyn Converter>,
    /// Batches in send order; only a fully acknowledged prefix may be committed.
    in_flight: VecDeque<InFlight>,
    in_flight_records: usize,
    /// Acknowledged by Kafka but not yet stored, by partition.
    acked: BTreeMap<String, SourcePosition>,
    topics: BTreeSet<String>,
}

pub async fn run(mut context: TaskContext, mut task: Box<dyn SourceTask>) -> Result<()> {
    let mut settings = context
        .worker
        .client_settings(&context.config, ClientRole::Producer)?;
    settings.set_default("acks", "all");
    settings.set_default("linger.ms", "5");
    let (producer, mut failures) = settings.create()?;
    let errors = ErrorPolicy::from_config(
        &context.key.connector,
        context.key.task,
        &context.config,
        &context.worker,
        false,
    )
    .await?;
    let mut run = SourceRun {
        errors,
        producer,
        transforms: TransformChain::from_config(&context.config).map_err(Error::Config)?,
        key_converter: context
            .worker
            .converter(&context.config, ConverterRole::Key)?,
        value_converter: context
            .worker
            .converter(&context.config, ConverterRole::Value)?,
        in_flight: VecDeque::new(),
        in_flight_records: 0,
        acked: BTreeMap::new(),
        topics: BTreeSet::new(),
    };
    let positions = context.offsets.load(&context.key.connector).await?;
    task.open(&context.config, &positions).await?;
    context.report_target().await;

    let outcome = run
        .pump(&mut context, task.as_mut(), &mut failures)
        .await
        .map_err(|error| clients::explain(error, &failures));
    // On a clean stop, wait for what is in flight so its offsets are stored too.
    let settled = match outcome {
        Ok(()) => run.settle_all().await,
        Err(_) => Ok(()),
    };
    let committed = match settled {
        Ok(()) => run.commit(&context, task.as_mut()).await,
        Err(error) => Err(error),
    };
    let stopped = task.stop().await.map_err(Error::from);
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
                _ = flush.tick() => self.commit(context, task).await?,
                polled = task.poll(MAX_POLL_RECORDS), if !paused => {
                    let records = match polled {
                        Ok(records) => {
                            poll_backoff = None;
                            records
                        }
                        Err(error) if error.is_retryable() => {
                            let backoff = poll_backoff.get_or_insert_with(|| self.errors.backoff());
                            match backoff.next_delay() {
                                Some(delay) => {
                                    tracing::warn!(task = %context.key, %error, ?delay, "retryable poll failure");
                                    tokio::time::sleep(delay).await;
                                    continue;
                                }
                                None => return Err(error.into()),
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
        let mut batch = InFlight {
            deliveries: VecDeque::with_capacity(records.len()),
            positions: Vec::new(),
        };
        let mut new_topics = Vec::new();
        for source in records {
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
            match batch
                .positions
                .iter_mut()
                .find(|p| p.partition == source_partition)
            {
                Some(position) => position.offset = source_offset,
                None => batch.positions.push(SourcePosition {
                    partition: source_partition,
                    offset: source_offset,
                }),
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
                match self.transforms.apply(record) {
                    Ok(Some(record)) => record,
                    Ok(None) => continue,
                    Err(error) => {
                        self.errors
                            .tolerate(data_failure(Stage::Transformation, error.to_string()), None)
                            .await?;
                        continue;
                    }
                }
            };
            let key = match self.key_converter.to_kafka(&record.topic, &record.key) {
                Ok(key) => key,
                Err(error) => {
                    self.errors
                        .tolerate(data_failure(Stage::KeyConverter, error.0), None)
                        .await?;
                    continue;
                }
            };
            let value = match self.value_converter.to_kafka(&record.topic, &record.value) {
                Ok(value) => value,
                Err(error) => {
                    self.errors
                        .tolerate(data_failure(Stage::ValueConverter, error.0), None)
                        .await?;
                    continue;
                }
            };
            let mut message = FutureRecord::to(&record.topic);
            if !record.headers.is_empty() {
                let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
                for header in &record.headers {
                    let text = header.value.value.to_display_string();
                    headers = headers.insert(KafkaHeader {
                        key: &header.key,
                        value: Some(text.as_bytes()),
                    });
                }
                message = message.headers(headers);
            }
            if let Some(key) = key.as_deref() {
                message = message.key(key);
            }
            if let Some(value) = value.as_deref() {
                message = message.payload(value);
            }
            if let Some(partition) = record.kafka_partition {
                message = message.partition(partition);
            }
            if let Some(timestamp) = record.timestamp_ms {
                message = message.timestamp(timestamp);
            }
            loop {
                match self.producer.send_result(message) {
                    Ok(delivery) => {
                        batch.deliveries.push_back(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                        message = returned;
                        // The producer's queue is full: wait for the oldest send to finish.
                        if let Some(oldest) = batch.deliveries.pop_front() {
                            check_delivery(oldest.await)?;
                        } else if !self.settle_one().await? {
                            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        }
                    }
                    Err((error, _)) => return Err(error.into()),
                }
            }
            if !self.topics.contains(&record.topic) {
                self.topics.insert(record.topic.clone());
                new_topics.push(record.topic.clone());
            }
        }
        self.in_flight_records += batch.deliveries.len();
        self.in_flight.push_back(batch);
        while self.in_flight_records > MAX_IN_FLIGHT {
            self.settle_one().await?;
        }
        context.emit_topics(new_topics).await;
        Ok(())
    }

    /// Waits for the oldest record in flight; false if nothing is in flight.
    async fn settle_one(&mut self) -> Result<bool> {
        let Some(front) = self.in_flight.front_mut() else {
            return Ok(false);
        };
        if let Some(delivery) = front.deliveries.pop_front() {
            self.in_flight_records -= 1;
            check_delivery(delivery.await)?;
        }
        self.retire_acked();
        Ok(true)
    }

    /// Collects acks that already arrived, without waiting.
    fn settle_ready(&mut self) -> Result<()> {
        while let Some(front) = self.in_flight.front_mut() {
            while let Some(delivery) = front.deliveries.front_mut() {
                match delivery.now_or_never() {
                    Some(result) => {
                        front.deliveries.pop_front();
                        self.in_flight_records -= 1;
                        check_delivery(result)?;
                    }
                    None => return Ok(()),
                }
            }
            self.retire_acked();
        }
        Ok(())
    }

    async fn settle_all(&mut self) -> Result<()> {
        while self.settle_one().await? {}
        Ok(())
    }

    /// Moves fully acknowledged batches at the front into `acked`.
    fn retire_acked(&mut self) {
        while self
            .in_flight
            .front()
            .is_some_and(|batch| batch.deliveries.is_empty())
        {
            if let Some(batch) = self.in_flight.pop_front() {
                for position in batch.positions {
                    let key = serde_json::Value::Object(position.partition.clone()).to_string();
                    self.acked.insert(key, position);
                }
            }
        }
    }

    /// Stores acknowledged offsets, then tells the connector they are committed.
    async fn commit(&mut self, context: &TaskContext, task: &mut dyn SourceTask) -> Result<()> {
        self.settle_ready()?;
        if self.acked.is_empty() {
            return Ok(());
        }
        let positions: Vec<SourcePosition> =
            std::mem::take(&mut self.acked).into_values().collect();
        context
            .offsets
            .commit(&context.key.connector, &positions)
            .await?;
        tracing::debug!(task = %context.key, partitions = positions.len(), "source offsets committed");
        task.commit(&positions).await?;
        context
            .emit(TaskEvent::OffsetsCommitted {
                connector: context.key.connector.clone(),
                positions,
            })
            .await;
        Ok(())
    }
}

fn check_delivery(
    delivery: std::result::Result<
        rdkafka::producer::future_producer::OwnedDeliveryResult,
        futures::channel::oneshot::Canceled,
    >,
) -> Result<()> {
    match delivery {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((error, _))) => Err(error.into()),
        Err(_) => Err(Error::Internal("producer dropped a delivery report".into())),
    }
}
