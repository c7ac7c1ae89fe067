//! The HTTP call gateway's settings. Every field has a default.

use std::{net::SocketAddr, time::Duration};

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallSettings {
    /// Where to accept HTTP calls.
    pub listen: SocketAddr,
    /// This gateway's id on the bus; names the queue its replies come to.
    /// Default: `http-<pid>`. Unique per gateway.
    pub id: Option<String>,
    /// A call the game has not answered within this long is answered 504
    /// `timeout` (it may still have been carried out).
    #[serde(with = "warren_kit::duration::ms")]
    pub request_timeout_ms: Duration,
    /// Largest request body accepted; larger is 413.
    pub max_body_bytes: usize,
    /// Calls waiting for the game at once, on this gateway; more are
    /// answered 503 `overloaded` at once.
    pub max_in_flight: usize,
    /// Calls one player may make per second, sustained, and in a burst
    /// (token bucket); over it is 429 `rate_limited`.
    pub uid_rate_per_sec: u32,
    pub uid_rate_burst: u32,
    /// The same per client address (counted before the token is checked,
    /// so a flood of bad tokens is limited too).
    pub address_rate_per_sec: u32,
    pub address_rate_burst: u32,
    /// Players and addresses whose buckets are remembered at once; when
    /// full, the idlest half are forgotten (a forgotten bucket starts full).
    pub max_tracked: usize,
    /// Tokens whose verification is remembered until they expire, so a
    /// player's next call skips the signature check; full => the expired
    /// ones, then all, are forgotten. 0: check every call.
    pub token_cache: usize,
    /// Web pages allowed to call from another origin (CORS): `"*"` (any;
    /// safe, as calls carry a token, never a cookie) or a list like
    /// `["https://play.example.com"]`; empty: none.
    pub cors_origins: Vec<String>,
}

impl Default for CallSettings {
    fn default() -> Self {
        CallSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 7006)),
            id: None,
            request_timeout_ms: Duration::from_millis(10_000),
            max_body_bytes: 64 * 1024,
            max_in_flight: 10_000,
            uid_rate_per_sec: 20,
            uid_rate_burst: 40,
            address_rate_per_sec: 200,
            address_rate_burst: 400,
            max_tracked: 100_000,
            token_cache: 100_000,
            cors_origins: vec!["*".to_owned()],
        }
    }
}
