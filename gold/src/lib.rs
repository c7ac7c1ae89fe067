//! gold: the data service. Every database operation of the game database —
//! accounts, wallets, the ledger, sessions and bans — lives here, behind gRPC
//! (`proto/proto/gold.proto`). Stateless: any number of gold processes can
//! serve one database, because every money movement is one database
//! transaction guarded by row locks and an idempotency key, never by a lock
//! in the process.
//!
//! - `domain`: validated request values (currency, amount, key, …).
//! - [`GoldError`]: what can go wrong, and its gRPC status.
//! - [`Store`]: the SQL, on PostgreSQL or SQLite.
//! - [`GoldService`]: the tonic service; [`run`] serves it: gold's entry point.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod domain;
mod error;
mod server;
mod service;
mod store;

pub use error::{GoldError, REASON_KEY, reason};
pub use server::{GoldSettings, run};
pub use service::GoldService;
pub use store::{Applied, Ban, BanRecord, Dialect, Entry, MAX_SESSIONS, Store, Transferred};
