//! Leadership and assignment. Every coordinator runs [`run`]; the one that
//! holds the `leader` key (under its session lease) places connector
//! instances and tasks on the runners that reported their plugin, with
//! [`crate::assignment::assign_eligible`], writes the placement with a new
//! epoch, and marks connectors and tasks of departed runners UNASSIGNED.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::admin::{read_json, to_json};
use crate::assignment::{Placement, assign_eligible};
use crate::control::SessionTiming;
use crate::error::Result;
use crate::keys;
use crate::model::{
    AppliedRecord, AssignmentRecord, DepartedRecord, InstanceState, LeaderRecord, StatusRecord,
    TargetRecord, TargetState, TaskConfigsRecord, TaskId,
};
use crate::plugins::Catalog;
use crate::store::{Condition, Store, Txn};
use weir_connect::config::ConfigMap;
use weir_connect::registry::Registry;

/// Safety net in case a change notification is missed.
const RECONCILE_INTERVAL: Duration = Duration::from_secs(2);

/// Campaigns for leadership and, while leader, keeps the placement current.
pub async fn run(
    store: Store,
    coordinator_id: String,
    timing: SessionTiming,
    metrics: std::sync::Arc<crate::metrics::LeaderMetrics>,
    shutdown: CancellationToken,
) {
    let me = match to_json(&LeaderRecord {
        coordinator_id: coordinator_id.clone(),
    }) {
        Ok(me) => me,
        Err(error) => {
            tracing::error!(%error, "cannot encode leader record");
            return;
        }
    };
    let mut changes = store.changes();
    let mut leading = false;
    let mut holds = Holds::default();
    loop {
        let mut wake = RECONCILE_INTERVAL;
        let outcome = async {
            if !leading && store.create_ephemeral(keys::LEADER, me.clone()).await? {
                tracing::info!(coordinator = %coordinator_id, "elected leader");
            }
            let holder = store.get(keys::LEADER).await?;
            let now_leading = holder.as_deref() == Some(me.as_slice());
            if leading && !now_leading {
                tracing::warn!(coordinator = %coordinator_id, "lost leadership");
            }
            if !now_leading {
                // A new term starts every hold afresh (waiting longer is safe).
                holds = Holds::default();
            }
            leading = now_leading;
            if leading
                && let Some(next) = reconcile(&store, &me, timing, &mut holds, &metrics).await?
            {
                wake = wake.min(next);
            }
            Ok::<(), crate::error::Error>(())
        }
        .await;
        if let Err(error) = outcome {
            tracing::warn!(%error, "leader reconcile failed");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = changes.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(wake) => {}
        }
    }
}

/// When the leader first saw each departed runner gone (its own clock, so
/// no clocks are compared across processes).
#[derive(Default)]
struct Holds {
    since: BTreeMap<String, tokio::time::Instant>,
}

/// One pass: place every connector instance and task that should run, then
/// fix stale statuses. Returns when the next hold on a departed runner's
/// work runs out, if one does.
///
/// A departed runner's work stays where it is (nobody else gets it) for the
/// restart grace period if it left cleanly, else for the session timeout,
/// which is also how long the runner itself may keep running it; if it comes
/// back meanwhile, nothing moved. A task leaves a live runner in two steps:
/// first out of its assignment, then, once the runner reports (`applied/`)
/// that it no longer runs it, into the new owner's.
async fn reconcile(
    store: &Store,
    me: &[u8],
    timing: SessionTiming,
    holds: &mut Holds,
    metrics: &crate::metrics::LeaderMetrics,
) -> Result<Option<Duration>> {
    // How runners left, read before which runners are live: a runner that
    // rejoins deletes its record, so reading it after the live list could
    // miss a graceful leave of a runner the live list still thinks is gone.
    let graceful_leaves: BTreeSet<String> = store
        .list(keys::DEPARTED)
        .await?
        .into_iter()
        .filter(|(_, value)| {
            serde_json::from_slice::<DepartedRecord>(value).is_ok_and(|d| d.graceful)
        })
        .filter_map(|(key, _)| key.strip_prefix(keys::DEPARTED).map(keys::decode))
        .collect();
    let live: BTreeSet<String> = store
        .list(keys::RUNNERS)
        .await?
        .into_iter()
        .filter_map(|(key, _)| key.strip_prefix(keys::RUNNERS).map(keys::decode))
        .collect();
    // Only what runners reported counts here: a runner runs nothing it did
    // not say it has.
    let catalog = Catalog::read(store, std::sync::Arc::new(Registry::empty())).await?;

    let mut instances: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut tasks: BTreeMap<TaskId, BTreeSet<String>> = BTreeMap::new();
    for (key, value) in store.list(keys::CONNECTORS).await? {
        let Some(name) = keys::connector_name_of_config_key(&key) else {
            continue;
        };
        let target = read_json::<TargetRecord>(store, &keys::connector_target(&name))
            .await?
            .map_or(TargetState::Running, |t| t.state);
        if target == TargetState::Stopped {
            continue;
        }
        let config: ConfigMap = serde_json::from_slice(&value)?;
        let eligible = config
            .get("connector.class")
            .map(|class| catalog.runners_with(class))
            .unwrap_or_default();
        let configs: TaskConfigsRecord = read_json(store, &keys::task_configs(&name))
            .await?
            .unwrap_or_default();
        for task in 0..configs.configs.len() as i32 {
            let id = TaskId {
                connector: name.clone(),
                task,
            };
            tasks.insert(id, eligible.clone());
        }
        instances.insert(name, eligible);
    }

    let mut current_tasks = Placement::new();
    let mut current_instances = Placement::new();
    for (key, value) in store.list(keys::ASSIGNMENTS).await? {
        let Some(runner) = key.strip_prefix(keys::ASSIGNMENTS).map(keys::decode) else {
            continue;
        };
        let record: AssignmentRecord = serde_json::from_slice(&value)?;
        current_tasks.insert(runner.clone(), record.tasks.into_iter().collect());
        current_instances.insert(runner, record.connectors.into_iter().collect());
    }
    let mut applied: BTreeMap<String, BTreeSet<TaskId>> = BTreeMap::new();
    for (key, value) in store.list(keys::APPLIED).await? {
        let Some(runner) = key.strip_prefix(keys::APPLIED).map(keys::decode) else {
            continue;
        };
        let record: AppliedRecord = serde_json::from_slice(&value)?;
        applied.insert(runner, record.tasks.into_iter().collect());
    }

    // Departed runners: hold their work, or let it go once the hold ran out.
    let now = tokio::time::Instant::now();
    holds.since.retain(|runner, _| !live.contains(runner));
    let mut held = BTreeSet::new();
    let mut expired = Vec::new();
    let mut next_wake: Option<Duration> = None;
    let known: BTreeSet<String> = current_tasks
        .keys()
        .chain(applied.keys())
        .filter(|runner| !live.contains(*runner))
        .cloned()
        .collect();
    for runner in known {
        let since = *holds.since.entry(runner.clone()).or_insert(now);
        let graceful = graceful_leaves.contains(&runner);
        let hold = if graceful {
            timing.restart_grace
        } else {
            timing.session_timeout
        };
        let until = since + hold;
        if now < until {
            held.insert(runner);
            let left = until - now;
            next_wake = Some(next_wake.map_or(left, |w| w.min(left)));
        } else {
            tracing::info!(%runner, graceful, "departed runner's hold ran out; moving its work");
            let had_work = [&current_tasks, &applied]
                .iter()
                .any(|held| held.get(&runner).is_some_and(|tasks| !tasks.is_empty()))
                || current_instances
                    .get(&runner)
                    .is_some_and(|names| !names.is_empty());
            expired.push((runner, now - since, had_work));
        }
    }
    for (runner, _, _) in &expired {
        current_tasks.remove(runner);
        current_instances.remove(runner);
        applied.remove(runner);
        holds.since.remove(runner);
    }

    // Held work is pinned; the rest is placed among the live runners.
    let pinned_tasks: BTreeSet<TaskId> = held
        .iter()
        .filter_map(|r| current_tasks.get(r))
        .flatten()
        .cloned()
        .collect();
    let pinned_instances: BTreeSet<String> = held
        .iter()
        .filter_map(|r| current_instances.get(r))
        .flatten()
        .cloned()
        .collect();
    tasks.retain(|task, _| !pinned_tasks.contains(task));
    instances.retain(|name, _| !pinned_instances.contains(name));
    let runners = live;
    let mut next_tasks = assign_eligible(&tasks, &runners, &current_tasks);
    let next_instances = assign_eligible(&instances, &runners, &current_instances);
    // Two-step handover: a task joins a runner's assignment only once no
    // other runner has it assigned or still reports running it.
    for (runner, placed) in next_tasks.iter_mut() {
        placed.retain(|task| {
            let elsewhere = |held: &BTreeMap<String, BTreeSet<TaskId>>| {
                held.iter()
                    .any(|(other, tasks)| other != runner && tasks.contains(task))
            };
            let already = current_tasks
                .get(runner)
                .is_some_and(|tasks| tasks.contains(task));
            already || !(elsewhere(&current_tasks) || elsewhere(&applied))
        });
    }
    let changed: Vec<&String> = runners
        .iter()
        .filter(|runner| {
            current_tasks.get(*runner) != next_tasks.get(*runner)
                || current_instances.get(*runner) != next_instances.get(*runner)
        })
        .collect();
    if !changed.is_empty() || !expired.is_empty() {
        let epoch = read_json::<u64>(store, keys::EPOCH).await?.unwrap_or(0) + 1;
        let mut txn = Txn::new()
            .when(Condition::ValueEquals(keys::LEADER.to_owned(), me.to_vec()))
            .put(keys::EPOCH, to_json(&epoch)?);
        for runner in &changed {
            let record = AssignmentRecord {
                epoch,
                tasks: next_tasks
                    .get(*runner)
                    .map(|held| held.iter().cloned().collect())
                    .unwrap_or_default(),
                connectors: next_instances
                    .get(*runner)
                    .map(|held| held.iter().cloned().collect())
                    .unwrap_or_default(),
            };
            txn = txn.put(keys::assignment(runner), to_json(&record)?);
        }
        for (runner, _, _) in &expired {
            txn = txn
                .delete(keys::assignment(runner))
                .delete(keys::applied(runner))
                .delete(keys::departed(runner));
        }
        if store.txn(txn).await? {
            // A failover: work a departed runner held, moved to live runners.
            for (runner, took, had_work) in &expired {
                if *had_work && !runners.is_empty() {
                    tracing::info!(%runner, seconds = took.as_secs_f64(), "failover: a departed runner's work moved");
                    metrics.failover(*took);
                }
            }
            tracing::info!(
                epoch,
                runners = runners.len(),
                connectors = instances.len(),
                tasks = tasks.len(),
                "assignment updated"
            );
        }
    }

    mark_orphans_unassigned(store, &runners, keys::STATUS_TASKS).await?;
    mark_orphans_unassigned(store, &runners, keys::STATUS_CONNECTORS).await?;
    Ok(next_wake)
}

/// Shows UNASSIGNED for tasks or connectors (`prefix`) whose reported
/// runner is gone.
async fn mark_orphans_unassigned(
    store: &Store,
    runners: &BTreeSet<String>,
    prefix: &str,
) -> Result<()> {
    for (key, value) in store.list(prefix).await? {
        let Ok(status) = serde_json::from_slice::<StatusRecord>(&value) else {
            continue;
        };
        let orphaned = matches!(
            status.state,
            InstanceState::Running | InstanceState::Paused | InstanceState::Failed
        ) && !runners.contains(&status.worker_id);
        if !orphaned {
            continue;
        }
        let unassigned = StatusRecord {
            state: InstanceState::Unassigned,
            trace: String::new(),
            ..status
        };
        let txn = Txn::new()
            .when(Condition::ValueEquals(key.clone(), value))
            .put(key, to_json(&unassigned)?);
        store.txn(txn).await?;
    }
    Ok(())
}
