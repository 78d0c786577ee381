//! No record lost, no task stuck, end to end:
//! - a broker outage longer than the producer's delivery timeout fails the
//!   task without committing past what Kafka acknowledged, and a restart
//!   delivers every line; with the default (unbounded) delivery timeout the
//!   task rides the outage out;
//! - a sink whose `put` fails retriably three times loses nothing, and a
//!   fatal `put` fails the task even with `errors.tolerance=all` (the real
//!   sink loop against a real broker, with a scripted test connector);
//! - stopping twenty tasks stuck on a dead broker takes one stop deadline,
//!   not twenty.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tempfile::TempDir;
use weir_tests::{
    Broker, Process, Rest, Standalone, append, free_port, kcat_produce, read, wait_for_port,
    wait_until,
};

fn tansu_bin() -> String {
    std::env::var("WEIR_TANSU_BIN").unwrap_or_else(|_| "tansu".into())
}

/// tansu on SQLite that can be stopped and started again on the same port
/// with the same data.
struct Tansu {
    dir: TempDir,
    port: u16,
    process: Option<Process>,
}

impl Tansu {
    fn start() -> Tansu {
        let mut tansu = Tansu {
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            process: None,
        };
        tansu.up();
        tansu
    }

    fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    fn up(&mut self) {
        let url = self.url();
        let log = self
            .dir
            .path()
            .join(format!("tansu-{}.log", Instant::now().elapsed().as_nanos()));
        self.process = Some(Process::spawn(
            "tansu",
            Command::new(tansu_bin())
                .current_dir(self.dir.path())
                .args([
                    "broker",
                    "--listener-url",
                    &url,
                    "--advertised-listener-url",
                    &url,
                ])
                .args(["--storage-engine", "sqlite://tansu.db"]),
            log,
        ));
        wait_for_port(self.port, "tansu");
    }

    fn down(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill_hard();
        }
        let port = self.port;
        wait_until(Duration::from_secs(10), "tansu to stop", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
        });
    }

    fn create_topic(&self, topic: &str) {
        let status = Command::new(tansu_bin())
            .args([
                "topic",
                "create",
                "--broker",
                &self.url(),
                "--partitions",
                "1",
                topic,
            ])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

const STRING_CONVERTERS: &str = "key.converter=org.apache.kafka.connect.storage.StringConverter\n\
    value.converter=org.apache.kafka.connect.storage.StringConverter\n\
    offset.flush.interval.ms=200\n";

fn standalone(dir: &Path, bootstrap: &str, extra: &str) -> Standalone {
    Standalone::start(
        dir,
        "worker",
        &format!("bootstrap.servers={bootstrap}\n{STRING_CONVERTERS}{extra}"),
    )
}

fn lines(from: usize, to: usize) -> String {
    (from..to).map(|i| format!("line {i:06}\n")).collect()
}

fn task_state(rest: &Rest, connector: &str) -> String {
    rest.get(&format!("/connectors/{connector}/tasks/0/status"))
        .1["state"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The distinct lines a sink copied, as a set (at-least-once may repeat).
fn distinct_lines(path: &Path) -> BTreeSet<String> {
    read(path).lines().map(str::to_owned).collect()
}

/// The byte position FileStreamSource last committed for `connector`.
fn committed_position(rest: &Rest, connector: &str) -> u64 {
    let (_, offsets) = rest.get(&format!("/connectors/{connector}/offsets"));
    offsets["offsets"]
        .as_array()
        .and_then(|all| all.first())
        .and_then(|entry| entry["offset"]["position"].as_u64())
        .unwrap_or(0)
}

#[test]
fn a_broker_outage_loses_nothing_and_never_commits_past_an_unacknowledged_record() {
    let mut tansu = Tansu::start();
    for topic in ["bounded", "unbounded"] {
        tansu.create_topic(topic);
    }
    let dir = tempfile::tempdir().unwrap();
    let weir = standalone(dir.path(), &tansu.bootstrap(), "");
    let rest = &weir.rest;

    // Two sources over the same file: one with a short delivery timeout
    // (standing in for librdkafka's old 300 s default), one with Weir's
    // default, which retries until the broker is back.
    let input = dir.path().join("input.txt");
    append(&input, &lines(0, 500));
    for (name, extra) in [
        (
            "bounded",
            json!({"producer.override.delivery.timeout.ms": "3000"}),
        ),
        ("unbounded", json!({})),
    ] {
        let mut config = json!({"connector.class": "FileStreamSource",
            "file": input.to_str().unwrap(), "topic": name});
        config
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (status, body) = rest.post(
            "/connectors",
            &json!({"name": name, "config": config}).to_string(),
        );
        assert_eq!(status, 201, "{body}");
        let output = dir.path().join(format!("{name}.txt"));
        let sink = json!({"name": format!("{name}-sink"), "config": {
            "connector.class": "FileStreamSink", "topics": name, "file": output.to_str().unwrap()}});
        assert_eq!(rest.post("/connectors", &sink.to_string()).0, 201);
    }
    let expected_first: BTreeSet<String> = lines(0, 500).lines().map(str::to_owned).collect();
    for name in ["bounded", "unbounded"] {
        let output = dir.path().join(format!("{name}.txt"));
        wait_until(Duration::from_secs(60), "the first lines copied", || {
            distinct_lines(&output) == expected_first
        });
    }
    wait_until(Duration::from_secs(30), "the first lines committed", || {
        committed_position(rest, "bounded") == lines(0, 500).len() as u64
    });

    // The broker goes away while more lines arrive.
    tansu.down();
    append(&input, &lines(500, 1000));
    wait_until(
        Duration::from_secs(60),
        "the bounded source to fail",
        || task_state(rest, "bounded") == "FAILED",
    );
    let (_, status) = rest.get("/connectors/bounded/tasks/0/status");
    assert!(
        status["trace"].as_str().unwrap().contains("timed out"),
        "{status}"
    );
    // Nothing after what Kafka acknowledged was committed.
    assert_eq!(
        committed_position(rest, "bounded"),
        lines(0, 500).len() as u64,
        "the committed offset passed a record Kafka never acknowledged"
    );
    assert_eq!(task_state(rest, "unbounded"), "RUNNING");

    tansu.up();
    let (status, _) = rest.post("/connectors/bounded/restart?includeTasks=true", "");
    assert!(status == 202 || status == 204, "restart answered {status}");
    let everything: BTreeSet<String> = lines(0, 1000).lines().map(str::to_owned).collect();
    for name in ["bounded", "unbounded"] {
        let output = dir.path().join(format!("{name}.txt"));
        wait_until(
            Duration::from_secs(90),
            &format!("every line through {name}"),
            || distinct_lines(&output) == everything,
        );
    }
    drop(weir);
}

/// A sink connector for the tests: fails `put` retriably `busy` times, and
/// fatally for a record whose value is "poison"; declares offsets safe to
/// commit only below `safe_below`, when set; records the partitions it is
/// told it reads.
struct ScriptedSink {
    busy: usize,
    written: Arc<Mutex<Vec<String>>>,
    safe_below: Option<i64>,
    opened: Arc<Mutex<Vec<(String, i32)>>>,
}

impl ScriptedSink {
    fn new(busy: usize, written: Arc<Mutex<Vec<String>>>) -> Self {
        ScriptedSink {
            busy,
            written,
            safe_below: None,
            opened: Arc::default(),
        }
    }
}

#[async_trait::async_trait]
impl weir_connect::api::SinkTask for ScriptedSink {
    async fn open(
        &mut self,
        _config: &weir_connect::config::ConfigMap,
    ) -> weir_connect::api::Result<()> {
        Ok(())
    }

    async fn put(&mut self, records: &[weir_connect::SinkRecord]) -> weir_connect::api::Result<()> {
        if self.busy > 0 {
            self.busy -= 1;
            return Err(weir_connect::ConnectorError::Retriable(
                "downstream busy".into(),
            ));
        }
        let values: Vec<String> = records
            .iter()
            .map(|r| r.value.value.to_display_string())
            .collect();
        if values.iter().any(|v| v == "poison") {
            return Err(weir_connect::ConnectorError::Fatal(
                "cannot write poison".into(),
            ));
        }
        self.written.lock().unwrap().extend(values);
        Ok(())
    }

    async fn flush(
        &mut self,
        _offsets: &[weir_connect::api::TopicPartitionOffset],
    ) -> weir_connect::api::Result<()> {
        Ok(())
    }

    async fn pre_commit(
        &mut self,
        offsets: &[weir_connect::api::TopicPartitionOffset],
    ) -> weir_connect::api::Result<Vec<weir_connect::api::TopicPartitionOffset>> {
        let cap = self.safe_below.unwrap_or(i64::MAX);
        Ok(offsets
            .iter()
            .map(|o| weir_connect::api::TopicPartitionOffset {
                offset: o.offset.min(cap),
                ..o.clone()
            })
            .collect())
    }

    async fn open_partitions(
        &mut self,
        partitions: &[(String, i32)],
    ) -> weir_connect::api::Result<()> {
        self.opened
            .lock()
            .unwrap()
            .extend(partitions.iter().cloned());
        Ok(())
    }

    async fn stop(&mut self) -> weir_connect::api::Result<()> {
        Ok(())
    }
}

struct SinkRun {
    events: tokio::sync::mpsc::UnboundedReceiver<weir_runner::task::TaskEvent>,
    cancel: tokio_util::sync::CancellationToken,
    handle: tokio::task::JoinHandle<()>,
    _target: tokio::sync::watch::Sender<weir_runner::task::TargetState>,
}

fn run_sink(
    bootstrap: &str,
    dir: &Path,
    topic: &str,
    extra: &[(&str, &str)],
    sink: ScriptedSink,
) -> SinkRun {
    use weir_runner::task::{TargetState, TaskContext, TaskId};
    let worker: weir_connect::config::ConfigMap = [
        ("bootstrap.servers", bootstrap),
        ("offset.storage.file.filename", "unused"),
        ("offset.flush.interval.ms", "200"),
        (
            "key.converter",
            "org.apache.kafka.connect.storage.StringConverter",
        ),
        (
            "value.converter",
            "org.apache.kafka.connect.storage.StringConverter",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let worker =
        Arc::new(weir_runner::config::WorkerConfig::from_properties(worker, true).unwrap());
    let config = [("connector.class", "ScriptedSink"), ("topics", topic)]
        .into_iter()
        .chain(extra.iter().copied())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let (events_tx, events) = tokio::sync::mpsc::unbounded_channel();
    let (target, target_rx) = tokio::sync::watch::channel(TargetState::Running);
    let cancel = tokio_util::sync::CancellationToken::new();
    let context = TaskContext {
        key: TaskId {
            connector: topic.to_owned(),
            task: 0,
        },
        task_count: 1,
        config,
        epoch: 1,
        worker,
        offsets: Arc::new(weir_runner::offsets::FileOffsetStore::new(
            dir.join("offsets.json"),
        )),
        target: target_rx,
        cancel: cancel.clone(),
        events: events_tx,
        lease: weir_runner::lease::Lease::unbounded(),
        metrics: weir_runner::metrics::TaskMetrics::detached(),
        tap: weir_runner::tap::TaskTap::detached("c", 0),
        claims: weir_runner::claims::PartitionClaims::unclaimed(),
        producers: weir_runner::producers::ProducerPool::default(),
    };
    let handle = weir_runner::task::spawn(context, weir_connect::api::Task::Sink(Box::new(sink)));
    SinkRun {
        events,
        cancel,
        handle,
        _target: target,
    }
}

fn committed_offset(event: &weir_runner::task::TaskEvent) -> Option<i64> {
    match event {
        weir_runner::task::TaskEvent::OffsetsCommitted { positions, .. } => positions
            .iter()
            .filter_map(|p| p.offset["kafka_offset"].as_i64())
            .max(),
        _ => None,
    }
}

fn failed_trace(event: &weir_runner::task::TaskEvent) -> Option<String> {
    match event {
        weir_runner::task::TaskEvent::Status {
            state: weir_runner::task::TaskState::Failed,
            trace,
            ..
        } => Some(trace.clone()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retriable_put_is_retried_until_it_succeeds_and_a_fatal_put_fails_the_task() {
    let broker = Broker::dev();
    let dir = tempfile::tempdir().unwrap();
    let records = ["a", "b", "c", "d"];
    kcat_produce(broker.bootstrap(), "retried", &records);

    let written = Arc::new(Mutex::new(Vec::new()));
    let sink = ScriptedSink::new(3, written.clone());
    let mut run = run_sink(broker.bootstrap(), dir.path(), "retried", &[], sink);
    let committed = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let event = run.events.recv().await.unwrap();
            assert!(failed_trace(&event).is_none(), "{event:?}");
            if committed_offset(&event) == Some(records.len() as i64) {
                return;
            }
        }
    })
    .await;
    assert!(
        committed.is_ok(),
        "every record was committed after the retries"
    );
    assert_eq!(
        *written.lock().unwrap(),
        records,
        "nothing lost, nothing repeated"
    );
    run.cancel.cancel();
    run.handle.await.unwrap();

    // A fatal put fails the task even with errors.tolerance=all, and nothing goes to the DLQ.
    kcat_produce(broker.bootstrap(), "poisoned", &["fine", "poison", "after"]);
    let written = Arc::new(Mutex::new(Vec::new()));
    let sink = ScriptedSink::new(0, written.clone());
    let tolerant = [
        ("errors.tolerance", "all"),
        ("errors.deadletterqueue.topic.name", "poisoned-dlq"),
        ("errors.deadletterqueue.topic.replication.factor", "1"),
    ];
    let mut run = run_sink(broker.bootstrap(), dir.path(), "poisoned", &tolerant, sink);
    let trace = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let event = run.events.recv().await.unwrap();
            assert_eq!(
                committed_offset(&event),
                None,
                "a failed batch is never committed"
            );
            if let Some(trace) = failed_trace(&event) {
                return trace;
            }
        }
    })
    .await
    .expect("the task failed");
    assert!(trace.contains("cannot write poison"), "{trace}");
    run.handle.await.unwrap();
    assert!(
        weir_tests::kcat(broker.bootstrap(), "poisoned-dlq").is_empty(),
        "a put failure is not a record for the dead-letter queue"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_offsets_the_sink_declares_safe_are_committed() {
    let broker = Broker::dev();
    let dir = tempfile::tempdir().unwrap();
    kcat_produce(broker.bootstrap(), "held", &["1", "2", "3", "4", "5", "6"]);
    let written = Arc::new(Mutex::new(Vec::new()));
    let mut sink = ScriptedSink::new(0, written.clone());
    sink.safe_below = Some(4);
    let opened = sink.opened.clone();
    let mut run = run_sink(broker.bootstrap(), dir.path(), "held", &[], sink);
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let event = run.events.recv().await.unwrap();
            assert!(failed_trace(&event).is_none(), "{event:?}");
            if let Some(offset) = committed_offset(&event) {
                assert!(
                    offset <= 4,
                    "committed {offset}, past what the sink declared safe"
                );
                if offset == 4 && written.lock().unwrap().len() == 6 {
                    return;
                }
            }
        }
    })
    .await
    .expect("the safe offset committed");
    // The final commit at stop is held back too.
    run.cancel.cancel();
    while let Some(event) = run.events.recv().await {
        if let Some(offset) = committed_offset(&event) {
            assert!(offset <= 4, "committed {offset} at stop");
        }
    }
    run.handle.await.unwrap();
    assert_eq!(*opened.lock().unwrap(), [("held".to_owned(), 0)]);
}

#[test]
fn stopping_twenty_stuck_tasks_takes_one_stop_deadline() {
    let broker = Broker::dev();
    let dir = tempfile::tempdir().unwrap();
    // Each stop phase may take 2 s; one task's deadline is then 3 × 2 s + 2 s.
    let mut weir = standalone(
        dir.path(),
        broker.bootstrap(),
        "task.shutdown.graceful.timeout.ms=2000\n",
    );
    let inputs: Vec<PathBuf> = (0..20)
        .map(|i| dir.path().join(format!("in-{i}.txt")))
        .collect();
    for (i, input) in inputs.iter().enumerate() {
        append(input, &lines(0, 10));
        let source = json!({"name": format!("stuck-{i}"), "config": {
            "connector.class": "FileStreamSource", "file": input.to_str().unwrap(),
            "topic": format!("stuck-{i}")}});
        assert_eq!(weir.rest.post("/connectors", &source.to_string()).0, 201);
    }
    for i in 0..20 {
        weir.rest.wait_running(&format!("stuck-{i}"));
    }
    // The broker dies; what the sources read next can never be acknowledged.
    drop(broker);
    for input in &inputs {
        append(input, &lines(10, 20));
    }
    let started = Instant::now();
    // `terminate` fails the test if the process needs more than 15 s: one
    // deadline is 8 s, twenty one after another would be 160 s.
    weir.process.terminate();
    let took = started.elapsed();
    eprintln!("stopping twenty tasks took {took:?}");
    assert!(took < Duration::from_secs(15), "stopping took {took:?}");
}
