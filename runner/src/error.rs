//! The runner's one error type. A task's error becomes its FAILED status
//! `trace`; the rest surface at start-up.

use weir_connect::api::ConnectorError;
use weir_connect::converter::ConvertError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("org.apache.kafka.connect.errors.DataException: {0}")]
    Convert(#[from] ConvertError),
    #[error("org.apache.kafka.connect.errors.ConnectException: {0}")]
    Connector(#[from] ConnectorError),
    #[error("org.apache.kafka.common.KafkaException: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// `errors.tolerance=none` and a record failed.
    #[error("org.apache.kafka.connect.errors.ConnectException: {0}")]
    Tolerance(String),
    #[error("offset storage: {0}")]
    Offsets(String),
    #[error("coordinator: {0}")]
    Coordinator(String),
    /// The runner's lease lapsed; the task may run elsewhere now.
    #[error("org.apache.kafka.connect.errors.ConnectException: {0}")]
    Fenced(String),
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<tonic::transport::Error> for Error {
    fn from(error: tonic::transport::Error) -> Self {
        Error::Coordinator(error.to_string())
    }
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        Error::Coordinator(format!("{:?}: {}", status.code(), status.message()))
    }
}
