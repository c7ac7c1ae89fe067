//! End-to-end tests: real `warren` processes, real websocket clients, and
//! for every scenario every bus — the in-process one (the all-in-one
//! process), the local RabbitMQ and the local Redis (connector and game as
//! separate processes, each test in its own namespace, deleted
//! afterwards).

// In tests a panic is how a failure is reported.
#![allow(clippy::unwrap_used)]

mod announce;
mod browser;
mod calls;
mod chat_page;
mod config;
mod console;
mod durable;
mod faults;
mod grpc;
mod helpers;

pub(crate) use warren_test_support::on_every_bus;
pub(crate) use warren_test_support::on_networked_buses;
pub(crate) use warren_test_support::{on_buses_with_a_gateway, on_durable_buses};
mod resume;
mod revoke;
mod sessions;
mod shards;
mod spine;
mod standby;
mod tls;
mod wallet;
mod web;
mod zmq;
