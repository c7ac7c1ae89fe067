//! Acknowledging a delivery once it has been handled (the durable mode),
//! whatever the transport.
//!
//! In the default mode the bus acknowledges a message as soon as the
//! consumer has taken it, and every [`Ack`] is empty. In the durable mode
//! the consumer decides: [`Ack::done`] acknowledges, [`Ack::retry`] hands
//! the message back for another attempt (the transport counts attempts,
//! and a message past its delivery limit goes to the dead-letter queue),
//! [`Ack::reject`] sends it to the dead-letter queue at once. An `Ack`
//! dropped without a decision is a `retry`, so nothing is ever left
//! unanswered.
//!
//! The game decides only once everything the handler sent (its reply,
//! pushes, forwards) has been confirmed by the bus: a process that dies
//! before that has acknowledged nothing, and the request is delivered
//! again.
//!
//! A transport offers the mode by implementing [`Acknowledger`]; the
//! methods never block, so a service thread may call them.

/// What becomes of a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Handled: the transport forgets it.
    Done,
    /// Deliver it again (up to the delivery limit).
    Retry,
    /// Never deliverable: to the dead-letter queue.
    Reject,
}

/// A transport's half of an [`Ack`]: tells the transport the decision,
/// without blocking.
pub trait Acknowledger: Send + 'static {
    fn decide(self: Box<Self>, decision: Decision);
}

#[derive(Default)]
pub struct Ack {
    manual: Option<Box<dyn Acknowledger>>,
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ack")
            .field("manual", &self.manual.is_some())
            .finish()
    }
}

impl Ack {
    /// Nothing to acknowledge (the bus did it, or there is nothing to keep).
    pub fn none() -> Ack {
        Ack { manual: None }
    }

    /// An acknowledgement the consumer owes the transport.
    pub fn manual(acknowledger: Box<dyn Acknowledger>) -> Ack {
        Ack {
            manual: Some(acknowledger),
        }
    }

    /// Whether the consumer must decide (the durable mode).
    pub fn is_manual(&self) -> bool {
        self.manual.is_some()
    }

    /// The message was handled: the transport forgets it.
    pub fn done(mut self) {
        self.decide(Decision::Done);
    }

    /// The handler failed: delivered again (up to the delivery limit, then
    /// to the dead-letter queue).
    pub fn retry(mut self) {
        self.decide(Decision::Retry);
    }

    /// The message can never be handled (it does not decode): straight to
    /// the dead-letter queue.
    pub fn reject(mut self) {
        self.decide(Decision::Reject);
    }

    /// Settles it with `decision`.
    pub fn settle(mut self, decision: Decision) {
        self.decide(decision);
    }

    fn decide(&mut self, decision: Decision) {
        if let Some(manual) = self.manual.take() {
            manual.decide(decision);
        }
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        self.decide(Decision::Retry);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    struct Record(Arc<Mutex<Vec<Decision>>>);

    impl Acknowledger for Record {
        fn decide(self: Box<Self>, decision: Decision) {
            self.0.lock().expect("lock").push(decision);
        }
    }

    #[test]
    fn each_ack_is_settled_once_and_a_dropped_one_is_a_retry() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        Ack::manual(Box::new(Record(seen.clone()))).done();
        drop(Ack::manual(Box::new(Record(seen.clone()))));
        Ack::manual(Box::new(Record(seen.clone()))).reject();
        Ack::none().done();
        assert_eq!(
            *seen.lock().expect("lock"),
            vec![Decision::Done, Decision::Retry, Decision::Reject]
        );
    }
}
