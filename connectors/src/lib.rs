//! The connector side of Weir.
//!
//! # Layout
//! - [`data`]: Kafka Connect's data model (schemas and values).
//! - [`config`]: config definitions (`ConfigDef`) and their validation.
//! - [`client`]: client overrides, the override policy and secret keys.
//! - [`properties`]: Java `.properties` files, the format of worker and connector configs.
//! - [`api`]: the traits a connector implements; they mirror the connector
//!   protocol in `proto/weir/connector/v2`.
//! - [`durable`]: crash-safe file replacement.
//! - [`file`]: the built-in `FileStreamSource` and `FileStreamSink` connectors.
//! - [`registry`]: the plugins this build knows, by class name and alias.
//! - [`wire`]: the API's types in connector protocol v2.
//! - [`codec`]: record batches encoded straight into protocol v2 bytes.
//! - [`conformance`]: the black-box conformance kit for connector sidecars.
//! - [`sdk`]: the Rust SDK's sidecar server: plugins served over protocol v2.

pub mod api;
pub mod client;
pub mod codec;
pub mod config;
pub mod conformance;
pub mod converter;
pub mod data;
pub mod durable;
pub mod file;
pub mod liveness;
pub mod logging;
pub mod properties;
pub mod providers;
pub mod registry;
pub mod sdk;
pub mod transforms;
pub mod verifiable;
pub mod wire;

pub use api::{
    ConnectorError, ConnectorKind, ConnectorPlugin, SinkRecord, SinkTask, SourceRecord, SourceTask,
};
pub use data::{Schema, SchemaType, Value};
