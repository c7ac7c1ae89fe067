//! The one client of gold, for login, the game's wallet and `warren ban`:
//! on a lazily connected channel (callers start, and serve what does not
//! need gold, while gold is down; `warren_kit::grpc::lazy` makes one,
//! plain or TLS), a deadline on every call, and what a failure means to
//! the caller.

use std::time::Duration;

use tonic::{Code, Status, transport::Channel};

use super::gold_client::GoldClient;

/// Gold, reached at a URL, every call bounded by a deadline. Cheap to
/// clone.
#[derive(Clone, Debug)]
pub struct Gold {
    client: GoldClient<Channel>,
    timeout: Duration,
}

/// What a failed call to gold means for its caller.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure<'a> {
    /// Gold refused it for a reason the player should hear
    /// (`insufficient_funds`, …): the status's `warren-reason`.
    Reason(&'a str),
    /// The request was malformed (gold's `InvalidArgument`), with its message.
    BadRequest(&'a str),
    /// The name is taken (gold's `AlreadyExists`).
    Exists,
    /// Gold could not be reached, or did not answer in time: try again.
    Unavailable,
    /// Anything else: a bug, logged by the caller, `internal` to the client.
    Other,
}

impl Gold {
    /// Gold on `channel`, every call bounded by `timeout`.
    pub fn new(channel: Channel, timeout: Duration) -> Gold {
        Gold {
            client: GoldClient::new(channel),
            timeout,
        }
    }

    /// The generated client, to call with [`Gold::request`]s.
    pub fn client(&self) -> GoldClient<Channel> {
        self.client.clone()
    }

    /// `message` as a request bounded by the deadline.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(message);
        r.set_timeout(self.timeout);
        r
    }

    /// The deadline of every call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// What `status` (from gold) means to the caller.
pub fn failure(status: &Status) -> Failure<'_> {
    // The connection failed (gold down, or a TLS handshake it refused,
    // which TLS 1.3 reports only on the first read): gold never answered.
    let transport = std::error::Error::source(status)
        .is_some_and(|e| e.downcast_ref::<tonic::transport::Error>().is_some());
    if transport {
        return Failure::Unavailable;
    }
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => Failure::Unavailable,
        Code::InvalidArgument => Failure::BadRequest(status.message()),
        Code::AlreadyExists => Failure::Exists,
        _ => match super::reason(status) {
            "" => Failure::Other,
            reason => Failure::Reason(reason),
        },
    }
}
