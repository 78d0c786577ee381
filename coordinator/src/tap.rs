//! The coordinator's side of the live record tap: a client's tap is sent to
//! every runner connected here (and to runners that join while it lives),
//! their copies are relayed to the client, and the tap is stopped on the
//! runners when the client goes away. Runners rate-limit at the source.

use std::collections::{BTreeSet, HashMap};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::mpsc;
use tonic::Status;
use weir_proto::admin::v1 as admin;

/// Records relayed to one client that it has not read yet, at most; more
/// are skipped and counted.
const CLIENT_BUFFER: usize = 1024;

/// Records per second a tap may ask for at most.
pub const MAX_RATE: u32 = 1000;

type Relayed = Result<admin::TappedRecord, Status>;

/// The taps live on this coordinator.
#[derive(Default)]
pub struct LiveTaps {
    entries: HashMap<u64, Entry>,
}

struct Entry {
    request: admin::TapRequest,
    records: mpsc::Sender<Relayed>,
    /// The runner sessions the tap was started on and that still live.
    sessions: BTreeSet<String>,
    /// Each session that attached the tap, as it does.
    attached: mpsc::UnboundedSender<String>,
    /// Records dropped because the client read too slowly.
    skipped: u64,
}

impl LiveTaps {
    /// Registers tap `id`; returns where its records and the sessions that
    /// attached it arrive.
    pub fn open(
        &mut self,
        id: u64,
        request: admin::TapRequest,
    ) -> (mpsc::Receiver<Relayed>, mpsc::UnboundedReceiver<String>) {
        let (records, receiver) = mpsc::channel(CLIENT_BUFFER);
        let (attached, attachments) = mpsc::unbounded_channel();
        self.entries.insert(
            id,
            Entry {
                request,
                records,
                sessions: BTreeSet::new(),
                attached,
                skipped: 0,
            },
        );
        (receiver, attachments)
    }

    pub fn close(&mut self, id: u64) {
        self.entries.remove(&id);
    }

    /// Ends every tap with `reason` (the coordinator is stopping).
    pub fn close_all(&mut self, reason: &str) {
        for (_, entry) in self.entries.drain() {
            let _ = entry.records.try_send(Err(Status::unavailable(reason)));
        }
    }

    /// Notes that tap `id` was sent to `session`.
    pub fn started_on(&mut self, id: u64, session: &str) {
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.sessions.insert(session.to_owned());
        }
    }

    /// The taps a session that just joined must attach; they count as
    /// started on it.
    pub fn start_all_on(&mut self, session: &str) -> Vec<(u64, admin::TapRequest)> {
        self.entries
            .iter_mut()
            .map(|(id, entry)| {
                entry.sessions.insert(session.to_owned());
                (*id, entry.request.clone())
            })
            .collect()
    }

    /// A runner session ended: a tap no session here carries any more ends,
    /// telling its client why.
    pub fn session_ended(&mut self, session: &str) {
        self.entries.retain(|_, entry| {
            if !entry.sessions.remove(session) || !entry.sessions.is_empty() {
                return true;
            }
            let _ = entry.records.try_send(Err(Status::unavailable(
                "No runner is connected to this coordinator any more; tap through the coordinator the runners joined",
            )));
            false
        });
    }

    /// Relays what `session` sent for tap `id`; an empty batch says it
    /// attached the tap. False when no such tap lives here.
    pub fn relay(&mut self, id: u64, session: &str, records: Vec<admin::TappedRecord>) -> bool {
        let Some(entry) = self.entries.get_mut(&id) else {
            return false;
        };
        if records.is_empty() {
            let _ = entry.attached.send(session.to_owned());
            return true;
        }
        for mut record in records {
            record.skipped_before += entry.skipped;
            match entry.records.try_send(Ok(record)) {
                Ok(()) => entry.skipped = 0,
                Err(mpsc::error::TrySendError::Full(Ok(record))) => {
                    entry.skipped = record.skipped_before + 1;
                }
                Err(_) => break,
            }
        }
        true
    }
}

/// Stops a tap on the runners when dropped.
pub struct TapGuard {
    stop: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl TapGuard {
    /// A guard that calls `stop` (which stops the tap on the runners) once,
    /// when it is dropped.
    pub fn new(stop: impl FnOnce() + Send + Sync + 'static) -> Self {
        TapGuard {
            stop: Some(Box::new(stop)),
        }
    }
}

impl Drop for TapGuard {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop();
        }
    }
}

/// The records of one tap, as a gRPC server stream; dropping it stops the
/// tap. It ends with an error when no runner here carries the tap any more.
pub struct TapStream {
    records: mpsc::Receiver<Relayed>,
    _guard: TapGuard,
}

impl TapStream {
    /// The stream of `records`, which stops the tap through `guard` when dropped.
    pub fn new(records: mpsc::Receiver<Relayed>, guard: TapGuard) -> Self {
        TapStream {
            records,
            _guard: guard,
        }
    }
}

impl futures::Stream for TapStream {
    type Item = Relayed;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.records.poll_recv(cx)
    }
}

/// The wire name of a tap point, as REST and the CLI spell it.
pub fn point_name(point: admin::TapPoint) -> &'static str {
    match point {
        admin::TapPoint::AfterPoll => "after_poll",
        admin::TapPoint::AfterTransforms => "after_transforms",
        admin::TapPoint::BeforePut => "before_put",
    }
}

/// Parses a tap point as REST and the CLI spell it.
pub fn parse_point(name: &str) -> Option<admin::TapPoint> {
    [
        admin::TapPoint::AfterPoll,
        admin::TapPoint::AfterTransforms,
        admin::TapPoint::BeforePut,
    ]
    .into_iter()
    .find(|point| point_name(*point) == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(value: &str) -> admin::TappedRecord {
        admin::TappedRecord {
            value_json: value.into(),
            ..Default::default()
        }
    }

    #[test]
    fn points_round_trip_through_their_names() {
        for point in [
            admin::TapPoint::AfterPoll,
            admin::TapPoint::AfterTransforms,
            admin::TapPoint::BeforePut,
        ] {
            assert_eq!(parse_point(point_name(point)), Some(point));
        }
        assert_eq!(parse_point("after_put"), None);
    }

    #[test]
    fn a_slow_client_gets_a_count_of_what_it_missed() {
        let mut taps = LiveTaps::default();
        let (mut records, mut attached) = taps.open(1, admin::TapRequest::default());
        taps.started_on(1, "s1");
        assert!(taps.relay(1, "s1", Vec::new()));
        assert_eq!(attached.try_recv().ok().as_deref(), Some("s1"));
        let burst = (0..CLIENT_BUFFER + 3).map(|n| record(&n.to_string()));
        taps.relay(1, "s1", burst.collect());
        for _ in 0..CLIENT_BUFFER {
            records.try_recv().expect("buffered").expect("a record");
        }
        taps.relay(1, "s1", vec![record("next")]);
        let next = records.try_recv().expect("relayed").expect("a record");
        assert_eq!((next.value_json.as_str(), next.skipped_before), ("next", 3));
        taps.close(1);
        assert!(!taps.relay(1, "s1", vec![record("gone")]));
        assert!(records.try_recv().is_err());
    }

    #[test]
    fn a_tap_ends_with_an_error_when_its_last_session_ends() {
        let mut taps = LiveTaps::default();
        let (mut records, _attached) = taps.open(1, admin::TapRequest::default());
        taps.started_on(1, "s1");
        assert_eq!(taps.start_all_on("s2").len(), 1);
        taps.session_ended("s1");
        assert!(records.try_recv().is_err(), "s2 still carries it");
        taps.session_ended("s2");
        let ended = records.try_recv().expect("an answer");
        assert_eq!(
            ended.expect_err("an error").code(),
            tonic::Code::Unavailable
        );
        assert!(!taps.relay(1, "s2", vec![record("late")]));
    }
}
