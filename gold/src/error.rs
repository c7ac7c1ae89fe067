//! gold's errors and their gRPC statuses. Each status carries a
//! machine-readable reason in the `warren-reason` metadata; internal details
//! go to the log, never to the caller.

use tonic::{Code, Status, metadata::MetadataValue};
use tracing::error;

pub use warren_proto::gold::{REASON_KEY, reason};

#[derive(Debug, thiserror::Error)]
pub enum GoldError {
    #[error("{0}")]
    BadRequest(String),
    #[error("no such user")]
    UnknownUser,
    #[error("that username is taken")]
    UsernameTaken,
    #[error("insufficient funds: the balance is {balance}")]
    InsufficientFunds { balance: i64 },
    #[error("the idempotency key was used for a different request")]
    KeyReused,
    #[error("the balance would overflow")]
    Overflow,
    #[error("the refresh token is unknown, expired or ended; sign in again")]
    InvalidRefresh,
    #[error("the refresh token was used before, so its session has ended; sign in again")]
    RefreshReused,
    #[error("{0}")]
    Banned(String),
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("internal error")]
    Internal(#[source] sqlx::Error),
}

impl GoldError {
    pub fn reason(&self) -> &'static str {
        match self {
            GoldError::BadRequest(_) => "bad_request",
            GoldError::UnknownUser => "unknown_user",
            GoldError::UsernameTaken => "username_taken",
            GoldError::InsufficientFunds { .. } => "insufficient_funds",
            GoldError::KeyReused => "idempotency_key_reused",
            GoldError::Overflow => "balance_overflow",
            GoldError::InvalidRefresh => "invalid_refresh",
            GoldError::RefreshReused => "refresh_reused",
            GoldError::Banned(_) => "banned",
            GoldError::Unavailable(_) => "database_unavailable",
            GoldError::Internal(_) => "internal",
        }
    }

    fn code(&self) -> Code {
        match self {
            GoldError::BadRequest(_) => Code::InvalidArgument,
            GoldError::UnknownUser => Code::NotFound,
            GoldError::UsernameTaken => Code::AlreadyExists,
            GoldError::InsufficientFunds { .. } | GoldError::KeyReused | GoldError::Overflow => {
                Code::FailedPrecondition
            }
            GoldError::InvalidRefresh | GoldError::RefreshReused => Code::Unauthenticated,
            GoldError::Banned(_) => Code::PermissionDenied,
            GoldError::Unavailable(_) => Code::Unavailable,
            GoldError::Internal(_) => Code::Internal,
        }
    }
}

impl From<GoldError> for Status {
    fn from(e: GoldError) -> Status {
        if let GoldError::Internal(cause) | GoldError::Unavailable(cause) = &e {
            error!(error = %cause, reason = e.reason(), "database error");
        }
        let mut status = Status::new(e.code(), e.to_string());
        status
            .metadata_mut()
            .insert(REASON_KEY, MetadataValue::from_static(e.reason()));
        status
    }
}
