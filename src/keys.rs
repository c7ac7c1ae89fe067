//! Token keys for the binary: login's key handling, plus the embedded
//! default's development pair in the data directory.

use std::path::PathBuf;

pub use warren_login::keys::{
    KeyError, PRIVATE_FILE, PUBLIC_FILE, TokenSigner, generate, unix_now, write_pair,
};

use crate::settings::Settings;

/// The configured keys, or a development pair in the data directory,
/// generated on first use. Returns (private, public) paths.
pub fn ensure_dev_pair(settings: &Settings) -> Result<(PathBuf, PathBuf), KeyError> {
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

#[cfg(test)]
mod tests {
    use warren_connector::TokenVerifier;
    use warren_proto::{Claims, Uid};

    use super::*;
    use crate::settings::JwtSettings;

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
            sid: None,
            iat_ms: None,
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
