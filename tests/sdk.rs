//! The TypeScript client SDK (clients/typescript) against real Warren
//! processes: this starts the stack — the all-in-one process, and two
//! connectors on RabbitMQ — and runs the SDK's own tests (node's test
//! runner) with its addresses. It needs Node ≥ 20 and the SDK's packages
//! (`npm ci` in clients/typescript; scripts/test.sh does it).

use std::{path::Path, process::Command};

use warren_test_support::stack::{BusKind, Stack};

fn sdk_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/clients/typescript"))
}

/// Runs `npm test` in the SDK against `stack`; fails with its output.
fn run_sdk_tests(stack: &Stack, what: &str) {
    let dir = sdk_dir();
    assert!(
        dir.join("node_modules/@msgpack/msgpack").exists(),
        "the SDK's packages are missing: run `npm ci` in {} (scripts/test.sh does)",
        dir.display()
    );
    let login = stack.login.expect("the full stack runs login");
    let urls: Vec<&str> = stack
        .connectors
        .iter()
        .map(|(_, url)| url.as_str())
        .collect();
    let out = Command::new("npm")
        .args(["test", "--silent"])
        .current_dir(dir)
        .env("WARREN_LOGIN_URL", format!("http://{login}"))
        .env("WARREN_WS_URLS", urls.join(","))
        .output()
        .unwrap_or_else(|e| panic!("npm (Node ≥ 20) is needed for the SDK's tests: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the SDK's tests failed on {what}:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("# pass 5") && stdout.contains("# fail 0"),
        "every SDK test ran on {what}:\n{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_on_the_in_process_bus() {
    let stack = Stack::start_full(BusKind::InProcess).await;
    run_sdk_tests(&stack, "the in-process bus");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_on_rabbitmq_with_two_connectors() {
    let stack = Stack::start_full_connectors(BusKind::RabbitMq, 2).await;
    run_sdk_tests(&stack, "RabbitMQ");
}
