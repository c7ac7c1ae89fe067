//! Small infrastructure Warren's servers share, kept in one place:
//!
//! - [`password`]: argon2id hashing of players' (login) and staff's
//!   (config-svc) passwords.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod password;
