//! TLS for every listener of a Warren process (rustls, no OpenSSL).
//!
//! - [`TlsSettings`]: the certificate chain and key (PEM files), and the
//!   authority of mutual TLS between Warren's processes.
//! - [`Tls`]: a server configuration whose certificate is **reloaded** when
//!   its files change (looked at every [`RELOAD_EVERY`]): a renewed
//!   certificate is served to new connections without a restart, and the
//!   connections already open keep theirs. A file that does not load keeps
//!   the old certificate in service, and the error is logged.
//! - [`Stream`]: a plain or a TLS connection, one type for the code above,
//!   and [`accepting`]: the accept loop with handshakes off its path.
//! - [`client_agent`] and [`client_config`]: Warren's own clients (HTTPS
//!   to the admin endpoints, gRPC to its services).
//! - [`check_plain`]: plain text is for loopback; on any other address a
//!   listener needs TLS, or `tls.allow_plain` said explicitly.

mod client;
mod stream;

pub use client::{client_agent, client_config};
pub use stream::{HANDSHAKE_TIMEOUT, MAX_HANDSHAKES, Stream, accepting};

use std::{
    io,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::{Duration, SystemTime},
};

use rustls::{
    ServerConfig,
    crypto::ring,
    pki_types::{PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier},
    sign::CertifiedKey,
};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
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
    /// forwarding, the gRPC clients of gold, config-svc and the gRPC
    /// gateway) trust when they call an `https://` URL: this authority
    /// (PEM). Unset: exactly `cert` (a self-signed certificate).
    pub ca: Option<PathBuf>,
    /// Mutual TLS between Warren's processes: the gRPC listeners (gold,
    /// config-svc, the gRPC gateway) accept only clients showing a
    /// certificate this authority (PEM) signed. Unset: any client. Read
    /// when the process starts.
    pub client_ca: Option<PathBuf>,
    /// The certificate Warren's gRPC clients show a server that asks for
    /// one (mutual TLS). Unset: `cert`.
    pub client_cert: Option<PathBuf>,
    /// Its private key. Unset: `key`.
    pub client_key: Option<PathBuf>,
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
    #[error("tls.client_cert and tls.client_key go together: set both, or neither")]
    HalfClient,
    #[error(
        "an https:// URL needs to know whom to trust: set tls.ca (the authority of Warren's \
         certificates) or tls.cert"
    )]
    NoTrust,
    #[error(
        "tls.client_ca is set, so the gRPC listeners need a certificate: set tls.cert and tls.key"
    )]
    MutualWithoutCert,
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
    let chain = client::certs(cert)?;
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
    /// For the gRPC listeners ([`Tls::for_services`]).
    services: TlsAcceptor,
    /// Whether a failed handshake is worth a warning: on a gRPC
    /// listener only Warren's own processes connect, and one that fails
    /// is misconfigured (on a public listener it is a scanner, or a
    /// player's network: debug level).
    pub(crate) warn_on_failure: bool,
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
            (None, None) if settings.client_ca.is_some() => {
                return Err(TlsError::MutualWithoutCert);
            }
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
        let config = |alpn: &[&[u8]], client_ca: Option<&Path>| {
            let provider = Arc::new(ring::default_provider());
            let builder = ServerConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            let builder = match client_ca {
                None => builder.with_no_client_auth(),
                Some(path) => {
                    let roots = Arc::new(client::roots(path)?);
                    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
                        .build()
                        .map_err(|e| file_error(path, e))?;
                    builder.with_client_cert_verifier(verifier)
                }
            };
            let mut config = builder.with_cert_resolver(reloading.clone());
            config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            Ok::<_, TlsError>(TlsAcceptor::from(Arc::new(config)))
        };
        let tls = Tls {
            acceptor: config(&[b"h2", b"http/1.1"], None)?,
            services: config(&[b"h2"], settings.client_ca.as_deref())?,
            warn_on_failure: false,
            reloading: reloading.clone(),
        };
        tokio::spawn(watch(Arc::downgrade(&reloading)));
        Ok(Some(tls))
    }

    /// The same certificate, for the gRPC listeners of Warren's own
    /// services: HTTP/2 only, and with `tls.client_ca` set, only clients
    /// whose certificate that authority signed (mutual TLS).
    pub fn for_services(&self) -> Tls {
        Tls {
            acceptor: self.services.clone(),
            warn_on_failure: true,
            ..self.clone()
        }
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
