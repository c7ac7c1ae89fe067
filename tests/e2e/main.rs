//! End-to-end tests: real `warren` processes, real websocket clients, and
//! for every scenario both buses — the in-process one (the all-in-one
//! process) and the local RabbitMQ (connector and game as separate
//! processes, each test in its own namespace, deleted afterwards).

// In tests a panic is how a failure is reported.
#![allow(clippy::unwrap_used)]

mod announce;
mod config;
mod console;
mod durable;
mod faults;
mod helpers;

pub(crate) use warren_test_support::on_both_buses;
mod sessions;
mod shards;
mod spine;
mod wallet;
