//! Token keys and signing: the Ed25519 key pair, and the tokens signed with
//! its private half (by `warren token` now, by login later). The connector
//! only ever loads the public half.

use std::{
    fs,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, bail};
use ed25519_dalek::{
    SigningKey,
    pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding},
};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use warren_proto::{Claims, Uid};

use crate::settings::{JwtSettings, Settings};

pub const PRIVATE_FILE: &str = "jwt-private.pem";
pub const PUBLIC_FILE: &str = "jwt-public.pem";

/// A fresh key pair as (private PKCS#8 PEM, public SPKI PEM).
pub fn generate() -> anyhow::Result<(String, String)> {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let private = key
        .to_pkcs8_pem(LineEnding::LF)
        .context("encoding the private key")?
        .to_string();
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .context("encoding the public key")?;
    Ok((private, public))
}

/// Writes a fresh pair into `dir`; refuses to overwrite an existing key.
pub fn write_pair(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let private = dir.join(PRIVATE_FILE);
    let public = dir.join(PUBLIC_FILE);
    if private.exists() || public.exists() {
        bail!(
            "{} already holds a key pair; remove it first to replace it",
            dir.display()
        );
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (private_pem, public_pem) = generate()?;
    write_private(&private, &private_pem)?;
    fs::write(&public, public_pem).with_context(|| format!("writing {}", public.display()))?;
    Ok((private, public))
}

fn write_private(path: &Path, pem: &str) -> anyhow::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(pem.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// The embedded default's keys: the configured ones, or a dev pair in the
/// data directory, generated on first use. Returns (private, public) paths.
pub fn ensure_dev_pair(settings: &Settings) -> anyhow::Result<(PathBuf, PathBuf)> {
    let jwt = &settings.jwt;
    if let (Some(private), Some(public)) = (&jwt.private_key, &jwt.public_key) {
        return Ok((private.clone(), public.clone()));
    }
    let private = settings.data_dir.join(PRIVATE_FILE);
    let public = settings.data_dir.join(PUBLIC_FILE);
    if !private.exists() && !public.exists() {
        write_pair(&settings.data_dir)?;
        tracing::info!(dir = %settings.data_dir.display(), "generated a development key pair");
    }
    Ok((
        jwt.private_key.clone().unwrap_or(private),
        jwt.public_key.clone().unwrap_or(public),
    ))
}

/// Signs tokens for uids.
pub struct TokenSigner {
    key: EncodingKey,
    issuer: String,
    audience: String,
    ttl_secs: u64,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TokenSigner {
    pub fn from_pem(private_pem: &[u8], jwt: &JwtSettings) -> anyhow::Result<Self> {
        let key =
            EncodingKey::from_ed_pem(private_pem).context("reading the Ed25519 private key")?;
        Ok(TokenSigner {
            key,
            issuer: jwt.issuer.clone(),
            audience: jwt.audience.clone(),
            ttl_secs: jwt.ttl_secs,
        })
    }

    pub fn from_file(path: &Path, jwt: &JwtSettings) -> anyhow::Result<Self> {
        let pem = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_pem(&pem, jwt)
    }

    /// A token for `uid`, valid from now for the configured lifetime.
    pub fn sign(&self, uid: Uid) -> anyhow::Result<(String, u64)> {
        let iat = unix_now();
        let exp = iat + self.ttl_secs;
        self.sign_claims(&Claims {
            sub: uid.to_string(),
            exp,
            iat,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        })
        .map(|t| (t, exp))
    }

    /// Signs arbitrary claims (tests use it to forge expired tokens).
    pub fn sign_claims(&self, claims: &Claims) -> anyhow::Result<String> {
        encode(&Header::new(Algorithm::EdDSA), claims, &self.key).context("signing a token")
    }
}

#[cfg(test)]
mod tests {
    use warren_connector::TokenVerifier;

    use super::*;

    fn verifier(public: &str, jwt: &JwtSettings) -> TokenVerifier {
        TokenVerifier::from_ed_pem(
            public.as_bytes(),
            &jwt.issuer,
            &jwt.audience,
            jwt.leeway_secs,
        )
        .expect("public key")
    }

    #[test]
    fn a_signed_token_verifies_with_the_public_half_only() {
        let jwt = JwtSettings::default();
        let (private, public) = generate().expect("keys");
        let signer = TokenSigner::from_pem(private.as_bytes(), &jwt).expect("signer");
        let (token, exp) = signer.sign(Uid(42)).expect("token");
        assert!(exp > unix_now());
        assert_eq!(
            verifier(&public, &jwt).verify(&token).expect("valid"),
            Uid(42)
        );

        let (_, other_public) = generate().expect("keys");
        assert!(verifier(&other_public, &jwt).verify(&token).is_err());
    }

    #[test]
    fn expired_foreign_and_malformed_tokens_are_refused() {
        let jwt = JwtSettings::default();
        let (private, public) = generate().expect("keys");
        let signer = TokenSigner::from_pem(private.as_bytes(), &jwt).expect("signer");
        let v = verifier(&public, &jwt);
        let now = unix_now();
        let claims = |exp: u64, iss: &str, aud: &str, sub: &str| Claims {
            sub: sub.into(),
            exp,
            iat: now.saturating_sub(7200),
            iss: iss.into(),
            aud: aud.into(),
        };
        let cases = [
            claims(now - 3600, "warren", "warren", "1"),
            claims(now + 3600, "someone-else", "warren", "1"),
            claims(now + 3600, "warren", "another-game", "1"),
            claims(now + 3600, "warren", "warren", "not-a-number"),
        ];
        for c in cases {
            let token = signer.sign_claims(&c).expect("signed");
            assert!(v.verify(&token).is_err(), "{c:?} must be refused");
        }
        assert!(v.verify("not.a.token").is_err());
        assert!(v.verify("").is_err());
        // Within the leeway an expired token still passes.
        let token = signer
            .sign_claims(&claims(now - 5, "warren", "warren", "9"))
            .expect("signed");
        assert_eq!(v.verify(&token).expect("inside leeway"), Uid(9));
    }
}
