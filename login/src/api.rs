//! The routes of PROTOCOL.md §1 and their error shape:
//! `{"error": {"code": "<snake_case>", "message": "<human text>"}}`.

use std::{sync::Arc, time::Duration};

use axum::{
    Json,
    body::Bytes,
    extract::{FromRequest, Request, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio::sync::Semaphore;
use tonic::{Code, transport::Channel};
use tracing::{error, info, warn};
use warren_proto::{
    Uid,
    gold::{
        CreateUserRequest, GetCredentialsRequest, GuestAccountRequest, gold_client::GoldClient,
    },
    http::ErrorJson,
};

use crate::{TokenSigner, password};

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) gold: GoldClient<Channel>,
    pub(crate) signer: TokenSigner,
    pub(crate) gold_timeout: Duration,
    /// Bounds the argon2 work in flight (memory-hard: ~19 MiB each).
    pub(crate) hashing: Semaphore,
    /// Verified when a username does not exist, so both failures cost the
    /// same and the response time does not tell which part was wrong.
    pub(crate) dummy_hash: String,
}

#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }

    fn invalid_credentials() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "wrong username or password",
        )
    }

    pub(crate) fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
    }

    pub(crate) fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "use POST with a JSON body",
        )
    }

    /// A failed call to gold, as the HTTP client should see it.
    fn from_gold(status: tonic::Status) -> Self {
        match status.code() {
            Code::InvalidArgument => Self::bad_request("bad_request", status.message()),
            Code::AlreadyExists => Self::new(
                StatusCode::CONFLICT,
                "username_taken",
                "that username is taken",
            ),
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
                warn!(error = %status, "gold unreachable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the account service is unavailable, try again",
                )
            }
            _ => {
                error!(error = %status, "gold call failed");
                Self::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorJson::new(self.code, &self.message);
        (self.status, Json(body)).into_response()
    }
}

/// A JSON body whose every failure is an [`ApiError`]: 413 over the size
/// limit, 400 for anything that is not the expected JSON.
pub(crate) struct JsonBody<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    "the request body is too large",
                )
            } else {
                ApiError::bad_request("bad_request", rejection.body_text())
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::bad_request("bad_request", format!("invalid JSON body: {e}")))
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

    fn gold_request<T>(&self, message: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(message);
        req.set_timeout(self.gold_timeout);
        req
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
        .clone()
        .guest_account(app.gold_request(GuestAccountRequest {
            device_id: req.device_id,
        }))
        .await
        .map_err(ApiError::from_gold)?
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
        password::hash(req.password).await.map_err(|e| {
            error!(error = %e, "hashing a password failed");
            ApiError::internal()
        })?
    };
    let account = app
        .gold
        .clone()
        .create_user(app.gold_request(CreateUserRequest {
            username: req.username,
            password_hash: hash,
        }))
        .await
        .map_err(ApiError::from_gold)?
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
        .clone()
        .get_credentials(app.gold_request(GetCredentialsRequest {
            username: req.username,
        }))
        .await;
    let (uid, hash) = match found {
        Ok(c) => {
            let c = c.into_inner();
            (Some(c.uid), c.password_hash)
        }
        Err(s) if s.code() == Code::NotFound => (None, app.dummy_hash.clone()),
        Err(s) => return Err(ApiError::from_gold(s)),
    };
    let matches = {
        let _permit = app.hashing_permit().await?;
        password::verify(req.password, hash).await
    };
    match uid {
        Some(uid) if matches => Ok(Json(app.token(uid)?)),
        _ => Err(ApiError::invalid_credentials()),
    }
}
