//! Leadership and assignment. Every coordinator runs [`run`]; the one that
//! holds the `leader` key (under its session lease) places connector
//! instances and tasks on the runners that reported their plugin, with
//! [`crate::assignment::assign_eligible`], writes the placement with a new
//! epoch, and marks connectors and tasks of departed runners UNASSIGNED.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::assignment::{Placement, assign_eligible};
use crate::control::SessionTiming;
use crate::error::Result;
use crate::keys;
use crate::model::{
    AppliedRecord, AssignmentRecord, ClaimsRecord, DepartedRecord, InstanceState, LeaderRecord,
    StatusRecord, TargetRecord, TargetState, TaskId, read_json, stored_task_count, to_json,
};
use crate::plugins::{Catalog, PluginLists};
use crate::store::{Condition, Store, Txn};
use weir_connect::config::ConfigMap;
use weir_connect::registry::Registry;

/// Safety net in case a change notification is missed.
const RECONCILE_INTERVAL: Duration = Duration::from_secs(2);
/// Passes start at least this far apart. A burst of changes (hundreds of
/// creates, thousands of task statuses) is then placed in a few passes,
/// each writing a runner's assignment once, instead of one pass and one
/// rewrite of every changed runner's assignment per change.
const MIN_PASS_INTERVAL: Duration = Duration::from_millis(200);
/// And at least this many times their own length apart, so that the
/// leader's passes take at most a third of a core however large the cluster
/// grows, leaving the rest to the REST API and the runners' sessions.
const PASS_PACING: u32 = 2;

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
    // Everything but what a pass never reads: source offsets and the topics
    // tasks used, which running tasks write all the time.
    let mut changes = store.changes_under(&[
        keys::CONNECTORS,
        keys::TASKS,
        keys::RESTARTS,
        keys::STATUS_CONNECTORS,
        keys::STATUS_TASKS,
        keys::RUNNERS,
        keys::PLUGINS,
        keys::DEPARTED,
        keys::LOGGERS,
        keys::APPLIED,
        keys::ASSIGNMENTS,
        keys::CLAIMS,
        keys::EPOCH,
        keys::LEADER,
    ]);
    let mut leading = false;
    let mut holds = Holds::default();
    let plugin_lists = PluginLists::default();
    loop {
        let started = tokio::time::Instant::now();
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
            if leading {
                let pass =
                    reconcile(&store, &me, timing, &mut holds, &plugin_lists, &metrics).await;
                metrics.pass(started.elapsed());
                if let Some(next) = pass? {
                    wake = wake.min(next);
                }
            }
            Ok::<(), crate::error::Error>(())
        }
        .await;
        if let Err(error) = outcome {
            tracing::warn!(%error, "leader reconcile failed");
        }
        let pause = MIN_PASS_INTERVAL.max(started.elapsed() * PASS_PACING);
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = changes.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(wake) => {}
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep_until(started + pause) => {}
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
    plugin_lists: &PluginLists,
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
    let catalog =
        Catalog::read(store, std::sync::Arc::new(Registry::empty()), plugin_lists).await?;

    // Each prefix in one list (one consistent read each), not reads per
    // connector: at 1,000 connectors those took most of a pass.
    let mut configs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut targets: BTreeMap<String, TargetState> = BTreeMap::new();
    for (key, value) in store.list(keys::CONNECTORS).await? {
        match keys::connector_field_of_key(&key) {
            Some((name, "config")) => {
                configs.insert(name, value);
            }
            Some((name, "target")) => {
                targets.insert(name, serde_json::from_slice::<TargetRecord>(&value)?.state);
            }
            _ => {}
        }
    }
    let mut task_counts: BTreeMap<String, usize> = BTreeMap::new();
    for (key, value) in store.list(keys::TASKS).await? {
        if let Some(name) = keys::connector_name_of_task_configs_key(&key) {
            task_counts.insert(name, stored_task_count(&value)?);
        }
    }

    let mut instances: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut tasks: BTreeMap<TaskId, BTreeSet<String>> = BTreeMap::new();
    for (name, value) in configs {
        let target = targets.get(&name).copied().unwrap_or(TargetState::Running);
        if target == TargetState::Stopped {
            continue;
        }
        let config: ConfigMap = serde_json::from_slice(&value)?;
        let eligible = config
            .get("connector.class")
            .map(|class| catalog.runners_with(class))
            .unwrap_or_default();
        let count = task_counts.get(&name).copied().unwrap_or(0);
        for task in 0..count as i32 {
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
    let mut assigned_epochs: BTreeMap<String, u64> = BTreeMap::new();
    let mut stored_revoking: Placement<TaskId> = Placement::new();
    for (key, value) in store.list(keys::ASSIGNMENTS).await? {
        let Some(runner) = key.strip_prefix(keys::ASSIGNMENTS).map(keys::decode) else {
            continue;
        };
        let record: AssignmentRecord = serde_json::from_slice(&value)?;
        current_tasks.insert(runner.clone(), record.tasks.into_iter().collect());
        current_instances.insert(runner.clone(), record.connectors.into_iter().collect());
        stored_revoking.insert(runner.clone(), record.revoking.into_iter().collect());
        assigned_epochs.insert(runner, record.epoch);
    }
    let mut applied: BTreeMap<String, BTreeSet<TaskId>> = BTreeMap::new();
    let mut applied_epochs: BTreeMap<String, u64> = BTreeMap::new();
    for (key, value) in store.list(keys::APPLIED).await? {
        let Some(runner) = key.strip_prefix(keys::APPLIED).map(keys::decode) else {
            continue;
        };
        let record: AppliedRecord = serde_json::from_slice(&value)?;
        applied.insert(runner.clone(), record.tasks.into_iter().collect());
        applied_epochs.insert(runner, record.epoch);
    }
    // Revokes a runner has confirmed: it applied an epoch at least its
    // assignment's, and what it still runs is in `applied`.
    let mut revoking = unconfirmed_revokes(&stored_revoking, &assigned_epochs, &applied_epochs);

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
        revoking.remove(runner);
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
    // other runner has it assigned, still reports running it, or may still
    // start it from an assignment it has not confirmed applying.
    hand_over_only_when_released(&mut next_tasks, &current_tasks, &applied, &revoking);
    let changed: Vec<&String> = runners
        .iter()
        .filter(|runner| {
            current_tasks.get(*runner) != next_tasks.get(*runner)
                || current_instances.get(*runner) != next_instances.get(*runner)
        })
        .collect();
    // What each changed runner loses joins its unconfirmed revokes.
    for runner in &changed {
        let before = current_tasks.get(*runner).cloned().unwrap_or_default();
        let after = next_tasks.get(*runner).cloned().unwrap_or_default();
        let pending = revoking.entry((*runner).clone()).or_default();
        pending.extend(before.difference(&after).cloned());
        pending.retain(|task| !after.contains(task));
    }
    // Runners whose only change is revokes they confirmed: rewritten with
    // the same epoch, since what they run does not change.
    let confirmed: Vec<&String> = assigned_epochs
        .keys()
        .filter(|runner| !changed.contains(runner))
        .filter(|runner| revoking.get(*runner) != stored_revoking.get(*runner))
        .collect();
    if !confirmed.is_empty() {
        let mut txn = Txn::new().when(Condition::ValueEquals(keys::LEADER.to_owned(), me.to_vec()));
        for runner in &confirmed {
            let epoch = assigned_epochs.get(*runner).copied().unwrap_or_default();
            let record =
                assignment_record(runner, epoch, &current_tasks, &current_instances, &revoking);
            txn = txn.put(keys::assignment(runner), to_json(&record)?);
        }
        store.txn(txn).await?;
    }
    if !changed.is_empty() || !expired.is_empty() {
        let epoch = read_json::<u64>(store, keys::EPOCH).await?.unwrap_or(0) + 1;
        let mut txn = Txn::new()
            .when(Condition::ValueEquals(keys::LEADER.to_owned(), me.to_vec()))
            .put(keys::EPOCH, to_json(&epoch)?);
        for runner in &changed {
            let record = assignment_record(runner, epoch, &next_tasks, &next_instances, &revoking);
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
    let possibly_running: BTreeSet<TaskId> = [&current_tasks, &next_tasks, &applied, &revoking]
        .into_iter()
        .flat_map(|placement| placement.values().flatten().cloned())
        .collect();
    release_claims_of_stopped_tasks(store, me, &possibly_running).await?;
    Ok(next_wake)
}

/// `runner`'s assignment record at `epoch` from the placements.
fn assignment_record(
    runner: &str,
    epoch: u64,
    tasks: &Placement<TaskId>,
    instances: &Placement<String>,
    revoking: &Placement<TaskId>,
) -> AssignmentRecord {
    fn listed<T: Clone>(placement: &Placement<T>, runner: &str) -> Vec<T> {
        placement
            .get(runner)
            .map(|held| held.iter().cloned().collect())
            .unwrap_or_default()
    }
    AssignmentRecord {
        epoch,
        tasks: listed(tasks, runner),
        connectors: listed(instances, runner),
        revoking: listed(revoking, runner),
    }
}

/// Sink partition claims of tasks that run nowhere (stopped, beyond a
/// smaller task count, or on a departed runner whose hold ran out) are
/// released, so other tasks may read those partitions; a deleted
/// connector's claims go too.
async fn release_claims_of_stopped_tasks(
    store: &Store,
    me: &[u8],
    possibly_running: &BTreeSet<TaskId>,
) -> Result<()> {
    for (key, raw) in store.list(keys::CLAIMS).await? {
        let Some(connector) = key.strip_prefix(keys::CLAIMS).map(keys::decode) else {
            continue;
        };
        let mut claims: ClaimsRecord = serde_json::from_slice(&raw)?;
        let before = claims.tasks.len();
        claims.tasks.retain(|task, _| {
            possibly_running.contains(&TaskId {
                connector: connector.clone(),
                task: *task,
            })
        });
        let exists = store
            .get(&keys::connector_config(&connector))
            .await?
            .is_some();
        if exists && claims.tasks.len() == before {
            continue;
        }
        let txn = Txn::new()
            .when(Condition::ValueEquals(keys::LEADER.to_owned(), me.to_vec()))
            .when(Condition::ValueEquals(key.clone(), raw));
        let txn = if !exists || claims.tasks.is_empty() {
            txn.delete(key)
        } else {
            txn.put(key, to_json(&claims)?)
        };
        store.txn(txn).await?;
    }
    Ok(())
}

/// The tasks each runner was told to stop and has not confirmed stopping:
/// a runner's stored revokes are confirmed once it applied an epoch at
/// least that of its assignment record (what it still runs is then in its
/// `applied/` record).
fn unconfirmed_revokes(
    stored: &Placement<TaskId>,
    assigned_epochs: &BTreeMap<String, u64>,
    applied_epochs: &BTreeMap<String, u64>,
) -> Placement<TaskId> {
    stored
        .iter()
        .map(|(runner, pending)| {
            let assigned = assigned_epochs.get(runner).copied().unwrap_or(0);
            let applied = applied_epochs.get(runner).copied().unwrap_or(0);
            let pending = if applied >= assigned {
                BTreeSet::new()
            } else {
                pending.clone()
            };
            (runner.clone(), pending)
        })
        .collect()
}

/// Two-step handover: keeps a task out of a runner's next assignment while
/// another runner has it assigned, reports running it (`applied`), or may
/// still start it from an assignment it has not confirmed (`revoking`).
fn hand_over_only_when_released(
    next: &mut Placement<TaskId>,
    current: &Placement<TaskId>,
    applied: &Placement<TaskId>,
    revoking: &Placement<TaskId>,
) {
    for (runner, placed) in next.iter_mut() {
        placed.retain(|task| {
            let elsewhere = |held: &Placement<TaskId>| {
                held.iter()
                    .any(|(other, tasks)| other != runner && tasks.contains(task))
            };
            let already = current
                .get(runner)
                .is_some_and(|tasks| tasks.contains(task));
            already || !(elsewhere(current) || elsewhere(applied) || elsewhere(revoking))
        });
    }
}

/// Shows UNASSIGNED for tasks or connectors (`prefix`) whose reported
/// runner is gone (`runners` is the live list this pass read; each write
/// checks again that the runner is still absent).
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
        let runner_key = keys::runner(&status.worker_id);
        let unassigned = StatusRecord {
            state: InstanceState::Unassigned,
            trace: String::new(),
            ..status
        };
        // The runner may have rejoined and re-sent this very status since
        // the live list was read: only while it is still gone.
        let txn = Txn::new()
            .when(Condition::ValueEquals(key.clone(), value))
            .when(Condition::Absent(runner_key))
            .put(key, to_json(&unassigned)?);
        store.txn(txn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{RunnerRecord, TaskConfigsRecord};
    use crate::store::LocalStore;

    const ME: &[u8] = br#"{"coordinator_id":"c1"}"#;

    fn task(connector: &str, task: i32) -> TaskId {
        TaskId {
            connector: connector.to_owned(),
            task,
        }
    }

    fn timing() -> SessionTiming {
        SessionTiming {
            session_timeout: Duration::from_secs(6),
            restart_grace: Duration::from_secs(10),
        }
    }

    /// A store with this coordinator as leader, live runners with the
    /// built-in plugins, and connector `c` with `tasks` task configs.
    async fn cluster(runners: &[&str], tasks: usize) -> Store {
        let store: Store = Arc::new(LocalStore::in_memory());
        store.put(keys::LEADER, ME.to_vec()).await.unwrap();
        let plugins = crate::plugins::encode(
            Registry::builtin()
                .connectors()
                .iter()
                .map(|plugin| weir_connect::wire::plugin_to_wire(plugin.as_ref()))
                .collect(),
        );
        for runner in runners {
            register(&store, runner).await;
            store
                .put(&keys::plugins(runner), plugins.clone())
                .await
                .unwrap();
        }
        let config: ConfigMap = [("connector.class", "VerifiableSource"), ("tasks.max", "2")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        store
            .put(&keys::connector_config("c"), to_json(&config).unwrap())
            .await
            .unwrap();
        let configs = TaskConfigsRecord {
            generation: 1,
            configs: vec![config; tasks],
        };
        store
            .put(&keys::task_configs("c"), to_json(&configs).unwrap())
            .await
            .unwrap();
        store
    }

    async fn register(store: &Store, runner: &str) {
        let record = RunnerRecord {
            runner_id: runner.to_owned(),
            coordinator_id: "c1".to_owned(),
            session: "s".to_owned(),
            kafka_cluster_id: String::new(),
            instance: "i".to_owned(),
        };
        store
            .put(&keys::runner(runner), to_json(&record).unwrap())
            .await
            .unwrap();
    }

    async fn assignment(store: &Store, runner: &str) -> AssignmentRecord {
        read_json(store, &keys::assignment(runner))
            .await
            .unwrap()
            .unwrap_or_default()
    }

    async fn pass(store: &Store) {
        let metrics = crate::metrics::LeaderMetrics::default();
        reconcile(
            store,
            ME,
            timing(),
            &mut Holds::default(),
            &PluginLists::default(),
            &metrics,
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn a_task_is_not_handed_over_before_its_old_owner_applied_the_epoch_that_gave_it() {
        let store = cluster(&["r1", "r2"], 2).await;
        // r1 was given both tasks at epoch 5, but has only applied epoch 4
        // (nothing): the message that starts them may still be on its way.
        let given = AssignmentRecord {
            epoch: 5,
            tasks: vec![task("c", 0), task("c", 1)],
            connectors: vec!["c".to_owned()],
            revoking: Vec::new(),
        };
        store
            .put(keys::EPOCH, to_json(&5u64).unwrap())
            .await
            .unwrap();
        store
            .put(&keys::assignment("r1"), to_json(&given).unwrap())
            .await
            .unwrap();
        let applied = AppliedRecord {
            epoch: 4,
            tasks: Vec::new(),
        };
        store
            .put(&keys::applied("r1"), to_json(&applied).unwrap())
            .await
            .unwrap();
        pass(&store).await;
        pass(&store).await;
        let r1 = assignment(&store, "r1").await;
        assert_eq!(
            r1.tasks.len(),
            1,
            "one task revoked from r1 to balance: {r1:?}"
        );
        assert!(
            assignment(&store, "r2").await.tasks.is_empty(),
            "r2 must not get a task r1 may still start"
        );

        // r1 applies the revoke: now the task moves.
        let applied = AppliedRecord {
            epoch: r1.epoch,
            tasks: r1.tasks.clone(),
        };
        store
            .put(&keys::applied("r1"), to_json(&applied).unwrap())
            .await
            .unwrap();
        pass(&store).await;
        pass(&store).await;
        let r2 = assignment(&store, "r2").await;
        assert_eq!(r2.tasks.len(), 1, "handed over once confirmed: {r2:?}");
        assert!(assignment(&store, "r1").await.revoking.is_empty());
        assert!(!r1.tasks.iter().any(|t| r2.tasks.contains(t)));
    }

    #[tokio::test]
    async fn a_departed_runners_task_stays_held() {
        let store = cluster(&["r1", "r2"], 2).await;
        pass(&store).await;
        let (r1, r2) = (
            assignment(&store, "r1").await,
            assignment(&store, "r2").await,
        );
        assert_eq!((r1.tasks.len(), r2.tasks.len()), (1, 1));
        // r2 leaves for good; its task goes to r1 only after the hold.
        store.delete(&keys::runner("r2")).await.unwrap();
        pass(&store).await;
        assert_eq!(assignment(&store, "r1").await.tasks.len(), 1, "held");
    }

    #[tokio::test]
    async fn unassigned_never_overwrites_the_status_of_a_runner_that_rejoined() {
        let store = cluster(&["r1"], 1).await;
        let status = to_json(&StatusRecord {
            state: InstanceState::Running,
            worker_id: "r1".to_owned(),
            trace: String::new(),
            epoch: 3,
        })
        .unwrap();
        let key = keys::task_status("c", 0);
        store.put(&key, status.clone()).await.unwrap();
        // The pass read the live runners before r1 rejoined and re-sent
        // this very status.
        let stale_live = BTreeSet::new();
        mark_orphans_unassigned(&store, &stale_live, keys::STATUS_TASKS)
            .await
            .unwrap();
        assert_eq!(store.get(&key).await.unwrap(), Some(status.clone()));
        // Once r1 is really gone, the status is UNASSIGNED.
        store.delete(&keys::runner("r1")).await.unwrap();
        mark_orphans_unassigned(&store, &stale_live, keys::STATUS_TASKS)
            .await
            .unwrap();
        let now: StatusRecord = read_json(&store, &key).await.unwrap().unwrap();
        assert_eq!(now.state, InstanceState::Unassigned);
    }

    #[tokio::test]
    async fn claims_of_tasks_that_run_nowhere_are_released_and_a_deleted_connectors_go() {
        let store = cluster(&["r1"], 2).await;
        let partitions = |list: &[i32]| -> BTreeSet<(String, i32)> {
            list.iter().map(|p| ("t".to_owned(), *p)).collect()
        };
        // Tasks 0 and 1 hold partitions; the task count has gone down to one.
        let claims = ClaimsRecord {
            tasks: [(0, partitions(&[0, 1])), (1, partitions(&[2]))].into(),
        };
        store
            .put(&keys::claims("c"), to_json(&claims).unwrap())
            .await
            .unwrap();
        let running: BTreeSet<TaskId> = [task("c", 0)].into();
        release_claims_of_stopped_tasks(&store, ME, &running)
            .await
            .unwrap();
        let left: ClaimsRecord = read_json(&store, &keys::claims("c"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(left.tasks, [(0, partitions(&[0, 1]))].into());
        // A task still stopping somewhere keeps its claims until it stopped.
        let stopping: BTreeSet<TaskId> = [task("c", 0), task("c", 1)].into();
        store
            .put(&keys::claims("c"), to_json(&claims).unwrap())
            .await
            .unwrap();
        release_claims_of_stopped_tasks(&store, ME, &stopping)
            .await
            .unwrap();
        let kept: ClaimsRecord = read_json(&store, &keys::claims("c"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(kept, claims);
        // The connector deleted: its claims go.
        store.delete(&keys::connector_config("c")).await.unwrap();
        release_claims_of_stopped_tasks(&store, ME, &stopping)
            .await
            .unwrap();
        assert!(store.get(&keys::claims("c")).await.unwrap().is_none());
    }
}
