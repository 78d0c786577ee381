//! The small form of `weir-scale` (tests/src/scale.rs), in the test command:
//! 100 `VerifiableSource` connectors of 2 tasks on 3 runners, created
//! through REST, then one runner killed. It asserts correctness only: every
//! task RUNNING, then RUNNING on a survivor after the kill, no task of
//! another runner stopped meanwhile, and a status for every task. Timings
//! are `weir-scale`'s job (bench/README.md), never asserted here.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use weir_tests::scale::{self, Shape};

#[test]
fn a_hundred_connectors_run_and_a_runner_s_loss_moves_only_its_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let shape = Shape {
        connectors: 100,
        tasks: 2,
        runners: 3,
        coordinators: 1,
    };
    // `run` waits (with generous deadlines) for every task RUNNING, before
    // and after the kill, and panics naming what it waited for.
    let report = scale::run(shape, dir.path());
    println!("{}", scale::describe(&report));
    assert!(
        report.killed_runner_tasks > 0,
        "the killed runner held no task: {report:?}"
    );
    assert_eq!(
        report.others_stopped, 0,
        "tasks of the surviving runners were stopped"
    );
    assert!(
        report.status_complete,
        "a task has no RUNNING status on a survivor"
    );
}
