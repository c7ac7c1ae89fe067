//! A real headless Chromium for the pages' tests, driven through
//! chromedriver (Debian's chromium and chromium-driver; scripts/test.sh
//! installs them), and the few steps a test takes in it — each waiting for
//! the page, since a click returns before what it starts is done.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub(crate) use fantoccini::Client as Browser;
use fantoccini::{ClientBuilder, Locator, elements::Element};
use serde_json::json;

/// chromedriver on a free port, stopped when dropped.
pub(crate) struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    pub(crate) fn start() -> Driver {
        for bin in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            assert!(
                std::path::Path::new(bin).exists(),
                "{bin} is missing: install Debian's chromium and chromium-driver \
                 (scripts/test.sh does it: apt-get install chromium chromium-driver)"
            );
        }
        let port = warren_test_support::ports::unused().port();
        let child = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    pub(crate) async fn browser(&self) -> Browser {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1000"]
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Saves a screenshot when WARREN_SCREENSHOTS names a directory (how the
/// one in docs/ was made).
pub(crate) async fn screenshot(b: &Browser, name: &str) {
    if let Ok(dir) = std::env::var("WARREN_SCREENSHOTS") {
        let png = b.screenshot().await.unwrap();
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}

/// The element `css`, waiting (up to 20 s) for a page that has it: a click
/// that submits a form returns before the next page is there, and argon2 in
/// a debug build is slow.
pub(crate) async fn el(b: &Browser, css: &str) -> Element {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(e) = b.find(Locator::Css(css)).await {
            return e;
        }
        assert!(
            Instant::now() < deadline,
            "no {css} on {:?}",
            b.current_url().await.map(|u| u.to_string())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of `css` (waiting for it; read again if the page changed under
/// it).
pub(crate) async fn text_of(b: &Browser, css: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(t) = el(b, css).await.text().await {
            return t;
        }
        assert!(Instant::now() < deadline, "{css} kept going stale");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn click(b: &Browser, css: &str) {
    el(b, css).await.click().await.unwrap();
}

pub(crate) async fn click_link(b: &Browser, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(e) = b.find(Locator::LinkText(text)).await
            && e.click().await.is_ok()
        {
            return;
        }
        assert!(Instant::now() < deadline, "no link {text:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (up to 20 s) until the browser is at `path`.
pub(crate) async fn at(b: &Browser, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let url = b.current_url().await.unwrap();
        if url.path() == path {
            return;
        }
        assert!(Instant::now() < deadline, "still at {url}, not {path}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn type_into(b: &Browser, css: &str, text: &str) {
    el(b, css).await.send_keys(text).await.unwrap();
}

/// Waits (up to 20 s) until the text of `css` satisfies `good`, and
/// returns it.
pub(crate) async fn until_text(b: &Browser, css: &str, good: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = text_of(b, css).await;
        if good(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "{css} still says {text:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Clicks `css` once it is enabled (a page may enable it when ready).
pub(crate) async fn click_when_enabled(b: &Browser, css: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let e = el(b, css).await;
        if e.is_enabled().await.unwrap_or(false) {
            e.click().await.unwrap();
            return;
        }
        assert!(Instant::now() < deadline, "{css} stayed disabled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
