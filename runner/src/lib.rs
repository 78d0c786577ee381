//! The Weir runner: hosts tasks and moves records between connectors and Kafka.
//!
//! # Layout
//! - [`worker`]: the runner process — joins a coordinator, applies assignments.
//! - [`task`]: what running tasks share; [`source`] and [`sink`] are the record paths.
//! - [`host`]: where connector code runs: in-process, or in supervised gRPC sidecars.
//! - [`offsets`]: source offset storage (local file or compacted Kafka topic).
//! - [`config`]: worker settings in Kafka Connect's property names.
//! - [`clients`]: Kafka client properties translated for librdkafka, and client creation.
//! - [`devkafka`]: the embedded development broker (librdkafka's mock cluster).

pub mod claims;
pub mod clients;
pub mod config;
pub mod devkafka;
pub mod error;
pub mod errors;
pub mod host;
pub mod instance;
pub mod lease;
pub mod metrics;
pub mod offsets;
pub mod offsets_api;
pub mod polled;
pub mod sink;
pub mod source;
pub mod tap;
pub mod task;
pub mod worker;

pub use config::WorkerConfig;
pub use error::{Error, Result};
pub use worker::{Runner, RunnerConfig};
