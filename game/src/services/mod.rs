//! The built-in services.

pub mod announce;
pub mod chat;
mod echo;
mod faults;
pub mod session;
pub mod wallet;

pub use announce::Announce;
pub use chat::Chat;
pub use echo::Echo;
pub use faults::Faults;
pub use session::Session;
pub use wallet::Wallet;
