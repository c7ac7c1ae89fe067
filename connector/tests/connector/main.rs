//! The connector alone, on the in-process bus, with real websocket clients;
//! the test plays the game (reads events, publishes pushes).

#![allow(clippy::unwrap_used)]

mod cap;
mod deadlines;
mod flood;
mod helpers;
mod json;
mod pushes;
mod resume;
mod slowloris;
mod tokens;
