//! TLS for tests: certificates made by the `openssl` command (test.sh
//! installs it), and a rustls client that trusts exactly them.

use std::{net::SocketAddr, path::Path, process::Command, sync::Arc};

use rustls::{
    ClientConfig, RootCertStore,
    crypto::ring,
    pki_types::{CertificateDer, ServerName, pem::PemObject},
};
use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, client::TlsStream};

/// A self-signed certificate for `localhost` and 127.0.0.1 (named `cn`,
/// so two differ) written to `dir/<file>.crt` and `dir/<file>.key`;
/// returns the two paths.
pub fn make_cert(dir: &Path, file: &str, cn: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (
        dir.join(format!("{file}.crt")),
        dir.join(format!("{file}.key")),
    );
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", &format!("/CN={cn}")])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        // A leaf, not an authority: webpki refuses a CA as a server.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth,clientAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// Runs `openssl` with `args`; panics with its error output if it fails.
fn openssl(args: &[&std::ffi::OsStr]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {:?}: {}",
        args.first(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A certificate authority named `cn`, written to `dir/<file>.crt` and
/// `dir/<file>.key`; returns the two paths.
pub fn make_ca(dir: &Path, file: &str, cn: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (
        dir.join(format!("{file}.crt")),
        dir.join(format!("{file}.key")),
    );
    let subj = format!("/CN={cn}");
    let os = std::ffi::OsStr::new;
    openssl(&[
        os("req"),
        os("-x509"),
        os("-newkey"),
        os("ec"),
        os("-pkeyopt"),
        os("ec_paramgen_curve:P-256"),
        os("-nodes"),
        os("-days"),
        os("2"),
        os("-subj"),
        os(&subj),
        os("-addext"),
        os("basicConstraints=critical,CA:TRUE"),
        os("-addext"),
        os("keyUsage=critical,keyCertSign,cRLSign"),
        os("-keyout"),
        key.as_os_str(),
        os("-out"),
        cert.as_os_str(),
    ]);
    (cert, key)
}

/// A certificate for `localhost` and 127.0.0.1 named `cn`, for a server
/// or a client, signed by the authority `ca` (from [`make_ca`]), written
/// to `dir/<file>.crt` and `dir/<file>.key`; returns the two paths.
pub fn make_signed(
    dir: &Path,
    file: &str,
    cn: &str,
    ca: &(std::path::PathBuf, std::path::PathBuf),
) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key, csr, ext) = (
        dir.join(format!("{file}.crt")),
        dir.join(format!("{file}.key")),
        dir.join(format!("{file}.csr")),
        dir.join(format!("{file}.ext")),
    );
    std::fs::write(
        &ext,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
         extendedKeyUsage=serverAuth,clientAuth\n",
    )
    .unwrap();
    let subj = format!("/CN={cn}");
    let os = std::ffi::OsStr::new;
    openssl(&[
        os("req"),
        os("-new"),
        os("-newkey"),
        os("ec"),
        os("-pkeyopt"),
        os("ec_paramgen_curve:P-256"),
        os("-nodes"),
        os("-subj"),
        os(&subj),
        os("-keyout"),
        key.as_os_str(),
        os("-out"),
        csr.as_os_str(),
    ]);
    openssl(&[
        os("x509"),
        os("-req"),
        os("-in"),
        csr.as_os_str(),
        os("-CA"),
        ca.0.as_os_str(),
        os("-CAkey"),
        ca.1.as_os_str(),
        os("-set_serial"),
        os(&format!("{}", rand_serial())),
        os("-days"),
        os("2"),
        os("-extfile"),
        ext.as_os_str(),
        os("-out"),
        cert.as_os_str(),
    ]);
    (cert, key)
}

/// A serial number no two certificates of a test run share.
fn rand_serial() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (nanos >> 8) + NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A client that trusts only the certificate(s) in `ca` (PEM).
pub fn client_config(ca: &Path) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// A TLS connection to `addr` expecting the server to be `name`.
pub async fn connect(
    addr: SocketAddr,
    name: &str,
    config: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_owned()).map_err(std::io::Error::other)?;
    TlsConnector::from(config).connect(name, tcp).await
}

/// The leaf certificate the server showed on `stream`.
pub fn peer_cert(stream: &TlsStream<TcpStream>) -> Vec<u8> {
    let (_, conn) = stream.get_ref();
    conn.peer_certificates().unwrap()[0].to_vec()
}

/// The first certificate in the PEM file `path`, as DER.
pub fn cert_der(path: &Path) -> Vec<u8> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}
