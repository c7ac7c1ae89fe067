//! TLS for every listener of a Warren process (rustls, no OpenSSL).
//!
//! - [`TlsSettings`]: the certificate chain and key (PEM files).
//! - [`Tls`]: a server configuration whose certificate is **reloaded** when
//!   its files change (looked at every [`RELOAD_EVERY`]): a renewed
//!   certificate is served to new connections without a restart, and the
//!   connections already open keep theirs. A file that does not load keeps
//!   the old certificate in service, and the error is logged.
//! - [`Stream`]: a plain or a TLS connection, one type for the code above.
//! - [`check_plain`]: plain text is for loopback; on any other address a
//!   listener needs TLS, or `tls.allow_plain` said explicitly.

use std::{
    io,
    net::SocketAddr,
    path::{Path, PathBuf},
    pin::Pin,
    sync::{Arc, RwLock},
    task::{Context, Poll},
    time::{Duration, SystemTime},
};

use rustls::{
    ServerConfig,
    crypto::ring,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

/// How often the certificate files are looked at for a change.
pub const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// TLS for the listeners of one process.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// The certificate chain (PEM), leaf first. Unset: plain text.
    pub cert: Option<PathBuf>,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// What Warren's own clients (the command line, login's logout
    /// forwarding) trust when they call its HTTPS endpoints: this
    /// authority (PEM). Unset: exactly `cert` (a self-signed certificate).
    pub ca: Option<PathBuf>,
    /// Allow plain text on an address that is not loopback (behind a TLS
    /// proxy, say). Off: such a listener refuses to start.
    pub allow_plain: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {why}")]
    File { path: PathBuf, why: String },
    #[error("tls.cert and tls.key go together: set both, or neither")]
    Half,
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(String),
    #[error(
        "{what} would listen in plain text on {addr}, which is not loopback: give it a \
         certificate (tls.cert and tls.key), or set tls.allow_plain = true if a TLS proxy \
         stands in front"
    )]
    PlainInPublic { what: String, addr: SocketAddr },
}

/// Refuses a plain-text listener of `what` on `addr` unless it is loopback
/// or `settings` allows it.
pub fn check_plain(
    what: &str,
    addr: SocketAddr,
    tls: Option<&Tls>,
    settings: &TlsSettings,
) -> Result<(), TlsError> {
    if tls.is_some() || addr.ip().is_loopback() || settings.allow_plain {
        return Ok(());
    }
    Err(TlsError::PlainInPublic {
        what: what.to_owned(),
        addr,
    })
}

fn file_error(path: &Path, why: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_owned(),
        why: why.to_string(),
    }
}

/// Loads a chain and key into a signing key rustls can serve.
fn load_key(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_error(cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(cert, e))?;
    if chain.is_empty() {
        return Err(file_error(cert, "no certificate in the file"));
    }
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, e))?;
    let signing = ring::sign::any_supported_type(&der).map_err(|e| file_error(key, e))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| file_error(key, format!("does not match the certificate: {e}")))?;
    Ok(Arc::new(certified))
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The certificate in service, swapped when its files change.
#[derive(Debug)]
struct Reloading {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<(Arc<CertifiedKey>, [Option<SystemTime>; 2])>,
}

impl Reloading {
    fn stamps(&self) -> [Option<SystemTime>; 2] {
        [modified(&self.cert), modified(&self.key)]
    }

    /// Loads the files again if they changed since the last look.
    fn reload_if_changed(&self) {
        let stamps = self.stamps();
        let seen = self.current.read().unwrap_or_else(|p| p.into_inner()).1;
        if stamps == seen {
            return;
        }
        match load_key(&self.cert, &self.key) {
            Ok(key) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = (key, stamps);
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                // Keep serving the old one; say so once per change.
                self.current.write().unwrap_or_else(|p| p.into_inner()).1 = stamps;
                tracing::error!(error = %e, "the changed TLS certificate does not load; the old one stays in service");
            }
        }
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .0
                .clone(),
        )
    }
}

/// A server's TLS: cheap to clone; the certificate reloads by itself while
/// any clone lives.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    reloading: Arc<Reloading>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.reloading.cert)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// The TLS `settings` describe, or None for plain text (no cert).
    /// Starts watching the files (needs a tokio runtime).
    pub fn load(settings: &TlsSettings) -> Result<Option<Tls>, TlsError> {
        let (cert, key) = match (&settings.cert, &settings.key) {
            (None, None) => return Ok(None),
            (Some(cert), Some(key)) => (cert.clone(), key.clone()),
            _ => return Err(TlsError::Half),
        };
        let first = load_key(&cert, &key)?;
        let reloading = Arc::new(Reloading {
            current: RwLock::new((first, [modified(&cert), modified(&key)])),
            cert,
            key,
        });
        let provider = Arc::new(ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(reloading.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let tls = Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            reloading,
        };
        tokio::spawn(watch(Arc::downgrade(&tls.reloading)));
        Ok(Some(tls))
    }

    /// The TLS handshake on an accepted connection.
    pub async fn accept(&self, tcp: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        self.acceptor.accept(tcp).await
    }
}

async fn watch(reloading: std::sync::Weak<Reloading>) {
    let mut tick = tokio::time::interval(RELOAD_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(reloading) = reloading.upgrade() else {
            return;
        };
        reloading.reload_if_changed();
    }
}

/// An HTTP client for Warren's own endpoints (`http://` or `https://`),
/// every call bounded by `timeout`, statuses not turned into errors. Over
/// TLS it trusts `tls.ca`, else exactly `tls.cert`; with neither, only
/// plain `http://` URLs work.
pub fn client_agent(settings: &TlsSettings, timeout: Duration) -> Result<ureq::Agent, TlsError> {
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout));
    if let Some(roots) = settings.ca.as_ref().or(settings.cert.as_ref()) {
        let certs = CertificateDer::pem_file_iter(roots)
            .map_err(|e| file_error(roots, e))?
            .map(|c| {
                c.map(|c| ureq::tls::Certificate::from_der(&c).to_owned())
                    .map_err(|e| file_error(roots, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)))
            .unversioned_rustls_crypto_provider(Arc::new(ring::default_provider()))
            .build();
        config = config.tls_config(tls);
    }
    Ok(config.build().into())
}

/// A connection, plain or TLS.
#[derive(Debug)]
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
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

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_for_loopback_unless_allowed() {
        let settings = TlsSettings::default();
        let local = SocketAddr::from(([127, 0, 0, 1], 7000));
        let local6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 7000));
        let public = SocketAddr::from(([0, 0, 0, 0], 7000));
        assert!(check_plain("login", local, None, &settings).is_ok());
        assert!(check_plain("login", local6, None, &settings).is_ok());
        let refused = check_plain("login", public, None, &settings).unwrap_err();
        assert!(refused.to_string().contains("tls.allow_plain"), "{refused}");
        let allowed = TlsSettings {
            allow_plain: true,
            ..TlsSettings::default()
        };
        assert!(check_plain("login", public, None, &allowed).is_ok());
    }

    #[test]
    fn a_certificate_without_its_key_is_refused() {
        let half = TlsSettings {
            cert: Some("cert.pem".into()),
            ..TlsSettings::default()
        };
        assert!(matches!(Tls::load(&half), Err(TlsError::Half)));
        let missing = TlsSettings {
            cert: Some("/nonexistent/cert.pem".into()),
            key: Some("/nonexistent/key.pem".into()),
            ..TlsSettings::default()
        };
        let err = Tls::load(&missing).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/cert.pem"), "{err}");
    }
}
