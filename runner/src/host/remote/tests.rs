//! The sidecar plugin and its task proxies, driven through the connector
//! API as the runner drives them, against an in-process sidecar that the
//! Rust SDK serves on a Unix socket. The sidecar's connectors are small test
//! doubles: they tell the test what they were told ([`Seen`]) and answer as
//! the test scripts them.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::{Mutex, Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use weir_connect::api::{Header, JsonMap, SourceOffset};
use weir_connect::config::{ConfigKey, ConfigType, Default as KeyDefault};
use weir_connect::data::{Field, Schema, SchemaAndValue, SchemaRef, SchemaType, Value};

use super::*;

const SIDECAR: &str = "test-sidecar";
const SOURCE_CLASS: &str = "test.ScriptedSourceConnector";
const SINK_CLASS: &str = "test.RecordingSinkConnector";

/// Long enough for anything a test waits on; a proxy that hangs fails the
/// test instead of the suite.
const PATIENCE: Duration = Duration::from_secs(20);

/// What the sidecar's connectors were told, in the order they were told it.
#[derive(Debug, PartialEq)]
enum Seen {
    SourceOpened {
        config: ConfigMap,
        positions: Vec<SourcePosition>,
    },
    Committed(Vec<SourcePosition>),
    SourceStopped,
    SinkOpened(ConfigMap),
    Assigned(Vec<(String, i32)>),
    Revoked(Vec<(String, i32)>),
    Put(Vec<SinkRecord>),
    Flushed(Vec<TopicPartitionOffset>),
    PreCommitted(Vec<TopicPartitionOffset>),
    SinkStopped,
}

/// What a test hands the sidecar's connectors, and what they tell it back.
#[derive(Clone)]
struct Doubles {
    seen: mpsc::UnboundedSender<Seen>,
    /// The source's batches, or the error a poll fails with.
    script: Arc<Mutex<mpsc::UnboundedReceiver<Result<Vec<SourceRecord>>>>>,
    /// How the sink answers each put, in turn.
    verdicts: Arc<Mutex<mpsc::UnboundedReceiver<Result<()>>>>,
    /// Notified each time the source starts waiting for its script.
    polling: Arc<Notify>,
    /// Lets the source connector's `monitor` fail.
    monitor_release: Arc<Notify>,
    /// The retriable failure the sink's next partition assign fails with.
    assign_failure: Arc<std::sync::Mutex<Option<String>>>,
}

impl Doubles {
    fn tell(&self, seen: Seen) {
        // The test may be over (it kills the sidecar on drop).
        let _ = self.seen.send(seen);
    }
}

/// Waits for the next of `receiver`'s items; a closed channel never yields
/// one (the test's end closes them).
async fn next_of<T>(receiver: &Mutex<mpsc::UnboundedReceiver<T>>) -> T {
    match receiver.lock().await.recv().await {
        Some(item) => item,
        None => std::future::pending().await,
    }
}

struct ScriptedSource(Doubles);

#[async_trait]
impl ConnectorPlugin for ScriptedSource {
    fn class(&self) -> &'static str {
        SOURCE_CLASS
    }

    fn kind(&self) -> ConnectorKind {
        Direction::Source
    }

    fn version(&self) -> &'static str {
        "1.2.3"
    }

    fn config_def(&self) -> ConfigDef {
        ConfigDef::new().define(
            ConfigKey::new("topic", ConfigType::String, KeyDefault::Required)
                .doc("Where the records go."),
        )
    }

    async fn validate(&self, config: &ConfigMap) -> Vec<(String, Vec<String>)> {
        if config.get("topic").is_some_and(|topic| topic == "reserved") {
            vec![("topic".to_owned(), vec!["reserved is reserved".to_owned()])]
        } else {
            Vec::new()
        }
    }

    async fn task_configs(&self, config: &ConfigMap, max_tasks: usize) -> Result<Vec<ConfigMap>> {
        if config.contains_key("refuse.tasks") {
            return Err(ConnectorError::Config(
                "no tasks for this config".to_owned(),
            ));
        }
        Ok((0..max_tasks)
            .map(|index| {
                let mut task = config.clone();
                task.insert("task.index".to_owned(), index.to_string());
                task
            })
            .collect())
    }

    fn create_task(&self) -> Task {
        Task::Source(Box::new(ScriptedSourceTask {
            doubles: self.0.clone(),
            buffered: VecDeque::new(),
        }))
    }

    /// Asks for a reconfiguration at once, and fails when the test says.
    async fn monitor(&self, _config: &ConfigMap, context: ConnectorContext) -> Result<()> {
        context.request_task_reconfiguration();
        self.0.monitor_release.notified().await;
        Err(ConnectorError::Fatal("the catalog is gone".to_owned()))
    }
}

struct ScriptedSourceTask {
    doubles: Doubles,
    /// Scripted records beyond what the last poll could take.
    buffered: VecDeque<SourceRecord>,
}

#[async_trait]
impl SourceTask for ScriptedSourceTask {
    async fn open(&mut self, config: &ConfigMap, positions: &[SourcePosition]) -> Result<()> {
        if config.contains_key("refuse.open") {
            return Err(ConnectorError::Config(
                "the source refuses to open".to_owned(),
            ));
        }
        self.doubles.tell(Seen::SourceOpened {
            config: config.clone(),
            positions: positions.to_vec(),
        });
        Ok(())
    }

    async fn poll(&mut self, max_records: usize) -> Result<Vec<SourceRecord>> {
        if self.buffered.is_empty() {
            self.doubles.polling.notify_one();
            let batch = next_of(&self.doubles.script).await?;
            self.buffered.extend(batch);
        }
        let take = max_records.min(self.buffered.len());
        Ok(self.buffered.drain(..take).collect())
    }

    async fn commit(&mut self, positions: &[SourcePosition]) -> Result<()> {
        self.doubles.tell(Seen::Committed(positions.to_vec()));
        Ok(())
    }

    async fn stop(&mut self) -> Result<()> {
        self.doubles.tell(Seen::SourceStopped);
        Ok(())
    }
}

struct RecordingSink(Doubles);

#[async_trait]
impl ConnectorPlugin for RecordingSink {
    fn class(&self) -> &'static str {
        SINK_CLASS
    }

    fn kind(&self) -> ConnectorKind {
        Direction::Sink
    }

    fn config_def(&self) -> ConfigDef {
        ConfigDef::new()
    }

    async fn task_configs(&self, config: &ConfigMap, _max_tasks: usize) -> Result<Vec<ConfigMap>> {
        Ok(vec![config.clone()])
    }

    fn create_task(&self) -> Task {
        Task::Sink(Box::new(RecordingSinkTask(self.0.clone())))
    }
}

struct RecordingSinkTask(Doubles);

#[async_trait]
impl SinkTask for RecordingSinkTask {
    async fn open(&mut self, config: &ConfigMap) -> Result<()> {
        self.0.tell(Seen::SinkOpened(config.clone()));
        Ok(())
    }

    /// Answers as the test's next verdict says, once it is given.
    async fn put(&mut self, records: &[SinkRecord]) -> Result<()> {
        self.0.tell(Seen::Put(records.to_vec()));
        next_of(&self.0.verdicts).await
    }

    async fn flush(&mut self, offsets: &[TopicPartitionOffset]) -> Result<()> {
        self.0.tell(Seen::Flushed(offsets.to_vec()));
        Ok(())
    }

    /// Answers only the first offset as safe, so the runner's view of it is
    /// the sink's, not an echo of its request.
    async fn pre_commit(
        &mut self,
        offsets: &[TopicPartitionOffset],
    ) -> Result<Vec<TopicPartitionOffset>> {
        self.0.tell(Seen::PreCommitted(offsets.to_vec()));
        Ok(offsets.iter().take(1).cloned().collect())
    }

    async fn open_partitions(&mut self, partitions: &[(String, i32)]) -> Result<()> {
        self.0.tell(Seen::Assigned(partitions.to_vec()));
        match self.0.assign_failure.lock().unwrap().take() {
            Some(message) => Err(ConnectorError::Retriable(message)),
            None => Ok(()),
        }
    }

    async fn close_partitions(&mut self, partitions: &[(String, i32)]) -> Result<()> {
        self.0.tell(Seen::Revoked(partitions.to_vec()));
        Ok(())
    }

    async fn stop(&mut self) -> Result<()> {
        self.0.tell(Seen::SinkStopped);
        Ok(())
    }
}

/// The sidecar "process": it runs on its own runtime, so that shutting that
/// runtime down drops its connections without a goodbye, as a killed
/// process's are.
struct RunningSidecar {
    runtime: Option<tokio::runtime::Runtime>,
    _socket_dir: tempfile::TempDir,
}

impl RunningSidecar {
    fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for RunningSidecar {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A served sidecar, the runner's plugins for it, and the test's ends of
/// its connectors.
struct Harness {
    sidecar: RunningSidecar,
    plugins: Vec<SidecarPlugin>,
    seen: mpsc::UnboundedReceiver<Seen>,
    script: mpsc::UnboundedSender<Result<Vec<SourceRecord>>>,
    verdicts: mpsc::UnboundedSender<Result<()>>,
    polling: Arc<Notify>,
    monitor_release: Arc<Notify>,
    assign_failure: Arc<std::sync::Mutex<Option<String>>>,
}

impl Harness {
    /// Serves the test connectors and loads them as the runner does: a
    /// channel to the socket, a handshake, and the plugins it describes.
    async fn start() -> Harness {
        let socket_dir = tempfile::tempdir().unwrap();
        let socket = socket_dir.path().join("sidecar.sock");
        let (seen_sender, seen) = mpsc::unbounded_channel();
        let (script, script_receiver) = mpsc::unbounded_channel();
        let (verdicts, verdict_receiver) = mpsc::unbounded_channel();
        let doubles = Doubles {
            seen: seen_sender,
            script: Arc::new(Mutex::new(script_receiver)),
            verdicts: Arc::new(Mutex::new(verdict_receiver)),
            polling: Arc::new(Notify::new()),
            monitor_release: Arc::new(Notify::new()),
            assign_failure: Arc::default(),
        };
        let served = weir_connect::sdk::Sidecar::new(vec![
            Arc::new(ScriptedSource(doubles.clone())),
            Arc::new(RecordingSink(doubles.clone())),
        ]);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (bound_sender, bound) = oneshot::channel();
        let path = socket.clone();
        runtime.spawn(async move {
            let serving = served.serve_unix(&path, std::future::pending());
            tokio::pin!(serving);
            // `serve_unix` binds its socket before its first await, so after
            // one poll the runner can connect: no waiting for the file.
            match futures::poll!(serving.as_mut()) {
                std::task::Poll::Ready(outcome) => {
                    let _ = bound_sender.send(outcome.map_err(|e| e.to_string()));
                }
                std::task::Poll::Pending => {
                    let _ = bound_sender.send(Ok(()));
                    let _ = serving.await;
                }
            }
        });
        bound.await.unwrap().unwrap();
        let channel = channel(&ChannelTarget::Unix(socket)).unwrap();
        let handshake = within("the handshake", handshake(&channel, "test-runner"))
            .await
            .unwrap();
        // The liveness probe is stopped before it starts: a test that kills
        // the sidecar proves the proxies notice the closed connection
        // themselves, not a probe seconds later.
        let no_probe = CancellationToken::new();
        no_probe.cancel();
        let liveness = Liveness::probe(SIDECAR, channel.clone(), no_probe);
        let plugins = SidecarPlugin::from_handshake(SIDECAR, &channel, &liveness, &handshake);
        Harness {
            sidecar: RunningSidecar {
                runtime: Some(runtime),
                _socket_dir: socket_dir,
            },
            plugins,
            seen,
            script,
            verdicts,
            polling: doubles.polling,
            monitor_release: doubles.monitor_release,
            assign_failure: doubles.assign_failure,
        }
    }

    fn plugin(&self, class: &str) -> &SidecarPlugin {
        self.plugins
            .iter()
            .find(|plugin| plugin.class() == class)
            .unwrap_or_else(|| panic!("the sidecar describes {class}"))
    }

    fn source(&self) -> Box<dyn SourceTask> {
        let Task::Source(task) = self.plugin(SOURCE_CLASS).create_task_for(&identity()) else {
            panic!("a source plugin makes source tasks");
        };
        task
    }

    fn sink(&self) -> Box<dyn SinkTask> {
        let Task::Sink(task) = self.plugin(SINK_CLASS).create_task_for(&identity()) else {
            panic!("a sink plugin makes sink tasks");
        };
        task
    }

    /// The next thing the sidecar's connectors were told.
    async fn next_seen(&mut self) -> Seen {
        within(
            "the sidecar's connector to be told something",
            self.seen.recv(),
        )
        .await
        .expect("the sidecar's connectors are alive")
    }

    fn answer_put(&self, verdict: Result<()>) {
        self.verdicts.send(verdict).unwrap();
    }
}

async fn within<T>(what: &str, work: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, work)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {PATIENCE:?}"))
}

fn identity() -> TaskIdentity {
    TaskIdentity {
        connector: "orders".to_owned(),
        task: 3,
        epoch: 7,
    }
}

/// What every error of the test task's proxy names.
const TASK_NAMED: &str = "task orders-3";

fn config(pairs: &[(&str, &str)]) -> ConfigMap {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

fn json_object(value: serde_json::Value) -> JsonMap {
    let serde_json::Value::Object(map) = value else {
        panic!("{value} is not an object");
    };
    map
}

fn position(file: &str, line: i64) -> SourcePosition {
    SourcePosition {
        partition: json_object(json!({ "file": file })),
        offset: json_object(json!({ "line": line })),
    }
}

/// A struct schema with everything a schema can carry across the wire.
fn order_schema() -> SchemaRef {
    let mut schema = Schema::new(SchemaType::Struct);
    schema.name = Some("shop.Order".to_owned());
    schema.version = Some(2);
    schema.doc = Some("An order.".to_owned());
    schema
        .parameters
        .insert("origin".to_owned(), "test".to_owned());
    schema.fields = vec![
        Field {
            name: "id".to_owned(),
            schema: Schema::new(SchemaType::Int64),
        },
        Field {
            name: "note".to_owned(),
            schema: Schema::string().optional(),
        },
        Field {
            name: "tags".to_owned(),
            schema: Schema::array(Schema::string()),
        },
        Field {
            name: "price".to_owned(),
            schema: Schema::new(SchemaType::Float64),
        },
    ];
    Arc::new(schema)
}

fn order(id: i64) -> SchemaAndValue {
    let note = if id % 2 == 0 {
        Value::Null
    } else {
        Value::String(format!("note é {id}"))
    };
    SchemaAndValue::new(
        order_schema(),
        Value::Struct(vec![
            ("id".to_owned(), Value::Int64(id)),
            ("note".to_owned(), note),
            (
                "tags".to_owned(),
                Value::Array(vec![
                    Value::String("new".to_owned()),
                    Value::String(format!("batch-{id}")),
                ]),
            ),
            ("price".to_owned(), Value::Float64(0.25 + id as f64)),
        ]),
    )
}

/// Headers with a schema, without one, a repeated key and a null value;
/// their order matters.
fn headers(id: i64) -> Vec<Header> {
    vec![
        Header {
            key: "trace".to_owned(),
            value: SchemaAndValue::new(
                Schema::new(SchemaType::Int32),
                Value::Int32(-i32::try_from(id).unwrap()),
            ),
        },
        Header {
            key: "trace".to_owned(),
            value: SchemaAndValue::schemaless(Value::String(format!("span-{id}"))),
        },
        Header {
            key: "empty".to_owned(),
            value: SchemaAndValue::null(),
        },
    ]
}

fn source_record(id: i64) -> SourceRecord {
    let file = if id % 2 == 0 { "even.csv" } else { "odd.csv" };
    SourceRecord {
        source_partition: Arc::new(json_object(json!({ "file": file }))),
        source_offset: SourceOffset::Number("line", id),
        topic: if id % 2 == 0 {
            "orders"
        } else {
            "orders-audit"
        }
        .into(),
        kafka_partition: (id % 3 != 0).then(|| i32::try_from(id % 3).unwrap()),
        key: SchemaAndValue::new(
            Schema::new(SchemaType::Bytes).optional(),
            Value::Bytes(vec![0, 0xff, u8::try_from(id).unwrap()]),
        ),
        value: order(id),
        timestamp_ms: Some(1_700_000_000_000 + id),
        headers: headers(id),
    }
}

fn sink_record(offset: i64) -> SinkRecord {
    SinkRecord {
        topic: "orders".into(),
        partition: i32::try_from(offset % 2).unwrap(),
        offset,
        key: SchemaAndValue::new(Schema::string_ref(), Value::String(format!("k{offset}"))),
        value: order(offset),
        timestamp_ms: (offset % 2 == 0).then_some(1_700_000_000_000 + offset),
        headers: headers(offset),
    }
}

fn sink_records(offsets: std::ops::Range<i64>) -> Vec<SinkRecord> {
    offsets.map(sink_record).collect()
}

fn tpo(partition: i32, offset: i64) -> TopicPartitionOffset {
    TopicPartitionOffset {
        topic: "orders".to_owned(),
        partition,
        offset,
    }
}

/// Asserts that `error` says which sidecar, plugin and task it is about,
/// and why.
fn assert_names_the_task(error: &ConnectorError, class: &str, cause: &str) {
    let message = error.to_string();
    let named = format!("sidecar plugin {SIDECAR} ({class}), {TASK_NAMED}: ");
    assert!(message.starts_with(&named), "{message:?} starts {named:?}");
    assert!(message.contains(cause), "{message:?} says {cause:?}");
}

/// The records of an earlier put that `error` hands back.
fn earlier(error: ConnectorError) -> Vec<EarlierFailure> {
    match error {
        ConnectorError::Earlier(failed) => failed,
        other => panic!("expected the records of an earlier put, got {other:?}"),
    }
}

// ---- The plugin ----

#[tokio::test]
async fn the_plugin_proxy_describes_validates_and_splits_through_the_sidecar() {
    let harness = Harness::start().await;
    let source = harness.plugin(SOURCE_CLASS);
    assert_eq!(source.kind(), Direction::Source);
    assert_eq!(source.version(), "1.2.3");
    assert_eq!(source.origin(), format!("sidecar plugin {SIDECAR}"));
    let topic = source.config_def();
    let topic = topic.key("topic").expect("the sidecar's config keys");
    assert!(topic.is_required());
    assert_eq!(topic.documentation, "Where the records go.");
    assert_eq!(harness.plugin(SINK_CLASS).kind(), Direction::Sink);

    let reserved = config(&[("name", "orders"), ("topic", "reserved")]);
    assert_eq!(
        within("validate", source.validate(&reserved)).await,
        vec![("topic".to_owned(), vec!["reserved is reserved".to_owned()])]
    );
    let fine = config(&[("name", "orders"), ("topic", "orders")]);
    assert!(within("validate", source.validate(&fine)).await.is_empty());

    let tasks = within("task configs", source.task_configs(&fine, 2))
        .await
        .unwrap();
    let expected: Vec<ConfigMap> = ["0", "1"]
        .into_iter()
        .map(|index| {
            let mut task = fine.clone();
            task.insert("task.index".to_owned(), index.to_owned());
            task
        })
        .collect();
    assert_eq!(tasks, expected);

    let refused = config(&[("name", "orders"), ("topic", "t"), ("refuse.tasks", "")]);
    let error = within("task configs", source.task_configs(&refused, 2))
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("no tasks for this config") && message.contains(SIDECAR),
        "{message}"
    );
}

#[tokio::test]
async fn the_plugin_proxy_forwards_reconfiguration_requests_and_a_failed_monitor() {
    let harness = Harness::start().await;
    let (requests, mut requested) = mpsc::unbounded_channel();
    let config = config(&[("name", "orders"), ("topic", "orders")]);
    let monitoring = harness
        .plugin(SOURCE_CLASS)
        .monitor(&config, ConnectorContext::new(requests));
    let asked_then_fail = async {
        within("a reconfiguration request", requested.recv())
            .await
            .expect("the monitor is running");
        harness.monitor_release.notify_one();
    };
    let (ended, ()) = within("the monitor", async {
        tokio::join!(monitoring, asked_then_fail)
    })
    .await;
    let message = ended.unwrap_err().to_string();
    assert!(message.contains("the catalog is gone"), "{message}");
}

// ---- The source proxy ----

#[tokio::test]
async fn a_source_proxy_opens_at_its_positions_polls_records_intact_and_passes_commits_on() {
    let mut harness = Harness::start().await;
    let mut source = harness.source();
    let config = config(&[("name", "orders"), ("topic", "orders")]);
    let positions = vec![position("odd.csv", 41), position("even.csv", 40)];
    within("open", source.open(&config, &positions))
        .await
        .unwrap();
    assert_eq!(
        harness.next_seen().await,
        Seen::SourceOpened { config, positions }
    );

    let scripted: Vec<SourceRecord> = (1..=4).map(source_record).collect();
    harness.script.send(Ok(scripted.clone())).unwrap();
    let polled = within("poll", source.poll(10)).await.unwrap();
    // Topics, partitions, keys, schemas, values, timestamps, headers (their
    // order and repeats) and source partitions and offsets all compare.
    assert_eq!(polled, scripted);
    assert_eq!(polled[1].headers, headers(2), "headers arrive as sent");

    let committed = vec![position("odd.csv", 3), position("even.csv", 4)];
    within("commit", source.commit(&committed)).await.unwrap();
    assert_eq!(harness.next_seen().await, Seen::Committed(committed));

    within("stop", source.stop()).await.unwrap();
    assert_eq!(harness.next_seen().await, Seen::SourceStopped);
}

#[tokio::test]
async fn a_source_proxy_returns_at_most_max_records_and_keeps_the_rest_in_order() {
    let mut harness = Harness::start().await;
    let mut source = harness.source();
    within("open", source.open(&config(&[("topic", "orders")]), &[]))
        .await
        .unwrap();
    harness.next_seen().await;
    let scripted: Vec<SourceRecord> = (1..=5).map(source_record).collect();
    harness.script.send(Ok(scripted.clone())).unwrap();
    let mut polled = Vec::new();
    while polled.len() < scripted.len() {
        let batch = within("poll", source.poll(2)).await.unwrap();
        assert!(
            (1..=2).contains(&batch.len()),
            "a poll waits for records and returns at most max_records, got {}",
            batch.len()
        );
        polled.extend(batch);
    }
    assert_eq!(polled, scripted);
}

#[tokio::test]
async fn a_source_poll_failure_keeps_its_kind_and_names_the_task() {
    let harness = Harness::start().await;
    let mut source = harness.source();
    within("open", source.open(&config(&[("topic", "orders")]), &[]))
        .await
        .unwrap();

    harness
        .script
        .send(Err(ConnectorError::Retriable("upstream busy".to_owned())))
        .unwrap();
    let retriable = within("poll", source.poll(10)).await.unwrap_err();
    assert!(retriable.is_retriable(), "{retriable:?}");
    assert_names_the_task(&retriable, SOURCE_CLASS, "upstream busy");

    // A retriable failure leaves the task running.
    harness.script.send(Ok(vec![source_record(1)])).unwrap();
    assert_eq!(
        within("poll", source.poll(10)).await.unwrap(),
        vec![source_record(1)]
    );

    harness
        .script
        .send(Err(ConnectorError::Fatal("upstream gone".to_owned())))
        .unwrap();
    let fatal = within("poll", source.poll(10)).await.unwrap_err();
    assert!(matches!(fatal, ConnectorError::Fatal(_)), "{fatal:?}");
    assert_names_the_task(&fatal, SOURCE_CLASS, "upstream gone");
}

#[tokio::test]
async fn a_source_that_cannot_open_says_why_and_is_not_open() {
    let harness = Harness::start().await;
    let mut source = harness.source();
    let refused = config(&[("topic", "orders"), ("refuse.open", "")]);
    let error = within("open", source.open(&refused, &[]))
        .await
        .unwrap_err();
    assert!(!error.is_retriable());
    assert_names_the_task(&error, SOURCE_CLASS, "the source refuses to open");
    let error = within("poll", source.poll(10)).await.unwrap_err();
    assert_names_the_task(&error, SOURCE_CLASS, "the task is not open");
}

#[tokio::test]
async fn a_source_proxy_waiting_for_records_fails_when_the_sidecar_dies() {
    let mut harness = Harness::start().await;
    let mut source = harness.source();
    within("open", source.open(&config(&[("topic", "orders")]), &[]))
        .await
        .unwrap();
    let polling = harness.polling.clone();
    let sidecar = &mut harness.sidecar;
    let (polled, ()) = within("a poll on a dead sidecar to end", async {
        tokio::join!(source.poll(10), async {
            // The sidecar's task is waiting for records: the runner's poll is too.
            polling.notified().await;
            sidecar.kill();
        })
    })
    .await;
    let error = polled.unwrap_err();
    assert!(matches!(error, ConnectorError::Fatal(_)), "{error:?}");
    assert_names_the_task(&error, SOURCE_CLASS, "connection to the sidecar lost");
}

// ---- The sink proxy ----

#[tokio::test]
async fn a_sink_proxy_puts_records_intact_and_in_order_and_flushes_their_offsets() {
    let mut harness = Harness::start().await;
    let mut sink = harness.sink();
    let config = config(&[("name", "orders"), ("topics", "orders")]);
    within("open", sink.open(&config)).await.unwrap();
    assert_eq!(harness.next_seen().await, Seen::SinkOpened(config));
    let partitions = vec![("orders".to_owned(), 0), ("orders".to_owned(), 1)];
    within("open partitions", sink.open_partitions(&partitions))
        .await
        .unwrap();
    assert_eq!(
        harness.next_seen().await,
        Seen::Assigned(partitions.clone())
    );

    let first = sink_records(0..3);
    assert!(!sink.unsettled());
    // The sidecar has not answered (no verdict yet): put returns anyway,
    // with its batch in flight.
    within("put", sink.put(&first)).await.unwrap();
    assert!(sink.unsettled(), "the batch is in flight");
    assert_eq!(harness.next_seen().await, Seen::Put(first));
    harness.answer_put(Ok(()));
    within("settle", sink.settle()).await.unwrap();
    assert!(!sink.unsettled());

    let second = sink_records(3..5);
    within("put", sink.put(&second)).await.unwrap();
    assert_eq!(harness.next_seen().await, Seen::Put(second));
    harness.answer_put(Ok(()));
    // A flush waits for the put in flight, then flushes.
    let offsets = vec![tpo(0, 5), tpo(1, 4)];
    within("flush", sink.flush(&offsets)).await.unwrap();
    assert!(!sink.unsettled());
    assert_eq!(harness.next_seen().await, Seen::Flushed(offsets.clone()));

    let safe = within("pre-commit", sink.pre_commit(&offsets))
        .await
        .unwrap();
    assert_eq!(safe, vec![tpo(0, 5)], "the sink's answer, not the request");
    assert_eq!(harness.next_seen().await, Seen::PreCommitted(offsets));

    within("close partitions", sink.close_partitions(&partitions))
        .await
        .unwrap();
    assert_eq!(harness.next_seen().await, Seen::Revoked(partitions));
    within("stop", sink.stop()).await.unwrap();
    assert_eq!(harness.next_seen().await, Seen::SinkStopped);
}

#[tokio::test]
async fn a_put_that_fails_retriably_comes_back_whole_as_retriable_earlier_records() {
    let mut harness = Harness::start().await;
    let mut sink = harness.sink();
    within("open", sink.open(&ConfigMap::new())).await.unwrap();
    harness.next_seen().await;
    let batch = sink_records(10..13);
    within("put", sink.put(&batch)).await.unwrap();
    harness.answer_put(Err(ConnectorError::Retriable(
        "the warehouse is busy".to_owned(),
    )));
    let failed = earlier(within("settle", sink.settle()).await.unwrap_err());
    assert!(!sink.unsettled(), "the failed put is no longer in flight");
    let records: Vec<SinkRecord> = failed.iter().map(|f| f.record.clone()).collect();
    assert_eq!(records, batch, "all of the batch, in order, intact");
    for failure in &failed {
        assert!(failure.retriable, "{failure:?}");
        assert!(
            failure.message.contains("the warehouse is busy"),
            "{failure:?}"
        );
    }
}

#[tokio::test]
async fn a_failed_assign_read_while_a_put_is_in_flight_keeps_that_put_in_flight() {
    let mut harness = Harness::start().await;
    let mut sink = harness.sink();
    within("open", sink.open(&ConfigMap::new())).await.unwrap();
    harness.next_seen().await;
    *harness.assign_failure.lock().unwrap() = Some("the partition is locked".to_owned());
    within("assign", sink.open_partitions(&[("t".to_owned(), 0)]))
        .await
        .unwrap();
    assert_eq!(
        harness.next_seen().await,
        Seen::Assigned(vec![("t".to_owned(), 0)])
    );
    let batch = sink_records(0..2);
    within("put", sink.put(&batch)).await.unwrap();
    assert_eq!(harness.next_seen().await, Seen::Put(batch.clone()));
    harness.answer_put(Err(ConnectorError::Retriable("busy".to_owned())));
    // The assign's failure arrives first; it is not the put's answer.
    let error = within("settle", sink.settle()).await.unwrap_err();
    assert!(
        error.is_retriable() && !matches!(error, ConnectorError::Earlier(_)),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("the partition is locked"),
        "{error}"
    );
    assert!(sink.unsettled(), "the put is still in flight");
    // The put's own answer follows, and its records come back to be retried.
    let failed = earlier(within("settle", sink.settle()).await.unwrap_err());
    let records: Vec<SinkRecord> = failed.into_iter().map(|f| f.record).collect();
    assert_eq!(records, batch);
    assert!(!sink.unsettled());
}

#[tokio::test]
async fn the_put_after_a_failed_one_is_not_sent_and_hands_the_failed_records_back() {
    let mut harness = Harness::start().await;
    let mut sink = harness.sink();
    within("open", sink.open(&ConfigMap::new())).await.unwrap();
    harness.next_seen().await;
    let first = sink_records(0..2);
    let second = sink_records(2..4);
    within("put", sink.put(&first)).await.unwrap();
    harness.answer_put(Err(ConnectorError::Retriable("busy".to_owned())));
    // This put's own batch is not taken: it returns the earlier failure.
    let failed = earlier(within("put", sink.put(&second)).await.unwrap_err());
    let records: Vec<SinkRecord> = failed.into_iter().map(|f| f.record).collect();
    assert_eq!(records, first);
    assert!(!sink.unsettled());

    // The runner puts the failed records again, ahead of the newer ones.
    let again: Vec<SinkRecord> = first.iter().chain(&second).cloned().collect();
    harness.answer_put(Ok(()));
    within("put", sink.put(&again)).await.unwrap();
    within("settle", sink.settle()).await.unwrap();
    // The sidecar never saw the second batch on its own, after the failed one.
    assert_eq!(harness.next_seen().await, Seen::Put(first));
    assert_eq!(harness.next_seen().await, Seen::Put(again));
}

#[tokio::test]
async fn a_put_that_fails_fatally_fails_the_next_call_which_does_not_run() {
    let mut harness = Harness::start().await;
    let mut sink = harness.sink();
    within("open", sink.open(&ConfigMap::new())).await.unwrap();
    harness.next_seen().await;
    let batch = sink_records(0..2);
    within("put", sink.put(&batch)).await.unwrap();
    harness.answer_put(Err(ConnectorError::Fatal(
        "the table was dropped".to_owned(),
    )));
    let error = within("flush", sink.flush(&[tpo(0, 2)])).await.unwrap_err();
    assert!(matches!(error, ConnectorError::Fatal(_)), "{error:?}");
    assert_names_the_task(&error, SINK_CLASS, "the table was dropped");
    within("stop", sink.stop()).await.unwrap();
    assert_eq!(harness.next_seen().await, Seen::Put(batch));
    assert_eq!(
        harness.next_seen().await,
        Seen::SinkStopped,
        "the flush was not sent"
    );
}

#[tokio::test]
async fn records_that_fail_on_their_own_come_back_with_their_own_kind_and_message() {
    let harness = Harness::start().await;
    let mut sink = harness.sink();
    within("open", sink.open(&ConfigMap::new())).await.unwrap();
    let batch = sink_records(20..24);
    within("put", sink.put(&batch)).await.unwrap();
    harness.answer_put(Err(ConnectorError::Records(vec![
        RecordError {
            index: 2,
            retriable: false,
            message: "no such customer".to_owned(),
        },
        RecordError {
            index: 0,
            retriable: true,
            message: "row locked".to_owned(),
        },
    ])));
    let failed = earlier(within("settle", sink.settle()).await.unwrap_err());
    assert_eq!(
        failed,
        vec![
            EarlierFailure {
                record: batch[0].clone(),
                retriable: true,
                message: "row locked".to_owned(),
            },
            EarlierFailure {
                record: batch[2].clone(),
                retriable: false,
                message: "no such customer".to_owned(),
            },
        ]
    );
    assert!(!sink.unsettled());
    // The rest of the batch was taken: the next put goes through.
    harness.answer_put(Ok(()));
    within("put", sink.put(&sink_records(24..25)))
        .await
        .unwrap();
    within("settle", sink.settle()).await.unwrap();
}

#[tokio::test]
async fn an_error_for_a_record_outside_the_batch_is_a_malformed_answer() {
    let harness = Harness::start().await;
    let mut sink = harness.sink();
    within("open", sink.open(&ConfigMap::new())).await.unwrap();
    within("put", sink.put(&sink_records(0..2))).await.unwrap();
    harness.answer_put(Err(ConnectorError::Records(vec![RecordError {
        index: 5,
        retriable: true,
        message: "which one?".to_owned(),
    }])));
    let error = within("settle", sink.settle()).await.unwrap_err();
    assert!(matches!(error, ConnectorError::Fatal(_)), "{error:?}");
    assert_names_the_task(&error, SINK_CLASS, "an error for record 5 of a batch of 2");
}

#[tokio::test]
async fn a_sink_proxy_with_a_put_in_flight_fails_when_the_sidecar_dies() {
    let mut harness = Harness::start().await;
    let mut sink = harness.sink();
    within("open", sink.open(&ConfigMap::new())).await.unwrap();
    harness.next_seen().await;
    let batch = sink_records(0..2);
    within("put", sink.put(&batch)).await.unwrap();
    // The sidecar's sink holds the batch, unanswered, when it dies.
    assert_eq!(harness.next_seen().await, Seen::Put(batch));
    harness.sidecar.kill();
    let error = within("settle on a dead sidecar", sink.settle())
        .await
        .unwrap_err();
    assert!(matches!(error, ConnectorError::Fatal(_)), "{error:?}");
    assert_names_the_task(&error, SINK_CLASS, "connection to the sidecar lost");
}
