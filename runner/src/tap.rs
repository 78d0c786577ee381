//! The live record tap: copies of the records a connector's tasks pass at
//! one point of their pipeline, rate-limited, for a coordinator that asked
//! (`TapStart`), and their forwarding over the control session. Task loops
//! ask [`TaskTap::listening`] first, one atomic load, so with nobody
//! tapping a record costs nothing more.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::mpsc;
use weir_connect::api::{Header, SinkRecord, SourceRecord};
use weir_connect::data::SchemaAndValue;
use weir_connect::transforms::ConnectRecord;
use weir_proto::admin::v1 as admin;
use weir_proto::control::v1 as control;

/// A point of a task's pipeline where records can be tapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapPoint {
    AfterPoll,
    AfterTransforms,
    BeforePut,
}

impl TapPoint {
    fn bit(self) -> u8 {
        match self {
            TapPoint::AfterPoll => 1,
            TapPoint::AfterTransforms => 2,
            TapPoint::BeforePut => 4,
        }
    }

    fn to_wire(self) -> admin::TapPoint {
        match self {
            TapPoint::AfterPoll => admin::TapPoint::AfterPoll,
            TapPoint::AfterTransforms => admin::TapPoint::AfterTransforms,
            TapPoint::BeforePut => admin::TapPoint::BeforePut,
        }
    }

    fn from_wire(point: admin::TapPoint) -> Self {
        match point {
            admin::TapPoint::AfterPoll => TapPoint::AfterPoll,
            admin::TapPoint::AfterTransforms => TapPoint::AfterTransforms,
            admin::TapPoint::BeforePut => TapPoint::BeforePut,
        }
    }
}

/// Records per second a tap gets when it asks for none in particular.
pub const DEFAULT_RATE: u32 = 10;
/// Records per second a tap may ask for at most.
pub const MAX_RATE: u32 = 1000;

/// A record as a task sees it at a tap point.
pub struct TapView<'a> {
    pub topic: &'a str,
    pub partition: Option<i32>,
    pub offset: Option<i64>,
    pub timestamp_ms: Option<i64>,
    pub key: &'a SchemaAndValue,
    pub value: &'a SchemaAndValue,
    pub headers: &'a [Header],
}

impl<'a> From<&'a SourceRecord> for TapView<'a> {
    fn from(record: &'a SourceRecord) -> Self {
        TapView {
            topic: &record.topic,
            partition: record.kafka_partition,
            offset: None,
            timestamp_ms: record.timestamp_ms,
            key: &record.key,
            value: &record.value,
            headers: &record.headers,
        }
    }
}

impl<'a> From<&'a ConnectRecord> for TapView<'a> {
    fn from(record: &'a ConnectRecord) -> Self {
        TapView {
            topic: &record.topic,
            partition: record.kafka_partition,
            offset: record.kafka_offset,
            timestamp_ms: record.timestamp_ms,
            key: &record.key,
            value: &record.value,
            headers: &record.headers,
        }
    }
}

impl<'a> From<&'a SinkRecord> for TapView<'a> {
    fn from(record: &'a SinkRecord) -> Self {
        TapView {
            topic: &record.topic,
            partition: Some(record.partition),
            offset: Some(record.offset),
            timestamp_ms: record.timestamp_ms,
            key: &record.key,
            value: &record.value,
            headers: &record.headers,
        }
    }
}

/// Allows `rate` records per second, in bursts of up to `rate`.
struct TokenBucket {
    rate: f64,
    tokens: f64,
    refilled: Instant,
}

impl TokenBucket {
    fn new(rate: u32) -> Self {
        let rate = f64::from(rate.clamp(1, MAX_RATE));
        TokenBucket {
            rate,
            tokens: rate,
            refilled: Instant::now(),
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

struct Subscriber {
    id: u64,
    task: Option<i32>,
    point: TapPoint,
    /// Per task: its own bucket (each task gets the whole rate) and the
    /// records it skipped since the last one sent.
    per_task: HashMap<i32, (TokenBucket, u64)>,
    /// All tasks of this runner together, at most [`MAX_RATE`].
    overall: TokenBucket,
    rate: u32,
    sender: mpsc::Sender<admin::TappedRecord>,
}

/// The taps on one connector's tasks.
#[derive(Default)]
pub struct ConnectorTap {
    /// Bits of the points someone listens at.
    points: AtomicU8,
    subscribers: Mutex<Vec<Subscriber>>,
}

impl ConnectorTap {
    fn subscribers(&self) -> MutexGuard<'_, Vec<Subscriber>> {
        self.subscribers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn refresh_points(&self, subscribers: &[Subscriber]) {
        let points = subscribers.iter().fold(0, |bits, s| bits | s.point.bit());
        self.points.store(points, Ordering::Relaxed);
    }
}

/// The tap side of one task: what its loop offers records to.
#[derive(Clone)]
pub struct TaskTap {
    runner: Arc<str>,
    connector_name: Arc<str>,
    task: i32,
    tap: Arc<ConnectorTap>,
}

impl TaskTap {
    /// A tap nobody can attach to, for tasks run outside a runner (tests, the bench).
    pub fn detached(connector: &str, task: i32) -> Self {
        TaskTap {
            runner: Arc::from(""),
            connector_name: Arc::from(connector),
            task,
            tap: Arc::default(),
        }
    }

    /// Whether anyone taps this connector at `point`; check it before building views.
    #[inline]
    pub fn listening(&self, point: TapPoint) -> bool {
        self.tap.points.load(Ordering::Relaxed) & point.bit() != 0
    }

    /// Offers a record passing `point` to the taps there. It is rendered
    /// once, and only if some tap has room for it.
    pub fn offer(&self, point: TapPoint, view: &TapView<'_>) {
        let now = Instant::now();
        let mut rendered: Option<admin::TappedRecord> = None;
        let mut closed = false;
        let mut subscribers = self.tap.subscribers();
        for subscriber in subscribers.iter_mut() {
            if subscriber.point != point || subscriber.task.is_some_and(|t| t != self.task) {
                continue;
            }
            let rate = subscriber.rate;
            let (bucket, skipped) = subscriber
                .per_task
                .entry(self.task)
                .or_insert_with(|| (TokenBucket::new(rate), 0));
            if !bucket.take(now) || !subscriber.overall.take(now) {
                *skipped += 1;
                continue;
            }
            let mut record = rendered
                .get_or_insert_with(|| self.render(point, view))
                .clone();
            record.skipped_before = *skipped;
            match subscriber.sender.try_send(record) {
                Ok(()) => *skipped = 0,
                Err(mpsc::error::TrySendError::Full(_)) => *skipped += 1,
                Err(mpsc::error::TrySendError::Closed(_)) => closed = true,
            }
        }
        if closed {
            subscribers.retain(|s| !s.sender.is_closed());
            self.tap.refresh_points(&subscribers);
        }
    }

    fn render(&self, point: TapPoint, view: &TapView<'_>) -> admin::TappedRecord {
        admin::TappedRecord {
            connector: self.connector_name.to_string(),
            task: self.task,
            point: point.to_wire() as i32,
            topic: view.topic.to_owned(),
            partition: view.partition,
            offset: view.offset,
            timestamp_ms: view.timestamp_ms,
            key_json: json_text(view.key),
            value_json: json_text(view.value),
            headers: view
                .headers
                .iter()
                .map(|header| admin::TappedHeader {
                    key: header.key.clone(),
                    value_json: json_text(&header.value),
                })
                .collect(),
            skipped_before: 0,
            runner: self.runner.to_string(),
        }
    }
}

/// A rendered key, value or header longer than this is cut, so a tap's
/// messages stay far below gRPC's message size limit.
pub const MAX_RENDERED_BYTES: usize = 16 * 1024;

/// The schemaless JSON rendering of `data`; data its schema does not
/// describe is shown as a string saying so rather than failing the task.
/// Past [`MAX_RENDERED_BYTES`] the text is cut and marked (it is then no
/// longer JSON, and clients show it as a string).
fn json_text(data: &SchemaAndValue) -> String {
    let mut text = match weir_connect::converter::value_to_json(data.schema.as_deref(), &data.value)
    {
        Ok(json) => json.to_string(),
        Err(error) => {
            serde_json::Value::String(format!("<not renderable: {}>", error.0)).to_string()
        }
    };
    if text.len() > MAX_RENDERED_BYTES {
        let total = text.len();
        let mut cut = MAX_RENDERED_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str(&format!("… ({total} bytes in all)"));
    }
    text
}

/// Every tap on this runner, by connector.
#[derive(Default, Clone)]
pub struct Taps {
    /// This runner's id, on every record.
    runner: Arc<str>,
    connectors: Arc<Mutex<HashMap<String, Arc<ConnectorTap>>>>,
}

/// Records buffered per tap between a task and the session.
const TAP_BUFFER: usize = 256;

impl Taps {
    fn connectors(&self) -> MutexGuard<'_, HashMap<String, Arc<ConnectorTap>>> {
        self.connectors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn new(runner: &str) -> Self {
        Taps {
            runner: Arc::from(runner),
            connectors: Arc::default(),
        }
    }

    /// The tap side of a task that is starting.
    pub fn for_task(&self, connector: &str, task: i32) -> TaskTap {
        let tap = self
            .connectors()
            .entry(connector.to_owned())
            .or_default()
            .clone();
        TaskTap {
            runner: self.runner.clone(),
            connector_name: Arc::from(connector),
            task,
            tap,
        }
    }

    /// Attaches tap `id`; what it copies arrives on the returned receiver,
    /// which ends when the tap is detached.
    pub fn attach(
        &self,
        id: u64,
        request: &admin::TapRequest,
    ) -> mpsc::Receiver<admin::TappedRecord> {
        let (sender, receiver) = mpsc::channel(TAP_BUFFER);
        let rate = match request.max_records_per_second {
            0 => DEFAULT_RATE,
            rate => rate.min(MAX_RATE),
        };
        let tap = self
            .connectors()
            .entry(request.connector.clone())
            .or_default()
            .clone();
        let mut subscribers = tap.subscribers();
        // A start sent twice replaces the first.
        subscribers.retain(|s| s.id != id);
        subscribers.push(Subscriber {
            id,
            task: request.task,
            point: TapPoint::from_wire(request.point()),
            per_task: HashMap::new(),
            overall: TokenBucket::new(MAX_RATE),
            rate,
            sender,
        });
        tap.refresh_points(&subscribers);
        receiver
    }

    /// Detaches tap `id`, wherever it is.
    pub fn detach(&self, id: u64) {
        let mut connectors = self.connectors();
        for tap in connectors.values() {
            let mut subscribers = tap.subscribers();
            subscribers.retain(|s| s.id != id);
            tap.refresh_points(&subscribers);
        }
        // Forget connectors nobody taps and no task uses.
        connectors.retain(|_, tap| Arc::strong_count(tap) > 1 || !tap.subscribers().is_empty());
    }
}

/// The taps one control session attached, detached when it ends.
pub struct SessionTaps {
    taps: Taps,
    ids: Vec<u64>,
}

impl SessionTaps {
    pub fn new(taps: Taps) -> Self {
        SessionTaps {
            taps,
            ids: Vec::new(),
        }
    }

    pub fn attach(
        &mut self,
        id: u64,
        request: &admin::TapRequest,
    ) -> mpsc::Receiver<admin::TappedRecord> {
        self.ids.push(id);
        self.taps.attach(id, request)
    }

    pub fn detach(&mut self, id: u64) {
        self.taps.detach(id);
        self.ids.retain(|attached| *attached != id);
    }
}

impl Drop for SessionTaps {
    fn drop(&mut self) {
        for id in &self.ids {
            self.taps.detach(*id);
        }
    }
}

/// Records a tap sends per message at most, and bytes of rendered keys,
/// values and headers: far below gRPC's 4 MiB message limit.
const TAP_BATCH: usize = 100;
const TAP_BATCH_BYTES: usize = 512 * 1024;

fn rendered_size(record: &admin::TappedRecord) -> usize {
    record.key_json.len()
        + record.value_json.len()
        + record
            .headers
            .iter()
            .map(|h| h.key.len() + h.value_json.len())
            .sum::<usize>()
}

/// Sends what tap `id` copies to the coordinator, first an empty message
/// saying it is attached. Ends when the tap is detached or the session ends.
pub async fn forward(
    id: u64,
    mut records: mpsc::Receiver<admin::TappedRecord>,
    outbound: mpsc::Sender<control::RunnerMessage>,
) {
    let message = |records| control::RunnerMessage {
        body: Some(control::runner_message::Body::TapRecords(
            control::TapRecords { id, records },
        )),
    };
    if outbound.send(message(Vec::new())).await.is_err() {
        return;
    }
    let mut next = None;
    loop {
        let first = match next.take() {
            Some(record) => record,
            None => match records.recv().await {
                Some(record) => record,
                None => return,
            },
        };
        let mut bytes = rendered_size(&first);
        let mut batch = vec![first];
        while batch.len() < TAP_BATCH {
            match records.try_recv() {
                Ok(record) => {
                    bytes += rendered_size(&record);
                    if bytes > TAP_BATCH_BYTES {
                        next = Some(record);
                        break;
                    }
                    batch.push(record);
                }
                Err(_) => break,
            }
        }
        if outbound.send(message(batch)).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_connect::data::Value;

    fn request(task: Option<i32>, point: admin::TapPoint, rate: u32) -> admin::TapRequest {
        admin::TapRequest {
            connector: "c".into(),
            task,
            point: point as i32,
            max_records_per_second: rate,
        }
    }

    fn offer(tap: &TaskTap, point: TapPoint, value: &str) {
        let key = SchemaAndValue::null();
        let value = SchemaAndValue {
            schema: None,
            value: Value::String(value.into()),
        };
        if tap.listening(point) {
            tap.offer(
                point,
                &TapView {
                    topic: "t",
                    partition: Some(0),
                    offset: Some(7),
                    timestamp_ms: None,
                    key: &key,
                    value: &value,
                    headers: &[],
                },
            );
        }
    }

    #[test]
    fn nobody_listens_until_a_tap_attaches_and_after_it_detaches() {
        let taps = Taps::default();
        let task = taps.for_task("c", 0);
        assert!(!task.listening(TapPoint::AfterPoll));
        let _records = taps.attach(1, &request(None, admin::TapPoint::AfterPoll, 0));
        assert!(task.listening(TapPoint::AfterPoll));
        assert!(!task.listening(TapPoint::BeforePut));
        taps.detach(1);
        assert!(!task.listening(TapPoint::AfterPoll));
    }

    #[test]
    fn a_tap_gets_records_of_its_point_and_task_only() {
        let taps = Taps::default();
        let zero = taps.for_task("c", 0);
        let one = taps.for_task("c", 1);
        let mut records = taps.attach(1, &request(Some(1), admin::TapPoint::BeforePut, 100));
        offer(&zero, TapPoint::BeforePut, "from task 0");
        offer(&one, TapPoint::AfterPoll, "at another point");
        offer(&one, TapPoint::BeforePut, "wanted");
        let record = records.try_recv().expect("one record");
        assert_eq!(record.value_json, "\"wanted\"");
        assert_eq!((record.task, record.offset), (1, Some(7)));
        assert_eq!(record.point(), admin::TapPoint::BeforePut);
        assert!(records.try_recv().is_err());
    }

    #[test]
    fn records_over_the_rate_are_skipped_and_counted() {
        let taps = Taps::default();
        let task = taps.for_task("c", 0);
        let mut records = taps.attach(1, &request(None, admin::TapPoint::AfterPoll, 2));
        for n in 0..5 {
            offer(&task, TapPoint::AfterPoll, &n.to_string());
        }
        let mut got = Vec::new();
        while let Ok(record) = records.try_recv() {
            got.push(record.value_json);
        }
        // A burst of the rate passes at once; the rest waits for tokens.
        assert_eq!(got, ["\"0\"", "\"1\""]);
        let mut bucket = TokenBucket::new(2);
        let start = Instant::now();
        assert!(bucket.take(start) && bucket.take(start) && !bucket.take(start));
        assert!(bucket.take(start + std::time::Duration::from_millis(600)));
    }

    #[test]
    fn skipped_records_are_counted_per_task_and_long_values_are_cut() {
        let taps = Taps::default();
        let zero = taps.for_task("c", 0);
        let one = taps.for_task("c", 1);
        let mut records = taps.attach(1, &request(None, admin::TapPoint::AfterPoll, 1));
        offer(&zero, TapPoint::AfterPoll, "a");
        offer(&zero, TapPoint::AfterPoll, "skipped");
        offer(&one, TapPoint::AfterPoll, "b");
        let first = records.try_recv().expect("task 0's first");
        let second = records.try_recv().expect("task 1's first");
        assert_eq!((first.task, second.task), (0, 1));
        // The record task 0 skipped is not charged to task 1.
        assert_eq!(second.skipped_before, 0);

        let long = "x".repeat(MAX_RENDERED_BYTES * 2);
        let rendered = json_text(&SchemaAndValue {
            schema: None,
            value: Value::String(long),
        });
        assert!(
            rendered.len() < MAX_RENDERED_BYTES + 64,
            "{}",
            rendered.len()
        );
        assert!(rendered.ends_with(&format!("({} bytes in all)", MAX_RENDERED_BYTES * 2 + 2)));
    }

    #[test]
    fn a_tap_whose_receiver_is_gone_stops_costing() {
        let taps = Taps::default();
        let task = taps.for_task("c", 0);
        drop(taps.attach(1, &request(None, admin::TapPoint::AfterPoll, 0)));
        offer(&task, TapPoint::AfterPoll, "x");
        assert!(!task.listening(TapPoint::AfterPoll));
    }
}
