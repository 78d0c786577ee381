//! Distributed mode end to end, every component its own process: etcd,
//! a broker (the embedded one via `weir dev-kafka`, and tansu), a
//! `weir-coordinator` and `weir-runner`s.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::{Value, json};
use weir_tests::{
    Broker, CoordinatorProcess, Etcd, Process, Rest, append, read, start_runner, wait_until,
};

struct Cluster {
    _etcd: Etcd,
    broker: Broker,
    coordinator: CoordinatorProcess,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start(broker: Broker) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let etcd = Etcd::start();
        let coordinator =
            CoordinatorProcess::start(&etcd, "/weir-test/", dir.path(), "coordinator-1");
        Cluster {
            _etcd: etcd,
            broker,
            coordinator,
            dir,
        }
    }

    fn rest(&self) -> &Rest {
        &self.coordinator.rest
    }

    fn runner(&self, id: &str, extra: &str) -> Process {
        start_runner(
            &self.coordinator.grpc,
            id,
            self.broker.bootstrap(),
            self.dir.path(),
            extra,
        )
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    fn create(&self, body: Value) {
        let (status, reply) = self.rest().post("/connectors", &body.to_string());
        assert_eq!(status, 201, "{reply}");
    }
}

/// The `/metrics` URL a runner started with `metrics.listener` logs.
fn metrics_url(runner: &mut Process) -> String {
    runner
        .wait_for_log("runner metrics on ", Duration::from_secs(30))
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap()
        .to_owned()
}

fn seed_scenario(broker: Broker, exact_bytes: bool) {
    let cluster = Cluster::start(broker);
    cluster.broker.create_topic("seed");
    let mut runner = cluster.runner("runner-1", "metrics.listener=127.0.0.1:0\n");
    let metrics_url = metrics_url(&mut runner);
    let input = cluster.path("input.txt");
    let output = cluster.path("output.txt");
    let first: String = (0..300).map(|i| format!("seed line {i}\n")).collect();
    std::fs::write(&input, &first).unwrap();

    cluster.create(json!({"name": "seed-source", "config": {
        "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
        "file": input.to_str().unwrap(), "topic": "seed",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "true"}}));
    cluster.rest().wait_running("seed-source");
    let expected: Vec<String> = first
        .lines()
        .map(|l| json!({"schema": {"type": "string", "optional": false}, "payload": l}).to_string())
        .collect();
    wait_until(Duration::from_secs(60), "lines in the topic", || {
        cluster.broker.read_values("seed").len() >= expected.len()
    });
    let values = cluster.broker.read_values("seed");
    if exact_bytes {
        assert_eq!(values, expected);
    } else {
        let parse = |v: &String| serde_json::from_str::<Value>(v).unwrap();
        assert_eq!(
            values.iter().map(parse).collect::<Vec<_>>(),
            expected.iter().map(parse).collect::<Vec<_>>()
        );
    }

    cluster.create(json!({"name": "seed-sink", "config": {
        "connector.class": "FileStreamSink", "file": output.to_str().unwrap(), "topics": "seed",
        "value.converter": "JsonConverter"}}));
    wait_until(Duration::from_secs(60), "output identical to input", || {
        read(&output) == first
    });
    let more: String = (0..40).map(|i| format!("later line {i}\n")).collect();
    append(&input, &more);
    wait_until(Duration::from_secs(60), "appended lines copied", || {
        read(&output) == read(&input)
    });

    // The live tap over gRPC: what the sink's task hands to put, from the
    // moment the call returns (the runner attached it).
    let tapped = tokio::runtime::Runtime::new().unwrap().block_on(async {
        use weir_proto::admin::v1 as admin;
        let mut client =
            admin::admin_client::AdminClient::connect(cluster.coordinator.grpc.clone())
                .await
                .unwrap();
        let mut records = client
            .tap_connector(admin::TapRequest {
                connector: "seed-sink".into(),
                task: Some(0),
                point: admin::TapPoint::BeforePut as i32,
                max_records_per_second: 100,
            })
            .await
            .unwrap()
            .into_inner();
        append(&input, "tapped line 0\ntapped line 1\n");
        let mut tapped = Vec::new();
        while tapped.len() < 2 {
            let record = tokio::time::timeout(Duration::from_secs(60), records.message())
                .await
                .expect("a tapped record within a minute")
                .unwrap()
                .expect("the tap stream stays open");
            tapped.push((record.value_json, record.topic, record.offset.is_some()));
        }
        tapped
    });
    assert_eq!(
        tapped,
        [
            ("\"tapped line 0\"".to_owned(), "seed".to_owned(), true),
            ("\"tapped line 1\"".to_owned(), "seed".to_owned(), true)
        ]
    );
    wait_until(Duration::from_secs(60), "tapped lines copied", || {
        read(&output) == read(&input)
    });

    // The runner's own /metrics counts what its tasks moved.
    wait_until(Duration::from_secs(30), "the runner's metrics", || {
        let text = ureq::get(&metrics_url)
            .call()
            .ok()
            .and_then(|r| r.into_string().ok())
            .unwrap_or_default();
        text.lines().any(|line| {
            line.strip_prefix(
                "kafka_connect_sink_task_sink_record_read_total{connector=\"seed-sink\",task=\"0\"} ",
            )
            .and_then(|n| n.parse::<f64>().ok())
            .is_some_and(|n| n >= 342.0)
        })
    });
    // The coordinator's /metrics: the cluster as the store shows it.
    let cluster_metrics = ureq::get(&format!("{}/metrics", cluster.rest().base))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    for expected in [
        "kafka_connect_connector_status{connector=\"seed-sink\",status=\"running\"} 1",
        "kafka_connect_coordinator_assigned_tasks{runner=\"runner-1\"} 2",
        "weir_coordinator_leader{coordinator=\"coordinator-1\"} 1",
        "weir_coordinator_runners 1",
    ] {
        assert!(
            cluster_metrics.contains(expected),
            "{expected} in\n{cluster_metrics}"
        );
    }
    // KIP-1017: a runner that joined its coordinator is healthy.
    let health_url = metrics_url.replace("/metrics", "/health");
    let health: Value = ureq::get(&health_url).call().unwrap().into_json().unwrap();
    assert_eq!(health["status"], "healthy");
    let (_, status) = cluster.rest().get("/connectors/seed-sink/status");
    assert_eq!(status["tasks"][0]["worker_id"], "runner-1");
    // The connector instance runs on a runner too, as a Worker runs it in Kafka Connect.
    assert_eq!(status["connector"]["worker_id"], "runner-1");
    assert_eq!(cluster.rest().delete("/connectors/seed-source").0, 204);
    assert_eq!(cluster.rest().delete("/connectors/seed-sink").0, 204);
    assert_eq!(cluster.rest().get("/connectors"), (200, json!([])));
}

#[test]
fn seed_pipeline_on_the_embedded_broker() {
    seed_scenario(Broker::dev(), true);
}

#[test]
fn seed_pipeline_on_tansu() {
    seed_scenario(Broker::tansu(), false);
}

/// Every payload of partition 0 of `topic`, read with a plain consumer.
fn topic_payloads(bootstrap: &str, topic: &str) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "weir-test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let (_, high) = consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let mut payloads = Vec::new();
    let mut next = 0;
    while next < high {
        if let Some(message) = consumer.poll(Duration::from_secs(1)) {
            let message = message.unwrap();
            next = message.offset() + 1;
            let value: Value = serde_json::from_slice(message.payload().unwrap()).unwrap();
            payloads.push(value["payload"].as_str().unwrap().to_owned());
        }
    }
    payloads
}

fn line_number(line: &str) -> usize {
    line.trim_start_matches("line-").parse().unwrap()
}

/// Checks `seen` is the lines 0..total in order, except for at most one
/// replay that restarts at or after `floor`; returns where the replay began.
fn single_replay(seen: &[usize], total: usize, floor: usize) -> Option<usize> {
    let mut expected = 0;
    let mut replay = None;
    for &n in seen {
        if n == expected {
            expected += 1;
        } else if n < expected && replay.is_none() {
            assert!(
                n >= floor,
                "replay from line {n} re-sent lines before the committed line {floor}"
            );
            replay = Some(n);
            expected = n + 1;
        } else {
            panic!("line {n} out of order (expected {expected}, replay {replay:?})");
        }
    }
    assert_eq!(expected, total, "lines are missing");
    replay
}

/// Checks `seen` holds every line 0..total, new lines in order with no gap;
/// repeats (re-deliveries after a restart or a rebalance) are allowed.
fn at_least_once_in_order(seen: &[usize], total: usize) {
    let mut next = 0;
    for &n in seen {
        assert!(
            n <= next,
            "line {n} arrived before line {next}: a line was lost"
        );
        if n == next {
            next += 1;
        }
    }
    assert_eq!(next, total, "lines are missing");
}

#[test]
fn kill_9_of_the_runner_mid_stream_loses_nothing() {
    const TOTAL: usize = 40_000;
    let cluster = Cluster::start(Broker::tansu());
    cluster.broker.create_topic("numbers");
    let mut runner = cluster.runner("runner-1", "");
    let input = cluster.path("numbers.txt");
    let output = cluster.path("numbers-out.txt");
    let all: String = (0..TOTAL).map(|i| format!("line-{i:06}\n")).collect();
    std::fs::write(&input, &all).unwrap();
    cluster.create(json!({"name": "src", "config": {
        "connector.class": "FileStreamSource", "file": input.to_str().unwrap(),
        "topic": "numbers", "batch.size": "20"}}));
    cluster.create(json!({"name": "snk", "config": {
        "connector.class": "FileStreamSink", "file": output.to_str().unwrap(), "topics": "numbers"}}));

    wait_until(Duration::from_secs(120), "the stream under way", || {
        read(&output).lines().count() >= 2_000
    });
    runner.kill_hard();
    let copied_at_kill = read(&output).lines().count();
    assert!(
        copied_at_kill < TOTAL,
        "the stream finished before the kill; the test proves nothing"
    );

    // What the source had durably committed when it died.
    let committed = {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let settings = weir_runner::clients::ClientSettings::new(cluster.broker.bootstrap());
        runtime.block_on(async {
            let store = weir_runner::offsets::TopicOffsetStore::open(
                settings,
                "connect-offsets".into(),
                1,
                1,
            )
            .await
            .unwrap();
            use weir_runner::offsets::OffsetStore;
            store.load("src").await.unwrap()
        })
    };
    let position = committed
        .first()
        .and_then(|p| p.offset["position"].as_u64())
        .unwrap_or(0) as usize;
    let committed_lines = position / "line-000000\n".len();

    let restarted = cluster.runner(
        "runner-1",
        &std::env::var("WEIR_TEST_RUNNER_EXTRA").unwrap_or_default(),
    );
    wait_until(
        Duration::from_secs(180),
        "every line copied after the restart",
        || {
            read(&output)
                .lines()
                .filter_map(|l| l.strip_prefix("line-"))
                .filter_map(|n| n.parse::<usize>().ok())
                .collect::<BTreeSet<_>>()
                .len()
                == TOTAL
        },
    );

    let in_topic: Vec<usize> = topic_payloads(cluster.broker.bootstrap(), "numbers")
        .iter()
        .map(|l| line_number(l))
        .collect();
    single_replay(&in_topic, TOTAL, committed_lines);
    let in_file: Vec<usize> = read(&output).lines().map(line_number).collect();
    at_least_once_in_order(&in_file, TOTAL);
    drop(restarted);
}

// On tansu: the embedded broker (librdkafka's mock) never expires a killed
// member of a classic consumer group, so its sink group cannot rebalance.
#[test]
fn tasks_of_a_killed_runner_move_to_the_survivor() {
    let cluster = Cluster::start(Broker::tansu());
    cluster.broker.create_topic("moves");
    let mut first = cluster.runner("runner-a", "");
    let _second = cluster.runner("runner-b", "");
    let input = cluster.path("in.txt");
    let output = cluster.path("out.txt");
    std::fs::write(&input, "one\n").unwrap();
    cluster.create(json!({"name": "src", "config": {"connector.class": "FileStreamSource", "file": input.to_str().unwrap(), "topic": "moves"}}));
    cluster.create(json!({"name": "snk", "config": {"connector.class": "FileStreamSink", "file": output.to_str().unwrap(), "topics": "moves"}}));
    cluster.rest().wait_running("src");
    cluster.rest().wait_running("snk");
    let worker = |name: &str| {
        cluster.rest().get(&format!("/connectors/{name}/status")).1["tasks"][0]["worker_id"].clone()
    };
    assert_ne!(
        worker("src"),
        worker("snk"),
        "two tasks, two runners: one each"
    );
    wait_until(Duration::from_secs(60), "first line copied", || {
        read(&output) == "one\n"
    });

    first.kill_hard();
    wait_until(Duration::from_secs(30), "both tasks on runner-b", || {
        worker("src") == "runner-b"
            && worker("snk") == "runner-b"
            && cluster.rest().all_in_state("src", "RUNNING")
            && cluster.rest().all_in_state("snk", "RUNNING")
    });
    append(&input, "two\n");
    wait_until(
        Duration::from_secs(60),
        "the pipeline flowing again",
        || read(&output).ends_with("two\n"),
    );
    assert!(read(&output).lines().filter(|l| *l == "one").count() >= 1);
    // The leader measured the failover: one, from losing runner-a to moving its task.
    let metrics = ureq::get(&format!("{}/metrics", cluster.rest().base))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        metrics.contains("weir_coordinator_failover_seconds_count 1\n"),
        "{metrics}"
    );
    let last: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("weir_coordinator_last_failover_seconds "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(last > 0.0, "{metrics}");
}

#[test]
fn a_runner_that_has_not_joined_a_coordinator_answers_503_starting() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::dev();
    // Nobody listens at the coordinator address: the runner keeps trying.
    let nobody = format!("http://127.0.0.1:{}", weir_tests::free_port());
    let mut runner = weir_tests::start_runner(
        &nobody,
        "lonely",
        broker.bootstrap(),
        dir.path(),
        "metrics.listener=127.0.0.1:0\n",
    );
    let health_url = metrics_url(&mut runner).replace("/metrics", "/health");
    match ureq::get(&health_url).call() {
        Err(ureq::Error::Status(503, response)) => {
            let body: Value = response.into_json().unwrap();
            assert_eq!(
                body,
                json!({"status": "starting", "message": "Worker is still starting up."})
            );
        }
        other => panic!("expected 503 starting, got {other:?}"),
    }
}

#[test]
fn a_runner_joins_while_a_tap_is_live_and_the_tap_covers_its_tasks() {
    use std::collections::BTreeSet;
    use weir_proto::admin::v1 as admin;
    let cluster = Cluster::start(Broker::dev());
    let _first = cluster.runner("runner-1", "");
    cluster.create(json!({"name": "counted", "config": {
        "connector.class": "VerifiableSource", "topic": "counted", "throughput": "50",
        "tasks.max": "2"}}));
    cluster.rest().wait_running("counted");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut records = runtime.block_on(async {
        let mut client =
            admin::admin_client::AdminClient::connect(cluster.coordinator.grpc.clone())
                .await
                .unwrap();
        client
            .tap_connector(admin::TapRequest {
                connector: "counted".into(),
                task: None,
                point: admin::TapPoint::BeforePut as i32,
                max_records_per_second: 5,
            })
            .await
            .unwrap()
            .into_inner()
    });
    // A runner joining now is welcomed (the live tap follows the Welcome),
    // and the leader gives it one of the two tasks.
    let _second = cluster.runner("runner-2", "");
    wait_until(Duration::from_secs(60), "a task on each runner", || {
        let workers: BTreeSet<String> = cluster
            .rest()
            .task_states("counted")
            .into_iter()
            .filter(|(state, _)| state == "RUNNING")
            .map(|(_, worker)| worker)
            .collect();
        workers.len() == 2
    });
    // The one tap now carries records from both runners.
    let runners_seen = runtime.block_on(async {
        let mut seen = BTreeSet::new();
        while seen.len() < 2 {
            let record = tokio::time::timeout(Duration::from_secs(60), records.message())
                .await
                .expect("a tapped record within a minute")
                .unwrap()
                .expect("the tap stream stays open");
            seen.insert(record.runner);
        }
        seen
    });
    assert_eq!(
        runners_seen,
        BTreeSet::from(["runner-1".to_owned(), "runner-2".to_owned()])
    );
}
