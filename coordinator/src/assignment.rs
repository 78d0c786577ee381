//! Placement as a pure function: given the work that should run (tasks, or
//! connector instances), the live runners and the current placement, compute
//! the next placement.
//!
//! [`assign`] places work that can run anywhere. Guarantees (checked by the
//! property tests below):
//! - every task is placed on exactly one live runner (none when there are no runners);
//! - balanced: runner loads differ by at most one;
//! - sticky: a task stays on its runner unless that runner died or holds
//!   more than its fair share;
//! - stable: applying it to its own output changes nothing.
//!
//! [`assign_eligible`] places work that only some runners can run (those
//! with its plugin): work is only ever placed on an eligible runner, every
//! item with a live eligible runner is placed, and each group of items with
//! the same eligible runners is balanced among them as [`assign`] does.

use std::collections::{BTreeMap, BTreeSet};

/// Runner id → the work placed on it.
pub type Placement<T> = BTreeMap<String, BTreeSet<T>>;

/// Places work that may run on any runner.
pub fn assign<T: Ord + Clone>(
    tasks: &BTreeSet<T>,
    runners: &BTreeSet<String>,
    previous: &Placement<T>,
) -> Placement<T> {
    let mut next: Placement<T> = runners
        .iter()
        .map(|r| (r.clone(), BTreeSet::new()))
        .collect();
    if runners.is_empty() {
        return next;
    }

    // Keep what still exists on runners still alive, each task once.
    let mut placed = BTreeSet::new();
    for (runner, held) in previous {
        let Some(kept) = next.get_mut(runner) else {
            continue;
        };
        for task in held {
            if tasks.contains(task) && placed.insert(task.clone()) {
                kept.insert(task.clone());
            }
        }
    }

    // Fair shares: the most loaded runners get the larger share so fewer tasks move.
    let base = tasks.len() / runners.len();
    let larger = tasks.len() % runners.len();
    let mut by_load: Vec<&String> = runners.iter().collect();
    by_load.sort_by(|a, b| next[*b].len().cmp(&next[*a].len()).then_with(|| a.cmp(b)));
    let quota: BTreeMap<String, usize> = by_load
        .iter()
        .enumerate()
        .map(|(rank, runner)| ((*runner).clone(), base + usize::from(rank < larger)))
        .collect();

    // Revoke the excess over each share, then place the unplaced on the least loaded.
    let mut unplaced: Vec<T> = tasks
        .iter()
        .filter(|t| !placed.contains(*t))
        .cloned()
        .collect();
    for (runner, held) in next.iter_mut() {
        while held.len() > quota[runner] {
            if let Some(last) = held.iter().next_back().cloned() {
                held.remove(&last);
                unplaced.push(last);
            }
        }
    }
    unplaced.sort();
    for task in unplaced {
        let target = next
            .iter()
            .filter(|(runner, held)| held.len() < quota[*runner])
            .min_by(|(ra, a), (rb, b)| a.len().cmp(&b.len()).then_with(|| ra.cmp(rb)))
            .map(|(runner, _)| runner.clone());
        if let Some(runner) = target
            && let Some(held) = next.get_mut(&runner)
        {
            held.insert(task);
        }
    }
    next
}

/// Places work that may run only on the runners listed for it. Every live
/// runner appears in the result, with nothing if nothing fits it.
pub fn assign_eligible<T: Ord + Clone>(
    work: &BTreeMap<T, BTreeSet<String>>,
    runners: &BTreeSet<String>,
    previous: &Placement<T>,
) -> Placement<T> {
    let mut groups: BTreeMap<BTreeSet<String>, BTreeSet<T>> = BTreeMap::new();
    for (item, eligible) in work {
        let live: BTreeSet<String> = eligible.intersection(runners).cloned().collect();
        if !live.is_empty() {
            groups.entry(live).or_default().insert(item.clone());
        }
    }
    let mut next: Placement<T> = runners
        .iter()
        .map(|r| (r.clone(), BTreeSet::new()))
        .collect();
    for (eligible, items) in groups {
        let before: Placement<T> = previous
            .iter()
            .filter(|(runner, _)| eligible.contains(*runner))
            .map(|(runner, held)| {
                let held = held.iter().filter(|t| items.contains(*t)).cloned();
                (runner.clone(), held.collect())
            })
            .collect();
        for (runner, placed) in assign(&items, &eligible, &before) {
            next.entry(runner).or_default().extend(placed);
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TaskId;
    use proptest::prelude::*;

    fn task(connector: &str, task: i32) -> TaskId {
        TaskId {
            connector: connector.into(),
            task,
        }
    }

    fn loads(placement: &Placement<TaskId>) -> Vec<usize> {
        placement.values().map(BTreeSet::len).collect()
    }

    #[test]
    fn spreads_tasks_evenly() {
        let tasks: BTreeSet<_> = (0..5).map(|i| task("c", i)).collect();
        let runners: BTreeSet<_> = ["r1", "r2"].iter().map(|s| s.to_string()).collect();
        let placement = assign(&tasks, &runners, &Placement::new());
        let mut l = loads(&placement);
        l.sort();
        assert_eq!(l, vec![2, 3]);
    }

    #[test]
    fn moves_only_the_dead_runners_tasks() {
        let tasks: BTreeSet<_> = (0..4).map(|i| task("c", i)).collect();
        let three: BTreeSet<_> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let before = assign(&tasks, &three, &Placement::new());
        let two: BTreeSet<_> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let after = assign(&tasks, &two, &before);
        for runner in ["a", "b"] {
            assert!(
                before[runner].is_subset(&after[runner]),
                "{runner} lost a task"
            );
        }
    }

    #[test]
    fn no_runners_places_nothing() {
        let tasks: BTreeSet<_> = [task("c", 0)].into();
        assert!(assign(&tasks, &BTreeSet::new(), &Placement::new()).is_empty());
    }

    fn scenario() -> impl Strategy<Value = (BTreeSet<TaskId>, BTreeSet<String>, Placement<TaskId>)>
    {
        let tasks = proptest::collection::btree_set((0..4usize, 0..6i32), 0..30).prop_map(|set| {
            set.into_iter()
                .map(|(c, t)| task(&format!("conn{c}"), t))
                .collect::<BTreeSet<_>>()
        });
        let runners = proptest::collection::btree_set(0..6usize, 0..6).prop_map(|set| {
            set.into_iter()
                .map(|r| format!("r{r}"))
                .collect::<BTreeSet<_>>()
        });
        let previous =
            proptest::collection::vec((0..8usize, 0..4usize, 0..6i32), 0..40).prop_map(|entries| {
                let mut placement = Placement::<TaskId>::new();
                for (r, c, t) in entries {
                    placement
                        .entry(format!("r{r}"))
                        .or_default()
                        .insert(task(&format!("conn{c}"), t));
                }
                placement
            });
        (tasks, runners, previous)
    }

    proptest! {
        #[test]
        fn every_task_placed_once_on_a_live_runner((tasks, runners, previous) in scenario()) {
            let next = assign(&tasks, &runners, &previous);
            prop_assert!(next.keys().all(|r| runners.contains(r)));
            let all: Vec<&TaskId> = next.values().flatten().collect();
            let unique: BTreeSet<&TaskId> = all.iter().copied().collect();
            prop_assert_eq!(all.len(), unique.len());
            if runners.is_empty() {
                prop_assert!(all.is_empty());
            } else {
                prop_assert_eq!(unique.len(), tasks.len());
                prop_assert!(unique.iter().all(|t| tasks.contains(*t)));
            }
        }

        #[test]
        fn balanced((tasks, runners, previous) in scenario()) {
            let next = assign(&tasks, &runners, &previous);
            let l = loads(&next);
            if let (Some(max), Some(min)) = (l.iter().max(), l.iter().min()) {
                prop_assert!(max - min <= 1, "loads {:?}", l);
            }
        }

        #[test]
        fn sticky_within_fair_share((tasks, runners, previous) in scenario()) {
            let next = assign(&tasks, &runners, &previous);
            if runners.is_empty() { return Ok(()); }
            let floor = tasks.len() / runners.len();
            let mut seen = BTreeSet::new();
            for (runner, held) in &previous {
                if !runners.contains(runner) { continue; }
                let kept: BTreeSet<&TaskId> = held.iter().filter(|t| tasks.contains(*t) && seen.insert((*t).clone())).collect();
                if kept.len() <= floor {
                    for t in kept {
                        prop_assert!(next[runner].contains(t), "{} moved off {}", t, runner);
                    }
                }
            }
        }

        #[test]
        fn stable((tasks, runners, previous) in scenario()) {
            let once = assign(&tasks, &runners, &previous);
            prop_assert_eq!(assign(&tasks, &runners, &once), once);
        }
    }

    /// Work whose eligible runners are a random subset of six (some with none).
    fn eligible_scenario() -> impl Strategy<
        Value = (
            BTreeMap<TaskId, BTreeSet<String>>,
            BTreeSet<String>,
            Placement<TaskId>,
        ),
    > {
        (
            scenario(),
            proptest::collection::vec(proptest::collection::btree_set(0..6usize, 0..4), 4),
        )
            .prop_map(|((tasks, runners, previous), plugin_holders)| {
                let work = tasks
                    .into_iter()
                    .map(|t| {
                        let group = usize::from(t.connector.as_bytes()[4] - b'0');
                        let holders = &plugin_holders[group];
                        let eligible = holders.iter().map(|r| format!("r{r}")).collect();
                        (t, eligible)
                    })
                    .collect();
                (work, runners, previous)
            })
    }

    proptest! {
        #[test]
        fn eligible_work_lands_only_on_eligible_live_runners((work, runners, previous) in eligible_scenario()) {
            let next = assign_eligible(&work, &runners, &previous);
            prop_assert!(next.keys().all(|r| runners.contains(r)));
            let mut placed = BTreeSet::new();
            for (runner, held) in &next {
                for item in held {
                    prop_assert!(work[item].contains(runner), "{} placed on ineligible {}", item, runner);
                    prop_assert!(placed.insert(item.clone()), "{} placed twice", item);
                }
            }
            for (item, eligible) in &work {
                let placeable = eligible.iter().any(|r| runners.contains(r));
                prop_assert_eq!(placed.contains(item), placeable, "{}", item);
            }
        }

        #[test]
        fn eligible_placement_is_stable((work, runners, previous) in eligible_scenario()) {
            let once = assign_eligible(&work, &runners, &previous);
            prop_assert_eq!(assign_eligible(&work, &runners, &once), once);
        }

        #[test]
        fn eligible_everywhere_is_plain_assignment((tasks, runners, previous) in scenario()) {
            let work = tasks.iter().map(|t| (t.clone(), runners.clone())).collect();
            prop_assert_eq!(
                assign_eligible(&work, &runners, &previous),
                assign(&tasks, &runners, &previous)
            );
        }
    }
}
