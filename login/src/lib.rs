//! login: the stateless HTTP login of PROTOCOL.md §1. Guest accounts by
//! device id and username/password accounts, both stored through gold;
//! passwords hashed here with argon2 (gold stores only the hash); tokens
//! signed here with the private key whose public half the connector holds.
//! Any number of logins can run side by side: all state is in gold.
//!
//! - [`keys`]: the Ed25519 key pair and token signing.
//! - `api`: the sign-in routes, their rate limits and what a refusal looks
//!   like (passwords are hashed by `warren_kit::password`, off the async
//!   threads).
//! - `sessions`: access and refresh tokens, `/v1/refresh`, `/v1/logout`;
//!   [`Revoker`]: a logout reaches the connectors through a game.
//! - [`run`]: login's entry point, the HTTP server until shutdown.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod api;
pub mod keys;
mod revoke;
mod server;
mod sessions;

pub use keys::{JwtSettings, TokenSigner};
pub use revoke::Revoker;
pub use server::{LoginSettings, ServeError, run};
