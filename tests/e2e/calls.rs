//! JSON clients (PROTOCOL.md §4): HTTP calls through the call gateway, with
//! every error status, and JSON sockets beside MessagePack ones.

use std::time::Duration;

use serde_json::{Value, json};
use warren_proto::cmd;
use warren_test_support::http::request_http;

use crate::{
    helpers::{BusKind, Room, Said, Say, Stack, decode},
    on_buses_with_a_gateway, on_networked_buses,
};

on_buses_with_a_gateway!(
    http_calls_reach_services_and_every_refusal_has_its_status,
    json_and_messagepack_players_share_a_chat_room,
);

on_networked_buses!(gateways_side_by_side_answer_their_own_calls);

/// One call: (status, JSON body).
async fn call(stack: &Stack, cmd: &str, token: Option<&str>, body: &str) -> (u16, Value) {
    let path = format!("/v1/call/{cmd}");
    let (status, text) = request_http(stack.http, &path, token, Some(body.to_owned())).await;
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status} {text}: {e}"));
    (status, json)
}

/// Two calls to the silent handler (9992) at once, with one slot for calls
/// in flight: whichever the gateway takes first holds the slot until the
/// time-out, and the other, arriving meanwhile, is refused `overloaded`
/// (neither ever frees the slot early, so which comes first does not
/// matter). Returns the held call's answer.
async fn stalled_call_and_a_refusal(stack: &Stack) -> (u16, String) {
    let silent = |uid| {
        let (http, token) = (stack.http, stack.token(uid));
        tokio::spawn(async move {
            request_http(http, "/v1/call/9992", Some(&token), Some("{}".into())).await
        })
    };
    let (first, second) = (silent(101), silent(102));
    let mut answers = [first.await.unwrap(), second.await.unwrap()];
    answers.sort();
    let [refused, held] = answers;
    let reply: Value = serde_json::from_str(&refused.1).unwrap();
    assert_eq!(
        (refused.0, code(&reply)),
        (503, "overloaded"),
        "{answers:?}",
        answers = [&refused, &held]
    );
    held
}

/// A call whose body never finishes arriving: the raw response.
async fn unfinished_body(stack: &Stack, token: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(stack.http).await.unwrap();
    let head = format!(
        "POST /v1/call/1001 HTTP/1.1\r\nHost: warren\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"a\":"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let read = async {
        let mut chunk = [0u8; 1024];
        // Until the error body has ended (or the gateway closed).
        while !response.ends_with(b"}}") {
            match tcp.read(&mut chunk).await.unwrap() {
                0 => break,
                n => response.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("the gateway answers a body that never arrives");
    String::from_utf8_lossy(&response).into_owned()
}

fn code(reply: &Value) -> &str {
    reply["error"]["code"].as_str().unwrap_or_default()
}

// Long: one scenario, told in order: each status the protocol names.
async fn http_calls_reach_services_and_every_refusal_has_its_status(kind: BusKind) {
    let stack = Stack::start_with(
        kind,
        &[
            ("WARREN_HTTP__REQUEST_TIMEOUT_MS", "3000"),
            ("WARREN_HTTP__MAX_IN_FLIGHT", "1"),
            ("WARREN_HTTP__UID_RATE_PER_SEC", "1"),
            ("WARREN_HTTP__UID_RATE_BURST", "3"),
            ("WARREN_HTTP__ADDRESS_RATE_PER_SEC", "1"),
            // Far above what the rest of the scenario calls from this
            // address (the polls below included), so only its last step
            // meets it.
            ("WARREN_HTTP__ADDRESS_RATE_BURST", "400"),
        ],
    )
    .await;
    let token = stack.token(31);
    let t = Some(token.as_str());

    let body = json!({"hello": [1, "two", {"three": 3.5}], "big": 9_007_199_254_740_993u64});
    let (status, reply) = call(&stack, "1001", t, &body.to_string()).await;
    assert_eq!(
        (status, &reply),
        (
            200,
            &json!({"hello": [1, "two", {"three": 3.5}], "big": "9007199254740993"})
        )
    );
    let (status, reply) = call(&stack, "1001", t, "").await;
    assert_eq!((status, reply), (200, json!({})), "an empty body is {{}}");

    let (status, reply) = call(&stack, "1001", None, "{}").await;
    assert_eq!((status, code(&reply)), (401, "unauthorized"));
    let (status, reply) = call(&stack, "1001", Some("not-a-jwt"), "{}").await;
    assert_eq!((status, code(&reply)), (401, "unauthorized"));

    let token = stack.token(32);
    let t = Some(token.as_str());
    let (status, reply) = call(&stack, "1001", t, "{not json").await;
    assert_eq!((status, code(&reply)), (400, "invalid_json"));
    let (status, reply) = call(&stack, "2001", t, r#"{"room": "lobby"}"#).await;
    assert_eq!((status, code(&reply)), (404, "unknown_cmd"));
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(message.contains("not callable over HTTP"), "{message}");

    let token = stack.token(33);
    let t = Some(token.as_str());
    for unknown in ["5555", "2", "abc"] {
        let (status, reply) = call(&stack, unknown, t, "{}").await;
        assert_eq!((status, code(&reply)), (404, "unknown_cmd"), "{unknown}");
    }
    let huge = json!({"pad": "x".repeat(70 * 1024)}).to_string();
    let token = stack.token(34);
    let t = Some(token.as_str());
    let (status, reply) = call(&stack, "1001", t, &huge).await;
    assert_eq!((status, code(&reply)), (413, "body_too_large"));
    let response = unfinished_body(&stack, &token).await;
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains("body_timeout"), "{response}");
    let (status, text) = request_http(stack.http, "/v1/call/1001", t, None).await;
    assert_eq!(status, 405, "GET: {text}");
    let (status, text) = request_http(stack.http, "/v1/nothing", t, Some("{}".into())).await;
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("not_found"), "{text}");

    // A handler that panics: 500.
    let (status, reply) = call(&stack, "9990", t, "{}").await;
    assert_eq!((status, code(&reply)), (500, "internal"));

    // A handler that never answers: 504, and while it waits, the one slot
    // for calls in flight is taken: 503.
    let (status, text) = stalled_call_and_a_refusal(&stack).await;
    let reply: Value = serde_json::from_str(&text).unwrap();
    assert_eq!((status, code(&reply)), (504, "timeout"));

    // Per player: a burst of 3, then 429.
    let token = stack.token(37);
    let statuses: Vec<u16> = {
        let mut s = Vec::new();
        for _ in 0..6 {
            s.push(call(&stack, "9991", Some(&token), "{}").await.0);
        }
        s
    };
    assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
    assert!(statuses[3..].contains(&429), "{statuses:?}");
    // Per address, counted before the token is looked at.
    let mut refused = None;
    for _ in 0..500 {
        let (status, reply) = call(&stack, "1001", None, "{}").await;
        if status == 429 {
            refused = Some(reply);
            break;
        }
        assert_eq!(status, 401);
    }
    let refused = refused.expect("an address over its rate is refused");
    assert_eq!(code(&refused), "rate_limited");
}

async fn json_and_messagepack_players_share_a_chat_room(kind: BusKind) {
    let stack = Stack::start(kind).await;
    let mut players = [
        stack.player(41).await,
        stack.json_player(42).await,
        stack.player(43).await,
    ];
    for p in players.iter_mut() {
        let (reply, _) = p.request(cmd::CHAT_JOIN, &Room::new("mixed")).await;
        assert_eq!(reply.cmd, cmd::CHAT_JOIN, "{reply:?}");
    }
    let lines = [(0usize, "from msgpack"), (1, "from json ☃"), (2, "again")];
    for (who, text) in lines {
        let f = players[who]
            .request_keeping_pushes(cmd::CHAT_SEND, &Say::new("mixed", text))
            .await;
        assert_eq!(f.cmd, cmd::CHAT_SEND, "{f:?}");
    }
    let expected: Vec<Said> = lines
        .iter()
        .map(|(who, text)| Said {
            room: "mixed".into(),
            from: 41 + *who as u64,
            text: (*text).into(),
        })
        .collect();
    for (i, p) in players.iter_mut().enumerate() {
        let mut heard = Vec::new();
        while heard.len() < lines.len() {
            let f = p.next_push().await;
            assert_eq!((f.seq, f.cmd), (0, cmd::CHAT_MESSAGE), "player {i}: {f:?}");
            heard.push(decode::<Said>(&f));
        }
        assert_eq!(heard, expected, "player {i} hears each line once, in order");
        assert!(
            p.try_next_event(Duration::from_millis(300)).await.is_none(),
            "player {i}: nothing more"
        );
    }
}

/// Two gateways (`warren http`, ids h0 and h1) on one bus with two game
/// shards: every call, through either gateway to either shard, comes back
/// answered to the gateway it was made on.
async fn gateways_side_by_side_answer_their_own_calls(kind: BusKind) {
    let stack = Stack::start_connectors(kind, 2, &[("WARREN_BUS__SHARDS", "2")]).await;
    assert_eq!(stack.gateways.len(), 2);
    let calls: Vec<_> = (300..340u64)
        .map(|uid| {
            // Gateway and shard (uid % 2) vary apart: every pairing occurs.
            let gateway = stack.gateways[(uid / 2 % 2) as usize];
            let token = stack.token(uid);
            tokio::spawn(async move {
                let body = json!({"uid": uid, "via": gateway.to_string()});
                let sent = Some(body.to_string());
                let (status, text) =
                    request_http(gateway, "/v1/call/1001", Some(&token), sent).await;
                (status, serde_json::from_str::<Value>(&text).unwrap(), body)
            })
        })
        .collect();
    for call in calls {
        let (status, reply, body) = call.await.unwrap();
        assert_eq!((status, reply), (200, body));
    }
}
