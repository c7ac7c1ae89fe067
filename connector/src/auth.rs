//! Token verification: the connector holds only the public key.
//!
//! One algorithm is pinned (EdDSA); a token that names any other, `none`
//! included, is refused. `exp`, `iat`, `iss`, `aud` and `sub` are required;
//! `iss` and `aud` must match the configured values; `exp` and `nbf` are
//! checked with an explicit leeway.

use std::fmt;

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use warren_proto::{Claims, Uid};

/// Why a token was refused. The client only ever sees `unauthorized`; the
/// variant goes to the log.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("token rejected: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("token subject {0:?} is not a uid")]
    BadSubject(String),
}

pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
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
        Ok(TokenVerifier { key, validation })
    }

    pub fn verify(&self, token: &str) -> Result<Uid, AuthError> {
        self.verify_until(token).map(|(uid, _)| uid)
    }

    /// Like [`verify`](Self::verify), and until when (unix seconds,
    /// exclusive) the token stays valid: its `exp` plus the leeway.
    pub fn verify_until(&self, token: &str) -> Result<(Uid, u64), AuthError> {
        let data = decode::<Claims>(token.as_bytes(), &self.key, &self.validation)?;
        let until = data.claims.exp.saturating_add(self.validation.leeway);
        let uid = data.claims.sub.parse::<Uid>();
        uid.map(|uid| (uid, until))
            .map_err(|_| AuthError::BadSubject(data.claims.sub))
    }
}
