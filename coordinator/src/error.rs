//! The coordinator's one error type, mapped once to gRPC codes; the REST
//! layer maps those codes to HTTP statuses (see `rest::http_status`).

use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Unknown connector, task or plugin (404).
    #[error("{0}")]
    NotFound(String),
    /// Duplicate create (409).
    #[error("{0}")]
    AlreadyExists(String),
    /// Invalid input: bad config, mismatched names (400).
    #[error("{0}")]
    BadRequest(String),
    /// A concurrent change won; the caller may retry (409).
    #[error("{0}")]
    Conflict(String),
    /// The state store failed or is unreachable (500).
    #[error("state store: {0}")]
    Store(String),
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let code = match &error {
            Error::NotFound(_) => Code::NotFound,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::BadRequest(_) => Code::InvalidArgument,
            Error::Conflict(_) => Code::Aborted,
            Error::Store(_) => Code::Unavailable,
            Error::Internal(_) => Code::Internal,
        };
        if matches!(error, Error::Store(_) | Error::Internal(_)) {
            tracing::error!(%error, "request failed");
        }
        Status::new(code, error.to_string())
    }
}

impl From<etcd_client::Error> for Error {
    fn from(error: etcd_client::Error) -> Self {
        Error::Store(error.to_string())
    }
}

impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Error::Store(format!("corrupt record: {error}"))
    }
}
