//! The cluster's metrics as a coordinator sees them in the store, in
//! Prometheus text with Strimzi's Kafka Connect names: each connector's
//! status, assignments per runner and the rebalance epoch. Runners export
//! their tasks' own metrics; these are read from the store at each scrape.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::error::Result;
use crate::keys;
use crate::store::Store;

fn family(out: &mut String, name: &str, kind: &str) {
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// What this coordinator measured while it led: how long failovers and
/// placement passes took.
#[derive(Default)]
pub struct LeaderMetrics {
    failovers: AtomicU64,
    failover_millis_sum: AtomicU64,
    last_failover_millis: AtomicU64,
    passes: AtomicU64,
    pass_micros_sum: AtomicU64,
    last_pass_micros: AtomicU64,
}

impl LeaderMetrics {
    /// One departed runner's work moved to others, `took` after the leader
    /// first saw the runner gone.
    pub fn failover(&self, took: Duration) {
        let millis = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        self.failovers.fetch_add(1, Ordering::Relaxed);
        self.failover_millis_sum
            .fetch_add(millis, Ordering::Relaxed);
        self.last_failover_millis.store(millis, Ordering::Relaxed);
    }

    /// One placement pass of the leader, which took `took`.
    pub fn pass(&self, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.passes.fetch_add(1, Ordering::Relaxed);
        self.pass_micros_sum.fetch_add(micros, Ordering::Relaxed);
        self.last_pass_micros.store(micros, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String) {
        let micros = |micros: u64| micros as f64 / 1_000_000.0;
        family(out, "weir_coordinator_leader_pass_seconds", "summary");
        let _ = writeln!(
            out,
            "weir_coordinator_leader_pass_seconds_sum {}",
            micros(self.pass_micros_sum.load(Ordering::Relaxed))
        );
        let _ = writeln!(
            out,
            "weir_coordinator_leader_pass_seconds_count {}",
            self.passes.load(Ordering::Relaxed)
        );
        family(out, "weir_coordinator_last_leader_pass_seconds", "gauge");
        let _ = writeln!(
            out,
            "weir_coordinator_last_leader_pass_seconds {}",
            micros(self.last_pass_micros.load(Ordering::Relaxed))
        );
        let seconds = |millis: u64| millis as f64 / 1000.0;
        family(out, "weir_coordinator_failover_seconds", "summary");
        let _ = writeln!(
            out,
            "weir_coordinator_failover_seconds_sum {}",
            seconds(self.failover_millis_sum.load(Ordering::Relaxed))
        );
        let _ = writeln!(
            out,
            "weir_coordinator_failover_seconds_count {}",
            self.failovers.load(Ordering::Relaxed)
        );
        family(out, "weir_coordinator_last_failover_seconds", "gauge");
        let _ = writeln!(
            out,
            "weir_coordinator_last_failover_seconds {}",
            seconds(self.last_failover_millis.load(Ordering::Relaxed))
        );
    }
}

/// The Prometheus text exposition of the cluster state, and of what this
/// coordinator measured as leader.
pub async fn render(store: &Store, coordinator_id: &str, leader: &LeaderMetrics) -> Result<String> {
    let mut out = String::new();
    leader.render(&mut out);
    let statuses = store.list(keys::STATUS_CONNECTORS).await?;
    family(&mut out, "kafka_connect_connector_status", "gauge");
    for (key, value) in &statuses {
        let Some(name) = key.strip_prefix(keys::STATUS_CONNECTORS).map(keys::decode) else {
            continue;
        };
        let status: Value = serde_json::from_slice(value).unwrap_or(Value::Null);
        let state = status["state"]
            .as_str()
            .unwrap_or("unassigned")
            .to_ascii_lowercase();
        let _ = writeln!(
            out,
            "kafka_connect_connector_status{{connector=\"{}\",status=\"{}\"}} 1",
            escape(&name),
            escape(&state)
        );
    }
    let runners = store.list(keys::RUNNERS).await?;
    family(&mut out, "weir_coordinator_runners", "gauge");
    let _ = writeln!(out, "weir_coordinator_runners {}", runners.len());
    let assignments = store.list(keys::ASSIGNMENTS).await?;
    family(
        &mut out,
        "kafka_connect_coordinator_assigned_connectors",
        "gauge",
    );
    family(
        &mut out,
        "kafka_connect_coordinator_assigned_tasks",
        "gauge",
    );
    for (key, value) in &assignments {
        let Some(runner) = key.strip_prefix(keys::ASSIGNMENTS).map(keys::decode) else {
            continue;
        };
        let record: Value = serde_json::from_slice(value).unwrap_or(Value::Null);
        let count = |field: &str| record[field].as_array().map_or(0, Vec::len);
        let runner = escape(&runner);
        let _ = writeln!(
            out,
            "kafka_connect_coordinator_assigned_connectors{{runner=\"{runner}\"}} {}",
            count("connectors")
        );
        let _ = writeln!(
            out,
            "kafka_connect_coordinator_assigned_tasks{{runner=\"{runner}\"}} {}",
            count("tasks")
        );
    }
    // Every assignment change is one rebalance, numbered by the epoch.
    let epoch: u64 = store
        .get(keys::EPOCH)
        .await?
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0);
    family(&mut out, "kafka_connect_worker_rebalance_epoch", "gauge");
    let _ = writeln!(out, "kafka_connect_worker_rebalance_epoch {epoch}");
    family(
        &mut out,
        "kafka_connect_worker_rebalance_completed_rebalances_total",
        "counter",
    );
    let _ = writeln!(
        out,
        "kafka_connect_worker_rebalance_completed_rebalances_total {epoch}"
    );
    let leader: Value = store
        .get(keys::LEADER)
        .await?
        .and_then(|raw| serde_json::from_slice(&raw).ok())
        .unwrap_or(Value::Null);
    family(&mut out, "weir_coordinator_leader", "gauge");
    let _ = writeln!(
        out,
        "weir_coordinator_leader{{coordinator=\"{}\"}} {}",
        escape(coordinator_id),
        u8::from(leader["coordinator_id"] == coordinator_id)
    );
    Ok(out)
}
