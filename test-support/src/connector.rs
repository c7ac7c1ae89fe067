//! Playing the connector on a bus, for the runtime's and the game's tests:
//! publishing a connector's events the way it would, and reading the
//! pushes sent to its id.

use std::time::Duration;

use warren_bus::{Address, Bus, Message, Subscription, send_and_confirm};
use warren_proto::{BusEvent, BusPush, ConnectorId, PushKind};

/// The id the tests' connector goes by.
pub fn test_connector() -> ConnectorId {
    ConnectorId::parse("test-connector").unwrap()
}

/// Sends an event where the connector would (a request to its player's
/// shard, anything else to every shard) and waits until the bus has it.
pub async fn publish(bus: &dyn Bus, ev: BusEvent) {
    let to = Address::of_event(&ev, bus.shards());
    send_and_confirm(bus, to, Message::Event(ev)).await.unwrap();
}

/// The next push, within 10 s.
pub async fn next_push(pushes: &mut Subscription<BusPush>) -> BusPush {
    tokio::time::timeout(Duration::from_secs(10), pushes.next())
        .await
        .expect("a push within 10 s")
        .expect("bus open")
}

/// The next push, which must be a frame: its seq, cmd and body.
pub async fn next_frame(pushes: &mut Subscription<BusPush>) -> (u64, u32, bytes::Bytes) {
    match next_push(pushes).await.kind {
        PushKind::Frame { seq, cmd, body } => (seq, cmd, body),
        other => panic!("unexpected {other:?}"),
    }
}
