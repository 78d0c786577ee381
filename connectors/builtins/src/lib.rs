//! The connectors built into Weir, written against `weir-api` alone as any
//! connector crate is.
//!
//! - [`file`]: `FileStreamSource` and `FileStreamSink`.
//! - [`verifiable`]: `VerifiableSource` and `VerifiableSink`, Kafka
//!   Connect's test connectors.

pub mod file;
pub mod verifiable;
