//! The scale scenario shared by `weir-scale` (which prints figures) and the
//! small e2e form in the test command (which asserts correctness only): etcd,
//! the embedded broker, coordinators and runners as real processes; N
//! `VerifiableSource` connectors of M tasks created through REST; then one
//! runner killed.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{Broker, CoordinatorProcess, Etcd, Process, Rest, start_runner, wait_until};

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub connectors: usize,
    pub tasks: usize,
    pub runners: usize,
    pub coordinators: usize,
}

/// Latencies of one kind of request, sorted.
#[derive(Debug, Default)]
pub struct Latencies(Vec<Duration>);

impl Latencies {
    fn record(&mut self, took: Duration) {
        self.0.push(took);
    }

    /// The `q` quantile (0.5 = median), or zero with no samples.
    pub fn quantile(&self, q: f64) -> Duration {
        let mut sorted = self.0.clone();
        sorted.sort();
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let index = ((sorted.len() as f64 * q).ceil() as usize).saturating_sub(1);
        sorted.get(index).copied().unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Resident memory (MB) and CPU seconds of one process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub rss_mb: f64,
    pub cpu_seconds: f64,
}

fn usage(pid: u32) -> Usage {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is the
    // 12th and stime the 13th of them; the clock ticks 100 times a second.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<f64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    let ticks = fields.get(11).unwrap_or(&0.0) + fields.get(12).unwrap_or(&0.0);
    Usage {
        rss_mb: rss_kb / 1024.0,
        cpu_seconds: ticks / 100.0,
    }
}

/// CPU seconds each process used between two samples.
fn cpu_between(before: &[Usage], after: &[Usage]) -> Vec<f64> {
    after
        .iter()
        .zip(before)
        .map(|(after, before)| after.cpu_seconds - before.cpu_seconds)
        .collect()
}

/// What one run measured and saw.
#[derive(Debug, Default)]
pub struct Report {
    pub shape: Option<Shape>,
    /// From the first create until every task was RUNNING.
    pub all_running_after_first_create: Duration,
    /// From the last create until every task was RUNNING.
    pub all_running_after_last_create: Duration,
    pub creates: Latencies,
    /// `GET /connectors?expand=status` while the tasks were starting.
    pub status_busy: Latencies,
    /// Tasks the killed runner held.
    pub killed_runner_tasks: usize,
    /// From the kill until every task was RUNNING on a live runner.
    pub moved_after_kill: Duration,
    /// Tasks the surviving runners stopped meanwhile (0: nothing else moved).
    pub others_stopped: usize,
    /// Whether every task had a status RUNNING on a live runner at the end.
    pub status_complete: bool,
    /// etcd keys under the cluster's prefix, and etcd's database size.
    pub etcd_keys: u64,
    pub etcd_db_bytes: u64,
    /// etcd writes (revisions) per second over `IDLE_WINDOW` once every
    /// task ran: the steady state's write load.
    pub etcd_writes_per_second: f64,
    /// Per process at the end of the churn (the creates until every task
    /// ran), and the CPU each used over it.
    pub coordinators_churn: Vec<Usage>,
    pub runners_churn: Vec<Usage>,
    pub coordinators_cpu_churn: Vec<f64>,
    pub runners_cpu_churn: Vec<f64>,
    /// Per process once every task ran, and CPU used over `IDLE_WINDOW` then.
    pub coordinators_idle: Vec<Usage>,
    pub runners_idle: Vec<Usage>,
    pub idle_window: Duration,
    pub coordinators_cpu_idle: Vec<f64>,
    pub runners_cpu_idle: Vec<f64>,
}

/// Kafka Connect's defaults for how often offsets are committed and how many
/// partitions the offsets topic has, over the test helper's (500 ms, 1),
/// which suit a test of a few tasks: a thousand tasks committing twice a
/// second would measure the offsets topic, not the control plane.
const RUNNER_DEFAULTS: &str = "offset.flush.interval.ms=60000\noffset.storage.partitions=25\n";

/// How long idle CPU is sampled.
const IDLE_WINDOW: Duration = Duration::from_secs(5);

/// (connector, task) → (state, worker).
type TaskStates = BTreeMap<(String, u64), (String, String)>;

/// (connector, task) → (state, worker) of every task, from one
/// `GET /connectors?expand=status`, and how long it took.
fn statuses(rest: &Rest) -> (TaskStates, Duration) {
    let started = Instant::now();
    let (code, body) = rest.get("/connectors?expand=status");
    let took = started.elapsed();
    let mut tasks = BTreeMap::new();
    if code == 200
        && let Some(connectors) = body.as_object()
    {
        for (name, info) in connectors {
            for task in info["status"]["tasks"].as_array().into_iter().flatten() {
                tasks.insert(
                    (name.clone(), task["id"].as_u64().unwrap_or(u64::MAX)),
                    (
                        task["state"].as_str().unwrap_or_default().to_owned(),
                        task["worker_id"].as_str().unwrap_or_default().to_owned(),
                    ),
                );
            }
        }
    }
    (tasks, took)
}

fn all_running_on(tasks: &TaskStates, expected: usize, live: &[String]) -> bool {
    tasks.len() == expected
        && tasks
            .values()
            .all(|(state, worker)| state == "RUNNING" && live.contains(worker))
}

fn stopped_count(runner: &Process) -> usize {
    runner.log_text().matches("task stopped").count()
}

/// etcd keys under `prefix`, its database size, and its revision (one
/// per write).
fn etcd_figures(etcd: &Etcd, prefix: &str) -> (u64, u64, u64) {
    use base64::Engine;
    let encode = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let etcd_rest = Rest::new(etcd.endpoint.clone());
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    let (_, range) = etcd_rest.post(
        "/v3/kv/range",
        &json!({"key": encode(prefix.as_bytes()), "range_end": encode(&end), "count_only": true})
            .to_string(),
    );
    let (_, status) = etcd_rest.post("/v3/maintenance/status", "{}");
    let number = |v: &Value| {
        v.as_str()
            .and_then(|s| s.parse().ok())
            .or_else(|| v.as_u64())
            .unwrap_or(0)
    };
    (
        number(&range["count"]),
        number(&status["dbSize"]),
        number(&status["header"]["revision"]),
    )
}

/// Runs the scenario and returns what it saw. Panics (with what it waited
/// for) when the cluster does not get there within generous deadlines.
pub fn run(shape: Shape, dir: &Path) -> Report {
    const PREFIX: &str = "/weir-scale/";
    let etcd = Etcd::start();
    let broker = Broker::dev();
    let coordinators: Vec<CoordinatorProcess> = (0..shape.coordinators)
        .map(|i| CoordinatorProcess::start(&etcd, PREFIX, dir, &format!("coordinator-{i}")))
        .collect();
    let urls = coordinators
        .iter()
        .map(|c| c.grpc.clone())
        .collect::<Vec<_>>()
        .join(",");
    let mut runners: Vec<(String, Process)> = (0..shape.runners)
        .map(|i| {
            let id = format!("runner-{i}");
            let process = start_runner(&urls, &id, broker.bootstrap(), dir, RUNNER_DEFAULTS);
            (id, process)
        })
        .collect();
    let rest = &coordinators[0].rest;
    wait_until(Duration::from_secs(60), "every runner joined", || {
        runners
            .iter()
            .all(|(_, r)| r.log_text().contains("joined coordinator"))
    });

    let mut report = Report {
        shape: Some(shape),
        idle_window: IDLE_WINDOW,
        ..Report::default()
    };
    let expected = shape.connectors * shape.tasks;
    let live: Vec<String> = runners.iter().map(|(id, _)| id.clone()).collect();
    let coordinators_at_start: Vec<Usage> = coordinators
        .iter()
        .map(|c| usage(c.process.pid()))
        .collect();
    let runners_at_start: Vec<Usage> = runners.iter().map(|(_, r)| usage(r.pid())).collect();
    let first_create = Instant::now();
    for i in 0..shape.connectors {
        let body = json!({"name": format!("scale-{i:04}"), "config": {
            "connector.class": "VerifiableSource", "topic": format!("scale-{}", i % 20),
            "throughput": "1", "tasks.max": shape.tasks.to_string()}});
        let started = Instant::now();
        let (code, answer) = rest.post("/connectors", &body.to_string());
        report.creates.record(started.elapsed());
        assert_eq!(code, 201, "create scale-{i:04}: {answer}");
        // The status read of a busy cluster, between creates.
        if i % 10 == 9 {
            let (_, took) = statuses(rest);
            report.status_busy.record(took);
        }
    }
    let last_create = Instant::now();
    wait_until(
        Duration::from_secs(600),
        &format!("all {expected} tasks RUNNING"),
        || {
            let (tasks, took) = statuses(rest);
            report.status_busy.record(took);
            all_running_on(&tasks, expected, &live)
        },
    );
    report.all_running_after_first_create = first_create.elapsed();
    report.all_running_after_last_create = last_create.elapsed();

    let before: Vec<Usage> = coordinators
        .iter()
        .map(|c| usage(c.process.pid()))
        .collect();
    let runners_before: Vec<Usage> = runners.iter().map(|(_, r)| usage(r.pid())).collect();
    report.coordinators_cpu_churn = cpu_between(&coordinators_at_start, &before);
    report.runners_cpu_churn = cpu_between(&runners_at_start, &runners_before);
    report.coordinators_churn = before.clone();
    report.runners_churn = runners_before.clone();
    let (_, _, revision_before) = etcd_figures(&etcd, PREFIX);
    std::thread::sleep(IDLE_WINDOW);
    report.coordinators_idle = coordinators
        .iter()
        .map(|c| usage(c.process.pid()))
        .collect();
    report.runners_idle = runners.iter().map(|(_, r)| usage(r.pid())).collect();
    report.coordinators_cpu_idle = cpu_between(&before, &report.coordinators_idle);
    report.runners_cpu_idle = cpu_between(&runners_before, &report.runners_idle);
    let revision_after;
    (report.etcd_keys, report.etcd_db_bytes, revision_after) = etcd_figures(&etcd, PREFIX);
    #[allow(clippy::cast_precision_loss)]
    let writes = revision_after.saturating_sub(revision_before) as f64;
    report.etcd_writes_per_second = writes / IDLE_WINDOW.as_secs_f64();

    // A runner's loss: its tasks move, nothing else stops.
    let (doomed_id, mut doomed) = runners.remove(0);
    let (tasks, _) = statuses(rest);
    report.killed_runner_tasks = tasks.values().filter(|(_, w)| *w == doomed_id).count();
    let stopped_before: Vec<usize> = runners.iter().map(|(_, r)| stopped_count(r)).collect();
    let survivors: Vec<String> = runners.iter().map(|(id, _)| id.clone()).collect();
    let killed = Instant::now();
    doomed.kill_hard();
    wait_until(
        Duration::from_secs(600),
        "every task RUNNING on a survivor",
        || all_running_on(&statuses(rest).0, expected, &survivors),
    );
    report.moved_after_kill = killed.elapsed();
    report.others_stopped = runners
        .iter()
        .zip(stopped_before)
        .map(|((_, r), before)| stopped_count(r) - before)
        .sum();
    report.status_complete = all_running_on(&statuses(rest).0, expected, &survivors);
    report
}

/// A few lines of figures.
pub fn describe(report: &Report) -> String {
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
    let max = |values: &[Usage], f: fn(&Usage) -> f64| values.iter().map(f).fold(0.0_f64, f64::max);
    let total = |values: &[f64]| values.iter().sum::<f64>();
    let shape = report.shape.unwrap_or(Shape {
        connectors: 0,
        tasks: 0,
        runners: 0,
        coordinators: 0,
    });
    format!(
        "{} connectors × {} tasks on {} runners, {} coordinators\n\
         \x20 all RUNNING: {:.1} s after the first create, {:.1} s after the last\n\
         \x20 create: p50 {} p99 {} ({} requests)\n\
         \x20 GET /connectors?expand=status while busy: p50 {} p99 {} ({} requests)\n\
         \x20 etcd: {} keys, database {:.1} MB, {:.0} writes/s in steady state\n\
         \x20 churn (first create to all RUNNING): coordinator RSS max {:.0} MB, runner RSS max {:.0} MB; CPU: coordinators {:.2} s, runners {:.2} s\n\
         \x20 idle: coordinator RSS max {:.0} MB, runner RSS max {:.0} MB; CPU over {:?}: coordinators {:.2} s, runners {:.2} s\n\
         \x20 runner killed with {} tasks: all RUNNING elsewhere after {:.1} s; tasks the others stopped: {}; status complete: {}",
        shape.connectors,
        shape.tasks,
        shape.runners,
        shape.coordinators,
        report.all_running_after_first_create.as_secs_f64(),
        report.all_running_after_last_create.as_secs_f64(),
        ms(report.creates.quantile(0.5)),
        ms(report.creates.quantile(0.99)),
        report.creates.len(),
        ms(report.status_busy.quantile(0.5)),
        ms(report.status_busy.quantile(0.99)),
        report.status_busy.len(),
        report.etcd_keys,
        report.etcd_db_bytes as f64 / 1e6,
        report.etcd_writes_per_second,
        max(&report.coordinators_churn, |u| u.rss_mb),
        max(&report.runners_churn, |u| u.rss_mb),
        total(&report.coordinators_cpu_churn),
        total(&report.runners_cpu_churn),
        max(&report.coordinators_idle, |u| u.rss_mb),
        max(&report.runners_idle, |u| u.rss_mb),
        report.idle_window,
        total(&report.coordinators_cpu_idle),
        total(&report.runners_cpu_idle),
        report.killed_runner_tasks,
        report.moved_after_kill.as_secs_f64(),
        report.others_stopped,
        report.status_complete,
    )
}
