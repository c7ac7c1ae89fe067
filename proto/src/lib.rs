//! Every contract between Warren processes, and nothing else.
//!
//! - `frame`: the client wire frame `[seq, cmd, body]` (PROTOCOL.md §2) and
//!   the bodies of the control commands.
//! - `envelope`: what travels on the bus between connector and game:
//!   events (Connect / Message / Close / Error) and pushes (frames to send,
//!   kicks), versioned so the format can evolve.
//! - [`Claims`]: the JWT claims login issues and the connector verifies.
//! - [`batch`]: several envelopes in one broker message.
//! - [`body`]: the bodies of the built-in service commands (PROTOCOL.md §3).
//! - [`time`]: the wall clock as the protocol states times.
//! - [`json`]: JSON clients' frames, and bodies converted between
//!   MessagePack and JSON without being interpreted.
//!
//! This crate alone knows serialization formats. Decoding never panics: every
//! malformed input is a [`DecodeError`].

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod batch;
pub mod body;
mod claims;
pub mod cmd;
mod envelope;
mod error;
mod frame;
pub mod http;
mod ids;
pub mod json;
pub mod time;

pub use claims::Claims;
pub use envelope::{
    BusEvent, BusPush, ENVELOPE_VERSION, EventKind, PushKind, Target, decode_event, decode_push,
    encode_event, encode_push,
};
pub use error::DecodeError;
pub use frame::{
    ErrorBody, Frame, HeartbeatReply, HeartbeatRequest, KickBody, LoginReply, LoginRequest,
    decode_body, encode_body, numbered,
};
pub use ids::{ConnId, ConnectorId, Uid};

/// The gRPC contract of gold (`proto/gold.proto`), with its tonic client and
/// server.
#[cfg(feature = "grpc")]
pub mod gold {
    #![allow(missing_debug_implementations, clippy::all, clippy::pedantic)]
    tonic::include_proto!("warren.gold.v1");

    mod client;
    pub use client::{Failure, Gold, failure};

    /// The metadata key of a failed call's machine-readable reason.
    pub const REASON_KEY: &str = "warren-reason";

    /// The reason of a status from gold (`""` if it has none).
    pub fn reason(status: &tonic::Status) -> &str {
        status
            .metadata()
            .get(REASON_KEY)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// The gRPC gateway's contract (`proto/gateway.proto`): `Gateway` on
/// connectors, `Upstream` on services.
#[cfg(feature = "grpc")]
pub mod gateway {
    #![allow(missing_debug_implementations, clippy::all, clippy::pedantic)]
    tonic::include_proto!("warren.gateway.v1");
}

/// The gRPC contract of config-svc (`proto/config.proto`), with its tonic
/// client and server.
#[cfg(feature = "grpc")]
pub mod config {
    #![allow(missing_debug_implementations, clippy::all, clippy::pedantic)]
    tonic::include_proto!("warren.config.v1");
}
