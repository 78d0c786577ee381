//! Connector protocol v2 (`proto/weir/connector/v2`) in Rust.
//!
//! # Layout
//! - [`sdk`]: the Rust SDK's sidecar server: plugins served over protocol v2.
//! - [`wire`]: the API's types in protocol v2 messages.
//! - [`codec`]: record batches encoded straight into protocol v2 bytes.
//! - [`liveness`]: HTTP/2 keepalive and window settings both ends share.
//! - [`conformance`]: the black-box conformance kit for connector sidecars.

pub mod codec;
pub mod conformance;
pub mod liveness;
pub mod sdk;
pub mod wire;
