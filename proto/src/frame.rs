//! The client wire frame: one websocket binary message is a MessagePack array
//! `[seq, cmd, body]` where body is a MessagePack `bin` holding the business
//! message (itself MessagePack). Also the bodies of the control commands.

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
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoginRequest {
    pub token: String,
}

/// cmd 1, server → client.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoginReply {
    pub uid: u64,
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
        let f = Frame::new(7, 1001, encode_body(&LoginReply { uid: 42 }));
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
    fn bodies_are_maps() {
        let body = encode_body(&ErrorBody::new("unknown_cmd", "no service owns cmd 5000"));
        // fixmap with 2 entries
        assert_eq!(body[0], 0x82);
    }
}
