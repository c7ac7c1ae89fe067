//! The `warren` binary as a library: settings, keys, the run modes
//! (everything in one process, or each server alone) and the command-line
//! tools. `main.rs` only parses the command line and calls [`app::main`].
//!
//! - `app`: the command dispatch; `modes/`: one file per run mode; `parts`:
//!   starting each server part, shared by the modes; [`ready`]: the
//!   readiness contract (`--ready-file`).
//! - `admin_client`: `warren debug` and `warren announce`; `ban`: `warren
//!   ban`; `staff`:
//!   `warren config-admin`; [`keys`]: the token key pair.
//! - `web_page`: the example web page (`examples/web/`) the embedded
//!   default serves.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

// Used by the binary alone (main.rs): the allocator and the log
// subscriber.
use mimalloc as _;
use tracing_subscriber as _;

mod admin_client;
pub mod app;
mod ban;
pub mod cli;
mod health;
pub mod keys;
mod modes;
mod parts;
pub mod ready;
pub mod settings;
mod staff;
mod web_page;
