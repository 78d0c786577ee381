//! `weir-failover-bench`: how long a killed runner's tasks take to be
//! RUNNING on another runner, with every component a real process (etcd, the
//! embedded broker, a `weir-coordinator` with default settings, two
//! `weir-runner`s). Prints each of 5 runs and the median, beside Kafka
//! Connect's default (a 10 s session timeout plus 300 s of
//! `scheduled.rebalance.max.delay.ms` before a departed worker's tasks move).
//!
//! Usage: `cargo build --release --bins && target/release/weir-failover-bench`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use serde_json::json;
use weir_tests::{Broker, CoordinatorProcess, Etcd, Rest, start_runner, wait_until};

const RUNS: usize = 5;
const KAFKA_CONNECT_DEFAULT: Duration = Duration::from_secs(310);

fn running_on(rest: &Rest) -> Vec<(String, String)> {
    rest.task_states("failover-source")
}

fn one_run() -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Etcd::start();
    let broker = Broker::dev();
    let coordinator = CoordinatorProcess::start(&etcd, "/weir-bench/", dir.path(), "coordinator");
    let mut doomed = start_runner(
        &coordinator.grpc,
        "doomed",
        broker.bootstrap(),
        dir.path(),
        "",
    );
    let _survivor = start_runner(
        &coordinator.grpc,
        "survivor",
        broker.bootstrap(),
        dir.path(),
        "",
    );
    let (status, body) = coordinator.rest.post(
        "/connectors",
        &json!({"name": "failover-source", "config": {
            "connector.class": "VerifiableSource", "topic": "failover", "tasks.max": "2",
            "value.converter": "org.apache.kafka.connect.storage.StringConverter"}})
        .to_string(),
    );
    assert_eq!(status, 201, "{body}");
    wait_until(Duration::from_secs(60), "a task on each runner", || {
        let tasks = running_on(&coordinator.rest);
        tasks.len() == 2
            && tasks.iter().all(|(state, _)| state == "RUNNING")
            && tasks.iter().any(|(_, w)| w == "doomed")
            && tasks.iter().any(|(_, w)| w == "survivor")
    });
    let killed = Instant::now();
    doomed.kill_hard();
    wait_until(
        Duration::from_secs(120),
        "every task on the survivor",
        || {
            running_on(&coordinator.rest)
                .iter()
                .all(|(state, worker)| state == "RUNNING" && worker == "survivor")
        },
    );
    killed.elapsed()
}

fn main() {
    println!(
        "weir-failover-bench: kill -9 of a runner → its tasks RUNNING elsewhere (default settings)"
    );
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|run| {
            let took = one_run();
            println!("run {}: {:.2} s", run + 1, took.as_secs_f64());
            took
        })
        .collect();
    times.sort();
    let median = times[RUNS / 2];
    println!(
        "median over {RUNS} runs: {:.2} s; Kafka Connect's default: about {} s ({:.0}× longer)",
        median.as_secs_f64(),
        KAFKA_CONNECT_DEFAULT.as_secs(),
        KAFKA_CONNECT_DEFAULT.as_secs_f64() / median.as_secs_f64()
    );
}
