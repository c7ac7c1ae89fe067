//! The encoding a socket chose at the handshake (PROTOCOL.md §4): MessagePack
//! binary frames (the default) or JSON text frames (`?format=json`).
//!
//! Inside, every frame stays MessagePack: a JSON socket's frames are
//! converted as they are read and as they are written
//! (`warren_proto::json`), so nothing else in the connector, the bus or the
//! game knows the difference. The connector converts the encoding of a
//! body; it never interprets it.

use bytes::Bytes;
use tokio_tungstenite::tungstenite::Message;
use warren_proto::{ErrorBody, Frame, cmd, encode_body, json::JsonError};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Format {
    #[default]
    MessagePack,
    Json,
}

impl Format {
    /// The format a handshake's query asks for: `format=json` or
    /// `format=msgpack`; none is MessagePack. Anything else is refused,
    /// with the reason.
    pub(crate) fn from_query(query: Option<&str>) -> Result<Format, String> {
        let mut chosen = Format::MessagePack;
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if key != "format" {
                continue;
            }
            chosen = match value {
                "json" => Format::Json,
                "msgpack" => Format::MessagePack,
                other => {
                    return Err(format!(
                        "unknown format {other:?}: use format=json or format=msgpack"
                    ));
                }
            };
        }
        Ok(chosen)
    }

    /// Reads one websocket message as a frame; `Err` says why it is not
    /// one (the socket is closed with 1007).
    pub(crate) fn read(self, msg: Message) -> Result<Frame, &'static str> {
        match (self, msg) {
            (Format::MessagePack, Message::Binary(data)) => {
                Frame::decode(&data).map_err(|_| "not a [seq, cmd, body] frame")
            }
            (Format::Json, Message::Text(text)) => {
                Frame::from_json(&text).map_err(|_| "not a JSON frame {seq, cmd, body}")
            }
            (Format::MessagePack, _) => Err("text frame"),
            (Format::Json, _) => Err("binary frame on a JSON socket"),
        }
    }

    /// The websocket message for one encoded frame. A body that has no JSON
    /// form (a map with integer keys, an extension type) is replaced by an
    /// error `not_json` with the same seq, so the client learns what it
    /// missed; `unencodable` counts it.
    pub(crate) fn write(self, frame: Bytes, unencodable: impl FnOnce()) -> Message {
        match self {
            Format::MessagePack => Message::Binary(frame),
            Format::Json => Message::Text(json_text(&frame, unencodable).into()),
        }
    }
}

fn json_text(encoded: &[u8], unencodable: impl FnOnce()) -> String {
    // The connector encoded this frame itself; it decodes.
    let (frame, n) = match Frame::decode_numbered(encoded) {
        Ok(frame) => frame,
        Err(e) => unreachable!("a frame the connector queued does not decode: {e}"),
    };
    match frame.to_json_numbered(n) {
        Ok(text) => text,
        Err(e) => {
            unencodable();
            not_json(&frame, n, &e)
        }
    }
}

/// The error sent in place of a frame whose body has no JSON form; it
/// keeps the frame's number, so a resumable session has no gap.
fn not_json(frame: &Frame, n: Option<u64>, e: &JsonError) -> String {
    let body = ErrorBody::new(
        "not_json",
        format!("the body of cmd {} has no JSON form: {e}", frame.cmd),
    );
    Frame::new(frame.seq, cmd::ERROR, encode_body(&body))
        .to_json_numbered(n)
        .unwrap_or_else(|e| unreachable!("an error body is always JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn the_query_chooses_the_format() {
        assert_eq!(Format::from_query(None), Ok(Format::MessagePack));
        assert_eq!(Format::from_query(Some("format=json")), Ok(Format::Json));
        assert_eq!(
            Format::from_query(Some("v=1&format=msgpack")),
            Ok(Format::MessagePack)
        );
        assert!(
            Format::from_query(Some("format=xml"))
                .expect_err("refused")
                .contains("format=json")
        );
    }

    #[test]
    fn a_body_without_json_form_becomes_an_error_for_its_request() {
        let mut body = Vec::new();
        rmp::encode::write_map_len(&mut body, 1).expect("write");
        rmp::encode::write_uint(&mut body, 1).expect("write");
        rmp::encode::write_nil(&mut body).expect("write");
        let frame = Frame::new(9, 1001, body).encode();
        let mut counted = false;
        let Message::Text(text) = Format::Json.write(frame.into(), || counted = true) else {
            panic!("a JSON socket gets text");
        };
        let v: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["seq"], json!(9));
        assert_eq!(v["cmd"], json!(4));
        assert_eq!(v["body"]["code"], json!("not_json"));
        assert!(counted);
    }
}
