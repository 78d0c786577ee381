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

/// `endpoint` with a sidecar channel's transport settings: connect within
/// 5 s, and HTTP/2 pings only at [`KEEPALIVE_INTERVAL`] while streams are open.
pub fn sidecar_endpoint(endpoint: Endpoint) -> Endpoint {
    endpoint
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
