//! The `warren` binary as a library: settings, keys, and the run modes
//! (everything in one process, or each part alone). `main.rs` only parses
//! the command line and calls [`app::main`].

pub mod app;
pub mod cli;
pub mod keys;
pub mod settings;
