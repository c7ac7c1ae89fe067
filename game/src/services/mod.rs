//! The built-in services.

mod chat;
mod echo;
mod faults;
pub(crate) mod session;
pub mod wallet;

pub use chat::Chat;
pub use echo::Echo;
pub use faults::Faults;
pub use wallet::Wallet;
