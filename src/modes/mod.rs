//! The run modes of the `warren` binary, one file each: the whole stack in
//! one process (`all`, the default), or one server alone. Each starts its
//! parts (see `parts`), writes the ready file, waits for the shutdown
//! signal and stops the parts in order.

mod all;
mod config_svc;
mod connector;
mod game;
mod gold;
mod http;
mod login;
mod push_server;

pub(crate) use all::all;
pub(crate) use config_svc::config_svc;
pub(crate) use connector::connector;
pub(crate) use game::game;
pub(crate) use gold::gold;
pub(crate) use http::http;
pub(crate) use login::login;
pub(crate) use push_server::push_server;
