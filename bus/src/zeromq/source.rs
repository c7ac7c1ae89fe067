//! Reading from ZeroMQ: a game's request socket, a connector's pushes.
//!
//! Each ZeroMQ message is one bus message or a sealed batch; a
//! subscriber's messages are `[topic, body]`, and a publisher's welcome
//! (one frame, `~<shard>`) tells the subscriber that shard now sends it
//! what it subscribed to. [`ZmqSource::next`] is cancel-safe.

use std::collections::{BTreeSet, VecDeque};

use futures_util::StreamExt;
use tracing::{debug, warn};
use warren_proto::{
    DecodeError,
    batch::{BATCH_MARKER, open},
};

use super::WELCOME;

/// The socket a source reads.
pub(super) enum Incoming {
    /// A game's requests, or a pair connector's pushes: `[body]`.
    Pull(tmq::pull::Pull),
    /// A connector's pushes in the pubsub layout: `[topic, body]` or a
    /// welcome.
    Sub(tmq::subscribe::Subscribe),
}

impl Incoming {
    async fn next(&mut self) -> Option<tmq::Multipart> {
        let next = match self {
            Incoming::Pull(s) => s.next().await,
            Incoming::Sub(s) => s.next().await,
        };
        match next {
            Some(Ok(msg)) => Some(msg),
            Some(Err(e)) => {
                warn!(error = %e, "ZeroMQ socket failed; no more messages from it");
                None
            }
            None => None,
        }
    }
}

/// A stream of decoded messages from one ZeroMQ socket.
pub(crate) struct ZmqSource<T> {
    what: String,
    incoming: Incoming,
    decode: fn(&[u8]) -> Result<T, DecodeError>,
    /// Decoded, not handed out yet (the rest of a batch).
    ready: VecDeque<T>,
    /// Ends what keeps the source fed (a registration) when dropped.
    _guard: Option<tokio_util::sync::DropGuard>,
}

impl<T> std::fmt::Debug for ZmqSource<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZmqSource")
            .field("what", &self.what)
            .finish_non_exhaustive()
    }
}

/// What one message read was.
enum Read {
    /// A shard's publisher welcomed this subscriber.
    Welcome(u16),
    /// Bus messages (none if it did not decode).
    Messages,
    /// The socket is gone.
    End,
}

impl<T> ZmqSource<T> {
    pub(super) fn new(
        what: String,
        incoming: Incoming,
        decode: fn(&[u8]) -> Result<T, DecodeError>,
    ) -> Self {
        ZmqSource {
            what,
            incoming,
            decode,
            ready: VecDeque::new(),
            _guard: None,
        }
    }

    /// The source keeps `guard` while it lives.
    pub(super) fn holding(mut self, guard: tokio_util::sync::DropGuard) -> Self {
        self._guard = Some(guard);
        self
    }

    /// Reads until every shard in `shards` has welcomed this subscriber,
    /// at most `bound`; keeps what else arrives meanwhile. The shards that
    /// did not.
    pub(super) async fn welcomed_by(
        &mut self,
        mut shards: BTreeSet<u16>,
        bound: std::time::Duration,
    ) -> BTreeSet<u16> {
        let deadline = tokio::time::Instant::now() + bound;
        while !shards.is_empty() {
            match tokio::time::timeout_at(deadline, self.read()).await {
                Ok(Read::Welcome(s)) => {
                    shards.remove(&s);
                }
                Ok(Read::Messages) => {}
                Ok(Read::End) | Err(_) => break,
            }
        }
        shards
    }

    pub(crate) async fn next(&mut self) -> Option<T> {
        loop {
            if let Some(msg) = self.ready.pop_front() {
                return Some(msg);
            }
            if let Read::End = self.read().await {
                return None;
            }
        }
    }

    /// Reads one ZeroMQ message into `ready`. Cancel-safe: a message is
    /// either read whole or left in the socket.
    async fn read(&mut self) -> Read {
        let Some(mut frames) = self.incoming.next().await else {
            return Read::End;
        };
        let body = match (&self.incoming, frames.len()) {
            (Incoming::Sub(_), 1) => {
                let welcome = frames.pop_front().and_then(|f| {
                    std::str::from_utf8(&f)
                        .ok()
                        .and_then(|s| s.strip_prefix(WELCOME))
                        .and_then(|s| s.parse().ok())
                });
                return match welcome {
                    Some(shard) => Read::Welcome(shard),
                    None => {
                        warn!(source = %self.what, "dropping a one-frame message that is not a welcome");
                        Read::Messages
                    }
                };
            }
            (Incoming::Sub(_), 2) | (Incoming::Pull(_), 1) => frames.pop_back(),
            (_, n) => {
                warn!(source = %self.what, frames = n, "dropping a message of an unexpected shape");
                None
            }
        };
        if let Some(body) = body {
            self.unpack(&body);
        }
        Read::Messages
    }

    fn unpack(&mut self, body: &[u8]) {
        let parts = if body.first() == Some(&BATCH_MARKER) {
            match open(body) {
                Ok(parts) => parts,
                Err(e) => {
                    warn!(source = %self.what, error = %e, "dropping a batch that does not unpack");
                    return;
                }
            }
        } else {
            vec![body]
        };
        for part in parts {
            match (self.decode)(part) {
                Ok(msg) => self.ready.push_back(msg),
                Err(e) => {
                    warn!(source = %self.what, error = %e, "dropping a message that does not decode")
                }
            }
        }
    }

    /// Stops reading: the socket closes (what it held is lost: ZeroMQ
    /// delivers at most once).
    pub(crate) fn close(self) {
        debug!(source = %self.what, "closed");
    }
}
