//! Counters of what the connector saw, for logs, tests and the debug console.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

macro_rules! counters {
    ($($name:ident: $doc:literal,)*) => {
        #[derive(Debug, Default)]
        pub(crate) struct Stats { $(pub(crate) $name: AtomicU64,)* }

        /// A copy of the connector's counters at one moment.
        #[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
        pub struct StatsSnapshot { $(#[doc = $doc] pub $name: u64,)* }

        impl Stats {
            pub(crate) fn snapshot(&self) -> StatsSnapshot {
                StatsSnapshot { $($name: self.$name.load(Relaxed),)* }
            }
        }

        fn counter_fields(s: &StatsSnapshot) -> Vec<(&'static str, &'static str, u64)> {
            vec![$((stringify!($name), $doc, s.$name),)*]
        }
    };
}

counters! {
    accepted: "TCP connections accepted.",
    refused_full: "Connections closed at once because max_connections were held.",
    handshake_failures: "Sockets that failed or timed out in the websocket handshake.",
    logins: "Successful logins.",
    auth_failures: "Login frames with a token that did not verify.",
    refused_cooling: "Logins refused because the player was kicked rate_limited moments before.",
    login_timeouts: "Sockets closed for not logging in in time.",
    dropped_before_login: "Frames received before login, dropped unanswered.",
    frames_in: "Service frames forwarded to the bus.",
    request_timeouts: "Requests answered `timeout` by the connector (no answer from the game in time).",
    refused_in_flight: "Requests answered `overloaded` because the socket had max_in_flight waiting.",
    frames_out: "Frames queued to sockets (replies and pushes).",
    bytes_in: "Bytes of websocket messages received.",
    bytes_out: "Bytes of frames queued to sockets.",
    invalid_frames: "Sockets closed with 1007 (not a [seq, cmd, body] frame).",
    json_sockets: "Sockets that chose JSON text frames (?format=json).",
    not_json_frames: "Frames for JSON sockets whose body has no JSON form, sent as error not_json instead.",
    oversize_frames: "Sockets closed with 1009 (frame over the limit).",
    kicked_duplicate: "Sockets kicked by a newer login of the same uid.",
    kicked_idle: "Sockets kicked for silence.",
    kicked_slow: "Sockets kicked for not reading (outbound queue full).",
    kicked_rate: "Sockets kicked for sending faster than the rate limit.",
    kicked_by_game: "Sockets kicked by a kick push from the game (or a revocation).",
    revocations: "Revocations (logout, ban) received: the player's older tokens no longer log in.",
    bus_errors: "Requests answered `unavailable` because the bus refused them.",
    undeliverable_pushes: "Pushes for a uid or connection this connector does not hold.",
    resumable_logins: "Logins that opened a resumable session (PROTOCOL.md §3).",
    detached: "Resumable sessions whose socket dropped, kept for their client.",
    resumed: "Sessions resumed on a new socket.",
    replayed_frames: "Frames sent again to a resumed socket.",
    resyncs: "Resumes that could not be served: the client got resync and a new session.",
    sessions_expired: "Detached sessions whose client did not come back within resume_grace_ms.",
    sessions_overflowed: "Detached sessions ended because more was sent to them than resume_buffer_* keep.",
    handed_over: "Sessions handed over to another connector their client resumed on.",
    resumed_from_elsewhere: "Sessions resumed here that another connector held.",
    duplicate_requests: "Requests sent again after a resume with a seq the session took already (not applied again).",
}

impl Stats {
    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Relaxed);
    }
}

impl StatsSnapshot {
    /// Every counter as (name, help, value), for Prometheus.
    pub fn fields(&self) -> Vec<(&'static str, &'static str, u64)> {
        counter_fields(self)
    }
}
