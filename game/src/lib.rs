//! The skynet-style game process.
//!
//! Every logical service (echo, chat, …) runs on its own **named OS thread**
//! with a bounded mailbox, so `top -H`, `gdb` and `perf` show service names
//! and one busy service cannot starve another. A dispatcher task reads the
//! bus and routes each request to the service that owns its cmd; an outbox
//! task publishes what services reply and push.
//!
//! - [`Service`]: what a service implements; [`Context`]: what it may do.
//! - [`GameBuilder`] registers services; [`Game`] is a running process.
//! - [`services`]: the built-in services.
//!
//! The game never touches websockets and never packs client frames: it sees
//! `(uid, cmd, body bytes)` and answers with `(target, cmd, body bytes)`.

mod admin;
mod context;
mod dispatcher;
mod mailbox;
mod outbox;
mod runtime;
mod service;
pub mod services;
mod sessions;
pub mod settings;
mod stats;
mod timers;

pub use admin::{AdminError, serve_admin};
pub use context::{Context, SendError};
pub use runtime::{Game, GameBuilder, GameError, GameHandle, RESTART_STORM_EXIT};
pub use service::{Request, Service, SessionEvent};
pub use settings::GameSettings;
pub use settings::Secret;
pub use stats::ServiceStats;
pub use timers::TimerId;
