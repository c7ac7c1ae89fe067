//! The built-in services.

pub(crate) mod announce;
mod chat;
mod echo;
mod faults;
mod session;
mod wallet;

pub use announce::Announce;
pub use chat::{Chat, ChatConfig};
pub use echo::Echo;
pub use faults::Faults;
pub use session::Session;
pub use wallet::{EconomyConfig, Wallet};
