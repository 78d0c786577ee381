//! Whether each sidecar still answers: a probe task per sidecar asks it
//! every second ([`weir_connect::liveness`] says why it is not HTTP/2
//! keepalive) and marks it unresponsive after
//! [`weir_connect::liveness::UNRESPONSIVE_AFTER`] without an answer; the
//! task and Watch streams on that sidecar then fail. A killed sidecar
//! closes its connection, which fails them at once.

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use weir_connect::liveness::{PROBE_INTERVAL, UNRESPONSIVE_AFTER, probe};

/// What the probe last found.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reachability {
    Answering,
    /// Why the sidecar is judged gone.
    Unresponsive(String),
}

/// A sidecar's liveness, as its probe finds it; cheap to clone.
#[derive(Clone)]
pub struct Liveness {
    state: watch::Receiver<Reachability>,
}

impl Liveness {
    /// Probes the sidecar behind `channel` until `shutdown`.
    pub fn probe(sidecar: &str, channel: Channel, shutdown: CancellationToken) -> Liveness {
        let (report, state) = watch::channel(Reachability::Answering);
        tokio::spawn(probe_loop(sidecar.to_owned(), channel, report, shutdown));
        Liveness { state }
    }

    /// Resolves, with the reason, once the sidecar is unresponsive (at once
    /// if it is now). Never resolves while it answers.
    pub async fn lost(&self) -> String {
        let mut state = self.state.clone();
        loop {
            if let Reachability::Unresponsive(reason) = &*state.borrow_and_update() {
                return reason.clone();
            }
            if state.changed().await.is_err() {
                // The probe ended (shutdown): nothing more will be learnt.
                return std::future::pending().await;
            }
        }
    }
}

async fn probe_loop(
    sidecar: String,
    channel: Channel,
    report: watch::Sender<Reachability>,
    shutdown: CancellationToken,
) {
    let mut last_answer = Instant::now();
    let mut ticks = tokio::time::interval(PROBE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let outcome = tokio::select! {
            () = shutdown.cancelled() => return,
            outcome = probe(&channel, UNRESPONSIVE_AFTER) => outcome,
        };
        match outcome {
            Ok(()) => {
                last_answer = Instant::now();
                if *report.borrow() != Reachability::Answering {
                    tracing::info!(%sidecar, "sidecar answers again");
                    report.send_replace(Reachability::Answering);
                }
            }
            Err(status) => {
                let silent = last_answer.elapsed();
                if silent >= UNRESPONSIVE_AFTER && *report.borrow() == Reachability::Answering {
                    let reason = format!(
                        "the sidecar has not answered for {}s ({})",
                        silent.as_secs(),
                        status.message()
                    );
                    tracing::warn!(%sidecar, %reason, "sidecar unresponsive");
                    report.send_replace(Reachability::Unresponsive(reason));
                }
            }
        }
    }
}
