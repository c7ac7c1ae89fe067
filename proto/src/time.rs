//! The wall clock as the protocol and the stored records state times: unix
//! milliseconds (heartbeat replies, the ledger, config history) and unix
//! seconds (token claims, announcements). A clock set before 1970 reads 0.

use std::time::{SystemTime, UNIX_EPOCH};

fn since_epoch() -> std::time::Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Milliseconds since the unix epoch.
pub fn unix_ms() -> u64 {
    since_epoch().as_millis() as u64
}

/// Seconds since the unix epoch.
pub fn unix_secs() -> u64 {
    since_epoch().as_secs()
}

/// Microseconds since the unix epoch (the bots' send stamps).
pub fn unix_micros() -> u64 {
    since_epoch().as_micros() as u64
}
