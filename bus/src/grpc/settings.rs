//! What a process on the gRPC gateway needs to know.

use std::{net::SocketAddr, time::Duration};

use warren_kit::tls::{Tls, TlsSettings};

use crate::{BusError, batch::MAX_BATCH_ITEMS};

/// The gRPC gateway's settings (`bus.grpc`).
#[derive(Clone, Debug)]
pub struct GrpcSettings {
    /// Where a connector or HTTP call gateway serves `Gateway`.
    pub gateway: SocketAddr,
    /// Where a game serves `Upstream` (port 0: any free one).
    pub listen: SocketAddr,
    /// The address a game gives the gateways for `Deliver`; empty:
    /// `http://` (`https://` with TLS) and the address it bound (set it
    /// when `listen` is a wildcard or behind NAT, and with TLS to the
    /// name its certificate carries).
    pub advertise: String,
    /// Every gateway a game registers with (`http://host:port`, or
    /// `https://` for TLS).
    pub gateways: Vec<String>,
    /// Game shards in the deployment.
    pub shards: u16,
    /// The shard a game process serves.
    pub shard: u16,
    /// Refused on this transport (checked here).
    pub durable: bool,
    /// Calls at once towards one peer.
    pub in_flight: usize,
    /// Every message is answered within this of its send.
    pub deadline: Duration,
    /// Messages a process holds between the calls it took and its
    /// consumer; a call that does not fit is refused (`overloaded`).
    pub buffer: usize,
    /// Messages queued towards one peer; beyond it a send is refused at
    /// once (`overloaded`).
    pub queue: usize,
    /// A registration lapses this long after its last renewal.
    pub lease: Duration,
    /// The process's certificate: `Gateway` and `Upstream` serve TLS
    /// with it on any address but loopback (mutual with `tls.client_ca`).
    pub tls: Option<Tls>,
    /// What this process's calls to an `https://` gateway or service
    /// trust, and the certificate they show (`tls.ca`, `tls.client_cert`).
    pub client_tls: TlsSettings,
}

impl GrpcSettings {
    /// The defaults: a gateway on 127.0.0.1:7105, a game on any free
    /// loopback port registering with it.
    pub fn new() -> Self {
        GrpcSettings {
            gateway: SocketAddr::from(([127, 0, 0, 1], 7105)),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertise: String::new(),
            gateways: vec!["http://127.0.0.1:7105".into()],
            shards: 1,
            shard: 0,
            durable: false,
            in_flight: 4,
            deadline: Duration::from_secs(2),
            buffer: 16_384,
            queue: 4096,
            lease: Duration::from_secs(3),
            tls: None,
            client_tls: TlsSettings::default(),
        }
    }

    /// `Mismatch` for settings this transport cannot keep.
    pub(crate) fn check(&self) -> Result<(), BusError> {
        if self.durable {
            return Err(BusError::Mismatch(
                "bus.durable = true needs a transport that keeps messages (bus.kind = \"amqp\" \
                 or \"redis\"): the gRPC gateway hands each request straight to its service's \
                 memory, and nothing keeps it across a restart"
                    .into(),
            ));
        }
        if self.shards == 0 || self.shard >= self.shards {
            return Err(BusError::Mismatch(format!(
                "game.shard = {} but bus.shards = {}: shards count from 0",
                self.shard, self.shards
            )));
        }
        if self.buffer < MAX_BATCH_ITEMS {
            return Err(BusError::Mismatch(format!(
                "bus.grpc.buffer = {} is smaller than one batch ({MAX_BATCH_ITEMS} messages)",
                self.buffer
            )));
        }
        if self.in_flight == 0 || self.queue == 0 || self.deadline.is_zero() {
            return Err(BusError::Mismatch(
                "bus.grpc.in_flight, bus.grpc.queue and bus.grpc.deadline_ms must be above 0"
                    .into(),
            ));
        }
        if self.lease < Duration::from_millis(300) {
            return Err(BusError::Mismatch(
                "bus.grpc.lease_ms must be at least 300 (renewed every third of it)".into(),
            ));
        }
        Ok(())
    }
}

impl Default for GrpcSettings {
    fn default() -> Self {
        GrpcSettings::new()
    }
}
