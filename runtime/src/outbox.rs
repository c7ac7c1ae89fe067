//! Hands what services send to the bus, in the order they sent it.
//!
//! Addresses are resolved here: a reply goes to the connector of its
//! socket, a push to a uid to the connector that holds the uid (players
//! offline are skipped), a push to several uids is split by connector, a
//! broadcast goes to every connector once, a forward to the shard it names.
//! At most `confirm_window` messages wait for the bus's confirm at once.
//!
//! In the durable mode every message a request's handler sent carries the
//! request's [`Settle`]: the request is acknowledged once all of them are
//! confirmed, and delivered again if one is refused or the process dies
//! first.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::{
    sync::{Semaphore, mpsc},
    time::Instant,
};
use tracing::{debug, error, warn};
use warren_bus::{Ack, Address, Bus, Decision, Message};
use warren_proto::{BusEvent, BusPush, PushKind, Target};

use crate::sessions::Sessions;

/// What services hand the outbox.
#[derive(Debug)]
pub(crate) enum Item {
    /// A frame or kick for sockets.
    Push(BusPush),
    /// A request for the shard that owns what it touches.
    Forward(BusEvent, u16),
}

/// One item, and the request it answers (durable mode).
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) item: Item,
    pub(crate) settle: Option<Arc<Settle>>,
}

/// A durable request's acknowledgement, settled when the last message its
/// handler sent has been confirmed (the last clone is dropped): `done`, or
/// `retry` if the handler panicked or the bus refused one of them.
#[derive(Debug)]
pub(crate) struct Settle {
    ack: Mutex<Option<Ack>>,
    retry: AtomicBool,
}

impl Settle {
    pub(crate) fn new(ack: Ack) -> Arc<Settle> {
        Arc::new(Settle {
            ack: Mutex::new(Some(ack)),
            retry: AtomicBool::new(false),
        })
    }

    /// Deliver the request again instead of acknowledging it.
    pub(crate) fn retry(&self) {
        self.retry.store(true, Ordering::Relaxed);
    }
}

impl Drop for Settle {
    fn drop(&mut self) {
        let ack = self.ack.get_mut().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(ack) = ack {
            ack.settle(if self.retry.load(Ordering::Relaxed) {
                Decision::Retry
            } else {
                Decision::Done
            });
        }
    }
}

/// Fault injection: abort the process at the `n`-th reply.
#[derive(Debug, Default)]
pub(crate) struct AbortAt {
    pub(crate) n: u64,
    seen: u64,
}

impl AbortAt {
    pub(crate) fn new(n: u64) -> Self {
        AbortAt { n, seen: 0 }
    }

    /// Counts a reply; at the `n`-th, holds it back for 200 ms (a slow
    /// confirm's window, in which anything not waiting for it, such as an
    /// early acknowledgement, goes out), then aborts the process.
    async fn reply(&mut self) {
        if self.n == 0 {
            return;
        }
        self.seen += 1;
        if self.seen == self.n {
            error!(
                reply = self.n,
                "fault injection: aborting before this reply reaches the bus"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            std::process::abort();
        }
    }
}

pub(crate) async fn run(
    mut rx: mpsc::Receiver<Outgoing>,
    bus: Arc<dyn Bus>,
    sessions: Arc<Sessions>,
    window: usize,
    mut abort: AbortAt,
) {
    let window = window.clamp(1, Semaphore::MAX_PERMITS) as u32;
    let unconfirmed = Arc::new(Semaphore::new(window as usize));
    while let Some(Outgoing { item, settle }) = rx.recv().await {
        match item {
            Item::Push(push) => {
                if matches!(push.kind, PushKind::Frame { seq, .. } if seq != 0) {
                    abort.reply().await;
                }
                for (to, push) in resolve(&sessions, push) {
                    send(&bus, &unconfirmed, to, Message::Push(push), settle.clone()).await;
                }
            }
            Item::Forward(event, shard) => {
                send(
                    &bus,
                    &unconfirmed,
                    Address::Shard(shard),
                    Message::Event(event),
                    settle,
                )
                .await;
            }
        }
    }
    // Every confirm heard (the bus bounds how long one takes).
    let _ = unconfirmed.acquire_many(window).await;
}

/// Hands one message to the bus once fewer than the window are unconfirmed.
async fn send(
    bus: &Arc<dyn Bus>,
    unconfirmed: &Arc<Semaphore>,
    to: Address,
    msg: Message,
    settle: Option<Arc<Settle>>,
) {
    let Ok(permit) = unconfirmed.clone().acquire_owned().await else {
        return;
    };
    let deadline = Instant::now() + UNAVAILABLE_FOR;
    hand_over(bus.clone(), to, msg, settle, permit, deadline).await;
}

/// Durable mode: how long a message the bus refused as unavailable (a
/// connection moving to another node, a broker restarting) is handed to it
/// again, every [`RETRY_EVERY`], before its request is delivered again
/// instead. Without it every attempt at the request would fail at once and
/// it would reach the dead letters within the outage.
const UNAVAILABLE_FOR: Duration = Duration::from_secs(10);
const RETRY_EVERY: Duration = Duration::from_millis(100);

/// Hands `msg` to the bus; its outcome settles the request's
/// acknowledgement (durable mode), after retrying while the bus is
/// unavailable.
fn hand_over(
    bus: Arc<dyn Bus>,
    to: Address,
    msg: Message,
    settle: Option<Arc<Settle>>,
    permit: tokio::sync::OwnedSemaphorePermit,
    deadline: Instant,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    let kind = match &msg {
        Message::Push(_) => "push",
        Message::Event(_) => "forwarded request",
    };
    // Kept to hand over again (durable mode only: nothing else retries).
    let again = settle
        .as_ref()
        .map(|_| (bus.clone(), to.clone(), msg.clone()));
    let done = Box::new(move |outcome: Result<(), warren_bus::BusError>| {
        // The window's permit is held until the message's last outcome.
        let Err(e) = outcome else {
            drop(permit);
            return;
        };
        match (again, settle) {
            (Some((bus, to, msg)), Some(settle))
                if matches!(e, warren_bus::BusError::Unavailable(_))
                    && Instant::now() < deadline =>
            {
                debug!(error = %e, kind, "the bus is unavailable: handing the message over again");
                tokio::spawn(async move {
                    tokio::time::sleep(RETRY_EVERY).await;
                    hand_over(bus, to, msg, Some(settle), permit, deadline).await;
                });
            }
            (_, settle) => {
                drop(permit);
                warn!(error = %e, kind, "the bus did not take a message");
                if let Some(settle) = &settle {
                    settle.retry();
                }
            }
        }
    });
    Box::pin(async move { bus.send(to, msg, done).await })
}

fn resolve(sessions: &Sessions, push: BusPush) -> Vec<(Address, BusPush)> {
    match &push.target {
        // A hand-over goes to the old connection itself.
        Target::Conn { connector, .. } if matches!(push.kind, PushKind::HandOver { .. }) => {
            vec![(Address::Connector(connector.clone()), push)]
        }
        Target::Conn { connector, conn } => match sessions.reply_to(connector, *conn) {
            // Its session resumed on another connector.
            Some((connector, conn)) => {
                let to = Address::Connector(connector.clone());
                let push = BusPush {
                    target: Target::Conn { connector, conn },
                    kind: push.kind,
                };
                vec![(to, push)]
            }
            None => vec![(Address::Connector(connector.clone()), push)],
        },
        Target::All => vec![(Address::EveryConnector, push)],
        Target::Uid(uid) => match sessions.connector_of(*uid) {
            Some(connector) => vec![(Address::Connector(connector), push)],
            None => {
                debug!(%uid, "push for a player who is offline, dropped");
                Vec::new()
            }
        },
        Target::Uids(uids) => {
            let mut by_connector = BTreeMap::new();
            for uid in uids {
                if let Some(connector) = sessions.connector_of(*uid) {
                    by_connector
                        .entry(connector)
                        .or_insert_with(Vec::new)
                        .push(*uid);
                }
            }
            by_connector
                .into_iter()
                .map(|(connector, uids)| {
                    let part = BusPush {
                        target: Target::Uids(uids),
                        kind: push.kind.clone(),
                    };
                    (Address::Connector(connector), part)
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use warren_bus::{Acknowledger, Decision};
    use warren_proto::{ConnId, ConnectorId, PushKind, Uid};

    use super::*;

    #[test]
    fn pushes_to_several_uids_split_by_connector_and_skip_offline_players() {
        let sessions = Sessions::default();
        let a = ConnectorId::parse("a").expect("id");
        let b = ConnectorId::parse("b").expect("id");
        sessions.connected(Uid(1), a.clone(), ConnId(1));
        sessions.connected(Uid(2), b.clone(), ConnId(1));
        sessions.connected(Uid(3), a.clone(), ConnId(2));
        let kind = PushKind::Frame {
            seq: 0,
            cmd: 2003,
            body: Bytes::new(),
        };
        let push = BusPush {
            target: Target::Uids(vec![Uid(1), Uid(2), Uid(3), Uid(4)]),
            kind: kind.clone(),
        };
        let routed = resolve(&sessions, push);
        assert_eq!(
            routed,
            vec![
                (
                    Address::Connector(a),
                    BusPush {
                        target: Target::Uids(vec![Uid(1), Uid(3)]),
                        kind: kind.clone()
                    }
                ),
                (
                    Address::Connector(b),
                    BusPush {
                        target: Target::Uids(vec![Uid(2)]),
                        kind
                    }
                ),
            ]
        );
    }

    struct Record(std::sync::mpsc::Sender<Decision>);

    impl Acknowledger for Record {
        fn decide(self: Box<Self>, decision: Decision) {
            let _ = self.0.send(decision);
        }
    }

    #[test]
    fn a_request_is_settled_when_the_last_message_it_sent_is_confirmed() {
        let (tx, rx) = std::sync::mpsc::channel();
        let settle = Settle::new(Ack::manual(Box::new(Record(tx.clone()))));
        let (reply, push) = (settle.clone(), settle.clone());
        drop(settle);
        drop(reply);
        assert!(rx.try_recv().is_err(), "a push is still unconfirmed");
        drop(push);
        assert_eq!(rx.try_recv(), Ok(Decision::Done));

        let settle = Settle::new(Ack::manual(Box::new(Record(tx))));
        let refused = settle.clone();
        drop(settle);
        refused.retry();
        drop(refused);
        assert_eq!(rx.try_recv(), Ok(Decision::Retry));
    }
}
