//! Sidecar plugins seen through the connector API: a [`SidecarPlugin`] is a
//! [`ConnectorPlugin`] whose calls go over connector protocol v2, and its
//! tasks are [`SourceTask`]/[`SinkTask`] proxies over one stream each. The
//! record loops in `source` and `sink` run them unchanged.
//!
//! A sidecar that dies (its connection closes), hangs (its liveness probe
//! goes unanswered, [`super::liveness`]) or sends a malformed message fails
//! only the tasks using it, with a trace that names the plugin.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::Channel;
use weir_connect::api::{
    ConnectorContext, ConnectorError, ConnectorKind, ConnectorPlugin, EarlierFailure, RecordError,
    Result, SinkRecord, SinkTask, SourcePosition, SourceRecord, SourceTask, Task, TaskIdentity,
    TopicPartitionOffset,
};
use weir_connect::codec::{self, SchemaCache, SourceEventIn};
use weir_connect::config::{ConfigDef, ConfigMap, Direction};
use weir_connect::wire;
use weir_proto::connector::v2 as pb;
use weir_proto::connector::v2::connector_client::ConnectorClient;

use super::liveness::Liveness;

/// How long a sidecar may take to answer a call that is not a wait for data.
const CALL_DEADLINE: Duration = Duration::from_secs(30);

/// What the runner knows of one plugin a sidecar serves.
pub struct SidecarPlugin {
    /// The manifest's name, for messages.
    sidecar: String,
    class: &'static str,
    kind: Direction,
    version: &'static str,
    config_def: ConfigDef,
    channel: Channel,
    liveness: Liveness,
}

impl SidecarPlugin {
    /// The plugins a sidecar described in its handshake.
    pub fn from_handshake(
        sidecar: &str,
        channel: &Channel,
        liveness: &Liveness,
        handshake: &pb::HandshakeResponse,
    ) -> Vec<SidecarPlugin> {
        handshake
            .plugins
            .iter()
            .filter_map(|plugin| match wire::plugin_from_wire(plugin) {
                Ok(described) => Some(SidecarPlugin {
                    sidecar: sidecar.to_owned(),
                    class: described.class,
                    kind: described.kind,
                    version: described.version,
                    config_def: described.config_def,
                    channel: channel.clone(),
                    liveness: liveness.clone(),
                }),
                Err(error) => {
                    tracing::error!(%sidecar, %error, "plugin skipped");
                    None
                }
            })
            .collect()
    }

    fn unreachable(&self, what: &str, error: impl std::fmt::Display) -> ConnectorError {
        ConnectorError::Fatal(format!(
            "sidecar plugin {} ({}): {what}: {error}",
            self.sidecar, self.class
        ))
    }
}

#[async_trait]
impl ConnectorPlugin for SidecarPlugin {
    fn class(&self) -> &'static str {
        self.class
    }

    fn kind(&self) -> ConnectorKind {
        self.kind
    }

    fn version(&self) -> &'static str {
        self.version
    }

    fn origin(&self) -> String {
        format!("sidecar plugin {}", self.sidecar)
    }

    fn config_def(&self) -> ConfigDef {
        self.config_def.clone()
    }

    async fn validate(&self, config: &ConfigMap) -> Vec<(String, Vec<String>)> {
        let mut request = tonic::Request::new(pb::ValidateRequest {
            class: self.class.to_owned(),
            config: config.clone().into_iter().collect(),
        });
        request.set_timeout(CALL_DEADLINE);
        match ConnectorClient::new(self.channel.clone())
            .validate(request)
            .await
        {
            Ok(reply) => reply
                .into_inner()
                .errors
                .into_iter()
                .map(|e| (e.name, e.errors))
                .collect(),
            Err(status) => vec![(
                "connector.class".to_owned(),
                vec![
                    self.unreachable("validate failed", status.message())
                        .to_string(),
                ],
            )],
        }
    }

    async fn task_configs(&self, config: &ConfigMap, max_tasks: usize) -> Result<Vec<ConfigMap>> {
        let mut request = tonic::Request::new(pb::TaskConfigsRequest {
            class: self.class.to_owned(),
            connector: config.get("name").cloned().unwrap_or_default(),
            config: config.clone().into_iter().collect(),
            max_tasks: i32::try_from(max_tasks).unwrap_or(i32::MAX),
        });
        request.set_timeout(CALL_DEADLINE);
        let reply = ConnectorClient::new(self.channel.clone())
            .task_configs(request)
            .await
            .map_err(|status| self.unreachable("task configs failed", status.message()))?;
        Ok(reply
            .into_inner()
            .tasks
            .into_iter()
            .map(|task| task.config.into_iter().collect())
            .collect())
    }

    /// Follows the sidecar's Watch stream: each ReconfigureTasks event asks
    /// the runner for new task configs; an error event or a lost sidecar
    /// fails the connector.
    async fn monitor(&self, config: &ConfigMap, context: ConnectorContext) -> Result<()> {
        let request = pb::WatchRequest {
            class: self.class.to_owned(),
            connector: config.get("name").cloned().unwrap_or_default(),
            config: config.clone().into_iter().collect(),
        };
        let mut events = ConnectorClient::new(self.channel.clone())
            .watch(request)
            .await
            .map_err(|status| self.unreachable("watch failed", status.message()))?
            .into_inner();
        loop {
            let event = tokio::select! {
                event = events.message() => event,
                reason = self.liveness.lost() => return Err(self.unreachable("connection lost", reason)),
            };
            match event {
                Ok(Some(pb::ConnectorEvent {
                    event: Some(pb::connector_event::Event::ReconfigureTasks(_)),
                })) => context.request_task_reconfiguration(),
                Ok(Some(pb::ConnectorEvent {
                    event: Some(pb::connector_event::Event::Error(error)),
                })) => {
                    return Err(ConnectorError::Fatal(format!(
                        "sidecar plugin {} ({}): {}",
                        self.sidecar, self.class, error.message
                    )));
                }
                Ok(Some(_)) => {}
                Ok(None) => return Ok(()),
                Err(status) => return Err(self.unreachable("connection lost", status.message())),
            }
        }
    }

    fn create_task(&self) -> Task {
        self.create_task_for(&TaskIdentity::default())
    }

    fn create_task_for(&self, identity: &TaskIdentity) -> Task {
        let link = Link {
            sidecar: self.sidecar.clone(),
            class: self.class,
            identity: identity.clone(),
            channel: self.channel.clone(),
            liveness: self.liveness.clone(),
        };
        match self.kind {
            Direction::Source => Task::Source(Box::new(RemoteSource {
                credit_gauge: crate::metrics::CreditGauge::new(&identity.connector, identity.task),
                link,
                stream: None,
                credit: 0,
                received: std::collections::VecDeque::new(),
            })),
            Direction::Sink => Task::Sink(Box::new(RemoteSink {
                link,
                stream: None,
                next_id: 0,
                schemas: SchemaCache::default(),
                in_flight: None,
            })),
        }
    }
}

/// What a task proxy needs to reach its sidecar.
struct Link {
    sidecar: String,
    class: &'static str,
    identity: TaskIdentity,
    channel: Channel,
    liveness: Liveness,
}

impl Link {
    /// A task error the sidecar reported, prefixed with the plugin, kind kept.
    fn reported(&self, error: &pb::TaskError) -> ConnectorError {
        let prefixed = pb::TaskError {
            kind: error.kind,
            message: format!(
                "sidecar plugin {} ({}), task {}-{}: {}",
                self.sidecar,
                self.class,
                self.identity.connector,
                self.identity.task,
                error.message
            ),
        };
        wire::error_from_wire(&prefixed)
    }

    fn fail(&self, what: impl std::fmt::Display) -> ConnectorError {
        ConnectorError::Fatal(format!(
            "sidecar plugin {} ({}), task {}-{}: {what}",
            self.sidecar, self.class, self.identity.connector, self.identity.task
        ))
    }

    fn identity(&self) -> pb::TaskIdentity {
        pb::TaskIdentity {
            connector: self.identity.connector.clone(),
            task: self.identity.task,
            epoch: self.identity.epoch,
        }
    }
}

/// Where a task's stream is in its lifecycle, for the events that say so;
/// sources and sinks share `Opened`, `Stopped` and errors.
enum Phase<'a> {
    Opened,
    Stopped,
    Error(&'a pb::TaskError),
    Other,
}

trait Lifecycle: std::fmt::Debug {
    fn phase(&self) -> Phase<'_>;
}

impl Lifecycle for SourceEventIn {
    fn phase(&self) -> Phase<'_> {
        let SourceEventIn::Other(event) = self else {
            return Phase::Other;
        };
        match &event.event {
            Some(pb::source_event::Event::Opened(_)) => Phase::Opened,
            Some(pb::source_event::Event::Stopped(_)) => Phase::Stopped,
            Some(pb::source_event::Event::Error(error)) => Phase::Error(error),
            _ => Phase::Other,
        }
    }
}

impl Lifecycle for pb::SinkEvent {
    fn phase(&self) -> Phase<'_> {
        match &self.event {
            Some(pb::sink_event::Event::Opened(_)) => Phase::Opened,
            Some(pb::sink_event::Event::Stopped(_)) => Phase::Stopped,
            Some(pb::sink_event::Event::Error(error)) => Phase::Error(error),
            _ => Phase::Other,
        }
    }
}

/// One task's stream: commands out, events in.
struct Session<C, E> {
    commands: mpsc::Sender<C>,
    events: Streaming<E>,
}

impl<C, E> Session<C, E> {
    async fn send(&self, link: &Link, command: C) -> Result<()> {
        self.commands
            .send(command)
            .await
            .map_err(|_| link.fail("the stream to the sidecar is closed"))
    }

    /// The next event; a closed or broken stream, or a sidecar that stopped
    /// answering its liveness probe, is a fatal error.
    async fn next(&mut self, link: &Link) -> Result<E> {
        let event = tokio::select! {
            event = self.events.message() => event,
            reason = link.liveness.lost() => {
                return Err(link.fail(format!("connection to the sidecar lost: {reason}")));
            }
        };
        match event {
            Ok(Some(event)) => Ok(event),
            Ok(None) => Err(link.fail("the sidecar closed the task's stream")),
            Err(status) => Err(link.fail(format!(
                "connection to the sidecar lost: {}",
                status.message()
            ))),
        }
    }

    async fn next_within(&mut self, link: &Link, what: &str) -> Result<E> {
        match tokio::time::timeout(CALL_DEADLINE, self.next(link)).await {
            Ok(event) => event,
            Err(_) => Err(link.fail(format!("no answer to {what} within {CALL_DEADLINE:?}"))),
        }
    }
}

impl<C, E: Lifecycle> Session<C, E> {
    /// Waits for the answer to Open.
    async fn opened(&mut self, link: &Link) -> Result<()> {
        let event = self.next_within(link, "Open").await?;
        match event.phase() {
            Phase::Opened => Ok(()),
            Phase::Error(error) => Err(link.reported(error)),
            _ => Err(malformed(link, format!("{event:?} before Opened"))),
        }
    }

    /// Sends Stop and waits for Stopped. What comes first (batches on their
    /// way, answers to requests a stop deadline interrupted) is dropped:
    /// none of it was committed.
    async fn stop(mut self, link: &Link, stop: C) -> Result<()> {
        self.send(link, stop).await?;
        loop {
            let event = self.next_within(link, "Stop").await?;
            match event.phase() {
                Phase::Stopped => return Ok(()),
                Phase::Error(error) => {
                    tracing::warn!(sidecar = %link.sidecar, message = %error.message, "error while stopping");
                }
                _ => {}
            }
        }
    }
}

/// A task's stream, or the error of a task that is not open.
fn open_session<'a, C, E>(
    link: &Link,
    stream: &'a mut Option<Session<C, E>>,
) -> Result<&'a mut Session<C, E>> {
    stream
        .as_mut()
        .ok_or_else(|| link.fail("the task is not open"))
}

/// Opens a task's stream with `first` (its Open) and waits until the
/// sidecar answers Opened.
async fn open_stream<C, E, F, Fut>(link: &Link, first: C, call: F) -> Result<Session<C, E>>
where
    C: Send + 'static,
    E: Lifecycle,
    F: FnOnce(Channel, ReceiverStream<C>) -> Fut,
    Fut: std::future::Future<
            Output = std::result::Result<tonic::Response<Streaming<E>>, tonic::Status>,
        >,
{
    let (commands, receiver) = mpsc::channel(16);
    commands
        .send(first)
        .await
        .map_err(|_| link.fail("cannot open the task's stream"))?;
    let response = tokio::time::timeout(
        CALL_DEADLINE,
        call(link.channel.clone(), ReceiverStream::new(receiver)),
    )
    .await
    .map_err(|_| link.fail("the sidecar did not answer the task's Open in time"))?
    .map_err(|status| link.fail(format!("cannot reach the sidecar: {}", status.message())))?;
    let mut session = Session {
        commands,
        events: response.into_inner(),
    };
    session.opened(link).await?;
    Ok(session)
}

fn malformed(link: &Link, error: impl std::fmt::Display) -> ConnectorError {
    link.fail(format!("malformed message: {error}"))
}

struct RemoteSource {
    link: Link,
    stream: Option<Session<pb::SourceCommand, SourceEventIn>>,
    /// Records the sidecar may still send.
    credit: u32,
    /// `credit`, for `/metrics`.
    credit_gauge: crate::metrics::CreditGauge,
    /// Records received ahead of the poll that returns them.
    received: std::collections::VecDeque<SourceRecord>,
}

/// The source proxy keeps credit for this many polls outstanding, so the
/// sidecar makes the next batch while the runner converts and sends this one.
const CREDIT_POLLS_AHEAD: u32 = 2;

fn source_command(command: pb::source_command::Command) -> pb::SourceCommand {
    pb::SourceCommand {
        command: Some(command),
    }
}

#[async_trait]
impl SourceTask for RemoteSource {
    async fn open(&mut self, config: &ConfigMap, positions: &[SourcePosition]) -> Result<()> {
        let open = source_command(pb::source_command::Command::Open(pb::OpenSource {
            identity: Some(self.link.identity()),
            class: self.link.class.to_owned(),
            config: config.clone().into_iter().collect(),
            positions: positions.iter().map(wire::position_to_wire).collect(),
        }));
        let session = open_stream(&self.link, open, codec::open_source_stream).await?;
        self.stream = Some(session);
        // A new stream: the sidecar holds no credit and has sent nothing yet.
        self.credit = 0;
        self.credit_gauge.set(0);
        self.received.clear();
        Ok(())
    }

    /// Returns records the sidecar sent, at most `max_records`, waiting for
    /// a batch only when none is in hand. Credit is topped up to
    /// [`CREDIT_POLLS_AHEAD`] polls' worth, counting records in hand, so a
    /// fast sidecar is a batch ahead and a slow runner holds it back.
    async fn poll(&mut self, max_records: usize) -> Result<Vec<SourceRecord>> {
        let wanted = u32::try_from(max_records).unwrap_or(u32::MAX);
        let window = wanted.saturating_mul(CREDIT_POLLS_AHEAD);
        let link = &self.link;
        let session = open_session(link, &mut self.stream)?;
        let in_hand = u32::try_from(self.received.len())
            .unwrap_or(u32::MAX)
            .saturating_add(self.credit);
        if in_hand < window {
            let credit = pb::Credit {
                records: window - in_hand,
                bytes: 0,
            };
            session
                .send(
                    link,
                    source_command(pb::source_command::Command::Credit(credit)),
                )
                .await?;
            self.credit += window - in_hand;
            self.credit_gauge.set(self.credit);
        }
        if self.received.is_empty() {
            // Waiting here is waiting for data; a dead or hung sidecar ends
            // the wait (its connection closes, or its liveness probe fails).
            let records = match session.next(link).await? {
                SourceEventIn::Batch(records) => records,
                SourceEventIn::Other(event) => match event.event {
                    Some(pb::source_event::Event::Batch(batch)) => {
                        wire::source_records_from_wire(batch.records)
                            .map_err(|e| malformed(link, e))?
                    }
                    Some(pb::source_event::Event::Error(error)) => {
                        return Err(link.reported(&error));
                    }
                    other => return Err(malformed(link, format!("unexpected {other:?}"))),
                },
            };
            let sent = u32::try_from(records.len()).unwrap_or(u32::MAX);
            if sent > self.credit {
                return Err(malformed(link, "a batch larger than the credit granted"));
            }
            self.credit -= sent;
            self.credit_gauge.set(self.credit);
            self.received.extend(records);
        }
        let take = self.received.len().min(max_records);
        Ok(self.received.drain(..take).collect())
    }

    async fn commit(&mut self, positions: &[SourcePosition]) -> Result<()> {
        let committed = pb::Committed {
            positions: positions.iter().map(wire::position_to_wire).collect(),
        };
        let link = &self.link;
        let Some(session) = self.stream.as_mut() else {
            return Ok(());
        };
        session
            .send(
                link,
                source_command(pb::source_command::Command::Committed(committed)),
            )
            .await
    }

    async fn stop(&mut self) -> Result<()> {
        match self.stream.take() {
            Some(session) => {
                let stop = source_command(pb::source_command::Command::Stop(pb::Stop {}));
                session.stop(&self.link, stop).await
            }
            None => Ok(()),
        }
    }
}

struct RemoteSink {
    link: Link,
    stream: Option<Session<Bytes, pb::SinkEvent>>,
    next_id: u64,
    /// The schemas this stream's puts sent last, encoded.
    schemas: SchemaCache,
    /// The put the sidecar has not answered yet: its id and its command,
    /// kept to take its records back should it fail. `put` returns once its
    /// batch is sent, so the runner reads and converts the next batch while
    /// the sidecar writes this one. At most one is in flight: the next is
    /// sent only after this one's answer, so the sidecar never sees a put
    /// after one that failed, and a retried record keeps its place.
    in_flight: Option<(u64, Bytes)>,
}

fn sink_command(command: pb::sink_command::Command) -> pb::SinkCommand {
    pb::SinkCommand {
        command: Some(command),
    }
}

impl RemoteSink {
    /// Sends request `id` (after the put in flight is answered) and waits
    /// for its answer.
    async fn call(&mut self, id: u64, command: Bytes) -> Result<pb::sink_event::Event> {
        self.settle_in_flight().await?;
        let link = &self.link;
        let session = open_session(link, &mut self.stream)?;
        session.send(link, command).await?;
        self.answer(id).await
    }

    /// Waits for the answer to request `id`. Answers to earlier requests
    /// that were given up (a stop deadline interrupted them) are skipped.
    /// No deadline: a slow `put` is as legitimate as in-process; a dead or
    /// frozen sidecar ends the wait (liveness). Cancel-safe.
    async fn answer(&mut self, id: u64) -> Result<pb::sink_event::Event> {
        let link = &self.link;
        let session = open_session(link, &mut self.stream)?;
        loop {
            let event = session.next(link).await?.event;
            let answered = match &event {
                Some(pb::sink_event::Event::Put(r)) => Some(r.id),
                Some(pb::sink_event::Event::Flush(r)) => Some(r.id),
                Some(pb::sink_event::Event::PreCommit(r)) => Some(r.id),
                _ => None,
            };
            if answered.is_some_and(|answered| answered < id) {
                continue;
            }
            return event.ok_or_else(|| malformed(link, "an empty event"));
        }
    }

    /// Waits for the answer to the put in flight, if any: its failed
    /// records come back as [`ConnectorError::Earlier`].
    async fn settle_in_flight(&mut self) -> Result<()> {
        let Some((id, _)) = self.in_flight else {
            return Ok(());
        };
        let event = self.answer(id).await?;
        if let pb::sink_event::Event::Error(error) = &event {
            // An error event answers no put: it is an earlier assign or
            // revoke failing (they have no answer of their own). The put in
            // flight stays in flight: its own answer is still to come, and
            // its records must not be lost if this error is retried.
            return Err(self.link.reported(error));
        }
        let Some((_, command)) = self.in_flight.take() else {
            return Ok(());
        };
        match event {
            pb::sink_event::Event::Put(result) => {
                if let Err(error) = outcome(&self.link, id, result.id, result.error) {
                    if !error.is_retriable() {
                        return Err(error);
                    }
                    // The whole batch failed retriably: all of it is put again.
                    let message = error.to_string();
                    let records = self.records_of(command)?;
                    return Err(ConnectorError::Earlier(
                        records
                            .into_iter()
                            .map(|record| EarlierFailure {
                                record,
                                retriable: true,
                                message: message.clone(),
                            })
                            .collect(),
                    ));
                }
                if result.records.is_empty() {
                    return Ok(());
                }
                let mut records: Vec<Option<SinkRecord>> =
                    self.records_of(command)?.into_iter().map(Some).collect();
                let batch = records.len();
                let mut failed: Vec<RecordError> = result
                    .records
                    .iter()
                    .map(wire::record_error_from_wire)
                    .collect();
                failed.sort_by_key(|f| f.index);
                failed.dedup_by_key(|f| f.index);
                failed
                    .into_iter()
                    .map(|failure| {
                        let record = records
                            .get_mut(failure.index)
                            .and_then(Option::take)
                            .ok_or_else(|| {
                                malformed(
                                    &self.link,
                                    format!(
                                        "an error for record {} of a batch of {batch}",
                                        failure.index
                                    ),
                                )
                            })?;
                        Ok(EarlierFailure {
                            record,
                            retriable: failure.retriable,
                            message: failure.message,
                        })
                    })
                    .collect::<Result<Vec<_>>>()
                    .map(ConnectorError::Earlier)
                    .and_then(Err)
            }
            pb::sink_event::Event::Error(error) => Err(self.link.reported(&error)),
            other => Err(malformed(&self.link, format!("unexpected {other:?}"))),
        }
    }

    /// The records of a put this stream sent, decoded again (only when some
    /// of them failed).
    fn records_of(&self, command: Bytes) -> Result<Vec<SinkRecord>> {
        match codec::decode_sink_command(command, &mut codec::SchemaReader::default()) {
            Ok(codec::SinkCommandIn::Put { records, .. }) => Ok(records),
            Ok(codec::SinkCommandIn::Other(_)) => {
                Err(self.link.fail("a put in flight that is not a put"))
            }
            Err(error) => Err(self
                .link
                .fail(format!("a put in flight is unreadable: {error}"))),
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Sends a command that has no answer (partition assign and revoke); a
    /// failure in the sidecar comes back as an error event on the next call.
    async fn tell(&mut self, command: pb::sink_command::Command) -> Result<()> {
        let link = &self.link;
        let session = open_session(link, &mut self.stream)?;
        session
            .send(link, codec::encoded(&sink_command(command)))
            .await
    }
}

fn partitions_to_wire(partitions: &[(String, i32)]) -> pb::Partitions {
    pb::Partitions {
        partitions: partitions
            .iter()
            .map(|(topic, partition)| pb::TopicPartition {
                topic: topic.clone(),
                partition: *partition,
            })
            .collect(),
    }
}

fn outcome(link: &Link, id: u64, answered: u64, error: Option<pb::TaskError>) -> Result<()> {
    if answered != id {
        return Err(malformed(
            link,
            format!("answer {answered} to request {id}"),
        ));
    }
    match error {
        Some(error) => Err(link.reported(&error)),
        None => Ok(()),
    }
}

#[async_trait]
impl SinkTask for RemoteSink {
    async fn open(&mut self, config: &ConfigMap) -> Result<()> {
        let open = sink_command(pb::sink_command::Command::Open(pb::OpenSink {
            identity: Some(self.link.identity()),
            class: self.link.class.to_owned(),
            config: config.clone().into_iter().collect(),
        }));
        let session =
            open_stream(&self.link, codec::encoded(&open), codec::open_sink_stream).await?;
        self.stream = Some(session);
        self.schemas = SchemaCache::default();
        self.in_flight = None;
        Ok(())
    }

    /// Sends the batch once the put before it is answered, and returns
    /// without waiting for this one's answer (see `in_flight`).
    async fn put(&mut self, records: &[SinkRecord]) -> Result<()> {
        let id = self.id();
        // Encoded while the sidecar may still be writing the batch before.
        let put = codec::encode_sink_put(id, records, &mut self.schemas);
        self.settle_in_flight().await?;
        let link = &self.link;
        let session = open_session(link, &mut self.stream)?;
        session.send(link, put.clone()).await?;
        // The send is handed to the connection's task, which would
        // otherwise wait for this task's next pending await (tokio runs a
        // task woken here on this thread, after this one).
        tokio::task::yield_now().await;
        self.in_flight = Some((id, put));
        Ok(())
    }

    fn unsettled(&self) -> bool {
        self.in_flight.is_some()
    }

    async fn settle(&mut self) -> Result<()> {
        self.settle_in_flight().await
    }

    async fn flush(&mut self, offsets: &[TopicPartitionOffset]) -> Result<()> {
        let id = self.id();
        let flush = pb::Flush {
            id,
            offsets: offsets.iter().map(wire::offset_to_wire).collect(),
        };
        match self
            .call(
                id,
                codec::encoded(&sink_command(pb::sink_command::Command::Flush(flush))),
            )
            .await?
        {
            pb::sink_event::Event::Flush(result) => {
                outcome(&self.link, id, result.id, result.error)
            }
            pb::sink_event::Event::Error(error) => Err(self.link.reported(&error)),
            other => Err(malformed(&self.link, format!("unexpected {other:?}"))),
        }
    }

    async fn pre_commit(
        &mut self,
        offsets: &[TopicPartitionOffset],
    ) -> Result<Vec<TopicPartitionOffset>> {
        let id = self.id();
        let pre_commit = pb::PreCommit {
            id,
            offsets: offsets.iter().map(wire::offset_to_wire).collect(),
        };
        match self
            .call(
                id,
                codec::encoded(&sink_command(pb::sink_command::Command::PreCommit(
                    pre_commit,
                ))),
            )
            .await?
        {
            pb::sink_event::Event::PreCommit(result) => {
                outcome(&self.link, id, result.id, result.error)?;
                Ok(result.offsets.iter().map(wire::offset_from_wire).collect())
            }
            pb::sink_event::Event::Error(error) => Err(self.link.reported(&error)),
            other => Err(malformed(&self.link, format!("unexpected {other:?}"))),
        }
    }

    async fn open_partitions(&mut self, partitions: &[(String, i32)]) -> Result<()> {
        self.tell(pb::sink_command::Command::Assign(partitions_to_wire(
            partitions,
        )))
        .await
    }

    async fn close_partitions(&mut self, partitions: &[(String, i32)]) -> Result<()> {
        self.tell(pb::sink_command::Command::Revoke(partitions_to_wire(
            partitions,
        )))
        .await
    }

    async fn stop(&mut self) -> Result<()> {
        // A put still in flight is not committed; nothing is left to settle.
        self.in_flight = None;
        match self.stream.take() {
            Some(session) => {
                let stop = sink_command(pb::sink_command::Command::Stop(pb::Stop {}));
                session.stop(&self.link, codec::encoded(&stop)).await
            }
            None => Ok(()),
        }
    }
}

/// Builds the channel to a sidecar: a Unix socket or TCP, connected lazily
/// (so a restarted sidecar is reached again). Its HTTP/2 keepalive is only a
/// backstop that drops a connection gone silent (a vanished host), at an
/// interval above the 5 minutes stock gRPC servers permit; liveness within
/// seconds is the probe's job ([`super::liveness`]).
pub fn channel(target: &ChannelTarget) -> std::result::Result<Channel, String> {
    let endpoint = match target {
        ChannelTarget::Tcp(address) => tonic::transport::Endpoint::from_shared(address.clone())
            .map_err(|e| format!("invalid address {address}: {e}"))?,
        ChannelTarget::Unix(_) => tonic::transport::Endpoint::from_static("http://sidecar.invalid"),
    };
    let endpoint = weir_connect::liveness::sidecar_endpoint(endpoint);
    Ok(match target {
        ChannelTarget::Tcp(_) => endpoint.connect_lazy(),
        ChannelTarget::Unix(path) => {
            let path = path.clone();
            endpoint.connect_with_connector_lazy(tower::service_fn(move |_| {
                let path = path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(path).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                }
            }))
        }
    })
}

/// Where a sidecar listens.
#[derive(Debug, Clone)]
pub enum ChannelTarget {
    Unix(std::path::PathBuf),
    Tcp(String),
}

/// Handshakes with a sidecar: version negotiation and its plugins.
pub async fn handshake(
    channel: &Channel,
    runner_id: &str,
) -> std::result::Result<pb::HandshakeResponse, tonic::Status> {
    let mut request = tonic::Request::new(pb::HandshakeRequest {
        versions: vec![pb::PROTOCOL_VERSION],
        runner_id: runner_id.to_owned(),
    });
    request.set_timeout(Duration::from_secs(5));
    ConnectorClient::new(channel.clone())
        .handshake(request)
        .await
        .map(tonic::Response::into_inner)
}

#[cfg(test)]
mod tests;
