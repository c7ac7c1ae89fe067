//! A private three-node RabbitMQ cluster for the cluster fault tests:
//! nodes `warren1@localhost`… with their own AMQP ports (5673…), their
//! own distribution ports (25673…), config files and data directories,
//! joined with `join_cluster`, stopped and their directories removed when
//! dropped. The machine's own `rabbit@localhost` (5672) is never touched.
//!
//! The ports are fixed (a cluster's nodes find each other by name and
//! port), so one test binary at a time may run a cluster: cargo runs test
//! binaries one after the other. Nodes a crashed earlier run left behind
//! are shut down first.

use std::{path::PathBuf, process::Command, time::Duration};

/// The cluster's size.
pub const NODES: usize = 3;

/// How long a node may take to start (or to rejoin after a restart).
const START_WITHIN: Duration = Duration::from_secs(90);

/// A running cluster; stopped when dropped.
#[derive(Debug)]
pub struct RabbitCluster {
    dir: PathBuf,
}

fn name(i: usize) -> String {
    format!("warren{}@localhost", i + 1)
}

fn port(i: usize) -> u16 {
    5673 + i as u16
}

/// `rabbitmqctl -n <node> args`: its success and its output.
fn ctl(i: usize, args: &[&str]) -> (bool, String) {
    let out = Command::new("rabbitmqctl")
        .arg("-n")
        .arg(name(i))
        .args(args)
        .output()
        .expect("rabbitmqctl runs (scripts/test.sh installs rabbitmq-server)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn ctl_ok(i: usize, args: &[&str]) {
    let (ok, text) = ctl(i, args);
    assert!(ok, "rabbitmqctl -n {} {args:?}: {text}", name(i));
}

impl RabbitCluster {
    /// Starts the three nodes and joins the second and third to the
    /// first; returns once all three run as one cluster.
    pub fn start() -> RabbitCluster {
        for i in 0..NODES {
            // Left by an earlier run that did not finish: gone first.
            let _ = ctl(i, &["shutdown"]);
        }
        let dir = std::env::temp_dir().join("warren-rabbit-cluster");
        let _ = std::fs::remove_dir_all(&dir);
        let cluster = RabbitCluster { dir };
        for i in 0..NODES {
            cluster.write_files(i);
        }
        // The broker runs as the rabbitmq user, which must own its files.
        let owned = Command::new("chown")
            .args(["-R", "rabbitmq:rabbitmq"])
            .arg(&cluster.dir)
            .status()
            .expect("chown runs");
        assert!(owned.success(), "chown of {}", cluster.dir.display());
        for i in 0..NODES {
            cluster.launch(i);
        }
        for i in 0..NODES {
            cluster.wait_up(i);
        }
        for i in 1..NODES {
            ctl_ok(i, &["stop_app"]);
            ctl_ok(i, &["join_cluster", &name(0)]);
            ctl_ok(i, &["start_app"]);
        }
        cluster.wait_whole();
        cluster
    }

    fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.join(format!("node{}", i + 1))
    }

    /// Each node's own config file (its AMQP port; the shared one pins
    /// 5672), environment file and (no) plugins.
    fn write_files(&self, i: usize) {
        let dir = self.node_dir(i);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!(
                "listeners.tcp.local = 127.0.0.1:{}\nloopback_users = none\n",
                port(i)
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("rabbitmq-env.conf"),
            format!("NODENAME={}\n", name(i)),
        )
        .unwrap();
        std::fs::write(dir.join("enabled_plugins"), "[].\n").unwrap();
    }

    /// Starts node `i` (detached), on its directories.
    fn launch(&self, i: usize) {
        let dir = self.node_dir(i);
        let status = Command::new("rabbitmq-server")
            .arg("-detached")
            .env("RABBITMQ_CONF_ENV_FILE", dir.join("rabbitmq-env.conf"))
            .env("RABBITMQ_NODENAME", name(i))
            .env("RABBITMQ_NODE_PORT", port(i).to_string())
            .env("RABBITMQ_DIST_PORT", (20000 + port(i)).to_string())
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_PID_FILE", dir.join("pid"))
            .status()
            .expect("rabbitmq-server runs (scripts/test.sh installs it)");
        assert!(
            status.success(),
            "rabbitmq-server -detached for {}",
            name(i)
        );
    }

    /// Waits until node `i` has booted (the node registers with epmd a
    /// moment after it starts, so the first calls may not find it).
    fn wait_up(&self, i: usize) {
        let started = std::time::Instant::now();
        loop {
            let (ok, text) = ctl(i, &["await_startup", "--timeout", "60"]);
            if ok {
                return;
            }
            assert!(
                started.elapsed() < START_WITHIN,
                "{} did not start within {START_WITHIN:?}: {text}\n(log in {})",
                name(i),
                self.node_dir(i).join("log").display()
            );
            // The node is not registered yet: look again shortly.
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The AMQP URL of node `i`.
    pub fn url(&self, i: usize) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", port(i))
    }

    /// Every node's URL, as the JSON list `bus.amqp_urls` takes.
    pub fn urls_setting(&self) -> String {
        let urls: Vec<String> = (0..NODES).map(|i| format!("\"{}\"", self.url(i))).collect();
        format!("[{}]", urls.join(","))
    }

    /// Stops node `i` (the broker process exits; the cluster keeps it as
    /// a member that is down).
    pub fn stop(&self, i: usize) {
        ctl_ok(i, &["shutdown"]);
    }

    /// Starts node `i` again after [`RabbitCluster::stop`]; returns once
    /// it runs and every node counts it among the running ones (it rejoins
    /// the cluster by itself).
    pub fn restart(&self, i: usize) {
        self.launch(i);
        self.wait_up(i);
        self.wait_whole();
    }

    /// Waits until every node sees every node running. A node has booted
    /// (`await_startup`) a moment before the others count it as running,
    /// and a quorum queue declared in that moment gets its members on the
    /// other two nodes only (RabbitMQ 3.10 never adds the third later): the
    /// next scenario's stopped node would then take the queue's majority
    /// with it.
    fn wait_whole(&self) {
        let started = std::time::Instant::now();
        let names: Vec<String> = (0..NODES).map(name).collect();
        loop {
            let whole = (0..NODES).all(|j| {
                let (ok, text) = ctl(j, &["cluster_status", "--formatter", "json"]);
                let running = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v.get("running_nodes").cloned());
                ok && names.iter().all(|n| {
                    running
                        .as_ref()
                        .and_then(|r| r.as_array())
                        .is_some_and(|r| r.iter().any(|x| x.as_str() == Some(n)))
                })
            });
            if whole {
                return;
            }
            assert!(
                started.elapsed() < START_WITHIN,
                "the cluster's nodes did not all see each other running within {START_WITHIN:?}"
            );
            // Look again shortly.
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for RabbitCluster {
    fn drop(&mut self) {
        for i in 0..NODES {
            let _ = ctl(i, &["shutdown"]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
