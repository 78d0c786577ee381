//! The Weir coordinator: the control plane.
//!
//! # Layout
//! - [`admin`]: the admin service (connectors, tasks, status, plugins) — one
//!   implementation behind both gRPC and REST.
//! - [`rest`]: Kafka Connect's REST API, translated onto [`admin`].
//! - [`validate`]: config validation in Kafka Connect's `ConfigInfos` shape.
//! - [`control`]: runner sessions over the control protocol; [`links`] the
//!   coordinator's links to the runners connected to it (requests made of
//!   them, and live taps), which [`tap`] relays to clients.
//! - [`leader`]: election and task placement; [`assignment`] is the pure placement function.
//! - [`store`]: the state store trait, etcd and local implementations; [`keys`] its layout.
//! - [`model`]: the records kept in the store and their JSON encoding.
//! - [`startup`]: what tells `GET /health` the process has finished starting.
//! - [`server`]: starting and stopping a coordinator.

pub mod admin;
pub mod assignment;
pub mod console;
pub mod control;
pub mod error;
pub mod keys;
pub mod leader;
pub mod links;
pub mod loggers;
pub mod metrics;
pub mod model;
pub mod openapi;
pub mod plugins;
pub mod rest;
pub mod server;
pub mod startup;
pub mod store;
pub mod tap;
pub mod validate;

pub use error::{Error, Result};
pub use server::{Coordinator, CoordinatorConfig, StoreConfig};
