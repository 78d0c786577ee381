//! The Weir runner: hosts tasks and moves records between connectors and Kafka.
//!
//! # Layout
//! - [`worker`]: the runner process — its sessions with coordinators, and applying
//!   their assignments (unit-tested without a coordinator).
//! - [`instance`]: connector instances (validation, task configs, reconfiguration).
//! - [`task`] starts a task's loop; [`source`] and [`sink`] are the record paths.
//! - [`context`]: what a task loop gets from its runner ([`context::TaskContext`],
//!   target states); [`events`]: what tasks and instances report back.
//! - [`tolerance`]: error tolerance, retries with backoff, error logging, the sink DLQ.
//! - [`lease`]: how long the runner may run and commit without a coordinator.
//! - [`claims`]: sink tasks' partition claims over the control session.
//! - [`tap`]: live record taps; [`metrics`]: `/metrics`.
//! - [`host`]: where connector code runs: in-process, or in supervised gRPC sidecars.
//! - [`offsets`]: source offset storage (local file or compacted Kafka topic);
//!   [`offsets_api`]: the runner's side of the offsets REST API.
//! - [`polled`]: a source task's producer, its delivery reports on their own thread.
//! - [`config`]: worker settings in Kafka Connect's property names.
//! - [`clients`]: Kafka client properties translated for librdkafka, and client creation.
//! - [`devkafka`]: the embedded development broker (librdkafka's mock cluster).
//! - [`error`]: the crate's error type.
//!
//! No module imports one that imports it back (`scripts/module-cycles.py runner/src`):
//! [`events`] names no other module, [`context`] sits below the record paths,
//! and [`task`] and [`worker`] sit above them.

pub mod claims;
pub mod clients;
pub mod config;
pub mod context;
pub mod devkafka;
pub mod error;
pub mod events;
pub mod host;
pub mod instance;
pub mod lease;
pub mod metrics;
pub mod offsets;
pub mod offsets_api;
pub mod polled;
pub mod producers;
pub mod sink;
pub mod source;
pub mod tap;
pub mod task;
pub mod tolerance;
pub mod worker;

pub use config::WorkerConfig;
pub use error::{Error, Result};
pub use worker::{Runner, RunnerConfig};
