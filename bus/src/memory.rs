//! The in-process bus: bounded tokio channels, no serialization.
//!
//! Policy when full: publishers wait (backpressure), exactly as a broker in
//! flow control makes them wait. There is one event consumer (the game) and
//! one push consumer per connector id.

use std::{collections::HashMap, sync::Mutex};

use async_trait::async_trait;
use tokio::sync::mpsc;
use warren_proto::{BusEvent, BusPush, ConnectorId};

use crate::{Bus, BusError, Confirm, Route, Subscription, confirmed};

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
    async fn publish_event(&self, event: &BusEvent) -> Result<Confirm, BusError> {
        self.events_tx
            .send(event.clone())
            .await
            .map_err(|_| BusError::Unavailable("no game is consuming events".into()))?;
        Ok(confirmed())
    }

    async fn forward_event(&self, event: &BusEvent, shard: u16) -> Result<Confirm, BusError> {
        if shard != 0 {
            return Err(BusError::Mismatch(format!(
                "the in-process bus has one shard, not {shard}"
            )));
        }
        self.publish_event(event).await
    }

    fn shards(&self) -> u16 {
        1
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
            .ok_or_else(|| BusError::AlreadyConsumed("events already have a consumer".into()))?;
        Ok(Subscription::channel(rx))
    }

    async fn publish_push(&self, route: &Route, push: &BusPush) -> Result<Confirm, BusError> {
        match route {
            Route::Connector(id) => {
                // A push for a connector that is gone is dropped, as the
                // broker drops a message no queue is bound for.
                if let Some(tx) = self.push_sender(id) {
                    let _ = tx.send(push.clone()).await;
                }
            }
            Route::AllConnectors => {
                for tx in self.all_push_senders() {
                    let _ = tx.send(push.clone()).await;
                }
            }
        }
        Ok(confirmed())
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
            bus.publish_event(&ev)
                .await
                .expect("publish")
                .await
                .expect("confirm");
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
        let _ = bus
            .publish_push(&Route::Connector(id("a")), &frame(1))
            .await;
        let _ = bus.publish_push(&Route::AllConnectors, &frame(2)).await;
        let _ = bus
            .publish_push(&Route::Connector(id("gone")), &frame(3))
            .await;
        assert_eq!(a.next().await, Some(frame(1)));
        assert_eq!(a.next().await, Some(frame(2)));
        assert_eq!(b.next().await, Some(frame(2)));
        drop(a);
        // Once its subscription is gone the id can be consumed again.
        assert!(bus.subscribe_pushes(&id("a")).await.is_ok());
    }
}
