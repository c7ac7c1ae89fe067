//! The RabbitMQ side of the batcher: writes a batch's body to the exchange
//! its address names, on the publishing channel (publisher confirms on).

use async_trait::async_trait;
use lapin::{BasicProperties, options::BasicPublishOptions, types::ShortString};
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
        let lost = self.health.next_loss();
        let link = self.health.publish.link();
        let Some(channel) = link.channel.as_ref() else {
            return Err(BusError::Unavailable("no publishing channel".into()));
        };
        let publish = channel.basic_publish(
            exchange.clone(),
            key,
            BasicPublishOptions::default(),
            &body,
            properties,
        );
        let mut lost = Box::pin(lost);
        let confirm = tokio::select! {
            written = publish => written.map_err(unavailable)?,
            _ = &mut lost => return Err(BusError::Unavailable(
                "the connection to RabbitMQ was lost while writing".into(),
            )),
        };
        Ok(Box::pin(async move {
            tokio::select! {
                confirmed = confirm => match confirmed {
                    Ok(c) if c.is_nack() => Err(BusError::Rejected(
                        "the broker refused the message (queue full?)".into(),
                    )),
                    Ok(_) => Ok(()),
                    Err(e) => Err(unavailable(e)),
                },
                _ = lost => Err(BusError::Unavailable(
                    "the connection to RabbitMQ was lost before the broker confirmed".into(),
                )),
            }
        }))
    }

    fn batches(&self, to: &Address) -> bool {
        !(self.durable && to.is_shard())
    }

    fn ready(&self) -> Result<(), BusError> {
        self.health.ready()
    }
}
