//! Small infrastructure Warren's servers share, kept in one place:
//!
//! - [`password`]: argon2id hashing of players' (login) and staff's
//!   (config-svc) passwords.
//! - [`duration`]: settings that are durations, as a number in the unit
//!   their name says or in words (`"30s"`).
//! - [`rate`]: a token bucket (the connector's per-socket limits, the HTTP
//!   call gateway's per-uid and per-address ones).
//! - [`limits`]: a token bucket per key (a player, an address, an
//!   account) in a bounded map: the HTTP call gateway's and login's limits.
//! - [`tls`]: TLS for every listener (rustls), with the certificate
//!   reloaded when its files change, and the plain-text-on-loopback rule.
//! - [`grpc`] (feature `grpc`): gRPC listeners and clients between
//!   Warren's processes, plain or TLS (mutual when asked).
//! - [`SecretUrl`]: a URL that may carry a password, never printed with it.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod duration;
#[cfg(feature = "grpc")]
pub mod grpc;
pub mod limits;
pub mod password;
pub mod rate;
pub mod tls;
mod url;

pub use url::SecretUrl;
