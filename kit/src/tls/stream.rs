//! A connection, plain or TLS (accepted or dialled), and the accept loop
//! that runs TLS handshakes off the accept path.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{Semaphore, mpsc},
};

use super::Tls;

/// TLS handshakes in progress at once, per listener.
pub const MAX_HANDSHAKES: usize = 256;

/// The longest a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection, plain or TLS.
#[derive(Debug)]
pub enum Stream {
    Plain(TcpStream),
    /// Accepted by a TLS listener.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// Dialled to a TLS server (Warren's gRPC clients).
    Client(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    /// `tcp` as it is (no TLS), or after the TLS handshake.
    pub async fn accept(tcp: TcpStream, tls: Option<&Tls>) -> io::Result<Stream> {
        match tls {
            None => Ok(Stream::Plain(tcp)),
            Some(tls) => Ok(Stream::Tls(Box::new(tls.accept(tcp).await?))),
        }
    }
}

/// Accepts connections on `listener` (Nagle's algorithm off) and hands
/// each to the receiver: at once in plain text, or with `tls` after its
/// handshake. Handshakes run on tasks of their own, at most
/// [`MAX_HANDSHAKES`] at once (more connections wait in the kernel's
/// backlog), each within [`HANDSHAKE_TIMEOUT`]; one that fails or takes
/// longer is dropped and logged (at debug level, a warning on a gRPC
/// listener). Accepting stops when the
/// receiver is dropped.
pub fn accepting(listener: TcpListener, tls: Option<Tls>) -> mpsc::Receiver<(Stream, SocketAddr)> {
    let (tx, rx) = mpsc::channel(MAX_HANDSHAKES);
    tokio::spawn(accept_loop(listener, tls, tx));
    rx
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<Tls>,
    tx: mpsc::Sender<(Stream, SocketAddr)>,
) {
    let limit = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = tx.closed() => return,
        };
        let _ = tcp.set_nodelay(true);
        let Some(tls) = tls.clone() else {
            drop(permit);
            if tx.send((Stream::Plain(tcp), peer)).await.is_err() {
                return;
            }
            continue;
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            let done = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await;
            drop(permit);
            match done {
                Ok(Ok(stream)) => {
                    let _ = tx.send((Stream::Tls(Box::new(stream)), peer)).await;
                }
                Ok(Err(e)) if tls.warn_on_failure => {
                    tracing::warn!(%peer, error = %e, "TLS handshake failed (a Warren process with the wrong certificate or authority?)");
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

/// Calls `$method` on whichever stream `$self` holds.
macro_rules! each {
    ($self:expr, $s:ident => $call:expr) => {
        match $self {
            Stream::Plain($s) => $call,
            Stream::Tls($s) => {
                let $s = $s.as_mut();
                $call
            }
            Stream::Client($s) => {
                let $s = $s.as_mut();
                $call
            }
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self.get_mut(), s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self.get_mut(), s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self.get_mut(), s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self.get_mut(), s => Pin::new(s).poll_shutdown(cx))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each!(self.get_mut(), s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
            Stream::Client(s) => s.is_write_vectored(),
        }
    }
}
