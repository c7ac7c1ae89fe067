//! The bodies of the built-in service commands (PROTOCOL.md §3), in one
//! place for the services that answer them, the bots and tests that send
//! them, and any Rust client. Text fields are `Cow`s: a service serializes
//! borrowed strings without copying them, a client deserializes owned
//! ones.

use std::{borrow::Cow, collections::BTreeMap};

use serde::{Deserialize, Serialize};

/// `{}`: the body of requests and replies that carry nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// 1010 presence request: `{uids}` (at most 1,000).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceRequest {
    pub uids: Vec<u64>,
}

/// 1010 presence reply: those of the asked uids online now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    pub online: Vec<u64>,
}

/// 2001 join and 2004 leave: `{room}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Room<'a> {
    pub room: Cow<'a, str>,
}

impl<'a> Room<'a> {
    pub fn new(room: impl Into<Cow<'a, str>>) -> Self {
        Room { room: room.into() }
    }
}

/// 2001 join reply: the room's members, sorted, the joiner included.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Members {
    pub members: Vec<u64>,
}

/// 2002 send: `{room, text}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Say<'a> {
    pub room: Cow<'a, str>,
    pub text: Cow<'a, str>,
}

impl<'a> Say<'a> {
    pub fn new(room: impl Into<Cow<'a, str>>, text: impl Into<Cow<'a, str>>) -> Self {
        Say {
            room: room.into(),
            text: text.into(),
        }
    }
}

/// 2003 push to every member: `{room, from, text}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Said<'a> {
    pub room: Cow<'a, str>,
    pub from: u64,
    pub text: Cow<'a, str>,
}

/// 3001 balance request: `{currency?}` (only `gold`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceRequest<'a> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<Cow<'a, str>>,
}

/// 3001 balance reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance<'a> {
    pub currency: Cow<'a, str>,
    pub balance: i64,
}

/// 3002 daily reward reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Daily {
    pub reward: i64,
    pub balance: i64,
}

/// 3003 buy: `{item, request_id?}`; the same `request_id` is charged once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Buy<'a> {
    pub item: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<Cow<'a, str>>,
}

/// 3003 buy reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bought<'a> {
    pub item: Cow<'a, str>,
    pub price: i64,
    pub balance: i64,
}

/// 3004 the shop's items and prices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Items<'a> {
    pub items: Cow<'a, BTreeMap<String, i64>>,
}

/// Push 9001, a marquee announcement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marquee<'a> {
    pub text: Cow<'a, str>,
    /// `info` or `urgent`.
    pub level: Cow<'a, str>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode_body, encode_body};

    #[test]
    fn bodies_are_maps_with_the_protocol_s_field_names() {
        let said = Said {
            room: "lobby".into(),
            from: 7,
            text: "hi".into(),
        };
        let bytes = encode_body(&said);
        let back: serde_json::Value = rmp_serde::from_slice(&bytes).unwrap_or_default();
        assert_eq!(
            back,
            serde_json::json!({"room": "lobby", "from": 7, "text": "hi"})
        );
        assert_eq!(
            decode_body::<Said<'static>>("said", &bytes).ok(),
            Some(said)
        );
        let buy: serde_json::Value = rmp_serde::from_slice(&encode_body(&Buy {
            item: "potion".into(),
            request_id: None,
        }))
        .unwrap_or_default();
        assert_eq!(buy, serde_json::json!({"item": "potion"}));
    }
}
