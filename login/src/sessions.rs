//! Sign-ins as sessions: an access token (short, verified by connectors on
//! their own) and a refresh token (long, single-use) per sign-in.
//!
//! A refresh token is `<family>.<secret>`: the family names the sign-in
//! (it is the access tokens' `sid`), the secret is 256 random bits. gold
//! keeps only the SHA-256 of each family's current secret, so a copy of
//! the database signs no one in. Each refresh returns a new pair; a
//! refresh token shown a second time ends its family (whoever stole it
//! and its owner both sign in again).

use std::sync::Arc;

use axum::{Json, extract::State, http::StatusCode};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{error, info};
use warren_http::{ApiError, JsonBody};
use warren_proto::{
    Uid,
    cmd::kick::LOGGED_OUT,
    gold::{EndSessionsRequest, RotateSessionRequest, StartSessionRequest},
};

use crate::api::{App, Caller, refusal};

/// What every successful sign-in and refresh answers.
#[derive(Debug, Serialize)]
pub(crate) struct TokenReply {
    uid: u64,
    /// The access token (a JWT) for the websocket and the call gateway.
    token: String,
    expires_at: u64,
    refresh_token: String,
    refresh_expires_at: u64,
}

/// A refresh token taken apart.
struct Refresh {
    family: String,
    secret: String,
}

impl Refresh {
    fn new(family: String) -> Refresh {
        Refresh {
            family,
            secret: random_hex(32),
        }
    }

    /// `<family>.<secret>`, both lowercase hex; anything else is not one.
    fn parse(token: &str) -> Option<Refresh> {
        let (family, secret) = token.split_once('.')?;
        let hex = |s: &str, len: usize| {
            s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        (hex(family, 32) && hex(secret, 64)).then(|| Refresh {
            family: family.to_owned(),
            secret: secret.to_owned(),
        })
    }

    fn hash(&self) -> String {
        to_hex(&Sha256::digest(self.secret.as_bytes()))
    }

    fn token(&self) -> String {
        format!("{}.{}", self.family, self.secret)
    }
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    to_hex(&buf)
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl App {
    /// Starts a session for `uid` (gold refuses a banned one) and answers
    /// its first pair of tokens.
    pub(crate) async fn sign_in(&self, uid: u64) -> Result<TokenReply, ApiError> {
        let refresh = Refresh::new(random_hex(16));
        let refresh_expires_at = self.refresh_expiry();
        self.gold
            .client()
            .start_session(self.gold.request(StartSessionRequest {
                uid,
                family: refresh.family.clone(),
                token_hash: refresh.hash(),
                expires_at_s: as_i64(refresh_expires_at),
            }))
            .await
            .map_err(refusal::from_gold)?;
        self.reply(uid, &refresh, refresh_expires_at)
    }

    fn refresh_expiry(&self) -> u64 {
        crate::keys::unix_now() + self.signer.refresh_ttl().as_secs()
    }

    fn reply(
        &self,
        uid: u64,
        refresh: &Refresh,
        refresh_expires_at: u64,
    ) -> Result<TokenReply, ApiError> {
        let (token, expires_at) = self
            .signer
            .sign_session(Uid(uid), Some(&refresh.family))
            .map_err(|e| {
                error!(error = %e, "signing a token failed");
                ApiError::internal()
            })?;
        Ok(TokenReply {
            uid,
            token,
            expires_at,
            refresh_token: refresh.token(),
            refresh_expires_at,
        })
    }
}

fn as_i64(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefreshRequest {
    refresh_token: String,
}

fn parse(token: &str) -> Result<Refresh, ApiError> {
    Refresh::parse(token).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_refresh",
            "that is not a refresh token",
        )
    })
}

/// `POST /v1/refresh`: a new pair for a current refresh token.
pub(crate) async fn refresh(
    State(app): State<Arc<App>>,
    caller: Caller,
    JsonBody(req): JsonBody<RefreshRequest>,
) -> Result<Json<TokenReply>, ApiError> {
    let old = parse(&req.refresh_token)?;
    app.limit(&caller, &old.family)?;
    let new = Refresh::new(old.family.clone());
    let refresh_expires_at = app.refresh_expiry();
    let rotated = app
        .gold
        .client()
        .rotate_session(app.gold.request(RotateSessionRequest {
            family: old.family.clone(),
            token_hash: old.hash(),
            new_token_hash: new.hash(),
            new_expires_at_s: as_i64(refresh_expires_at),
        }))
        .await
        .map_err(refusal::from_gold)?
        .into_inner();
    Ok(Json(app.reply(rotated.uid, &new, refresh_expires_at)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogoutRequest {
    refresh_token: String,
    /// Every sign-in of the player, not only this one.
    #[serde(default)]
    everywhere: bool,
}

#[derive(Debug, Serialize)]
pub(crate) struct LogoutReply {
    /// Sign-ins ended.
    ended: u32,
    /// Whether the connectors were told (they refuse the player's older
    /// access tokens and kick the socket of the sign-in).
    revoked: bool,
}

/// `POST /v1/logout`: ends the sign-in of a current refresh token (or,
/// with `everywhere`, every sign-in of its player).
pub(crate) async fn logout(
    State(app): State<Arc<App>>,
    caller: Caller,
    JsonBody(req): JsonBody<LogoutRequest>,
) -> Result<Json<LogoutReply>, ApiError> {
    let refresh = parse(&req.refresh_token)?;
    app.limit(&caller, &refresh.family)?;
    let ended = app
        .gold
        .client()
        .end_sessions(app.gold.request(EndSessionsRequest {
            family: refresh.family.clone(),
            token_hash: refresh.hash(),
            everywhere: req.everywhere,
        }))
        .await
        .map_err(refusal::from_gold)?
        .into_inner();
    let sid = (!req.everywhere).then_some(refresh.family);
    let revoked = match &app.revoker {
        Some(revoker) => revoker.revoke(ended.uid, sid, LOGGED_OUT).await,
        None => false,
    };
    info!(
        uid = ended.uid,
        ended = ended.ended,
        everywhere = req.everywhere,
        revoked,
        "logged out"
    );
    Ok(Json(LogoutReply {
        ended: ended.ended,
        revoked,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_round_trip_and_nothing_else_parses() {
        let made = Refresh::new(random_hex(16));
        let token = made.token();
        let parsed = Refresh::parse(&token).expect("parses");
        assert_eq!(parsed.hash(), made.hash());
        assert_eq!(parsed.family, made.family);
        assert_eq!(made.hash().len(), 64);
        for bad in [
            "",
            ".",
            "abc.def",
            &token.to_uppercase(),
            &token.replacen('.', "", 1),
            &format!("{token}0"),
        ] {
            assert!(Refresh::parse(bad).is_none(), "{bad}");
        }
        assert_ne!(Refresh::new(made.family.clone()).hash(), made.hash());
    }
}
