//! Sink partitions are read by one task at a time, in distributed mode with
//! two runners on tansu: a `topics.regex` sink with two tasks sees a topic
//! added (sorting before the first, so existing partitions change hands) and
//! then its task count raised to three. VerifiableSink records which task
//! put every (topic, partition, offset) and when; no partition is put by
//! two tasks at once, no offset is put twice, and the committed offsets
//! (`GET /connectors/sink/offsets`, polled throughout) never go backwards.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use weir_tests::{Broker, CoordinatorProcess, Etcd, Rest, read, start_runner, wait_until};

// The poller thread samples the committed offsets at this pace.
const POLL: Duration = Duration::from_millis(300);

/// One record the sink put: which sink task, where from, when (ms).
#[derive(Debug, Clone)]
struct Put {
    sink_task: i64,
    topic: String,
    partition: i64,
    offset: i64,
    time: i64,
}

fn puts(file: &Path) -> Vec<Put> {
    read(file)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|v| {
            Some(Put {
                sink_task: v["sinkTask"].as_i64()?,
                topic: v["topic"].as_str()?.to_owned(),
                partition: v["partition"].as_i64()?,
                offset: v["offset"].as_i64()?,
                time: v["time"].as_i64()?,
            })
        })
        .collect()
}

fn create(rest: &Rest, body: Value) {
    let (status, reply) = rest.post("/connectors", &body.to_string());
    assert_eq!(status, 201, "{reply}");
}

fn source(rest: &Rest, name: &str, topic: &str) {
    create(
        rest,
        json!({"name": name, "config": {
            "connector.class": "VerifiableSource", "topic": topic, "throughput": "100",
            "value.converter": "org.apache.kafka.connect.storage.StringConverter"}}),
    );
}

fn sink_config(file: &Path, tasks: usize) -> Value {
    json!({
        "connector.class": "VerifiableSink", "topics.regex": "claims-.*",
        "tasks.max": tasks.to_string(), "file": file.to_str().unwrap(),
        "value.converter": "org.apache.kafka.connect.storage.StringConverter"})
}

/// The sink's committed offsets per (topic, partition), as the REST API
/// reads them from its consumer group.
fn committed(rest: &Rest) -> BTreeMap<(String, i64), i64> {
    let (status, body) = rest.get("/connectors/sink/offsets");
    if status != 200 {
        eprintln!("GET /connectors/sink/offsets: {status} {body}");
        return BTreeMap::new();
    }
    body["offsets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            Some((
                (
                    entry["partition"]["kafka_topic"].as_str()?.to_owned(),
                    entry["partition"]["kafka_partition"].as_i64()?,
                ),
                entry["offset"]["kafka_offset"].as_i64()?,
            ))
        })
        .collect()
}

#[test]
fn a_partition_is_read_by_one_sink_task_at_a_time_through_a_new_topic_and_a_task_count_change() {
    let broker = Broker::tansu();
    broker.create_topic_with("claims-b", 4);
    let dir = tempfile::tempdir().unwrap();
    let etcd = Etcd::start();
    let coordinator =
        CoordinatorProcess::start(&etcd, "/weir-claims/", dir.path(), "coordinator-1");
    let _r1 = start_runner(&coordinator.grpc, "r1", broker.bootstrap(), dir.path(), "");
    let _r2 = start_runner(&coordinator.grpc, "r2", broker.bootstrap(), dir.path(), "");
    let rest = &coordinator.rest;
    let file = dir.path().join("sink.jsonl");
    source(rest, "src-b", "claims-b");
    create(
        rest,
        json!({"name": "sink", "config": sink_config(&file, 2)}),
    );
    wait_until(
        Duration::from_secs(60),
        "both sink tasks put records",
        || {
            let tasks: BTreeSet<i64> = puts(&file).iter().map(|p| p.sink_task).collect();
            tasks.len() == 2
        },
    );

    // Committed offsets, polled in the background for the whole run.
    let done = Arc::new(AtomicBool::new(false));
    let poller = {
        let done = done.clone();
        let rest = rest.clone();
        std::thread::spawn(move || {
            let mut history: Vec<BTreeMap<(String, i64), i64>> = Vec::new();
            while !done.load(Ordering::SeqCst) {
                history.push(committed(&rest));
                std::thread::sleep(POLL);
            }
            history
        })
    };

    // A topic that sorts first: the existing partitions' shares change.
    broker.create_topic_with("claims-a", 3);
    source(rest, "src-a", "claims-a");
    wait_until(
        Duration::from_secs(60),
        "both tasks read the new topic",
        || {
            let readers: BTreeSet<i64> = puts(&file)
                .iter()
                .filter(|p| p.topic == "claims-a")
                .map(|p| p.sink_task)
                .collect();
            readers.len() == 2
        },
    );
    // Both tasks' metadata has caught up (each looks every 10 s).
    let seen = puts(&file).len();
    wait_until(
        Duration::from_secs(60),
        "records flowing after the move",
        || puts(&file).len() > seen + 2_000,
    );

    // Three tasks now.
    let (status, body) = rest.put(
        "/connectors/sink/config",
        &sink_config(&file, 3).to_string(),
    );
    assert_eq!(status, 200, "{body}");
    wait_until(
        Duration::from_secs(60),
        "the third task puts records",
        || puts(&file).iter().any(|p| p.sink_task == 2),
    );
    let seen = puts(&file).len();
    wait_until(
        Duration::from_secs(60),
        "records flowing with three tasks",
        || puts(&file).len() > seen + 1_000,
    );

    // Stop producing, and let the sink read everything produced.
    for name in ["src-a", "src-b"] {
        assert_eq!(rest.put_empty(&format!("/connectors/{name}/stop")).0, 204);
    }
    // Caught up: everything put is committed, on all seven partitions.
    let mut last = (BTreeMap::new(), BTreeMap::new());
    let caught_up = std::time::Instant::now();
    while caught_up.elapsed() < Duration::from_secs(60) {
        let mut next: BTreeMap<(String, i64), i64> = BTreeMap::new();
        for put in puts(&file) {
            let at = next.entry((put.topic, put.partition)).or_insert(0);
            *at = (*at).max(put.offset + 1);
        }
        let now = committed(rest);
        if next.len() == 7 && now == next {
            break;
        }
        last = (next, now);
        std::thread::sleep(POLL);
    }
    assert!(
        caught_up.elapsed() < Duration::from_secs(60),
        "the sink did not commit all it put within 60 s: put up to {:?}, committed {:?}",
        last.0,
        last.1
    );
    done.store(true, Ordering::SeqCst);
    let history = poller.join().unwrap();

    let all = puts(&file);
    // Every offset of every partition put exactly once, from 0 up.
    let mut by_partition: BTreeMap<(String, i64), Vec<Put>> = BTreeMap::new();
    for put in &all {
        by_partition
            .entry((put.topic.clone(), put.partition))
            .or_default()
            .push(put.clone());
    }
    assert_eq!(
        by_partition.len(),
        7,
        "4 + 3 partitions read: {:?}",
        by_partition.keys()
    );
    for (partition, puts) in &by_partition {
        let mut counts: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for put in puts {
            counts.entry(put.offset).or_default().push(put.sink_task);
        }
        let twice: Vec<(&i64, &Vec<i64>)> =
            counts.iter().filter(|(_, tasks)| tasks.len() > 1).collect();
        assert!(
            twice.is_empty(),
            "{partition:?}: offsets put more than once (offset, by sink tasks): {:?}",
            &twice[..twice.len().min(10)]
        );
        let highest = *counts.keys().next_back().unwrap();
        assert_eq!(
            counts.len() as i64,
            highest + 1,
            "{partition:?}: offsets missing"
        );
        // Runs of one task, in offset order, never overlap in time.
        let mut in_order = puts.clone();
        in_order.sort_by_key(|p| p.offset);
        let mut runs: Vec<(i64, i64, i64)> = Vec::new(); // (task, first, last time)
        for put in in_order {
            match runs.last_mut() {
                Some((task, _, last)) if *task == put.sink_task => *last = (*last).max(put.time),
                _ => runs.push((put.sink_task, put.time, put.time)),
            }
        }
        for pair in runs.windows(2) {
            assert!(
                pair[0].2 <= pair[1].1,
                "{partition:?}: task {} still put until {} after task {} began at {}",
                pair[0].0,
                pair[0].2,
                pair[1].0,
                pair[1].1
            );
        }
        println!(
            "{partition:?}: {} offsets, {} hand-overs",
            counts.len(),
            runs.len() - 1
        );
    }
    // Committed offsets never went backwards.
    let mut highest: BTreeMap<(String, i64), i64> = BTreeMap::new();
    for snapshot in &history {
        for (partition, offset) in snapshot {
            let before = highest.entry(partition.clone()).or_insert(*offset);
            assert!(
                *offset >= *before,
                "{partition:?}: committed offset went back from {before} to {offset}"
            );
            *before = *offset;
        }
    }
    println!(
        "{} committed-offset snapshots, {} records put",
        history.len(),
        all.len()
    );
}
