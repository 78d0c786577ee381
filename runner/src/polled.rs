//! A producer whose delivery reports are served on a thread of its own that
//! sleeps until librdkafka has something for it.
//!
//! rdkafka's `ThreadedProducer` polls in 100 ms slices, and each slice spins
//! through its last millisecond: the poll loop rounds the time left down to
//! whole milliseconds and polls without waiting once less than one is left.
//! That is about 1% of a core per idle producer, and a runner holds one per
//! source task. Here librdkafka writes to a socket when the producer's
//! event queue goes from empty to non-empty (`rd_kafka_queue_io_event_enable`),
//! and the thread blocks reading it, then serves what is queued without
//! waiting. rdkafka has no safe binding for these queue calls, hence this
//! module's `unsafe`.
#![allow(unsafe_code)]

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::producer::{BaseProducer, Producer, ProducerContext};

use crate::error::{Error, Result};

/// How long the thread sleeps at most without a wake-up: a backstop, should
/// a wake-up be missed.
const BACKSTOP: Duration = Duration::from_secs(1);

/// The producer's main event queue, as librdkafka hands it out (one
/// reference, released on drop).
struct MainQueue(*mut rdkafka_sys::rd_kafka_queue_t);

// SAFETY: librdkafka queues are thread-safe; this handle is only a reference.
unsafe impl Send for MainQueue {}
// SAFETY: as above; every call through it is thread-safe in librdkafka.
unsafe impl Sync for MainQueue {}

impl MainQueue {
    fn len(&self) -> usize {
        // SAFETY: the pointer is a live queue reference until drop.
        unsafe { rdkafka_sys::rd_kafka_queue_length(self.0) }
    }
}

impl Drop for MainQueue {
    fn drop(&mut self) {
        // SAFETY: releases the reference `rd_kafka_queue_get_main` gave.
        unsafe { rdkafka_sys::rd_kafka_queue_destroy(self.0) }
    }
}

/// A [`BaseProducer`] with its delivery reports served on a thread of its own.
pub struct PolledProducer<C: ProducerContext + 'static> {
    /// Released before the producer (librdkafka wants every queue
    /// reference back before the client is destroyed).
    queue: Option<Arc<MainQueue>>,
    producer: Arc<BaseProducer<C>>,
    stop: Arc<AtomicBool>,
    /// The end librdkafka writes to; written here too, to wake the thread.
    wake: UnixStream,
    thread: Option<JoinHandle<()>>,
}

impl<C: ProducerContext + 'static> PolledProducer<C> {
    pub fn new(producer: BaseProducer<C>) -> Result<Self> {
        let producer = Arc::new(producer);
        let (wake, sleep) = UnixStream::pair()
            .map_err(|e| Error::Internal(format!("producer wake-up socket: {e}")))?;
        sleep
            .set_read_timeout(Some(BACKSTOP))
            .map_err(|e| Error::Internal(format!("producer wake-up socket: {e}")))?;
        // SAFETY: the client is alive (we hold it); the queue reference is
        // released by `MainQueue`'s drop, before the producer's.
        let queue = Arc::new(MainQueue(unsafe {
            rdkafka_sys::rd_kafka_queue_get_main(producer.client().native_ptr())
        }));
        let payload = [1u8];
        // SAFETY: librdkafka copies the payload; it writes to the socket
        // until `drop` turns this off, and the socket lives until then.
        unsafe {
            rdkafka_sys::rd_kafka_queue_io_event_enable(
                queue.0,
                wake.as_raw_fd(),
                payload.as_ptr().cast(),
                payload.len(),
            );
        }
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let producer = producer.clone();
            let queue = queue.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("producer reports".into())
                .spawn(move || serve(&producer, &queue, sleep, &stop))
                .map_err(|e| Error::Internal(format!("producer thread: {e}")))?
        };
        Ok(PolledProducer {
            queue: Some(queue),
            producer,
            stop,
            wake,
            thread: Some(thread),
        })
    }
}

/// Serves every queued event, then sleeps until librdkafka (or `drop`)
/// writes to the socket.
fn serve<C: ProducerContext>(
    producer: &BaseProducer<C>,
    queue: &MainQueue,
    mut sleep: UnixStream,
    stop: &AtomicBool,
) {
    let mut drained = [0u8; 64];
    loop {
        while queue.len() > 0 {
            producer.poll(Duration::ZERO);
        }
        if stop.load(Ordering::Acquire) {
            return;
        }
        match sleep.read(&mut drained) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

impl<C: ProducerContext + 'static> std::ops::Deref for PolledProducer<C> {
    type Target = BaseProducer<C>;

    fn deref(&self) -> &BaseProducer<C> {
        &self.producer
    }
}

impl<C: ProducerContext + 'static> Drop for PolledProducer<C> {
    /// Serves what is left, then stops the thread (blocking: drop it off
    /// the async runtime).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = (&self.wake).write(&[0]);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Some(queue) = self.queue.take() {
            // SAFETY: a live queue reference; -1 turns the wake-ups off.
            unsafe {
                rdkafka_sys::rd_kafka_queue_io_event_enable(queue.0, -1, std::ptr::null(), 0)
            };
        }
    }
}
