//! The bus envelope: what connector and game say to each other.
//!
//! Two directions, two types:
//! - [`BusEvent`], connector → game: a socket connected, sent a request,
//!   closed, or failed. Carries the connector id, the connection id, the uid
//!   and (on connect) the peer address.
//! - [`BusPush`], game → connector: a frame to write to a [`Target`] (one uid,
//!   several uids, one connection, everyone), or a kick.
//!
//! On the wire each is a MessagePack array whose first element is the
//! envelope version ([`ENVELOPE_VERSION`]); a reader refuses a version it
//! does not know instead of guessing, so the format can evolve behind a
//! version bump.

use bytes::Bytes;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::{ConnId, ConnectorId, DecodeError, Uid};

/// The envelope version this build writes and reads.
pub const ENVELOPE_VERSION: u16 = 1;

/// Connector → game.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusEvent {
    pub connector: ConnectorId,
    pub conn: ConnId,
    pub uid: Uid,
    pub kind: EventKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// The socket logged in as `uid`. `peer` is the remote address.
    Connect { peer: String },
    /// A service request (cmd >= 1000) from a logged-in socket.
    Message { seq: u64, cmd: u32, body: Bytes },
    /// The socket is gone: closed by the client, kicked, or timed out.
    Close { reason: String },
    /// The socket failed (protocol or I/O error); it is gone too.
    Error { error: String },
    /// The socket of a resumable session dropped (PROTOCOL.md §3): the
    /// player is away but not gone. Pushes to it are kept for its return
    /// (rooms, presence and the session table stay); a Close follows if
    /// it does not come back within the grace period.
    Detached { reason: String },
    /// A detached session is back on a new socket (same connection id).
    Attached { peer: String },
    /// The session `session`, held by connection `from_conn` on connector
    /// `from`, is resuming on this event's connection (another
    /// connector). Every shard takes the player as this connection's from
    /// now on, sends replies addressed to the old one here, and asks the
    /// old connector to hand the session over ([`PushKind::HandOver`]).
    Resume {
        from: ConnectorId,
        from_conn: ConnId,
        session: String,
    },
    /// The old connector's answer to a [`PushKind::HandOver`]: the
    /// session's state (opaque to the game), for the shard of the player
    /// to pass on to connection `to_conn` of connector `to`
    /// ([`PushKind::Session`]).
    Handed {
        to: ConnectorId,
        to_conn: ConnId,
        state: Bytes,
    },
    /// The connector is alive (sent periodically; uid and conn are 0).
    /// `boot` identifies this run of it: a new value means it restarted and
    /// every socket it held before is gone.
    Alive { boot: u64 },
    /// A service request made over HTTP (PROTOCOL.md §4), not from a
    /// socket: `conn` names the call on the HTTP gateway `connector`, which
    /// waits for the reply. Only cmds a service declares callable over HTTP
    /// are served; the rest are answered `unknown_cmd`.
    Call { seq: u64, cmd: u32, body: Bytes },
}

/// Game → connector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusPush {
    pub target: Target,
    pub kind: PushKind,
}

/// Who a push is for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    Uid(Uid),
    Uids(Vec<Uid>),
    /// One connection on one connector: how replies find their socket.
    Conn {
        connector: ConnectorId,
        conn: ConnId,
    },
    All,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PushKind {
    /// Write this frame (a reply carries its request's seq; a push, 0).
    Frame { seq: u64, cmd: u32, body: Bytes },
    /// Send a kick frame with this reason, then close the socket.
    Kick { reason: String },
    /// The player's tokens issued before `not_before_ms` (unix ms) no
    /// longer log in, on any connector; its socket is kicked with
    /// `reason` if it logged in with the sign-in `sid` (any sign-in when
    /// `sid` is None). Sent to every connector with [`Target::Uid`]:
    /// logout, ban.
    Revoke {
        not_before_ms: u64,
        sid: Option<String>,
        reason: String,
    },
    /// To the connection that holds session `session`: its client is
    /// resuming on connection `to_conn` of connector `to`. One comes from
    /// every shard, after everything that shard sent to the old
    /// connection; once all have come the connector answers
    /// [`EventKind::Handed`].
    HandOver {
        uid: Uid,
        to: ConnectorId,
        to_conn: ConnId,
        session: String,
        /// The shard it comes from.
        shard: u16,
    },
    /// To the connection a session is resuming on: the session's state
    /// from the connector that held it, or None if no shard knows the
    /// session (its connector is gone): the client resyncs.
    Session { state: Option<Bytes> },
}

#[derive(Serialize)]
struct Versioned<'a, T>(u16, &'a T);

#[derive(Deserialize)]
struct Unversioned<T>(#[allow(dead_code)] u16, T);

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    rmp_serde::to_vec(&Versioned(ENVELOPE_VERSION, value))
        .unwrap_or_else(|e| unreachable!("encoding an envelope into memory failed: {e}"))
}

fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, DecodeError> {
    // Read the version before the rest, so a newer envelope is reported as
    // such rather than as garbage.
    let mut rd = bytes;
    let version = rmp::decode::read_array_len(&mut rd)
        .ok()
        .filter(|&n| n == 2)
        .and_then(|_| rmp::decode::read_int::<u16, _>(&mut rd).ok());
    match version {
        Some(ENVELOPE_VERSION) => {}
        Some(found) => {
            return Err(DecodeError::Version {
                what,
                found,
                supported: ENVELOPE_VERSION,
            });
        }
        None => {
            return Err(DecodeError::Malformed {
                what,
                source: rmp_serde::decode::Error::Syntax("expected [version, envelope]".to_owned()),
            });
        }
    }
    let Unversioned(_, value) =
        rmp_serde::from_slice(bytes).map_err(|source| DecodeError::Malformed { what, source })?;
    Ok(value)
}

pub fn encode_event(event: &BusEvent) -> Vec<u8> {
    encode(event)
}

pub fn decode_event(bytes: &[u8]) -> Result<BusEvent, DecodeError> {
    decode("a bus event", bytes)
}

pub fn encode_push(push: &BusPush) -> Vec<u8> {
    encode(push)
}

pub fn decode_push(bytes: &[u8]) -> Result<BusPush, DecodeError> {
    decode("a bus push", bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connector() -> ConnectorId {
        ConnectorId::parse("c1").expect("valid id")
    }

    #[test]
    fn events_round_trip() {
        let kinds = [
            EventKind::Connect {
                peer: "127.0.0.1:5000".into(),
            },
            EventKind::Message {
                seq: 9,
                cmd: 1001,
                body: Bytes::from_static(b"\x80"),
            },
            EventKind::Close {
                reason: "client".into(),
            },
            EventKind::Error {
                error: "reset".into(),
            },
            EventKind::Alive { boot: 17 },
            EventKind::Detached {
                reason: "dropped".into(),
            },
            EventKind::Attached {
                peer: "127.0.0.1:5001".into(),
            },
        ];
        for kind in kinds {
            let ev = BusEvent {
                connector: connector(),
                conn: ConnId(3),
                uid: Uid(77),
                kind,
            };
            assert_eq!(decode_event(&encode_event(&ev)).expect("decodes"), ev);
        }
    }

    #[test]
    fn pushes_round_trip() {
        let targets = [
            Target::Uid(Uid(1)),
            Target::Uids(vec![Uid(1), Uid(2)]),
            Target::Conn {
                connector: connector(),
                conn: ConnId(5),
            },
            Target::All,
        ];
        for target in targets {
            let push = BusPush {
                target,
                kind: PushKind::Frame {
                    seq: 0,
                    cmd: 2003,
                    body: Bytes::from_static(b"\x80"),
                },
            };
            assert_eq!(decode_push(&encode_push(&push)).expect("decodes"), push);
        }
        let kick = BusPush {
            target: Target::Uid(Uid(4)),
            kind: PushKind::Kick {
                reason: "duplicate_login".into(),
            },
        };
        assert_eq!(decode_push(&encode_push(&kick)).expect("decodes"), kick);
    }

    #[test]
    fn a_newer_version_is_refused_by_name() {
        let ev = BusPush {
            target: Target::All,
            kind: PushKind::Kick { reason: "x".into() },
        };
        let mut bytes = encode_push(&ev);
        assert_eq!(bytes[1], ENVELOPE_VERSION as u8);
        bytes[1] = 2;
        assert!(matches!(
            decode_push(&bytes),
            Err(DecodeError::Version { found: 2, .. })
        ));
    }

    #[test]
    fn garbage_is_an_error() {
        for bytes in [
            &b""[..],
            b"\x92\x01",
            b"\x91\x01",
            b"garbage",
            b"\x92\x01\xc0",
        ] {
            assert!(decode_event(bytes).is_err());
            assert!(decode_push(bytes).is_err());
        }
    }
}
