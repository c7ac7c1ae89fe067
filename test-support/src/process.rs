//! One `warren` process of a stack under test: started with a ready file,
//! waited for through it, stopped with SIGTERM.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use crate::unique;

/// The `warren` binary cargo built beside the running test or bench
/// (`target/<profile>/warren`: cargo builds a package's binaries for its
/// integration tests and benches).
pub(crate) fn warren_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps");
    let bin = profile.join("warren");
    assert!(
        bin.exists(),
        "no warren binary at {} (run the tests through cargo)",
        bin.display()
    );
    bin
}

/// One process of the stack: its stdout and its stderr (the log) in files,
/// its readiness in the ready file it writes (`--ready-file`, the contract
/// in `src/ready.rs`).
#[derive(Debug)]
pub(crate) struct Proc {
    pub(crate) name: &'static str,
    pub(crate) child: Child,
    pub(crate) ready: PathBuf,
    pub(crate) log: PathBuf,
    /// Its stdout: the console lines.
    pub(crate) console: PathBuf,
}

/// The listeners a process's ready file names, by role.
#[derive(Debug)]
pub(crate) struct Listening(serde_json::Map<String, serde_json::Value>);

impl Listening {
    /// The URL `role` answers on.
    pub(crate) fn url(&self, role: &str) -> String {
        self.0
            .get(role)
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| panic!("the ready file names no {role}: {:?}", self.0))
            .to_owned()
    }

    /// The address of `role` (its URL without scheme and path).
    pub(crate) fn addr(&self, role: &str) -> SocketAddr {
        let url = self.url(role);
        let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
        rest.split('/').next().unwrap().parse().unwrap()
    }
}

impl Proc {
    pub(crate) fn spawn(
        name: &'static str,
        dir: &Path,
        args: &[impl AsRef<std::ffi::OsStr>],
        env: &[(String, String)],
    ) -> Proc {
        let tag = unique(name);
        let log = dir.join(format!("{tag}.log"));
        let ready = dir.join(format!("{tag}.ready.json"));
        let console = dir.join(format!("{tag}.out"));
        let mut cmd = Command::new(warren_binary());
        cmd.arg("--ready-file")
            .arg(&ready)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "RUST_LOG",
                std::env::var("WARREN_TEST_LOG").unwrap_or("info,warren_connector=debug".into()),
            )
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&console).unwrap())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("the warren binary starts");
        Proc {
            name,
            child,
            ready,
            log,
            console,
        }
    }

    /// Waits until the process has written its ready file (every part
    /// started); returns its listeners. Fails at once if the process exits
    /// first, and after 30 s.
    pub(crate) fn wait_ready(&mut self) -> Listening {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(&self.ready) {
                let ready: serde_json::Value = serde_json::from_str(&text).unwrap();
                return Listening(ready["listeners"].as_object().unwrap().clone());
            }
            let log = || std::fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "{} exited ({status}) before it was ready; its log:\n{}",
                    self.name,
                    log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} was not ready within 30 s; its log:\n{}",
                self.name,
                log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub(crate) fn terminate(&mut self) -> ExitStatus {
        self.signal_term();
        self.wait_exit()
    }

    /// Sends SIGTERM, without waiting.
    pub(crate) fn signal_term(&self) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(ok.success(), "kill -TERM {pid}");
    }

    /// Waits (at most 20 s) for the process to exit.
    pub(crate) fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit after SIGTERM",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
