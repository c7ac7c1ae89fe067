//! Token keys and signing. The Ed25519 key pair: its private half signs
//! here (login, `warren token`); the connector only ever loads the public
//! half.

use std::{
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use ed25519_dalek::{
    SigningKey,
    pkcs8::{EncodePrivateKey, EncodePublicKey, KeypairBytes, spki::der::pem::LineEnding},
};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde::{Deserialize, Serialize};
use warren_proto::{Claims, Uid};

pub const PRIVATE_FILE: &str = "jwt-private.pem";
pub const PUBLIC_FILE: &str = "jwt-public.pem";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} already holds a key pair; remove it first to replace it")]
    Exists(PathBuf),
    #[error("encoding a key: {0}")]
    Encode(String),
    #[error("not an Ed25519 private key in PEM: {0}")]
    BadKey(#[source] jsonwebtoken::errors::Error),
    #[error("signing a token: {0}")]
    Sign(#[source] jsonwebtoken::errors::Error),
}

/// How tokens are made and checked.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtSettings {
    /// Ed25519 public key (PEM) the connector verifies tokens with.
    /// Unset: `<data_dir>/jwt-public.pem`.
    pub public_key: Option<PathBuf>,
    /// Ed25519 private key (PEM) tokens are signed with (login, `warren
    /// token`). Unset: `<data_dir>/jwt-private.pem`.
    pub private_key: Option<PathBuf>,
    pub issuer: String,
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    #[serde(with = "warren_kit::duration::s")]
    pub leeway_secs: Duration,
    /// Lifetime of the access tokens signed here, in seconds (15 min).
    /// A socket logged in with one stays open after it expires; the
    /// client gets a new one with its refresh token.
    #[serde(with = "warren_kit::duration::s")]
    pub ttl_secs: Duration,
    /// Lifetime of a refresh token (login's; 30 days). Each refresh
    /// returns a new one, valid this long again.
    #[serde(with = "warren_kit::duration::s")]
    pub refresh_ttl_secs: Duration,
}

impl Default for JwtSettings {
    fn default() -> Self {
        JwtSettings {
            public_key: None,
            private_key: None,
            issuer: "warren".to_owned(),
            audience: "warren".to_owned(),
            leeway_secs: Duration::from_secs(30),
            ttl_secs: Duration::from_secs(15 * 60),
            refresh_ttl_secs: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// A fresh key pair as (private PKCS#8 PEM, public SPKI PEM).
///
/// The private key is PKCS#8 v1 (RFC 8410 §7: the seed alone), the form
/// `openssl genpkey -algorithm ed25519` writes and OpenSSL 3, Node's
/// `crypto.createPrivateKey` and Python's `cryptography` read — so a web
/// shop or a tool can sign or check tokens with the same file. (The v2
/// form `SigningKey::to_pkcs8_pem` writes, with the public key inside, is
/// refused by all three as "unsupported"; files in that form written by
/// earlier versions still load here.)
pub fn generate() -> Result<(String, String), KeyError> {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let v1 = KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    };
    let private = v1
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| KeyError::Encode(e.to_string()))?
        .to_string();
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| KeyError::Encode(e.to_string()))?;
    Ok((private, public))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes a fresh pair into `dir` (private key mode 0600); refuses to
/// overwrite an existing key. Returns (private, public) paths.
pub fn write_pair(dir: &Path) -> Result<(PathBuf, PathBuf), KeyError> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let private = dir.join(PRIVATE_FILE);
    let public = dir.join(PUBLIC_FILE);
    if private.exists() || public.exists() {
        return Err(KeyError::Exists(dir.to_owned()));
    }
    fs::create_dir_all(dir).map_err(io(dir))?;
    let (private_pem, public_pem) = generate()?;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&private)
        .map_err(io(&private))?;
    f.write_all(private_pem.as_bytes()).map_err(io(&private))?;
    fs::write(&public, public_pem).map_err(io(&public))?;
    Ok((private, public))
}

pub use warren_proto::time::unix_secs as unix_now;

/// Signs tokens for uids.
pub struct TokenSigner {
    key: EncodingKey,
    issuer: String,
    audience: String,
    ttl: Duration,
    refresh_ttl: Duration,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl TokenSigner {
    pub fn from_pem(private_pem: &[u8], jwt: &JwtSettings) -> Result<Self, KeyError> {
        let key = EncodingKey::from_ed_pem(private_pem).map_err(KeyError::BadKey)?;
        Ok(TokenSigner {
            key,
            issuer: jwt.issuer.clone(),
            audience: jwt.audience.clone(),
            ttl: jwt.ttl_secs,
            refresh_ttl: jwt.refresh_ttl_secs,
        })
    }

    pub fn from_file(path: &Path, jwt: &JwtSettings) -> Result<Self, KeyError> {
        let pem = fs::read(path).map_err(io(path))?;
        Self::from_pem(&pem, jwt)
    }

    /// A token for `uid`, valid from now for the configured lifetime;
    /// returns it with its expiry (unix seconds).
    pub fn sign(&self, uid: Uid) -> Result<(String, u64), KeyError> {
        self.sign_session(uid, None)
    }

    /// Like [`sign`](Self::sign), for the sign-in `sid` (its refresh-token
    /// family) when there is one.
    pub fn sign_session(&self, uid: Uid, sid: Option<&str>) -> Result<(String, u64), KeyError> {
        let iat_ms = warren_proto::time::unix_ms();
        let iat = iat_ms / 1000;
        let exp = iat + self.ttl.as_secs();
        self.sign_claims(&Claims {
            sub: uid.to_string(),
            exp,
            iat,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sid: sid.map(str::to_owned),
            iat_ms: Some(iat_ms),
        })
        .map(|t| (t, exp))
    }

    /// How long a refresh token made now stays valid.
    pub fn refresh_ttl(&self) -> Duration {
        self.refresh_ttl
    }

    /// Signs arbitrary claims (tests use it to forge expired tokens).
    pub fn sign_claims(&self, claims: &Claims) -> Result<String, KeyError> {
        encode(&Header::new(Algorithm::EdDSA), claims, &self.key).map_err(KeyError::Sign)
    }
}
