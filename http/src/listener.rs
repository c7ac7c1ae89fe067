//! Where an HTTP API listens: a bound TCP listener, plain or with TLS,
//! as an [`axum::serve::Listener`].
//!
//! With TLS, handshakes do not hold up the accept loop
//! ([`warren_kit::tls::accepting`]).

use std::{io, net::SocketAddr, time::Duration};

use tokio::{net::TcpListener, sync::mpsc};
use warren_kit::tls::{Stream, Tls, accepting};

/// A listener for `axum::serve`: plain, or TLS with [`Listener::tls`].
#[derive(Debug)]
pub struct Listener {
    local: SocketAddr,
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Plain(TcpListener),
    Tls(mpsc::Receiver<(Stream, SocketAddr)>),
}

impl Listener {
    /// `listener` as it is, or with TLS when `tls` is given.
    pub fn new(listener: TcpListener, tls: Option<Tls>) -> io::Result<Listener> {
        let local = listener.local_addr()?;
        let inner = match tls {
            None => Inner::Plain(listener),
            Some(tls) => Inner::Tls(accepting(listener, Some(tls))),
        };
        Ok(Listener { local, inner })
    }

    /// Whether connections are TLS.
    pub fn tls(&self) -> bool {
        matches!(self.inner, Inner::Tls(_))
    }

    /// `http` or `https`, for the URL this listener serves.
    pub fn scheme(&self) -> &'static str {
        if self.tls() { "https" } else { "http" }
    }
}

impl axum::serve::Listener for Listener {
    type Io = Stream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Stream, SocketAddr) {
        match &mut self.inner {
            Inner::Plain(listener) => loop {
                match TcpListener::accept(listener).await {
                    Ok((tcp, peer)) => {
                        let _ = tcp.set_nodelay(true);
                        return (Stream::Plain(tcp), peer);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            },
            Inner::Tls(rx) => match rx.recv().await {
                Some(accepted) => accepted,
                // The accept task ended (it never does while the listener
                // lives): wait for shutdown.
                None => std::future::pending().await,
            },
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// The peer address of a connection, for `ConnectInfo<Peer>` (axum's own
/// `ConnectInfo<SocketAddr>` knows only its TCP listener): serve with
/// `router.into_make_service_with_connect_info::<Peer>()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, Listener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, Listener>) -> Self {
        Peer(*stream.remote_addr())
    }
}
