//! Moving a resumable session to another connector (PROTOCOL.md §3:
//! "resume on any connector"), through the game, so it works on every bus.
//!
//! 1. The client resumes on connector B with a session held by connection C
//!    of connector A. B opens an incoming session (what is sent to it is
//!    held, not numbered) and tells every shard `Resume`.
//! 2. Each shard takes the player as B's from then on (replies addressed
//!    to A's connection follow it) and sends A `HandOver`, after
//!    everything it sent A for the player.
//! 3. When every shard has asked (or [`SHARDS_WAIT`] has passed: a shard
//!    that does not ask is gone), A stops the session's socket if it
//!    still has one, takes the session's state (numbers, kept frames,
//!    requests taken and waiting) and ends it without a Close, and sends
//!    the state to the player's shard (`Handed`), which passes it to B
//!    (`Session`).
//! 4. B numbers what it held after the state's frames and answers the
//!    client: `resumed`, then every frame after the client's last, in
//!    order. If nothing comes within [`STATE_WAIT`] (A died), or no shard
//!    knew the session, the client gets `resync`.
//!
//! Order holds because each shard's pushes to one connector arrive in the
//! order sent: whatever a shard sent A for the player is in A's session
//! before that shard's `HandOver`, and whatever it sends after reaches B.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tracing::{debug, info, warn};
use warren_proto::{BusEvent, ConnId, ConnectorId, EventKind, PushKind, Uid, encode_body};

use crate::{
    connection::publish,
    registry::{ConnHandle, Exit},
    server::Shared,
    session::{HandOver, Handed},
    stats::Stats,
};

/// How long the old connector waits for every shard to ask.
pub(crate) const SHARDS_WAIT: Duration = Duration::from_secs(2);

/// How long the new connector waits for the session's state.
pub(crate) const STATE_WAIT: Duration = Duration::from_secs(5);

/// A shard asks to hand the session held by connection `conn` over.
pub(crate) fn hand_over(shared: &Arc<Shared>, conn: ConnId, kind: PushKind) {
    let PushKind::HandOver {
        uid,
        to,
        to_conn,
        session: token,
        shard,
    } = kind
    else {
        return;
    };
    let held = shared.registry.by_conn(conn).and_then(|h| {
        h.session()
            .filter(|s| s.is(&token) && s.uid == uid)
            .cloned()
            .map(|s| (h, s))
    });
    // Held before the session can end: a stopping connector waits for
    // its watchers, this among them, so the state is sent before it stops.
    let busy = shared.watchers.token();
    let Some((handle, session)) = held else {
        // Not here (it ended): say so once, so the client need not wait.
        if shard == 0 {
            debug!(%uid, %conn, "asked to hand over a session that is not here");
            send_handed(shared, uid, conn, (to, to_conn), Bytes::new(), busy);
        }
        return;
    };
    match session.hand_over(shard, shared.bus.shards()) {
        Err(why) => {
            if shard == 0 {
                debug!(%uid, why, "cannot hand a session over");
                send_handed(shared, uid, conn, (to, to_conn), Bytes::new(), busy);
            }
        }
        Ok((progress, socket)) => {
            if let Some(socket) = socket {
                // A socket the client gave up on: closed, the session moves.
                socket.stop(Exit::Close(CloseCode::Away, "resumed on another connector"));
            }
            match progress {
                HandOver::Complete(state) => complete(shared, &handle, state, (to, to_conn), busy),
                HandOver::Waiting => {
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(SHARDS_WAIT).await;
                        if let Some(state) = session.finish_hand_over() {
                            warn!(%uid, "not every shard asked for a session's hand-over in time; handing it over as it is");
                            complete(&shared, &handle, state, (to, to_conn), busy);
                        }
                    });
                }
            }
        }
    }
}

/// The session's state is taken: it is no longer this connector's (the
/// game moved it already: no Close), and goes to the new one.
fn complete(
    shared: &Arc<Shared>,
    handle: &Arc<ConnHandle>,
    state: Handed,
    to: (ConnectorId, ConnId),
    busy: TaskTrackerToken,
) {
    let uid = Uid(state.uid);
    shared.registry.unbind(uid, handle);
    Stats::inc(&shared.stats.handed_over);
    info!(%uid, to = %to.0, "session handed over to another connector");
    send_handed(shared, uid, handle.id(), to, encode_body(&state), busy);
}

/// Sends the state (empty: it cannot be handed over) to the player's shard,
/// which passes it to connection `to`; `busy` is let go once it is sent.
fn send_handed(
    shared: &Arc<Shared>,
    uid: Uid,
    conn: ConnId,
    to: (ConnectorId, ConnId),
    state: Bytes,
    busy: TaskTrackerToken,
) {
    let ev = BusEvent {
        connector: shared.id.clone(),
        conn,
        uid,
        kind: EventKind::Handed {
            to: to.0,
            to_conn: to.1,
            state,
        },
    };
    let shared = shared.clone();
    tokio::spawn(async move {
        if let Err(e) = publish(&shared, ev).await {
            warn!(%uid, error = %e, "could not hand a session over: its client will resync");
        }
        drop(busy);
    });
}
