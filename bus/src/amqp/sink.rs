//! The RabbitMQ side of the batcher: writes a batch's body to the exchange
//! its address names, on the publishing channel (publisher confirms on).

use std::{future::Future, time::Duration};

use async_trait::async_trait;
use lapin::{
    BasicProperties, Confirmation, PublisherConfirm, options::BasicPublishOptions,
    types::ShortString,
};
use tokio::time::Instant;
use tracing::warn;
use warren_proto::batch::BATCH_CONTENT_TYPE;

use super::{link::Health, topology::shard_key, unavailable};
use crate::{Address, BusError, Confirm, batch::Sink};

/// Writes the batcher's bodies to the broker, on the publishing channel
/// (publisher confirms on).
pub(super) struct AmqpSink {
    pub(super) health: Health,
    pub(super) requests_exchange: ShortString,
    pub(super) push_exchange: ShortString,
    pub(super) broadcast_exchange: ShortString,
    pub(super) durable: bool,
}

/// Durable mode: how long a message to a connector whose push queue is
/// missing (the connector is moving to another node, or restarting) is
/// published again, every [`RETURN_RETRY`], before it is dropped as it
/// would be without the durable mode. Beyond a connector's request
/// time-out (10 s by default), a reply has no one waiting for it.
const RETURNED_FOR: Duration = Duration::from_secs(10);
const RETURN_RETRY: Duration = Duration::from_millis(100);

/// One publish: where, what, and whether an unroutable message comes back.
struct Publish {
    exchange: ShortString,
    key: ShortString,
    body: Vec<u8>,
    properties: BasicProperties,
    mandatory: bool,
}

impl Publish {
    /// Writes it on the current publishing channel; the broker's confirm.
    async fn write(&self, health: &Health) -> Result<PublisherConfirm, BusError> {
        let lost = health.next_loss();
        let link = health.publish.link();
        let Some(channel) = link.channel.as_ref() else {
            return Err(BusError::Unavailable("no publishing channel".into()));
        };
        let publish = channel.basic_publish(
            self.exchange.clone(),
            self.key.clone(),
            BasicPublishOptions {
                mandatory: self.mandatory,
                ..Default::default()
            },
            &self.body,
            self.properties.clone(),
        );
        tokio::select! {
            written = publish => written.map_err(unavailable),
            _ = lost => Err(BusError::Unavailable(
                "the connection to RabbitMQ was lost while writing".into(),
            )),
        }
    }
}

/// How the broker answered one publish.
enum Answer {
    Taken,
    /// Unroutable (a mandatory publish came back).
    Returned,
}

async fn confirmed(
    confirm: PublisherConfirm,
    lost: impl Future<Output = ()>,
) -> Result<Answer, BusError> {
    tokio::select! {
        confirmed = confirm => match confirmed {
            Ok(c) if c.is_nack() => Err(BusError::Rejected(
                "the broker refused the message (queue full?)".into(),
            )),
            Ok(Confirmation::Ack(Some(_))) => Ok(Answer::Returned),
            Ok(_) => Ok(Answer::Taken),
            Err(e) => Err(unavailable(e)),
        },
        _ = lost => Err(BusError::Unavailable(
            "the connection to RabbitMQ was lost before the broker confirmed".into(),
        )),
    }
}

#[async_trait]
impl Sink for AmqpSink {
    async fn write(&self, to: &Address, body: Vec<u8>, parts: usize) -> Result<Confirm, BusError> {
        let (exchange, key) = match to {
            Address::Shard(s) => (&self.requests_exchange, ShortString::from(shard_key(*s))),
            Address::Connector(id) => (&self.push_exchange, ShortString::from(id.as_str())),
            Address::EveryConnector => (&self.broadcast_exchange, ShortString::from("")),
            Address::EveryShard => {
                return Err(BusError::Mismatch(
                    "a message to every shard is copied to each by the batcher".into(),
                ));
            }
        };
        let mut properties = BasicProperties::default();
        if parts > 1 {
            properties = properties.with_content_type(BATCH_CONTENT_TYPE.into());
        }
        if self.durable && to.is_shard() {
            // Persistent, one per message (acknowledged one by one).
            properties = properties.with_delivery_mode(2);
        }
        let publish = Publish {
            exchange: exchange.clone(),
            key,
            body,
            properties,
            // Durable mode: a reply to a connector whose push queue is
            // missing for a moment comes back, and is published again.
            mandatory: self.durable && matches!(to, Address::Connector(_)),
        };
        let health = self.health.clone();
        let lost = health.next_loss();
        let confirm = publish.write(&health).await?;
        Ok(Box::pin(async move {
            let mut answer = confirmed(confirm, lost).await?;
            let deadline = Instant::now() + RETURNED_FOR;
            while let Answer::Returned = answer {
                if Instant::now() >= deadline {
                    warn!(connector = %publish.key, "no push queue for this connector for {RETURNED_FOR:?}: its messages are dropped");
                    return Ok(());
                }
                tokio::time::sleep(RETURN_RETRY).await;
                let lost = health.next_loss();
                let confirm = publish.write(&health).await?;
                answer = confirmed(confirm, lost).await?;
            }
            Ok(())
        }))
    }

    fn batches(&self, to: &Address) -> bool {
        !(self.durable && to.is_shard())
    }

    fn ready(&self) -> Result<(), BusError> {
        self.health.ready()
    }
}
