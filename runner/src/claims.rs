//! Sink partition claims: a sink task reads a topic partition only once the
//! coordinator recorded that the task holds it and no other task of its
//! connector does (`claims/{connector}`), and it releases a partition (in
//! the same way) only after committing its offsets. This module carries a
//! task's claims over the runner's current control session and matches the
//! coordinator's answers to them.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use weir_proto::control::v1 as pb;

use crate::events::TaskId;

/// Topic partitions, sorted.
pub type Partitions = BTreeSet<(String, i32)>;

/// How long a claim waits for the coordinator's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a task's claims go; cheap to clone.
#[derive(Clone)]
pub struct PartitionClaims {
    /// `None`: a task run with no coordinator (tests, benchmarks) holds
    /// whatever it asks for.
    link: Option<Arc<Link>>,
}

#[derive(Default)]
struct Link {
    state: Mutex<LinkState>,
}

#[derive(Default)]
struct LinkState {
    /// The current session's outbound stream, if one is up.
    outbound: Option<mpsc::Sender<pb::RunnerMessage>>,
    next_id: u64,
    pending: HashMap<u64, oneshot::Sender<Result<Partitions, String>>>,
}

impl Link {
    fn with<T>(&self, f: impl FnOnce(&mut LinkState) -> T) -> T {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut state)
    }
}

/// Detaches the session from the claims when dropped (the session ended):
/// claims waiting for an answer fail and are asked again later.
pub struct SessionLink(Arc<Link>);

impl Drop for SessionLink {
    fn drop(&mut self) {
        self.0.with(|state| {
            state.outbound = None;
            for (_, waiting) in state.pending.drain() {
                let _ = waiting.send(Err("the control session ended".to_owned()));
            }
        });
    }
}

impl PartitionClaims {
    /// Claims recorded by the coordinator, over the runner's session.
    pub fn coordinated() -> Self {
        PartitionClaims {
            link: Some(Arc::default()),
        }
    }

    /// Every claim is granted: for a task run with no coordinator.
    pub fn unclaimed() -> Self {
        PartitionClaims { link: None }
    }

    /// Sends claims on `outbound` until the returned link is dropped.
    pub fn attach(&self, outbound: mpsc::Sender<pb::RunnerMessage>) -> Option<SessionLink> {
        let link = self.link.clone()?;
        link.with(|state| state.outbound = Some(outbound));
        Some(SessionLink(link))
    }

    /// The coordinator answered a claim.
    pub fn answered(&self, reply: pb::PartitionsClaimed) {
        let Some(link) = &self.link else {
            return;
        };
        let Some(waiting) = link.with(|state| state.pending.remove(&reply.id)) else {
            return;
        };
        let outcome = if reply.error.is_empty() {
            Ok(reply
                .granted
                .into_iter()
                .map(|p| (p.topic, p.partition))
                .collect())
        } else {
            Err(reply.error)
        };
        let _ = waiting.send(outcome);
    }

    /// Asks to hold exactly `wanted` (releasing whatever else the task
    /// held); answers the part of it the task now holds.
    pub async fn claim(&self, task: &TaskId, wanted: &Partitions) -> Result<Partitions, String> {
        let Some(link) = &self.link else {
            return Ok(wanted.clone());
        };
        let (answer, answered) = oneshot::channel();
        let (id, outbound) = link.with(|state| {
            state.next_id += 1;
            let id = state.next_id;
            let outbound = state.outbound.clone();
            if outbound.is_some() {
                state.pending.insert(id, answer);
            }
            (id, outbound)
        });
        let Some(outbound) = outbound else {
            return Err("no coordinator session".to_owned());
        };
        let message = pb::RunnerMessage {
            body: Some(pb::runner_message::Body::ClaimPartitions(
                pb::ClaimPartitions {
                    id,
                    connector: task.connector.clone(),
                    task: task.task,
                    partitions: wanted
                        .iter()
                        .map(|(topic, partition)| pb::TopicPartition {
                            topic: topic.clone(),
                            partition: *partition,
                        })
                        .collect(),
                },
            )),
        };
        let forget = || {
            link.with(|state| state.pending.remove(&id));
        };
        if outbound.send(message).await.is_err() {
            forget();
            return Err("the control session ended".to_owned());
        }
        match tokio::time::timeout(ANSWER_TIMEOUT, answered).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err("the control session ended".to_owned()),
            Err(_) => {
                forget();
                Err("the coordinator did not answer the claim in time".to_owned())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TaskId {
        TaskId {
            connector: "c".into(),
            task: 1,
        }
    }

    fn partitions(list: &[(&str, i32)]) -> Partitions {
        list.iter().map(|(t, p)| ((*t).to_owned(), *p)).collect()
    }

    #[tokio::test]
    async fn a_claim_is_answered_with_what_the_coordinator_granted() {
        let claims = PartitionClaims::coordinated();
        let (outbound, mut sent) = mpsc::channel(4);
        let _session = claims.attach(outbound).expect("coordinated");
        let asking = {
            let claims = claims.clone();
            tokio::spawn(async move {
                claims
                    .claim(&key(), &partitions(&[("a", 0), ("a", 1)]))
                    .await
            })
        };
        let Some(pb::RunnerMessage {
            body: Some(pb::runner_message::Body::ClaimPartitions(claim)),
        }) = sent.recv().await
        else {
            panic!("expected a claim");
        };
        assert_eq!((claim.connector.as_str(), claim.task), ("c", 1));
        assert_eq!(claim.partitions.len(), 2);
        claims.answered(pb::PartitionsClaimed {
            id: claim.id,
            granted: vec![pb::TopicPartition {
                topic: "a".into(),
                partition: 1,
            }],
            error: String::new(),
        });
        assert_eq!(asking.await.unwrap(), Ok(partitions(&[("a", 1)])));
    }

    #[tokio::test]
    async fn without_a_session_a_claim_fails_and_a_lost_session_fails_waiting_claims() {
        let claims = PartitionClaims::coordinated();
        assert!(claims.claim(&key(), &Partitions::new()).await.is_err());
        let (outbound, mut sent) = mpsc::channel(4);
        let session = claims.attach(outbound).expect("coordinated");
        let asking = {
            let claims = claims.clone();
            tokio::spawn(async move { claims.claim(&key(), &partitions(&[("a", 0)])).await })
        };
        assert!(sent.recv().await.is_some(), "the claim went out");
        drop(session);
        assert!(asking.await.unwrap().is_err());
        let everything = partitions(&[("a", 0), ("b", 3)]);
        assert_eq!(
            PartitionClaims::unclaimed()
                .claim(&key(), &everything)
                .await,
            Ok(everything)
        );
    }
}
