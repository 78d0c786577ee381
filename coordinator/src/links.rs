//! The coordinator's links to the runners connected to it: each runner
//! session's outbound channel, the requests the coordinator makes of one of
//! them (the offsets API, a plugin's own validate) and the answers it
//! awaits, and the live taps it runs on all of them. The control sessions
//! (`control`) add and remove the links and hand over what runners answer;
//! the admin service and the plugin catalog make requests through them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::sync::mpsc;
use tonic::Status;
use weir_connect::config::ConfigMap;
use weir_proto::admin::v1 as admin;
use weir_proto::control::v1 as pb;

use crate::error::{Error, Result};
use crate::tap::{LiveTaps, TapGuard, TapStream};

/// What this module logs is logged under the control service's name, the
/// logger operators set for runner sessions (Kafka Connect's
/// `org.apache.kafka.connect.runtime.distributed` maps to it).
const LOG_TARGET: &str = "weir_coordinator::control";

/// What goes out on a runner's `Join` stream.
pub(crate) type Outbound = std::result::Result<pb::CoordinatorMessage, Status>;

/// The runners connected to this coordinator, for requests the coordinator
/// makes of one of them (the offsets API), and the answers it awaits.
#[derive(Clone, Default)]
pub struct RunnerLinks {
    inner: std::sync::Arc<std::sync::Mutex<Links>>,
}

#[derive(Default)]
struct Links {
    /// By session.
    runners: BTreeMap<String, Linked>,
    taps: LiveTaps,
    waiting: std::collections::HashMap<u64, tokio::sync::oneshot::Sender<RunnerAnswer>>,
    next_id: u64,
}

struct Linked {
    runner: String,
    outbound: mpsc::Sender<Outbound>,
}

/// A runner's answer to a request a coordinator made of it.
pub(crate) enum RunnerAnswer {
    Offsets(pb::OffsetsReply),
    Validate(pb::ValidateReply),
}

fn tap_start(id: u64, request: admin::TapRequest) -> pb::CoordinatorMessage {
    pb::CoordinatorMessage {
        body: Some(pb::coordinator_message::Body::TapStart(pb::TapStart {
            id,
            request: Some(request),
        })),
    }
}

pub(crate) fn tap_stop(id: u64) -> pb::CoordinatorMessage {
    pb::CoordinatorMessage {
        body: Some(pb::coordinator_message::Body::TapStop(pb::TapStop { id })),
    }
}

/// How long a new tap waits for the runners to attach it.
const TAP_ATTACH_DEADLINE: Duration = Duration::from_secs(5);

/// How long a runner may take to carry out an offsets request.
const OFFSETS_DEADLINE: Duration = Duration::from_secs(60);
/// How long a runner may take to run a plugin's validate (a sidecar call
/// has 30 s of its own).
const VALIDATE_DEADLINE: Duration = Duration::from_secs(35);

impl RunnerLinks {
    fn links(&self) -> std::sync::MutexGuard<'_, Links> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Links a runner session once it was welcomed. Returns the live taps it
    /// must attach, already counted as started on it.
    pub(crate) fn add(
        &self,
        session: &str,
        runner: &str,
        outbound: mpsc::Sender<Outbound>,
    ) -> Vec<pb::CoordinatorMessage> {
        let mut links = self.links();
        links.runners.insert(
            session.to_owned(),
            Linked {
                runner: runner.to_owned(),
                outbound,
            },
        );
        links
            .taps
            .start_all_on(session)
            .into_iter()
            .map(|(id, request)| tap_start(id, request))
            .collect()
    }

    pub(crate) fn remove(&self, session: &str) {
        let mut links = self.links();
        links.runners.remove(session);
        links.taps.session_ended(session);
    }

    /// The ids of the runners connected here.
    pub fn runner_ids(&self) -> BTreeSet<String> {
        self.links()
            .runners
            .values()
            .map(|linked| linked.runner.clone())
            .collect()
    }

    /// Starts a tap on every runner connected here and returns its records
    /// once every one attached it. A runner that does not attach it within
    /// [`TAP_ATTACH_DEADLINE`] is left out; if none does, the tap fails.
    pub async fn tap(&self, request: admin::TapRequest) -> Result<TapStream> {
        let (id, records, mut attachments, runners) = {
            let mut links = self.links();
            links.next_id += 1;
            let id = links.next_id;
            let (records, attachments) = links.taps.open(id, request.clone());
            let runners: Vec<(String, mpsc::Sender<Outbound>)> = links
                .runners
                .iter()
                .map(|(session, linked)| (session.clone(), linked.outbound.clone()))
                .collect();
            for (session, _) in &runners {
                links.taps.started_on(id, session);
            }
            (id, records, attachments, runners)
        };
        let links = self.clone();
        let guard = TapGuard::new(move || links.untap(id));
        let mut expected = BTreeSet::new();
        for (session, outbound) in runners {
            if outbound
                .send(Ok(tap_start(id, request.clone())))
                .await
                .is_ok()
            {
                expected.insert(session);
            }
        }
        if expected.is_empty() {
            return Err(Error::Conflict(
                "No runner is connected to this coordinator; tap through a coordinator that has runners".to_owned(),
            ));
        }
        let wanted = expected.len();
        let attached = async {
            while !expected.is_empty() {
                match attachments.recv().await {
                    Some(session) => {
                        expected.remove(&session);
                    }
                    None => break,
                }
            }
        };
        if tokio::time::timeout(TAP_ATTACH_DEADLINE, attached)
            .await
            .is_err()
        {
            if expected.len() == wanted {
                return Err(Error::Internal(
                    "No runner attached the tap in time".to_owned(),
                ));
            }
            tracing::warn!(
                target: LOG_TARGET,
                missing = expected.len(),
                "some runners did not attach a tap in time; it goes on without them"
            );
        }
        Ok(TapStream::new(records, guard))
    }

    /// Stops tap `id` on every runner connected here. Called on drop, so the
    /// stops are sent from a task of their own; a runner that misses one is
    /// told again when it next sends records for the tap.
    fn untap(&self, id: u64) {
        let outbounds: Vec<mpsc::Sender<Outbound>> = {
            let mut links = self.links();
            links.taps.close(id);
            links
                .runners
                .values()
                .map(|linked| linked.outbound.clone())
                .collect()
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    for outbound in outbounds {
                        let _ = outbound.send(Ok(tap_stop(id))).await;
                    }
                });
            }
            Err(_) => {
                for outbound in outbounds {
                    let _ = outbound.try_send(Ok(tap_stop(id)));
                }
            }
        }
    }

    /// Ends every live tap (the coordinator is stopping).
    pub fn close_taps(&self) {
        self.links()
            .taps
            .close_all("The coordinator is shutting down");
    }

    /// Relays records `session` sent for a tap; false when the tap is not
    /// live here (the runner should stop it).
    pub(crate) fn tapped(&self, session: &str, records: pb::TapRecords) -> bool {
        self.links()
            .taps
            .relay(records.id, session, records.records)
    }

    pub(crate) fn answered(&self, id: u64, answer: RunnerAnswer) {
        if let Some(waiting) = self.links().waiting.remove(&id) {
            let _ = waiting.send(answer);
        }
    }

    /// Sends the message `make` builds with a fresh request id to one runner
    /// connected here (the first whose id `pick` accepts), and waits up to
    /// `deadline` for its answer. `None`: no such runner is connected here.
    async fn ask(
        &self,
        pick: impl Fn(&str) -> bool,
        make: impl FnOnce(u64) -> pb::coordinator_message::Body,
        deadline: Duration,
    ) -> Option<Result<RunnerAnswer>> {
        let (runner, answer, id) = {
            let mut links = self.links();
            let runner = links
                .runners
                .values()
                .find(|linked| pick(&linked.runner))
                .map(|linked| linked.outbound.clone())?;
            links.next_id += 1;
            let id = links.next_id;
            let (sender, answer) = tokio::sync::oneshot::channel();
            links.waiting.insert(id, sender);
            (runner, answer, id)
        };
        let message = pb::CoordinatorMessage {
            body: Some(make(id)),
        };
        let outcome = async {
            runner
                .send(Ok(message))
                .await
                .map_err(|_| Error::Internal("the runner went away".to_owned()))?;
            match tokio::time::timeout(deadline, answer).await {
                Ok(Ok(answer)) => Ok(answer),
                _ => Err(Error::Internal(
                    "the runner did not answer in time".to_owned(),
                )),
            }
        }
        .await;
        self.links().waiting.remove(&id);
        Some(outcome)
    }

    /// Has a runner connected here carry out `request`; the answer comes
    /// once the change is durable.
    pub async fn offsets(&self, mut request: pb::OffsetsRequest) -> Result<pb::OffsetsReply> {
        let asked = self
            .ask(
                |_| true,
                move |id| {
                    request.id = id;
                    pb::coordinator_message::Body::OffsetsRequest(request)
                },
                OFFSETS_DEADLINE,
            )
            .await;
        match asked {
            None => Err(Error::Internal(
                "No runner is connected to this coordinator to reach the offsets; send the request to another coordinator".to_owned(),
            )),
            Some(Ok(RunnerAnswer::Offsets(reply))) => Ok(reply),
            Some(Ok(_)) => Err(Error::Internal(
                "the runner answered another request".to_owned(),
            )),
            Some(Err(error)) => Err(error),
        }
    }

    /// Runs a plugin's own validate on a runner connected here that is one
    /// of `runners` (those that reported the plugin): its errors by key.
    /// `None` when no such runner is connected to this coordinator.
    pub async fn validate(
        &self,
        runners: &BTreeSet<String>,
        config: &ConfigMap,
    ) -> Option<Result<Vec<(String, Vec<String>)>>> {
        let config = config.clone().into_iter().collect();
        let asked = self
            .ask(
                |runner| runners.contains(runner),
                |id| {
                    pb::coordinator_message::Body::ValidateRequest(pb::ValidateRequest {
                        id,
                        config,
                    })
                },
                VALIDATE_DEADLINE,
            )
            .await?;
        Some(match asked {
            Ok(RunnerAnswer::Validate(reply)) if reply.error.is_empty() => Ok(reply
                .errors
                .into_iter()
                .map(|key| (key.name, key.errors))
                .collect()),
            Ok(RunnerAnswer::Validate(reply)) => Err(Error::Internal(reply.error)),
            Ok(_) => Err(Error::Internal(
                "the runner answered another request".to_owned(),
            )),
            Err(error) => Err(error),
        })
    }
}
