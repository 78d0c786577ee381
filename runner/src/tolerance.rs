//! Error handling as Kafka Connect configures it per connector:
//! `errors.retry.timeout` / `errors.retry.delay.max.ms` (exponential backoff
//! for retriable failures), `errors.tolerance` (`none` fails the task, `all`
//! skips the record), `errors.log.enable` / `errors.log.include.messages`,
//! and for sinks the dead-letter queue `errors.deadletterqueue.*` with
//! Kafka Connect's `__connect.errors.*` context headers.
//! (The crate's own error type is [`crate::error`].)

use std::time::Duration;

use tokio::time::Instant;

use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use weir_connect::config::{ConfigMap, Direction, base_connector_def};

use crate::clients::{ClientFailures, ClientRole, WatchedContext};
use crate::config::WorkerConfig;
use crate::error::{Error, Result};
use crate::offsets::{TopicSpec, ensure_topic};

/// Where in the record path an operation failed (`__connect.errors.stage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    KeyConverter,
    ValueConverter,
    HeaderConverter,
    Transformation,
    /// The connector's `put` rejected the record.
    TaskPut,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::KeyConverter => "KEY_CONVERTER",
            Stage::ValueConverter => "VALUE_CONVERTER",
            Stage::HeaderConverter => "HEADER_CONVERTER",
            Stage::Transformation => "TRANSFORMATION",
            Stage::TaskPut => "TASK_PUT",
        }
    }
}

/// The consumed record a sink failure is about, as it came from Kafka.
#[derive(Debug, Clone, PartialEq)]
pub struct OriginalRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The record's timestamp, kept on the DLQ copy.
    pub timestamp_ms: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// One failed operation on one record.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub stage: Stage,
    /// The converter or SMT class that failed (`__connect.errors.class.name`).
    pub class_name: String,
    pub error: String,
    /// The exception class Kafka Connect would show.
    pub exception_class: &'static str,
}

impl Failure {
    /// What `__connect.errors.exception.stacktrace` carries: the exception
    /// and where in the record path it was thrown (Weir has no Java stack).
    pub fn trace(&self, connector: &str, task: i32) -> String {
        format!(
            "{}: {}\n\tat {} ({} stage)\n\tat task {connector}-{task}",
            self.exception_class,
            self.error,
            self.class_name,
            self.stage.name()
        )
    }
}

/// The dead-letter queue of a sink connector.
struct DeadLetterQueue {
    topic: String,
    context_headers: bool,
    producer: FutureProducer<WatchedContext>,
    /// Authentication or TLS failures of the DLQ producer.
    failures: ClientFailures,
}

/// A connector's error-handling settings and its DLQ producer.
pub struct ErrorPolicy {
    connector: String,
    task: i32,
    /// `None`: retry forever (`errors.retry.timeout=-1`).
    retry_timeout: Option<Duration>,
    max_delay: Duration,
    tolerate_all: bool,
    log: bool,
    log_messages: bool,
    dlq: Option<DeadLetterQueue>,
    /// Where tolerated errors and DLQ writes are counted.
    metrics: std::sync::Arc<crate::metrics::TaskMetrics>,
}

const INITIAL_BACKOFF: Duration = Duration::from_millis(300);

/// Exponential backoff between retries of one operation: 300 ms doubling,
/// capped by `errors.retry.delay.max.ms`, until `errors.retry.timeout`.
#[derive(Debug, Clone)]
pub struct Backoff {
    started: Instant,
    delay: Duration,
    max_delay: Duration,
    timeout: Option<Duration>,
}

impl Backoff {
    /// The longest wait between two tries.
    pub fn max_delay(&self) -> Duration {
        self.max_delay
    }

    /// How long to wait before the next try; `None` once the timeout has passed.
    pub fn next_delay(&mut self) -> Option<Duration> {
        let remaining = match self.timeout {
            None => Duration::MAX,
            Some(limit) => limit
                .checked_sub(self.started.elapsed())
                .filter(|r| !r.is_zero())?,
        };
        let wait = self.delay.min(self.max_delay).min(remaining);
        self.delay = self.delay.saturating_mul(2);
        Some(wait)
    }
}

impl ErrorPolicy {
    /// Reads the `errors.*` settings; opens a DLQ producer for sinks that name one.
    pub async fn from_config(
        connector: &str,
        task: i32,
        config: &ConfigMap,
        worker: &WorkerConfig,
        sink: bool,
    ) -> Result<Self> {
        let direction = if sink {
            Direction::Sink
        } else {
            Direction::Source
        };
        let def = base_connector_def(direction).only(|key| key.starts_with("errors."));
        let errors = def.parse(config).map_err(Error::Config)?;
        let retry = errors.long("errors.retry.timeout").map_err(Error::Config)?;
        // The definition allows none and all, in any case.
        let tolerate_all = errors
            .string("errors.tolerance")
            .map_err(Error::Config)?
            .eq_ignore_ascii_case("all");
        let dlq_topic = if sink {
            errors
                .string("errors.deadletterqueue.topic.name")
                .map_err(Error::Config)?
                .trim()
        } else {
            ""
        };
        let dlq = if dlq_topic.is_empty() {
            None
        } else {
            let admin = worker.client_settings(config, ClientRole::Admin)?;
            let mut settings = worker.client_settings(config, ClientRole::Producer)?;
            let spec = TopicSpec {
                partitions: 1,
                replication_factor: i32::from(
                    errors
                        .short("errors.deadletterqueue.topic.replication.factor")
                        .map_err(Error::Config)?,
                ),
                compacted: false,
            };
            ensure_topic(&admin, dlq_topic, spec).await?;
            settings.apply_producer_defaults();
            let (producer, failures) = settings.create()?;
            Some(DeadLetterQueue {
                topic: dlq_topic.to_owned(),
                context_headers: errors
                    .boolean("errors.deadletterqueue.context.headers.enable")
                    .map_err(Error::Config)?,
                producer,
                failures,
            })
        };
        Ok(ErrorPolicy {
            connector: connector.to_owned(),
            task,
            retry_timeout: u64::try_from(retry).ok().map(Duration::from_millis),
            max_delay: Duration::from_millis(
                u64::try_from(
                    errors
                        .long("errors.retry.delay.max.ms")
                        .map_err(Error::Config)?,
                )
                .unwrap_or(0),
            ),
            tolerate_all,
            log: errors.boolean("errors.log.enable").map_err(Error::Config)?,
            log_messages: errors
                .boolean("errors.log.include.messages")
                .map_err(Error::Config)?,
            dlq,
            metrics: crate::metrics::TaskMetrics::detached(),
        })
    }

    pub fn tolerates_all(&self) -> bool {
        self.tolerate_all
    }

    /// The DLQ topic, which must exist before the first report on brokers that
    /// do not create topics.
    pub fn dlq_topic(&self) -> Option<&str> {
        self.dlq.as_ref().map(|d| d.topic.as_str())
    }

    /// A fresh backoff for retriable connector failures (`poll`, `put`),
    /// which Kafka Connect retries until they succeed:
    /// `errors.retry.timeout` does not bound it.
    pub fn connector_backoff(&self) -> Backoff {
        Backoff {
            timeout: None,
            ..self.backoff()
        }
    }

    /// A fresh backoff for one operation's retries.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            started: Instant::now(),
            delay: INITIAL_BACKOFF,
            max_delay: self.max_delay,
            timeout: self.retry_timeout,
        }
    }

    /// Handles a failed record. With `errors.tolerance=none` the task fails
    /// with the error; with `all` the failure is logged and/or sent to the
    /// DLQ, and the caller skips the record.
    pub async fn tolerate(
        &self,
        failure: Failure,
        original: Option<&OriginalRecord>,
    ) -> Result<()> {
        self.metrics.record_errors.add(1);
        if !self.tolerate_all {
            return Err(Error::Tolerance(format!(
                "Tolerance exceeded in error handler; stage {}: {}: {}",
                failure.stage.name(),
                failure.exception_class,
                failure.error
            )));
        }
        if self.log {
            match (self.log_messages, original) {
                (true, Some(record)) => tracing::error!(
                    connector = %self.connector, task = self.task, stage = failure.stage.name(),
                    topic = %record.topic, partition = record.partition, offset = record.offset,
                    value = %String::from_utf8_lossy(record.value.as_deref().unwrap_or_default()),
                    error = %failure.error, "error encountered in task; record skipped"
                ),
                _ => tracing::error!(
                    connector = %self.connector, task = self.task, stage = failure.stage.name(),
                    error = %failure.error, "error encountered in task; record skipped"
                ),
            }
        }
        self.metrics.records_skipped.add(1);
        if let (Some(dlq), Some(record)) = (&self.dlq, original) {
            self.metrics.dlq_requests.add(1);
            if let Err(error) = self.send_to_dlq(dlq, &failure, record).await {
                self.metrics.dlq_failures.add(1);
                return Err(error);
            }
        }
        Ok(())
    }

    /// Counts tolerated errors and DLQ writes into `metrics`.
    pub fn count_into(&mut self, metrics: std::sync::Arc<crate::metrics::TaskMetrics>) {
        self.metrics = metrics;
    }

    async fn send_to_dlq(
        &self,
        dlq: &DeadLetterQueue,
        failure: &Failure,
        record: &OriginalRecord,
    ) -> Result<()> {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len() + 10);
        for (key, value) in &record.headers {
            headers = headers.insert(KafkaHeader {
                key,
                value: value.as_deref(),
            });
        }
        if dlq.context_headers {
            let partition = record.partition.to_string();
            let offset = record.offset.to_string();
            let task = self.task.to_string();
            let trace = failure.trace(&self.connector, self.task);
            let context = [
                ("__connect.errors.topic", record.topic.as_str()),
                ("__connect.errors.partition", partition.as_str()),
                ("__connect.errors.offset", offset.as_str()),
                ("__connect.errors.connector.name", self.connector.as_str()),
                ("__connect.errors.task.id", task.as_str()),
                ("__connect.errors.stage", failure.stage.name()),
                ("__connect.errors.class.name", failure.class_name.as_str()),
                (
                    "__connect.errors.exception.class.name",
                    failure.exception_class,
                ),
                ("__connect.errors.exception.message", failure.error.as_str()),
                ("__connect.errors.exception.stacktrace", trace.as_str()),
            ];
            for (key, value) in context {
                headers = headers.insert(KafkaHeader {
                    key,
                    value: Some(value.as_bytes()),
                });
            }
        }
        if let Some(failure) = dlq.failures.borrow().clone() {
            return Err(Error::Config(failure));
        }
        let mut message = FutureRecord::to(&dlq.topic).headers(headers);
        if let Some(key) = record.key.as_deref() {
            message = message.key(key);
        }
        if let Some(value) = record.value.as_deref() {
            message = message.payload(value);
        }
        if let Some(timestamp) = record.timestamp_ms {
            message = message.timestamp(timestamp);
        }
        dlq.producer
            .send(message, Duration::from_secs(30))
            .await
            .map_err(|(error, _)| Error::Kafka(error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker() -> WorkerConfig {
        let props = [("offset.storage.file.filename", "/tmp/unused")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        WorkerConfig::from_properties(props, true).unwrap()
    }

    async fn policy(pairs: &[(&str, &str)]) -> ErrorPolicy {
        let config: ConfigMap = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ErrorPolicy::from_config("c", 0, &config, &worker(), false)
            .await
            .unwrap()
    }

    fn failure() -> Failure {
        Failure {
            stage: Stage::ValueConverter,
            class_name: "org.apache.kafka.connect.json.JsonConverter".into(),
            error: "bad json".into(),
            exception_class: "org.apache.kafka.connect.errors.DataException",
        }
    }

    #[tokio::test]
    async fn tolerance_none_fails_and_all_skips() {
        let strict = policy(&[]).await;
        let error = strict
            .tolerate(failure(), None)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("Tolerance exceeded in error handler"),
            "{error}"
        );
        assert!(error.contains("VALUE_CONVERTER"), "{error}");
        assert!(
            policy(&[("errors.tolerance", "all"), ("errors.log.enable", "true")])
                .await
                .tolerate(failure(), None)
                .await
                .is_ok()
        );
        let config: ConfigMap = [("errors.tolerance".to_owned(), "some".to_owned())].into();
        assert!(
            ErrorPolicy::from_config("c", 0, &config, &worker(), false)
                .await
                .is_err()
        );
    }

    /// Tries an always-failing operation the way the record paths do:
    /// once, then again after each delay the backoff gives.
    async fn attempts_until_given_up(backoff: &mut Backoff) -> usize {
        let mut attempts = 1;
        while let Some(delay) = backoff.next_delay() {
            tokio::time::sleep(delay).await;
            attempts += 1;
        }
        attempts
    }

    #[tokio::test(start_paused = true)]
    async fn retries_with_backoff_until_the_timeout() {
        let retrying = policy(&[
            ("errors.retry.timeout", "2000"),
            ("errors.retry.delay.max.ms", "500"),
        ])
        .await;
        let started = tokio::time::Instant::now();
        let attempts = attempts_until_given_up(&mut retrying.backoff()).await;
        // 300 ms, then 500 ms steps (capped) until 2 s have passed.
        assert!((5..=7).contains(&attempts), "{attempts}");
        assert!(started.elapsed() >= Duration::from_millis(2000));

        // Delays double from 300 ms and are capped by errors.retry.delay.max.ms.
        let mut backoff = retrying.backoff();
        assert_eq!(backoff.next_delay(), Some(Duration::from_millis(300)));
        assert_eq!(backoff.next_delay(), Some(Duration::from_millis(500)));
        assert_eq!(backoff.next_delay(), Some(Duration::from_millis(500)));

        let no_retry = policy(&[]).await;
        assert_eq!(
            attempts_until_given_up(&mut no_retry.backoff()).await,
            1,
            "errors.retry.timeout=0 means no retries"
        );
    }
}
