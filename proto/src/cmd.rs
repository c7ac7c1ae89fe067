//! Command numbers of PROTOCOL.md. Below [`FIRST_SERVICE_CMD`] the connector
//! handles the frame itself; from it on, a game service does.

pub const LOGIN: u32 = 1;
pub const HEARTBEAT: u32 = 2;
pub const KICK: u32 = 3;
pub const ERROR: u32 = 4;

/// The first command a game service may own.
pub const FIRST_SERVICE_CMD: u32 = 1000;

pub const ECHO: u32 = 1001;
pub const PRESENCE: u32 = 1010;
pub const CHAT_JOIN: u32 = 2001;
pub const CHAT_SEND: u32 = 2002;
pub const CHAT_MESSAGE: u32 = 2003;
pub const CHAT_LEAVE: u32 = 2004;
pub const ANNOUNCEMENT: u32 = 9001;

/// Error codes carried in a cmd 4 body.
pub mod code {
    pub const UNAUTHORIZED: &str = "unauthorized";
    pub const UNKNOWN_CMD: &str = "unknown_cmd";
    pub const BAD_REQUEST: &str = "bad_request";
    pub const OVERLOADED: &str = "overloaded";
    pub const INTERNAL: &str = "internal";
    pub const UNAVAILABLE: &str = "unavailable";
    /// The connector had no answer from the game within its request
    /// time-out. The request may still have been carried out.
    pub const TIMEOUT: &str = "timeout";
}

/// Reasons carried in a cmd 3 (kick) body.
pub mod kick {
    pub const DUPLICATE_LOGIN: &str = "duplicate_login";
    pub const IDLE_TIMEOUT: &str = "idle_timeout";
    pub const SLOW_CONSUMER: &str = "slow_consumer";
    pub const RATE_LIMITED: &str = "rate_limited";
    pub const SHUTDOWN: &str = "shutdown";
    /// The connector is stopping; a resumable session stays resumable:
    /// resume it on another connector (PROTOCOL.md §3).
    pub const RECONNECT: &str = "reconnect";
    /// An operator banned the player (`warren ban`).
    pub const BANNED: &str = "banned";
    /// The player logged out (this sign-in, or everywhere).
    pub const LOGGED_OUT: &str = "logged_out";
}
