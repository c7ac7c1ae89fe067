//! The single websocket gateway.
//!
//! Accepts sockets, authenticates the login frame by verifying the JWT
//! locally (public key only), binds the uid to the socket, turns the socket's
//! life into bus events (Connect / Message / Close / Error) and writes the
//! pushes it receives from the bus back to sockets.
//!
//! Only this crate touches websockets. It knows nothing of services or SQL:
//! a service command is forwarded as `(seq, cmd, body bytes)` unread.
//!
//! - [`settings`]: what can be tuned, with defaults.
//! - [`auth`]: token verification; `revoked`: the players whose older
//!   tokens no longer log in (logout, bans), learnt through the bus.
//! - `registry`: which sockets are live and which uid each holds.
//! - `connection`: the life of one socket.
//! - `session`: resumable sessions (PROTOCOL.md §3), which outlive a socket;
//!   `handover`: moving one to another connector.
//! - `server`: the accept loop, the push pump, shutdown; [`run`], the
//!   connector's entry point.
//! - `admin`: the operators' endpoint, served by [`run`] beside the players'.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod admin;
pub mod auth;
mod connection;
mod handover;
mod outbox;
mod registry;
mod revoked;
mod server;
mod session;
pub mod settings;
mod stats;

pub use auth::{AuthError, TokenVerifier, Verified};
pub use server::{Connector, Listeners, RunError, run};
pub use settings::ConnectorSettings;
pub use stats::StatsSnapshot;
