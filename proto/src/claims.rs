//! The JWT claims: issued by login (or `warren token`), verified by the
//! connector.

use serde::{Deserialize, Serialize};

/// Registered claims Warren requires. `sub` is the uid as a decimal string.
/// `sid` names the sign-in (the refresh-token family) a token belongs to;
/// a token made without one (`warren token`, older logins) has none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    pub iat: u64,
    pub iss: String,
    pub aud: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// When it was issued, in unix ms (`iat` is whole seconds): a logout
    /// revokes the tokens issued before it, and a sign-in a moment later
    /// must not fall in the same second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat_ms: Option<u64>,
}

impl Claims {
    /// When the token was issued, in unix ms: `iat_ms`, else `iat`.
    pub fn issued_ms(&self) -> u64 {
        self.iat_ms.unwrap_or(self.iat.saturating_mul(1000))
    }
}
