//! JSON clients (PROTOCOL.md §4): a frame as a JSON object, and a business
//! body converted between MessagePack and JSON without being interpreted.
//!
//! The conversion is generic: it maps one data model onto the other and
//! knows no body's meaning. Where the models differ:
//! - MessagePack `bin` becomes a base64 string (standard alphabet, padded);
//!   a JSON string always becomes a MessagePack `str`.
//! - An integer outside ±(2^53 − 1), which a JavaScript number cannot hold
//!   exactly, becomes a decimal string; a JSON integer up to the 64-bit
//!   range becomes a MessagePack integer, a fraction a 64-bit float.
//! - Refused ([`JsonError`]): a map key that is not a string, an extension
//!   type, a float that is not finite, a `str` that is not UTF-8.
//! - An empty body (no bytes at all) is JSON `null`.

use base64::{Engine, engine::general_purpose::STANDARD};
use rmpv::Value as Pack;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value as Json};

use crate::Frame;

/// The largest integer a JavaScript number holds exactly (2^53 − 1).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Why a body cannot be written as JSON, or a text frame read as one.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    #[error("a map key is not a string (JSON keys are strings)")]
    NonStringKey,
    #[error("a MessagePack extension type ({0}) has no JSON form")]
    Extension(i8),
    #[error("a float that is not finite has no JSON form")]
    NotFinite,
    #[error("a MessagePack str is not valid UTF-8")]
    InvalidUtf8,
    #[error("the body is not valid MessagePack: {0}")]
    NotMessagePack(String),
    #[error("not a JSON frame {{\"seq\", \"cmd\", \"body\"}}: {0}")]
    BadFrame(String),
}

/// A JSON frame as it travels: `{"seq", "cmd", "body"}`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonFrame {
    seq: u64,
    cmd: u32,
    /// Absent: an empty map, as most requests take.
    #[serde(default = "empty_map")]
    body: Json,
    /// Its number in a resumable session (server → client only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    n: Option<u64>,
}

fn empty_map() -> Json {
    Json::Object(Map::new())
}

impl Frame {
    /// Reads a client's JSON text frame; its body becomes MessagePack. A
    /// client's frame has no number (`n`).
    pub fn from_json(text: &str) -> Result<Frame, JsonError> {
        match Frame::from_json_numbered(text)? {
            (frame, None) => Ok(frame),
            (_, Some(_)) => Err(JsonError::BadFrame(
                "\"n\" numbers the server's frames; a client's frame has none".to_owned(),
            )),
        }
    }

    /// Reads a JSON text frame from the server, with its number in a
    /// resumable session, if any.
    pub fn from_json_numbered(text: &str) -> Result<(Frame, Option<u64>), JsonError> {
        let bad = |e: serde_json::Error| JsonError::BadFrame(e.to_string());
        // Read as a value first: serde would take `[seq, cmd, body]` for the
        // struct too, and the protocol's JSON frame is an object.
        let value: Json = serde_json::from_str(text).map_err(bad)?;
        if !value.is_object() {
            return Err(JsonError::BadFrame("a frame is a JSON object".to_owned()));
        }
        let f: JsonFrame = serde_json::from_value(value).map_err(bad)?;
        Ok((Frame::new(f.seq, f.cmd, json_to_body(&f.body)), f.n))
    }

    /// Writes this frame as a JSON text frame; its body becomes JSON.
    pub fn to_json(&self) -> Result<String, JsonError> {
        self.to_json_numbered(None)
    }

    /// [`Frame::to_json`] with its number in a resumable session, if any.
    pub fn to_json_numbered(&self, n: Option<u64>) -> Result<String, JsonError> {
        let frame = JsonFrame {
            seq: self.seq,
            cmd: self.cmd,
            body: body_to_json(&self.body)?,
            n,
        };
        Ok(serde_json::to_string(&frame)
            .unwrap_or_else(|e| unreachable!("writing a JSON value into memory failed: {e}")))
    }
}

/// A MessagePack body as JSON (see the module's rules).
pub fn body_to_json(body: &[u8]) -> Result<Json, JsonError> {
    if body.is_empty() {
        return Ok(Json::Null);
    }
    let mut rd = body;
    let value =
        rmpv::decode::read_value(&mut rd).map_err(|e| JsonError::NotMessagePack(e.to_string()))?;
    if !rd.is_empty() {
        return Err(JsonError::NotMessagePack(
            "trailing bytes after the value".to_owned(),
        ));
    }
    pack_to_json(value)
}

fn pack_to_json(value: Pack) -> Result<Json, JsonError> {
    Ok(match value {
        Pack::Nil => Json::Null,
        Pack::Boolean(b) => Json::Bool(b),
        Pack::Integer(i) => match (i.as_u64(), i.as_i64()) {
            (Some(u), _) if u <= MAX_SAFE_INTEGER => Json::from(u),
            (_, Some(s)) if s.unsigned_abs() <= MAX_SAFE_INTEGER => Json::from(s),
            _ => Json::String(i.to_string()),
        },
        Pack::F32(f) => float(f64::from(f))?,
        Pack::F64(f) => float(f)?,
        Pack::String(s) => Json::String(s.into_str().ok_or(JsonError::InvalidUtf8)?),
        Pack::Binary(b) => Json::String(STANDARD.encode(b)),
        Pack::Array(items) => Json::Array(
            items
                .into_iter()
                .map(pack_to_json)
                .collect::<Result<_, _>>()?,
        ),
        Pack::Map(pairs) => {
            let mut map = Map::with_capacity(pairs.len());
            for (k, v) in pairs {
                let Pack::String(k) = k else {
                    return Err(JsonError::NonStringKey);
                };
                let k = k.into_str().ok_or(JsonError::InvalidUtf8)?;
                map.insert(k, pack_to_json(v)?);
            }
            Json::Object(map)
        }
        Pack::Ext(kind, _) => return Err(JsonError::Extension(kind)),
    })
}

fn float(f: f64) -> Result<Json, JsonError> {
    Number::from_f64(f)
        .map(Json::Number)
        .ok_or(JsonError::NotFinite)
}

/// A JSON value as a MessagePack body. Never fails: every JSON value has a
/// MessagePack form.
pub fn json_to_body(value: &Json) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    write_json(&mut out, value);
    out
}

fn write_json(out: &mut Vec<u8>, value: &Json) {
    use rmp::encode;
    // Writing into a Vec cannot fail.
    let ok = |r: Result<(), _>| {
        r.unwrap_or_else(|e: encode::ValueWriteError| unreachable!("{e}"));
    };
    match value {
        Json::Null => encode::write_nil(out).unwrap_or_else(|e| unreachable!("{e}")),
        Json::Bool(b) => encode::write_bool(out, *b).unwrap_or_else(|e| unreachable!("{e}")),
        Json::Number(n) => {
            if let Some(u) = n.as_u64() {
                ok(encode::write_uint(out, u).map(drop));
            } else if let Some(i) = n.as_i64() {
                ok(encode::write_sint(out, i).map(drop));
            } else {
                // serde_json reads every other number as a finite f64.
                ok(encode::write_f64(out, n.as_f64().unwrap_or_default()));
            }
        }
        Json::String(s) => ok(encode::write_str(out, s)),
        Json::Array(items) => {
            ok(encode::write_array_len(out, items.len() as u32).map(drop));
            for item in items {
                write_json(out, item);
            }
        }
        Json::Object(map) => {
            ok(encode::write_map_len(out, map.len() as u32).map(drop));
            for (k, v) in map {
                ok(encode::write_str(out, k));
                write_json(out, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::encode_body;

    fn round_trip(value: Json) -> Json {
        body_to_json(&json_to_body(&value)).expect("converts back")
    }

    #[test]
    fn json_survives_a_trip_through_messagepack() {
        for v in [
            json!(null),
            json!({"room": "lobby", "text": "hi ☃", "n": -3, "big": 9_007_199_254_740_991u64}),
            json!([1, 2.5, true, {"nested": [null]}]),
            json!("just a string"),
            json!({}),
        ] {
            assert_eq!(round_trip(v.clone()), v);
        }
    }

    #[test]
    fn a_service_body_reads_as_the_json_a_person_expects() {
        #[derive(Serialize)]
        struct Chat<'a> {
            room: &'a str,
            from: u64,
            text: &'a str,
        }
        let body = encode_body(&Chat {
            room: "lobby",
            from: 7,
            text: "hello",
        });
        assert_eq!(
            body_to_json(&body).expect("json"),
            json!({"room": "lobby", "from": 7, "text": "hello"})
        );
    }

    #[test]
    fn the_edges_are_converted_as_documented() {
        let bin = rmp_serde::to_vec(&serde_bytes::Bytes::new(b"\x00\xffhi")).expect("bin");
        assert_eq!(body_to_json(&bin).expect("json"), json!("AP9oaQ=="));
        let big = rmp_serde::to_vec(&(1u64 << 53)).expect("int");
        assert_eq!(body_to_json(&big).expect("json"), json!("9007199254740992"));
        let small = rmp_serde::to_vec(&-(1i64 << 60)).expect("int");
        assert_eq!(
            body_to_json(&small).expect("json"),
            json!("-1152921504606846976")
        );
        assert_eq!(body_to_json(&[]).expect("json"), json!(null));
    }

    #[test]
    fn what_json_cannot_hold_is_refused() {
        let mut int_key = Vec::new();
        rmp::encode::write_map_len(&mut int_key, 1).expect("write");
        rmp::encode::write_uint(&mut int_key, 1).expect("write");
        rmp::encode::write_nil(&mut int_key).expect("write");
        assert!(matches!(
            body_to_json(&int_key),
            Err(JsonError::NonStringKey)
        ));
        let mut ext = Vec::new();
        rmp::encode::write_ext_meta(&mut ext, 1, 5).expect("write");
        ext.push(0);
        assert!(matches!(body_to_json(&ext), Err(JsonError::Extension(5))));
        let nan = rmp_serde::to_vec(&f64::NAN).expect("nan");
        assert!(matches!(body_to_json(&nan), Err(JsonError::NotFinite)));
        assert!(matches!(
            body_to_json(&[0x81]),
            Err(JsonError::NotMessagePack(_))
        ));
        assert!(matches!(
            body_to_json(&[0xc0, 0xc0]),
            Err(JsonError::NotMessagePack(_))
        ));
    }

    #[test]
    fn frames_read_and_write_as_json_objects() {
        let f = Frame::from_json(r#"{"seq": 7, "cmd": 1001, "body": {"a": [1]}}"#).expect("frame");
        assert_eq!((f.seq, f.cmd), (7, 1001));
        assert_eq!(body_to_json(&f.body).expect("json"), json!({"a": [1]}));
        let text = f.to_json().expect("json");
        assert_eq!(
            serde_json::from_str::<Json>(&text).expect("parse"),
            json!({"seq": 7, "cmd": 1001, "body": {"a": [1]}})
        );
        let bare = Frame::from_json(r#"{"seq": 1, "cmd": 2}"#).expect("frame");
        assert_eq!(body_to_json(&bare.body).expect("json"), json!({}));
        for bad in [
            "not json",
            r#"{"seq": -1, "cmd": 2}"#,
            r#"{"cmd": 2}"#,
            r#"{"seq": 1, "cmd": 2, "extra": 0}"#,
            r#"[1, 2, {}]"#,
        ] {
            assert!(
                matches!(Frame::from_json(bad), Err(JsonError::BadFrame(_))),
                "{bad}"
            );
        }
    }
}
