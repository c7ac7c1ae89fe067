//! The bus between connector and game.
//!
//! [`Bus`] is the one contract both sides use; which transport carries it
//! is decided once, at start, by whoever builds it (`bus.kind`):
//! - [`MemoryBus`]: tokio channels in one process, for the embedded
//!   default and unit tests;
//! - [`AmqpBus`]: RabbitMQ through lapin (see `rabbitmq/definitions.json`
//!   for the topology it declares);
//! - [`RedisBus`]: Redis lists for requests, pub/sub for pushes;
//! - [`ZmqBus`]: ZeroMQ sockets straight between the processes, no broker;
//! - [`GrpcBus`]: the gRPC gateway: services register with the connectors
//!   and are called directly, in any language.
//!
//! The contract, whatever the transport:
//! - **Where**: one [`Address`] per message: a game shard, every shard, one
//!   connector, every connector. [`Address::of_event`] maps a connector's
//!   event to its shard.
//! - **Sending**: [`Bus::send`] takes the message by value and a [`Done`]
//!   that runs exactly once: `Ok` once the bus has taken responsibility for
//!   it (every copy of a message to every shard), or the reason it did not
//!   (`Rejected`: full, the client gets `overloaded`; `Unavailable`: down or
//!   recovering, refused at once, the client gets `unavailable`). `send`
//!   never waits without a bound: for room in a full queue at most
//!   [`SEND_WAIT`].
//! - **Order**: the messages sent to one queue arrive in the order sent; a
//!   message to every shard keeps its place among the requests around it;
//!   a broadcast and single pushes keep their relative order.
//! - **Consuming**: one consumer per shard and one per connector id; a
//!   second is refused ([`BusError::AlreadyConsumed`]).
//! - **Durable mode** (where a transport offers it): each delivery comes
//!   with an [`Ack`]; see the `ack` module for when the game settles it.
//!
//! Transports that batch share `batch::Batcher`: a transport provides a
//! `batch::Sink` that writes one body to one queue.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod ack;
mod address;
pub(crate) mod amqp;
mod batch;
mod grpc;
mod memory;
mod redis;
mod subscription;
mod zeromq;

use std::{fmt, future::Future, pin::Pin, time::Duration};

use async_trait::async_trait;
use warren_proto::{BusEvent, BusPush, ConnectorId, encode_event, encode_push};

pub use ack::{Ack, Acknowledger, Decision};
pub use address::Address;
pub use amqp::{AmqpBus, AmqpSettings};
pub use grpc::{GrpcBus, GrpcSettings};
pub use memory::MemoryBus;
pub use redis::{RedisBus, RedisSettings};
pub use subscription::Subscription;
pub use zeromq::{
    PushServer, PushServerSettings, PushServerStats, Registered, ZmqBus, ZmqLayout, ZmqSettings,
};

/// The longest [`Bus::send`] waits for room in a full queue before it
/// refuses the message (`Rejected`, and the client hears `overloaded`).
pub const SEND_WAIT: Duration = Duration::from_secs(1);

/// What travels on the bus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Connector → game (or game → game, a forwarded request).
    Event(BusEvent),
    /// Game → connector.
    Push(BusPush),
}

impl Message {
    /// The bytes a transport carries.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Message::Event(e) => encode_event(e),
            Message::Push(p) => encode_push(p),
        }
    }
}

/// Hears, exactly once, whether the bus took a message. It runs on a bus
/// task, or inside [`Bus::send`] when the refusal is immediate: it must not
/// block.
pub type Done = Box<dyn FnOnce(Result<(), BusError>) + Send>;

/// A transport's promise that it took one written message (a publisher
/// confirm on RabbitMQ).
pub type Confirm = Pin<Box<dyn Future<Output = Result<(), BusError>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The bus cannot be reached now (connection lost, recovering).
    #[error("the bus is unavailable: {0}")]
    Unavailable(String),
    /// The bus refused the message (queue full, negative confirm).
    #[error("the bus refused the message: {0}")]
    Rejected(String),
    /// A second consumer for something that has exactly one.
    #[error("{0}")]
    AlreadyConsumed(String),
    /// This process's settings do not fit the bus, or a message does not
    /// fit its address.
    #[error("{0}")]
    Mismatch(String),
    #[error("the bus is closed")]
    Closed,
}

impl BusError {
    /// A copy for the second of two listeners (every message of a refused
    /// batch hears the same error).
    pub fn duplicate(&self) -> BusError {
        match self {
            BusError::Unavailable(m) => BusError::Unavailable(m.clone()),
            BusError::Rejected(m) => BusError::Rejected(m.clone()),
            BusError::AlreadyConsumed(m) => BusError::AlreadyConsumed(m.clone()),
            BusError::Mismatch(m) => BusError::Mismatch(m.clone()),
            BusError::Closed => BusError::Closed,
        }
    }
}

/// The message bus. Every method is safe to call from many tasks at once.
#[async_trait]
pub trait Bus: Send + Sync + fmt::Debug {
    /// How many game shards share the bus (1 in process).
    fn shards(&self) -> u16;

    /// Hands `msg` to the bus for `to`; `done` hears how it fared, exactly
    /// once. Events go to shards, pushes to connectors; anything else is
    /// refused (`Mismatch`).
    async fn send(&self, to: Address, msg: Message, done: Done);

    /// Connector side: the pushes addressed to this connector (its own
    /// queue, plus broadcasts). A second consumer of one id is refused.
    async fn subscribe_pushes(
        &self,
        connector: &ConnectorId,
    ) -> Result<Subscription<BusPush>, BusError>;

    /// Game side: the events of this process's shard. A second consumer of
    /// one shard is refused.
    async fn subscribe_events(&self) -> Result<Subscription<BusEvent>, BusError>;

    /// Cancels consumers and closes connections, within a bounded time
    /// even when the transport is dead. Idempotent.
    async fn close(&self);

    /// The services registered with this process (a gateway on the gRPC
    /// transport; empty elsewhere).
    fn registrations(&self) -> Vec<Registration> {
        Vec::new()
    }

    /// What the debug console shows of the transport.
    fn state(&self) -> BusState {
        BusState {
            up: true,
            ..BusState::default()
        }
    }
}

/// The transport as the debug console shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BusState {
    /// Whether it takes messages now (false while down or recovering).
    pub up: bool,
    /// Connections torn down and rebuilt because their recovery stalled.
    pub rebuilds: u64,
    /// Pushes this process dropped because its buffer was full (a
    /// transport that delivers pushes without back-pressure: Redis).
    pub pushes_dropped: u64,
    /// Times a push subscription's connection dropped and was made again
    /// (Redis disconnects a subscriber that falls behind); what was pushed
    /// meanwhile is lost.
    pub subscriber_disconnects: u64,
}

/// A service registered with a gRPC gateway, as the console shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Registration {
    pub name: String,
    /// Where the gateway calls it.
    pub address: String,
    pub shard: u16,
    /// The cmds it owns (empty: every cmd no other service owns).
    pub cmds: Vec<u32>,
    /// Whether it hears its players' connects and closes.
    pub events: bool,
    /// Since it registered.
    #[serde(with = "warren_kit::duration::ms")]
    pub registered: Duration,
    /// Since its last renewal.
    #[serde(with = "warren_kit::duration::ms")]
    pub lease_age: Duration,
    /// Whether its lease holds.
    pub live: bool,
    /// Calls made to it, and the messages they carried.
    pub calls: u64,
    pub messages: u64,
    pub in_flight: usize,
    /// Calls that failed, and messages refused before a call (its queue
    /// full, or its calls too slow).
    pub errors: u64,
    pub refused: u64,
}

/// `n` listeners for one outcome: `done` hears the first failure among
/// them, or `Ok` once all succeeded.
pub(crate) fn fan(done: Done, n: usize) -> Vec<Done> {
    struct Shared {
        left: usize,
        failure: Option<BusError>,
        done: Option<Done>,
    }
    let shared = std::sync::Arc::new(std::sync::Mutex::new(Shared {
        left: n,
        failure: None,
        done: Some(done),
    }));
    (0..n)
        .map(|_| {
            let shared = shared.clone();
            Box::new(move |outcome: Result<(), BusError>| {
                let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
                if let Err(e) = outcome
                    && s.failure.is_none()
                {
                    s.failure = Some(e);
                }
                s.left -= 1;
                if s.left == 0
                    && let Some(done) = s.done.take()
                {
                    let outcome = s.failure.take().map_or(Ok(()), Err);
                    drop(s);
                    done(outcome);
                }
            }) as Done
        })
        .collect()
}

/// Sends and waits until the bus has taken the message (or refused it).
pub async fn send_and_confirm(bus: &dyn Bus, to: Address, msg: Message) -> Result<(), BusError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    bus.send(
        to,
        msg,
        Box::new(move |outcome| {
            let _ = tx.send(outcome);
        }),
    )
    .await;
    rx.await.unwrap_or(Err(BusError::Closed))
}

/// Whether a networked bus is still open: after `close` every call is
/// refused [`BusError::Closed`], and the close itself runs once.
#[derive(Debug, Default)]
pub(crate) struct Open(std::sync::atomic::AtomicBool);

impl Open {
    /// `Err(Closed)` once the bus was closed.
    pub(crate) fn ensure(&self) -> Result<(), BusError> {
        if self.is_closed() {
            Err(BusError::Closed)
        } else {
            Ok(())
        }
    }

    /// A send's first test: the bus is open and `msg` may go to `to`
    /// ([`check`]).
    pub(crate) fn sendable(
        &self,
        to: &Address,
        msg: &Message,
        shards: u16,
    ) -> Result<(), BusError> {
        self.ensure().and_then(|()| check(to, msg, shards))
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Marks the bus closed; `false` if it already was (close once).
    pub(crate) fn close(&self) -> bool {
        !self.0.swap(true, std::sync::atomic::Ordering::AcqRel)
    }
}

/// `Err(Mismatch)` unless `msg` may go to `to` on a bus of `shards` shards.
pub(crate) fn check(to: &Address, msg: &Message, shards: u16) -> Result<(), BusError> {
    match (to, msg) {
        (Address::Shard(s), Message::Event(_)) if *s >= shards => Err(BusError::Mismatch(format!(
            "no shard {s}: there are {shards} (shards count from 0)"
        ))),
        (Address::Shard(_) | Address::EveryShard, Message::Event(_))
        | (Address::Connector(_) | Address::EveryConnector, Message::Push(_)) => Ok(()),
        _ => Err(BusError::Mismatch(format!(
            "a {} cannot go to {to:?}: events go to shards, pushes to connectors",
            match msg {
                Message::Event(_) => "event",
                Message::Push(_) => "push",
            }
        ))),
    }
}
