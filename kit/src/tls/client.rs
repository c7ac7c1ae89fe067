//! Warren's own TLS clients: the command line and login's logout
//! forwarding (HTTPS, [`client_agent`]) and the gRPC clients of gold,
//! config-svc and the gRPC gateway ([`client_config`]). Each reads its
//! files when it is called, so a renewed certificate needs no restart.

use std::{path::Path, sync::Arc, time::Duration};

use rustls::{
    ClientConfig, RootCertStore,
    crypto::ring,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
};

use super::{TlsError, TlsSettings, file_error};

/// The certificates in the PEM file `path`.
pub(super) fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no certificate in the file"));
    }
    Ok(certs)
}

/// The certificates in `path` as a trust store.
pub(super) fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certs(path)? {
        roots
            .add(cert)
            .map_err(|e| file_error(path, format!("not a usable authority: {e}")))?;
    }
    Ok(roots)
}

/// What Warren's clients trust: `tls.ca`, else exactly `tls.cert`.
fn trusted(settings: &TlsSettings) -> Option<&Path> {
    settings.ca.as_deref().or(settings.cert.as_deref())
}

/// An HTTP client for Warren's own endpoints (`http://` or `https://`),
/// every call bounded by `timeout`, statuses not turned into errors. Over
/// TLS it trusts `tls.ca`, else exactly `tls.cert`; with neither, only
/// plain `http://` URLs work.
pub fn client_agent(settings: &TlsSettings, timeout: Duration) -> Result<ureq::Agent, TlsError> {
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout));
    if let Some(path) = trusted(settings) {
        let certs = certs(path)?
            .iter()
            .map(|c| ureq::tls::Certificate::from_der(c).to_owned())
            .collect();
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)))
            .unversioned_rustls_crypto_provider(Arc::new(ring::default_provider()))
            .build();
        config = config.tls_config(tls);
    }
    Ok(config.build().into())
}

/// The TLS of a gRPC client of Warren's services (HTTP/2): it trusts
/// `tls.ca`, else exactly `tls.cert`, and shows `tls.client_cert` and
/// `tls.client_key` (else `tls.cert` and `tls.key`) to a server that asks
/// for a certificate (mutual TLS).
pub fn client_config(settings: &TlsSettings) -> Result<ClientConfig, TlsError> {
    let Some(path) = trusted(settings) else {
        return Err(TlsError::NoTrust);
    };
    let roots = roots(path)?;
    let builder = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots);
    let identity = match (&settings.client_cert, &settings.client_key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => settings.cert.as_ref().zip(settings.key.as_ref()),
        _ => return Err(TlsError::HalfClient),
    };
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = certs(cert)?;
            let der = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, e))?;
            builder
                .with_client_auth_cert(chain, der)
                .map_err(|e| file_error(key, format!("does not go with {}: {e}", cert.display())))?
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}
