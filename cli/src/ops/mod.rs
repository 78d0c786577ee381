//! The operator commands (`weir connectors …`, `weir offsets …`,
//! `weir plugins`, `weir tasks`, `weir context …`): Kafka Connect's REST API
//! only, so they work against Weir and any Kafka Connect cluster, in the
//! way of kcctl.

pub mod apply;
pub mod commands;
pub mod context;
pub mod output;
pub mod rest;

pub use commands::{ConnectorsCommand, OffsetsCommand, Target};
