//! The conformance kit: one black-box suite, run over the wire against a
//! connector sidecar in any language, that checks what the runner relies
//! on. `weir-conformance` runs it from the command line.
//!
//! Checks: version negotiation; a source task's lifecycle order (Opened
//! first, no batch before credit, never more than the credit, Stopped
//! last); resume from committed positions (nothing committed comes again);
//! a sink's put/flush/pre-commit answered in order with their ids; a
//! stream that does not start with Open is refused; a runner that
//! vanishes mid-task leaves the sidecar able to serve the next task; and a
//! source stream left idle stays connected while the runner's liveness
//! probe ([`crate::liveness`]) asks every second, then delivers.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::Channel;
use weir_proto::connector::v2 as pb;
use weir_proto::connector::v2::connector_client::ConnectorClient;
use weir_proto::connector::v2::sink_client::SinkClient;
use weir_proto::connector::v2::source_client::SourceClient;

use crate::liveness::{PROBE_INTERVAL, UNRESPONSIVE_AFTER, probe};

/// How long the kit waits for any one answer.
const DEADLINE: Duration = Duration::from_secs(10);

/// What to test, and with which configs.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub source: Option<(String, HashMap<String, String>)>,
    pub sink: Option<(String, HashMap<String, String>)>,
    /// How long the idle check holds a source stream idle.
    pub idle: Duration,
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub outcome: Result<(), String>,
}

type Outcome = Result<(), String>;

async fn next<T>(events: &mut Streaming<T>, what: &str) -> Result<T, String> {
    match tokio::time::timeout(DEADLINE, events.message()).await {
        Err(_) => Err(format!("no {what} within {DEADLINE:?}")),
        Ok(Err(status)) => Err(format!("stream failed while waiting for {what}: {status}")),
        Ok(Ok(None)) => Err(format!("stream ended while waiting for {what}")),
        Ok(Ok(Some(event))) => Ok(event),
    }
}

fn source(command: pb::source_command::Command) -> pb::SourceCommand {
    pb::SourceCommand {
        command: Some(command),
    }
}

fn sink(command: pb::sink_command::Command) -> pb::SinkCommand {
    pb::SinkCommand {
        command: Some(command),
    }
}

struct SourceRun {
    commands: mpsc::Sender<pb::SourceCommand>,
    events: Streaming<pb::SourceEvent>,
}

impl SourceRun {
    async fn open(
        channel: &Channel,
        class: &str,
        config: &HashMap<String, String>,
        positions: Vec<pb::SourcePosition>,
    ) -> Result<SourceRun, String> {
        let (commands, receiver) = mpsc::channel(8);
        let open = pb::OpenSource {
            identity: Some(pb::TaskIdentity {
                connector: "conformance".into(),
                task: 0,
                epoch: 1,
            }),
            class: class.to_owned(),
            config: config.clone(),
            positions,
        };
        commands
            .send(source(pb::source_command::Command::Open(open)))
            .await
            .map_err(|e| e.to_string())?;
        let mut events = SourceClient::new(channel.clone())
            .run(ReceiverStream::new(receiver))
            .await
            .map_err(|status| format!("Source.Run refused: {status}"))?
            .into_inner();
        match next(&mut events, "Opened").await?.event {
            Some(pb::source_event::Event::Opened(_)) => Ok(SourceRun { commands, events }),
            other => Err(format!("the first event was {other:?}, not Opened")),
        }
    }

    async fn send(&self, command: pb::source_command::Command) -> Outcome {
        self.commands
            .send(source(command))
            .await
            .map_err(|_| "the stream closed".to_owned())
    }

    /// Grants `credit` and collects batches until `wanted` records came.
    async fn take(&mut self, credit: u32, wanted: usize) -> Result<Vec<pb::SourceRecord>, String> {
        self.send(pb::source_command::Command::Credit(pb::Credit {
            records: credit,
            bytes: 0,
        }))
        .await?;
        let mut records = Vec::new();
        while records.len() < wanted {
            match next(&mut self.events, "a batch").await?.event {
                Some(pb::source_event::Event::Batch(batch)) => records.extend(batch.records),
                Some(pb::source_event::Event::Error(error)) => {
                    return Err(format!("the task failed: {}", error.message));
                }
                other => return Err(format!("expected a batch, got {other:?}")),
            }
            if records.len() > credit as usize {
                return Err(format!(
                    "{} records sent for a credit of {credit}",
                    records.len()
                ));
            }
        }
        Ok(records)
    }

    async fn stop(mut self) -> Outcome {
        self.send(pb::source_command::Command::Stop(pb::Stop {}))
            .await?;
        loop {
            match next(&mut self.events, "Stopped").await?.event {
                Some(pb::source_event::Event::Stopped(_)) => {}
                Some(pb::source_event::Event::Batch(_)) => continue,
                other => return Err(format!("expected Stopped, got {other:?}")),
            }
            // Nothing may follow Stopped.
            return match tokio::time::timeout(Duration::from_millis(500), self.events.message())
                .await
            {
                Ok(Ok(Some(event))) => Err(format!("{event:?} after Stopped")),
                _ => Ok(()),
            };
        }
    }
}

async fn check_handshake(channel: &Channel) -> Outcome {
    let mut client = ConnectorClient::new(channel.clone());
    let reply = client
        .handshake(pb::HandshakeRequest {
            versions: vec![pb::PROTOCOL_VERSION, 99],
            runner_id: "conformance".into(),
        })
        .await
        .map_err(|status| format!("handshake failed: {status}"))?
        .into_inner();
    if reply.version != pb::PROTOCOL_VERSION {
        return Err(format!(
            "chose version {}, not {}",
            reply.version,
            pb::PROTOCOL_VERSION
        ));
    }
    if reply.plugins.is_empty() {
        return Err("no plugins described".into());
    }
    match client
        .handshake(pb::HandshakeRequest {
            versions: vec![1],
            runner_id: "conformance".into(),
        })
        .await
    {
        Err(status) if status.code() == tonic::Code::FailedPrecondition => Ok(()),
        other => Err(format!("an unknown version was not refused: {other:?}")),
    }
}

async fn check_source_lifecycle(
    channel: &Channel,
    class: &str,
    config: &HashMap<String, String>,
) -> Outcome {
    let mut run = SourceRun::open(channel, class, config, Vec::new()).await?;
    // No credit yet: nothing may arrive.
    if let Ok(Ok(Some(event))) =
        tokio::time::timeout(Duration::from_millis(500), run.events.message()).await
    {
        return Err(format!("{event:?} sent before any credit"));
    }
    run.take(1, 1).await?;
    run.stop().await
}

async fn check_source_resume(
    channel: &Channel,
    class: &str,
    config: &HashMap<String, String>,
) -> Outcome {
    let mut first = SourceRun::open(channel, class, config, Vec::new()).await?;
    let records = first.take(3, 3).await?;
    let committed: Vec<pb::SourcePosition> = records
        .iter()
        .map(|r| pb::SourcePosition {
            partition_json: r.partition_json.clone(),
            offset_json: r.offset_json.clone(),
        })
        .collect();
    first
        .send(pb::source_command::Command::Committed(pb::Committed {
            positions: committed.clone(),
        }))
        .await?;
    first.stop().await?;
    let seen: BTreeSet<(String, String)> = committed
        .iter()
        .map(|p| (p.partition_json.clone(), p.offset_json.clone()))
        .collect();
    let last = committed.last().cloned().into_iter().collect();
    let mut second = SourceRun::open(channel, class, config, last).await?;
    let again = second.take(1, 1).await?;
    second.stop().await?;
    match again
        .iter()
        .find(|r| seen.contains(&(r.partition_json.clone(), r.offset_json.clone())))
    {
        Some(repeated) => Err(format!(
            "after resuming from committed positions, {} {} came again",
            repeated.partition_json, repeated.offset_json
        )),
        None => Ok(()),
    }
}

async fn check_source_survives_a_vanished_runner(
    channel: &Channel,
    class: &str,
    config: &HashMap<String, String>,
) -> Outcome {
    let run = SourceRun::open(channel, class, config, Vec::new()).await?;
    drop(run);
    let run = SourceRun::open(channel, class, config, Vec::new()).await?;
    run.stop().await
}

/// A source stream granted no credit sits idle for `idle` while the
/// runner's liveness probe asks every [`PROBE_INTERVAL`]: every probe is
/// answered, the stream neither ends nor sends, and afterwards it delivers
/// and stops cleanly.
async fn check_source_stays_connected_while_idle(
    channel: &Channel,
    class: &str,
    config: &HashMap<String, String>,
    idle: Duration,
) -> Outcome {
    let mut run = SourceRun::open(channel, class, config, Vec::new()).await?;
    let started = tokio::time::Instant::now();
    while started.elapsed() < idle {
        if let Err(status) = probe(channel, UNRESPONSIVE_AFTER).await {
            return Err(format!(
                "a liveness probe went unanswered after {:.0?} idle: {status}",
                started.elapsed()
            ));
        }
        match tokio::time::timeout(PROBE_INTERVAL, run.events.message()).await {
            Err(_) => {}
            Ok(Ok(Some(event))) => return Err(format!("{event:?} while idle with no credit")),
            Ok(Ok(None)) => {
                return Err(format!(
                    "the stream ended after {:.0?} idle",
                    started.elapsed()
                ));
            }
            Ok(Err(status)) => {
                return Err(format!(
                    "the stream broke after {:.0?} idle: {status}",
                    started.elapsed()
                ));
            }
        }
    }
    run.take(4, 1).await?;
    run.stop().await
}

async fn check_refuses_a_stream_without_open(channel: &Channel) -> Outcome {
    let (commands, receiver) = mpsc::channel(1);
    commands
        .send(source(pb::source_command::Command::Stop(pb::Stop {})))
        .await
        .map_err(|e| e.to_string())?;
    let refused = match SourceClient::new(channel.clone())
        .run(ReceiverStream::new(receiver))
        .await
    {
        Err(status) => Some(status),
        Ok(response) => {
            let mut events = response.into_inner();
            match tokio::time::timeout(DEADLINE, events.message()).await {
                Ok(Err(status)) => Some(status),
                _ => None,
            }
        }
    };
    match refused {
        Some(status) if status.code() == tonic::Code::InvalidArgument => Ok(()),
        other => Err(format!(
            "a stream starting with Stop was not refused as INVALID_ARGUMENT: {other:?}"
        )),
    }
}

async fn check_sink(channel: &Channel, class: &str, config: &HashMap<String, String>) -> Outcome {
    let (commands, receiver) = mpsc::channel(8);
    let open = pb::OpenSink {
        identity: Some(pb::TaskIdentity {
            connector: "conformance".into(),
            task: 0,
            epoch: 1,
        }),
        class: class.to_owned(),
        config: config.clone(),
    };
    commands
        .send(sink(pb::sink_command::Command::Open(open)))
        .await
        .map_err(|e| e.to_string())?;
    let mut events = SinkClient::new(channel.clone())
        .run(ReceiverStream::new(receiver))
        .await
        .map_err(|status| format!("Sink.Run refused: {status}"))?
        .into_inner();
    match next(&mut events, "Opened").await?.event {
        Some(pb::sink_event::Event::Opened(_)) => {}
        other => return Err(format!("the first event was {other:?}, not Opened")),
    }
    let record = |offset: i64| pb::SinkRecord {
        topic: "conformance".into(),
        partition: 0,
        offset,
        key: None,
        value: Some(pb::Data {
            kind: Some(pb::data::Kind::Structured(pb::Structured {
                schema: Some(pb::Schema {
                    r#type: "STRING".into(),
                    ..Default::default()
                }),
                value: Some(pb::Value {
                    kind: Some(pb::value::Kind::String(format!("conformance {offset}"))),
                }),
            })),
        }),
        timestamp_ms: None,
        headers: Vec::new(),
    };
    let send = |command| {
        let commands = commands.clone();
        async move {
            commands
                .send(sink(command))
                .await
                .map_err(|_| "the stream closed".to_owned())
        }
    };
    send(pb::sink_command::Command::Put(pb::Put {
        id: 1,
        records: vec![record(0), record(1)],
    }))
    .await?;
    send(pb::sink_command::Command::Put(pb::Put {
        id: 2,
        records: vec![record(2)],
    }))
    .await?;
    let offsets = vec![pb::TopicPartitionOffset {
        topic: "conformance".into(),
        partition: 0,
        offset: 3,
    }];
    send(pb::sink_command::Command::Flush(pb::Flush {
        id: 3,
        offsets: offsets.clone(),
    }))
    .await?;
    send(pb::sink_command::Command::PreCommit(pb::PreCommit {
        id: 4,
        offsets: offsets.clone(),
    }))
    .await?;
    for expected in 1..=4u64 {
        let event = next(&mut events, "an answer").await?.event;
        let (id, error) = match event {
            Some(pb::sink_event::Event::Put(r)) => (r.id, r.error),
            Some(pb::sink_event::Event::Flush(r)) => (r.id, r.error),
            Some(pb::sink_event::Event::PreCommit(r)) => {
                if r.error.is_none() && r.offsets != offsets {
                    return Err(format!(
                        "pre-commit returned {:?}, not the flushed offsets",
                        r.offsets
                    ));
                }
                (r.id, r.error)
            }
            other => return Err(format!("expected an answer, got {other:?}")),
        };
        if id != expected {
            return Err(format!("answer {id} came where {expected} was due"));
        }
        if let Some(error) = error {
            return Err(format!("request {id} failed: {}", error.message));
        }
    }
    send(pb::sink_command::Command::Stop(pb::Stop {})).await?;
    match next(&mut events, "Stopped").await?.event {
        Some(pb::sink_event::Event::Stopped(_)) => Ok(()),
        other => Err(format!("expected Stopped, got {other:?}")),
    }
}

/// Runs every check that applies to `target` against the sidecar on `channel`.
pub async fn run(channel: &Channel, target: &Target) -> Vec<Check> {
    let mut checks = vec![
        Check {
            name: "handshake negotiates the version",
            outcome: check_handshake(channel).await,
        },
        Check {
            name: "a stream without Open is refused",
            outcome: check_refuses_a_stream_without_open(channel).await,
        },
    ];
    if let Some((class, config)) = &target.source {
        checks.push(Check {
            name: "source lifecycle and credit",
            outcome: check_source_lifecycle(channel, class, config).await,
        });
        checks.push(Check {
            name: "source resumes after committed positions",
            outcome: check_source_resume(channel, class, config).await,
        });
        checks.push(Check {
            name: "source survives a vanished runner",
            outcome: check_source_survives_a_vanished_runner(channel, class, config).await,
        });
        checks.push(Check {
            name: "source stays connected while idle",
            outcome: check_source_stays_connected_while_idle(channel, class, config, target.idle)
                .await,
        });
    }
    if let Some((class, config)) = &target.sink {
        checks.push(Check {
            name: "sink put, flush and pre-commit in order",
            outcome: check_sink(channel, class, config).await,
        });
    }
    checks
}
