//! The `weir` operator commands against a running `weir standalone`, over
//! its REST API only.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use weir_tests::{STRING_CONVERTERS, Standalone, binary, wait_until};

/// Runs `weir ARGS` with a contexts file of the test's own; exit code, stdout, stderr.
fn weir(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(binary("weir"))
        .args(args)
        .env("WEIR_CONFIG", dir.join("contexts.json"))
        .env_remove("WEIR_URL")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let (code, stdout, stderr) = weir(dir, args);
    assert_eq!(code, 0, "weir {args:?}: {stdout}{stderr}");
    stdout
}

#[test]
fn the_cli_applies_a_directory_idempotently_and_manages_connectors() {
    let dir = tempfile::tempdir().unwrap();
    let weir_server = Standalone::start(
        dir.path(),
        "worker",
        &format!("{STRING_CONVERTERS}offset.flush.interval.ms=200\n"),
    );
    let url = weir_server.rest.base.clone();
    let input = dir.path().join("in.txt");
    let output = dir.path().join("out.txt");
    std::fs::write(&input, "one\ntwo\nthree\n").unwrap();
    let connectors = dir.path().join("connectors");
    std::fs::create_dir(&connectors).unwrap();
    std::fs::write(
        connectors.join("source.json"),
        serde_json::json!({"name": "cli-src", "config": {"connector.class": "FileStreamSource",
            "file": input.to_str().unwrap(), "topic": "cli-topic"}})
        .to_string(),
    )
    .unwrap();
    let sink = connectors.join("sink.properties");
    std::fs::write(
        &sink,
        format!(
            "name=cli-sink\nconnector.class=FileStreamSink\ntopics=cli-topic\nfile={}\n",
            output.display()
        ),
    )
    .unwrap();
    // Contexts: the cluster comes from the current context, not a flag.
    ok(dir.path(), &["context", "set", "local", "--cluster", &url]);
    let connectors_dir = connectors.to_str().unwrap();

    let first = ok(dir.path(), &["connectors", "apply", "-f", connectors_dir]);
    assert!(first.contains("connector cli-sink created"), "{first}");
    assert!(first.contains("connector cli-src created"), "{first}");
    let second = ok(dir.path(), &["connectors", "apply", "-f", connectors_dir]);
    assert_eq!(
        second.trim(),
        "connector cli-sink unchanged\nconnector cli-src unchanged"
    );
    std::fs::write(
        &sink,
        format!(
            "name=cli-sink\nconnector.class=FileStreamSink\ntopics=cli-topic\nfile={}\ntasks.max=1\n",
            output.display()
        ),
    )
    .unwrap();
    let third = ok(dir.path(), &["connectors", "apply", "-f", connectors_dir]);
    assert!(
        third.contains("connector cli-sink updated (tasks.max)"),
        "{third}"
    );
    assert!(third.contains("connector cli-src unchanged"), "{third}");
    wait_until(Duration::from_secs(30), "three lines copied", || {
        std::fs::read_to_string(&output).unwrap_or_default() == "one\ntwo\nthree\n"
    });
    wait_until(Duration::from_secs(30), "cli-src RUNNING", || {
        weir_server.rest.all_in_state("cli-src", "RUNNING")
    });

    // The status table, and the same for scripts.
    let status = ok(dir.path(), &["connectors", "status", "cli-src"]);
    let lines: Vec<&str> = status.lines().collect();
    assert!(
        lines[0].starts_with("WHAT") && lines[0].contains("STATE"),
        "{status}"
    );
    assert!(
        lines[1].starts_with("connector") && lines[1].contains("RUNNING"),
        "{status}"
    );
    assert!(
        lines[2].starts_with("task 0") && lines[2].contains("RUNNING"),
        "{status}"
    );
    let listed: Value =
        serde_json::from_str(&ok(dir.path(), &["connectors", "list", "-o", "json"])).unwrap();
    assert_eq!(listed["cli-src"]["status"]["connector"]["state"], "RUNNING");
    let table = ok(dir.path(), &["connectors", "list"]);
    assert!(
        table.contains("cli-sink") && table.contains("1/1 RUNNING"),
        "{table}"
    );
    let yaml = ok(
        dir.path(),
        &["connectors", "describe", "cli-src", "-o", "yaml"],
    );
    assert!(yaml.contains("\"topic\": \"cli-topic\""), "{yaml}");
    let runners = ok(dir.path(), &["runners"]);
    assert!(
        runners.starts_with("RUNNER")
            && runners.contains("cli-src-0")
            && runners.contains("cli-sink-0"),
        "{runners}"
    );
    let plugins = ok(dir.path(), &["plugins", "--all"]);
    assert!(
        plugins.contains("FileStreamSource") && plugins.contains("transformation"),
        "{plugins}"
    );

    // Offsets: only a stopped connector's can be reset.
    let (code, _, stderr) = weir(dir.path(), &["offsets", "reset", "cli-src"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(
            "Connectors must be in the STOPPED state before their offsets can be modified"
        ),
        "{stderr}"
    );
    ok(dir.path(), &["connectors", "stop", "cli-src"]);
    wait_until(Duration::from_secs(30), "cli-src STOPPED", || {
        weir_server.rest.get("/connectors/cli-src/status").1["connector"]["state"] == "STOPPED"
    });
    let offsets = ok(dir.path(), &["offsets", "get", "cli-src"]);
    assert!(offsets.contains("\"position\":14"), "{offsets}");
    let reset = ok(dir.path(), &["offsets", "reset", "cli-src"]);
    assert!(
        reset.contains("The offsets for this connector have been reset successfully"),
        "{reset}"
    );
    let after: Value = serde_json::from_str(&ok(
        dir.path(),
        &["offsets", "get", "cli-src", "-o", "json"],
    ))
    .unwrap();
    assert_eq!(after, serde_json::json!({"offsets": []}));

    // A bad config prints Kafka Connect's message and exits 1.
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"name":"bad","config":{"connector.class":"NoSuchConnector"}}"#,
    )
    .unwrap();
    let (code, _, stderr) = weir(
        dir.path(),
        &["connectors", "create", "-f", bad.to_str().unwrap()],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("NoSuchConnector") && stderr.contains("(HTTP 4"),
        "{stderr}"
    );
    // A file that is not a connector exits 2, an unreachable cluster 3.
    std::fs::write(&bad, "not json").unwrap();
    assert_eq!(
        weir(
            dir.path(),
            &["connectors", "apply", "-f", bad.to_str().unwrap()]
        )
        .0,
        2
    );
    let nobody = format!("http://127.0.0.1:{}", weir_tests::free_port());
    assert_eq!(
        weir(dir.path(), &["connectors", "list", "--url", &nobody]).0,
        3
    );

    ok(dir.path(), &["connectors", "delete", "cli-sink"]);
    let listed: Value =
        serde_json::from_str(&ok(dir.path(), &["connectors", "list", "-o", "json"])).unwrap();
    assert!(listed.get("cli-sink").is_none(), "{listed}");
}

/// Starts `weir ARGS` with its output piped and returns once it printed its
/// first line on stderr (for `tap`: the tap is attached).
fn spawn_weir(dir: &Path, args: &[&str]) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = Command::new(binary("weir"))
        .args(args)
        .env("WEIR_CONFIG", dir.join("contexts.json"))
        .env_remove("WEIR_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    (child, first)
}

/// Waits for `child` to exit by itself and returns its stdout.
fn finished(mut child: std::process::Child, what: &str) -> String {
    use std::io::Read;
    wait_until(Duration::from_secs(60), what, || {
        child.try_wait().unwrap().is_some()
    });
    assert!(child.wait().unwrap().success(), "{what}");
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    stdout
}

#[test]
fn weir_tap_prints_the_records_passing_a_task_live() {
    let dir = tempfile::tempdir().unwrap();
    let weir_server = Standalone::start(dir.path(), "worker", STRING_CONVERTERS);
    let url = weir_server.rest.base.clone();
    ok(dir.path(), &["context", "set", "local", "--cluster", &url]);
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "").unwrap();
    let source = serde_json::json!({"connector.class": "FileStreamSource",
        "file": input.to_str().unwrap(), "topic": "tapped"});
    let sink = serde_json::json!({"connector.class": "FileStreamSink", "topics": "tapped",
        "file": dir.path().join("out.txt").to_str().unwrap(),
        "transforms": "shout", "transforms.shout.type": "org.apache.kafka.connect.transforms.InsertHeader",
        "transforms.shout.header": "seen", "transforms.shout.value.literal": "yes"});
    for (name, config) in [("tap-src", &source), ("tap-sink", &sink)] {
        let (status, body) = weir_server
            .rest
            .put(&format!("/connectors/{name}/config"), &config.to_string());
        assert_eq!(status, 201, "{body}");
        weir_server.rest.wait_running(name);
    }

    // Records the source polls, as JSON lines for scripts.
    let (tap, attached) = spawn_weir(
        dir.path(),
        &["tap", "tap-src", "--limit", "3", "-o", "json"],
    );
    assert!(
        attached.starts_with("tapping tap-src at after_poll"),
        "{attached}"
    );
    weir_tests::append(&input, "alpha\nbeta\ngamma\n");
    let printed = finished(tap, "weir tap printed three records and exited");
    let records: Vec<Value> = printed
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let values: Vec<&Value> = records.iter().map(|r| &r["value"]).collect();
    assert_eq!(values, ["alpha", "beta", "gamma"], "{printed}");
    for record in &records {
        assert_eq!(
            (&record["point"], &record["topic"], &record["task"]),
            (
                &Value::from("after_poll"),
                &Value::from("tapped"),
                &Value::from(0)
            ),
            "{printed}"
        );
    }

    // What the sink's task hands to put, after its transform, as a table
    // line, once it has put what came before.
    let output = dir.path().join("out.txt");
    wait_until(
        Duration::from_secs(30),
        "the sink wrote three lines",
        || std::fs::read_to_string(&output).unwrap_or_default() == "alpha\nbeta\ngamma\n",
    );
    let (tap, attached) = spawn_weir(
        dir.path(),
        &[
            "tap",
            "tap-sink",
            "--task",
            "0",
            "--point",
            "before_put",
            "--limit",
            "2",
        ],
    );
    assert!(
        attached.starts_with("tapping tap-sink at before_put"),
        "{attached}"
    );
    weir_tests::append(&input, "delta\nepsilon\n");
    let printed = finished(tap, "weir tap printed two sink records and exited");
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 2, "{printed}");
    assert!(
        lines[0].starts_with("task 0 tapped[")
            && lines[0].contains("]@")
            && lines[0].ends_with("value=\"delta\""),
        "{printed}"
    );
    assert!(lines[1].ends_with("value=\"epsilon\""), "{printed}");

    // The same over the REST stream: the transform's header is there.
    let (tap, _) = spawn_weir(
        dir.path(),
        &[
            "tap",
            "tap-sink",
            "--point",
            "after_transforms",
            "--limit",
            "1",
            "-o",
            "json",
        ],
    );
    weir_tests::append(&input, "zeta\n");
    let record: Value =
        serde_json::from_str(finished(tap, "after_transforms record").trim()).unwrap();
    assert_eq!(record["value"], "zeta");
    assert_eq!(
        record["headers"][0],
        serde_json::json!({"key": "seen", "value": "yes"})
    );

    // Refusals carry Kafka Connect's message.
    let (code, _, stderr) = weir(dir.path(), &["tap", "nope"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("Connector nope not found"), "{stderr}");
    let (code, _, stderr) = weir(dir.path(), &["tap", "tap-src", "--point", "sideways"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("Invalid tap point \"sideways\""),
        "{stderr}"
    );
    let (code, _, stderr) = weir(dir.path(), &["tap", "tap-src", "--task", "7"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("Unknown task: tap-src-7"), "{stderr}");
}
