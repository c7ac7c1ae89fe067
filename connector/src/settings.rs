//! Connector settings. Every field has a default; a duration is set as a
//! number of the unit its name ends with, or in words (`"30s"`: see
//! `warren_kit::duration`).

use std::{net::SocketAddr, time::Duration};

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectorSettings {
    /// Where to accept websockets.
    pub listen: SocketAddr,
    /// The websocket path; any other path is refused with 404.
    pub path: String,
    /// This connector's id; names its push queue. Default: `connector-<pid>`.
    pub id: Option<String>,
    /// A socket must finish the websocket handshake within this time.
    #[serde(with = "warren_kit::duration::ms")]
    pub handshake_timeout_ms: Duration,
    /// A socket must send a valid login frame within this time.
    #[serde(with = "warren_kit::duration::ms")]
    pub login_timeout_ms: Duration,
    /// A logged-in socket silent for this long is kicked (`idle_timeout`).
    #[serde(with = "warren_kit::duration::ms")]
    pub idle_timeout_ms: Duration,
    /// Largest websocket message accepted; larger closes with 1009.
    pub max_frame_bytes: usize,
    /// Frames waiting to be written to one socket. When full the client is
    /// not reading: it is kicked (`slow_consumer`). Keep it above
    /// `max_in_flight`: the replies to every request a client has waiting
    /// may arrive in one batch from the bus, all at once. Memory is bounded
    /// by `outbound_queue_bytes`; the queue's slots are allocated as used.
    pub outbound_queue: usize,
    /// Sockets held at once; one more is accepted and closed at once.
    pub max_connections: usize,
    /// Bytes each socket's websocket read buffer starts with.
    pub read_buffer_bytes: usize,
    /// How long a closing socket gets to receive its last frames.
    #[serde(with = "warren_kit::duration::ms")]
    pub close_timeout_ms: Duration,
    /// How long shutdown waits for sockets to close before giving up.
    #[serde(with = "warren_kit::duration::ms")]
    pub shutdown_grace_ms: Duration,
    /// Frames a socket may send per second, sustained (token bucket). A
    /// client faster than that is kicked (`rate_limited`).
    pub rate_limit_per_sec: u32,
    /// Frames a socket may send in a burst above the sustained rate.
    pub rate_limit_burst: u32,
    /// Bytes a socket may send per second, sustained, and in a burst: a
    /// client over it is kicked `rate_limited` too (few frames, but huge).
    pub byte_limit_per_sec: u32,
    pub byte_limit_burst: u32,
    /// A player kicked `rate_limited` may not log in again on this
    /// connector for this long (a flooder cannot simply start over).
    #[serde(with = "warren_kit::duration::ms")]
    pub kick_cooldown_ms: Duration,
    /// Bytes that may wait in one socket's outbound queue (besides the
    /// frame count `outbound_queue`); more and the client is kicked
    /// `slow_consumer`. Bounds what a client that stops reading costs.
    pub outbound_queue_bytes: usize,
    /// Where the operators' admin endpoint (stats, /metrics) listens.
    pub admin_listen: SocketAddr,
    /// A request the game has not answered within this long is answered
    /// with error `timeout` by the connector, so no request goes unanswered
    /// (a reply lost while the broker restarts, a game killed mid-request).
    #[serde(with = "warren_kit::duration::ms")]
    pub request_timeout_ms: Duration,
    /// Requests one socket may have waiting for an answer; more are
    /// answered `overloaded` at once, not forwarded.
    pub max_in_flight: usize,
    /// How often the connector tells the game it is alive. The game takes
    /// it for dead after `game.connector_expiry_ms` of silence.
    #[serde(with = "warren_kit::duration::ms")]
    pub alive_interval_ms: Duration,
    /// How long a resumable session whose socket dropped waits for its
    /// client to resume it (PROTOCOL.md §3) before the game sees it close.
    #[serde(with = "warren_kit::duration::ms")]
    pub resume_grace_ms: Duration,
    /// The frames a resumable session keeps for a resume: at most this
    /// many, and this many bytes. Attached, the oldest go (the client
    /// acknowledges with its heartbeats); detached, one more ends the
    /// session (the client resyncs).
    pub resume_buffer_frames: usize,
    pub resume_buffer_bytes: usize,
    /// A stopping connector (SIGTERM) kicks its resumable sessions'
    /// clients with `reconnect` and keeps their sessions this long at most
    /// for them to resume on another connector; then it ends those left
    /// and stops. (Not more than `resume_grace_ms` helps.)
    #[serde(with = "warren_kit::duration::ms")]
    pub drain_ms: Duration,
}

impl Default for ConnectorSettings {
    fn default() -> Self {
        ConnectorSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 7001)),
            path: "/ws".to_owned(),
            id: None,
            handshake_timeout_ms: Duration::from_millis(5_000),
            login_timeout_ms: Duration::from_millis(10_000),
            idle_timeout_ms: Duration::from_millis(30_000),
            max_frame_bytes: 64 * 1024,
            outbound_queue: 2048,
            max_connections: 19_000,
            read_buffer_bytes: 1024,
            close_timeout_ms: Duration::from_millis(1_000),
            shutdown_grace_ms: Duration::from_millis(5_000),
            alive_interval_ms: Duration::from_millis(2_000),
            request_timeout_ms: Duration::from_millis(10_000),
            max_in_flight: 1024,
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 7008)),
            rate_limit_per_sec: 100,
            rate_limit_burst: 200,
            byte_limit_per_sec: 256 * 1024,
            byte_limit_burst: 1024 * 1024,
            kick_cooldown_ms: Duration::from_millis(10_000),
            outbound_queue_bytes: 1024 * 1024,
            resume_grace_ms: Duration::from_millis(30_000),
            resume_buffer_frames: 1024,
            resume_buffer_bytes: 256 * 1024,
            drain_ms: Duration::from_millis(10_000),
        }
    }
}
