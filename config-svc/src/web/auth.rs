//! Staff sign-in: argon2id passwords, sessions that expire, CSRF tokens,
//! and a limit on sign-in attempts.
//!
//! - A session is a random 256-bit token in an HttpOnly, SameSite=Strict
//!   cookie; the database keeps only its SHA-256, so a leaked database does
//!   not hand out sessions. It ends after `session_idle_s` without a request,
//!   and after `session_max_s` in any case.
//! - Every form that changes something carries the session's CSRF token,
//!   compared in constant time; the sign-in form carries one from a cookie
//!   (double submit), so nobody can sign a browser into their own account.
//! - Sign-in: a wrong username and a wrong password get the same answer in
//!   the same time (an unknown user is checked against a dummy hash). After
//!   `signin_attempts` failures within `signin_window_s` from one address,
//!   or for one username, further attempts are refused with 429 until the
//!   window has passed, before any password is checked.

use std::{
    collections::HashMap,
    net::IpAddr,
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle_eq::ct_eq;

/// A random token, URL-safe.
pub(super) fn token() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// What the database keeps of a session token.
pub(super) fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

pub use warren_kit::password::hash as hash_password;

/// Checks `password` against `hash`; with no hash (unknown user), spends
/// the same time and says no.
pub(super) fn verify_password(password: &str, hash: Option<&str>, dummy: &str) -> bool {
    let (hash, real) = match hash {
        Some(h) => (h, true),
        None => (dummy, false),
    };
    warren_kit::password::verify(password, hash) && real
}

/// Staff usernames: 1–64 of letters, digits, `.`, `_`, `-`, `@`.
pub fn check_username(name: &str) -> Result<(), String> {
    if !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
    {
        Ok(())
    } else {
        Err("a staff username has 1 to 64 letters, digits, '.', '_', '-' or '@'".into())
    }
}

pub fn check_password(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if (10..=256).contains(&n) {
        Ok(())
    } else {
        Err("a staff password has 10 to 256 characters".into())
    }
}

mod subtle_eq {
    /// Equal strings, compared without an early exit.
    pub(super) fn ct_eq(a: &str, b: &str) -> bool {
        use subtle::ConstantTimeEq;
        a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
    }
}

pub(super) fn csrf_matches(expected: &str, given: &str) -> bool {
    !expected.is_empty() && ct_eq(expected, given)
}

/// Failed sign-ins per address and per username, in a sliding window.
/// Holds at most [`Limiter::MAX_KEYS`] keys; when full even after dropping
/// the expired ones, every attempt is refused until room frees up (a flood
/// of addresses cannot turn the limit off).
#[derive(Debug)]
pub(super) struct Limiter {
    attempts: u32,
    window: Duration,
    failures: HashMap<String, Vec<Instant>>,
}

impl Limiter {
    pub(super) const MAX_KEYS: usize = 10_000;

    pub(super) fn new(attempts: u32, window: Duration) -> Self {
        Limiter {
            attempts: attempts.max(1),
            window,
            failures: HashMap::new(),
        }
    }

    fn keys(ip: IpAddr, username: &str) -> [String; 2] {
        [
            format!("ip:{ip}"),
            format!("user:{}", username.to_lowercase()),
        ]
    }

    /// None if an attempt may go ahead; else how long to wait.
    pub(super) fn check(&mut self, ip: IpAddr, username: &str) -> Option<Duration> {
        let now = Instant::now();
        let window = self.window;
        let mut wait = None;
        for key in Self::keys(ip, username) {
            if let Some(times) = self.failures.get_mut(&key) {
                times.retain(|t| now.duration_since(*t) < window);
                if times.len() >= self.attempts as usize {
                    let oldest = times[0];
                    let left = window.saturating_sub(now.duration_since(oldest));
                    wait = Some(wait.map_or(left, |w: Duration| w.max(left)));
                }
            }
        }
        wait
    }

    pub(super) fn failed(&mut self, ip: IpAddr, username: &str) -> bool {
        let now = Instant::now();
        if self.failures.len() + 2 > Self::MAX_KEYS {
            let window = self.window;
            self.failures
                .retain(|_, t| t.last().is_some_and(|l| now.duration_since(*l) < window));
            if self.failures.len() + 2 > Self::MAX_KEYS {
                return false;
            }
        }
        for key in Self::keys(ip, username) {
            self.failures.entry(key).or_default().push(now);
        }
        true
    }

    pub(super) fn full(&self) -> bool {
        self.failures.len() + 2 > Self::MAX_KEYS
    }

    pub(super) fn succeeded(&mut self, username: &str) {
        self.failures
            .remove(&format!("user:{}", username.to_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_and_unknown_users_never_do() {
        let h = hash_password("correct horse battery").expect("hash");
        let dummy = hash_password("dummy dummy dummy").expect("hash");
        assert!(verify_password("correct horse battery", Some(&h), &dummy));
        assert!(!verify_password("wrong horse battery", Some(&h), &dummy));
        assert!(!verify_password("dummy dummy dummy", None, &dummy));
    }

    #[test]
    fn the_limiter_counts_failures_per_address_and_per_user() {
        let ip: IpAddr = "10.0.0.1".parse().expect("ip");
        let other: IpAddr = "10.0.0.2".parse().expect("ip");
        let mut l = Limiter::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(l.check(ip, "ann").is_none());
            l.failed(ip, "ann");
        }
        assert!(l.check(ip, "ann").is_some());
        assert!(l.check(ip, "bob").is_some(), "same address");
        assert!(l.check(other, "ann").is_some(), "same username");
        assert!(l.check(other, "bob").is_none());
    }

    #[test]
    fn csrf_needs_the_exact_token() {
        assert!(csrf_matches("abc", "abc"));
        assert!(!csrf_matches("abc", "abd"));
        assert!(!csrf_matches("abc", ""));
        assert!(!csrf_matches("", ""));
    }
}
