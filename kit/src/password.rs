//! Password hashing with argon2id (the crate's defaults: OWASP's
//! m=19 MiB, t=2, p=1), as PHC strings with a fresh random salt each.
//! Hashing costs tens of milliseconds of CPU: async callers use the
//! `*_off_thread` forms, which run on tokio's blocking pool, never on the
//! async threads.

use argon2::{
    Argon2,
    password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash},
};

/// A PHC string for `password`.
pub fn hash(password: &str) -> Result<String, String> {
    // A fresh random salt per hash (argon2's `getrandom` feature).
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches `phc`. A malformed stored hash never matches.
pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// [`hash`], on the blocking pool.
pub async fn hash_off_thread(password: String) -> Result<String, String> {
    tokio::task::spawn_blocking(move || hash(&password))
        .await
        .map_err(|e| e.to_string())?
}

/// [`verify`], on the blocking pool.
pub async fn verify_off_thread(password: String, phc: String) -> bool {
    tokio::task::spawn_blocking(move || verify(&password, &phc))
        .await
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let phc = hash_off_thread("correct horse".into())
            .await
            .unwrap_or_default();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(verify_off_thread("correct horse".into(), phc.clone()).await);
        assert!(!verify("battery staple", &phc));
        assert!(!verify("correct horse", "not a phc string"));
        assert_ne!(
            hash("correct horse").unwrap_or_default(),
            phc,
            "a fresh salt each time"
        );
    }
}
