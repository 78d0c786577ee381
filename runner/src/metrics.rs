//! A runner's metrics in Prometheus text format, named as Strimzi's example
//! JMX exporter rules render Kafka Connect's MBeans (`connect-worker-metrics`
//! → `kafka_connect_worker_*`, `source-task-metrics` →
//! `kafka_connect_source_task_*`, and so on), so dashboards built on those
//! names work. Task loops count into a [`TaskMetrics`] with relaxed atomics;
//! nothing is computed until a scrape renders it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::events::{TaskId, TaskState};

/// Sidecar restarts by plugin. Process-wide: sidecars are supervised per
/// process, before any runner exists.
static SIDECAR_RESTARTS: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

/// Counts one restart of `plugin`'s sidecar by its supervisor.
pub fn count_sidecar_restart(plugin: &str) {
    if let Ok(mut restarts) = SIDECAR_RESTARTS.lock() {
        *restarts.entry(plugin.to_owned()).or_default() += 1;
    }
}

/// Credit granted to sidecar source tasks and not yet used, by task: the
/// records each sidecar may still send. Process-wide, as the proxies that
/// grant it are made by plugins, which know no runner.
static SIDECAR_CREDITS: Mutex<BTreeMap<(String, i32), (u64, u32)>> = Mutex::new(BTreeMap::new());
static CREDIT_OWNERS: AtomicU64 = AtomicU64::new(0);

/// The outstanding credit of one sidecar source task, shown while it lives.
pub struct CreditGauge {
    key: (String, i32),
    owner: u64,
}

impl CreditGauge {
    pub fn new(connector: &str, task: i32) -> Self {
        CreditGauge {
            key: (connector.to_owned(), task),
            owner: CREDIT_OWNERS.fetch_add(1, Ordering::Relaxed),
        }
    }

    pub fn set(&self, credit: u32) {
        // A task made outside a runner (the conformance kit) has no name.
        if self.key.0.is_empty() {
            return;
        }
        if let Ok(mut credits) = SIDECAR_CREDITS.lock() {
            credits.insert(self.key.clone(), (self.owner, credit));
        }
    }
}

impl Drop for CreditGauge {
    fn drop(&mut self) {
        // A restarted task's new proxy may already own the entry.
        if let Ok(mut credits) = SIDECAR_CREDITS.lock()
            && credits
                .get(&self.key)
                .is_some_and(|(owner, _)| *owner == self.owner)
        {
            credits.remove(&self.key);
        }
    }
}

/// How long a `*-rate` gauge averages over, as Kafka Connect's default
/// metrics window (2 samples of 30 s) roughly does.
const RATE_WINDOW: Duration = Duration::from_secs(30);

/// A monotonically increasing count with a windowed rate.
#[derive(Default)]
pub struct Counter {
    total: AtomicU64,
    /// (start of the current window, total then); the previous window's rate.
    window: Mutex<Option<(Instant, u64, f64)>>,
}

impl Counter {
    pub fn add(&self, n: u64) {
        self.total.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Per second over the last window (or since the first scrape, when shorter).
    fn rate(&self, now: Instant) -> f64 {
        let total = self.get();
        let Ok(mut window) = self.window.lock() else {
            return 0.0;
        };
        match *window {
            None => {
                *window = Some((now, total, 0.0));
                0.0
            }
            Some((start, at_start, previous)) => {
                let elapsed = now.duration_since(start).as_secs_f64();
                if elapsed <= 0.0 {
                    return previous;
                }
                let rate = total.saturating_sub(at_start) as f64 / elapsed;
                if now.duration_since(start) >= RATE_WINDOW {
                    *window = Some((now, total, rate));
                }
                rate
            }
        }
    }
}

/// Durations of a repeated step (a poll batch, a put batch, a commit).
#[derive(Default)]
pub struct Timer {
    count: AtomicU64,
    total_us: AtomicU64,
    max_us: AtomicU64,
}

impl Timer {
    pub fn record(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.total_us.fetch_add(us, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }

    fn avg_ms(&self) -> f64 {
        let count = self.count.load(Ordering::Relaxed);
        if count == 0 {
            return 0.0;
        }
        self.total_us.load(Ordering::Relaxed) as f64 / count as f64 / 1000.0
    }

    fn max_ms(&self) -> f64 {
        self.max_us.load(Ordering::Relaxed) as f64 / 1000.0
    }
}

/// Which loop a task runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    Source,
    Sink,
}

/// What one task's loop counts.
#[derive(Default)]
pub struct TaskMetrics {
    kind: AtomicU8,
    state: AtomicU8,
    /// Source: records polled. Sink: records read from Kafka.
    pub records_in: Counter,
    /// Source: records written to Kafka (acknowledged). Sink: records put.
    pub records_out: Counter,
    /// Source: `poll` batches. Sink: `put` batches.
    pub batches: Timer,
    pub commits: Timer,
    pub commit_failures: Counter,
    /// Sink: commits skipped because nothing was new.
    pub commit_skips: Counter,
    pub record_errors: Counter,
    pub records_skipped: Counter,
    pub dlq_requests: Counter,
    pub dlq_failures: Counter,
}

impl TaskMetrics {
    /// Metrics that no registry renders (benchmarks, unit tests).
    pub fn detached() -> Arc<TaskMetrics> {
        Arc::new(TaskMetrics::default())
    }

    pub fn set_kind(&self, kind: TaskKind) {
        let code = match kind {
            TaskKind::Source => 1,
            TaskKind::Sink => 2,
        };
        self.kind.store(code, Ordering::Relaxed);
    }

    fn kind(&self) -> Option<TaskKind> {
        match self.kind.load(Ordering::Relaxed) {
            1 => Some(TaskKind::Source),
            2 => Some(TaskKind::Sink),
            _ => None,
        }
    }

    pub fn set_state(&self, state: TaskState) {
        let code = match state {
            TaskState::Running => 1,
            TaskState::Paused => 2,
            TaskState::Failed => 3,
        };
        self.state.store(code, Ordering::Relaxed);
    }

    fn state(&self) -> &'static str {
        match self.state.load(Ordering::Relaxed) {
            1 => "running",
            2 => "paused",
            3 => "failed",
            _ => "unassigned",
        }
    }
}

/// Every metric of one runner.
#[derive(Default)]
pub struct RunnerMetrics {
    tasks: Mutex<BTreeMap<TaskId, Arc<TaskMetrics>>>,
    connectors: AtomicU64,
    pub task_startups: Counter,
    pub task_startup_failures: Counter,
    /// The runner has joined a coordinator once: `/health` says healthy.
    ready: std::sync::atomic::AtomicBool,
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes `# TYPE` once per family, then each sample.
struct Exposition {
    out: String,
    typed: std::collections::BTreeSet<String>,
}

impl Exposition {
    fn sample(&mut self, name: &str, kind: &str, labels: &[(&str, &str)], value: f64) {
        if self.typed.insert(name.to_owned()) {
            let _ = writeln!(self.out, "# TYPE {name} {kind}");
        }
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{key}=\"{}\"", escape(value));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

impl RunnerMetrics {
    /// The metrics of a task starting on this runner.
    pub fn register(&self, key: &TaskId) -> Arc<TaskMetrics> {
        self.task_startups.add(1);
        let metrics = TaskMetrics::detached();
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.insert(key.clone(), metrics.clone());
        }
        metrics
    }

    pub fn unregister(&self, key: &TaskId) {
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.remove(key);
        }
    }

    pub fn mark_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    /// KIP-1017's `/health` answer: 200 once the runner has joined a
    /// coordinator, 503 while it is still starting.
    pub fn health(&self) -> (u16, &'static str) {
        if self.ready.load(Ordering::Relaxed) {
            (
                200,
                r#"{"status":"healthy","message":"Worker has completed startup and is ready to handle requests."}"#,
            )
        } else {
            (
                503,
                r#"{"status":"starting","message":"Worker is still starting up."}"#,
            )
        }
    }

    pub fn set_connector_count(&self, count: usize) {
        self.connectors.store(count as u64, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of everything.
    pub fn render(&self) -> String {
        let now = Instant::now();
        let tasks: Vec<(TaskId, Arc<TaskMetrics>)> = self
            .tasks
            .lock()
            .map(|tasks| tasks.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let mut out = Exposition {
            out: String::new(),
            typed: Default::default(),
        };
        let count = |n: u64| n as f64;
        out.sample(
            "kafka_connect_worker_connector_count",
            "gauge",
            &[],
            count(self.connectors.load(Ordering::Relaxed)),
        );
        out.sample(
            "kafka_connect_worker_task_count",
            "gauge",
            &[],
            tasks.len() as f64,
        );
        out.sample(
            "kafka_connect_worker_task_startup_attempts_total",
            "counter",
            &[],
            count(self.task_startups.get()),
        );
        out.sample(
            "kafka_connect_worker_task_startup_failure_total",
            "counter",
            &[],
            count(self.task_startup_failures.get()),
        );
        if let Ok(restarts) = SIDECAR_RESTARTS.lock() {
            for (plugin, count) in restarts.iter() {
                out.sample(
                    "weir_runner_sidecar_restarts_total",
                    "counter",
                    &[("plugin", plugin.as_str())],
                    *count as f64,
                );
            }
        }
        if let Ok(credits) = SIDECAR_CREDITS.lock() {
            for ((connector, task), (_, credit)) in credits.iter() {
                out.sample(
                    "weir_runner_sidecar_credits_outstanding",
                    "gauge",
                    &[
                        ("connector", connector.as_str()),
                        ("task", &task.to_string()),
                    ],
                    f64::from(*credit),
                );
            }
        }
        for (key, task) in &tasks {
            let task_id = key.task.to_string();
            let labels = [
                ("connector", key.connector.as_str()),
                ("task", task_id.as_str()),
            ];
            out.sample(
                "kafka_connect_connector_task_status",
                "gauge",
                &[
                    ("connector", key.connector.as_str()),
                    ("task", task_id.as_str()),
                    ("status", task.state()),
                ],
                1.0,
            );
            let commits = task.commits.count.load(Ordering::Relaxed);
            let failures = task.commit_failures.get();
            let attempts = commits + failures;
            let percentage = |n: u64| {
                if attempts == 0 {
                    0.0
                } else {
                    n as f64 / attempts as f64
                }
            };
            out.sample(
                "kafka_connect_connector_task_offset_commit_success_percentage",
                "gauge",
                &labels,
                percentage(commits),
            );
            out.sample(
                "kafka_connect_connector_task_offset_commit_failure_percentage",
                "gauge",
                &labels,
                percentage(failures),
            );
            out.sample(
                "kafka_connect_connector_task_offset_commit_avg_time_ms",
                "gauge",
                &labels,
                task.commits.avg_ms(),
            );
            out.sample(
                "kafka_connect_connector_task_offset_commit_max_time_ms",
                "gauge",
                &labels,
                task.commits.max_ms(),
            );
            match task.kind() {
                Some(TaskKind::Source) => {
                    let p = "kafka_connect_source_task";
                    out.sample(
                        &format!("{p}_source_record_poll_total"),
                        "counter",
                        &labels,
                        count(task.records_in.get()),
                    );
                    out.sample(
                        &format!("{p}_source_record_poll_rate"),
                        "gauge",
                        &labels,
                        task.records_in.rate(now),
                    );
                    out.sample(
                        &format!("{p}_source_record_write_total"),
                        "counter",
                        &labels,
                        count(task.records_out.get()),
                    );
                    out.sample(
                        &format!("{p}_source_record_write_rate"),
                        "gauge",
                        &labels,
                        task.records_out.rate(now),
                    );
                    out.sample(
                        &format!("{p}_poll_batch_avg_time_ms"),
                        "gauge",
                        &labels,
                        task.batches.avg_ms(),
                    );
                    out.sample(
                        &format!("{p}_poll_batch_max_time_ms"),
                        "gauge",
                        &labels,
                        task.batches.max_ms(),
                    );
                }
                Some(TaskKind::Sink) => {
                    let p = "kafka_connect_sink_task";
                    out.sample(
                        &format!("{p}_sink_record_read_total"),
                        "counter",
                        &labels,
                        count(task.records_in.get()),
                    );
                    out.sample(
                        &format!("{p}_sink_record_read_rate"),
                        "gauge",
                        &labels,
                        task.records_in.rate(now),
                    );
                    out.sample(
                        &format!("{p}_sink_record_send_total"),
                        "counter",
                        &labels,
                        count(task.records_out.get()),
                    );
                    out.sample(
                        &format!("{p}_sink_record_send_rate"),
                        "gauge",
                        &labels,
                        task.records_out.rate(now),
                    );
                    out.sample(
                        &format!("{p}_put_batch_avg_time_ms"),
                        "gauge",
                        &labels,
                        task.batches.avg_ms(),
                    );
                    out.sample(
                        &format!("{p}_put_batch_max_time_ms"),
                        "gauge",
                        &labels,
                        task.batches.max_ms(),
                    );
                    out.sample(
                        &format!("{p}_offset_commit_completion_total"),
                        "counter",
                        &labels,
                        count(commits),
                    );
                    out.sample(
                        &format!("{p}_offset_commit_skip_total"),
                        "counter",
                        &labels,
                        count(task.commit_skips.get()),
                    );
                }
                None => {}
            }
            let p = "kafka_connect_task_error";
            out.sample(
                &format!("{p}_total_record_errors"),
                "gauge",
                &labels,
                count(task.record_errors.get()),
            );
            out.sample(
                &format!("{p}_total_records_skipped"),
                "gauge",
                &labels,
                count(task.records_skipped.get()),
            );
            out.sample(
                &format!("{p}_deadletterqueue_produce_requests"),
                "gauge",
                &labels,
                count(task.dlq_requests.get()),
            );
            out.sample(
                &format!("{p}_deadletterqueue_produce_failures"),
                "gauge",
                &labels,
                count(task.dlq_failures.get()),
            );
        }
        out.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_counters_render_with_kafka_connect_names_and_labels() {
        let metrics = RunnerMetrics::default();
        let key = TaskId {
            connector: "file\"src".into(),
            task: 0,
        };
        let task = metrics.register(&key);
        task.set_kind(TaskKind::Source);
        task.set_state(TaskState::Running);
        task.records_in.add(5);
        task.records_out.add(4);
        task.batches.record(Duration::from_millis(2));
        let text = metrics.render();
        assert!(
            text.contains("kafka_connect_worker_task_count 1\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE kafka_connect_source_task_source_record_poll_total counter\n")
        );
        assert!(text.contains(
            "kafka_connect_source_task_source_record_poll_total{connector=\"file\\\"src\",task=\"0\"} 5\n"
        ));
        assert!(text.contains(
            "kafka_connect_connector_task_status{connector=\"file\\\"src\",task=\"0\",status=\"running\"} 1\n"
        ));
        assert!(text.contains("kafka_connect_source_task_poll_batch_max_time_ms{connector=\"file\\\"src\",task=\"0\"} 2\n"));
        metrics.unregister(&key);
        assert!(
            metrics
                .render()
                .contains("kafka_connect_worker_task_count 0\n")
        );
    }
}
