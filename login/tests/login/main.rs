//! login over real HTTP, with a real gold (SQLite) behind it: sign-ins,
//! refusals, sessions (refresh, logout, bans) and rate limits.

#![allow(clippy::unwrap_used)]

mod helpers;
mod http;
mod sessions;
