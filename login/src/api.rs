//! The routes of PROTOCOL.md §1 and their error shape:
//! `{"error": {"code": "<snake_case>", "message": "<human text>"}}`.

use std::{sync::Arc, time::Duration};

use axum::{Json, extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tonic::Code;
use tracing::{error, info};
use warren_http::{ApiError, JsonBody};
use warren_proto::{
    Uid,
    gold::{CreateUserRequest, GetCredentialsRequest, Gold, GuestAccountRequest},
};

use warren_kit::password;

use crate::TokenSigner;

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) gold: Gold,
    pub(crate) signer: TokenSigner,
    /// Bounds the argon2 work in flight (memory-hard: ~19 MiB each).
    pub(crate) hashing: Semaphore,
    /// Verified when a username does not exist, so both failures cost the
    /// same and the response time does not tell which part was wrong.
    pub(crate) dummy_hash: String,
}

/// login's own refusals, and a failed call to gold as the HTTP client
/// should see it.
pub(crate) mod refusal {
    use axum::http::StatusCode;
    use tracing::{error, warn};
    use warren_http::ApiError;
    use warren_proto::gold;

    pub(crate) fn invalid_credentials() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "wrong username or password",
        )
    }

    pub(crate) fn method_not_allowed() -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "use POST with a JSON body",
        )
    }

    pub(crate) fn from_gold(status: tonic::Status) -> ApiError {
        match gold::failure(&status) {
            gold::Failure::BadRequest(message) => ApiError::bad_request("bad_request", message),
            gold::Failure::Exists => ApiError::new(
                StatusCode::CONFLICT,
                "username_taken",
                "that username is taken",
            ),
            gold::Failure::Unavailable => {
                warn!(error = %status, "gold unreachable");
                ApiError::unavailable(
                    "unavailable",
                    "the account service is unavailable, try again",
                )
            }
            _ => {
                error!(error = %status, "gold call failed");
                ApiError::internal()
            }
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct TokenReply {
    uid: u64,
    token: String,
    expires_at: u64,
}

impl App {
    fn token(&self, uid: u64) -> Result<TokenReply, ApiError> {
        let (token, expires_at) = self.signer.sign(Uid(uid)).map_err(|e| {
            error!(error = %e, "signing a token failed");
            ApiError::internal()
        })?;
        Ok(TokenReply {
            uid,
            token,
            expires_at,
        })
    }

    async fn hashing_permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, ApiError> {
        tokio::time::timeout(Duration::from_secs(5), self.hashing.acquire())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    "too many logins at once, try again",
                )
            })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GuestRequest {
    device_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CredentialsRequest {
    username: String,
    password: String,
}

fn valid_username(name: &str) -> bool {
    (3..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

/// `POST /v1/guest`: the same device id always gets the same uid.
pub(crate) async fn guest(
    State(app): State<Arc<App>>,
    JsonBody(req): JsonBody<GuestRequest>,
) -> Result<Json<TokenReply>, ApiError> {
    if !(1..=128).contains(&req.device_id.chars().count()) {
        return Err(ApiError::bad_request(
            "invalid_device_id",
            "device_id must have 1 to 128 characters",
        ));
    }
    let account = app
        .gold
        .client()
        .guest_account(app.gold.request(GuestAccountRequest {
            device_id: req.device_id,
        }))
        .await
        .map_err(refusal::from_gold)?
        .into_inner();
    if account.created {
        info!(uid = account.uid, "guest account created");
    }
    Ok(Json(app.token(account.uid)?))
}

/// `POST /v1/register`: 201 with a token, 409 if the name is taken.
pub(crate) async fn register(
    State(app): State<Arc<App>>,
    JsonBody(req): JsonBody<CredentialsRequest>,
) -> Result<(StatusCode, Json<TokenReply>), ApiError> {
    if !valid_username(&req.username) {
        return Err(ApiError::bad_request(
            "invalid_username",
            "a username has 3 to 32 of A-Z a-z 0-9 _ . -",
        ));
    }
    let chars = req.password.chars().count();
    if !(8..=128).contains(&chars) {
        return Err(ApiError::bad_request(
            "weak_password",
            "a password has 8 to 128 characters",
        ));
    }
    let hash = {
        let _permit = app.hashing_permit().await?;
        password::hash_off_thread(req.password).await.map_err(|e| {
            error!(error = %e, "hashing a password failed");
            ApiError::internal()
        })?
    };
    let account = app
        .gold
        .client()
        .create_user(app.gold.request(CreateUserRequest {
            username: req.username,
            password_hash: hash,
        }))
        .await
        .map_err(refusal::from_gold)?
        .into_inner();
    info!(uid = account.uid, "account registered");
    Ok((StatusCode::CREATED, Json(app.token(account.uid)?)))
}

/// `POST /v1/login`: 401 for a wrong name or password alike.
pub(crate) async fn login(
    State(app): State<Arc<App>>,
    JsonBody(req): JsonBody<CredentialsRequest>,
) -> Result<Json<TokenReply>, ApiError> {
    let found = app
        .gold
        .client()
        .get_credentials(app.gold.request(GetCredentialsRequest {
            username: req.username,
        }))
        .await;
    let (uid, hash) = match found {
        Ok(c) => {
            let c = c.into_inner();
            (Some(c.uid), c.password_hash)
        }
        Err(s) if s.code() == Code::NotFound => (None, app.dummy_hash.clone()),
        Err(s) => return Err(refusal::from_gold(s)),
    };
    let matches = {
        let _permit = app.hashing_permit().await?;
        password::verify_off_thread(req.password, hash).await
    };
    match uid {
        Some(uid) if matches => Ok(Json(app.token(uid)?)),
        _ => Err(refusal::invalid_credentials()),
    }
}
