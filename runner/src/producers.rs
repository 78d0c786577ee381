//! Source producers shared by a runner's tasks ([`ProducerPool`]).
//!
//! Kafka Connect gives every source task a producer of its own: at 400
//! tasks on a runner that is 400 librdkafka clients, each with its threads,
//! buffers and broker connections, waking even when idle. Here tasks whose
//! producer settings are identical (worker defaults, the connector's
//! `producer.override.*`, and where each came from) share one producer.
//! Each record carries its batch's [`BatchAcks`] as the delivery opaque, so
//! a delivery report reaches only the task that sent the record, and a
//! failed delivery fails only that task. A client-level failure (failed
//! authentication, a fatal idempotence error) fails every task sharing the
//! producer; their restarts get a new one. The last task to drop a producer
//! destroys it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use rdkafka::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, DeliveryResult, ProducerContext};
use tokio::sync::Notify;

use crate::clients::{ClientFailures, ClientSettings, WatchedContext};
use crate::error::Result;
use crate::polled::PolledProducer;

/// The delivery reports of one batch a task sent, counted by the producer's
/// delivery callback on its polling thread.
pub struct BatchAcks {
    /// Records sent and not yet reported, plus one while the batch is still
    /// being sent, so that the count reaches zero only once, at the end.
    pub outstanding: AtomicUsize,
    /// The first delivery failure of the batch.
    pub failure: OnceLock<KafkaError>,
    /// The sending task's wake-up: a report for this batch arrived.
    settled: Arc<Notify>,
}

impl BatchAcks {
    pub fn new(settled: Arc<Notify>) -> Arc<Self> {
        Arc::new(BatchAcks {
            outstanding: AtomicUsize::new(1),
            failure: OnceLock::new(),
            settled,
        })
    }

    pub fn settled(&self) -> bool {
        self.outstanding.load(Ordering::Acquire) == 0 || self.failure.get().is_some()
    }

    /// Drops the sender's hold (see `outstanding`).
    pub fn sent(&self) {
        if self.outstanding.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.settled.notify_one();
        }
    }
}

/// A shared producer's context: Weir's client context, plus delivery
/// reports routed to each record's batch.
pub struct PooledContext {
    watched: WatchedContext,
}

impl ClientContext for PooledContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.watched.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.watched.error(error, reason);
    }
}

impl ProducerContext for PooledContext {
    type DeliveryOpaque = Arc<BatchAcks>;

    fn delivery(&self, result: &DeliveryResult<'_>, batch: Arc<BatchAcks>) {
        if let Err((error, _)) = result {
            let _ = batch.failure.set(error.clone());
            batch.settled.notify_one();
        }
        batch.sent();
    }
}

/// One producer and the failures of its client, shared by the tasks that
/// hold it.
pub struct SharedProducer {
    pub producer: PolledProducer<PooledContext>,
    failures: ClientFailures,
}

impl SharedProducer {
    /// The client's failures, for one task to watch.
    pub fn failures(&self) -> ClientFailures {
        self.failures.clone()
    }

    fn failed(&self) -> bool {
        self.failures.borrow().is_some()
    }
}

/// A runner's source producers, by their settings. Cheap to clone.
#[derive(Clone, Default)]
pub struct ProducerPool {
    producers: Arc<Mutex<HashMap<String, Weak<SharedProducer>>>>,
}

impl ProducerPool {
    /// The producer for these settings: the one a running task already
    /// holds, or a new one. A producer whose client failed is never handed
    /// out again. Drop the last holder off the async runtime (dropping a
    /// producer joins its polling thread).
    pub fn acquire(&self, settings: &ClientSettings) -> Result<Arc<SharedProducer>> {
        let identity = settings.identity();
        let mut producers = self
            .producers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        producers.retain(|_, producer| producer.strong_count() > 0);
        if let Some(shared) = producers.get(&identity).and_then(Weak::upgrade)
            && !shared.failed()
        {
            return Ok(shared);
        }
        let (producer, failures): (BaseProducer<_>, _) =
            settings.create_with(|watched| PooledContext { watched })?;
        let shared = Arc::new(SharedProducer {
            producer: PolledProducer::new(producer)?,
            failures,
        });
        producers.insert(identity, Arc::downgrade(&shared));
        Ok(shared)
    }

    /// Producers alive now (held by at least one task).
    #[cfg(test)]
    fn live(&self) -> usize {
        self.producers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .values()
            .filter(|producer| producer.strong_count() > 0)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::BaseRecord;

    use super::*;

    fn settings(bootstrap: &str, linger: &str) -> ClientSettings {
        let mut settings = ClientSettings::new(bootstrap);
        settings.apply_producer_defaults();
        settings.set("linger.ms", linger);
        settings
    }

    #[test]
    fn tasks_with_equal_settings_share_one_producer_and_others_get_their_own() {
        let cluster = MockCluster::new(1).unwrap();
        let pool = ProducerPool::default();
        let first = pool
            .acquire(&settings(&cluster.bootstrap_servers(), "5"))
            .unwrap();
        let same = pool
            .acquire(&settings(&cluster.bootstrap_servers(), "5"))
            .unwrap();
        let other = pool
            .acquire(&settings(&cluster.bootstrap_servers(), "50"))
            .unwrap();
        assert!(Arc::ptr_eq(&first, &same));
        assert!(!Arc::ptr_eq(&first, &other));
        assert_eq!(pool.live(), 2);
        drop((first, other));
        assert_eq!(pool.live(), 1, "held by one task still");
        drop(same);
        assert_eq!(pool.live(), 0, "the last holder destroyed it");
        let again = pool
            .acquire(&settings(&cluster.bootstrap_servers(), "5"))
            .unwrap();
        assert_eq!(pool.live(), 1);
        drop(again);
    }

    #[tokio::test]
    async fn each_delivery_report_reaches_the_batch_that_sent_the_record() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("shared", 1, 1).unwrap();
        let pool = ProducerPool::default();
        let shared = pool
            .acquire(&settings(&cluster.bootstrap_servers(), "0"))
            .unwrap();
        let (one, two) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let (batch_one, batch_two) = (BatchAcks::new(one.clone()), BatchAcks::new(two.clone()));
        for (batch, records) in [(&batch_one, 1), (&batch_two, 3)] {
            for _ in 0..records {
                batch.outstanding.fetch_add(1, Ordering::AcqRel);
                let record =
                    BaseRecord::<(), str, _>::with_opaque_to("shared", batch.clone()).payload("x");
                shared.producer.send(record).map_err(|(e, _)| e).unwrap();
            }
            batch.sent();
        }
        for (batch, notify) in [(&batch_one, &one), (&batch_two, &two)] {
            tokio::time::timeout(Duration::from_secs(30), async {
                while !batch.settled() {
                    notify.notified().await;
                }
            })
            .await
            .expect("the batch's own wake-up came once its records were acknowledged");
            assert!(batch.failure.get().is_none());
        }
        tokio::task::spawn_blocking(move || drop(shared))
            .await
            .unwrap();
    }
}
