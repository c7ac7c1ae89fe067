//! `warren health`: a container's health check, with nothing but the
//! binary (no curl in the image). Healthy when the ready file exists (the
//! process started every part and has not stopped cleanly), the process
//! it names still runs, and every listener it names accepts a TCP
//! connection within [`CONNECT_TIMEOUT`].

use std::{
    net::{SocketAddr, TcpStream, ToSocketAddrs},
    path::Path,
    time::Duration,
};

use anyhow::{Context as _, bail};

/// How long one listener gets to accept.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Checks the process behind `ready_file`; what was checked, or why it is
/// not healthy.
pub(crate) fn check(ready_file: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(ready_file).with_context(|| {
        format!(
            "no ready file at {}: the process has not started every part, or has stopped",
            ready_file.display()
        )
    })?;
    let ready: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a ready file", ready_file.display()))?;
    let pid = ready["pid"]
        .as_u64()
        .context("the ready file names no pid")?;
    let proc = Path::new("/proc");
    if proc.is_dir() && !proc.join(pid.to_string()).exists() {
        bail!("process {pid} of the ready file is gone (killed?)");
    }
    let listeners = ready["listeners"]
        .as_object()
        .context("the ready file names no listeners")?;
    for (role, url) in listeners {
        let url = url.as_str().unwrap_or_default();
        let addr = address(url).with_context(|| format!("{role}: {url}"))?;
        TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
            .with_context(|| format!("{role} at {url} does not accept connections"))?;
    }
    Ok(format!(
        "healthy: {} ({pid}), {} listeners accept connections",
        ready["mode"].as_str().unwrap_or("?"),
        listeners.len()
    ))
}

/// The socket address of a listener's URL (`ws://127.0.0.1:7001/ws`).
fn address(url: &str) -> anyhow::Result<SocketAddr> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host_port = rest.split('/').next().unwrap_or_default();
    host_port
        .to_socket_addrs()
        .context("not a host:port")?
        .next()
        .context("the host has no address")
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    /// A directory of this test's own, removed when dropped.
    struct Dir(std::path::PathBuf);

    impl Dir {
        fn new(name: &str) -> Dir {
            let dir =
                std::env::temp_dir().join(format!("warren-health-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            Dir(dir)
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn ready_file(dir: &Path, pid: u32, listeners: serde_json::Value) -> std::path::PathBuf {
        let path = dir.join("ready.json");
        let body = serde_json::json!({"mode": "gold", "pid": pid, "listeners": listeners});
        std::fs::write(&path, body.to_string()).unwrap();
        path
    }

    #[test]
    fn healthy_when_every_listener_accepts_and_not_when_one_does_not() {
        let dir = Dir::new("listeners");
        let open = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", open.local_addr().unwrap());
        let path = ready_file(
            dir.path(),
            std::process::id(),
            serde_json::json!({"gold": url}),
        );
        let said = check(&path).unwrap();
        assert!(said.contains("healthy: gold"), "{said}");

        // A listener that is gone: its port refuses.
        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let gone = format!("ws://{}/ws", closed.local_addr().unwrap());
        drop(closed);
        let path = ready_file(
            dir.path(),
            std::process::id(),
            serde_json::json!({"gold": url, "connector": gone}),
        );
        let err = check(&path).unwrap_err();
        assert!(format!("{err:#}").contains("connector at ws://"), "{err:#}");
    }

    #[test]
    fn not_healthy_without_a_ready_file_or_with_a_dead_process() {
        let dir = Dir::new("process");
        let err = check(&dir.path().join("none.json")).unwrap_err();
        assert!(format!("{err:#}").contains("no ready file"), "{err:#}");

        // A process that has ended: a child we waited for.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let path = ready_file(dir.path(), pid, serde_json::json!({}));
        let err = check(&path).unwrap_err();
        assert!(format!("{err:#}").contains("is gone"), "{err:#}");
    }
}
