//! Logout and bans reach live sockets: login (logout) and `warren ban`
//! go through the game's admin endpoint, which sends the revocation to
//! every connector over the bus; the connector holding the player kicks
//! it, and every connector refuses the player's older tokens.

use std::time::Instant;

use serde_json::{Value, json};
use warren_proto::cmd;
use warren_test_support::http::http_post;

use crate::{
    helpers::{BusKind, Client, ErrorBody, Stack, decode, eventually},
    on_buses_with_a_gateway,
};

on_buses_with_a_gateway!(logout_and_a_ban_kick_the_live_socket_and_refuse_older_tokens);

async fn guest(stack: &Stack, device: &str) -> Value {
    let login = stack.login.expect("the full stack runs login");
    let (status, reply) = http_post(login, "/v1/guest", &json!({"device_id": device})).await;
    assert_eq!(status, 200, "{reply}");
    reply
}

async fn logout(stack: &Stack, refresh: &Value, everywhere: bool) -> Value {
    let login = stack.login.expect("the full stack runs login");
    let body = json!({"refresh_token": refresh, "everywhere": everywhere});
    let (status, reply) = http_post(login, "/v1/logout", &body).await;
    assert_eq!(status, 200, "{reply}");
    reply
}

/// A connector of the stack: the `i`th, or the only one (in process).
fn connector(stack: &Stack, i: usize) -> (std::net::SocketAddr, String) {
    stack.connectors[i % stack.connectors.len()].clone()
}

async fn player(stack: &Stack, connector_i: usize, token: &Value) -> Client {
    let (addr, url) = connector(stack, connector_i);
    let mut c = Client::connect(addr, &url, None).await;
    let hello = c.login(token.as_str().unwrap()).await;
    assert_eq!(hello.cmd, cmd::LOGIN, "{hello:?}");
    c
}

/// How many revocations each connector has received.
async fn revocations(stack: &Stack) -> Vec<u64> {
    let mut counts = Vec::new();
    for i in 0..stack.connector_admins.len() {
        let stats = stack.connector_stats(i).await;
        counts.push(
            stats["revocations"]
                .as_u64()
                .expect("a revocations counter"),
        );
    }
    counts
}

/// Waits until every connector has received a revocation more than
/// `before`: each hears it on its own from the bus, so the connector that
/// kicked the socket may have it before the others.
async fn heard_everywhere(stack: &Stack, before: &[u64]) {
    eventually("every connector has the revocation", async || {
        let now = revocations(stack).await;
        now.iter().zip(before).all(|(n, b)| n > b).then_some(())
    })
    .await;
}

/// A token that no longer logs in: `unauthorized`, then close 1008.
async fn refused(stack: &Stack, connector_i: usize, token: &Value) {
    let (addr, url) = connector(stack, connector_i);
    let mut c = Client::connect(addr, &url, None).await;
    let reply = c.login(token.as_str().unwrap()).await;
    assert_eq!(
        decode::<ErrorBody>(&reply).code,
        "unauthorized",
        "{reply:?}"
    );
    c.expect_close(1008).await;
}

// Long: one player's story, told in order.
async fn logout_and_a_ban_kick_the_live_socket_and_refuse_older_tokens(kind: BusKind) {
    let stack = Stack::start_full_connectors(kind, 2).await;
    let device = "revoke-phone";
    let phone = guest(&stack, device).await;
    let tablet = guest(&stack, device).await;
    let uid = phone["uid"].as_u64().unwrap();
    assert_eq!(tablet["uid"].as_u64(), Some(uid));
    let mut socket = player(&stack, 1, &phone["token"]).await;

    // The tablet's sign-in ends: the phone's socket (another sign-in)
    // stays and serves.
    let reply = logout(&stack, &tablet["refresh_token"], false).await;
    assert_eq!(reply, json!({"ended": 1, "revoked": true}));
    socket.echo(b"\x80").await;

    // The phone's own logout kicks its socket, on the other connector
    // from nobody's point of view but the bus's.
    let started = Instant::now();
    let before = revocations(&stack).await;
    let reply = logout(&stack, &phone["refresh_token"], false).await;
    assert_eq!(reply, json!({"ended": 1, "revoked": true}));
    socket.expect_kick("logged_out").await;
    eprintln!("{kind:?}: kicked {:?} after the logout", started.elapsed());
    // Its access token, still unexpired, opens no socket anywhere.
    heard_everywhere(&stack, &before).await;
    refused(&stack, 0, &phone["token"]).await;
    refused(&stack, 1, &phone["token"]).await;

    // Signing in again works: a newer token.
    let again = guest(&stack, device).await;
    let mut socket = player(&stack, 0, &again["token"]).await;

    // An operator bans the player: its socket is kicked, its sign-ins and
    // tokens end, a new sign-in is refused with the reason.
    let started = Instant::now();
    let before = revocations(&stack).await;
    let uid_arg = uid.to_string();
    let args = [
        "--uid",
        &uid_arg,
        "--reason",
        "selling accounts",
        "--by",
        "e2e",
    ];
    let (ok, out) = stack.warren_admin("ban", &args);
    assert!(ok, "warren ban failed: {out}");
    let outcome: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(outcome["banned"], true, "{outcome}");
    assert_eq!(outcome["kicked"], true, "{outcome}");
    socket.expect_kick("banned").await;
    eprintln!(
        "{kind:?}: kicked {:?} after `warren ban`",
        started.elapsed()
    );
    heard_everywhere(&stack, &before).await;
    refused(&stack, 1, &again["token"]).await;
    let login = stack.login.unwrap();
    let (status, reply) = http_post(login, "/v1/guest", &json!({"device_id": device})).await;
    assert_eq!(status, 403, "{reply}");
    assert_eq!(reply["error"]["code"], "banned");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("selling accounts")
    );
    let body = json!({"refresh_token": again["refresh_token"]});
    let (status, _) = http_post(login, "/v1/refresh", &body).await;
    assert_eq!(status, 401);

    // Lifted: the player signs in again.
    let (ok, out) = stack.warren_admin("ban", &["--uid", &uid_arg, "--lift", "--by", "e2e"]);
    assert!(ok, "{out}");
    let back = guest(&stack, device).await;
    player(&stack, 1, &back["token"]).await.echo(b"\x80").await;
}
