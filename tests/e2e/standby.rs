//! A hot standby per shard (`game.standby`), on every networked bus: a
//! second game for shard 0 starts everything, says "standby for shard 0"
//! on its console and in `warren debug`, and takes the shard over when the
//! serving game is killed with SIGKILL, under 200 players sending
//! steadily: no socket drops, every request is answered (the echo, or
//! `unavailable` / `timeout` for what the dead game held, or `overloaded`
//! for the backlog that waited for the takeover), and the standby serves
//! within 10 s. The durable mode's version, where nothing is lost
//! at all, is in `durable.rs`.

use std::time::{Duration, Instant};

use warren_test_support::steady::Traffic;

use crate::{
    helpers::{AddedGame, BusKind, Stack, eventually},
    on_networked_buses,
};

pub(crate) const STANDBY: (&str, &str) = ("WARREN_GAME__STANDBY", "true");

/// Starts a standby for shard 0 beside the stack's game, and waits until
/// it says it stands by, on its console and in `warren debug`.
pub(crate) async fn start_standby(stack: &mut Stack) -> AddedGame {
    let standby = stack.start_game_with(&[STANDBY]);
    eventually("the standby says so on its console", async || {
        standby
            .console()
            .contains("warren: game standby for shard 0")
            .then_some(())
    })
    .await;
    let (ok, table) = stack.warren_admin_at(standby.admin, "debug", &[]);
    assert!(ok, "{table}");
    assert!(
        table.lines().any(|l| l.starts_with("standby for shard 0:")),
        "warren debug on the standby:\n{table}"
    );
    standby
}

/// After a takeover: the standby's console and `warren debug` say it
/// serves, after one takeover.
pub(crate) fn serves_after_one_takeover(stack: &Stack, standby: &AddedGame) {
    assert!(
        standby.console().contains("warren: game serving shard 0"),
        "{}",
        standby.console()
    );
    let (ok, table) = stack.warren_admin_at(standby.admin, "debug", &[]);
    assert!(ok, "{table}");
    assert!(
        table.lines().any(|l| l == "serving shard 0 (takeovers: 1)"),
        "warren debug on the standby after the takeover:\n{table}"
    );
}

on_networked_buses!(a_standby_takes_the_shard_over_when_its_game_is_killed);

async fn a_standby_takes_the_shard_over_when_its_game_is_killed(kind: BusKind) {
    let mut stack =
        Stack::start_connectors(kind, 1, &[("WARREN_CONNECTOR__REQUEST_TIMEOUT_MS", "2000")]).await;
    let standby = start_standby(&mut stack).await;

    let traffic = Traffic::start(&stack, 1, 200).await;
    let mut probe = stack.player(10_000).await;
    probe.echo(b"\x80").await;
    let killed = Instant::now();
    stack.kill_first_game();
    probe
        .echo_until_served(Duration::from_secs(10), "after the kill")
        .await;
    let takeover = killed.elapsed();
    let answers = traffic.finish("standby takeover").await;
    // `overloaded`: the backlog that waited for the takeover (Redis keeps
    // up to a lease's worth of requests) arrives at once, beyond a mailbox.
    for kind in answers.keys() {
        assert!(
            ["echo", "unavailable", "timeout", "overloaded"].contains(&kind.as_str()),
            "{answers:?}"
        );
    }
    assert!(
        takeover < Duration::from_secs(10),
        "the standby served {takeover:?} after the kill"
    );
    serves_after_one_takeover(&stack, &standby);
    eprintln!(
        "{kind:?}: the serving game killed under 200 players: the standby served {takeover:?} \
         after the kill; answers {answers:?}; 0 sockets dropped, 0 requests unanswered"
    );
}
