//! The skynet-style service runtime: the framework a game process is built
//! on, knowing no service by name.
//!
//! Every logical service runs on its own **named OS thread** with a bounded
//! mailbox, so `top -H`, `gdb` and `perf` show service names and one busy
//! service cannot starve another. A dispatcher task reads the bus and routes
//! each request to the service that owns its cmd; an outbox task publishes
//! what services reply and push; a supervisor restarts a service that keeps
//! panicking, and a watchdog reports a handler that is stuck.
//!
//! - [`Service`]: what a service implements; [`Context`]: what it may do.
//! - [`GameBuilder`] registers services; [`Game`] is a running process,
//!   [`GameHandle`] reaches it from outside (the debug console).
//! - One file per idea: `builder` (registration and start), `thread` (a
//!   service thread's loop), `supervisor` (panics and restarts), `watchdog`,
//!   `mailbox` (and `mail`, what travels in it), `dispatcher` (bus →
//!   mailboxes), `outbox` (services → bus), `sessions` (who is online where),
//!   `timers`, `stats`, `later` (a request answered after its handler
//!   returned, by a task that waited on something slow).
//!
//! The runtime never touches websockets and never packs client frames: it
//! sees `(uid, cmd, body bytes)` and answers with `(target, cmd, body
//! bytes)`. The built-in services (echo, chat, wallet, …) are content: they
//! live in `warren-game`, which composes them on this runtime.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod builder;
mod context;
mod dispatcher;
mod game;
mod later;
mod mail;
mod mailbox;
mod outbox;
mod service;
mod sessions;
mod settings;
mod shard;
mod stats;
mod supervisor;
mod thread;
mod timers;
mod watchdog;

pub use builder::{GameBuilder, GameError};
pub use context::{Context, SendError};
pub use game::{Game, GameHandle};
pub use later::Later;
pub use service::{NoMail, Request, Service, SessionEvent};
pub use sessions::Sessions;
pub use settings::RuntimeSettings;
pub use shard::{Holding, ShardRole};
pub use stats::ServiceStats;
pub use supervisor::RESTART_STORM_EXIT;
pub use timers::TimerId;
