//! gRPC between Warren's processes (gold, config-svc, the gRPC gateway),
//! plain or TLS:
//!
//! - [`Listener`]: a server's accepted connections for tonic's
//!   `serve_with_incoming*`, Nagle's algorithm off (tonic ignores
//!   `Server::tcp_nodelay` there: without it a small reply waits for the
//!   peer's delayed ack, 40 ms tails). With a certificate, TLS on every
//!   address but loopback, mutual when `tls.client_ca` is set.
//! - [`Connector`] and [`lazy`]: a client's connections, plain for
//!   `http://` URLs and TLS for `https://` ones ([`client_config`]: trust
//!   `tls.ca`, show `tls.client_cert` when asked). The files are read on
//!   each connection, so a renewed certificate needs no restart.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tonic::transport::{Channel, Endpoint, Uri, server::TcpConnectInfo};

use crate::tls::{Stream, Tls, TlsSettings, accepting, client_config};

/// Where a gRPC server listens: a bound TCP listener, with TLS when the
/// process has a certificate and the address is not loopback.
#[derive(Debug)]
pub struct Listener {
    tcp: TcpListener,
    local: SocketAddr,
    tls: Option<Tls>,
}

impl Listener {
    /// `tcp`, with TLS when `tls` is given, unless it listens on
    /// loopback: a loopback listener serves only this machine's processes
    /// (the all-in-one's own gold and config-svc among them), whose URLs
    /// name an address no certificate needs to carry.
    pub fn new(tcp: TcpListener, tls: Option<&Tls>) -> io::Result<Listener> {
        let local = tcp.local_addr()?;
        let tls = serves(local, tls);
        Ok(Listener { tcp, local, tls })
    }

    /// The TLS it serves, if any.
    pub fn tls(&self) -> Option<&Tls> {
        self.tls.as_ref()
    }

    /// `http` or `https`, for the URL this listener serves.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The accepted connections, after their handshakes; accepting stops
    /// when this is dropped.
    pub fn incoming(self) -> Incoming {
        Incoming(accepting(self.tcp, self.tls))
    }
}

/// The TLS a gRPC listener on `addr` serves given the process's `tls`:
/// none on loopback (see [`Listener::new`]), else `tls` for Warren's
/// services ([`Tls::for_services`]).
pub fn serves(addr: SocketAddr, tls: Option<&Tls>) -> Option<Tls> {
    tls.filter(|_| !addr.ip().is_loopback())
        .map(Tls::for_services)
}

/// A gRPC server's accepted connections.
#[derive(Debug)]
pub struct Incoming(mpsc::Receiver<(Stream, SocketAddr)>);

impl futures_core::Stream for Incoming {
    type Item = io::Result<Conn>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0
            .poll_recv(cx)
            .map(|accepted| accepted.map(|(stream, peer)| Ok(Conn { stream, peer })))
    }
}

/// One accepted connection, telling tonic its peer
/// (`Request::remote_addr`).
#[derive(Debug)]
pub struct Conn {
    stream: Stream,
    peer: SocketAddr,
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        let local_addr = match &self.stream {
            Stream::Plain(s) => s.local_addr().ok(),
            Stream::Tls(s) => s.get_ref().0.local_addr().ok(),
            Stream::Client(s) => s.get_ref().0.local_addr().ok(),
        };
        TcpConnectInfo {
            local_addr,
            remote_addr: Some(self.peer),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// How a gRPC client of Warren's services connects: TCP (Nagle's
/// algorithm off), then TLS for an `https://` URL. For tonic's
/// `Endpoint::connect_with_connector*`.
#[derive(Clone, Debug)]
pub struct Connector {
    tls: Arc<TlsSettings>,
}

impl Connector {
    pub fn new(tls: &TlsSettings) -> Connector {
        Connector {
            tls: Arc::new(tls.clone()),
        }
    }
}

type Connecting = Pin<Box<dyn Future<Output = io::Result<TokioIo<Stream>>> + Send>>;

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Connecting {
        let tls = self.tls.clone();
        Box::pin(async move { connect(&uri, &tls).await.map(TokioIo::new) })
    }
}

async fn connect(uri: &Uri, tls: &TlsSettings) -> io::Result<Stream> {
    let secure = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        other => {
            return Err(io::Error::other(format!(
                "{uri}: the scheme is {other:?}, not http or https"
            )));
        }
    };
    let host = uri
        .host()
        .ok_or_else(|| io::Error::other(format!("{uri}: no host")))?;
    // An IPv6 literal comes bracketed.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let tcp = TcpStream::connect((host, port)).await?;
    tcp.set_nodelay(true)?;
    if !secure {
        return Ok(Stream::Plain(tcp));
    }
    let config = client_config(tls).map_err(io::Error::other)?;
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| io::Error::other(format!("{uri}: {e}")))?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    Ok(Stream::Client(Box::new(stream)))
}

/// A channel to `url` (`http://` or `https://`), connected on first use
/// and again after a failure, each attempt bounded by `connect_timeout`.
pub fn lazy(url: &str, tls: &TlsSettings, connect_timeout: Duration) -> Result<Channel, String> {
    Ok(endpoint(url)?
        .connect_timeout(connect_timeout)
        .connect_with_connector_lazy(Connector::new(tls)))
}

/// `url` as an endpoint, or why it is not one.
pub fn endpoint(url: &str) -> Result<Endpoint, String> {
    let endpoint =
        Endpoint::from_shared(url.to_owned()).map_err(|e| format!("bad URL {url:?}: {e}"))?;
    match endpoint.uri().scheme_str() {
        Some("http" | "https") => Ok(endpoint),
        _ => Err(format!(
            "bad URL {url:?}: it starts with http:// or https://"
        )),
    }
}
