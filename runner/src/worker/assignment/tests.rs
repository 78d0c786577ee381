//! The assignment half without a coordinator: a launcher that records what
//! it starts and runs stand-in tasks and instances that behave as their
//! config says (`behaviour`: run until stopped, fail at once, commit while
//! stopping, or ignore the stop). Tests that wait out time run on tokio's
//! paused clock.

use std::sync::Mutex;

use weir_connect::api::SourcePosition;

use super::*;

/// What a stand-in task or instance does, from its config's `behaviour`.
const BEHAVIOUR: &str = "behaviour";

/// One start the launcher was asked for.
struct Started {
    /// `c-0` for a task, `c` for a connector instance.
    name: String,
    /// The task's epoch, or the instance's generation.
    epoch: u64,
    task_count: i32,
    target: watch::Receiver<TargetState>,
    cancel: CancellationToken,
}

#[derive(Clone, Default)]
struct Recording {
    started: Arc<Mutex<Vec<Started>>>,
    /// Names of stand-ins whose run has ended (stopped, failed or aborted).
    ended: Arc<Mutex<Vec<String>>>,
}

impl Recording {
    fn starts_of(&self, name: &str) -> usize {
        self.started
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.name == name)
            .count()
    }

    /// Of the latest start of `name`: (epoch, task count, cancelled, target).
    fn latest(&self, name: &str) -> (u64, i32, bool, TargetState) {
        let started = self.started.lock().unwrap();
        let start = started
            .iter()
            .rev()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name} was never started"));
        (
            start.epoch,
            start.task_count,
            start.cancel.is_cancelled(),
            *start.target.borrow(),
        )
    }

    fn has_ended(&self, name: &str) -> bool {
        self.ended.lock().unwrap().iter().any(|n| n == name)
    }
}

/// Records that a stand-in's run ended when its future is done or dropped
/// (an aborted task's future is dropped).
struct EndGuard(Arc<Mutex<Vec<String>>>, String);

impl Drop for EndGuard {
    fn drop(&mut self) {
        self.0.lock().unwrap().push(self.1.clone());
    }
}

struct FakeLauncher(Recording);

impl Launch for FakeLauncher {
    fn task(&self, start: TaskStart) -> Result<JoinHandle<()>, String> {
        let behaviour = start.config.get(BEHAVIOUR).cloned().unwrap_or_default();
        if behaviour == "unstartable" {
            return Err(format!("no plugin for task {}", start.key));
        }
        let name = start.key.to_string();
        self.0.started.lock().unwrap().push(Started {
            name: name.clone(),
            epoch: start.epoch,
            task_count: start.task_count,
            target: start.target.clone(),
            cancel: start.cancel.clone(),
        });
        let guard = EndGuard(self.0.ended.clone(), name);
        Ok(tokio::spawn(async move {
            let _guard = guard;
            let _target = start.target;
            match behaviour.as_str() {
                "fail" => {
                    let _ = start.events.send(TaskEvent::Status {
                        key: start.key,
                        state: TaskState::Failed,
                        trace: "boom".into(),
                        epoch: start.epoch,
                    });
                }
                "commit-on-stop" => {
                    start.cancel.cancelled().await;
                    let _ = start.events.send(TaskEvent::OffsetsCommitted {
                        connector: start.key.connector.clone(),
                        positions: vec![SourcePosition {
                            partition: serde_json::Map::from_iter([(
                                "file".to_owned(),
                                "a".into(),
                            )]),
                            offset: serde_json::Map::from_iter([("position".to_owned(), 7.into())]),
                        }],
                    });
                    // The stop's last phase (the connector's `stop`); the
                    // tests that use it run on a paused clock.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                "ignore-stop" => std::future::pending::<()>().await,
                _ => start.cancel.cancelled().await,
            }
        }))
    }

    fn connector(&self, start: ConnectorStart) -> Result<JoinHandle<()>, String> {
        if start.config.get(BEHAVIOUR).map(String::as_str) == Some("unstartable") {
            return Err(format!("no plugin for connector {}", start.name));
        }
        self.0.started.lock().unwrap().push(Started {
            name: start.name.clone(),
            epoch: start.generation,
            task_count: 0,
            target: start.target.clone(),
            cancel: start.cancel.clone(),
        });
        let guard = EndGuard(self.0.ended.clone(), start.name);
        Ok(tokio::spawn(async move {
            let _guard = guard;
            let _target = start.target;
            start.cancel.cancelled().await;
        }))
    }
}

/// Grace per stop phase in these tests.
const GRACE: Duration = Duration::from_secs(5);

/// A hosted set as a runner has it, with the channels around it.
struct Harness {
    hosted: Hosted<FakeLauncher>,
    recording: Recording,
    metrics: Arc<RunnerMetrics>,
    lease: Lease,
    events: mpsc::UnboundedSender<TaskEvent>,
    events_rx: mpsc::UnboundedReceiver<TaskEvent>,
    outbound: mpsc::Sender<pb::RunnerMessage>,
    outbound_rx: mpsc::Receiver<pb::RunnerMessage>,
}

impl Harness {
    fn new() -> Self {
        Harness::with_lease(Lease::unbounded())
    }

    fn with_lease(lease: Lease) -> Self {
        let recording = Recording::default();
        let metrics: Arc<RunnerMetrics> = Arc::default();
        let hosted = Hosted::new(
            FakeLauncher(recording.clone()),
            "r1".into(),
            lease.clone(),
            metrics.clone(),
            GRACE,
        );
        let (events, events_rx) = mpsc::unbounded_channel();
        let (outbound, outbound_rx) = mpsc::channel(64);
        Harness {
            hosted,
            recording,
            metrics,
            lease,
            events,
            events_rx,
            outbound,
            outbound_rx,
        }
    }

    async fn apply(&mut self, assignment: pb::Assignment) -> Option<pb::Applied> {
        self.hosted
            .apply(
                assignment,
                &self.events,
                &mut self.events_rx,
                &self.outbound,
            )
            .await
    }

    /// The next task or instance report, once one is sent.
    async fn event(&mut self) -> TaskEvent {
        tokio::time::timeout(Duration::from_secs(10), self.events_rx.recv())
            .await
            .expect("a report within 10 s")
            .expect("the channel stays open")
    }

    /// The next task or instance report waiting, if any.
    fn next_event(&mut self) -> Option<TaskEvent> {
        self.events_rx.try_recv().ok()
    }
}

fn config(entries: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn task(connector: &str, task: i32, entries: &[(&str, &str)]) -> pb::TaskAssignment {
    pb::TaskAssignment {
        connector: connector.into(),
        task,
        config: config(entries),
        target_state: pb::TargetState::Running as i32,
        restart_generation: 0,
        task_count: 2,
    }
}

fn connector(name: &str, generation: u64, entries: &[(&str, &str)]) -> pb::ConnectorAssignment {
    pb::ConnectorAssignment {
        name: name.into(),
        config: config(entries),
        target_state: pb::TargetState::Running as i32,
        generation,
    }
}

fn assignment(
    epoch: u64,
    connectors: Vec<pb::ConnectorAssignment>,
    tasks: Vec<pb::TaskAssignment>,
) -> pb::Assignment {
    pb::Assignment {
        epoch,
        tasks,
        connectors,
    }
}

fn applied_tasks(applied: &pb::Applied) -> Vec<String> {
    applied
        .tasks
        .iter()
        .map(|t| format!("{}-{}", t.connector, t.task))
        .collect()
}

fn key(connector: &str, task: i32) -> TaskId {
    TaskId {
        connector: connector.into(),
        task,
    }
}

fn status(connector: &str, task: i32, state: TaskState) -> TaskEvent {
    TaskEvent::Status {
        key: key(connector, task),
        state,
        trace: String::new(),
        epoch: 1,
    }
}

#[tokio::test]
async fn a_first_assignment_starts_its_connectors_and_tasks_and_reports_them_applied() {
    let mut h = Harness::new();
    let applied = h
        .apply(assignment(
            3,
            vec![connector("c", 1, &[])],
            vec![task("c", 0, &[]), task("c", 1, &[])],
        ))
        .await
        .expect("a first assignment is applied");
    assert_eq!(applied.epoch, 3);
    assert_eq!(applied_tasks(&applied), ["c-0", "c-1"]);
    for name in ["c-0", "c-1"] {
        let (epoch, task_count, cancelled, target) = h.recording.latest(name);
        assert_eq!(
            (epoch, task_count, cancelled, target),
            (3, 2, false, TargetState::Running),
            "{name}"
        );
    }
    assert_eq!(h.recording.starts_of("c"), 1);
    assert_eq!(h.recording.latest("c").0, 1, "the instance's generation");
    assert_eq!(h.metrics.task_startups.get(), 2);
}

#[tokio::test]
async fn a_new_assignment_stops_removed_tasks_starts_added_ones_and_keeps_the_rest_running() {
    let mut h = Harness::new();
    h.apply(assignment(
        1,
        vec![connector("c", 1, &[])],
        vec![task("c", 0, &[]), task("c", 1, &[])],
    ))
    .await;
    let applied = h
        .apply(assignment(
            2,
            vec![connector("c", 1, &[])],
            vec![task("c", 0, &[]), task("d", 0, &[])],
        ))
        .await
        .expect("applied");
    assert_eq!(applied_tasks(&applied), ["c-0", "d-0"]);
    // c-1 was removed: cancelled, and its loop has ended before apply returned.
    assert!(h.recording.latest("c-1").2, "c-1 cancelled");
    assert!(h.recording.has_ended("c-1"), "c-1 waited for");
    // c-0 runs on from epoch 1: not stopped, not started again.
    assert_eq!(h.recording.starts_of("c-0"), 1);
    assert_eq!(
        h.recording.latest("c-0"),
        (1, 2, false, TargetState::Running)
    );
    // d-0 was added under the new epoch.
    assert_eq!(h.recording.latest("d-0").0, 2);
    // The unchanged connector instance is not started again.
    assert_eq!(h.recording.starts_of("c"), 1);
    assert!(!h.recording.latest("c").2, "instance c keeps running");
}

#[tokio::test]
async fn a_changed_task_config_restarts_that_task_only() {
    let mut h = Harness::new();
    h.apply(assignment(
        1,
        vec![],
        vec![
            task("c", 0, &[("file", "a")]),
            task("c", 1, &[("file", "b")]),
        ],
    ))
    .await;
    h.apply(assignment(
        2,
        vec![],
        vec![
            task("c", 0, &[("file", "a")]),
            task("c", 1, &[("file", "z")]),
        ],
    ))
    .await
    .expect("applied");
    assert_eq!(h.recording.starts_of("c-0"), 1, "c-0 unchanged");
    assert!(!h.recording.latest("c-0").2);
    assert_eq!(h.recording.starts_of("c-1"), 2, "c-1 started again");
    assert!(h.recording.has_ended("c-1"), "the old c-1 stopped first");
    assert_eq!(
        h.recording.latest("c-1"),
        (2, 2, false, TargetState::Running),
        "the new c-1 runs under the new epoch"
    );
}

#[tokio::test]
async fn a_restart_or_a_new_task_count_starts_the_task_again() {
    let mut h = Harness::new();
    h.apply(assignment(
        1,
        vec![],
        vec![task("c", 0, &[]), task("c", 1, &[])],
    ))
    .await;
    let mut restarted = task("c", 0, &[]);
    restarted.restart_generation = 1;
    h.apply(assignment(
        2,
        vec![],
        vec![restarted.clone(), task("c", 1, &[])],
    ))
    .await;
    assert_eq!(h.recording.starts_of("c-0"), 2, "a restart request");
    assert_eq!(h.recording.starts_of("c-1"), 1);

    let mut regrouped = task("c", 1, &[]);
    regrouped.task_count = 3;
    restarted.task_count = 3;
    h.apply(assignment(3, vec![], vec![restarted, regrouped]))
        .await;
    assert_eq!(h.recording.starts_of("c-0"), 3, "a new task count");
    assert_eq!(h.recording.starts_of("c-1"), 2, "a new task count");
    assert_eq!(h.recording.latest("c-1").1, 3);
}

#[tokio::test]
async fn a_task_count_of_zero_reaches_the_task_as_one() {
    let mut h = Harness::new();
    let mut unknown = task("c", 0, &[]);
    unknown.task_count = 0;
    h.apply(assignment(1, vec![], vec![unknown])).await;
    assert_eq!(h.recording.latest("c-0").1, 1);
}

#[tokio::test]
async fn an_assignment_older_than_the_last_is_ignored_and_an_equal_epoch_is_applied() {
    let mut h = Harness::new();
    h.apply(assignment(5, vec![], vec![task("c", 0, &[])]))
        .await;
    let stale = h
        .apply(assignment(
            4,
            vec![connector("d", 1, &[])],
            vec![task("d", 0, &[])],
        ))
        .await;
    assert!(stale.is_none(), "epoch 4 after 5 is stale");
    assert_eq!(h.recording.starts_of("d-0"), 0);
    assert_eq!(h.recording.starts_of("d"), 0);
    assert!(!h.recording.latest("c-0").2, "c-0 is not stopped by it");

    let again = h
        .apply(assignment(
            5,
            vec![],
            vec![task("c", 0, &[]), task("d", 0, &[])],
        ))
        .await
        .expect("the same epoch again is applied");
    assert_eq!(applied_tasks(&again), ["c-0", "d-0"]);
    assert_eq!(h.recording.starts_of("c-0"), 1);
}

#[tokio::test]
async fn a_new_target_state_reaches_running_tasks_and_instances_without_a_restart() {
    let mut h = Harness::new();
    h.apply(assignment(
        1,
        vec![connector("c", 1, &[])],
        vec![task("c", 0, &[])],
    ))
    .await;
    let mut paused_task = task("c", 0, &[]);
    paused_task.target_state = pb::TargetState::Paused as i32;
    let mut paused_connector = connector("c", 1, &[]);
    paused_connector.target_state = pb::TargetState::Paused as i32;
    h.apply(assignment(2, vec![paused_connector], vec![paused_task]))
        .await;
    assert_eq!(
        h.recording.latest("c-0"),
        (1, 2, false, TargetState::Paused)
    );
    assert_eq!(h.recording.latest("c").3, TargetState::Paused);
    assert_eq!(h.recording.starts_of("c-0"), 1);
    assert_eq!(h.recording.starts_of("c"), 1);

    h.apply(assignment(
        3,
        vec![connector("c", 1, &[])],
        vec![task("c", 0, &[])],
    ))
    .await;
    assert_eq!(h.recording.latest("c-0").3, TargetState::Running, "resumed");

    let mut paused_new = task("c", 1, &[]);
    paused_new.target_state = pb::TargetState::Paused as i32;
    h.apply(assignment(4, vec![], vec![task("c", 0, &[]), paused_new]))
        .await;
    assert_eq!(
        h.recording.latest("c-1").3,
        TargetState::Paused,
        "a task assigned paused starts paused"
    );
}

#[tokio::test]
async fn a_new_generation_or_config_starts_the_connector_instance_again_and_a_removed_one_stops() {
    let mut h = Harness::new();
    h.apply(assignment(
        1,
        vec![
            connector("a", 1, &[]),
            connector("b", 1, &[("x", "1")]),
            connector("c", 1, &[]),
        ],
        vec![],
    ))
    .await;
    h.apply(assignment(
        2,
        vec![connector("a", 2, &[]), connector("b", 1, &[("x", "2")])],
        vec![],
    ))
    .await;
    assert_eq!(h.recording.starts_of("a"), 2, "new generation");
    assert_eq!(h.recording.latest("a").0, 2);
    assert_eq!(h.recording.starts_of("b"), 2, "new config");
    assert_eq!(h.recording.starts_of("c"), 1);
    assert!(h.recording.latest("c").2, "removed instance c is cancelled");
    let rendered = h.metrics.render();
    assert!(
        rendered
            .lines()
            .any(|l| l.starts_with("kafka_connect_worker_connector_count") && l.ends_with(" 2")),
        "{rendered}"
    );
}

#[tokio::test]
async fn a_failed_task_stays_failed_until_its_assignment_changes() {
    let mut h = Harness::new();
    let failing = task("c", 0, &[(BEHAVIOUR, "fail")]);
    h.apply(assignment(1, vec![], vec![failing.clone()])).await;
    let failed = h.event().await;
    let message = h
        .hosted
        .report(failed)
        .expect("a hosted task's status is sent");
    assert!(matches!(
        message.body,
        Some(pb::runner_message::Body::TaskStatus(pb::TaskStatusReport { state, .. }))
            if state == pb::TaskState::Failed as i32
    ));

    let applied = h
        .apply(assignment(2, vec![], vec![failing.clone()]))
        .await
        .expect("applied");
    assert_eq!(applied_tasks(&applied), ["c-0"], "still hosted, as FAILED");
    assert_eq!(h.recording.starts_of("c-0"), 1, "not started again");

    let mut restarted = failing;
    restarted.restart_generation = 1;
    h.apply(assignment(3, vec![], vec![restarted])).await;
    assert_eq!(h.recording.starts_of("c-0"), 2, "a restart starts it again");
}

#[tokio::test]
async fn a_task_that_cannot_start_is_reported_failed_and_not_tried_again_by_the_same_assignment() {
    let mut h = Harness::new();
    let unstartable = task("c", 0, &[(BEHAVIOUR, "unstartable")]);
    let applied = h
        .apply(assignment(4, vec![], vec![unstartable.clone()]))
        .await
        .expect("applied");
    assert_eq!(applied_tasks(&applied), ["c-0"]);
    match h.next_event() {
        Some(TaskEvent::Status {
            key: reported,
            state: TaskState::Failed,
            trace,
            epoch: 4,
        }) => {
            assert_eq!(reported, key("c", 0));
            assert_eq!(trace, "no plugin for task c-0");
        }
        other => panic!("expected FAILED, got {other:?}"),
    }
    assert_eq!(h.metrics.task_startup_failures.get(), 1);

    h.apply(assignment(5, vec![], vec![unstartable])).await;
    assert!(h.next_event().is_none(), "no second attempt");
    assert_eq!(h.metrics.task_startup_failures.get(), 1);
}

#[tokio::test]
async fn a_connector_instance_that_cannot_start_is_reported_failed_under_its_generation() {
    let mut h = Harness::new();
    h.apply(assignment(
        1,
        vec![connector("c", 6, &[(BEHAVIOUR, "unstartable")])],
        vec![],
    ))
    .await;
    let event = h.next_event().expect("a report");
    assert_eq!(
        event,
        TaskEvent::Instance(InstanceEvent::Status {
            connector: "c".into(),
            generation: 6,
            state: ConnectorState::Failed,
            trace: "no plugin for connector c".into(),
        })
    );
    assert!(
        h.hosted.report(event).is_some(),
        "its generation is the current one"
    );
}

#[tokio::test]
async fn reports_of_what_is_no_longer_hosted_are_dropped_and_statuses_kept_for_the_next_session() {
    let mut h = Harness::new();
    h.apply(assignment(
        1,
        vec![connector("c", 2, &[])],
        vec![task("c", 0, &[]), task("c", 1, &[])],
    ))
    .await;
    assert!(
        h.hosted
            .report(status("c", 0, TaskState::Running))
            .is_some()
    );
    assert!(h.hosted.report(status("c", 1, TaskState::Paused)).is_some());
    let kept: Vec<(i32, i32)> = h
        .hosted
        .last_statuses()
        .map(|s| (s.task, s.state))
        .collect();
    assert_eq!(
        kept,
        [
            (0, pb::TaskState::Running as i32),
            (1, pb::TaskState::Paused as i32)
        ]
    );

    h.apply(assignment(
        2,
        vec![connector("c", 3, &[])],
        vec![task("c", 0, &[])],
    ))
    .await;
    assert!(
        h.hosted
            .report(status("c", 1, TaskState::Running))
            .is_none(),
        "c-1 was stopped"
    );
    let kept: Vec<i32> = h.hosted.last_statuses().map(|s| s.task).collect();
    assert_eq!(kept, [0], "a stopped task's status is forgotten");

    let configs = |generation| {
        TaskEvent::Instance(InstanceEvent::TaskConfigs {
            connector: "c".into(),
            generation,
            configs: vec![ConfigMap::new()],
        })
    };
    assert!(h.hosted.report(configs(2)).is_none(), "an old generation's");
    assert!(matches!(
        h.hosted.report(configs(3)).and_then(|m| m.body),
        Some(pb::runner_message::Body::TaskConfigs(
            pb::TaskConfigsReport { generation: 3, .. }
        ))
    ));
    // Topics and committed offsets are not tied to what runs.
    assert!(
        h.hosted
            .report(TaskEvent::Topics {
                connector: "gone".into(),
                topics: vec!["t".into()],
            })
            .is_some()
    );
}

#[tokio::test(start_paused = true)]
async fn what_stopping_tasks_report_is_forwarded_while_they_stop() {
    let mut h = Harness::new();
    h.apply(assignment(
        1,
        vec![],
        vec![task("c", 0, &[(BEHAVIOUR, "commit-on-stop")])],
    ))
    .await;
    h.apply(assignment(2, vec![], vec![]))
        .await
        .expect("applied");
    assert!(h.recording.has_ended("c-0"));
    let forwarded = h
        .outbound_rx
        .try_recv()
        .expect("the final commit was forwarded");
    match forwarded.body {
        Some(pb::runner_message::Body::Offsets(report)) => {
            assert_eq!(report.connector, "c");
            assert_eq!(report.offsets.len(), 1);
            assert_eq!(report.offsets[0].offset_json, r#"{"position":7}"#);
        }
        other => panic!("expected the offsets report, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_task_that_ignores_its_stop_is_aborted_after_three_graces_and_the_slack() {
    let mut h = Harness::new();
    h.apply(assignment(
        1,
        vec![],
        vec![
            task("c", 0, &[(BEHAVIOUR, "ignore-stop")]),
            task("c", 1, &[]),
        ],
    ))
    .await;
    let began = tokio::time::Instant::now();
    h.apply(assignment(2, vec![], vec![]))
        .await
        .expect("applied");
    assert_eq!(began.elapsed(), GRACE * 3 + TASK_STOP_SLACK);
    assert!(h.recording.has_ended("c-1"));
    // Aborting is asynchronous: the aborted task is dropped once the
    // runtime gets to it.
    tokio::task::yield_now().await;
    assert!(h.recording.has_ended("c-0"), "the stuck task was aborted");
}

#[tokio::test(start_paused = true)]
async fn a_lapsed_lease_stops_everything_and_the_assignment_starts_again_once_it_holds() {
    let lease = Lease::new();
    lease.renewed_from(tokio::time::Instant::now(), Duration::from_secs(6));
    let mut h = Harness::with_lease(lease);
    let fenced_assignment = assignment(
        7,
        vec![connector("c", 1, &[])],
        vec![task("c", 0, &[(BEHAVIOUR, "commit-on-stop")])],
    );
    h.apply(fenced_assignment).await;
    assert!(h.hosted.assignment_to_restart().is_none(), "not fenced");

    let began = tokio::time::Instant::now();
    h.hosted.lease_lapses().await;
    assert_eq!(began.elapsed(), Duration::from_secs(6));
    h.hosted.fence(&mut h.events_rx).await;
    assert!(h.hosted.is_fenced());
    assert!(h.recording.latest("c-0").2 && h.recording.has_ended("c-0"));
    assert!(h.recording.latest("c").2, "the instance is stopped too");
    assert!(
        h.outbound_rx.try_recv().is_err(),
        "nothing is forwarded while fencing"
    );
    assert!(
        h.hosted.assignment_to_restart().is_none(),
        "not while the lease has lapsed"
    );

    h.lease
        .renewed_from(tokio::time::Instant::now(), Duration::from_secs(6));
    let again = h
        .hosted
        .assignment_to_restart()
        .expect("the assignment, once the lease holds");
    assert_eq!(again.epoch, 7);
    let applied = h
        .apply(again)
        .await
        .expect("the same epoch is applied again");
    assert_eq!(applied_tasks(&applied), ["c-0"]);
    assert!(!h.hosted.is_fenced());
    assert_eq!(h.recording.starts_of("c-0"), 2);
    assert_eq!(h.recording.starts_of("c"), 2);
}

/// A fenced runner that joins a new session must not start its old
/// assignment again: the leader may have moved those tasks meanwhile (a
/// zombie runner restarted a task its heir was running). It waits for the
/// assignment the new session sends.
#[tokio::test(start_paused = true)]
async fn a_fenced_runner_in_a_new_session_starts_only_what_that_session_assigns() {
    let lease = Lease::new();
    lease.renewed_from(tokio::time::Instant::now(), Duration::from_secs(6));
    let mut h = Harness::with_lease(lease);
    h.apply(assignment(
        7,
        vec![connector("c", 1, &[])],
        vec![task("c", 0, &[])],
    ))
    .await;
    h.hosted.lease_lapses().await;
    h.hosted.fence(&mut h.events_rx).await;
    assert!(h.hosted.is_fenced());

    h.hosted.session_started();
    h.lease
        .renewed_from(tokio::time::Instant::now(), Duration::from_secs(6));
    assert!(
        h.hosted.assignment_to_restart().is_none(),
        "the old assignment is not restarted in a new session"
    );
    let applied = h
        .apply(assignment(8, Vec::new(), Vec::new()))
        .await
        .expect("the new session's assignment is applied");
    assert!(applied_tasks(&applied).is_empty());
    assert!(!h.hosted.is_fenced());
    assert_eq!(h.recording.starts_of("c-0"), 1, "never started again");
}

#[tokio::test(start_paused = true)]
async fn nothing_is_fenced_while_the_lease_holds_or_nothing_runs() {
    let lease = Lease::new();
    let mut h = Harness::with_lease(lease);
    // Nothing runs: a lapsed lease changes nothing, and there is nothing to lapse.
    h.hosted.fence(&mut h.events_rx).await;
    assert!(!h.hosted.is_fenced());
    assert!(
        tokio::time::timeout(Duration::from_secs(3600), h.hosted.lease_lapses())
            .await
            .is_err()
    );

    h.lease
        .renewed_from(tokio::time::Instant::now(), Duration::from_secs(6));
    h.apply(assignment(1, vec![], vec![task("c", 0, &[])]))
        .await;
    h.hosted.fence(&mut h.events_rx).await;
    assert!(!h.hosted.is_fenced(), "the lease holds");
    assert!(!h.recording.latest("c-0").2);
}

#[tokio::test(start_paused = true)]
async fn stopping_everything_stops_every_instance_and_task_and_forwards_their_reports() {
    let mut h = Harness::new();
    h.apply(assignment(
        1,
        vec![connector("c", 1, &[])],
        vec![
            task("c", 0, &[(BEHAVIOUR, "commit-on-stop")]),
            task("c", 1, &[]),
        ],
    ))
    .await;
    let outbound = h.outbound.clone();
    h.hosted.stop_all(&mut h.events_rx, Some(&outbound)).await;
    assert!(h.recording.has_ended("c-0") && h.recording.has_ended("c-1"));
    assert!(h.recording.latest("c").2);
    assert!(matches!(
        h.outbound_rx.try_recv().map(|m| m.body),
        Ok(Some(pb::runner_message::Body::Offsets(_)))
    ));
    let applied = h
        .apply(assignment(1, vec![], vec![]))
        .await
        .expect("applied");
    assert!(applied.tasks.is_empty());
}
