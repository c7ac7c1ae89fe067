//! Token verification: the connector holds only the public key.
//!
//! One algorithm is pinned (EdDSA); a token that names any other, `none`
//! included, is refused. `exp`, `iat`, `iss`, `aud` and `sub` are required;
//! `iss` and `aud` must match the configured values; `exp` and `nbf` are
//! checked with an explicit leeway. A token of a player revoked since it
//! was issued (logout, ban: see `revoked`) is refused too.

use std::fmt;

use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use warren_proto::{Claims, Uid};

use crate::revoked::Revoked;

/// How long a revocation is kept unless told ([`TokenVerifier::keeping_revocations_for`]).
const DEFAULT_KEEP: Duration = Duration::from_secs(30 * 24 * 3600);

/// Why a token was refused. The client only ever sees `unauthorized`; the
/// variant goes to the log.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("token rejected: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("token subject {0:?} is not a uid")]
    BadSubject(String),
    #[error("the token was revoked (logout or ban) after it was issued")]
    Revoked,
}

/// A verified token: whose, until when, and which sign-in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub uid: Uid,
    /// Until when (unix seconds, exclusive) the token stays valid: its
    /// `exp` plus the leeway.
    pub until: u64,
    /// The sign-in it belongs to (login's refresh-token family), if any.
    pub sid: Option<String>,
    /// When it was issued (unix ms).
    pub issued_ms: u64,
}

pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
    revoked: Revoked,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("iss", &self.validation.iss)
            .field("aud", &self.validation.aud)
            .field("leeway", &self.validation.leeway)
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// `public_pem` is an Ed25519 public key in PEM (SubjectPublicKeyInfo).
    pub fn from_ed_pem(
        public_pem: &[u8],
        issuer: &str,
        audience: &str,
        leeway: std::time::Duration,
    ) -> Result<Self, jsonwebtoken::errors::Error> {
        let key = DecodingKey::from_ed_pem(public_pem)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.leeway = leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        Ok(TokenVerifier {
            key,
            validation,
            revoked: Revoked::new(DEFAULT_KEEP + leeway),
        })
    }

    /// Keeps each revocation for `ttl` (the longest lifetime of the
    /// tokens it must refuse: `jwt.ttl_secs`) plus the leeway, instead of
    /// 30 days.
    pub fn keeping_revocations_for(mut self, ttl: Duration) -> Self {
        let leeway = Duration::from_secs(self.validation.leeway);
        self.revoked = Revoked::new(ttl + leeway);
        self
    }

    /// Refuses `uid`'s tokens issued before `not_before_ms` (unix ms),
    /// for `reason` (a kick reason).
    pub fn revoke(&self, uid: Uid, not_before_ms: u64, reason: &str) {
        self.revoked
            .revoke(uid, not_before_ms, reason, Instant::now());
    }

    /// Why a token of `uid` issued at `issued_ms` (its
    /// [`Verified::issued_ms`]) has been revoked since, if it has: a
    /// revocation that came while its login was under way.
    pub fn revoked_since(&self, uid: Uid, issued_ms: u64) -> Option<std::sync::Arc<str>> {
        self.revoked.refusal(uid, issued_ms, Instant::now())
    }

    pub fn verify(&self, token: &str) -> Result<Uid, AuthError> {
        self.verify_until(token).map(|(uid, _)| uid)
    }

    /// Like [`verify`](Self::verify), and until when (unix seconds,
    /// exclusive) the token stays valid: its `exp` plus the leeway.
    pub fn verify_until(&self, token: &str) -> Result<(Uid, u64), AuthError> {
        self.verify_session(token).map(|v| (v.uid, v.until))
    }

    /// Like [`verify`](Self::verify), with until when the token stays
    /// valid and its sign-in.
    pub fn verify_session(&self, token: &str) -> Result<Verified, AuthError> {
        let claims = decode::<Claims>(token.as_bytes(), &self.key, &self.validation)?.claims;
        let until = claims.exp.saturating_add(self.validation.leeway);
        let Ok(uid) = claims.sub.parse::<Uid>() else {
            return Err(AuthError::BadSubject(claims.sub));
        };
        let issued_ms = claims.issued_ms();
        if self.revoked.refuses(uid, issued_ms, Instant::now()) {
            return Err(AuthError::Revoked);
        }
        Ok(Verified {
            uid,
            until,
            sid: claims.sid,
            issued_ms,
        })
    }
}
