//! The bus between connector and game.
//!
//! [`Bus`] is the one interface both sides use; which implementation runs is
//! decided once, at start, by whoever builds it:
//! - [`AmqpBus`]: RabbitMQ through lapin, for production (see
//!   `rabbitmq/definitions.json` for the topology it declares);
//! - [`MemoryBus`]: tokio channels in one process, for the embedded default
//!   and unit tests.
//!
//! Connector code publishes [`BusEvent`]s and consumes [`BusPush`]es for its
//! own id; game code does the reverse. Neither knows which bus it is on.

mod ack;
mod amqp;
pub mod batch;
mod memory;
mod subscription;

use std::{fmt, future::Future, pin::Pin};

use async_trait::async_trait;
use futures_util::FutureExt;
use warren_proto::{BusEvent, BusPush, ConnectorId};

pub use ack::Ack;
pub use amqp::{AmqpBus, AmqpSettings, Topology};
pub use memory::MemoryBus;
pub use subscription::Subscription;

/// Where a push is published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// The push queue of one connector.
    Connector(ConnectorId),
    /// Every connector's push queue, once each.
    AllConnectors,
}

/// Resolves when the bus has taken responsibility for a published message
/// (a publisher confirm on RabbitMQ; at once in process). Publishing in order
/// and awaiting confirms later keeps order without paying a round trip each.
pub type Confirm = Pin<Box<dyn Future<Output = Result<(), BusError>> + Send>>;

/// Hears why the bus did not take a message handed to [`Bus::send_event`].
/// It runs on a bus task: it must not block.
pub type OnRefused = Box<dyn FnOnce(BusError) + Send>;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The bus cannot be reached now (connection lost, channel closed).
    #[error("the bus is unavailable: {0}")]
    Unavailable(String),
    /// The bus refused the message (queue full, negative confirm).
    #[error("the bus refused the message: {0}")]
    Rejected(String),
    /// A second consumer for something that has exactly one.
    #[error("{0}")]
    AlreadyConsumed(String),
    /// This process's shard settings do not fit the bus.
    #[error("{0}")]
    Mismatch(String),
    #[error("the bus is closed")]
    Closed,
}

/// The message bus. Every method is safe to call from many tasks at once.
#[async_trait]
pub trait Bus: Send + Sync + fmt::Debug {
    /// Connector side: hand an event to the game. A request goes to the
    /// shard that owns its uid; Connect, Close, Error and Alive to every
    /// shard.
    async fn publish_event(&self, event: &BusEvent) -> Result<Confirm, BusError>;

    /// Connector side: [`Bus::publish_event`] without a confirm to wait
    /// for. `refused` runs if the bus does not take the event after all
    /// (a negative confirm, a lost connection); when the event is taken
    /// nothing runs, so a request costs nobody a wake-up for its confirm.
    /// An error returned here means the event was not queued, and `refused`
    /// is dropped unrun.
    async fn send_event(&self, event: &BusEvent, refused: OnRefused) -> Result<(), BusError> {
        let confirm = self.publish_event(event).await?;
        detach(confirm, refused);
        Ok(())
    }

    /// Game side: hand a request to another shard (the owner of what it
    /// touches, e.g. a chat room).
    async fn forward_event(&self, event: &BusEvent, shard: u16) -> Result<Confirm, BusError>;

    /// How many game shards share the bus (1 in process).
    fn shards(&self) -> u16;

    /// Connector side: the pushes addressed to this connector (its own queue,
    /// plus broadcasts).
    async fn subscribe_pushes(
        &self,
        connector: &ConnectorId,
    ) -> Result<Subscription<BusPush>, BusError>;

    /// Game side: the events from every connector.
    async fn subscribe_events(&self) -> Result<Subscription<BusEvent>, BusError>;

    /// Game side: hand a push to one connector or to all of them.
    async fn publish_push(&self, route: &Route, push: &BusPush) -> Result<Confirm, BusError>;

    /// Cancels consumers and closes connections. Idempotent.
    async fn close(&self);
}

/// Runs `refused` if `confirm` fails: at once if it is already decided (in
/// process it always is), else on a task of its own.
pub(crate) fn detach(mut confirm: Confirm, refused: OnRefused) {
    match confirm.as_mut().now_or_never() {
        Some(Ok(())) => {}
        Some(Err(e)) => refused(e),
        None => {
            tokio::spawn(async move {
                if let Err(e) = confirm.await {
                    refused(e);
                }
            });
        }
    }
}

pub(crate) fn confirmed() -> Confirm {
    Box::pin(std::future::ready(Ok(())))
}
