//! The durable mode on Redis: a stream per shard, read through a consumer
//! group, each request acknowledged once the game has handled it.
//!
//! - A connector appends each request as one entry (never a batch: entries
//!   are acknowledged one by one), refused when the stream holds
//!   `max_queue_length` unsettled entries (acknowledged entries are
//!   deleted, so the length is what is unsettled; nothing is ever trimmed).
//! - The game reads new entries with `XREADGROUP` (blocking at most
//!   [`BLOCK`] on a connection of its own) into the subscription's bounded
//!   channel, each with an [`Ack`]. `Done` acknowledges and deletes the
//!   entry (`XACK` + `XDEL`, many in one round trip); `Reject` moves it to
//!   the dead-letter stream `{ns}:dead`; `Retry` claims it again, which
//!   counts a delivery, and hands it out again.
//! - Entries a dead game had read and not settled are still pending in the
//!   group: the next game for the shard (one at a time, by the shard's
//!   lease) claims every pending entry before it reads new ones. So do
//!   read errors: what was read but not handed out is claimed again.
//! - A delivery past `delivery_limit` goes to the dead-letter stream
//!   instead of the handler (a request that kills every game that takes
//!   it ends there too).
//!
//! Every step is a script or a single command, so a process that dies
//! between two steps leaves the entry either pending (delivered again) or
//! settled, never lost. What Redis itself keeps across its own restart
//! depends on its persistence: with `appendonly yes` everything
//! acknowledged by the write; without it, nothing.

use std::{collections::HashSet, time::Duration};

use bytes::Bytes;
use redis::{RedisError, aio::ConnectionManager, streams::StreamReadReply};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{
    keys::{DEAD_LETTER, REDELIVER},
    source::{BLOCK, Element},
};
use crate::{Ack, Acknowledger, Decision};

/// The consumer group every game of a namespace reads through.
pub(super) const GROUP: &str = "games";
/// About how many entries the dead-letter stream keeps (oldest out first).
const DEAD_MAX: u64 = 100_000;
/// Pending entries looked at per round trip when claiming.
const PAGE: usize = 100;
/// Most decisions settled in one round trip.
const SETTLE_MAX: usize = 256;
/// The longest a closing reader spends settling the last decisions.
const FINAL_SETTLE: Duration = Duration::from_secs(1);

/// One entry's decision, told to the reader.
struct StreamAck {
    id: String,
    tx: mpsc::UnboundedSender<(String, Decision)>,
}

impl Acknowledger for StreamAck {
    fn decide(self: Box<Self>, decision: Decision) {
        // A reader that has stopped leaves the entry pending: the next
        // game claims it.
        let _ = self.tx.send((self.id, decision));
    }
}

/// Creates the group (reading from the stream's start, so entries written
/// before any game existed are read too), and the stream if need be.
pub(super) async fn ensure_group(
    conn: &mut ConnectionManager,
    key: &str,
) -> Result<(), RedisError> {
    let created = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(key)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async::<()>(conn)
        .await;
    match created {
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        other => other,
    }
}

/// The reader of one shard's stream (see the module documentation).
pub(super) struct StreamReader {
    pub(super) key: String,
    pub(super) dead: String,
    /// This consumer's name in the group.
    pub(super) me: String,
    pub(super) limit: u32,
    /// Settling and claiming.
    pub(super) conn: ConnectionManager,
    /// Blocking reads.
    pub(super) read: ConnectionManager,
    pub(super) tx: mpsc::Sender<Element>,
}

/// What the reader's loop keeps between steps.
struct State {
    decisions_tx: mpsc::UnboundedSender<(String, Decision)>,
    /// Handed out, not yet decided: never claimed again meanwhile.
    outstanding: HashSet<String>,
    /// Decisions Redis did not take (it was away): tried again.
    unsettled: Vec<(String, Decision)>,
}

/// Why [`StreamReader::read_settling`] returned.
enum Woke {
    /// The read answered.
    Read(Result<Vec<(String, Bytes)>, RedisError>),
    /// Told to stop: settle what is decided, then end.
    Stop,
    /// Nobody reads the subscription any more: end at once.
    Gone,
}

impl StreamReader {
    /// Reads until `stop` or `lost`, then settles what is decided within
    /// [`FINAL_SETTLE`].
    pub(super) async fn run(mut self, stop: CancellationToken, lost: CancellationToken) {
        let (decisions_tx, mut decisions) = mpsc::unbounded_channel();
        let mut st = State {
            decisions_tx,
            outstanding: HashSet::new(),
            unsettled: Vec::new(),
        };
        let mut failing = false;
        let mut backoff = Duration::from_millis(100);
        // First what dead games left pending, then new entries.
        let mut recover = true;
        loop {
            if recover {
                match self.recover(&mut st).await {
                    Ok(true) => recover = false,
                    Ok(false) => return,
                    Err(e) => {
                        if !failing {
                            warn!(stream = %self.key, error = %e, "cannot claim pending requests; trying again with back-off until Redis answers");
                            failing = true;
                        }
                        if sleep_or_stop(&stop, &lost, &mut backoff).await {
                            break;
                        }
                        continue;
                    }
                }
            }
            let result = match self
                .read_settling(&mut st, &mut decisions, &stop, &lost, backoff)
                .await
            {
                Woke::Read(result) => result,
                Woke::Stop => break,
                Woke::Gone => return,
            };
            match result {
                Ok(entries) => {
                    if failing {
                        info!(stream = %self.key, "reading requests again: Redis is back");
                        failing = false;
                        backoff = Duration::from_millis(100);
                    }
                    for (id, body) in entries {
                        if !self.deliver(&mut st, id, body).await {
                            return;
                        }
                    }
                }
                Err(e) if e.code() == Some("NOGROUP") => {
                    // Redis restarted without keeping the stream.
                    warn!(stream = %self.key, "the consumer group is gone (Redis restarted without persistence?); creating it again");
                    if let Err(e) = ensure_group(&mut self.conn, &self.key).await {
                        debug!(stream = %self.key, error = %e, "could not create the group yet");
                    }
                    if sleep_or_stop(&stop, &lost, &mut backoff).await {
                        break;
                    }
                }
                Err(e) => {
                    if !failing {
                        warn!(stream = %self.key, error = %e, "cannot read requests; trying again with back-off until Redis answers");
                        failing = true;
                    }
                    // A read whose answer was lost left entries pending
                    // that were never handed out.
                    recover = true;
                    if sleep_or_stop(&stop, &lost, &mut backoff).await {
                        break;
                    }
                }
            }
        }
        self.final_settle(&mut st, &mut decisions).await;
    }

    /// Reads new entries, settling decisions as they come meanwhile (and
    /// retrying the ones Redis did not take), until the read answers or
    /// the reader is told to stop.
    async fn read_settling(
        &mut self,
        st: &mut State,
        decisions: &mut mpsc::UnboundedReceiver<(String, Decision)>,
        stop: &CancellationToken,
        lost: &CancellationToken,
        backoff: Duration,
    ) -> Woke {
        let read = read_new(
            self.read.clone(),
            self.key.clone(),
            self.me.clone(),
            self.tx.clone(),
        );
        tokio::pin!(read);
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => return Woke::Stop,
                _ = lost.cancelled() => return Woke::Stop,
                Some(first) = decisions.recv() => {
                    let mut batch = vec![first];
                    while batch.len() < SETTLE_MAX {
                        match decisions.try_recv() {
                            Ok(d) => batch.push(d),
                            Err(_) => break,
                        }
                    }
                    if !self.settle(st, batch).await {
                        return Woke::Gone;
                    }
                }
                _ = tokio::time::sleep(backoff), if !st.unsettled.is_empty() => {
                    let batch = std::mem::take(&mut st.unsettled);
                    if !self.settle(st, batch).await {
                        return Woke::Gone;
                    }
                }
                result = &mut read => return Woke::Read(result),
            }
        }
    }

    /// Hands one entry out; false once nobody reads the subscription.
    async fn deliver(&mut self, st: &mut State, id: String, body: Bytes) -> bool {
        st.outstanding.insert(id.clone());
        let ack = Ack::manual(Box::new(StreamAck {
            id,
            tx: st.decisions_tx.clone(),
        }));
        self.tx.send(Element { body, ack }).await.is_ok()
    }

    /// Claims every pending entry not handed out by this reader (those of
    /// dead games, and reads whose answer was lost) and hands out the
    /// ones within the delivery limit. Ok(false) once nobody reads.
    async fn recover(&mut self, st: &mut State) -> Result<bool, RedisError> {
        let mut start = "-".to_owned();
        let mut claimed = 0usize;
        loop {
            let rows: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
                .arg(&self.key)
                .arg(GROUP)
                .arg(&start)
                .arg("+")
                .arg(PAGE)
                .query_async(&mut self.conn)
                .await?;
            let Some(last) = rows.last() else { break };
            start = format!("({}", last.0);
            let ids: Vec<&String> = rows
                .iter()
                .map(|r| &r.0)
                .filter(|id| !st.outstanding.contains(*id))
                .collect();
            if !ids.is_empty() {
                for (id, body, _) in self.redeliver(&ids).await? {
                    claimed += 1;
                    if !self.deliver(st, id, body).await {
                        return Ok(false);
                    }
                }
            }
            if rows.len() < PAGE {
                break;
            }
        }
        if claimed > 0 {
            info!(stream = %self.key, requests = claimed, "delivering again the requests a previous game took and did not settle");
        }
        Ok(true)
    }

    /// Claims `ids` for this consumer (a delivery each): the ones still
    /// within the limit, with their delivery counts.
    async fn redeliver(
        &mut self,
        ids: &[&String],
    ) -> Result<Vec<(String, Bytes, u64)>, RedisError> {
        let mut eval = redis::cmd("EVAL");
        eval.arg(REDELIVER)
            .arg(2)
            .arg(&self.key)
            .arg(&self.dead)
            .arg(GROUP)
            .arg(&self.me)
            .arg(self.limit)
            .arg(DEAD_MAX);
        for id in ids {
            eval.arg(id.as_str());
        }
        let out: Vec<(String, Vec<u8>, u64)> = eval.query_async(&mut self.conn).await?;
        let dead = ids.len() - out.len();
        if dead > 0 {
            warn!(stream = %self.key, dead_letter = %self.dead, requests = dead, limit = self.limit, "requests past their delivery limit went to the dead-letter stream");
        }
        Ok(out
            .into_iter()
            .map(|(id, body, n)| (id, Bytes::from(body), n))
            .collect())
    }

    /// Tells Redis what became of `batch`; what it does not take waits in
    /// `unsettled`. False once nobody reads the subscription.
    async fn settle(&mut self, st: &mut State, batch: Vec<(String, Decision)>) -> bool {
        let mut done = Vec::new();
        let mut retry = Vec::new();
        let mut failed = Vec::new();
        for (id, decision) in batch {
            match decision {
                Decision::Done => done.push(id),
                Decision::Retry => retry.push(id),
                Decision::Reject => {
                    if let Err(e) = self.dead_letter(&id).await {
                        debug!(stream = %self.key, error = %e, "could not dead-letter yet");
                        failed.push((id, Decision::Reject));
                    } else {
                        st.outstanding.remove(&id);
                    }
                }
            }
        }
        if !done.is_empty() {
            let mut pipe = redis::pipe();
            pipe.cmd("XACK")
                .arg(&self.key)
                .arg(GROUP)
                .arg(&done)
                .ignore();
            pipe.cmd("XDEL").arg(&self.key).arg(&done).ignore();
            match pipe.query_async::<()>(&mut self.conn).await {
                Ok(()) => {
                    for id in &done {
                        st.outstanding.remove(id);
                    }
                }
                Err(e) => {
                    debug!(stream = %self.key, error = %e, "could not acknowledge yet");
                    failed.extend(done.into_iter().map(|id| (id, Decision::Done)));
                }
            }
        }
        if !retry.is_empty() {
            let ids: Vec<&String> = retry.iter().collect();
            match self.redeliver(&ids).await {
                Ok(again) => {
                    for id in &retry {
                        st.outstanding.remove(id);
                    }
                    for (id, body, _) in again {
                        if !self.deliver(st, id, body).await {
                            return false;
                        }
                    }
                }
                Err(e) => {
                    debug!(stream = %self.key, error = %e, "could not hand back yet");
                    failed.extend(retry.into_iter().map(|id| (id, Decision::Retry)));
                }
            }
        }
        st.unsettled.extend(failed);
        true
    }

    async fn dead_letter(&mut self, id: &str) -> Result<(), RedisError> {
        warn!(stream = %self.key, dead_letter = %self.dead, id, "a request that cannot be handled goes to the dead-letter stream");
        redis::cmd("EVAL")
            .arg(DEAD_LETTER)
            .arg(2)
            .arg(&self.key)
            .arg(&self.dead)
            .arg(GROUP)
            .arg(id)
            .arg(DEAD_MAX)
            .query_async::<i64>(&mut self.conn)
            .await
            .map(|_| ())
    }

    /// Acknowledges what was decided before the stop, within
    /// [`FINAL_SETTLE`]. A retry is left pending (the next game claims
    /// it), and so is whatever Redis does not take in time.
    async fn final_settle(
        &mut self,
        st: &mut State,
        decisions: &mut mpsc::UnboundedReceiver<(String, Decision)>,
    ) {
        let mut batch: Vec<(String, Decision)> = std::mem::take(&mut st.unsettled);
        while let Ok(d) = decisions.try_recv() {
            batch.push(d);
        }
        batch.retain(|(_, d)| *d != Decision::Retry);
        if batch.is_empty() {
            return;
        }
        let n = batch.len();
        let settled = tokio::time::timeout(FINAL_SETTLE, self.settle(st, batch)).await;
        if settled.is_err() || !st.unsettled.is_empty() {
            warn!(stream = %self.key, requests = n, "could not settle the last requests: the next game delivers them again");
        }
    }
}

/// Waits for room in `tx`, then reads as many new entries as it has room
/// for, blocking at most [`BLOCK`].
async fn read_new(
    mut conn: ConnectionManager,
    key: String,
    me: String,
    tx: mpsc::Sender<Element>,
) -> Result<Vec<(String, Bytes)>, RedisError> {
    match tx.reserve().await {
        Ok(permit) => drop(permit),
        // Nobody reads: nothing to fetch (the caller sees the stop).
        Err(_) => std::future::pending::<()>().await,
    }
    let count = tx.capacity().max(1);
    let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(GROUP)
        .arg(&me)
        .arg("COUNT")
        .arg(count)
        .arg("BLOCK")
        .arg(BLOCK.as_millis() as u64)
        .arg("STREAMS")
        .arg(&key)
        .arg(">")
        .query_async(&mut conn)
        .await?;
    let mut entries = Vec::new();
    for stream in reply.map(|r| r.keys).unwrap_or_default() {
        for entry in stream.ids {
            // An entry without a body does not decode: it is rejected
            // to the dead-letter stream like any message that does not.
            let body = match entry.map.get("b") {
                Some(redis::Value::BulkString(b)) => Bytes::from(b.clone()),
                _ => Bytes::new(),
            };
            entries.push((entry.id, body));
        }
    }
    Ok(entries)
}

/// Sleeps the back-off (doubling it, up to 2 s); true if stopped
/// meanwhile.
async fn sleep_or_stop(
    stop: &CancellationToken,
    lost: &CancellationToken,
    backoff: &mut Duration,
) -> bool {
    let stopped = tokio::select! {
        _ = stop.cancelled() => true,
        _ = lost.cancelled() => true,
        _ = tokio::time::sleep(*backoff) => false,
    };
    *backoff = (*backoff * 2).min(Duration::from_secs(2));
    stopped
}
