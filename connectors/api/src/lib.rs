//! What a Weir connector implements, and all it needs to depend on.
//!
//! # Layout
//! - [`api`]: the traits a connector implements (`ConnectorPlugin`,
//!   `SourceTask`, `SinkTask`), its records and errors; they mirror the
//!   connector protocol in `proto/weir/connector/v2`.
//! - [`data`]: Kafka Connect's data model (schemas and values).
//! - [`config`]: config definitions (`ConfigDef`), their validation, and
//!   parsing through them with typed getters.
//!
//! A connector crate depends on this crate only: not on the runner, the
//! transforms or the SDK server.

pub mod api;
pub mod config;
pub mod data;

pub use api::{
    ConnectorError, ConnectorKind, ConnectorPlugin, SinkRecord, SinkTask, SourceRecord, SourceTask,
};
pub use data::{Schema, SchemaType, Value};
