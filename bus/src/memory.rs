//! The in-process bus: bounded tokio channels, no serialization.
//!
//! Policy when full: a sender waits for room (backpressure, as a broker in
//! flow control makes publishers wait), at most [`SEND_WAIT`]; then the
//! message is refused (`Rejected`). There is one event consumer (the game,
//! the one shard) and one push consumer per connector id. A message is
//! taken once it is in the channel; nothing survives the process, so the
//! durable mode is not offered.

use std::{collections::HashMap, sync::Mutex};

use async_trait::async_trait;
use tokio::sync::mpsc;
use warren_proto::{BusEvent, BusPush, ConnectorId};

use crate::{Address, Bus, BusError, Done, Message, SEND_WAIT, Subscription, check};

/// Puts `msg` in `tx`, waiting for room at most [`SEND_WAIT`].
async fn put<T>(tx: &mpsc::Sender<T>, msg: T, gone: &str) -> Result<(), BusError> {
    match tx.send_timeout(msg, SEND_WAIT).await {
        Ok(()) => Ok(()),
        Err(mpsc::error::SendTimeoutError::Timeout(_)) => Err(BusError::Rejected(format!(
            "the in-process queue has been full for {SEND_WAIT:?}"
        ))),
        Err(mpsc::error::SendTimeoutError::Closed(_)) => Err(BusError::Unavailable(gone.into())),
    }
}

/// How many messages each channel holds before publishers wait.
pub(crate) const DEFAULT_CAPACITY: usize = 4096;

#[derive(Debug)]
pub struct MemoryBus {
    capacity: usize,
    events_tx: mpsc::Sender<BusEvent>,
    events_rx: Mutex<Option<mpsc::Receiver<BusEvent>>>,
    pushes: Mutex<HashMap<ConnectorId, mpsc::Sender<BusPush>>>,
}

impl MemoryBus {
    /// How many messages each channel holds before publishers wait.
    pub const DEFAULT_CAPACITY: usize = DEFAULT_CAPACITY;

    pub fn new(capacity: usize) -> Self {
        let (events_tx, events_rx) = mpsc::channel(capacity);
        MemoryBus {
            capacity,
            events_tx,
            events_rx: Mutex::new(Some(events_rx)),
            pushes: Mutex::new(HashMap::new()),
        }
    }

    fn push_sender(&self, connector: &ConnectorId) -> Option<mpsc::Sender<BusPush>> {
        let mut map = self.pushes.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, tx| !tx.is_closed());
        map.get(connector).cloned()
    }

    fn all_push_senders(&self) -> Vec<mpsc::Sender<BusPush>> {
        let mut map = self.pushes.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, tx| !tx.is_closed());
        map.values().cloned().collect()
    }
}

impl Default for MemoryBus {
    fn default() -> Self {
        MemoryBus::new(DEFAULT_CAPACITY)
    }
}

#[async_trait]
impl Bus for MemoryBus {
    fn shards(&self) -> u16 {
        1
    }

    async fn send(&self, to: Address, msg: Message, done: Done) {
        if let Err(e) = check(&to, &msg, 1) {
            return done(Err(e));
        }
        let outcome = match msg {
            Message::Event(event) => {
                put(&self.events_tx, event, "no game is consuming events").await
            }
            Message::Push(push) => {
                // A push for a connector that is gone is dropped, as a
                // broker drops a message no queue is bound for.
                let targets = match &to {
                    Address::Connector(id) => self.push_sender(id).into_iter().collect(),
                    _ => self.all_push_senders(),
                };
                let mut outcome = Ok(());
                for tx in targets {
                    if let Err(BusError::Rejected(m)) = put(&tx, push.clone(), "").await {
                        outcome = Err(BusError::Rejected(m));
                    }
                }
                outcome
            }
        };
        done(outcome);
    }

    async fn subscribe_pushes(
        &self,
        connector: &ConnectorId,
    ) -> Result<Subscription<BusPush>, BusError> {
        let mut map = self.pushes.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(connector).is_some_and(|tx| !tx.is_closed()) {
            return Err(BusError::AlreadyConsumed(format!(
                "connector {connector} already consumes its pushes"
            )));
        }
        let (tx, rx) = mpsc::channel(self.capacity);
        map.insert(connector.clone(), tx);
        Ok(Subscription::channel(rx))
    }

    async fn subscribe_events(&self) -> Result<Subscription<BusEvent>, BusError> {
        let rx = self
            .events_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| {
                BusError::AlreadyConsumed(
                    "shard 0 already has a game consuming it (the in-process bus has one game)"
                        .into(),
                )
            })?;
        Ok(Subscription::channel(rx))
    }

    async fn close(&self) {
        self.pushes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use warren_proto::{ConnId, EventKind, PushKind, Target, Uid};

    use super::*;

    fn id(s: &str) -> ConnectorId {
        ConnectorId::parse(s).expect("valid")
    }

    fn frame(cmd: u32) -> BusPush {
        BusPush {
            target: Target::All,
            kind: PushKind::Frame {
                seq: 0,
                cmd,
                body: Bytes::new(),
            },
        }
    }

    #[tokio::test]
    async fn events_reach_the_single_consumer_in_order() {
        let bus = MemoryBus::new(8);
        let mut sub = bus.subscribe_events().await.expect("first consumer");
        assert!(bus.subscribe_events().await.is_err());
        for seq in 0..5 {
            let ev = BusEvent {
                connector: id("c"),
                conn: ConnId(1),
                uid: Uid(1),
                kind: EventKind::Message {
                    seq,
                    cmd: 1001,
                    body: Bytes::new(),
                },
            };
            crate::send_and_confirm(&bus, Address::Shard(0), Message::Event(ev))
                .await
                .expect("taken");
        }
        for seq in 0..5 {
            let ev = sub.next().await.expect("event");
            assert!(matches!(ev.kind, EventKind::Message { seq: s, .. } if s == seq));
        }
    }

    #[tokio::test]
    async fn pushes_route_to_one_connector_or_all() {
        let bus = MemoryBus::new(8);
        let mut a = bus.subscribe_pushes(&id("a")).await.expect("a");
        let mut b = bus.subscribe_pushes(&id("b")).await.expect("b");
        for (to, push) in [
            (Address::Connector(id("a")), frame(1)),
            (Address::EveryConnector, frame(2)),
            (Address::Connector(id("gone")), frame(3)),
        ] {
            crate::send_and_confirm(&bus, to, Message::Push(push))
                .await
                .expect("taken");
        }
        assert_eq!(a.next().await, Some(frame(1)));
        assert_eq!(a.next().await, Some(frame(2)));
        assert_eq!(b.next().await, Some(frame(2)));
        drop(a);
        // Once its subscription is gone the id can be consumed again.
        assert!(bus.subscribe_pushes(&id("a")).await.is_ok());
    }
}
