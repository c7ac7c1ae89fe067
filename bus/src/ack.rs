//! Acknowledging a delivery once it has been handled (the durable mode).
//!
//! In the default mode the bus acknowledges a message as soon as the
//! consumer has taken it, and every [`Ack`] is empty. In the durable mode
//! the consumer decides, after the handler has run: [`Ack::done`]
//! acknowledges, [`Ack::retry`] hands it back to the broker for another
//! attempt (the request queue's delivery limit counts attempts, and a
//! message past it goes to the dead-letter queue), [`Ack::reject`] sends it
//! to the dead-letter queue at once. An `Ack` dropped without a decision is
//! handed back (`retry`), so nothing is ever left unanswered.
//!
//! The methods never block: the broker is told from the runtime the
//! delivery came from, so a service thread may call them.

use lapin::{
    Acker,
    options::{BasicAckOptions, BasicNackOptions},
};
use tracing::debug;

#[derive(Debug, Default)]
pub struct Ack {
    // Boxed: an `Ack` travels inside every request, which should stay small.
    manual: Option<Box<(Acker, tokio::runtime::Handle)>>,
}

#[derive(Clone, Copy, Debug)]
enum Decision {
    Done,
    Retry,
    Reject,
}

impl Ack {
    /// Nothing to acknowledge (the bus did it, or there is no broker).
    pub fn none() -> Ack {
        Ack { manual: None }
    }

    pub(crate) fn manual(acker: Acker, rt: tokio::runtime::Handle) -> Ack {
        Ack {
            manual: Some(Box::new((acker, rt))),
        }
    }

    /// Whether the consumer must decide (the durable mode).
    pub fn is_manual(&self) -> bool {
        self.manual.is_some()
    }

    /// The message was handled: the broker forgets it.
    pub fn done(mut self) {
        self.decide(Decision::Done);
    }

    /// The handler failed: the broker delivers it again (up to the request
    /// queue's delivery limit, then to the dead-letter queue).
    pub fn retry(mut self) {
        self.decide(Decision::Retry);
    }

    /// The message can never be handled (it does not decode): straight to
    /// the dead-letter queue.
    pub fn reject(mut self) {
        self.decide(Decision::Reject);
    }

    fn decide(&mut self, decision: Decision) {
        let Some(manual) = self.manual.take() else {
            return;
        };
        let (acker, rt) = *manual;
        rt.spawn(async move {
            let result = match decision {
                Decision::Done => acker.ack(BasicAckOptions::default()).await,
                Decision::Retry => {
                    acker
                        .nack(BasicNackOptions {
                            multiple: false,
                            requeue: true,
                        })
                        .await
                }
                Decision::Reject => {
                    acker
                        .nack(BasicNackOptions {
                            multiple: false,
                            requeue: false,
                        })
                        .await
                }
            };
            // A delivery of a channel that has since died cannot be
            // acknowledged; the broker delivers it again anyway.
            if let Err(e) = result {
                debug!(?decision, error = %e, "acknowledgement not sent (channel gone?)");
            }
        });
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        self.decide(Decision::Retry);
    }
}
