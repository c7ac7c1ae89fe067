//! Where a message goes: the one address model of every transport.
//!
//! A message goes to one game shard's request queue, to every shard (a
//! lifecycle event), to one connector's push queue, or to every connector
//! (a broadcast). [`Address::of_event`] is the one place that maps a
//! connector's event to its shard; the game's outbox resolves a push's
//! players to connectors and hands the bus an address it has already
//! decided.

use warren_proto::{BusEvent, ConnectorId, EventKind, Uid};

/// Where a message goes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Address {
    /// One game shard's request queue.
    Shard(u16),
    /// Every game shard's request queue, a copy each (Connect, Close,
    /// Error, Alive). Transports never see it: the batcher copies the
    /// message to each shard.
    EveryShard,
    /// One connector's push queue.
    Connector(ConnectorId),
    /// Every connector's push queue (a broadcast).
    EveryConnector,
}

impl Address {
    /// The shard that owns a player: all of a player's requests go there,
    /// in the order sent.
    pub(crate) fn shard_of(uid: Uid, shards: u16) -> u16 {
        (uid.0 % u64::from(shards.max(1))) as u16
    }

    /// Where a connector's event goes: a request (or a handed-over
    /// session) to the shard of its player, anything else to every shard.
    pub fn of_event(event: &BusEvent, shards: u16) -> Address {
        match event.kind {
            EventKind::Message { .. } | EventKind::Call { .. } | EventKind::Handed { .. } => {
                Address::Shard(Address::shard_of(event.uid, shards))
            }
            _ => Address::EveryShard,
        }
    }

    /// Whether events (not pushes) go here.
    pub(crate) fn is_shard(&self) -> bool {
        matches!(self, Address::Shard(_) | Address::EveryShard)
    }

    /// The single queues this address stands for, in order.
    pub(crate) fn queues(self, shards: u16) -> Vec<Address> {
        match self {
            Address::EveryShard => (0..shards).map(Address::Shard).collect(),
            one => vec![one],
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use warren_proto::ConnId;

    use super::*;

    fn event(uid: u64, kind: EventKind) -> BusEvent {
        BusEvent {
            connector: ConnectorId::parse("c").expect("id"),
            conn: ConnId(1),
            uid: Uid(uid),
            kind,
        }
    }

    #[test]
    fn a_request_goes_to_its_players_shard_and_the_rest_to_every_shard() {
        let msg = EventKind::Message {
            seq: 1,
            cmd: 1001,
            body: Bytes::new(),
        };
        assert_eq!(Address::of_event(&event(7, msg), 3), Address::Shard(1));
        let close = EventKind::Close { reason: "x".into() };
        assert_eq!(Address::of_event(&event(7, close), 3), Address::EveryShard);
        assert_eq!(
            Address::EveryShard.queues(3),
            vec![Address::Shard(0), Address::Shard(1), Address::Shard(2)]
        );
    }
}
