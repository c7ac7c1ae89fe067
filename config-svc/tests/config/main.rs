//! config-svc against real databases (PostgreSQL and SQLite), over real
//! gRPC and HTTP connections.

mod client;
mod grpc;
mod helpers;
mod web;
