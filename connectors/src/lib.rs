//! The connector side of Weir, as the runner, the coordinator and the CLI
//! see it: the crates below under one name, and what only workers need.
//!
//! # The crates it gathers (each its own crate; a connector author depends
//! # on `weir-api` alone)
//! - `weir-api`: [`api`] (the traits a connector implements), [`data`]
//!   (Kafka Connect's data model), [`config`] (`ConfigDef`).
//! - `weir-transforms`: [`transforms`], the SMTs and predicates.
//! - `weir-builtins`: [`file`] and [`verifiable`], the built-in connectors.
//! - `weir-sdk`: [`sdk`] (the Rust SDK's sidecar server), [`wire`],
//!   [`codec`], [`liveness`] and [`conformance`]: connector protocol v2.
//!
//! # Its own modules
//! - [`converter`]: Kafka Connect's converters (String, Json, ByteArray, …).
//! - [`client`]: client overrides, the override policy and secret keys.
//! - [`properties`]: Java `.properties` files, the format of worker and connector configs.
//! - [`providers`]: config providers (`${file:…}`, `${env:…}`, …).
//! - [`logging`]: logger names and levels, as Kafka Connect's admin/loggers API sees them.
//! - [`durable`]: crash-safe file replacement.
//! - [`process`]: waiting for SIGTERM or Ctrl-C, as every binary does.
//! - [`registry`]: the plugins this build knows, by class name and alias.

pub mod client;
pub mod converter;
pub mod durable;
pub mod logging;
pub mod process;
pub mod properties;
pub mod providers;
pub mod registry;

pub use weir_api::{api, config, data};
pub use weir_builtins::{file, verifiable};
pub use weir_sdk::{codec, conformance, liveness, sdk, wire};
pub use weir_transforms as transforms;

pub use api::{
    ConnectorError, ConnectorKind, ConnectorPlugin, SinkRecord, SinkTask, SourceRecord, SourceTask,
};
pub use data::{Schema, SchemaType, Value};
