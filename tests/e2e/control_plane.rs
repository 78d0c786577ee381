//! The control plane while a task stop is slow (issue 19): a task restart
//! whose stop takes longer than the session timeout, because the broker is
//! frozen (SIGSTOP of `weir dev-kafka`) or because the connector's own
//! `stop()` is slow, must not leave the runner's other tasks stopped behind a
//! RUNNING status, nor the restarted task RESTARTING forever.
//! - `weir standalone` with `task.shutdown.graceful.timeout.ms=10000` and two
//!   VerifiableSource connectors: freeze the broker, restart `b`'s task,
//!   thaw it 12 s later.
//! - The same in distributed mode (etcd, one coordinator, one runner).
//! - Distributed mode, a Python sidecar source (tests/sidecars/) whose
//!   `stop()` takes 8 s, restarted while a VerifiableSource runs on the same
//!   runner (`task.shutdown.graceful.timeout.ms=10000`, so the runner waits
//!   for the whole stop). The sidecar's connection is silent meanwhile and
//!   must survive the runner's keepalive pings.
//!
//! Afterwards both connectors must produce again (their topics, read with
//! kcat, grow well after the outage), both must end RUNNING, no task may
//! be shown RUNNING for long while its topic gets nothing, and the runner
//! must not have fenced itself ("stopping every task without committing"):
//! its coordinator answered all along.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use weir_tests::{
    Broker, CoordinatorProcess, Etcd, Process, Rest, STRING_CONVERTERS, Standalone, start_runner,
    wait_until,
};

/// These tests measure timing with real processes; run in parallel on a
/// small machine they would starve each other's heartbeats.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The worker setting: a stopping task may take 10 s, longer than
/// the session timeout (6 s by default).
const GRACEFUL_10S: &str = "task.shutdown.graceful.timeout.ms=10000\n";

/// How long the broker stays frozen after the restart request.
const FREEZE: Duration = Duration::from_secs(12);

/// A task shown RUNNING this long while its topic gets no record is a lie.
/// VerifiableSource at 20 records/s writes one every 50 ms.
const LIE_WINDOW: Duration = Duration::from_secs(10);

/// Recovery is judged only from this long after the disturbance: records a
/// stopped task's producer still held are flushed right after a thaw, and
/// must not pass for a task that produces.
const SETTLE: Duration = Duration::from_secs(15);

/// How many records each connector must write after SETTLE (1 s worth).
const SUSTAINED: usize = 20;

/// How long recovery may take from the disturbance's end.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// What the runner logs when its lease ran out and it fenced itself.
const FENCED: &str = "stopping every task without committing";

/// The `weir dev-kafka` process behind `broker`, to freeze and thaw it.
fn broker_process(broker: &Broker) -> &Process {
    match broker {
        Broker::Dev {
            _process: process, ..
        } => process,
        Broker::Tansu { .. } => panic!("these tests freeze weir dev-kafka"),
    }
}

fn create(rest: &Rest, body: &Value) {
    let (status, reply) = rest.post("/connectors", &body.to_string());
    assert_eq!(status, 201, "creating {}: {reply}", body["name"]);
}

/// A one-task VerifiableSource writing `{"task":0,"seqno":S}` strings to
/// `topic` at 20 records/s.
fn verifiable_source(name: &str, topic: &str) -> Value {
    json!({"name": name, "config": {
        "connector.class": "VerifiableSource", "topic": topic, "throughput": "20",
        "tasks.max": "1",
        "value.converter": "org.apache.kafka.connect.storage.StringConverter"}})
}

/// How many records `topic` holds, read with kcat (independent of Weir).
fn count(broker: &Broker, topic: &str) -> usize {
    broker.read_values(topic).len()
}

/// Whether `GET /connectors?expand=status` (what the user watched)
/// shows `name` and every one of its tasks RUNNING, and what it shows.
fn shown(statuses: &Value, name: &str) -> (bool, String) {
    let status = &statuses[name]["status"];
    let connector = status["connector"]["state"].as_str().unwrap_or("-");
    let tasks: Vec<&str> = status["tasks"]
        .as_array()
        .map(|tasks| {
            tasks
                .iter()
                .map(|t| t["state"].as_str().unwrap_or("-"))
                .collect()
        })
        .unwrap_or_default();
    let running =
        connector == "RUNNING" && !tasks.is_empty() && tasks.iter().all(|t| *t == "RUNNING");
    (running, format!("{connector} tasks {tasks:?}"))
}

/// Waits until both connectors are RUNNING and have written records.
fn wait_producing(rest: &Rest, broker: &Broker, connectors: &[(&str, &str)]) {
    for (name, topic) in connectors {
        rest.wait_running(name);
        wait_until(
            Duration::from_secs(60),
            &format!("{name} writing to {topic}"),
            || count(broker, topic) >= SUSTAINED,
        );
    }
}

/// What is known about one connector while recovery is watched.
struct Track {
    /// Since when it has been shown RUNNING without a break.
    running_since: Option<Instant>,
    /// When its topic last grew (the watch's start until it does).
    last_growth: Instant,
    last_count: usize,
    /// Its topic's size when the watch began.
    baseline: usize,
    /// Its topic's size at the first look after SETTLE.
    settled: Option<usize>,
}

/// Watches `connectors` (name, topic) from `from` (the disturbance's end)
/// until each is shown RUNNING and has written SUSTAINED records after
/// `from + SETTLE`; fails if that takes RECOVERY_TIMEOUT, or as soon as a
/// task is shown RUNNING for LIE_WINDOW while its topic gets nothing.
fn watch_recovery(
    rest: &Rest,
    broker: &Broker,
    worker: &Process,
    connectors: &[(&str, &str)],
    from: Instant,
) {
    let settle_from = from + SETTLE;
    let deadline = from + RECOVERY_TIMEOUT;
    let mut tracks: Vec<Track> = connectors
        .iter()
        .map(|(_, topic)| {
            let records = count(broker, topic);
            Track {
                running_since: None,
                last_growth: Instant::now(),
                last_count: records,
                baseline: records,
                settled: None,
            }
        })
        .collect();
    let mut history: Vec<String> = Vec::new();
    let report = |history: &[String]| {
        let fenced = if worker.log_text().contains(FENCED) {
            format!("the worker logged {FENCED:?}")
        } else {
            format!("the worker did not log {FENCED:?}")
        };
        let tail = &history[history.len().saturating_sub(25)..];
        format!(
            "{fenced}; seconds after the disturbance, as GET /connectors?expand=status and kcat saw it:\n{}",
            tail.join("\n")
        )
    };
    loop {
        let now = Instant::now();
        let (code, statuses) = rest.get("/connectors?expand=status");
        assert_eq!(code, 200, "GET /connectors?expand=status: {statuses}");
        let mut line = format!("{:>5.1}s", now.duration_since(from).as_secs_f64());
        let mut recovered = now >= settle_from;
        let mut lie = None;
        for ((name, topic), track) in connectors.iter().zip(tracks.iter_mut()) {
            let (running, state) = shown(&statuses, name);
            let records = count(broker, topic);
            if records > track.last_count {
                track.last_growth = now;
                track.last_count = records;
            }
            track.running_since = running.then(|| track.running_since.unwrap_or(now));
            if now >= settle_from {
                track.settled.get_or_insert(records);
            }
            let _ = write!(line, " | {name}: {state}, {records} records in {topic}");
            if let Some(since) = track.running_since
                && now.duration_since(since) >= LIE_WINDOW
                && now.duration_since(track.last_growth) >= LIE_WINDOW
            {
                lie = Some(format!(
                    "{name} is shown RUNNING but wrote nothing to {topic} for {:.1} s (it stayed at {records} records)",
                    now.duration_since(track.last_growth).as_secs_f64()
                ));
            }
            recovered &= running
                && track
                    .settled
                    .is_some_and(|settled| records >= settled + SUSTAINED);
        }
        history.push(line);
        if let Some(lie) = lie {
            panic!("a status lies: {lie}; {}", report(&history));
        }
        if recovered {
            for ((name, topic), track) in connectors.iter().zip(&tracks) {
                assert!(
                    track.last_count > track.baseline,
                    "{name} wrote nothing to {topic} after the disturbance"
                );
            }
            eprintln!(
                "recovered {:.1} s after the disturbance:\n{}",
                from.elapsed().as_secs_f64(),
                history.join("\n")
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not every connector RUNNING and producing {RECOVERY_TIMEOUT:?} after the disturbance; {}",
            report(&history)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn assert_not_fenced(worker: &Process) {
    let log = worker.log_text();
    let fenced: Vec<&str> = log.lines().filter(|l| l.contains(FENCED)).collect();
    assert!(
        fenced.is_empty(),
        "the runner fenced itself although its coordinator answered:\n{}",
        fenced.join("\n")
    );
}

/// Freezes the broker, asks for a restart of `b`'s task, thaws the broker
/// FREEZE later; returns when it was thawed.
fn restart_b_with_the_broker_frozen(rest: &Rest, broker: &Broker) -> Instant {
    let process = broker_process(broker);
    process.signal("STOP");
    let (status, body) = rest.post("/connectors/b/tasks/0/restart", "");
    let asked = Instant::now();
    if status != 204 {
        process.signal("CONT");
        panic!("POST /connectors/b/tasks/0/restart: {status} {body}");
    }
    // The scenario itself: the broker stays frozen this long.
    std::thread::sleep(FREEZE.saturating_sub(asked.elapsed()));
    process.signal("CONT");
    Instant::now()
}

const CONNECTORS: [(&str, &str); 2] = [("a", "topic-a"), ("b", "topic-b")];

#[test]
fn standalone_broker_freeze_during_task_restart() {
    let _serial = one_at_a_time();
    let broker = Broker::dev();
    let dir = tempfile::tempdir().unwrap();
    let weir = Standalone::start(
        dir.path(),
        "worker",
        &format!(
            "bootstrap.servers={}\n{STRING_CONVERTERS}offset.flush.interval.ms=500\n{GRACEFUL_10S}",
            broker.bootstrap()
        ),
    );
    for (name, topic) in CONNECTORS {
        create(&weir.rest, &verifiable_source(name, topic));
    }
    wait_producing(&weir.rest, &broker, &CONNECTORS);

    let thawed = restart_b_with_the_broker_frozen(&weir.rest, &broker);

    watch_recovery(&weir.rest, &broker, &weir.process, &CONNECTORS, thawed);
    assert_not_fenced(&weir.process);
}

#[test]
fn distributed_broker_freeze_during_task_restart() {
    let _serial = one_at_a_time();
    let broker = Broker::dev();
    let dir = tempfile::tempdir().unwrap();
    let etcd = Etcd::start();
    let coordinator =
        CoordinatorProcess::start(&etcd, "/weir-control-plane/", dir.path(), "coordinator");
    let runner = start_runner(
        &coordinator.grpc,
        "runner",
        broker.bootstrap(),
        dir.path(),
        GRACEFUL_10S,
    );
    let rest = &coordinator.rest;
    for (name, topic) in CONNECTORS {
        create(rest, &verifiable_source(name, topic));
    }
    wait_producing(rest, &broker, &CONNECTORS);

    let thawed = restart_b_with_the_broker_frozen(rest, &broker);

    watch_recovery(rest, &broker, &runner, &CONNECTORS, thawed);
    assert_not_fenced(&runner);
}

/// The class of tests/sidecars/slow_stop_source.py's connector.
const SLOW_STOP_CLASS: &str = "org.weir.tests.SlowStopSourceConnector";

/// A plugin directory whose manifest launches tests/sidecars/slow_stop_source.py
/// (the Python SDK, with the project's `.venv` made by `scripts/setup.sh`).
fn slow_stop_plugin(plugins: &Path) {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR"));
    let repo = tests.parent().unwrap();
    let python = repo.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh",
        python.display()
    );
    let dir = plugins.join("slow-stop");
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = json!({
        "name": "slow-stop",
        "command": python.to_str().unwrap(),
        "args": [tests.join("sidecars/slow_stop_source.py").to_str().unwrap()],
        "env": {"PYTHONPATH": repo.join("connectors/python").to_str().unwrap()}
    });
    std::fs::write(dir.join("weir-plugin.json"), manifest.to_string()).unwrap();
}

#[test]
fn distributed_slow_sidecar_stop() {
    let _serial = one_at_a_time();
    let broker = Broker::dev();
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    slow_stop_plugin(&plugins);
    let etcd = Etcd::start();
    // The default session timeout (6 s): the sidecar's stop() takes 8 s.
    let coordinator =
        CoordinatorProcess::start(&etcd, "/weir-control-plane/", dir.path(), "coordinator");
    // A graceful timeout above 8 s, so the runner waits for the whole stop()
    // rather than giving up on it at the default 5 s.
    let mut runner = start_runner(
        &coordinator.grpc,
        "runner",
        broker.bootstrap(),
        dir.path(),
        &format!("plugin.path={}\n{GRACEFUL_10S}", plugins.display()),
    );
    let rest = &coordinator.rest;
    // The coordinator knows the sidecar plugin only from the runner's report.
    wait_until(Duration::from_secs(30), "the sidecar plugin listed", || {
        rest.get("/connector-plugins")
            .1
            .to_string()
            .contains(SLOW_STOP_CLASS)
    });
    create(rest, &verifiable_source("a", "topic-a"));
    create(
        rest,
        &json!({"name": "b", "config": {
            "connector.class": SLOW_STOP_CLASS, "topic": "topic-b",
            "throughput": "20", "stop.seconds": "8", "tasks.max": "1",
            "value.converter": "org.apache.kafka.connect.storage.StringConverter"}}),
    );
    wait_producing(rest, &broker, &CONNECTORS);
    let placed_on = |name: &str| rest.task_states(name);
    assert_eq!(
        placed_on("a")[0].1,
        placed_on("b")[0].1,
        "both connectors' tasks run on the one runner"
    );

    let (status, body) = rest.post("/connectors/b/tasks/0/restart", "");
    assert_eq!(status, 204, "POST /connectors/b/tasks/0/restart: {body}");
    let restarted = Instant::now();
    // The old task's stop() really ran (and takes 8 s).
    runner.wait_for_log("stop() sleeping 8", Duration::from_secs(30));

    watch_recovery(rest, &broker, &runner, &CONNECTORS, restarted);
    assert_not_fenced(&runner);
}
