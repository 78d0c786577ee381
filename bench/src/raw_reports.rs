//! Delivery reports served the way a C client serves them: wait on the
//! producer's main queue in librdkafka and check each report's error.
//!
//! rdkafka's `BaseProducer::poll(timeout)` cannot stand in for that: it
//! rounds the time left down to whole milliseconds and polls without
//! waiting once less than one is left, so any wait ends in a busy spin on
//! the clock (40% of the raw producer's CPU before this module). kcat waits
//! in `rd_kafka_poll(rk, 10)` instead; this does the same on the event API.
#![allow(unsafe_code)]

use rdkafka::ClientContext;
use rdkafka::producer::ProducerContext;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka_sys as rdsys;

/// The producer's main queue and the deliveries reported so far.
pub struct RawReports {
    queue: *mut rdsys::rd_kafka_queue_t,
    pub delivered: usize,
    pub failed: usize,
}

impl RawReports {
    pub fn new<C: ProducerContext + ClientContext>(producer: &BaseProducer<C>) -> Self {
        // SAFETY: the producer outlives this value (the caller keeps both in
        // one scope); the reference is released in `drop`.
        let queue = unsafe { rdsys::rd_kafka_queue_get_main(producer.client().native_ptr()) };
        RawReports {
            queue,
            delivered: 0,
            failed: 0,
        }
    }

    /// Serves the events queued now, waiting up to `wait_ms` for the first.
    pub fn serve(&mut self, wait_ms: i32) {
        let mut wait = wait_ms;
        loop {
            // SAFETY: the queue is alive; each event is destroyed once read.
            let event = unsafe { rdsys::rd_kafka_queue_poll(self.queue, wait) };
            if event.is_null() {
                return;
            }
            wait = 0;
            unsafe {
                if rdsys::rd_kafka_event_type(event) == rdsys::RD_KAFKA_EVENT_DR {
                    loop {
                        let message = rdsys::rd_kafka_event_message_next(event);
                        if message.is_null() {
                            break;
                        }
                        if (*message).err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
                        {
                            self.failed += 1;
                        } else {
                            self.delivered += 1;
                        }
                    }
                }
                rdsys::rd_kafka_event_destroy(event);
            }
        }
    }
}

impl Drop for RawReports {
    fn drop(&mut self) {
        // SAFETY: taken in `new`, released once.
        unsafe { rdsys::rd_kafka_queue_destroy(self.queue) }
    }
}
