//! What can go wrong in config-svc, and its gRPC status.

use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A malformed request (bad name, bad version, …).
    #[error("{0}")]
    BadRequest(String),
    /// The body is not JSON, or does not match the schema: one message per
    /// problem, each naming where in the document it is.
    #[error("the document is not valid: {}", .0.join("; "))]
    Invalid(Vec<String>),
    #[error("{0}")]
    NotFound(String),
    /// Someone else published first (`expected_version` is stale).
    #[error("{0}")]
    Conflict(String),
    #[error("the config database is unavailable: {0}")]
    Unavailable(sqlx::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<sqlx::Error> for ConfigError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                ConfigError::Unavailable(e)
            }
            other => ConfigError::Internal(other.to_string()),
        }
    }
}

impl From<ConfigError> for Status {
    fn from(e: ConfigError) -> Status {
        match e {
            ConfigError::BadRequest(m) => Status::new(Code::InvalidArgument, m),
            // One problem per line, so a client can show them as a list.
            ConfigError::Invalid(problems) => {
                Status::new(Code::InvalidArgument, problems.join("\n"))
            }
            ConfigError::NotFound(m) => Status::new(Code::NotFound, m),
            ConfigError::Conflict(m) => Status::new(Code::Aborted, m),
            ConfigError::Unavailable(e) => Status::new(Code::Unavailable, e.to_string()),
            ConfigError::Internal(m) => {
                tracing::error!(error = %m, "config-svc internal error");
                Status::new(Code::Internal, "internal error")
            }
        }
    }
}
