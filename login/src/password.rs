//! Password hashing with argon2id (the crate's defaults: OWASP's
//! m=19 MiB, t=2, p=1). Hashing costs tens of milliseconds of CPU, so it
//! runs on the blocking pool, never on the async threads.

use argon2::{
    Argon2,
    password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash},
};

/// A PHC string for `password`.
pub(crate) async fn hash(password: String) -> Result<String, String> {
    tokio::task::spawn_blocking(move || {
        // A fresh random salt per hash (the `getrandom` feature).
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Whether `password` matches `phc`. A malformed stored hash never matches.
pub(crate) async fn verify(password: String, phc: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&phc)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}
