//! The Rust SDK's sidecar side: serves connector plugins, written once
//! against [`weir_api::api`], over connector protocol v2, on a Unix domain
//! socket or TCP, with `grpc.health.v1`.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use std::sync::Arc;
//! use weir_builtins::file::{FileStreamSink, FileStreamSource};
//! weir_sdk::sdk::Sidecar::new(vec![Arc::new(FileStreamSource), Arc::new(FileStreamSink)])
//!     .serve_unix("/tmp/file-connectors.sock".as_ref(), std::future::pending())
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! Each task is one `Run` stream: `Open` first, then commands, `Stop` last.
//! A source task polls only while it holds credit; it is told `Committed`
//! only after the runner stored the positions.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream, UnixListenerStream};
use tonic::{Request, Response, Status, Streaming};
use weir_proto::connector::v2 as pb;
use weir_proto::connector::v2::connector_server::{Connector, ConnectorServer};

use crate::codec::{self, SinkCommandIn};
use crate::wire;
use weir_api::api as registry;
use weir_api::api::{ConnectorContext, ConnectorPlugin, SinkTask, SourceTask, Task};
use weir_api::config::ConfigMap;

/// The protocol versions this SDK speaks.
const VERSIONS: [u32; 1] = [pb::PROTOCOL_VERSION];

/// At most this many records go into one batch, whatever the credit.
const MAX_BATCH: u32 = 10_000;

/// How long a source task rests after a retriable `poll` failure.
const RETRY_REST: std::time::Duration = std::time::Duration::from_millis(300);

/// A set of plugins served as one sidecar.
#[derive(Clone)]
pub struct Sidecar {
    plugins: Arc<Vec<Arc<dyn ConnectorPlugin>>>,
}

impl Sidecar {
    pub fn new(plugins: Vec<Arc<dyn ConnectorPlugin>>) -> Self {
        Sidecar {
            plugins: Arc::new(plugins),
        }
    }

    fn plugin(&self, class: &str) -> Result<Arc<dyn ConnectorPlugin>, Status> {
        self.plugins
            .iter()
            .find(|p| registry::answers_to(p.class(), class))
            .cloned()
            .ok_or_else(|| Status::not_found(format!("this sidecar serves no plugin {class}")))
    }

    async fn router(&self) -> tonic::transport::server::Router {
        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_serving::<ConnectorServer<ConnectorService>>()
            .await;
        health
            .set_serving::<HandRouted<SourceRun, codec::SourceServerCodec>>()
            .await;
        health
            .set_serving::<HandRouted<SinkRun, codec::SinkServerCodec>>()
            .await;
        tonic::transport::Server::builder()
            .initial_stream_window_size(crate::liveness::STREAM_WINDOW)
            .initial_connection_window_size(crate::liveness::CONNECTION_WINDOW)
            .max_frame_size(crate::liveness::MAX_FRAME)
            .add_service(health_service)
            .add_service(ConnectorServer::new(ConnectorService(self.clone())))
            .add_service(HandRouted::<_, codec::SourceServerCodec>::new(SourceRun(
                self.clone(),
            )))
            .add_service(HandRouted::<_, codec::SinkServerCodec>::new(SinkRun(
                self.clone(),
            )))
    }

    /// Serves on a Unix domain socket (replacing a stale socket file) until
    /// `shutdown` resolves.
    pub async fn serve_unix(
        self,
        path: &Path,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if path.exists() {
            std::fs::remove_file(path)?;
        }
        let listener = tokio::net::UnixListener::bind(path)?;
        let shutdown = async {
            tokio::select! {
                () = shutdown => {}
                () = orphaned() => {
                    tracing::warn!("the runner that launched this sidecar is gone; exiting");
                }
            }
        };
        self.router()
            .await
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
            .await?;
        Ok(())
    }

    /// Serves on a TCP listener until `shutdown` resolves.
    pub async fn serve_tcp(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.router()
            .await
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
            .await?;
        Ok(())
    }

    /// Binds `addr` and serves on it until `shutdown` resolves.
    pub async fn serve_addr(
        self,
        addr: SocketAddr,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        self.serve_tcp(listener, shutdown).await
    }
}

/// Resolves once the runner that launched this sidecar (`WEIR_RUNNER_PID`)
/// is no longer its parent: it was killed and cannot stop the sidecar. Never
/// resolves for a sidecar that no runner launched.
async fn orphaned() {
    let Some(runner) = std::env::var("WEIR_RUNNER_PID")
        .ok()
        .and_then(|pid| pid.parse::<u32>().ok())
    else {
        return std::future::pending().await;
    };
    let mut check = tokio::time::interval(std::time::Duration::from_millis(500));
    loop {
        check.tick().await;
        if std::os::unix::process::parent_id() != runner {
            return;
        }
    }
}

/// A plugin served under another class name, so the same code can run as a
/// sidecar beside the built-in it also is (two plugins may not claim one class).
pub struct Renamed {
    class: &'static str,
    inner: Arc<dyn ConnectorPlugin>,
}

impl Renamed {
    pub fn new(class: &'static str, inner: Arc<dyn ConnectorPlugin>) -> Self {
        Renamed { class, inner }
    }
}

#[tonic::async_trait]
impl ConnectorPlugin for Renamed {
    fn class(&self) -> &'static str {
        self.class
    }

    fn kind(&self) -> weir_api::api::ConnectorKind {
        self.inner.kind()
    }

    fn version(&self) -> &'static str {
        self.inner.version()
    }

    fn config_def(&self) -> weir_api::config::ConfigDef {
        self.inner.config_def()
    }

    async fn validate(&self, config: &ConfigMap) -> Vec<(String, Vec<String>)> {
        self.inner.validate(config).await
    }

    async fn task_configs(
        &self,
        config: &ConfigMap,
        max_tasks: usize,
    ) -> weir_api::api::Result<Vec<ConfigMap>> {
        self.inner.task_configs(config, max_tasks).await
    }

    fn create_task(&self) -> Task {
        self.inner.create_task()
    }

    async fn monitor(
        &self,
        config: &ConfigMap,
        context: ConnectorContext,
    ) -> weir_api::api::Result<()> {
        self.inner.monitor(config, context).await
    }
}

type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

struct ConnectorService(Sidecar);

#[tonic::async_trait]
impl Connector for ConnectorService {
    async fn handshake(
        &self,
        request: Request<pb::HandshakeRequest>,
    ) -> Result<Response<pb::HandshakeResponse>, Status> {
        let offered = request.into_inner().versions;
        let version = VERSIONS
            .iter()
            .rev()
            .find(|v| offered.contains(v))
            .copied()
            .ok_or_else(|| {
                Status::failed_precondition(format!(
                    "no common protocol version: the runner speaks {offered:?}, this sidecar {VERSIONS:?}"
                ))
            })?;
        let plugins = self
            .0
            .plugins
            .iter()
            .map(|plugin| wire::plugin_to_wire(plugin.as_ref()))
            .collect();
        Ok(Response::new(pb::HandshakeResponse {
            version,
            plugins,
            sdk: format!("weir-rust {}", env!("CARGO_PKG_VERSION")),
        }))
    }

    async fn validate(
        &self,
        request: Request<pb::ValidateRequest>,
    ) -> Result<Response<pb::ValidateResponse>, Status> {
        let request = request.into_inner();
        let plugin = self.0.plugin(&request.class)?;
        let config: ConfigMap = request.config.into_iter().collect();
        let errors = plugin
            .validate(&config)
            .await
            .into_iter()
            .map(|(name, errors)| pb::KeyErrors { name, errors })
            .collect();
        Ok(Response::new(pb::ValidateResponse { errors }))
    }

    async fn task_configs(
        &self,
        request: Request<pb::TaskConfigsRequest>,
    ) -> Result<Response<pb::TaskConfigsResponse>, Status> {
        let request = request.into_inner();
        let plugin = self.0.plugin(&request.class)?;
        let config: ConfigMap = request.config.into_iter().collect();
        let max_tasks = usize::try_from(request.max_tasks.max(1)).unwrap_or(1);
        let tasks = plugin
            .task_configs(&config, max_tasks)
            .await
            .map_err(|e| Status::invalid_argument(e.to_string()))?
            .into_iter()
            .map(|config| pb::TaskConfig {
                config: config.into_iter().collect(),
            })
            .collect();
        Ok(Response::new(pb::TaskConfigsResponse { tasks }))
    }

    type WatchStream = EventStream<pb::ConnectorEvent>;

    /// Runs the connector's `monitor` and turns each reconfiguration it asks
    /// for into an event. The stream stays open after `monitor` returns, and
    /// ends with the error if it fails; the runner cancels it when the
    /// connector instance stops.
    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let request = request.into_inner();
        let plugin = self.0.plugin(&request.class)?;
        let config = config_of(request.config);
        let (requests, mut requested) = mpsc::unbounded_channel();
        let (events, stream) = mpsc::channel(4);
        tokio::spawn(async move {
            let context = ConnectorContext::new(requests);
            let monitor = plugin.monitor(&config, context);
            tokio::pin!(monitor);
            let mut watching = true;
            loop {
                tokio::select! {
                    outcome = &mut monitor, if watching => {
                        watching = false;
                        if let Err(error) = outcome {
                            let event = pb::ConnectorEvent {
                                event: Some(pb::connector_event::Event::Error(wire::error_to_wire(&error))),
                            };
                            let _ = events.send(Ok(event)).await;
                            return;
                        }
                    }
                    Some(()) = requested.recv() => {
                        let event = pb::ConnectorEvent {
                            event: Some(pb::connector_event::Event::ReconfigureTasks(pb::ReconfigureTasks {})),
                        };
                        if events.send(Ok(event)).await.is_err() {
                            return;
                        }
                    }
                    () = events.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(stream))))
    }
}

fn partitions_of(partitions: &pb::Partitions) -> Vec<(String, i32)> {
    partitions
        .partitions
        .iter()
        .map(|p| (p.topic.clone(), p.partition))
        .collect()
}

fn malformed(message: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("malformed connector protocol message: {message}"))
}

fn config_of(map: std::collections::HashMap<String, String>) -> ConfigMap {
    map.into_iter().collect()
}

#[derive(Clone)]
struct SourceRun(Sidecar);

impl tonic::server::StreamingService<pb::SourceCommand> for SourceRun {
    type Response = Bytes;
    type ResponseStream = EventStream<Bytes>;
    type Future =
        Pin<Box<dyn Future<Output = Result<Response<Self::ResponseStream>, Status>> + Send>>;

    fn call(&mut self, request: Request<Streaming<pb::SourceCommand>>) -> Self::Future {
        let (events, stream) = mpsc::channel(16);
        let sidecar = self.0.clone();
        let commands = request.into_inner();
        // The response opens at once; the runner's first message may come
        // after it. A bad Open ends the stream with the error.
        tokio::spawn(async move {
            match open_source(&sidecar, commands).await {
                Ok((task, config, positions, commands)) => {
                    source_session(task, config, positions, commands, events).await;
                }
                Err(status) => {
                    let _ = events.send(Err(status)).await;
                }
            }
        });
        Box::pin(async move {
            let stream: Self::ResponseStream = Box::pin(ReceiverStream::new(stream));
            Ok(Response::new(stream))
        })
    }
}

type OpenedSource = (
    Box<dyn SourceTask>,
    ConfigMap,
    Vec<weir_api::api::SourcePosition>,
    Streaming<pb::SourceCommand>,
);

async fn open_source(
    sidecar: &Sidecar,
    mut commands: Streaming<pb::SourceCommand>,
) -> Result<OpenedSource, Status> {
    let open = match commands.message().await? {
        Some(pb::SourceCommand {
            command: Some(pb::source_command::Command::Open(open)),
        }) => open,
        _ => return Err(malformed("a source task stream must start with Open")),
    };
    let plugin = sidecar.plugin(&open.class)?;
    let Task::Source(task) = plugin.create_task() else {
        return Err(Status::invalid_argument(format!(
            "{} is not a source connector",
            open.class
        )));
    };
    let positions = open
        .positions
        .iter()
        .map(wire::position_from_wire)
        .collect::<Result<Vec<_>, _>>()
        .map_err(malformed)?;
    Ok((task, config_of(open.config), positions, commands))
}

type Events<T> = mpsc::Sender<Result<T, Status>>;

async fn send_source(events: &Events<Bytes>, event: pb::source_event::Event) -> bool {
    let event = pb::SourceEvent { event: Some(event) };
    events.send(Ok(codec::encoded(&event))).await.is_ok()
}

/// One source task: open, then poll while credit lasts, until Stop or the
/// runner goes away. The task is always stopped.
async fn source_session(
    mut task: Box<dyn SourceTask>,
    config: ConfigMap,
    positions: Vec<weir_api::api::SourcePosition>,
    mut commands: Streaming<pb::SourceCommand>,
    events: Events<Bytes>,
) {
    use pb::source_command::Command;
    use pb::source_event::Event;
    if let Err(error) = task.open(&config, &positions).await {
        send_source(&events, Event::Error(wire::error_to_wire(&error))).await;
        let _ = task.stop().await;
        return;
    }
    if !send_source(&events, Event::Opened(pb::Opened {})).await {
        let _ = task.stop().await;
        return;
    }
    let mut credit: u32 = 0;
    let mut schemas = codec::SchemaCache::default();
    // After a retriable failure the task rests before polling again, so a
    // failing upstream cannot flood the runner with errors.
    let mut rest_until = tokio::time::Instant::now();
    loop {
        let resting = tokio::time::Instant::now() < rest_until;
        tokio::select! {
            () = tokio::time::sleep_until(rest_until), if resting => {}
            command = commands.message() => match command {
                Ok(Some(pb::SourceCommand { command: Some(Command::Credit(more)) })) => {
                    credit = credit.saturating_add(more.records);
                }
                Ok(Some(pb::SourceCommand { command: Some(Command::Committed(committed)) })) => {
                    let positions = committed
                        .positions
                        .iter()
                        .map(wire::position_from_wire)
                        .collect::<Result<Vec<_>, _>>();
                    let outcome = match positions {
                        Ok(positions) => task.commit(&positions).await,
                        Err(error) => Err(weir_api::api::ConnectorError::Fatal(error.to_string())),
                    };
                    if let Err(error) = outcome {
                        send_source(&events, Event::Error(wire::error_to_wire(&error))).await;
                    }
                }
                Ok(Some(pb::SourceCommand { command: Some(Command::Stop(_)) })) => {
                    let stopped = task.stop().await;
                    if let Err(error) = stopped {
                        send_source(&events, Event::Error(wire::error_to_wire(&error))).await;
                    }
                    send_source(&events, Event::Stopped(pb::Stopped {})).await;
                    return;
                }
                Ok(Some(_)) => {
                    let _ = events.send(Err(malformed("unexpected source command"))).await;
                    let _ = task.stop().await;
                    return;
                }
                // The runner went away: stop the task.
                Ok(None) | Err(_) => {
                    let _ = task.stop().await;
                    return;
                }
            },
            polled = task.poll(credit.min(MAX_BATCH) as usize), if credit > 0 && !resting => match polled {
                Ok(records) if records.is_empty() => {}
                Ok(records) => {
                    let sent = u32::try_from(records.len()).unwrap_or(u32::MAX);
                    credit = credit.saturating_sub(sent);
                    let batch = codec::encode_source_batch(&records, &mut schemas);
                    if events.send(Ok(batch)).await.is_err() {
                        let _ = task.stop().await;
                        return;
                    }
                }
                Err(error) => {
                    let retriable = error.is_retriable();
                    send_source(&events, Event::Error(wire::error_to_wire(&error))).await;
                    if !retriable {
                        let _ = task.stop().await;
                        return;
                    }
                    rest_until = tokio::time::Instant::now() + RETRY_REST;
                }
            },
        }
    }
}

/// A task service (`Source` or `Sink`) routed by hand, so that its one
/// method `Run` goes through a codec of [`codec`]'s (a batch straight
/// between the data model and the wire) instead of the generated server's
/// prost codec. Same wire protocol.
struct HandRouted<S, C> {
    run: S,
    codec: std::marker::PhantomData<fn() -> C>,
}

impl<S: Clone, C> Clone for HandRouted<S, C> {
    fn clone(&self) -> Self {
        Self::new(self.run.clone())
    }
}

impl<S, C> HandRouted<S, C> {
    fn new(run: S) -> Self {
        HandRouted {
            run,
            codec: std::marker::PhantomData,
        }
    }
}

impl tonic::server::NamedService for HandRouted<SinkRun, codec::SinkServerCodec> {
    const NAME: &'static str = "weir.connector.v2.Sink";
}

impl tonic::server::NamedService for HandRouted<SourceRun, codec::SourceServerCodec> {
    const NAME: &'static str = "weir.connector.v2.Source";
}

impl<S, C> tower::Service<tonic::codegen::http::Request<tonic::body::Body>> for HandRouted<S, C>
where
    Self: tonic::server::NamedService,
    S: tonic::server::StreamingService<C::Decode, Response = C::Encode> + Clone + Send + 'static,
    S::Future: Send,
    S::ResponseStream: Send + 'static,
    C: tonic::codec::Codec + Default + Send + 'static,
{
    type Response = tonic::codegen::http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: tonic::codegen::http::Request<tonic::body::Body>) -> Self::Future {
        let run = self.run.clone();
        Box::pin(async move {
            let path = request.uri().path();
            if path.strip_prefix('/').and_then(|p| p.strip_suffix("/Run"))
                != Some(<Self as tonic::server::NamedService>::NAME)
            {
                return Ok(Status::unimplemented(format!("no method {path}")).into_http());
            }
            let mut grpc = tonic::server::Grpc::new(C::default());
            Ok(grpc.streaming(run, request).await)
        })
    }
}

#[derive(Clone)]
struct SinkRun(Sidecar);

impl tonic::server::StreamingService<SinkCommandIn> for SinkRun {
    type Response = pb::SinkEvent;
    type ResponseStream = EventStream<pb::SinkEvent>;
    type Future =
        Pin<Box<dyn Future<Output = Result<Response<Self::ResponseStream>, Status>> + Send>>;

    fn call(&mut self, request: Request<Streaming<SinkCommandIn>>) -> Self::Future {
        let (events, stream) = mpsc::channel(16);
        let sidecar = self.0.clone();
        let commands = request.into_inner();
        tokio::spawn(async move {
            match open_sink(&sidecar, commands).await {
                Ok((task, config, commands)) => sink_session(task, config, commands, events).await,
                Err(status) => {
                    let _ = events.send(Err(status)).await;
                }
            }
        });
        Box::pin(async move {
            let stream: Self::ResponseStream = Box::pin(ReceiverStream::new(stream));
            Ok(Response::new(stream))
        })
    }
}

async fn open_sink(
    sidecar: &Sidecar,
    mut commands: Streaming<SinkCommandIn>,
) -> Result<(Box<dyn SinkTask>, ConfigMap, Streaming<SinkCommandIn>), Status> {
    let open = match commands.message().await? {
        Some(SinkCommandIn::Other(pb::SinkCommand {
            command: Some(pb::sink_command::Command::Open(open)),
        })) => open,
        _ => return Err(malformed("a sink task stream must start with Open")),
    };
    let plugin = sidecar.plugin(&open.class)?;
    let Task::Sink(task) = plugin.create_task() else {
        return Err(Status::invalid_argument(format!(
            "{} is not a sink connector",
            open.class
        )));
    };
    Ok((task, config_of(open.config), commands))
}

async fn send_sink(events: &Events<pb::SinkEvent>, event: pb::sink_event::Event) -> bool {
    events
        .send(Ok(pb::SinkEvent { event: Some(event) }))
        .await
        .is_ok()
}

/// A sink command as the session serves it.
enum Incoming {
    Put(u64, Result<Vec<weir_api::api::SinkRecord>, String>),
    Command(pb::sink_command::Command),
}

/// One sink task: open, then serve puts, flushes and pre-commits in order
/// until Stop or the runner goes away. The task is always stopped.
async fn sink_session(
    mut task: Box<dyn SinkTask>,
    config: ConfigMap,
    mut commands: Streaming<SinkCommandIn>,
    events: Events<pb::SinkEvent>,
) {
    use pb::sink_command::Command;
    use pb::sink_event::Event;
    if let Err(error) = task.open(&config).await {
        send_sink(&events, Event::Error(wire::error_to_wire(&error))).await;
        let _ = task.stop().await;
        return;
    }
    if !send_sink(&events, Event::Opened(pb::Opened {})).await {
        let _ = task.stop().await;
        return;
    }
    loop {
        let command = match commands.message().await {
            Ok(Some(SinkCommandIn::Put { id, records })) => Incoming::Put(id, Ok(records)),
            Ok(Some(SinkCommandIn::Other(pb::SinkCommand {
                command: Some(Command::Put(put)),
            }))) => {
                let records = put
                    .records
                    .iter()
                    .map(wire::sink_record_from_wire)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| e.to_string());
                Incoming::Put(put.id, records)
            }
            Ok(Some(SinkCommandIn::Other(pb::SinkCommand {
                command: Some(command),
            }))) => Incoming::Command(command),
            Ok(Some(_)) => {
                let _ = events.send(Err(malformed("an empty sink command"))).await;
                break;
            }
            Ok(None) | Err(_) => break,
        };
        let command = match command {
            Incoming::Put(id, records) => {
                let outcome = match records {
                    Ok(records) => task.put(&records).await,
                    Err(error) => Err(weir_api::api::ConnectorError::Fatal(error)),
                };
                let (error, records) = match outcome {
                    Ok(()) => (None, Vec::new()),
                    Err(weir_api::api::ConnectorError::Records(failed)) => (
                        None,
                        failed.iter().map(wire::record_error_to_wire).collect(),
                    ),
                    Err(error) => (Some(wire::error_to_wire(&error)), Vec::new()),
                };
                let event = Event::Put(pb::PutResult { id, error, records });
                if !send_sink(&events, event).await {
                    break;
                }
                continue;
            }
            Incoming::Command(command) => command,
        };
        let event = match command {
            // No answer is due; a failure ends the session with an error event.
            Command::Assign(assigned) => {
                match task.open_partitions(&partitions_of(&assigned)).await {
                    Ok(()) => continue,
                    Err(error) => Event::Error(wire::error_to_wire(&error)),
                }
            }
            Command::Revoke(revoked) => match task.close_partitions(&partitions_of(&revoked)).await
            {
                Ok(()) => continue,
                Err(error) => Event::Error(wire::error_to_wire(&error)),
            },
            Command::Put(_) => unreachable!("puts are answered above"),
            Command::Flush(flush) => {
                let offsets: Vec<_> = flush.offsets.iter().map(wire::offset_from_wire).collect();
                let outcome = task.flush(&offsets).await;
                Event::Flush(pb::FlushResult {
                    id: flush.id,
                    error: outcome.err().map(|e| wire::error_to_wire(&e)),
                })
            }
            Command::PreCommit(pre) => {
                let offsets: Vec<_> = pre.offsets.iter().map(wire::offset_from_wire).collect();
                match task.pre_commit(&offsets).await {
                    Ok(safe) => Event::PreCommit(pb::PreCommitResult {
                        id: pre.id,
                        offsets: safe.iter().map(wire::offset_to_wire).collect(),
                        error: None,
                    }),
                    Err(error) => Event::PreCommit(pb::PreCommitResult {
                        id: pre.id,
                        offsets: Vec::new(),
                        error: Some(wire::error_to_wire(&error)),
                    }),
                }
            }
            Command::Stop(_) => {
                if let Err(error) = task.stop().await {
                    send_sink(&events, Event::Error(wire::error_to_wire(&error))).await;
                }
                send_sink(&events, Event::Stopped(pb::Stopped {})).await;
                return;
            }
            Command::Open(_) => {
                let _ = events.send(Err(malformed("Open sent twice"))).await;
                break;
            }
        };
        if !send_sink(&events, event).await {
            break;
        }
    }
    let _ = task.stop().await;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;
    use weir_proto::connector::v2::connector_client::ConnectorClient;
    use weir_proto::connector::v2::sink_client::SinkClient;
    use weir_proto::connector::v2::source_client::SourceClient;

    use super::*;
    use weir_builtins::file::{FileStreamSink, FileStreamSource};

    async fn sidecar() -> (String, CancellationToken) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let shutdown = stop.clone().cancelled_owned();
        let served = Sidecar::new(vec![Arc::new(FileStreamSource), Arc::new(FileStreamSink)]);
        tokio::spawn(served.serve_tcp(listener, shutdown));
        (url, stop)
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

    async fn next<T>(events: &mut Streaming<T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), events.message())
            .await
            .expect("an event in time")
            .unwrap()
            .expect("the stream is open")
    }

    #[tokio::test]
    async fn handshake_negotiates_and_lists_the_plugins() {
        let (url, _stop) = sidecar().await;
        let mut client = ConnectorClient::connect(url).await.unwrap();
        let reply = client
            .handshake(pb::HandshakeRequest {
                versions: vec![1, 2, 3],
                runner_id: "r".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.version, 2);
        let classes: Vec<&str> = reply.plugins.iter().map(|p| p.class.as_str()).collect();
        assert!(
            classes
                .iter()
                .any(|c| c.ends_with("FileStreamSourceConnector"))
        );
        assert!(reply.plugins.iter().all(|p| !p.config.is_empty()));
        let refused = client
            .handshake(pb::HandshakeRequest {
                versions: vec![1],
                runner_id: "r".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    }

    #[tokio::test]
    async fn a_source_task_sends_only_what_its_credit_allows_and_hears_commits() {
        let (url, _stop) = sidecar().await;
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.txt");
        std::fs::write(&input, "one\ntwo\nthree\n").unwrap();
        let (commands, receiver) = mpsc::channel(8);
        let mut events = SourceClient::connect(url)
            .await
            .unwrap()
            .run(ReceiverStream::new(receiver))
            .await
            .unwrap()
            .into_inner();
        use pb::source_command::Command;
        use pb::source_event::Event;
        let open = pb::OpenSource {
            identity: Some(pb::TaskIdentity {
                connector: "files".into(),
                task: 0,
                epoch: 1,
            }),
            class: "FileStreamSource".into(),
            config: [("file", input.to_str().unwrap()), ("topic", "t")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            positions: Vec::new(),
        };
        commands.send(source(Command::Open(open))).await.unwrap();
        assert!(matches!(
            next(&mut events).await.event,
            Some(Event::Opened(_))
        ));
        commands
            .send(source(Command::Credit(pb::Credit {
                records: 2,
                bytes: 0,
            })))
            .await
            .unwrap();
        let Some(Event::Batch(first)) = next(&mut events).await.event else {
            panic!("expected a batch");
        };
        assert_eq!(first.records.len(), 2, "no more than the credit");
        commands
            .send(source(Command::Credit(pb::Credit {
                records: 10,
                bytes: 0,
            })))
            .await
            .unwrap();
        let Some(Event::Batch(second)) = next(&mut events).await.event else {
            panic!("expected a batch");
        };
        let values: Vec<String> =
            wire::source_records_from_wire(first.records.iter().chain(&second.records).cloned())
                .unwrap()
                .iter()
                .map(|record| record.value.value.to_display_string())
                .collect();
        assert_eq!(values, ["one", "two", "three"]);
        let last = second.records.last().unwrap();
        commands
            .send(source(Command::Committed(pb::Committed {
                positions: vec![pb::SourcePosition {
                    partition_json: last.partition_json.clone(),
                    offset_json: last.offset_json.clone(),
                }],
            })))
            .await
            .unwrap();
        commands
            .send(source(Command::Stop(pb::Stop {})))
            .await
            .unwrap();
        assert!(matches!(
            next(&mut events).await.event,
            Some(Event::Stopped(_))
        ));
    }

    #[tokio::test]
    async fn a_sink_task_puts_flushes_and_stops() {
        let (url, _stop) = sidecar().await;
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("out.txt");
        let (commands, receiver) = mpsc::channel(8);
        let mut events = SinkClient::connect(url)
            .await
            .unwrap()
            .run(ReceiverStream::new(receiver))
            .await
            .unwrap()
            .into_inner();
        use pb::sink_command::Command;
        use pb::sink_event::Event;
        let open = pb::OpenSink {
            identity: None,
            class: "org.apache.kafka.connect.file.FileStreamSinkConnector".into(),
            config: [("file", output.to_str().unwrap()), ("topics", "t")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        };
        commands.send(sink(Command::Open(open))).await.unwrap();
        assert!(matches!(
            next(&mut events).await.event,
            Some(Event::Opened(_))
        ));
        let records = ["a", "b"]
            .iter()
            .enumerate()
            .map(|(i, v)| {
                wire::sink_record_to_wire(&weir_api::api::SinkRecord {
                    topic: "t".into(),
                    partition: 0,
                    offset: i as i64,
                    key: weir_api::data::SchemaAndValue::null(),
                    value: weir_api::data::SchemaAndValue {
                        schema: Some(weir_api::data::Schema::string().into()),
                        value: weir_api::data::Value::String((*v).into()),
                    },
                    timestamp_ms: None,
                    headers: Vec::new(),
                })
            })
            .collect();
        commands
            .send(sink(Command::Put(pb::Put { id: 7, records })))
            .await
            .unwrap();
        let Some(Event::Put(put)) = next(&mut events).await.event else {
            panic!("expected a put result");
        };
        assert_eq!((put.id, put.error), (7, None));
        let offsets = vec![pb::TopicPartitionOffset {
            topic: "t".into(),
            partition: 0,
            offset: 2,
        }];
        commands
            .send(sink(Command::Flush(pb::Flush { id: 8, offsets })))
            .await
            .unwrap();
        let Some(Event::Flush(flushed)) = next(&mut events).await.event else {
            panic!("expected a flush result");
        };
        assert_eq!((flushed.id, flushed.error), (8, None));
        assert_eq!(std::fs::read_to_string(&output).unwrap(), "a\nb\n");
        commands
            .send(sink(Command::Stop(pb::Stop {})))
            .await
            .unwrap();
        assert!(matches!(
            next(&mut events).await.event,
            Some(Event::Stopped(_))
        ));
    }

    #[tokio::test]
    async fn a_stream_that_does_not_start_with_open_is_refused() {
        let (url, _stop) = sidecar().await;
        let (commands, receiver) = mpsc::channel(1);
        commands
            .send(source(pb::source_command::Command::Stop(pb::Stop {})))
            .await
            .unwrap();
        let mut events = SourceClient::connect(url)
            .await
            .unwrap()
            .run(ReceiverStream::new(receiver))
            .await
            .unwrap()
            .into_inner();
        let refused = tokio::time::timeout(Duration::from_secs(10), events.message())
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    }
}
