//! The admin page over plain HTTP: everything behind the sign-in, CSRF on
//! every change, the same answer for a wrong username and a wrong password,
//! rate-limited sign-in, sessions that expire. (The browser walk-through is
//! in the workspace's end-to-end tests.)

use std::{collections::BTreeMap, time::Duration};

use warren_config::{ConfigSettings, web::hash_password};

use crate::helpers::{Db, Server, TestDb};

pub(crate) const PASSWORD: &str = "correct horse battery";

/// A cookie-keeping HTTP client that does not follow redirects.
pub(crate) struct Browser {
    base: String,
    agent: ureq::Agent,
    cookies: BTreeMap<String, String>,
}

pub(crate) struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

impl Browser {
    pub(crate) fn new(base: &str) -> Browser {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .build()
            .into();
        Browser {
            base: base.to_owned(),
            agent,
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn take(&mut self, mut r: ureq::http::Response<ureq::Body>) -> Page {
        for v in r.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let (kv, attrs) = v.split_once(';').unwrap_or((v, ""));
            let (k, val) = kv.split_once('=').unwrap();
            if val.is_empty() || attrs.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), val.to_owned());
            }
        }
        Page {
            status: r.status().as_u16(),
            location: r
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_owned()),
            body: r.body_mut().read_to_string().unwrap(),
        }
    }

    pub(crate) fn get(&mut self, path: &str) -> Page {
        let r = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .call()
            .unwrap();
        self.take(r)
    }

    pub(crate) fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let r = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send_form(form.iter().copied())
            .unwrap();
        self.take(r)
    }

    /// Signs in; returns the sign-in answer.
    pub(crate) fn sign_in(&mut self, user: &str, password: &str) -> Page {
        let form = self.get("/login");
        let csrf = hidden(&form.body, "csrf");
        self.post(
            "/login",
            &[
                ("username", user),
                ("password", password),
                ("csrf", &csrf),
                ("next", "/"),
            ],
        )
    }
}

/// The value of the hidden input `name` in a page.
pub(crate) fn hidden(body: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    let start = body
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {body}"))
        + marker.len();
    body[start..start + body[start..].find('"').unwrap()].to_owned()
}

async fn server(settings: ConfigSettings) -> (TestDb, Server) {
    let db = TestDb::new(Db::Sqlite).await;
    let server = Server::start_with(&db.url, "127.0.0.1:0".parse().unwrap(), settings).await;
    let hash = hash_password(PASSWORD).unwrap();
    server.store.put_staff("ann", &hash).await.unwrap();
    (db, server)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_and_change_needs_a_session_and_its_csrf_token() {
    let (_db, server) = server(ConfigSettings::default()).await;
    let base = server.page();
    blocking(move || {
        let mut anon = Browser::new(&base);
        for path in [
            "/",
            "/audit",
            "/docs/chat",
            "/docs/chat/history",
            "/docs/chat/schema",
            "/new",
        ] {
            let p = anon.get(path);
            assert_eq!(p.status, 303, "{path}");
            assert!(p.location.unwrap().starts_with("/login?next="), "{path}");
        }
        let body = r#"{"max_message_len": 5}"#;
        for path in [
            "/docs/chat/publish",
            "/docs/chat/review",
            "/docs/chat/rollback",
            "/docs/chat/schema",
            "/new",
        ] {
            let p = anon.post(
                path,
                &[("csrf", "x"), ("body", body), ("to", "1"), ("name", "x")],
            );
            assert_eq!(p.status, 401, "{path}: {}", p.body);
        }

        let mut ann = Browser::new(&base);
        let p = ann.sign_in("ann", PASSWORD);
        assert_eq!((p.status, p.location.as_deref()), (303, Some("/")));
        let list = ann.get("/");
        assert_eq!(list.status, 200);
        assert!(list.body.contains("chat") && list.body.contains("economy"));
        let csrf = hidden(&ann.get("/docs/chat").body, "csrf");
        for bad in ["", "nope", &csrf[..csrf.len() - 1]] {
            let p = ann.post(
                "/docs/chat/publish",
                &[("csrf", bad), ("body", body), ("expected_version", "1")],
            );
            assert_eq!(p.status, 403, "csrf {bad:?}");
        }
        let p = ann.post("/docs/chat/rollback", &[("csrf", "nope"), ("to", "1")]);
        assert_eq!(p.status, 403);
        assert!(
            ann.get("/docs/chat").body.contains("live: v1"),
            "nothing was published"
        );
        // With the token it goes through.
        let p = ann.post(
            "/docs/chat/publish",
            &[("csrf", &csrf), ("body", body), ("expected_version", "1")],
        );
        assert_eq!(
            (p.status, p.location.as_deref()),
            (303, Some("/docs/chat?published=2"))
        );
        assert!(ann.get("/audit").body.contains("<b>ann</b>"));
        // Signing out ends the session.
        let p = ann.post("/logout", &[("csrf", &csrf)]);
        assert_eq!(p.status, 303);
        assert_eq!(ann.get("/").status, 303);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_and_an_unknown_user_get_the_same_answer() {
    let (_db, server) = server(ConfigSettings::default()).await;
    let base = server.page();
    blocking(move || {
        let mut b = Browser::new(&base);
        let wrong_password = b.sign_in("ann", "not the password");
        let unknown_user = b.sign_in("zed", PASSWORD);
        for p in [&wrong_password, &unknown_user] {
            assert_eq!(p.status, 401);
            assert!(p.body.contains("Wrong username or password."), "{}", p.body);
        }
        // A forged sign-in form (no matching cookie) is refused.
        let p = b.post(
            "/login",
            &[
                ("username", "ann"),
                ("password", PASSWORD),
                ("csrf", "forged"),
            ],
        );
        assert_eq!(p.status, 403);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_attempts_are_rate_limited() {
    let settings = ConfigSettings {
        signin_attempts: 3,
        signin_window_s: Duration::from_secs(60),
        ..Default::default()
    };
    let (_db, server) = server(settings).await;
    let base = server.page();
    blocking(move || {
        let mut b = Browser::new(&base);
        for _ in 0..3 {
            assert_eq!(b.sign_in("ann", "guess guess guess").status, 401);
        }
        // Even the right password is refused now, before it is checked.
        let p = b.sign_in("ann", PASSWORD);
        assert_eq!(p.status, 429);
        assert!(p.body.contains("Too many sign-in attempts"), "{}", p.body);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_sessions_expire() {
    let settings = ConfigSettings {
        session_idle_s: Duration::from_secs(1),
        session_max_s: Duration::from_secs(3),
        ..Default::default()
    };
    let (_db, server) = server(settings).await;
    let base = server.page();
    blocking(move || {
        let mut b = Browser::new(&base);
        assert_eq!(b.sign_in("ann", PASSWORD).status, 303);
        assert_eq!(b.get("/").status, 200);
        // Idle for longer than the idle time-out.
        std::thread::sleep(Duration::from_millis(1500));
        let p = b.get("/");
        assert_eq!(p.status, 303, "idle session ended");

        // Active, but past the absolute limit.
        assert_eq!(b.sign_in("ann", PASSWORD).status, 303);
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(700));
            if b.get("/").status != 200 {
                break;
            }
        }
        assert_eq!(b.get("/").status, 303, "sessions end after session_max_s");
    })
    .await;
}
