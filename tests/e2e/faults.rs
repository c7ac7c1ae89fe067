//! A service that panics again and again is restarted; a storm of restarts
//! stops the game process with exit code 70, for its orchestrator to see.

use crate::{
    helpers::{BusKind, Stack},
    on_both_buses,
};

on_both_buses!(a_restart_storm_stops_the_game_with_exit_code_70);

async fn a_restart_storm_stops_the_game_with_exit_code_70(kind: BusKind) {
    let mut stack = Stack::start_with(
        kind,
        &[
            ("WARREN_GAME__RESTART_INTENSITY", "2"),
            ("WARREN_GAME__RESTART_STORM", "2"),
        ],
    )
    .await;
    let mut c = stack.player(1).await;
    // 2 panics: restart 1; 2 more: restart 2; 2 more: a third restart within
    // the storm period: the process stops.
    for seq in 1..=6 {
        if c.send_frame(seq, 9990, b"\x80".to_vec()).await.is_err() {
            break;
        }
    }
    assert_eq!(
        stack.wait_game_exit(),
        Some(warren_game::RESTART_STORM_EXIT)
    );
}
