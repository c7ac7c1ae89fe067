//! The built-in services.

mod chat;
mod echo;
mod faults;

pub use chat::Chat;
pub use echo::Echo;
pub use faults::Faults;
