//! gold against real databases: every test runs on PostgreSQL (a fresh
//! database, created and dropped by the test) and on SQLite (a fresh file).

#![allow(clippy::unwrap_used)]

mod bank;
mod helpers;
mod sessions;
mod store;
mod tls;
