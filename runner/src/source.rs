//! The source path: connector `poll` → converters → rdkafka producer. Offsets
//! of records Kafka acknowledged are stored every `offset.flush.interval.ms`
//! (and on stop); only then is the connector told `commit`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use weir_connect::api::{SourcePosition, SourceRecord, SourceTask};
use weir_connect::converter::Converter;

use crate::config::{ClientRole, ConverterRole, client_config};
use crate::error::{Error, Result};
use crate::task::{TaskContext, TaskEvent};

/// Records asked of the connector per poll.
const MAX_POLL_RECORDS: usize = 10_000;

struct SourceRun {
    producer: FutureProducer,
    key_converter: Box<dyn Converter>,
    value_converter: Box<dyn Converter>,
    /// Acknowledged by Kafka but not yet stored, by partition.
    acked: BTreeMap<String, SourcePosition>,
    topics: BTreeSet<String>,
}

pub async fn run(mut context: TaskContext, mut task: Box<dyn SourceTask>) -> Result<()> {
    let mut settings = context
        .worker
        .client_settings(&context.config, ClientRole::Producer);
    settings
        .entry("acks".into())
        .or_insert_with(|| "all".into());
    settings
        .entry("linger.ms".into())
        .or_insert_with(|| "5".into());
    let mut run = SourceRun {
        producer: client_config(&settings).create()?,
        key_converter: context
            .worker
            .converter(&context.config, ConverterRole::Key)?,
        value_converter: context
            .worker
            .converter(&context.config, ConverterRole::Value)?,
        acked: BTreeMap::new(),
        topics: BTreeSet::new(),
    };
    let positions = context.offsets.load(&context.key.connector).await?;
    task.open(&context.config, &positions).await?;
    context.report_target().await;

    let outcome = run.pump(&mut context, task.as_mut()).await;
    let committed = run.commit(&context, task.as_mut()).await;
    let stopped = task.stop().await.map_err(Error::from);
    outcome.and(committed).and(stopped)
}

impl SourceRun {
    async fn pump(&mut self, context: &mut TaskContext, task: &mut dyn SourceTask) -> Result<()> {
        let mut flush = tokio::time::interval(context.worker.offset_flush_interval);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        flush.tick().await;
        loop {
            let paused = context.is_paused();
            tokio::select! {
                biased;
                () = context.cancel.cancelled() => return Ok(()),
                changed = context.target.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    context.report_target().await;
                }
                _ = flush.tick() => self.commit(context, task).await?,
                polled = task.poll(MAX_POLL_RECORDS), if !paused => {
                    let records = polled?;
                    if !records.is_empty() {
                        self.send(context, records).await?;
                    }
                }
            }
        }
    }

    /// Produces a batch and waits for Kafka to acknowledge all of it.
    async fn send(&mut self, context: &TaskContext, records: Vec<SourceRecord>) -> Result<()> {
        let mut pending: VecDeque<DeliveryFuture> = VecDeque::with_capacity(records.len());
        let mut new_topics = Vec::new();
        for record in &records {
            let key = self
                .key_converter
                .from_connect(&record.topic, &record.key)?;
            let value = self
                .value_converter
                .from_connect(&record.topic, &record.value)?;
            let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
            for header in &record.headers {
                let text = header.value.value.to_display_string();
                headers = headers.insert(KafkaHeader {
                    key: &header.key,
                    value: Some(text.as_bytes()),
                });
            }
            let mut message = FutureRecord::to(&record.topic).headers(headers);
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
                        pending.push_back(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                        message = returned;
                        // The local queue is full: wait for the oldest send to finish.
                        match pending.pop_front() {
                            Some(oldest) => check_delivery(oldest.await)?,
                            None => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
                        }
                    }
                    Err((error, _)) => return Err(error.into()),
                }
            }
            if self.topics.insert(record.topic.clone()) {
                new_topics.push(record.topic.clone());
            }
        }
        for delivery in pending {
            check_delivery(delivery.await)?;
        }
        for record in records {
            let position = SourcePosition {
                partition: record.source_partition,
                offset: record.source_offset,
            };
            let key = serde_json::Value::Object(position.partition.clone()).to_string();
            self.acked.insert(key, position);
        }
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

    /// Stores acknowledged offsets, then tells the connector they are committed.
    async fn commit(&mut self, context: &TaskContext, task: &mut dyn SourceTask) -> Result<()> {
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
