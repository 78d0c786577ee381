//! Connectors as gRPC sidecars, end to end with real processes: `weir
//! standalone` launches `weir-file-connectors` (the built-in file connectors'
//! code served over connector protocol v2 on a Unix socket) from a
//! `plugin.path` manifest.
//! - The seed pipeline with both file connectors as sidecars copies a file
//!   byte for byte.
//! - kill -9 of the sidecar mid-stream fails its source task with a trace,
//!   a built-in connector on the same runner keeps moving, the runner
//!   restarts the sidecar, and a connector restart delivers every line.
//! - A malformed manifest, a command that does not exist and a socket
//!   nobody listens on are each logged naming the plugin; the runner and
//!   the good plugin keep working.
//! - A sidecar that stops answering (SIGSTOP) fails its task within
//!   seconds; the runner stays healthy.
//! - Sidecars exit by themselves when their runner is killed (kill -9).
//! - Records a Python sink rejects one by one go to the DLQ with
//!   `errors.tolerance=all`, and fail the task without it.
//! - A Python connector's `monitor` asks for reconfiguration and gets a new task.
//! - Distributed mode: a coordinator with no plugins of its own lists and
//!   validates the sidecar plugins a runner reported, places the sidecar
//!   connectors only on that runner (not on a second runner without them),
//!   and the seed pipeline copies the file byte for byte.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use weir_tests::{
    Broker, CoordinatorProcess, Etcd, Standalone, append, binary, read, start_runner, wait_until,
};

/// A plugin directory whose manifest launches `weir-file-connectors`,
/// labelled with the plugin directory so a test can find its own process.
fn file_connectors_plugin(plugins: &Path) {
    let dir = plugins.join("file-connectors");
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = json!({
        "name": "file-connectors",
        "command": binary("weir-file-connectors").to_str().unwrap(),
        "args": [label(plugins)],
        "env": {"RUST_LOG": "info"}
    });
    std::fs::write(dir.join("weir-plugin.json"), manifest.to_string()).unwrap();
}

fn label(plugins: &Path) -> String {
    format!("label={}", plugins.display())
}

fn start(dir: &Path, plugins: &Path, broker: &Broker) -> Standalone {
    Standalone::start(
        dir,
        "worker",
        &format!(
            "bootstrap.servers={}\nplugin.path={}\noffset.flush.interval.ms=200\n\
             key.converter=org.apache.kafka.connect.json.JsonConverter\n\
             value.converter=org.apache.kafka.connect.json.JsonConverter\n",
            broker.bootstrap(),
            plugins.display()
        ),
    )
}

fn lines(from: usize, to: usize) -> String {
    (from..to)
        .map(|i| format!("sidecar line {i:06}\n"))
        .collect()
}

#[test]
fn the_seed_pipeline_runs_with_both_file_connectors_as_sidecars() {
    let broker = Broker::dev();
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    file_connectors_plugin(&plugins);
    let mut weir = start(dir.path(), &plugins, &broker);

    let input = dir.path().join("input.txt");
    let output = dir.path().join("output.txt");
    let text = lines(0, 2000);
    std::fs::write(&input, &text).unwrap();
    let source = json!({"name": "sidecar-source", "config": {
        "connector.class": "SidecarFileStreamSource", "file": input.to_str().unwrap(), "topic": "sidecar-topic"}});
    let sink = json!({"name": "sidecar-sink", "config": {
        "connector.class": "org.weir.connect.file.SidecarFileStreamSinkConnector",
        "topics": "sidecar-topic", "file": output.to_str().unwrap()}});
    for connector in [source, sink] {
        let (status, body) = weir.rest.post("/connectors", &connector.to_string());
        assert_eq!(status, 201, "{body}");
    }
    wait_until(Duration::from_secs(60), "the byte-identical copy", || {
        read(&output) == text
    });
    weir.rest.wait_running("sidecar-source");
    weir.rest.wait_running("sidecar-sink");
    // The sidecar's ConfigDef reaches validate.
    let (status, infos) = weir.rest.put(
        "/connector-plugins/SidecarFileStreamSource/config/validate",
        &json!({"connector.class": "SidecarFileStreamSource", "topic": "a,b"}).to_string(),
    );
    assert_eq!(status, 200, "{infos}");
    assert!(
        infos
            .to_string()
            .contains("should only have a single topic"),
        "{infos}"
    );
    let log = weir.process.log_text();
    assert!(
        log.contains("weir-file-connectors label="),
        "the sidecar's output is in the runner's log"
    );
    // A clean stop stops the sidecar too.
    weir.process.terminate();
    let left = Command::new("pgrep")
        .args(["-f", &label(&plugins)])
        .status()
        .unwrap();
    assert!(!left.success(), "the sidecar outlived the runner");
}

#[test]
fn distributed_mode_runs_sidecar_connectors_on_the_runners_that_have_them() {
    let broker = Broker::dev();
    let dir = tempfile::tempdir().unwrap();
    let etcd = Etcd::start();
    let coordinator = CoordinatorProcess::start(&etcd, "/weir-sidecar/", dir.path(), "coord");
    let rest = &coordinator.rest;
    let plugins = dir.path().join("plugins");
    file_connectors_plugin(&plugins);
    let converters = "key.converter=org.apache.kafka.connect.json.JsonConverter
                      value.converter=org.apache.kafka.connect.json.JsonConverter
";
    let mut with_plugins = start_runner(
        &coordinator.grpc,
        "with-plugins",
        broker.bootstrap(),
        dir.path(),
        &format!(
            "plugin.path={}
{converters}",
            plugins.display()
        ),
    );
    let _without = start_runner(
        &coordinator.grpc,
        "without-plugins",
        broker.bootstrap(),
        dir.path(),
        converters,
    );
    // The coordinator knows the sidecar plugins only from the runner's report.
    wait_until(Duration::from_secs(30), "sidecar plugins listed", || {
        rest.get("/connector-plugins")
            .1
            .to_string()
            .contains("org.weir.connect.file.SidecarFileStreamSinkConnector")
    });
    let (status, infos) = rest.put(
        "/connector-plugins/SidecarFileStreamSource/config/validate",
        &json!({"connector.class": "SidecarFileStreamSource"}).to_string(),
    );
    assert_eq!(status, 200, "{infos}");
    let file_key = infos["configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["definition"]["name"] == "topic")
        .expect("the sidecar's own keys are validated");
    assert_eq!(
        file_key["value"]["errors"].as_array().unwrap().len(),
        1,
        "{file_key}"
    );

    let input = dir.path().join("input.txt");
    let output = dir.path().join("output.txt");
    let text = lines(0, 2000);
    std::fs::write(&input, &text).unwrap();
    let source = json!({"name": "sidecar-source", "config": {
        "connector.class": "SidecarFileStreamSource", "file": input.to_str().unwrap(),
        "topic": "distributed-sidecar"}});
    let sink = json!({"name": "sidecar-sink", "config": {
        "connector.class": "org.weir.connect.file.SidecarFileStreamSinkConnector",
        "topics": "distributed-sidecar", "file": output.to_str().unwrap()}});
    for connector in [source, sink] {
        let (status, body) = rest.post("/connectors", &connector.to_string());
        assert_eq!(status, 201, "{body}");
    }
    wait_until(Duration::from_secs(60), "the byte-identical copy", || {
        read(&output) == text
    });
    let more = lines(2000, 2500);
    append(&input, &more);
    let all = format!("{text}{more}");
    wait_until(Duration::from_secs(60), "appended lines copied", || {
        read(&output) == all
    });
    for name in ["sidecar-source", "sidecar-sink"] {
        rest.wait_running(name);
        let (_, status) = rest.get(&format!("/connectors/{name}/status"));
        assert_eq!(status["connector"]["worker_id"], "with-plugins", "{status}");
        assert_eq!(status["tasks"][0]["worker_id"], "with-plugins", "{status}");
    }
    with_plugins.terminate();
    let left = Command::new("pgrep")
        .args(["-f", &label(&plugins)])
        .status()
        .unwrap();
    assert!(!left.success(), "the sidecar outlived its runner");
}

#[test]
fn kill_9_of_a_sidecar_fails_only_its_tasks_and_a_restart_loses_nothing() {
    let broker = Broker::dev();
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    file_connectors_plugin(&plugins);
    let mut weir = start(dir.path(), &plugins, &broker);
    let rest = weir.rest.clone();
    let rest = &rest;

    // A sidecar pipeline and a built-in pipeline on the same runner.
    let sidecar_input = dir.path().join("sidecar-in.txt");
    let builtin_input = dir.path().join("builtin-in.txt");
    append(&sidecar_input, &lines(0, 1000));
    append(&builtin_input, &lines(0, 1000));
    for (name, class, input) in [
        ("via-sidecar", "SidecarFileStreamSource", &sidecar_input),
        ("built-in", "FileStreamSource", &builtin_input),
    ] {
        let source = json!({"name": name, "config": {
            "connector.class": class, "file": input.to_str().unwrap(), "topic": name}});
        assert_eq!(rest.post("/connectors", &source.to_string()).0, 201);
        let output = dir.path().join(format!("{name}.txt"));
        let sink = json!({"name": format!("{name}-sink"), "config": {
            "connector.class": "FileStreamSink", "topics": name, "file": output.to_str().unwrap()}});
        assert_eq!(rest.post("/connectors", &sink.to_string()).0, 201);
    }
    let sidecar_output = dir.path().join("via-sidecar.txt");
    let builtin_output = dir.path().join("built-in.txt");
    wait_until(
        Duration::from_secs(60),
        "the first lines through both",
        || read(&sidecar_output) == lines(0, 1000) && read(&builtin_output) == lines(0, 1000),
    );

    // The sidecar source's outstanding credit is on /metrics while it runs.
    let scrape = || {
        ureq::get(&format!("{}/metrics", rest.base))
            .call()
            .unwrap()
            .into_string()
            .unwrap()
    };
    let credit_series =
        "weir_runner_sidecar_credits_outstanding{connector=\"via-sidecar\",task=\"0\"} ";
    let metrics = scrape();
    let credit: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix(credit_series))
        .unwrap_or_else(|| panic!("{credit_series} in\n{metrics}"))
        .parse()
        .unwrap();
    assert!((0.0..=20_000.0).contains(&credit), "{credit}");

    let killed = Command::new("pkill")
        .args(["-9", "-f", &label(&plugins)])
        .status()
        .unwrap();
    assert!(killed.success(), "the sidecar process was found and killed");
    append(&sidecar_input, &lines(1000, 2000));
    append(&builtin_input, &lines(1000, 2000));

    wait_until(Duration::from_secs(30), "the sidecar task FAILED", || {
        rest.get("/connectors/via-sidecar/tasks/0/status").1["state"] == "FAILED"
    });
    let (_, status) = rest.get("/connectors/via-sidecar/tasks/0/status");
    let trace = status["trace"].as_str().unwrap();
    assert!(trace.contains("sidecar plugin file-connectors"), "{trace}");
    // The built-in connector kept moving meanwhile.
    wait_until(
        Duration::from_secs(60),
        "the built-in pipeline to go on",
        || read(&builtin_output) == lines(0, 2000),
    );
    assert!(rest.all_in_state("built-in", "RUNNING"));

    // The runner restarted the sidecar; a restart of the connector recovers.
    weir.process
        .wait_for_log("sidecar restarted", Duration::from_secs(30));
    let metrics = scrape();
    // A failed task's proxy is gone, and so is its credit.
    assert!(!metrics.contains(credit_series), "{metrics}");
    assert!(
        metrics.contains("weir_runner_sidecar_restarts_total{plugin=\"file-connectors\"} 1"),
        "{metrics}"
    );
    let (code, _) = rest.post("/connectors/via-sidecar/restart?includeTasks=true", "");
    assert!(code == 202 || code == 204, "restart answered {code}");
    let everything: BTreeSet<String> = lines(0, 2000).lines().map(str::to_owned).collect();
    wait_until(
        Duration::from_secs(60),
        "every line through the sidecar",
        || {
            read(&sidecar_output)
                .lines()
                .map(str::to_owned)
                .collect::<BTreeSet<_>>()
                == everything
        },
    );
    rest.wait_running("via-sidecar");
    // Stop the runner cleanly, so it stops its sidecars too.
    weir.process.terminate();
}

#[test]
fn bad_plugins_are_named_and_do_not_stop_the_runner() {
    let broker = Broker::dev();
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    file_connectors_plugin(&plugins);
    let write = |name: &str, text: &str| {
        let plugin = plugins.join(name);
        std::fs::create_dir_all(&plugin).unwrap();
        std::fs::write(plugin.join("weir-plugin.json"), text).unwrap();
    };
    write("broken-json", "{\"name\": ");
    write(
        "missing-command",
        r#"{"name": "no-such-binary", "command": "/nonexistent/weir-sidecar"}"#,
    );
    let nobody = dir.path().join("nobody.sock");
    write(
        "dead-socket",
        &json!({"name": "dead-socket", "address": format!("unix:{}", nobody.display())})
            .to_string(),
    );
    let mut weir = start(dir.path(), &plugins, &broker);
    let log = weir.process.log_text();
    for expected in [
        "plugin broken-json",
        "plugin no-such-binary",
        "plugin dead-socket",
    ] {
        assert!(
            log.contains(expected),
            "{expected} is not named in the log:\n{log}"
        );
    }
    // The runner is up, and the good plugin serves.
    let (status, plugins_listed) = weir.rest.get("/connector-plugins");
    assert_eq!(status, 200);
    assert!(
        plugins_listed
            .to_string()
            .contains("SidecarFileStreamSourceConnector"),
        "{plugins_listed}"
    );
    // Stop the runner cleanly, so it stops its sidecars too.
    weir.process.terminate();
}

#[test]
fn a_sidecar_that_stops_answering_fails_its_tasks_and_the_runner_stays_healthy() {
    let broker = Broker::dev();
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    file_connectors_plugin(&plugins);
    let mut weir = start(dir.path(), &plugins, &broker);
    let rest = &weir.rest;
    let input = dir.path().join("in.txt");
    append(&input, &lines(0, 100));
    let source = json!({"name": "frozen", "config": {
        "connector.class": "SidecarFileStreamSource", "file": input.to_str().unwrap(), "topic": "frozen"}});
    assert_eq!(rest.post("/connectors", &source.to_string()).0, 201);
    rest.wait_running("frozen");

    let stopped = Command::new("pkill")
        .args(["-STOP", "-f", &label(&plugins)])
        .status()
        .unwrap();
    assert!(
        stopped.success(),
        "the sidecar process was found and stopped"
    );
    // Keepalive pings go unanswered: the task fails within seconds.
    wait_until(
        Duration::from_secs(30),
        "the frozen sidecar's task FAILED",
        || rest.get("/connectors/frozen/tasks/0/status").1["state"] == "FAILED",
    );
    let (_, status) = rest.get("/connectors/frozen/tasks/0/status");
    assert!(
        status["trace"]
            .as_str()
            .unwrap()
            .contains("sidecar plugin file-connectors"),
        "{status}"
    );
    // The runner still serves and runs built-in connectors.
    let builtin = json!({"name": "still-fine", "config": {
        "connector.class": "FileStreamSource", "file": input.to_str().unwrap(), "topic": "fine"}});
    assert_eq!(rest.post("/connectors", &builtin.to_string()).0, 201);
    rest.wait_running("still-fine");
    let _ = Command::new("pkill")
        .args(["-CONT", "-f", &label(&plugins)])
        .status();
    // Stop the runner cleanly, so it stops its sidecars too.
    weir.process.terminate();
}

/// A plugin directory whose manifest launches the Python SDK's example file
/// connectors with the project's `.venv` (made by `scripts/setup.sh`).
fn python_plugin(plugins: &Path) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let python = repo.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh",
        python.display()
    );
    let sdk = repo.join("connectors/python");
    let dir = plugins.join("python-files");
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = json!({
        "name": "python-files",
        "command": python.to_str().unwrap(),
        "args": [sdk.join("examples/file_connectors.py").to_str().unwrap()],
        "env": {"PYTHONPATH": sdk.to_str().unwrap()}
    });
    std::fs::write(dir.join("weir-plugin.json"), manifest.to_string()).unwrap();
}

#[test]
fn a_python_sidecar_source_and_sink_copy_a_file_through_kafka() {
    let broker = Broker::dev();
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    python_plugin(&plugins);
    let mut weir = start(dir.path(), &plugins, &broker);
    let input = dir.path().join("input.txt");
    let output = dir.path().join("output.txt");
    let text = lines(0, 3000);
    std::fs::write(&input, &text).unwrap();
    let source = json!({"name": "py-source", "config": {
        "connector.class": "PythonFileSource", "file": input.to_str().unwrap(), "topic": "py-topic"}});
    let sink = json!({"name": "py-sink", "config": {
        "connector.class": "com.example.weir.PythonFileSinkConnector",
        "topics": "py-topic", "file": output.to_str().unwrap()}});
    for connector in [source, sink] {
        let (status, body) = weir.rest.post("/connectors", &connector.to_string());
        assert_eq!(status, 201, "{body}");
    }
    wait_until(Duration::from_secs(60), "the copy through Python", || {
        read(&output) == text
    });
    append(&input, &lines(3000, 3100));
    wait_until(Duration::from_secs(60), "the appended lines", || {
        read(&output) == lines(0, 3100)
    });
    weir.rest.wait_running("py-source");
    weir.rest.wait_running("py-sink");
    // The records in Kafka carry the string schema the SDK sends.
    let records = weir_tests::kcat(broker.bootstrap(), "py-topic");
    assert_eq!(
        records[0].value,
        json!({"schema": {"type": "string", "optional": true}, "payload": "sidecar line 000000"})
            .to_string()
    );
    // The Python ConfigDef and validate reach the REST API.
    let (_, infos) = weir.rest.put(
        "/connector-plugins/PythonFileSource/config/validate",
        &json!({"connector.class": "PythonFileSource", "topic": "a,b"}).to_string(),
    );
    let shown = infos.to_string();
    assert!(shown.contains("single topic"), "{shown}");
    assert!(shown.contains("Missing required configuration"), "{shown}");
    // A validator declared in the Python ConfigDef (`at_least=1`) is checked by Weir.
    let (_, infos) = weir.rest.put(
        "/connector-plugins/PythonFileSource/config/validate",
        &json!({"connector.class": "PythonFileSource", "name": "v", "file": "/tmp/x",
            "topic": "t", "poll.interval.ms": "0"})
        .to_string(),
    );
    assert_eq!(infos["error_count"], 1, "{infos}");
    assert!(
        infos.to_string().contains(
            "Invalid value 0 for configuration poll.interval.ms: Value must be at least 1"
        ),
        "{infos}"
    );
    // Stop the runner cleanly, so it stops its sidecars too.
    weir.process.terminate();
}

#[test]
fn a_python_connector_that_asks_for_reconfiguration_gets_new_tasks() {
    let broker = Broker::dev();
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    python_plugin(&plugins);
    let mut weir = start(dir.path(), &plugins, &broker);
    let watched = dir.path().join("watched");
    std::fs::create_dir_all(&watched).unwrap();
    std::fs::write(watched.join("a.txt"), "a1\na2\n").unwrap();
    let output = dir.path().join("output.txt");
    let source = json!({"name": "dir-source", "config": {
        "connector.class": "PythonDirectorySource", "directory": watched.to_str().unwrap(),
        "topic": "dir-topic", "tasks.max": "4"}});
    let sink = json!({"name": "dir-sink", "config": {
        "connector.class": "FileStreamSink", "topics": "dir-topic", "file": output.to_str().unwrap()}});
    for connector in [source, sink] {
        let (status, body) = weir.rest.post("/connectors", &connector.to_string());
        assert_eq!(status, 201, "{body}");
    }
    let copied = |expected: &[&str]| {
        let mut got: Vec<String> = read(&output).lines().map(str::to_owned).collect();
        got.sort();
        got == expected
    };
    wait_until(Duration::from_secs(60), "a.txt copied", || {
        copied(&["a1", "a2"])
    });
    let tasks = |rest: &weir_tests::Rest| rest.get("/connectors/dir-source/tasks").1;
    assert_eq!(tasks(&weir.rest).as_array().unwrap().len(), 1);
    // A new file: the connector's monitor asks for reconfiguration, the
    // runner makes task configs again, and a second task reads the file.
    std::fs::write(watched.join("b.txt"), "b1\n").unwrap();
    wait_until(Duration::from_secs(60), "a second task", || {
        tasks(&weir.rest).as_array().is_some_and(|t| t.len() == 2)
    });
    wait_until(Duration::from_secs(60), "b.txt copied", || {
        copied(&["a1", "a2", "b1"])
    });
    assert_eq!(
        tasks(&weir.rest)[1]["config"]["files"],
        watched.join("b.txt").to_str().unwrap()
    );
    weir.rest.wait_running("dir-source");
    weir.process.terminate();
}

#[test]
fn records_a_python_sink_rejects_go_to_the_dead_letter_queue() {
    let broker = Broker::dev();
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    python_plugin(&plugins);
    let mut weir = start(dir.path(), &plugins, &broker);
    weir_tests::kcat_produce(
        broker.bootstrap(),
        "rows",
        &["row 1", "bad: row 2", "row 3", "bad: row 4", "row 5"],
    );
    let output = dir.path().join("rows.txt");
    let sink = json!({"name": "picky", "config": {
        "connector.class": "PythonFileSink", "topics": "rows", "file": output.to_str().unwrap(),
        "reject.prefix": "bad:",
        "value.converter": "org.apache.kafka.connect.storage.StringConverter",
        "errors.tolerance": "all",
        "errors.deadletterqueue.topic.name": "rows-dlq",
        "errors.deadletterqueue.topic.replication.factor": "1",
        "errors.deadletterqueue.context.headers.enable": "true"}});
    let (status, body) = weir.rest.post("/connectors", &sink.to_string());
    assert_eq!(status, 201, "{body}");
    wait_until(Duration::from_secs(60), "the accepted rows", || {
        read(&output) == "row 1\nrow 3\nrow 5\n"
    });
    wait_until(
        Duration::from_secs(60),
        "the rejected rows in the DLQ",
        || weir_tests::kcat(broker.bootstrap(), "rows-dlq").len() == 2,
    );
    let dead = weir_tests::kcat(broker.bootstrap(), "rows-dlq");
    assert_eq!(dead[0].value, "bad: row 2");
    assert_eq!(dead[1].value, "bad: row 4");
    for expected in [
        "__connect.errors.stage=TASK_PUT",
        "__connect.errors.topic=rows",
        "__connect.errors.exception.message=ValueError: line rejected: bad: row 2",
    ] {
        assert!(
            dead[0].headers.contains(expected),
            "{expected} in {}",
            dead[0].headers
        );
    }
    weir.rest.wait_running("picky");
    // With the default errors.tolerance=none, a rejected record fails the task.
    let strict = json!({"name": "strict", "config": {
        "connector.class": "PythonFileSink", "topics": "rows",
        "file": dir.path().join("strict.txt").to_str().unwrap(), "reject.prefix": "bad:",
        "value.converter": "org.apache.kafka.connect.storage.StringConverter"}});
    let (status, body) = weir.rest.post("/connectors", &strict.to_string());
    assert_eq!(status, 201, "{body}");
    wait_until(Duration::from_secs(60), "the strict sink FAILED", || {
        let (_, status) = weir.rest.get("/connectors/strict/status");
        status["tasks"][0]["state"] == "FAILED"
            && status["tasks"][0]["trace"]
                .as_str()
                .is_some_and(|t| t.contains("line rejected: bad: row 2"))
    });
    weir.process.terminate();
}

#[test]
fn sidecars_exit_when_their_runner_is_killed() {
    let broker = Broker::dev();
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    file_connectors_plugin(&plugins);
    python_plugin(&plugins);
    let mut weir = start(dir.path(), &plugins, &broker);
    let running = |pattern: &str| {
        Command::new("pgrep")
            .args(["-f", pattern])
            .status()
            .unwrap()
            .success()
    };
    let python_example = "examples/file_connectors.py";
    assert!(running(&label(&plugins)), "the Rust sidecar runs");
    // Several Python tests may run at once: find this one's by its parent.
    let weir_pid = weir.process.pid().to_string();
    let python_children = || {
        let output = Command::new("pgrep")
            .args(["-P", &weir_pid, "-f", python_example])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    let python_pid = python_children();
    assert!(!python_pid.is_empty(), "the Python sidecar runs");
    weir.process.kill_hard();
    wait_until(Duration::from_secs(15), "both sidecars gone", || {
        !running(&label(&plugins)) && !std::path::Path::new(&format!("/proc/{python_pid}")).exists()
    });
}

#[test]
fn the_rust_and_python_sidecars_pass_the_conformance_kit() {
    let dir = tempfile::tempdir().unwrap();
    let rust = weir_tests::conformance(
        &mut Command::new(binary("weir-file-connectors")),
        &dir.path().join("rust.sock"),
        "SidecarFileStreamSource",
        "SidecarFileStreamSink",
        dir.path(),
        &[],
    );
    assert!(rust.contains("7 passed, 0 failed"), "{rust}");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let sdk = repo.join("connectors/python");
    let python = weir_tests::conformance(
        Command::new(repo.join(".venv/bin/python"))
            .arg(sdk.join("examples/file_connectors.py"))
            .env("PYTHONPATH", &sdk),
        &dir.path().join("python.sock"),
        "PythonFileSource",
        "PythonFileSink",
        dir.path(),
        &[],
    );
    assert!(python.contains("7 passed, 0 failed"), "{python}");
}
