//! How a runner tells that a sidecar is alive, shared by the runner and the
//! conformance kit so the kit checks exactly what the runner relies on.
//!
//! HTTP/2 keepalive pings cannot do this job: every stock gRPC server
//! (grpc-core for Python, C++, Ruby and PHP; grpc-go; grpc-java; grpc-js)
//! refuses pings more often than every 5 minutes while no data flows, and
//! answers a client that pings every second with GOAWAY `too_many_pings`,
//! killing idle task streams. So a sidecar channel pings only every
//! [`KEEPALIVE_INTERVAL`] (a backstop for connections that vanish silently),
//! and liveness is a `grpc.health.v1.Health/Check` call every
//! [`PROBE_INTERVAL`] with a deadline: any answer, even `UNIMPLEMENTED` from
//! a server without the health service, shows that the process is alive
//! and serves its HTTP/2 connection.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// How often a sidecar is probed.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// A sidecar that has not answered for this long is unresponsive.
pub const UNRESPONSIVE_AFTER: Duration = Duration::from_secs(4);
/// HTTP/2 pings on a sidecar channel at most this often: above the 5
/// minutes stock servers permit.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(330);

/// HTTP/2 flow-control windows both ends of a sidecar channel grant (of a
/// stream, of the connection), and the largest frame the SDK's server
/// takes. A batch of a thousand 1 KiB records is a megabyte: under the
/// defaults (1 MiB windows, 16 KiB frames) it crossed in 64 frames and
/// stalled on window updates.
pub const STREAM_WINDOW: u32 = 8 << 20;
pub const CONNECTION_WINDOW: u32 = 16 << 20;
pub const MAX_FRAME: u32 = 1 << 20;

/// `endpoint` with a sidecar channel's transport settings: connect within
/// 5 s, HTTP/2 pings only at [`KEEPALIVE_INTERVAL`] while streams are open,
/// and [`STREAM_WINDOW`]/[`CONNECTION_WINDOW`] for what the sidecar sends.
pub fn sidecar_endpoint(endpoint: Endpoint) -> Endpoint {
    endpoint
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(Duration::from_secs(20))
        .keep_alive_while_idle(false)
}

/// One probe: `Ok` if the sidecar answered within `deadline`, whatever it
/// answered; the local error otherwise.
pub async fn probe(channel: &Channel, deadline: Duration) -> Result<(), tonic::Status> {
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    request.set_timeout(deadline);
    match HealthClient::new(channel.clone()).check(request).await {
        Ok(_) => Ok(()),
        Err(status) if answered_with(&status) => Ok(()),
        Err(status) => Err(status),
    }
}

/// Whether a failed call still shows the server answered: a status the
/// server sent, not one made up on this side for a timeout or a lost
/// connection.
fn answered_with(status: &tonic::Status) -> bool {
    !matches!(
        status.code(),
        tonic::Code::DeadlineExceeded
            | tonic::Code::Unavailable
            | tonic::Code::Cancelled
            | tonic::Code::Unknown
    )
}
