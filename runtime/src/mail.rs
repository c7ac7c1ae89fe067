//! What travels in a service's mailbox: the runtime's own messages as one
//! enum, and other services' mail.

use std::any::Any;

use tokio::sync::oneshot;
use warren_proto::BusEvent;

use crate::{Request, SessionEvent};

pub(crate) enum Mail {
    /// A client request for a cmd the service owns.
    Request(Request),
    /// A player came or went (for services that want session events).
    Session(SessionEvent),
    /// Mail from another service or an operator's tool. The sender checked
    /// that it is of the service's `Service::Mail` type (see
    /// `MailboxTx::send_mail`), so the service thread's downcast holds.
    Peer {
        from: &'static str,
        msg: Box<dyn Any + Send>,
    },
    /// The runtime's own messages.
    Control(Control),
}

pub(crate) enum Control {
    /// A connector's lifecycle event for the sessions keeper; `recorded`
    /// fires once its `lifecycle` callback returned.
    Lifecycle {
        event: BusEvent,
        recorded: oneshot::Sender<()>,
    },
    /// The debug console asks for the service's summary.
    Inspect(oneshot::Sender<serde_json::Value>),
    /// The process stops: handle nothing more, run `stop`, end the thread.
    Stop,
}
