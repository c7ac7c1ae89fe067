//! What only the gRPC gateway offers (docs/services.md): a service in
//! another language beside Warren's game, reached by players through the
//! connector with the same routing and console; and a service that stops
//! costs only its own players, within the deadline, and comes back by
//! itself.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use warren_proto::cmd;

use crate::helpers::{BusKind, ErrorBody, Event, Stack, decode};
use warren_test_support::{stack::Client, stack::eventually, unique};

/// The Python example's cmds.
const HELLO: u32 = 5001;
const GREETED: u32 = 5002;

/// The example service (`examples/services/python`), its code generated
/// from `proto/proto/gateway.proto` for this run; stopped when dropped.
struct Python {
    child: Child,
    generated: PathBuf,
}

impl Python {
    fn start(stack: &Stack) -> Python {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let generated = std::env::temp_dir().join(unique("warren-python"));
        std::fs::create_dir_all(&generated).unwrap();
        let status = Command::new("python3")
            .args(["-m", "grpc_tools.protoc", "-I"])
            .arg(root.join("proto/proto"))
            .arg(format!("--python_out={}", generated.display()))
            .arg(format!("--grpc_python_out={}", generated.display()))
            .arg("gateway.proto")
            .status()
            .expect("python3 runs (scripts/test.sh installs grpcio-tools)");
        assert!(
            status.success(),
            "generating the Python code from gateway.proto"
        );
        let gateways = stack
            .setting("WARREN_BUS__GRPC__GATEWAYS")
            .expect("a stack on the gRPC gateway")
            .trim_matches(|c| c == '[' || c == ']')
            .replace('"', "");
        let listen = warren_test_support::ports::unused().to_string();
        let child = Command::new("python3")
            .arg(root.join("examples/services/python/service.py"))
            .args(["--gateways", &gateways, "--listen", &listen])
            .env("PYTHONPATH", &generated)
            .stdout(Stdio::null())
            .spawn()
            .expect("the Python service starts");
        Python { child, generated }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal}");
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.generated);
    }
}

/// The services the connector's console lists, by name, with whether
/// their lease holds.
async fn registered(stack: &Stack) -> Vec<(String, bool)> {
    let stats = stack.connector_stats(0).await;
    stats["services"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    let name = s["name"].as_str().unwrap_or_default().to_owned();
                    (name, s["live"].as_bool().unwrap_or(false))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One hello: the reply (its body back), then the push; or the error code.
async fn hello(p: &mut Client, within: Duration) -> Result<(), String> {
    let seq = p.seq();
    p.send_frame(seq, HELLO, b"\xa2hi".to_vec()).await.unwrap();
    let f = match p.next_event_within(within).await {
        Event::Frame(f) => f,
        other => panic!("hello {seq} unanswered: {other:?}"),
    };
    assert_eq!(f.seq, seq, "{f:?}");
    if f.cmd == cmd::ERROR {
        return Err(decode::<ErrorBody>(&f).code);
    }
    assert_eq!((f.cmd, &f.body[..]), (HELLO, &b"\xa2hi"[..]), "{f:?}");
    let push = p.next_push().await;
    assert_eq!((push.cmd, &push.body[..]), (GREETED, &b"\xa5hello"[..]));
    Ok(())
}

async fn python_registered(stack: &Stack) {
    eventually("the Python service registered", async || {
        let services = registered(stack).await;
        (services.contains(&("hello-py".into(), true)) && services.contains(&("game".into(), true)))
            .then_some(())
    })
    .await;
}

/// A player asks Warren's game and the Python service in turn, on one
/// socket: each answers its own cmd, the Python one also pushes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_in_python_serves_its_cmd_beside_the_game() {
    let stack = Stack::start_with(BusKind::Grpc, &[]).await;
    let _python = Python::start(&stack);
    python_registered(&stack).await;
    let mut p = stack.player(1).await;
    for _ in 0..20 {
        hello(&mut p, Duration::from_secs(5)).await.unwrap();
        p.echo(b"\x80").await;
    }
    let mut q = stack.player(2).await;
    hello(&mut q, Duration::from_secs(5)).await.unwrap();
}

/// A stopped service (SIGSTOP): its players' requests are answered within
/// the deadline (and `unavailable` at once once its lease lapses), the
/// game's players are not held up; after SIGCONT it serves again by
/// itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_service_costs_only_its_own_players_and_comes_back() {
    let deadline = Duration::from_millis(1500);
    let stack =
        Stack::start_with(BusKind::Grpc, &[("WARREN_BUS__GRPC__DEADLINE_MS", "1500")]).await;
    let python = Python::start(&stack);
    python_registered(&stack).await;
    let mut p = stack.player(1).await;
    let mut g = stack.player(2).await;
    hello(&mut p, Duration::from_secs(5)).await.unwrap();
    python.signal("-STOP");
    // Ten hellos in a row while the game's player echoes meanwhile.
    let started = Instant::now();
    let mut seqs = Vec::new();
    for _ in 0..10 {
        let seq = p.seq();
        p.send_frame(seq, HELLO, b"\xa2hi".to_vec()).await.unwrap();
        seqs.push(seq);
    }
    for _ in 0..10 {
        let t = Instant::now();
        g.echo(b"\x80").await;
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "the game held up: {:?}",
            t.elapsed()
        );
    }
    for _ in &seqs {
        let f = match p.next_event_within(deadline * 3).await {
            Event::Frame(f) => f,
            other => panic!("a hello unanswered: {other:?}"),
        };
        assert_eq!(f.cmd, cmd::ERROR, "{f:?}");
        let code = decode::<ErrorBody>(&f).code;
        assert!(
            ["unavailable", "overloaded"].contains(&code.as_str()),
            "{code}"
        );
    }
    assert!(
        started.elapsed() < deadline * 3,
        "answered within the deadline: {:?}",
        started.elapsed()
    );
    // Its lease lapses: forgotten, and refused at once.
    eventually("the stopped service forgotten", async || {
        let services = registered(&stack).await;
        (!services.iter().any(|(n, live)| n == "hello-py" && *live)).then_some(())
    })
    .await;
    let t = Instant::now();
    assert_eq!(hello(&mut p, deadline * 2).await, Err("unavailable".into()));
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    python.signal("-CONT");
    eventually("served again after SIGCONT", async || {
        hello(&mut p, Duration::from_secs(5)).await.ok()
    })
    .await;
    g.echo(b"\x80").await;
}
