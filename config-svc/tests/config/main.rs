//! config-svc against real databases (PostgreSQL and SQLite), over real
//! gRPC and HTTP connections.

// In tests a panic is how a failure is reported.
#![allow(clippy::unwrap_used)]

mod client;
mod grpc;
mod helpers;
mod web;
