//! Sidecars on stock gRPC servers, with default server options and no Weir
//! SDK: the Node.js file connectors (`connectors/examples/node`, grpc-js,
//! the .proto loaded at run time) and a Python source on plain `grpcio`
//! (`tests/sidecars/raw_grpc_source.py`).
//! - Both stay RUNNING through more than a minute idle, then deliver more
//!   records; kill -9 of one and SIGSTOP of the other each fail only that
//!   sidecar's task, within seconds, while a built-in neighbour moves on.
//! - The Node.js source → Kafka → Node.js sink pipeline copies a file
//!   exactly, and the Node.js sidecar passes the conformance kit.
//! - Distributed mode: validating a config of the Node.js plugin (which the
//!   coordinator only knows from a runner's report) returns the plugin's
//!   own error for a bad value, and create refuses it with 400 before
//!   anything is stored.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use weir_tests::{
    Broker, CoordinatorProcess, Etcd, Standalone, append, read, start_runner, wait_until,
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn label(plugins: &Path, sidecar: &str) -> String {
    format!("label={}/{sidecar}", plugins.display())
}

fn manifest(plugins: &Path, name: &str, command: &Path, args: &[String], env: serde_json::Value) {
    let dir = plugins.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = json!({"name": name, "command": command, "args": args, "env": env});
    std::fs::write(dir.join("weir-plugin.json"), manifest.to_string()).unwrap();
}

/// Node.js, and the example's node_modules (`scripts/setup.sh` runs `npm ci`).
fn node() -> PathBuf {
    let example = repo().join("connectors/examples/node");
    assert!(
        example.join("node_modules/@grpc/grpc-js").exists(),
        "{}/node_modules is missing: run scripts/setup.sh",
        example.display()
    );
    let output = Command::new("sh")
        .args(["-c", "command -v node"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "node is not on the PATH: run scripts/setup.sh"
    );
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

fn node_plugin(plugins: &Path) {
    let script = repo().join("connectors/examples/node/file_connectors.js");
    manifest(
        plugins,
        "node-files",
        &node(),
        &[
            script.to_str().unwrap().to_owned(),
            label(plugins, "node-files"),
        ],
        json!({}),
    );
}

fn raw_python_plugin(plugins: &Path) {
    let python = repo().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh",
        python.display()
    );
    let script = repo().join("tests/sidecars/raw_grpc_source.py");
    let stubs = repo().join("connectors/python/weir_connect/_proto");
    manifest(
        plugins,
        "raw-python",
        &python,
        &[
            script.to_str().unwrap().to_owned(),
            label(plugins, "raw-python"),
        ],
        json!({"PYTHONPATH": stubs}),
    );
}

fn start(dir: &Path, plugins: &Path, broker: &Broker) -> Standalone {
    Standalone::start(
        dir,
        "worker",
        &format!(
            "bootstrap.servers={}\nplugin.path={}\noffset.flush.interval.ms=200\n\
             key.converter=org.apache.kafka.connect.storage.StringConverter\n\
             value.converter=org.apache.kafka.connect.storage.StringConverter\n",
            broker.bootstrap(),
            plugins.display()
        ),
    )
}

fn lines(prefix: &str, from: usize, to: usize) -> String {
    (from..to)
        .map(|i| format!("{prefix} line {i:06}\n"))
        .collect()
}

fn values(broker: &Broker, topic: &str) -> Vec<String> {
    broker.read_values(topic)
}

fn state(standalone: &Standalone, connector: &str) -> String {
    standalone
        .rest
        .get(&format!("/connectors/{connector}/tasks/0/status"))
        .1["state"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn stock_grpc_sidecars_stay_running_through_a_minute_idle_and_a_kill_or_freeze_fails_only_their_task()
 {
    let broker = Broker::dev();
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    node_plugin(&plugins);
    raw_python_plugin(&plugins);
    let mut weir = start(dir.path(), &plugins, &broker);
    let rest = weir.rest.clone();

    let inputs: Vec<(&str, &str, PathBuf)> = vec![
        ("node", "NodeFileSource", dir.path().join("node.txt")),
        (
            "raw",
            "com.example.RawFileSource",
            dir.path().join("raw.txt"),
        ),
        (
            "builtin",
            "FileStreamSource",
            dir.path().join("builtin.txt"),
        ),
    ];
    for (name, class, input) in &inputs {
        append(input, &lines(name, 0, 100));
        let config = json!({"name": name, "config": {
            "connector.class": class, "file": input.to_str().unwrap(), "topic": name}});
        let (status, body) = rest.post("/connectors", &config.to_string());
        assert_eq!(status, 201, "{body}");
    }
    for (name, _, _) in &inputs {
        wait_until(
            Duration::from_secs(60),
            &format!("{name}'s first lines"),
            || values(&broker, name).len() == 100,
        );
    }

    // Idle for more than a minute: nothing to read, every task RUNNING throughout.
    let idle_since = Instant::now();
    while idle_since.elapsed() < Duration::from_secs(65) {
        for (name, _, _) in &inputs {
            let now = state(&weir, name);
            assert_eq!(
                now,
                "RUNNING",
                "{name} after {:?} idle: {}\n{}",
                idle_since.elapsed(),
                rest.get(&format!("/connectors/{name}/tasks/0/status")).1,
                weir.process.log_text()
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    for (name, _, input) in &inputs {
        append(input, &lines(name, 100, 200));
    }
    for (name, _, _) in &inputs {
        wait_until(
            Duration::from_secs(30),
            &format!("{name}'s lines after the idle minute"),
            || {
                values(&broker, name)
                    == lines(name, 0, 200)
                        .lines()
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
            },
        );
    }

    // kill -9 of the Python sidecar fails its task only.
    let killed = Command::new("pkill")
        .args(["-9", "-f", &label(&plugins, "raw-python")])
        .status()
        .unwrap();
    assert!(
        killed.success(),
        "the raw Python sidecar was found and killed"
    );
    let killed_at = Instant::now();
    wait_until(
        Duration::from_secs(15),
        "the killed sidecar's task FAILED",
        || state(&weir, "raw") == "FAILED",
    );
    println!("kill -9 detected in {:?}", killed_at.elapsed());
    let trace = rest.get("/connectors/raw/tasks/0/status").1["trace"].to_string();
    assert!(trace.contains("sidecar plugin raw-python"), "{trace}");
    assert_eq!(state(&weir, "node"), "RUNNING");

    // SIGSTOP of the Node.js sidecar: its liveness probe goes unanswered.
    let frozen = Command::new("pkill")
        .args(["-STOP", "-f", &label(&plugins, "node-files")])
        .status()
        .unwrap();
    assert!(
        frozen.success(),
        "the Node.js sidecar was found and stopped"
    );
    let frozen_at = Instant::now();
    wait_until(
        Duration::from_secs(15),
        "the frozen sidecar's task FAILED",
        || state(&weir, "node") == "FAILED",
    );
    println!("SIGSTOP detected in {:?}", frozen_at.elapsed());
    let trace = rest.get("/connectors/node/tasks/0/status").1["trace"].to_string();
    assert!(trace.contains("sidecar plugin node-files"), "{trace}");
    assert!(trace.contains("not answered"), "{trace}");

    // The built-in neighbour never stopped.
    assert_eq!(state(&weir, "builtin"), "RUNNING");
    append(&inputs[2].2, &lines("builtin", 200, 300));
    wait_until(
        Duration::from_secs(30),
        "the built-in source moves on",
        || values(&broker, "builtin").len() == 300,
    );
    let _ = Command::new("pkill")
        .args(["-CONT", "-f", &label(&plugins, "node-files")])
        .status();
    weir.process.terminate();
}

#[test]
fn a_node_source_and_sink_copy_a_file_through_kafka_exactly() {
    let broker = Broker::dev();
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    node_plugin(&plugins);
    let mut weir = start(dir.path(), &plugins, &broker);
    let input = dir.path().join("input.txt");
    let output = dir.path().join("output.txt");
    let text = lines("node", 0, 3000);
    std::fs::write(&input, &text).unwrap();
    let source = json!({"name": "node-source", "config": {
        "connector.class": "com.example.node.NodeFileSourceConnector",
        "file": input.to_str().unwrap(), "topic": "node-copy"}});
    let sink = json!({"name": "node-sink", "config": {
        "connector.class": "NodeFileSink", "topics": "node-copy", "file": output.to_str().unwrap()}});
    for connector in [source, sink] {
        let (status, body) = weir.rest.post("/connectors", &connector.to_string());
        assert_eq!(status, 201, "{body}");
    }
    wait_until(Duration::from_secs(60), "the exact copy", || {
        read(&output) == text
    });
    // More lines while running, then a restart of both: nothing lost, nothing twice.
    append(&input, &lines("node", 3000, 4000));
    for name in ["node-source", "node-sink"] {
        let (status, _) = weir
            .rest
            .post(&format!("/connectors/{name}/restart?includeTasks=true"), "");
        assert!(status == 202 || status == 204, "{status}");
    }
    let text = lines("node", 0, 4000);
    wait_until(
        Duration::from_secs(60),
        "the exact copy after a restart",
        || read(&output) == text,
    );
    assert_eq!(
        values(&broker, "node-copy").len(),
        4000,
        "each line once in Kafka"
    );
    // The plugin's own ConfigDef and Validate reach the REST API.
    let (status, infos) = weir.rest.put(
        "/connector-plugins/NodeFileSink/config/validate",
        &json!({"connector.class": "NodeFileSink", "name": "v", "topics": "t"}).to_string(),
    );
    assert_eq!(status, 200, "{infos}");
    assert_eq!(infos["error_count"], 1, "{infos}");
    assert!(
        infos
            .to_string()
            .contains("Missing required configuration \\\"file\\\""),
        "{infos}"
    );
    weir.process.terminate();
}

#[test]
fn the_node_sidecar_passes_the_conformance_kit() {
    let dir = tempfile::tempdir().unwrap();
    let report = weir_tests::conformance(
        Command::new(node()).arg(repo().join("connectors/examples/node/file_connectors.js")),
        &dir.path().join("node.sock"),
        "NodeFileSource",
        "NodeFileSink",
        dir.path(),
        &["--idle-seconds", "20"],
    );
    assert!(report.contains("7 passed, 0 failed"), "{report}");
    assert!(
        report.contains("ok      source stays connected while idle"),
        "{report}"
    );
}

#[test]
fn distributed_validate_runs_the_sidecar_plugins_own_checks_before_anything_is_stored() {
    let broker = Broker::dev();
    let dir = tempfile::tempdir().unwrap();
    let etcd = Etcd::start();
    let coordinator = CoordinatorProcess::start(&etcd, "/weir-validate/", dir.path(), "coord");
    let rest = &coordinator.rest;
    let plugins = dir.path().join("plugins");
    node_plugin(&plugins);
    let _runner = start_runner(
        &coordinator.grpc,
        "r1",
        broker.bootstrap(),
        dir.path(),
        &format!("plugin.path={}\n", plugins.display()),
    );
    // Generous: beside this binary's other tests, a Node start took over 30 s once.
    wait_until(
        Duration::from_secs(90),
        "the runner's plugins listed",
        || {
            rest.get("/connector-plugins")
                .1
                .to_string()
                .contains("NodeFileSourceConnector")
        },
    );

    // A relative path: only the plugin's own Validate knows that is wrong.
    let bad = json!({"connector.class": "NodeFileSource", "name": "bad",
        "file": "relative/in.txt", "topic": "t"});
    let (status, infos) = rest.put(
        "/connector-plugins/NodeFileSource/config/validate",
        &bad.to_string(),
    );
    assert_eq!(status, 200, "{infos}");
    assert_eq!(infos["error_count"], 1, "{infos}");
    let file = infos["configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|info| info["value"]["name"] == "file")
        .unwrap();
    assert_eq!(
        file["value"]["errors"],
        json!(["Invalid value relative/in.txt for configuration file: must be an absolute path"]),
        "{infos}"
    );

    // A validator the plugin declared in its ConfigDef: the coordinator checks it itself.
    let slow = json!({"connector.class": "NodeFileSource", "name": "slow",
        "file": "/tmp/in.txt", "topic": "t", "poll.interval.ms": "0"});
    let (status, infos) = rest.put(
        "/connector-plugins/NodeFileSource/config/validate",
        &slow.to_string(),
    );
    assert_eq!(status, 200, "{infos}");
    assert_eq!(infos["error_count"], 1, "{infos}");
    assert!(
        infos.to_string().contains(
            "Invalid value 0 for configuration poll.interval.ms: Value must be at least 1"
        ),
        "{infos}"
    );

    let (status, body) = rest.post(
        "/connectors",
        &json!({"name": "bad", "config": bad}).to_string(),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error_code"], 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("must be an absolute path"),
        "{body}"
    );
    assert_eq!(rest.get("/connectors").1, json!([]), "nothing stored");
    assert_eq!(rest.get("/connectors/bad").0, 404);

    // The same through PUT /connectors/{name}/config.
    let (status, body) = rest.put("/connectors/bad/config", &bad.to_string());
    assert_eq!(status, 400, "{body}");
    assert_eq!(rest.get("/connectors").1, json!([]), "nothing stored");

    // A good config is created and runs on the runner.
    let input = dir.path().join("in.txt");
    append(&input, &lines("validated", 0, 10));
    let good = json!({"name": "good", "config": {"connector.class": "NodeFileSource",
        "file": input.to_str().unwrap(), "topic": "validated"}});
    let (status, body) = rest.post("/connectors", &good.to_string());
    assert_eq!(status, 201, "{body}");
    rest.wait_running("good");
    wait_until(
        Duration::from_secs(30),
        "the good connector's records",
        || values(&broker, "validated").len() == 10,
    );
}

/// A runner killed with SIGKILL cannot stop its sidecars; a stock server
/// (no SDK of ours watching its parent) must still not outlive it.
#[test]
fn a_stock_sidecar_does_not_outlive_a_runner_killed_outright() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    node_plugin(&plugins);
    let broker = Broker::dev();
    let mut weir = start(dir.path(), &plugins, &broker);
    let sidecar = label(&plugins, "node-files");
    let running = || {
        Command::new("pgrep")
            .args(["-f", &sidecar])
            .output()
            .unwrap()
            .status
            .success()
    };
    wait_until(Duration::from_secs(90), "the Node sidecar running", running);
    weir.process.kill_hard();
    wait_until(
        Duration::from_secs(30),
        "the Node sidecar gone with its runner",
        || !running(),
    );
}
