//! `weir standalone` end to end: the seed pipeline on the embedded broker
//! (file → topic → identical file, checked with kcat), connector files on the
//! command line, and the REST API's answers to bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use weir_tests::{
    Process, Rest, binary, kcat, kcat_produce, kcat_produce_compressed, read, rest_address,
    wait_until,
};

struct Standalone {
    rest: Rest,
    bootstrap: String,
    process: Process,
}

fn start(dir: &Path, extra_worker: &str, connector_files: &[&Path]) -> Standalone {
    start_with_env(dir, extra_worker, connector_files, &[])
}

fn start_with_env(
    dir: &Path,
    extra_worker: &str,
    connector_files: &[&Path],
    env: &[(&str, &str)],
) -> Standalone {
    let worker = dir.join("worker.properties");
    std::fs::write(
        &worker,
        format!(
            "key.converter=org.apache.kafka.connect.json.JsonConverter\n\
             value.converter=org.apache.kafka.connect.json.JsonConverter\n\
             key.converter.schemas.enable=true\nvalue.converter.schemas.enable=true\n\
             offset.storage.file.filename={}\noffset.flush.interval.ms=500\n\
             listeners=http://127.0.0.1:0\n{extra_worker}",
            dir.join("connect.offsets").display()
        ),
    )
    .unwrap();
    let mut process = Process::spawn(
        "weir standalone",
        Command::new(binary("weir"))
            .arg("standalone")
            .arg(&worker)
            .args(connector_files)
            .envs(env.iter().copied()),
        dir.join("standalone.log"),
    );
    let line = process.wait_for_log(
        "embedded Kafka broker bootstrap.servers=",
        Duration::from_secs(30),
    );
    let bootstrap = line.rsplit('=').next().unwrap().trim().to_owned();
    let rest = rest_address(&process.wait_for_log("REST API on", Duration::from_secs(30)));
    Standalone {
        rest: Rest::new(rest),
        bootstrap,
        process,
    }
}

fn lines(count: usize, tag: &str) -> String {
    (0..count)
        .map(|i| format!("{tag} line {i} with some text\n"))
        .collect()
}

#[test]
fn seed_pipeline_copies_a_file_through_kafka_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.txt");
    let output = dir.path().join("output.txt");
    let first = lines(200, "first");
    std::fs::write(&input, &first).unwrap();
    let standalone = start(dir.path(), "", &[]);
    let rest = &standalone.rest;

    let source = json!({"name": "seed-source", "config": {
        "connector.class": "FileStreamSource", "tasks.max": "1",
        "file": input.to_str().unwrap(), "topic": "seed-topic"}});
    let (status, body) = rest.post("/connectors", &source.to_string());
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["type"], "source");
    rest.wait_running("seed-source");

    let expected: Vec<String> = first
        .lines()
        .map(|l| json!({"schema": {"type": "string", "optional": false}, "payload": l}).to_string())
        .collect();
    wait_until(Duration::from_secs(30), "every line in the topic", || {
        kcat(&standalone.bootstrap, "seed-topic").len() >= expected.len()
    });
    let in_topic: Vec<String> = kcat(&standalone.bootstrap, "seed-topic")
        .into_iter()
        .map(|r| r.value)
        .collect();
    assert_eq!(
        in_topic, expected,
        "topic holds the exact JsonConverter envelope"
    );
    assert_eq!(
        in_topic[0],
        r#"{"schema":{"type":"string","optional":false},"payload":"first line 0 with some text"}"#
    );

    let sink = json!({"name": "seed-sink", "config": {
        "connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
        "file": output.to_str().unwrap(), "topics": "seed-topic"}});
    let (status, body) = rest.post("/connectors", &sink.to_string());
    assert_eq!(status, 201, "{body}");
    wait_until(Duration::from_secs(60), "output identical to input", || {
        read(&output) == first
    });

    let second = lines(50, "appended");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .and_then(|mut f| std::io::Write::write_all(&mut f, second.as_bytes()))
        .unwrap();
    let whole = format!("{first}{second}");
    wait_until(Duration::from_secs(60), "appended lines copied", || {
        read(&output) == whole
    });
    assert_eq!(
        std::fs::read(&output).unwrap(),
        std::fs::read(&input).unwrap()
    );

    // The offsets the tasks committed, in Kafka Connect's GET .../offsets shape.
    let size = std::fs::metadata(&input).unwrap().len();
    let source_offsets = json!({"offsets": [{"partition": {"filename": input.to_str().unwrap()}, "offset": {"position": size}}]});
    wait_until(Duration::from_secs(30), "source offsets reported", || {
        rest.get("/connectors/seed-source/offsets") == (200, source_offsets.clone())
    });
    let lines_copied = whole.lines().count();
    let sink_offsets = json!({"offsets": [{"partition": {"kafka_topic": "seed-topic", "kafka_partition": 0}, "offset": {"kafka_offset": lines_copied}}]});
    wait_until(Duration::from_secs(30), "sink offsets reported", || {
        rest.get("/connectors/seed-sink/offsets") == (200, sink_offsets.clone())
    });
    assert_eq!(rest.get("/connectors/nope/offsets").0, 404);

    let (_, topics) = rest.get("/connectors/seed-source/topics");
    assert_eq!(topics, json!({"seed-source": {"topics": ["seed-topic"]}}));

    assert_eq!(rest.delete("/connectors/seed-source").0, 204);
    assert_eq!(rest.delete("/connectors/seed-sink").0, 204);
    assert_eq!(rest.get("/connectors"), (200, json!([])));
    drop(standalone);
}

#[test]
fn connector_files_on_the_command_line_run_and_offsets_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    let output = dir.path().join("out.txt");
    std::fs::write(&input, lines(100, "a")).unwrap();
    let source = dir.path().join("source.properties");
    std::fs::write(
        &source,
        format!(
            "name=file-source\nconnector.class=FileStreamSource\nfile={}\ntopic=cli-topic\n",
            input.display()
        ),
    )
    .unwrap();
    let sink = dir.path().join("sink.properties");
    std::fs::write(
        &sink,
        format!(
            "name=file-sink\nconnector.class=FileStreamSink\nfile={}\ntopics=cli-topic\n",
            output.display()
        ),
    )
    .unwrap();
    let mut standalone = start(dir.path(), "", &[&source, &sink]);
    wait_until(Duration::from_secs(60), "output copied", || {
        read(&output) == read(&input)
    });
    standalone.rest.wait_running("file-source");
    standalone.process.terminate();

    // The offsets file says where the source stopped: a restart sends nothing again.
    let offsets: Value = serde_json::from_str(&read(&dir.path().join("connect.offsets"))).unwrap();
    let size = std::fs::metadata(&input).unwrap().len();
    assert_eq!(offsets["file-source"][0]["offset"]["position"], json!(size));
    let restarted = start(dir.path(), "", &[&source]);
    restarted.rest.wait_running("file-source");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"after restart\n"))
        .unwrap();
    wait_until(Duration::from_secs(30), "the new line in the topic", || {
        kcat(&restarted.bootstrap, "cli-topic")
            .iter()
            .any(|r| r.value.contains("after restart"))
    });
    // A fresh embedded broker: only the line after the committed position was sent.
    assert_eq!(kcat(&restarted.bootstrap, "cli-topic").len(), 1);
}

#[test]
fn rest_api_answers_like_kafka_connect() {
    let dir = tempfile::tempdir().unwrap();
    let standalone = start(dir.path(), "", &[]);
    let rest = &standalone.rest;
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "x\n").unwrap();

    let (status, root) = rest.get("/");
    assert_eq!(status, 200);
    assert!(root["version"].is_string() && root["kafka_cluster_id"].is_string());
    assert_eq!(rest.get("/connectors"), (200, json!([])));

    let (status, plugins) = rest.get("/connector-plugins");
    assert_eq!(status, 200);
    let classes: Vec<&str> = plugins
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["class"].as_str().unwrap())
        .collect();
    assert_eq!(
        classes,
        [
            "org.apache.kafka.connect.file.FileStreamSinkConnector",
            "org.apache.kafka.connect.file.FileStreamSourceConnector",
            "org.apache.kafka.connect.tools.VerifiableSinkConnector",
            "org.apache.kafka.connect.tools.VerifiableSourceConnector"
        ]
    );
    let (_, all) = rest.get("/connector-plugins?connectorsOnly=false");
    assert!(all.as_array().unwrap().iter().any(|p| p["class"]
        == "org.apache.kafka.connect.json.JsonConverter"
        && p["type"] == "converter"));

    // Invalid config: 400 naming the missing key, nothing created.
    let (status, body) = rest.post(
        "/connectors",
        &json!({"name": "bad", "config": {"connector.class": "FileStreamSource", "file": "/tmp/x"}}).to_string(),
    );
    assert_eq!(status, 400);
    assert_eq!(body["error_code"], 400);
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "Connector configuration is invalid and contains the following 1 error(s):"
        ),
        "{message}"
    );
    assert!(
        message.contains("Missing required configuration \"topic\" which has no default value."),
        "{message}"
    );
    let (status, body) = rest.post(
        "/connectors",
        &json!({"name": "bad", "config": {"connector.class": "FileStreamSource", "topic": "t", "tasks.max": "zero"}}).to_string(),
    );
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Invalid value zero for configuration tasks.max"),
        "{body}"
    );
    let (status, body) = rest.post(
        "/connectors",
        &json!({"name": "bad", "config": {"topic": "t"}}).to_string(),
    );
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("contains no connector type"),
        "{body}"
    );
    let (status, body) = rest.post(
        "/connectors",
        &json!({"name": "bad", "config": {"connector.class": "NoSuchConnector"}}).to_string(),
    );
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("NoSuchConnector"),
        "{body}"
    );
    assert_eq!(rest.get("/connectors"), (200, json!([])));

    // Malformed JSON: an error body in Kafka Connect's format, and the server lives on.
    for bad in [
        "{\"name\": broken",
        "[1,2]",
        "{\"name\":\"x\",\"config\":{\"a\":{\"nested\":1}}}",
    ] {
        let (status, body) = rest.post("/connectors", bad);
        assert_eq!(status, 500, "{bad}: {body}");
        assert_eq!(body["error_code"], 500);
        assert!(body["message"].is_string());
    }

    let create = json!({"name": "src", "config": {"connector.class": "FileStreamSource", "file": input.to_str().unwrap(), "topic": "t", "tasks.max": 1}});
    let (status, body) = rest.post("/connectors", &create.to_string());
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["config"]["tasks.max"], "1");
    assert_eq!(body["config"]["name"], "src");
    let (status, body) = rest.post("/connectors", &create.to_string());
    assert_eq!((status, body["error_code"].clone()), (409, json!(409)));
    assert_eq!(body["message"], "Connector src already exists");

    // Name mismatch between URL and config.
    let (status, body) = rest.put(
        "/connectors/src/config",
        &json!({"name": "other", "connector.class": "FileStreamSource", "topic": "t"}).to_string(),
    );
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("doesn't match connector name in the URL"),
        "{body}"
    );

    // Unknown names: 404 with Kafka Connect's messages.
    for (method, path, message) in [
        ("GET", "/connectors/nope", "Connector nope not found"),
        ("GET", "/connectors/nope/config", "Connector nope not found"),
        (
            "GET",
            "/connectors/nope/status",
            "No status found for connector nope",
        ),
        ("GET", "/connectors/nope/tasks", "Connector nope not found"),
        ("DELETE", "/connectors/nope", "Connector nope not found"),
        ("PUT", "/connectors/nope/pause", "Unknown connector nope"),
        ("PUT", "/connectors/nope/resume", "Unknown connector nope"),
        (
            "POST",
            "/connectors/nope/restart",
            "Unknown connector: nope",
        ),
        (
            "GET",
            "/connectors/src/tasks/7/status",
            "No status found for task src-7",
        ),
        (
            "POST",
            "/connectors/src/tasks/7/restart",
            "Unknown task: src-7",
        ),
        ("GET", "/no/such/path", "HTTP 404 Not Found"),
    ] {
        let (status, body) = match method {
            "GET" => rest.get(path),
            "DELETE" => rest.delete(path),
            "PUT" => rest.put_empty(path),
            _ => rest.post(path, ""),
        };
        assert_eq!(status, 404, "{method} {path}: {body}");
        assert_eq!(
            body,
            json!({"error_code": 404, "message": message}),
            "{method} {path}"
        );
    }
    let (status, body) = rest.delete("/connectors");
    assert_eq!((status, body["error_code"].clone()), (405, json!(405)));

    // Lifecycle: pause, resume, restart, config update.
    rest.wait_running("src");
    let (status, task) = rest.get("/connectors/src/tasks/0/status");
    assert_eq!(status, 200);
    assert_eq!(task["id"], 0);
    assert_eq!(task["state"], "RUNNING");
    assert_eq!(rest.put_empty("/connectors/src/pause").0, 202);
    wait_until(Duration::from_secs(30), "src PAUSED", || {
        rest.all_in_state("src", "PAUSED")
    });
    assert_eq!(rest.put_empty("/connectors/src/resume").0, 202);
    rest.wait_running("src");
    assert_eq!(rest.post("/connectors/src/restart", "").0, 204);
    let (status, body) = rest.post("/connectors/src/restart?includeTasks=true", "");
    assert_eq!(status, 202);
    assert_eq!(body["tasks"][0]["state"], "RESTARTING");
    rest.wait_running("src");
    assert_eq!(rest.post("/connectors/src/tasks/0/restart", "").0, 204);
    rest.wait_running("src");
    let (status, body) = rest.put(
        "/connectors/src/config",
        &json!({"connector.class": "FileStreamSource", "file": input.to_str().unwrap(), "topic": "t2"}).to_string(),
    );
    assert_eq!(status, 200, "{body}");
    // The connector instance makes the new task configs after the write.
    wait_until(
        Duration::from_secs(30),
        "task configs from the new config",
        || rest.get("/connectors/src/tasks").1[0]["config"]["topic"] == "t2",
    );
    let (status, _) = rest.put(
        "/connectors/created-by-put/config",
        &json!({"connector.class": "FileStreamSink", "topics": "t2", "file": dir.path().join("o.txt").to_str().unwrap()}).to_string(),
    );
    assert_eq!(status, 201);
    let (_, expanded) = rest.get("/connectors?expand=status&expand=info");
    assert_eq!(expanded["created-by-put"]["info"]["type"], "sink");
    assert!(expanded["src"]["status"]["connector"]["state"].is_string());

    // Validate: 200 even with errors, ConfigInfos shape, exact key set.
    let (status, infos) = rest.put(
        "/connector-plugins/FileStreamSinkConnector/config/validate",
        &json!({"connector.class": "FileStreamSink", "name": "v"}).to_string(),
    );
    assert_eq!(status, 200);
    assert_eq!(infos["name"], "FileStreamSink");
    assert_eq!(infos["error_count"], 2);
    assert_eq!(infos["configs"].as_array().unwrap().len(), 21);
    let (status, body) = rest.put(
        "/connector-plugins/FileStreamSource/config/validate",
        &json!({"connector.class": "FileStreamSink"}).to_string(),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("does not match request type")
    );

    // A task that cannot start is FAILED, with its error as the trace; the
    // connector itself stays RUNNING, as in Kafka Connect.
    let unwritable = dir.path().join("no-such-dir").join("out.txt");
    let broken = json!({"name": "broken-sink", "config": {"connector.class": "FileStreamSink", "topics": "t", "file": unwritable.to_str().unwrap()}});
    assert_eq!(rest.post("/connectors", &broken.to_string()).0, 201);
    wait_until(Duration::from_secs(30), "broken-sink task FAILED", || {
        rest.get("/connectors/broken-sink/tasks/0/status").1["state"] == "FAILED"
    });
    let (_, task) = rest.get("/connectors/broken-sink/tasks/0/status");
    let trace = task["trace"].as_str().unwrap();
    assert!(trace.contains("no-such-dir"), "{trace}");
    let (_, status) = rest.get("/connectors/broken-sink/status");
    assert_eq!(status["connector"]["state"], "RUNNING");
    std::fs::create_dir(dir.path().join("no-such-dir")).unwrap();
    let (status, restarting) = rest.post(
        "/connectors/broken-sink/restart?includeTasks=true&onlyFailed=true",
        "",
    );
    assert_eq!(status, 202);
    assert_eq!(restarting["tasks"][0]["state"], "RESTARTING");
    assert_eq!(
        restarting["connector"]["state"], "RUNNING",
        "onlyFailed leaves a running connector alone"
    );
    rest.wait_running("broken-sink");
    assert_eq!(rest.delete("/connectors/broken-sink").0, 204);

    assert_eq!(rest.delete("/connectors/src").0, 204);
    assert_eq!(rest.delete("/connectors/created-by-put").0, 204);
    assert_eq!(rest.get("/connectors"), (200, json!([])));
    drop(standalone);
}

#[test]
fn insert_header_is_seen_by_an_independent_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "alpha\nbeta\ngamma\n").unwrap();
    let standalone = start(dir.path(), "", &[]);
    let source = json!({"name": "with-header", "config": {
        "connector.class": "FileStreamSource", "file": input.to_str().unwrap(), "topic": "headed",
        "value.converter": "org.apache.kafka.connect.storage.StringConverter",
        "transforms": "addSource,skipBeta",
        "transforms.addSource.type": "org.apache.kafka.connect.transforms.InsertHeader",
        "transforms.addSource.header": "source",
        "transforms.addSource.value.literal": "weir-file",
        "transforms.skipBeta.type": "org.apache.kafka.connect.transforms.Filter",
        "transforms.skipBeta.predicate": "isBetaTopic",
        "predicates": "isBetaTopic",
        "predicates.isBetaTopic.type": "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
        "predicates.isBetaTopic.pattern": "beta-.*"}});
    let (status, body) = standalone.rest.post("/connectors", &source.to_string());
    assert_eq!(status, 201, "{body}");
    wait_until(Duration::from_secs(30), "three records", || {
        kcat(&standalone.bootstrap, "headed").len() >= 3
    });
    let records = kcat(&standalone.bootstrap, "headed");
    let values: Vec<&str> = records.iter().map(|r| r.value.as_str()).collect();
    assert_eq!(
        values,
        ["alpha", "beta", "gamma"],
        "the predicate does not match, so nothing is filtered"
    );
    assert!(
        records.iter().all(|r| r.headers == "source=weir-file"),
        "{records:?}"
    );

    // An invalid transform config is a 400 naming the key, and nothing is created.
    let bad = json!({"name": "bad-transform", "config": {
        "connector.class": "FileStreamSource", "file": input.to_str().unwrap(), "topic": "t",
        "transforms": "x"}});
    let (status, body) = standalone.rest.post("/connectors", &bad.to_string());
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("transforms.x.type"),
        "{body}"
    );
}

#[test]
fn malformed_records_go_to_the_dead_letter_queue_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let standalone = start(dir.path(), "", &[]);
    let good = |text: &str| {
        json!({"schema": {"type": "string", "optional": false}, "payload": text}).to_string()
    };
    let (good1, good2, good3) = (good("good 1"), good("good 2"), good("good 3"));
    kcat_produce(
        &standalone.bootstrap,
        "raw-json",
        &[&good1, "{not json", &good2, "plain text", &good3],
    );

    let output = dir.path().join("good.txt");
    let sink = json!({"name": "tolerant", "config": {
        "connector.class": "FileStreamSink", "topics": "raw-json", "file": output.to_str().unwrap(),
        "errors.tolerance": "all", "errors.log.enable": "true", "errors.log.include.messages": "true",
        "errors.deadletterqueue.topic.name": "raw-json-dlq",
        "errors.deadletterqueue.topic.replication.factor": "1",
        "errors.deadletterqueue.context.headers.enable": "true"}});
    let (status, body) = standalone.rest.post("/connectors", &sink.to_string());
    assert_eq!(status, 201, "{body}");
    wait_until(
        Duration::from_secs(60),
        "the good records in the file",
        || read(&output) == "good 1\ngood 2\ngood 3\n",
    );
    wait_until(Duration::from_secs(30), "two records in the DLQ", || {
        kcat(&standalone.bootstrap, "raw-json-dlq").len() >= 2
    });
    let dead = kcat(&standalone.bootstrap, "raw-json-dlq");
    let originals = kcat(&standalone.bootstrap, "raw-json");
    assert_eq!(
        [dead[0].timestamp, dead[1].timestamp],
        [originals[1].timestamp, originals[3].timestamp],
        "DLQ records keep the original timestamps"
    );
    assert_eq!(
        dead.iter().map(|r| r.value.as_str()).collect::<Vec<_>>(),
        ["{not json", "plain text"],
        "the original bytes, in order"
    );
    for (record, offset) in dead.iter().zip([1, 3]) {
        for expected in [
            "__connect.errors.topic=raw-json".to_owned(),
            "__connect.errors.partition=0".to_owned(),
            format!("__connect.errors.offset={offset}"),
            "__connect.errors.connector.name=tolerant".to_owned(),
            "__connect.errors.task.id=0".to_owned(),
            "__connect.errors.stage=VALUE_CONVERTER".to_owned(),
            "__connect.errors.exception.class.name=org.apache.kafka.connect.errors.DataException".to_owned(),
            "__connect.errors.exception.message=Converting byte[] to Kafka Connect data failed due to serialization error".to_owned(),
            "__connect.errors.class.name=org.apache.kafka.connect.json.JsonConverter".to_owned(),
            "__connect.errors.exception.stacktrace=org.apache.kafka.connect.errors.DataException: Converting byte[]".to_owned(),
        ] {
            assert!(record.headers.contains(&expected), "{expected} missing in {}", record.headers);
        }
    }
    standalone.rest.wait_running("tolerant");

    // The same topic with errors.tolerance=none: the task fails on the first bad record.
    let strict = json!({"name": "strict", "config": {
        "connector.class": "FileStreamSink", "topics": "raw-json", "file": dir.path().join("strict.txt").to_str().unwrap()}});
    assert_eq!(
        standalone.rest.post("/connectors", &strict.to_string()).0,
        201
    );
    wait_until(Duration::from_secs(60), "strict task FAILED", || {
        standalone.rest.get("/connectors/strict/tasks/0/status").1["state"] == "FAILED"
    });
    let (_, task) = standalone.rest.get("/connectors/strict/tasks/0/status");
    assert!(
        task["trace"]
            .as_str()
            .unwrap()
            .contains("Tolerance exceeded in error handler"),
        "{task}"
    );
}

#[test]
fn a_sink_reads_topics_produced_with_every_compression_codec() {
    let dir = tempfile::tempdir().unwrap();
    let standalone = start(dir.path(), "", &[]);
    let text = lines(500, "compressed");
    let records: Vec<&str> = text.lines().collect();
    let codecs = ["gzip", "snappy", "lz4", "zstd"];
    for codec in codecs {
        let topic = format!("codec-{codec}");
        // kcat batches the whole input, so every batch is compressed.
        kcat_produce_compressed(&standalone.bootstrap, &topic, codec, &records);
        let sink = json!({"name": format!("sink-{codec}"), "config": {
            "connector.class": "FileStreamSink", "topics": topic,
            "file": dir.path().join(format!("{codec}.txt")).to_str().unwrap(),
            "value.converter": "org.apache.kafka.connect.storage.StringConverter"}});
        let (status, body) = standalone.rest.post("/connectors", &sink.to_string());
        assert_eq!(status, 201, "{body}");
    }
    for codec in codecs {
        let output = dir.path().join(format!("{codec}.txt"));
        wait_until(
            Duration::from_secs(60),
            &format!("the {codec} topic copied to its file"),
            || read(&output) == text,
        );
        let (_, status) = standalone
            .rest
            .get(&format!("/connectors/sink-{codec}/tasks/0/status"));
        assert_eq!(status["state"], "RUNNING", "{status}");
    }
}

#[test]
fn patch_config_merges_oversized_bodies_get_413_and_the_file_sink_writes_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // Kafka Connect's default flush interval: the copy must not wait for it.
    let weir = start(dir.path(), "offset.flush.interval.ms=60000\n", &[]);
    let rest = &weir.rest;
    let input = dir.path().join("in.txt");
    let output = dir.path().join("out.txt");
    std::fs::write(&input, "one\ntwo\nthree\n").unwrap();
    let plain = "org.apache.kafka.connect.storage.StringConverter";
    for body in [
        json!({"name": "src", "config": {"connector.class": "FileStreamSource",
            "file": input.to_str().unwrap(), "topic": "prompt", "value.converter": plain}}),
        json!({"name": "dst", "config": {"connector.class": "FileStreamSink",
            "file": output.to_str().unwrap(), "topics": "prompt", "value.converter": plain}}),
    ] {
        assert_eq!(rest.post("/connectors", &body.to_string()).0, 201);
    }
    wait_until(
        Duration::from_secs(20),
        "the copy before any offset flush",
        || read(&output) == "one\ntwo\nthree\n",
    );

    // PATCH merges; null deletes; the result is validated; it never creates.
    let (status, info) = rest.patch(
        "/connectors/src/config",
        &json!({"batch.size": "10", "value.converter": null}).to_string(),
    );
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["name"], "src");
    assert_eq!(info["config"]["batch.size"], "10");
    assert!(info["config"].get("value.converter").is_none(), "{info}");
    assert_eq!(info["config"]["topic"], "prompt");
    let (_, config) = rest.get("/connectors/src/config");
    assert_eq!(config["batch.size"], "10");
    let (status, body) = rest.patch(
        "/connectors/src/config",
        &json!({"topic": null}).to_string(),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Connector configuration is invalid"),
        "{body}"
    );
    let (status, body) = rest.patch("/connectors/nope/config", &json!({"a": "b"}).to_string());
    assert_eq!(status, 404);
    assert_eq!(body["message"], "Connector nope not found");

    // Every kind of plugin is listed, and each one's config keys are served.
    let (_, all) = rest.get("/connector-plugins?connectorsOnly=false");
    let listed = |class: &str, kind: &str| {
        all.as_array()
            .unwrap()
            .iter()
            .any(|p| p["class"] == class && p["type"] == kind)
    };
    assert!(
        listed(
            "org.apache.kafka.connect.transforms.Cast$Value",
            "transformation"
        ),
        "{all}"
    );
    assert!(listed(
        "org.apache.kafka.connect.transforms.predicates.HasHeaderKey",
        "predicate"
    ));
    assert!(listed(
        "org.apache.kafka.connect.json.JsonConverter",
        "converter"
    ));
    assert!(listed(
        "org.apache.kafka.connect.storage.SimpleHeaderConverter",
        "header_converter"
    ));
    assert!(listed(
        "org.apache.kafka.connect.file.FileStreamSinkConnector",
        "sink"
    ));
    let names = |path: &str| -> Vec<String> {
        let (status, keys) = rest.get(path);
        assert_eq!(status, 200, "{path}: {keys}");
        keys.as_array()
            .unwrap()
            .iter()
            .map(|k| k["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names("/connector-plugins/FileStreamSource/config"),
        ["file", "topic", "batch.size"]
    );
    assert_eq!(
        names("/connector-plugins/org.apache.kafka.connect.transforms.Cast$Value/config"),
        ["spec", "replace.null.with.default"]
    );
    assert_eq!(
        names("/connector-plugins/JsonConverter/config"),
        ["schemas.enable"]
    );
    assert_eq!(
        names("/connector-plugins/TopicNameMatches/config"),
        ["pattern"]
    );
    let (status, body) = rest.get("/connector-plugins/Nope/config");
    assert_eq!(status, 404);
    assert_eq!(body["message"], "Unknown plugin Nope.");

    // A body over the limit: 413, in Kafka Connect's error shape.
    let huge = format!(
        "{{\"name\": \"big\", \"config\": {{\"x\": \"{}\"}}}}",
        "y".repeat(3 << 20)
    );
    // The server answers as soon as it sees the length and closes the
    // connection: a client still sending the body may see a broken pipe
    // instead of the answer. curl reads an answer that comes early.
    let huge_file = dir.path().join("huge.json");
    std::fs::write(&huge_file, &huge).unwrap();
    let output = Command::new("curl")
        .args([
            "-s",
            "-H",
            "Content-Type: application/json",
            "-w",
            "\n%{http_code}",
        ])
        .arg("--data-binary")
        .arg(format!("@{}", huge_file.display()))
        .arg(format!("{}/connectors", rest.base))
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&output.stdout).into_owned();
    let (text, code) = answer.rsplit_once('\n').unwrap();
    let (status, body): (u16, Value) = (
        code.trim().parse().unwrap(),
        serde_json::from_str(text).unwrap(),
    );
    assert_eq!(status, 413, "{answer}");
    assert_eq!(body["error_code"], 413);
    assert!(
        body["message"].as_str().unwrap().contains("too large"),
        "{body}"
    );
}

#[test]
fn config_providers_resolve_placeholders_on_the_runner_and_get_config_shows_them() {
    let dir = tempfile::tempdir().unwrap();
    let secrets_dir = dir.path().join("secrets");
    std::fs::create_dir_all(&secrets_dir).unwrap();
    let input = dir.path().join("in.txt");
    let output = dir.path().join("out.txt");
    std::fs::write(&input, "alpha\nbeta\n").unwrap();
    let secrets = secrets_dir.join("paths.properties");
    std::fs::write(&secrets, format!("input={}\n", input.display())).unwrap();
    let weir = start_with_env(
        dir.path(),
        &format!(
            "config.providers=file,env\n\
             config.providers.file.class=org.apache.kafka.common.config.provider.FileConfigProvider\n\
             config.providers.file.param.allowed.paths={}\n\
             config.providers.env.class=org.apache.kafka.common.config.provider.EnvVarConfigProvider\n\
             config.providers.env.param.allowlist.pattern=WEIR_TEST_.*\n",
            secrets_dir.display()
        ),
        &[],
        &[
            ("WEIR_TEST_TOPIC", "resolved-topic"),
            ("OTHER_TOPIC", "nope"),
        ],
    );
    let rest = &weir.rest;
    let plain = "org.apache.kafka.connect.storage.StringConverter";
    let file_placeholder = format!("${{file:{}:input}}", secrets.display());
    let source = json!({"name": "provided", "config": {"connector.class": "FileStreamSource",
        "file": file_placeholder, "topic": "${env:WEIR_TEST_TOPIC}", "value.converter": plain}});
    let sink = json!({"name": "copy", "config": {"connector.class": "FileStreamSink",
        "file": output.to_str().unwrap(), "topics": "resolved-topic", "value.converter": plain}});
    for body in [source, sink] {
        assert_eq!(rest.post("/connectors", &body.to_string()).0, 201);
    }
    wait_until(
        Duration::from_secs(30),
        "the file found through the provider",
        || read(&output) == "alpha\nbeta\n",
    );
    // The stored config and the task configs keep the placeholders.
    let (_, config) = rest.get("/connectors/provided/config");
    assert_eq!(config["file"], file_placeholder);
    assert_eq!(config["topic"], "${env:WEIR_TEST_TOPIC}");
    let (_, tasks) = rest.get("/connectors/provided/tasks");
    assert_eq!(tasks[0]["config"]["file"], file_placeholder, "{tasks}");
    assert!(
        !tasks.to_string().contains(input.to_str().unwrap()),
        "{tasks}"
    );

    // Outside the allowlist: FAILED with a trace naming the placeholder only.
    let denied = json!({"name": "denied", "config": {"connector.class": "FileStreamSource",
        "file": input.to_str().unwrap(), "topic": "${env:OTHER_TOPIC}", "value.converter": plain}});
    assert_eq!(rest.post("/connectors", &denied.to_string()).0, 201);
    wait_until(
        Duration::from_secs(30),
        "the denied connector FAILED",
        || {
            let (_, status) = rest.get("/connectors/denied/status");
            status["connector"]["state"] == "FAILED"
                && status["connector"]["trace"].as_str().is_some_and(|t| {
                    t.contains("${env:OTHER_TOPIC}") && t.contains("allowlist.pattern")
                })
        },
    );
    let (_, status) = rest.get("/connectors/denied/status");
    assert!(!status.to_string().contains("nope"), "{status}");
}

#[test]
fn logger_levels_change_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut weir = start(dir.path(), "", &[]);
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "first\n").unwrap();
    let body = json!({"name": "logged", "config": {"connector.class": "FileStreamSource",
        "file": input.to_str().unwrap(), "topic": "logged",
        "value.converter": "org.apache.kafka.connect.storage.StringConverter"}});
    assert_eq!(weir.rest.post("/connectors", &body.to_string()).0, 201);
    weir.rest.wait_running("logged");
    let committed = "source offsets committed";
    assert!(
        !weir.process.log_text().contains(committed),
        "DEBUG is off at start"
    );

    // Kafka Connect's logger name works, and maps to the Weir module.
    let (status, affected) = weir.rest.put(
        "/admin/loggers/org.apache.kafka.connect.runtime.WorkerSourceTask",
        &json!({"level": "DEBUG"}).to_string(),
    );
    assert_eq!(status, 200, "{affected}");
    assert_eq!(
        affected,
        json!([
            "org.apache.kafka.connect.runtime.WorkerSourceTask",
            "weir_runner::source"
        ])
    );
    weir_tests::append(&input, "second\n");
    weir.process
        .wait_for_log(committed, Duration::from_secs(30));

    let (status, all) = weir.rest.get("/admin/loggers");
    assert_eq!(status, 200);
    assert_eq!(all["root"]["level"], "INFO");
    assert!(all["root"]["last_modified"].is_null());
    assert_eq!(
        all["org.apache.kafka.connect.runtime.WorkerSourceTask"]["level"],
        "DEBUG"
    );
    assert!(all["org.apache.kafka.connect.runtime.WorkerSourceTask"]["last_modified"].is_u64());
    let (status, one) = weir
        .rest
        .get("/admin/loggers/weir_runner::source::anything");
    assert_eq!((status, one["level"].clone()), (404, Value::Null), "{one}");
    let (status, one) = weir.rest.get("/admin/loggers/weir_runner");
    assert_eq!((status, one["level"].as_str()), (200, Some("INFO")));
    let (status, body) = weir.rest.get("/admin/loggers/com.example.Nothing");
    assert_eq!(status, 404);
    assert_eq!(body["message"], "Logger com.example.Nothing not found.");
    // Kafka Connect's quirks: no level is 400, a bad level is 404.
    let (status, body) = weir.rest.put("/admin/loggers/weir_runner", "{}");
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        "Desired 'level' parameter was not specified in request."
    );
    let (status, body) = weir.rest.put(
        "/admin/loggers/weir_runner",
        &json!({"level": "LOUD"}).to_string(),
    );
    assert_eq!(status, 404);
    assert_eq!(body["message"], "invalid log level 'LOUD'.");
}

#[test]
fn the_header_converter_writes_and_reads_typed_headers() {
    let dir = tempfile::tempdir().unwrap();
    let mut weir = start(dir.path(), "", &[]);
    let rest = &weir.rest;
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "alpha\n").unwrap();
    let source = |name: &str, topic: &str, extra: Value| {
        let mut config = json!({"connector.class": "FileStreamSource",
            "file": input.to_str().unwrap(), "topic": topic,
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "false",
            "transforms": "hoist,copy",
            "transforms.hoist.type": "org.apache.kafka.connect.transforms.HoistField$Value",
            "transforms.hoist.field": "line",
            "transforms.copy.type": "org.apache.kafka.connect.transforms.HeaderFrom$Value",
            "transforms.copy.fields": "line", "transforms.copy.headers": "h",
            "transforms.copy.operation": "copy"});
        config
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({"name": name, "config": config})
    };
    let simple = source("simple", "simple-headers", json!({}));
    let as_json = source(
        "as-json",
        "json-headers",
        json!({"header.converter": "JsonConverter", "header.converter.schemas.enable": "false"}),
    );
    for body in [simple, as_json] {
        let (status, reply) = rest.post("/connectors", &body.to_string());
        assert_eq!(status, 201, "{reply}");
    }
    wait_until(Duration::from_secs(30), "both topics written", || {
        !kcat(&weir.bootstrap, "simple-headers").is_empty()
            && !kcat(&weir.bootstrap, "json-headers").is_empty()
    });
    // SimpleHeaderConverter writes the text; JsonConverter writes JSON.
    assert_eq!(
        kcat(&weir.bootstrap, "simple-headers")[0].headers,
        "h=alpha"
    );
    assert_eq!(
        kcat(&weir.bootstrap, "json-headers")[0].headers,
        "h=\"alpha\""
    );
    // A header the header converter cannot write (a string header through
    // ByteArrayConverter) is tolerated like a key or a value: with
    // errors.tolerance=all the record is skipped and its offset committed,
    // without it the task fails.
    let bytes = "org.apache.kafka.connect.converters.ByteArrayConverter";
    let tolerant = source(
        "tolerant-headers",
        "tolerant-headers",
        json!({"header.converter": bytes, "errors.tolerance": "all", "errors.log.enable": "true"}),
    );
    let strict = source(
        "strict-headers",
        "strict-headers",
        json!({"header.converter": bytes}),
    );
    for body in [tolerant, strict] {
        let (status, reply) = rest.post("/connectors", &body.to_string());
        assert_eq!(status, 201, "{reply}");
    }
    wait_until(Duration::from_secs(30), "strict-headers FAILED", || {
        rest.get("/connectors/strict-headers/tasks/0/status").1["state"] == "FAILED"
    });
    let (_, task) = rest.get("/connectors/strict-headers/tasks/0/status");
    let trace = task["trace"].as_str().unwrap();
    assert!(
        trace.contains("Tolerance exceeded in error handler")
            && trace.contains("Invalid schema type for ByteArrayConverter: STRING"),
        "{trace}"
    );
    assert_eq!(
        rest.get("/connectors/tolerant-headers/tasks/0/status").1["state"],
        "RUNNING"
    );
    let logged = weir
        .process
        .wait_for_log("stage=\"HEADER_CONVERTER\"", Duration::from_secs(30));
    assert!(logged.contains("tolerant-headers"), "{logged}");
    assert_eq!(rest.put_empty("/connectors/tolerant-headers/stop").0, 204);
    wait_until(Duration::from_secs(30), "tolerant-headers STOPPED", || {
        rest.get("/connectors/tolerant-headers/status").1["connector"]["state"] == "STOPPED"
    });
    assert_eq!(
        rest.get("/connectors/tolerant-headers/offsets").1,
        json!({"offsets": [{"partition": {"filename": input.to_str().unwrap()}, "offset": {"position": 6}}]}),
        "the skipped record's offset is committed"
    );

    // A header converter this build does not have is refused.
    let bad = source(
        "bad",
        "bad",
        json!({"header.converter": "com.example.Nope"}),
    );
    let (status, body) = rest.post("/connectors", &bad.to_string());
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Class com.example.Nope could not be found"),
        "{body}"
    );
}

#[test]
fn offsets_of_a_stopped_connector_can_be_reset_and_altered() {
    let dir = tempfile::tempdir().unwrap();
    let weir = start(dir.path(), "", &[]);
    let rest = &weir.rest;
    let plain = "org.apache.kafka.connect.storage.StringConverter";
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "one\ntwo\nthree\n").unwrap();
    let source = json!({"name": "src", "config": {"connector.class": "FileStreamSource",
        "file": input.to_str().unwrap(), "topic": "off-src", "value.converter": plain}});
    assert_eq!(rest.post("/connectors", &source.to_string()).0, 201);
    wait_until(Duration::from_secs(30), "three records", || {
        kcat(&weir.bootstrap, "off-src").len() == 3
    });
    // Only a STOPPED connector's offsets change.
    let (status, body) = rest.delete("/connectors/src/offsets");
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        "Connectors must be in the STOPPED state before their offsets can be modified. This can be done for the specified connector by issuing a 'PUT' request to the '/connectors/src/stop' endpoint"
    );
    assert_eq!(rest.put_empty("/connectors/src/stop").0, 204);
    wait_until(Duration::from_secs(30), "src STOPPED", || {
        rest.get("/connectors/src/status").1["connector"]["state"] == "STOPPED"
    });
    let size = std::fs::metadata(&input).unwrap().len();
    let (status, offsets) = rest.get("/connectors/src/offsets");
    assert_eq!(status, 200);
    assert_eq!(
        offsets,
        json!({"offsets": [{"partition": {"filename": input.to_str().unwrap()}, "offset": {"position": size}}]})
    );
    // Reset, resume: the file is read again from the start.
    let (status, body) = rest.delete("/connectors/src/offsets");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["message"],
        "The offsets for this connector have been reset successfully"
    );
    assert_eq!(
        rest.get("/connectors/src/offsets").1,
        json!({"offsets": []})
    );
    assert_eq!(rest.put_empty("/connectors/src/resume").0, 202);
    wait_until(Duration::from_secs(30), "the file read again", || {
        kcat(&weir.bootstrap, "off-src").len() == 6
    });

    // A sink: alter its offset, resume, and it reads again from there.
    weir_tests::kcat_produce(&weir.bootstrap, "off-sink", &["a", "b", "c"]);
    let output = dir.path().join("out.txt");
    let sink = json!({"name": "dst", "config": {"connector.class": "FileStreamSink",
        "file": output.to_str().unwrap(), "topics": "off-sink", "value.converter": plain}});
    assert_eq!(rest.post("/connectors", &sink.to_string()).0, 201);
    wait_until(Duration::from_secs(30), "the sink copy", || {
        read(&output) == "a\nb\nc\n"
    });
    assert_eq!(rest.put_empty("/connectors/dst/stop").0, 204);
    wait_until(Duration::from_secs(30), "dst STOPPED", || {
        rest.get("/connectors/dst/status").1["connector"]["state"] == "STOPPED"
    });
    let (_, offsets) = rest.get("/connectors/dst/offsets");
    assert_eq!(
        offsets,
        json!({"offsets": [{"partition": {"kafka_topic": "off-sink", "kafka_partition": 0}, "offset": {"kafka_offset": 3}}]})
    );
    let (status, body) = rest.patch(
        "/connectors/dst/offsets",
        &json!({"offsets": []}).to_string(),
    );
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        "Partitions / offsets need to be provided for an alter offsets request"
    );
    let (status, body) = rest.patch(
        "/connectors/dst/offsets",
        &json!({"offsets": [{"partition": {"kafka_topic": "off-sink"}, "offset": {"kafka_offset": 1}}]}).to_string(),
    );
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        "The partition for a sink connector offset must contain the keys 'kafka_topic' and 'kafka_partition'"
    );
    let (status, body) = rest.patch(
        "/connectors/dst/offsets",
        &json!({"offsets": [{"partition": {"kafka_topic": "off-sink", "kafka_partition": 0}, "offset": {"kafka_offset": 1}}]}).to_string(),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["message"],
        "The offsets for this connector have been altered successfully"
    );
    assert_eq!(rest.put_empty("/connectors/dst/resume").0, 202);
    wait_until(Duration::from_secs(30), "b and c consumed again", || {
        read(&output) == "a\nb\nc\nb\nc\n"
    });
    // A null offset for one partition: it starts over there.
    assert_eq!(rest.put_empty("/connectors/dst/stop").0, 204);
    wait_until(Duration::from_secs(30), "dst STOPPED", || {
        rest.get("/connectors/dst/status").1["connector"]["state"] == "STOPPED"
    });
    let (status, body) = rest.patch(
        "/connectors/dst/offsets",
        &json!({"offsets": [{"partition": {"kafka_topic": "off-sink", "kafka_partition": 0}, "offset": null}]}).to_string(),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        rest.get("/connectors/dst/offsets").1["offsets"][0]["offset"],
        json!({"kafka_offset": 0})
    );
    assert_eq!(rest.put_empty("/connectors/dst/resume").0, 202);
    wait_until(Duration::from_secs(30), "all three again", || {
        read(&output) == "a\nb\nc\nb\nc\na\nb\nc\n"
    });
    // Reset: the group starts where a new consumer would, from the start.
    assert_eq!(rest.put_empty("/connectors/dst/stop").0, 204);
    wait_until(Duration::from_secs(30), "dst STOPPED again", || {
        rest.get("/connectors/dst/status").1["connector"]["state"] == "STOPPED"
    });
    let (status, body) = rest.delete("/connectors/dst/offsets");
    assert_eq!(status, 200, "{body}");
    // The group now starts where a new consumer would: the earliest offset.
    assert_eq!(
        rest.get("/connectors/dst/offsets").1,
        json!({"offsets": [{"partition": {"kafka_topic": "off-sink", "kafka_partition": 0}, "offset": {"kafka_offset": 0}}]})
    );
    assert_eq!(rest.put_empty("/connectors/dst/resume").0, 202);
    wait_until(Duration::from_secs(30), "everything consumed again", || {
        read(&output) == "a\nb\nc\nb\nc\na\nb\nc\na\nb\nc\n"
    });
}

/// `GET /metrics`, parsed by the Python `prometheus_client` text parser:
/// every sample as `name{label="value",…}` → value, labels sorted.
fn scrape(rest: &Rest) -> std::collections::BTreeMap<String, f64> {
    let text = ureq::get(&format!("{}/metrics", rest.base))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let parser = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
samples = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        samples[f"{s.name}{{{labels}}}"] = s.value
print(json.dumps(samples))
"#;
    let mut child = Command::new(repo.join(".venv/bin/python"))
        .args(["-c", parser])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect(".venv/bin/python (run scripts/setup.sh)");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "the parser refused:\n{text}");
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn metrics_use_strimzi_names_and_move_as_records_flow() {
    let dir = tempfile::tempdir().unwrap();
    let weir = start(dir.path(), "", &[]);
    let rest = &weir.rest;
    // KIP-1017: healthy once the runner joined and the connector files
    // (none here) are applied.
    wait_until(Duration::from_secs(30), "GET /health 200", || {
        rest.get("/health")
            == (
                200,
                json!({"status": "healthy",
            "message": "Worker has completed startup and is ready to handle requests."}),
            )
    });
    let plain = "org.apache.kafka.connect.storage.StringConverter";
    let input = dir.path().join("in.txt");
    let output = dir.path().join("out.txt");
    std::fs::write(&input, lines(10, "first")).unwrap();
    let source = json!({"name": "m-src", "config": {"connector.class": "FileStreamSource",
        "file": input.to_str().unwrap(), "topic": "m-topic", "value.converter": plain}});
    let sink = json!({"name": "m-sink", "config": {"connector.class": "FileStreamSink",
        "file": output.to_str().unwrap(), "topics": "m-topic", "value.converter": plain}});
    assert_eq!(rest.post("/connectors", &source.to_string()).0, 201);
    assert_eq!(rest.post("/connectors", &sink.to_string()).0, 201);
    wait_until(Duration::from_secs(30), "10 lines copied", || {
        read(&output).lines().count() == 10
    });
    let src = r#"connector="m-src",task="0""#;
    let snk = r#"connector="m-sink",task="0""#;
    let metric = |samples: &std::collections::BTreeMap<String, f64>, name: &str, labels: &str| {
        samples
            .get(&format!("{name}{{{labels}}}"))
            .copied()
            .unwrap_or_else(|| panic!("no {name}{{{labels}}} in {samples:#?}"))
    };
    // Offsets are committed every flush interval: wait for both commits to count.
    wait_until(Duration::from_secs(30), "the counters to catch up", || {
        let samples = scrape(rest);
        metric(
            &samples,
            "kafka_connect_source_task_source_record_write_total",
            src,
        ) >= 10.0
            && metric(
                &samples,
                "kafka_connect_sink_task_sink_record_send_total",
                snk,
            ) >= 10.0
    });
    let before = scrape(rest);
    assert_eq!(
        metric(&before, "kafka_connect_worker_connector_count", ""),
        2.0
    );
    assert_eq!(
        metric(
            &before,
            "kafka_connect_connector_status",
            r#"connector="m-sink",status="running""#
        ),
        1.0
    );
    assert!(
        metric(
            &before,
            "kafka_connect_worker_rebalance_completed_rebalances_total",
            ""
        ) >= 1.0
    );
    assert_eq!(metric(&before, "kafka_connect_worker_task_count", ""), 2.0);
    assert_eq!(
        metric(
            &before,
            "kafka_connect_connector_task_status",
            r#"connector="m-src",status="running",task="0""#
        ),
        1.0
    );
    assert_eq!(
        metric(
            &before,
            "kafka_connect_source_task_source_record_poll_total",
            src
        ),
        10.0
    );
    assert_eq!(
        metric(
            &before,
            "kafka_connect_sink_task_sink_record_read_total",
            snk
        ),
        10.0
    );
    assert!(
        metric(
            &before,
            "kafka_connect_source_task_poll_batch_max_time_ms",
            src
        ) >= 0.0
    );
    assert!(
        metric(
            &before,
            "kafka_connect_sink_task_put_batch_avg_time_ms",
            snk
        ) >= 0.0
    );
    assert_eq!(
        metric(&before, "kafka_connect_task_error_total_record_errors", snk),
        0.0
    );
    for name in [
        "kafka_connect_source_task_source_record_poll_rate",
        "kafka_connect_source_task_source_record_write_rate",
        "kafka_connect_connector_task_offset_commit_success_percentage",
    ] {
        metric(&before, name, src);
    }
    metric(
        &before,
        "kafka_connect_sink_task_offset_commit_completion_total",
        snk,
    );

    // More records: the counters move.
    weir_tests::append(&input, &lines(5, "second"));
    wait_until(Duration::from_secs(30), "15 lines copied", || {
        read(&output).lines().count() == 15
    });
    wait_until(Duration::from_secs(30), "the counters to move", || {
        let after = scrape(rest);
        metric(
            &after,
            "kafka_connect_source_task_source_record_poll_total",
            src,
        ) == 15.0
            && metric(
                &after,
                "kafka_connect_sink_task_sink_record_read_total",
                snk,
            ) == 15.0
            && metric(
                &after,
                "kafka_connect_sink_task_offset_commit_completion_total",
                snk,
            ) > metric(
                &before,
                "kafka_connect_sink_task_offset_commit_completion_total",
                snk,
            )
    });

    // Paused: the status follows; deleted: the task's series go away.
    assert_eq!(rest.put_empty("/connectors/m-src/pause").0, 202);
    wait_until(Duration::from_secs(30), "m-src paused in /metrics", || {
        scrape(rest).contains_key(
            r#"kafka_connect_connector_task_status{connector="m-src",status="paused",task="0"}"#,
        )
    });
    assert_eq!(rest.delete("/connectors/m-sink").0, 204);
    wait_until(Duration::from_secs(30), "m-sink gone from /metrics", || {
        let samples = scrape(rest);
        !samples.keys().any(|key| key.contains("m-sink"))
            && samples.get("kafka_connect_worker_task_count{}") == Some(&1.0)
    });
}

#[test]
fn json_logs_carry_each_task_s_connector_and_task() {
    let dir = tempfile::tempdir().unwrap();
    let mut weir = start(dir.path(), "log.format=json\n", &[]);
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "one\n").unwrap();
    let source = json!({"name": "json-src", "config": {"connector.class": "FileStreamSource",
        "file": input.to_str().unwrap(), "topic": "json-logs"}});
    assert_eq!(weir.rest.post("/connectors", &source.to_string()).0, 201);
    weir.process
        .wait_for_log("file source starting", Duration::from_secs(30));
    let log = weir.process.log_text();
    let mut task_lines = 0;
    for line in log.lines().filter(|line| !line.trim().is_empty()) {
        // What standalone prints for people (its address) stays plain text.
        if line.starts_with("embedded Kafka broker") || line.starts_with("weir standalone REST API")
        {
            continue;
        }
        let entry: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"));
        assert!(
            entry["level"].is_string() && entry["timestamp"].is_string(),
            "{line}"
        );
        if entry["message"] == "file source starting" {
            assert_eq!(entry["span"]["connector"], "json-src", "{line}");
            assert_eq!(entry["span"]["task"], 0, "{line}");
            task_lines += 1;
        }
    }
    assert_eq!(task_lines, 1, "{log}");

    // The OpenAPI document is served beside the API it describes.
    let (status, document) = weir.rest.get("/openapi.json");
    assert_eq!(status, 200);
    assert_eq!(document["openapi"], "3.0.3");
    assert!(document["paths"]["/connectors/{name}/offsets"]["patch"].is_object());

    // A format Weir does not know is refused before anything starts.
    let worker = dir.path().join("bad.properties");
    std::fs::write(&worker, "log.format=xml\n").unwrap();
    let output = Command::new(binary("weir"))
        .arg("standalone")
        .arg(&worker)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("Invalid value xml for configuration log.format: must be one of text, json"),
        "{output:?}"
    );
}
