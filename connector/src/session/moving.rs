//! A session moving between connectors (see `handover`): on the new one,
//! an incoming session holds what is sent to it until its state arrives;
//! on the old one, the session is detached and its state taken once every
//! shard has asked.

use std::{
    collections::BTreeSet,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use warren_proto::{ConnId, ConnectorId, Uid};

use super::{Bounds, Incoming, Refusal, Session, State, out_of_range};
use crate::registry::ConnHandle;

/// A session's state as it moves between connectors (inside
/// `EventKind::Handed`, opaque to the game).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Handed {
    pub(crate) uid: u64,
    next: u64,
    kept: Vec<(u64, Bytes)>,
    forgotten: u64,
    taken: u64,
    /// Requests waiting for an answer: (seq, ms left to answer them).
    pending: Vec<(u64, u64)>,
}

impl Handed {
    /// Whether a resume from `last` can be served from this state (else
    /// why not).
    pub(crate) fn serves(&self, last: u64) -> Result<(), Refusal> {
        match out_of_range(self.next, self.forgotten, last) {
            None => Ok(()),
            Some((_, why)) => Err(why),
        }
    }
}

/// Where a hand-over stands after one shard's request.
#[derive(Debug)]
pub(crate) enum HandOver {
    /// More shards are to ask.
    Waiting,
    /// Every shard asked: the state to send on (the session has ended).
    Complete(Handed),
}

impl Session {
    /// A session resuming here from another connector: what is sent to it
    /// is held until its state [arrives](Session::arrive).
    pub(crate) fn incoming(
        uid: Uid,
        connector: &ConnectorId,
        conn: ConnId,
        bounds: Bounds,
    ) -> Arc<Self> {
        let session = Session::new(uid, connector, conn, bounds);
        session.lock().incoming = Some(Incoming::default());
        session
    }

    /// The answer to a resume from another connector came: its state, or
    /// None (no shard knew the session).
    pub(crate) fn arrive(&self, state: Option<Bytes>) {
        if let Some(incoming) = &mut self.lock().incoming {
            incoming.arrived.get_or_insert(state);
        }
        self.changed.notify_waiters();
    }

    /// Waits at most `within` for [`Session::arrive`]; the state if it
    /// came and this session can take it over.
    pub(crate) async fn arrival(&self, within: Duration) -> Result<Handed, Refusal> {
        let until = tokio::time::Instant::now() + within;
        loop {
            let changed = self.changed.notified();
            let arrived = self.lock().incoming.as_mut().and_then(|i| i.arrived.take());
            match arrived {
                Some(Some(state)) if state.is_empty() => {
                    return Err("the connector that held the session could not hand it over");
                }
                Some(Some(state)) => {
                    return warren_proto::decode_body::<Handed>("a session's state", &state)
                        .map_err(|_| "the session's state did not decode");
                }
                Some(None) => return Err("no game shard knows the session"),
                None => {}
            }
            if tokio::time::timeout_at(until, changed).await.is_err() {
                return Err("the connector that held the session did not hand it over in time");
            }
        }
    }

    /// Takes over `state` from the connector that held the session: the
    /// numbers go on from its, and what was held meanwhile is numbered
    /// after its frames. Err (nothing changed) if this session overflowed
    /// meanwhile.
    pub(crate) fn adopt(&self, state: Handed) -> Result<(), Refusal> {
        let mut st = self.lock();
        if st.ended.is_some() {
            return Err("more was sent while the session moved than it keeps");
        }
        let held = st.incoming.take().map(|i| i.held).unwrap_or_default();
        st.next = state.next;
        st.kept_bytes = state.kept.iter().map(|(_, f)| f.len()).sum();
        st.kept = state.kept.into();
        st.forgotten = state.forgotten;
        st.taken = state.taken;
        let now = Instant::now();
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        for (seq, left_ms) in state.pending {
            pending.expect(seq, now + Duration::from_millis(left_ms));
        }
        for frame in held {
            // A reply held here answers its request.
            if let Ok(f) = warren_proto::Frame::decode(&frame) {
                pending.answered(f.seq);
            }
            self.number(&mut st, &frame);
        }
        Ok(())
    }

    /// No state will come: this becomes a new session, numbered from 1,
    /// with what was held meanwhile.
    pub(crate) fn start_afresh(&self) {
        let mut st = self.lock();
        st.ended = None;
        let held = st.incoming.take().map(|i| i.held).unwrap_or_default();
        for frame in held {
            self.number(&mut st, &frame);
        }
    }

    /// Shard `shard` (of `shards`) asks for the session to be handed over:
    /// it is detached from its socket (the caller stops the socket it
    /// returns) and, once every shard has asked, its state is taken and it
    /// ends. Err: it cannot be (it has ended).
    pub(crate) fn hand_over(
        &self,
        shard: u16,
        shards: u16,
    ) -> Result<(HandOver, Option<Arc<ConnHandle>>), Refusal> {
        let mut st = self.lock();
        if st.ended.is_some() {
            return Err("the session has ended");
        }
        let socket = st.attached.take();
        let asked = st.moving.get_or_insert_with(BTreeSet::new);
        asked.insert(shard);
        if asked.len() < usize::from(shards.max(1)) {
            return Ok((HandOver::Waiting, socket));
        }
        Ok((HandOver::Complete(self.take_state(&mut st)), socket))
    }

    /// Hands the session over with what it has, whichever shards asked
    /// (one did not within its bound: its game is gone). None if it is
    /// not being handed over any more.
    pub(crate) fn finish_hand_over(&self) -> Option<Handed> {
        let mut st = self.lock();
        if st.moving.is_none() || st.ended.is_some() {
            return None;
        }
        Some(self.take_state(&mut st))
    }

    fn take_state(&self, st: &mut State) -> Handed {
        let now = Instant::now();
        let mut pending =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        let state = Handed {
            uid: self.uid.0,
            next: st.next,
            kept: std::mem::take(&mut st.kept).into(),
            forgotten: st.forgotten,
            taken: st.taken,
            pending: pending
                .drain()
                .map(|(seq, at)| (seq, at.saturating_duration_since(now).as_millis() as u64))
                .collect(),
        };
        self.end_locked(st, "moved");
        self.changed.notify_waiters();
        state
    }

    /// Whether it is being (or has been) handed over to another connector.
    pub(crate) fn moving(&self) -> bool {
        let st = self.lock();
        st.moving.is_some()
    }
}
