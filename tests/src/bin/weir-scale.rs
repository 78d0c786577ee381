//! `weir-scale`: the control plane at many connectors. For each count of
//! connectors (default 100, 300 and 1,000, of 4 `VerifiableSource` tasks
//! each) it starts etcd, the embedded broker, 2 coordinators and 10 runners
//! as real processes, creates the connectors through REST and prints how
//! long until every task runs, REST latency while the cluster is busy, etcd's
//! size, memory and idle CPU, and what a runner's loss moves and stops; then
//! how each figure grew from the smallest count.
//!
//! Usage: `cargo build --release --bins && target/release/weir-scale
//! [--connectors 100,300,1000] [--tasks 4] [--runners 10] [--coordinators 2]`.
//! With `WEIR_SCALE_DIR` set, each run's logs are kept in a directory under it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::cast_precision_loss
)]

use weir_tests::scale::{self, Shape};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!(
            "weir-scale: Weir's control plane at many connectors\n\n\
             Usage: weir-scale [--connectors 100,300,1000] [--tasks 4] [--runners 10] [--coordinators 2]"
        );
        return;
    }
    let counts: Vec<usize> = arg(&args, "--connectors")
        .unwrap_or_else(|| "100,300,1000".into())
        .split(',')
        .map(|c| c.trim().parse().expect("--connectors takes numbers"))
        .collect();
    let number = |name: &str, default: usize| {
        arg(&args, name).map_or(default, |v| v.parse().expect("a number"))
    };
    let tasks = number("--tasks", 4);
    let runners = number("--runners", 10);
    let coordinators = number("--coordinators", 2);
    let mut reports = Vec::new();
    for connectors in counts {
        let dir = match std::env::var_os("WEIR_SCALE_DIR") {
            Some(root) => {
                std::fs::create_dir_all(&root).unwrap();
                tempfile::Builder::new()
                    .prefix(&format!("{connectors}x{tasks}-"))
                    .disable_cleanup(true)
                    .tempdir_in(root)
                    .unwrap()
            }
            None => tempfile::tempdir().unwrap(),
        };
        let shape = Shape {
            connectors,
            tasks,
            runners,
            coordinators,
        };
        let report = scale::run(shape, dir.path());
        println!("{}", scale::describe(&report));
        reports.push((connectors, report));
    }
    if let Some(((base, first), rest)) = reports.split_first().map(|(f, r)| ((f.0, &f.1), r)) {
        for (connectors, report) in rest {
            let growth = |a: f64, b: f64| if a > 0.0 { b / a } else { f64::NAN };
            let size = *connectors as f64 / base as f64;
            println!(
                "growth {base} -> {connectors} connectors ({size:.1}× the work): time to all RUNNING {:.1}×, status p99 {:.1}×, etcd keys {:.1}×, runner move {:.1}×",
                growth(
                    first.all_running_after_first_create.as_secs_f64(),
                    report.all_running_after_first_create.as_secs_f64()
                ),
                growth(
                    first.status_busy.quantile(0.99).as_secs_f64(),
                    report.status_busy.quantile(0.99).as_secs_f64()
                ),
                growth(first.etcd_keys as f64, report.etcd_keys as f64),
                growth(
                    first.moved_after_kill.as_secs_f64(),
                    report.moved_after_kill.as_secs_f64()
                ),
            );
        }
    }
}
