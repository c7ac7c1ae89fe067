//! The JWT claims: issued by login (or `warren token`), verified by the
//! connector.

use serde::{Deserialize, Serialize};

/// Registered claims Warren requires. `sub` is the uid as a decimal string.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    pub iat: u64,
    pub iss: String,
    pub aud: String,
}
