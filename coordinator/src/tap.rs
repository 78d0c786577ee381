//! The coordinator's side of the live record tap: a client's tap is sent to
//! every runner connected here (and to runners that join while it lives),
//! their copies are relayed to the client, and the tap is stopped on the
//! runners when the client goes away. Runners rate-limit at the source.

use std::collections::HashMap;
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

/// The taps live on this coordinator.
#[derive(Default)]
pub struct LiveTaps {
    entries: HashMap<u64, Entry>,
}

struct Entry {
    request: admin::TapRequest,
    records: mpsc::Sender<admin::TappedRecord>,
    /// Told once per runner that attached the tap.
    attached: mpsc::UnboundedSender<()>,
    /// Records dropped because the client read too slowly.
    skipped: u64,
}

impl LiveTaps {
    /// Registers tap `id`; returns where its records and its runners'
    /// attachments arrive.
    pub fn open(
        &mut self,
        id: u64,
        request: admin::TapRequest,
    ) -> (
        mpsc::Receiver<admin::TappedRecord>,
        mpsc::UnboundedReceiver<()>,
    ) {
        let (records, receiver) = mpsc::channel(CLIENT_BUFFER);
        let (attached, attachments) = mpsc::unbounded_channel();
        self.entries.insert(
            id,
            Entry {
                request,
                records,
                attached,
                skipped: 0,
            },
        );
        (receiver, attachments)
    }

    pub fn close(&mut self, id: u64) {
        self.entries.remove(&id);
    }

    /// The taps a runner that just joined must attach.
    pub fn starts(&self) -> Vec<(u64, admin::TapRequest)> {
        self.entries
            .iter()
            .map(|(id, entry)| (*id, entry.request.clone()))
            .collect()
    }

    /// Relays what a runner sent for tap `id`; an empty batch says the
    /// runner attached it.
    pub fn relay(&mut self, id: u64, records: Vec<admin::TappedRecord>) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        if records.is_empty() {
            let _ = entry.attached.send(());
            return;
        }
        for mut record in records {
            record.skipped_before += entry.skipped;
            match entry.records.try_send(record) {
                Ok(()) => entry.skipped = 0,
                Err(mpsc::error::TrySendError::Full(record)) => {
                    entry.skipped = record.skipped_before + 1;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
    }
}

/// Stops a tap on the runners when dropped.
pub struct TapGuard {
    pub(crate) links: crate::control::RunnerLinks,
    pub(crate) id: u64,
}

impl Drop for TapGuard {
    fn drop(&mut self) {
        self.links.untap(self.id);
    }
}

/// The records of one tap, as a gRPC server stream; dropping it stops the tap.
pub struct TapStream {
    pub(crate) records: mpsc::Receiver<admin::TappedRecord>,
    pub(crate) _guard: TapGuard,
}

impl futures::Stream for TapStream {
    type Item = Result<admin::TappedRecord, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.records.poll_recv(cx).map(|record| record.map(Ok))
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
        taps.relay(1, Vec::new());
        assert!(attached.try_recv().is_ok());
        taps.relay(
            1,
            (0..CLIENT_BUFFER + 3)
                .map(|n| record(&n.to_string()))
                .collect(),
        );
        for _ in 0..CLIENT_BUFFER {
            records.try_recv().expect("buffered");
        }
        taps.relay(1, vec![record("next")]);
        let next = records.try_recv().expect("relayed");
        assert_eq!((next.value_json.as_str(), next.skipped_before), ("next", 3));
        taps.close(1);
        taps.relay(1, vec![record("gone")]);
        assert!(records.try_recv().is_err());
    }
}
