//! The chat page built on the TypeScript SDK (examples/chat/) in a real
//! headless Chromium: a guest joins a room, hears a player of the test,
//! drops its connection, and on resuming shows what was said meanwhile —
//! checked by what a person sees on the page. The page and the SDK (built
//! by tests/sdk.rs's `npm test`, or `npm run build`) are served from the
//! repository by a plain static server.

use std::{
    net::TcpStream,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use warren_proto::cmd;

use crate::{
    browser::{Driver, click, click_when_enabled, type_into, until_text},
    helpers::{BusKind, Room, Say, Stack},
};

/// `python3 -m http.server` over the repository, stopped when dropped.
struct Files {
    child: Child,
    port: u16,
}

impl Files {
    fn serve_repository() -> Files {
        let root = env!("CARGO_MANIFEST_DIR");
        let sdk = std::path::Path::new(root).join("clients/typescript");
        if !sdk.join("dist/index.js").exists() {
            let built = Command::new("npm")
                .args(["run", "build", "--silent"])
                .current_dir(&sdk)
                .status()
                .expect("npm (Node ≥ 20) builds the SDK for the chat page");
            assert!(built.success(), "npm run build in {}", sdk.display());
        }
        let port = warren_test_support::ports::unused().port();
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                "--directory",
                root,
            ])
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 serves the page");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the static server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Files { child, port }
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The page's uid: far above the guests gold numbers from 1.
const TALKER: u64 = 900_101;

// Long: one scenario, told in order.
#[tokio::test]
async fn the_sdk_chat_page_resumes_a_dropped_connection_in_chromium() {
    let stack = Stack::start_full(BusKind::InProcess).await;
    let files = Files::serve_repository();
    let driver = Driver::start();
    let b = driver.browser().await;
    let login = stack.login.expect("the full stack runs login");
    let page = format!(
        "http://127.0.0.1:{}/examples/chat/index.html?login=http://{login}&ws={}",
        files.port, stack.url
    );
    b.goto(&page).await.unwrap();
    click_when_enabled(&b, "#join").await;
    until_text(&b, "#status", |t| t == "connected").await;

    let mut talker = stack.player(TALKER).await;
    let (joined, _) = talker.request(cmd::CHAT_JOIN, &Room::new("lobby")).await;
    assert_eq!(joined.cmd, cmd::CHAT_JOIN);
    let (said, _) = talker
        .request(cmd::CHAT_SEND, &Say::new("lobby", "hello page"))
        .await;
    assert_eq!(said.cmd, cmd::CHAT_SEND);
    until_text(&b, "#log", |t| t.contains(&format!("{TALKER}: hello page"))).await;

    // The page's own line goes through the SDK too.
    type_into(&b, "#text", "hello test").await;
    click(&b, "#send").await;
    until_text(&b, "#log", |t| t.contains(": hello test")).await;

    // Dropped: what is said meanwhile shows once the session resumes.
    click(&b, "#drop").await;
    let (said, _) = talker
        .request(cmd::CHAT_SEND, &Say::new("lobby", "while you were away"))
        .await;
    assert_eq!(said.cmd, cmd::CHAT_SEND);
    until_text(&b, "#status", |t| t == "resumed").await;
    let log = until_text(&b, "#log", |t| t.contains("while you were away")).await;
    assert_eq!(
        log.matches("while you were away").count(),
        1,
        "shown once: {log}"
    );
    assert!(
        log.find("hello page") < log.find("while you were away"),
        "{log}"
    );
}
