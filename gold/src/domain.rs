//! Validated values: a request that gets past these constructors is well
//! formed. Each refusal says what was wrong.

use crate::GoldError;

/// Largest absolute amount one movement may carry (10^15).
pub(crate) const MAX_AMOUNT: i64 = 1_000_000_000_000_000;

fn bad(msg: impl Into<String>) -> GoldError {
    GoldError::BadRequest(msg.into())
}

/// A uid as stored (BIGINT): 1..=i64::MAX.
pub(crate) fn uid(raw: u64, field: &str) -> Result<i64, GoldError> {
    i64::try_from(raw)
        .ok()
        .filter(|&u| u > 0)
        .ok_or_else(|| bad(format!("{field} must be a uid between 1 and 2^63-1")))
}

/// A currency name: 1 to 16 of `[a-z0-9_]`.
pub(crate) fn currency(raw: &str) -> Result<&str, GoldError> {
    let ok = (1..=16).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(raw)
    } else {
        Err(bad("currency must be 1 to 16 of a-z 0-9 _"))
    }
}

/// A non-zero delta of at most [`MAX_AMOUNT`] either way.
pub(crate) fn delta(raw: i64) -> Result<i64, GoldError> {
    if raw != 0 && raw.unsigned_abs() <= MAX_AMOUNT as u64 {
        Ok(raw)
    } else {
        Err(bad("delta must be non-zero and at most 10^15 either way"))
    }
}

/// A positive amount of at most [`MAX_AMOUNT`].
pub(crate) fn amount(raw: i64) -> Result<i64, GoldError> {
    if raw > 0 && raw <= MAX_AMOUNT {
        Ok(raw)
    } else {
        Err(bad("amount must be between 1 and 10^15"))
    }
}

/// A ledger reason: 1 to 64 characters.
pub(crate) fn reason(raw: &str) -> Result<&str, GoldError> {
    if (1..=64).contains(&raw.chars().count()) {
        Ok(raw)
    } else {
        Err(bad("reason must have 1 to 64 characters"))
    }
}

/// An idempotency key: 1 to 128 characters.
pub(crate) fn idempotency_key(raw: &str) -> Result<&str, GoldError> {
    if (1..=128).contains(&raw.chars().count()) {
        Ok(raw)
    } else {
        Err(bad("idempotency_key must have 1 to 128 characters"))
    }
}

/// A device id: 1 to 128 characters.
pub(crate) fn device_id(raw: &str) -> Result<&str, GoldError> {
    if (1..=128).contains(&raw.chars().count()) {
        Ok(raw)
    } else {
        Err(bad("device_id must have 1 to 128 characters"))
    }
}

/// A username: 3 to 32 of `[A-Za-z0-9_.-]`.
pub(crate) fn username(raw: &str) -> Result<&str, GoldError> {
    let ok = (3..=32).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if ok {
        Ok(raw)
    } else {
        Err(bad("username must be 3 to 32 of A-Z a-z 0-9 _ . -"))
    }
}

/// A stored password hash: a PHC string (`$argon2id$…`), at most 512 bytes.
pub(crate) fn password_hash(raw: &str) -> Result<&str, GoldError> {
    if raw.starts_with('$') && raw.len() <= 512 {
        Ok(raw)
    } else {
        Err(bad("password_hash must be a PHC string"))
    }
}

/// A session family id: 16 to 64 of `[A-Za-z0-9_-]`.
pub(crate) fn family(raw: &str) -> Result<&str, GoldError> {
    let ok = (16..=64).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(raw)
    } else {
        Err(bad("family must be 16 to 64 of A-Z a-z 0-9 _ -"))
    }
}

/// A token hash: a SHA-256 in lowercase hex (64 characters).
pub(crate) fn token_hash(raw: &str) -> Result<&str, GoldError> {
    let ok = raw.len() == 64 && raw.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if ok {
        Ok(raw)
    } else {
        Err(bad("token hashes are SHA-256 in lowercase hex"))
    }
}

/// A ban's reason: 1 to 200 characters.
pub(crate) fn ban_reason(raw: &str) -> Result<&str, GoldError> {
    if (1..=200).contains(&raw.chars().count()) {
        Ok(raw)
    } else {
        Err(bad("a ban's reason must have 1 to 200 characters"))
    }
}

/// Who acts, for the audit: 1 to 64 characters.
pub(crate) fn actor(raw: &str) -> Result<&str, GoldError> {
    if (1..=64).contains(&raw.chars().count()) {
        Ok(raw)
    } else {
        Err(bad("by must have 1 to 64 characters"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_at_their_edges() {
        assert!(uid(0, "uid").is_err());
        assert!(uid(u64::MAX, "uid").is_err());
        assert_eq!(uid(7, "uid").ok(), Some(7));
        assert!(currency("gold").is_ok());
        assert!(currency("Gold").is_err());
        assert!(currency("").is_err());
        assert!(currency("a_very_long_currency").is_err());
        assert!(delta(0).is_err());
        assert!(delta(-MAX_AMOUNT).is_ok());
        assert!(delta(MAX_AMOUNT + 1).is_err());
        assert!(delta(i64::MIN).is_err());
        assert!(amount(-1).is_err());
        assert!(reason("").is_err());
        assert!(reason(&"x".repeat(65)).is_err());
        assert!(idempotency_key(&"k".repeat(128)).is_ok());
        assert!(username("ab").is_err());
        assert!(username("good_name-1.x").is_ok());
        assert!(username("no spaces").is_err());
        assert!(password_hash("plain").is_err());
        assert!(family("short").is_err());
        assert!(family("abcdefghijklmnop").is_ok());
        assert!(family("abcdefghijklmno/").is_err());
        assert!(token_hash(&"a".repeat(64)).is_ok());
        assert!(token_hash(&"A".repeat(64)).is_err());
        assert!(token_hash(&"a".repeat(63)).is_err());
        assert!(ban_reason("").is_err());
        assert!(actor(&"x".repeat(65)).is_err());
    }
}
