//! The routes of PROTOCOL.md §1 and their error shape:
//! `{"error": {"code": "<snake_case>", "message": "<human text>"}}`.

use std::{
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Json,
    extract::{ConnectInfo, State},
    http::StatusCode,
};
use serde::Deserialize;
use tokio::sync::Semaphore;
use tonic::Code;
use tracing::{error, info};
use warren_http::{ApiError, JsonBody};
use warren_proto::gold::{CreateUserRequest, GetCredentialsRequest, Gold, GuestAccountRequest};

use warren_kit::{limits::Limits, password};

use crate::{TokenSigner, sessions::TokenReply};

/// Who is calling: the peer address of the HTTP connection.
pub(crate) type Caller = ConnectInfo<warren_http::Peer>;

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
    /// Sign-ins, registrations and refreshes per client address ...
    pub(crate) by_address: Limits<IpAddr>,
    /// ... and per account (username, device id or sign-in).
    pub(crate) by_account: Limits<String>,
    /// Addresses not limited per address (a proxy in front, the bots).
    pub(crate) unlimited: Vec<IpAddr>,
    /// Where a logout is sent on to the connectors (None: nowhere).
    pub(crate) revoker: Option<crate::Revoker>,
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

    pub(crate) fn rate_limited(whose: &str) -> ApiError {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many attempts for this {whose}; wait a little and try again"),
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
            gold::Failure::Reason(code @ ("invalid_refresh" | "refresh_reused")) => {
                ApiError::new(StatusCode::UNAUTHORIZED, code.to_owned(), status.message())
            }
            gold::Failure::Reason("banned") => {
                ApiError::new(StatusCode::FORBIDDEN, "banned", status.message())
            }
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

impl App {
    /// Takes one attempt from the caller's address and from `account`;
    /// `rate_limited` if either is spent.
    pub(crate) fn limit(&self, caller: &Caller, account: &str) -> Result<(), ApiError> {
        let now = Instant::now();
        let ip = caller.0.0.ip();
        if !self.unlimited.contains(&ip) && !self.by_address.take(&ip, now) {
            return Err(refusal::rate_limited("address"));
        }
        if !self.by_account.take(&account.to_lowercase(), now) {
            return Err(refusal::rate_limited("account"));
        }
        Ok(())
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
    caller: Caller,
    JsonBody(req): JsonBody<GuestRequest>,
) -> Result<Json<TokenReply>, ApiError> {
    if !(1..=128).contains(&req.device_id.chars().count()) {
        return Err(ApiError::bad_request(
            "invalid_device_id",
            "device_id must have 1 to 128 characters",
        ));
    }
    app.limit(&caller, &format!("device:{}", req.device_id))?;
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
    Ok(Json(app.sign_in(account.uid).await?))
}

/// `POST /v1/register`: 201 with a token, 409 if the name is taken.
pub(crate) async fn register(
    State(app): State<Arc<App>>,
    caller: Caller,
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
    app.limit(&caller, &format!("user:{}", req.username))?;
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
    Ok((StatusCode::CREATED, Json(app.sign_in(account.uid).await?)))
}

/// `POST /v1/login`: 401 for a wrong name or password alike.
pub(crate) async fn login(
    State(app): State<Arc<App>>,
    caller: Caller,
    JsonBody(req): JsonBody<CredentialsRequest>,
) -> Result<Json<TokenReply>, ApiError> {
    app.limit(&caller, &format!("user:{}", req.username))?;
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
        Some(uid) if matches => Ok(Json(app.sign_in(uid).await?)),
        _ => Err(refusal::invalid_credentials()),
    }
}
