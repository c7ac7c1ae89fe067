//! The readiness contract: with `--ready-file PATH` (or `WARREN_READY_FILE`)
//! a process writes PATH once every part of its run mode has started —
//! listeners bound, databases opened and migrated, the bus connected, the
//! game's services running — and removes it when it stops cleanly. The file
//! is JSON, written whole (to `PATH.tmp`, then renamed), so a reader never
//! sees half of it:
//!
//! ```json
//! {"mode": "all", "pid": 4242,
//!  "listeners": {"connector": "ws://127.0.0.1:7001/ws",
//!                "connector_admin": "http://127.0.0.1:7008",
//!                "game_admin": "http://127.0.0.1:7005",
//!                "gold": "http://127.0.0.1:7002", "login": "http://127.0.0.1:7000",
//!                "config": "http://127.0.0.1:7003",
//!                "config_page": "http://127.0.0.1:7004"}}
//! ```
//!
//! `listeners` holds the roles the mode runs (the [`Role`] names), each with
//! the URL it answers on (a wildcard bind address shown as 127.0.0.1).
//! Orchestrators, the end-to-end tests and `scripts/bench.py` read this; the
//! `warren: …` lines on stdout are for people and may change.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use anyhow::Context as _;

/// What listens, by the name the ready file gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Connector,
    ConnectorAdmin,
    GameAdmin,
    Gold,
    GoldAdmin,
    Login,
    Config,
    ConfigPage,
    Http,
    PushServer,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Connector => "connector",
            Role::ConnectorAdmin => "connector_admin",
            Role::GameAdmin => "game_admin",
            Role::Gold => "gold",
            Role::GoldAdmin => "gold_admin",
            Role::Login => "login",
            Role::Config => "config",
            Role::ConfigPage => "config_page",
            Role::Http => "http",
            Role::PushServer => "push_server",
        }
    }
}

/// Collects a run mode's listeners, then says it is ready.
#[derive(Debug)]
pub struct Ready {
    mode: &'static str,
    path: Option<PathBuf>,
    listeners: BTreeMap<&'static str, String>,
}

impl Ready {
    pub fn new(mode: &'static str, path: Option<PathBuf>) -> Self {
        Ready {
            mode,
            path,
            listeners: BTreeMap::new(),
        }
    }

    /// Records that `role` answers at `url`.
    pub fn listening(&mut self, role: Role, url: &str) {
        self.listeners.insert(role.name(), url.to_owned());
    }

    /// The URL `role` answers at, once it listens.
    pub fn url(&self, role: Role) -> Option<&str> {
        self.listeners.get(role.name()).map(String::as_str)
    }

    /// Writes the ready file, if one was asked for.
    pub fn write(&self) -> anyhow::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let body = serde_json::json!({
            "mode": self.mode,
            "pid": std::process::id(),
            "listeners": self.listeners,
        });
        let tmp = tmp_path(path);
        std::fs::write(&tmp, format!("{body}\n"))
            .with_context(|| format!("writing the ready file {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("writing the ready file {}", path.display()))?;
        Ok(())
    }

    /// Removes the ready file: the process is stopping.
    pub fn stopping(&self) {
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}
