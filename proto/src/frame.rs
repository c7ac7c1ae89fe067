//! The client wire frame: one websocket binary message is a MessagePack array
//! `[seq, cmd, body]` where body is a MessagePack `bin` holding the business
//! message (itself MessagePack); in a resumable session a frame from the
//! server has a fourth element, its number in the session
//! (PROTOCOL.md §3). Also the bodies of the control commands.

use bytes::Bytes;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::DecodeError;

/// One client frame. `seq` is the client's request number (0 on pushes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub seq: u64,
    pub cmd: u32,
    pub body: Bytes,
}

#[derive(Serialize)]
struct WireOut<'a>(u64, u32, #[serde(with = "serde_bytes")] &'a [u8]);

#[derive(Deserialize)]
struct WireIn(u64, u32, #[serde(with = "serde_bytes")] Vec<u8>);

#[derive(Deserialize)]
struct NumberedIn(
    u64,
    u32,
    #[serde(with = "serde_bytes")] Vec<u8>,
    #[serde(default)] Option<u64>,
);

/// The frame `encoded` (`[seq, cmd, body]`, as [`Frame::encode`] wrote it)
/// with its number in a resumable session: `[seq, cmd, body, n]`.
pub fn numbered(encoded: &[u8], n: u64) -> Vec<u8> {
    debug_assert_eq!(encoded.first(), Some(&0x93), "a 3-element frame");
    let mut out = Vec::with_capacity(encoded.len() + 9);
    out.push(0x94);
    out.extend_from_slice(encoded.get(1..).unwrap_or_default());
    // Writing into a Vec cannot fail.
    let _ = rmp::encode::write_uint(&mut out, n);
    out
}

impl Frame {
    pub fn new(seq: u64, cmd: u32, body: impl Into<Bytes>) -> Self {
        Frame {
            seq,
            cmd,
            body: body.into(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 16);
        // Writing into a Vec cannot fail, and the shape is fixed.
        rmp_serde::encode::write(&mut out, &WireOut(self.seq, self.cmd, &self.body))
            .unwrap_or_else(|e| unreachable!("encoding a frame into memory failed: {e}"));
        out
    }

    /// Decodes one frame. Anything that is not exactly a 3-element array of
    /// (unsigned, unsigned, bin) is an error, including trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Frame, DecodeError> {
        let mut de = rmp_serde::Deserializer::new(bytes);
        let WireIn(seq, cmd, body) =
            WireIn::deserialize(&mut de).map_err(|source| DecodeError::Malformed {
                what: "a [seq, cmd, body] frame",
                source,
            })?;
        if de.get_ref().is_empty() {
            Ok(Frame::new(seq, cmd, body))
        } else {
            Err(DecodeError::Malformed {
                what: "a [seq, cmd, body] frame",
                source: rmp_serde::decode::Error::Syntax("trailing bytes after the frame".into()),
            })
        }
    }
}

impl Frame {
    /// Decodes a frame from the server: `[seq, cmd, body]`, or
    /// `[seq, cmd, body, n]` in a resumable session (with its number).
    pub fn decode_numbered(bytes: &[u8]) -> Result<(Frame, Option<u64>), DecodeError> {
        let what = "a [seq, cmd, body] or [seq, cmd, body, n] frame";
        let mut de = rmp_serde::Deserializer::new(bytes);
        let NumberedIn(seq, cmd, body, n) = NumberedIn::deserialize(&mut de)
            .map_err(|source| DecodeError::Malformed { what, source })?;
        if de.get_ref().is_empty() {
            Ok((Frame::new(seq, cmd, body), n))
        } else {
            Err(DecodeError::Malformed {
                what,
                source: rmp_serde::decode::Error::Syntax("trailing bytes after the frame".into()),
            })
        }
    }
}

/// Encodes a business body as a MessagePack map (struct fields by name).
pub fn encode_body<T: Serialize + ?Sized>(value: &T) -> Bytes {
    rmp_serde::to_vec_named(value)
        .map(Bytes::from)
        .unwrap_or_else(|e| unreachable!("encoding a body into memory failed: {e}"))
}

/// Decodes a business body; `what` names it in the error.
pub fn decode_body<T: DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, DecodeError> {
    rmp_serde::from_slice(bytes).map_err(|source| DecodeError::Malformed { what, source })
}

/// cmd 1, client → server.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LoginRequest {
    pub token: String,
    /// Opts in to a resumable session (PROTOCOL.md §3).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resumable: bool,
    /// The session to resume (the `session` of an earlier login reply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<String>,
    /// The number of the last frame the client received in that session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<u64>,
}

/// cmd 1, server → client. A v1 login's reply has only `uid`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LoginReply {
    pub uid: u64,
    /// The resume token of a resumable session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// How long a dropped session waits for its client, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_ms: Option<u64>,
    /// On a login that asked to resume: whether it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed: Option<bool>,
    /// Why not (`resync`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// cmd 2, client → server: `{}`, or (an extension, PROTOCOL.md §3) the
/// number of the last frame received in a resumable session, so the
/// connector can let go of what came before it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<u64>,
}

/// cmd 2, server → client.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HeartbeatReply {
    pub server_time_ms: u64,
}

/// cmd 3, server → client.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KickBody {
    pub reason: String,
}

/// cmd 4, server → client.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        ErrorBody {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trips() {
        let f = Frame::new(
            7,
            1001,
            encode_body(&LoginReply {
                uid: 42,
                ..LoginReply::default()
            }),
        );
        let back = Frame::decode(&f.encode()).expect("decodes");
        assert_eq!(back, f);
        let reply: LoginReply = decode_body("login reply", &back.body).expect("body");
        assert_eq!(reply.uid, 42);
    }

    #[test]
    fn frame_is_an_array_of_three_with_bin_body() {
        let bytes = Frame::new(1, 2, vec![0xc0]).encode();
        // fixarray(3), 1, 2, bin8 len 1, nil
        assert_eq!(bytes, vec![0x93, 0x01, 0x02, 0xc4, 0x01, 0xc0]);
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            b"hello".to_vec(),
            vec![0x92, 0x01, 0x02],                   // two elements
            vec![0x94, 0x01, 0x02, 0xc4, 0x00, 0x01], // four elements
            vec![0x93, 0xff, 0x02, 0xc4, 0x00],       // negative seq
            vec![0x93, 0x01, 0x02, 0xc4, 0x05, 0x01], // truncated bin
            vec![0x93, 0x01, 0x02, 0xc4, 0x00, 0x00], // trailing byte
            vec![0xdd, 0xff, 0xff, 0xff, 0xff],       // huge array header
            vec![0x93, 0x01, 0x02, 0xc6, 0xff, 0xff, 0xff, 0xff], // bin claiming 4 GiB
        ];
        for case in cases {
            assert!(Frame::decode(&case).is_err(), "{case:?} should not decode");
        }
    }

    #[test]
    fn a_numbered_frame_has_a_fourth_element() {
        let plain = Frame::new(1, 2, vec![0xc0]);
        for n in [1, 127, 128, 65_536, u64::MAX] {
            let bytes = numbered(&plain.encode(), n);
            assert_eq!(bytes[0], 0x94);
            assert!(Frame::decode(&bytes).is_err(), "not a client frame");
            let (back, got) = Frame::decode_numbered(&bytes).expect("decodes");
            assert_eq!((back, got), (plain.clone(), Some(n)));
        }
        let (back, got) = Frame::decode_numbered(&plain.encode()).expect("decodes");
        assert_eq!((back, got), (plain, None));
    }

    #[test]
    fn a_v1_login_reply_has_only_the_uid() {
        let reply = LoginReply {
            uid: 5,
            ..LoginReply::default()
        };
        // fixmap with 1 entry
        assert_eq!(encode_body(&reply)[0], 0x81);
        let req: LoginRequest =
            decode_body("login", &encode_body(&serde_json::json!({"token": "t"}))).expect("v1");
        assert!(!req.resumable && req.resume.is_none() && req.last.is_none());
    }

    #[test]
    fn bodies_are_maps() {
        let body = encode_body(&ErrorBody::new("unknown_cmd", "no service owns cmd 5000"));
        // fixmap with 2 entries
        assert_eq!(body[0], 0x82);
    }
}
