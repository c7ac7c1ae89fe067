//! A stream of decoded messages from the bus, bounded by the channel it reads.

use tokio::sync::{mpsc, oneshot};

/// Messages delivered to one consumer, in order. Dropping it cancels the
/// consumer on the bus.
#[derive(Debug)]
pub struct Subscription<T> {
    rx: mpsc::Receiver<T>,
    _cancel: Option<oneshot::Sender<()>>,
}

impl<T> Subscription<T> {
    pub(crate) fn new(rx: mpsc::Receiver<T>, cancel: Option<oneshot::Sender<()>>) -> Self {
        Subscription {
            rx,
            _cancel: cancel,
        }
    }

    /// The next message, or `None` once the bus has closed this consumer.
    pub async fn next(&mut self) -> Option<T> {
        self.rx.recv().await
    }
}
