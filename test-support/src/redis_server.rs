//! A private `redis-server` for the tests that stop, kill or reconfigure
//! Redis: its own port, its own directory, nothing kept on disk, stopped
//! when dropped. The shared server on 6379 is never touched.

use std::{
    net::{SocketAddr, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::{TempDir, until};

/// How long a starting server may take to answer.
const START_WITHIN: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct PrivateRedis {
    pub addr: SocketAddr,
    dir: TempDir,
    /// Extra `redis-server` arguments (e.g. a `client-output-buffer-limit`).
    args: Vec<String>,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Starts one on a free port, with `args` on top of the defaults
    /// (`--save "" --appendonly no`); returns once it answers.
    pub async fn start(args: &[&str]) -> PrivateRedis {
        let mut server = PrivateRedis {
            addr: crate::ports::unused(),
            dir: TempDir::new("warren-redis"),
            args: args.iter().map(|a| a.to_string()).collect(),
            child: None,
        };
        server.start_again().await;
        server
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// The server's log file (Redis says there why it closed a client).
    pub fn log(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// Starts it again on the same port (after [`PrivateRedis::kill`]);
    /// returns once it answers.
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.addr.port().to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.log())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("redis-server does not start ({e}): apt-get install redis-server")
            });
        self.child = Some(child);
        let addr = self.addr;
        until("the private redis-server to answer", START_WITHIN, || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
        })
        .await;
    }

    /// Kills it with SIGKILL (everything in it is lost: it keeps nothing
    /// on disk) and waits until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether it accepts connections.
    pub fn up(&self) -> bool {
        TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok()
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
