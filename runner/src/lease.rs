//! The runner's ownership lease: how long it may still run its tasks and
//! commit their offsets without hearing from a coordinator.
//!
//! Each heartbeat the runner sends is numbered; a coordinator answers it by
//! echoing the number. An answer renews the lease to the heartbeat's *send*
//! time plus the session timeout. The coordinator received that heartbeat
//! after it was sent and while the runner's session was alive, and the
//! leader moves a lost runner's tasks only a session timeout after it saw
//! the session end, so no other runner starts them while the lease holds. A
//! runner frozen (SIGSTOP) and resumed may still read old answers from its
//! socket; they renew the lease only to old send times, which have passed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// How many unanswered heartbeats are remembered.
const REMEMBERED: usize = 64;

#[derive(Debug, Default)]
struct State {
    /// `None` before any renewal: the lease does not hold yet.
    deadline: Option<Instant>,
    /// Send times of recent heartbeats, by number.
    sent: VecDeque<(u64, Instant)>,
    next_seq: u64,
    /// Set for runs with no coordinator to lose (tests, benchmarks).
    unbounded: bool,
}

/// Shared by the runner and its tasks; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Lease {
    state: Arc<Mutex<State>>,
}

impl Lease {
    /// A lease that does not hold until a coordinator answers.
    pub fn new() -> Self {
        Lease::default()
    }

    /// A lease that always holds, for a task run with no coordinator.
    pub fn unbounded() -> Self {
        let lease = Lease::default();
        lease.with(|state| state.unbounded = true);
        lease
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut state)
    }

    /// Numbers a heartbeat about to be sent, remembering when.
    pub fn heartbeat_sent(&self) -> u64 {
        self.with(|state| {
            state.next_seq += 1;
            let seq = state.next_seq;
            state.sent.push_back((seq, Instant::now()));
            if state.sent.len() > REMEMBERED {
                state.sent.pop_front();
            }
            seq
        })
    }

    /// A coordinator answered heartbeat `seq`: the lease holds until its
    /// send time plus `timeout`.
    pub fn answered(&self, seq: u64, timeout: Duration) {
        self.with(|state| {
            if let Some(&(_, sent)) = state.sent.iter().find(|(s, _)| *s == seq) {
                state.sent.retain(|(s, _)| *s > seq);
                renew(state, sent + timeout);
            }
        });
    }

    /// A coordinator answered a message sent at `sent` (the Hello of a new
    /// session): the lease holds until then plus `timeout`.
    pub fn renewed_from(&self, sent: Instant, timeout: Duration) {
        self.with(|state| renew(state, sent + timeout));
    }

    /// Whether the runner may still run and commit its tasks.
    pub fn holds(&self) -> bool {
        self.with(|state| state.unbounded || state.deadline.is_some_and(|d| Instant::now() < d))
    }

    /// When the lease runs out, if it holds now.
    pub fn deadline(&self) -> Option<Instant> {
        self.with(|state| {
            if state.unbounded {
                None
            } else {
                state.deadline
            }
        })
    }
}

impl Lease {
    /// Runs `work` (a commit) only while the lease holds: `None` if it has
    /// lapsed before `work` starts or before it finishes, in which case
    /// `work` is dropped unfinished. Renewals meanwhile extend the bound.
    pub async fn bound<F: std::future::Future>(&self, work: F) -> Option<F::Output> {
        if !self.holds() {
            return None;
        }
        tokio::pin!(work);
        loop {
            let Some(deadline) = self.deadline() else {
                return Some(work.await);
            };
            tokio::select! {
                done = &mut work => return Some(done),
                () = tokio::time::sleep_until(deadline) => {
                    if !self.holds() {
                        return None;
                    }
                }
            }
        }
    }
}

fn renew(state: &mut State, until: Instant) {
    if state.deadline.is_none_or(|d| d < until) {
        state.deadline = Some(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_answer_renews_from_the_send_time_not_the_receive_time() {
        let lease = Lease::new();
        assert!(!lease.holds(), "no answer yet");
        let seq = lease.heartbeat_sent();
        tokio::time::advance(Duration::from_secs(4)).await;
        // Answered late (a frozen runner reading its socket after SIGCONT).
        lease.answered(seq, Duration::from_secs(5));
        assert!(lease.holds());
        tokio::time::advance(Duration::from_millis(1001)).await;
        assert!(
            !lease.holds(),
            "5 s after the send time, not after the answer"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_commit_still_under_way_when_the_lease_lapses_is_abandoned() {
        let lease = Lease::new();
        let seq = lease.heartbeat_sent();
        lease.answered(seq, Duration::from_secs(1));
        let landed = Arc::new(Mutex::new(false));
        let write = {
            let landed = landed.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(3)).await;
                *landed.lock().unwrap() = true;
            }
        };
        assert_eq!(lease.bound(write).await, None, "abandoned at the deadline");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(!*landed.lock().unwrap(), "the write never lands");
        assert_eq!(lease.bound(async { 1 }).await, None, "refused once lapsed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_commit_outlasting_a_renewed_lease_completes() {
        let lease = Lease::new();
        let seq = lease.heartbeat_sent();
        lease.answered(seq, Duration::from_secs(1));
        let renewing = {
            let lease = lease.clone();
            tokio::spawn(async move {
                for _ in 0..8 {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let seq = lease.heartbeat_sent();
                    lease.answered(seq, Duration::from_secs(1));
                }
            })
        };
        let write = async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            7
        };
        assert_eq!(lease.bound(write).await, Some(7));
        renewing.await.unwrap();
        assert_eq!(Lease::unbounded().bound(async { 2 }).await, Some(2));
    }

    #[tokio::test(start_paused = true)]
    async fn an_old_answer_never_shortens_the_lease() {
        let lease = Lease::new();
        let first = lease.heartbeat_sent();
        tokio::time::advance(Duration::from_secs(1)).await;
        let second = lease.heartbeat_sent();
        lease.answered(second, Duration::from_secs(5));
        lease.answered(first, Duration::from_secs(5));
        // 5.5 s after the first heartbeat, 4.5 s after the second.
        tokio::time::advance(Duration::from_millis(4500)).await;
        assert!(lease.holds(), "still 5 s from the second heartbeat");
        assert!(!Lease::new().holds());
        assert!(Lease::unbounded().holds());
    }
}
