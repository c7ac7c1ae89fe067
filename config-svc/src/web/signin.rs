//! Signing in and out (the rules are in `auth.rs`).

use std::{net::SocketAddr, time::Duration};

use axum::{
    Form,
    extract::{ConnectInfo, Query, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use axum_extra::extract::cookie::{Cookie, CookieJar};
use serde::Deserialize;
use tracing::{info, warn};

use super::{
    SESSION_COOKIE, SIGNIN_COOKIE, StaffForm, Web,
    auth::{csrf_matches, token, token_hash, verify_password},
    failure, html_response, safe_next, see_other, views,
};
use crate::{ConfigError, store::StaffSession, store::now_ms};

#[derive(Deserialize)]
pub(super) struct NextQuery {
    next: Option<String>,
}

/// How long a sign-in form's double-submit cookie lasts.
const SIGNIN_FORM_LIFETIME: time::Duration = time::Duration::hours(1);

impl Web {
    /// A new sign-in form's cookie, holding its CSRF token.
    fn signin_cookie(&self, csrf: &str) -> Cookie<'static> {
        let mut c = self.cookie(SIGNIN_COOKIE, csrf.to_owned());
        c.set_max_age(SIGNIN_FORM_LIFETIME);
        c
    }
}

/// The sign-in form (or, for staff already signed in, where they wanted to go).
pub(super) async fn page(
    State(web): State<Web>,
    jar: CookieJar,
    Query(q): Query<NextQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    if let Ok(Some(_)) = web.me(&jar).await {
        return see_other(&next);
    }
    let csrf = token();
    let page = html_response(StatusCode::OK, views::signin(&csrf, &next, "", None));
    (jar.add(web.signin_cookie(&csrf)), page).into_response()
}

/// A missing field is empty.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct SigninForm {
    username: String,
    password: String,
    csrf: String,
    next: Option<String>,
}

/// A sign-in: every outcome (limits, CSRF, password, session) is answered
/// where it is decided.
pub(super) async fn submit(
    State(web): State<Web>,
    ConnectInfo(warren_http::Peer(peer)): ConnectInfo<warren_http::Peer>,
    jar: CookieJar,
    Form(f): Form<SigninForm>,
) -> Response {
    let next = safe_next(f.next.as_deref());
    let expected = jar.get(SIGNIN_COOKIE).map_or("", |c| c.value());
    if !csrf_matches(expected, &f.csrf) {
        let csrf = token();
        let message = "This sign-in form has expired. Please sign in again.";
        let page = views::signin(&csrf, &next, &f.username, Some(message));
        let page = html_response(StatusCode::FORBIDDEN, page);
        return (jar.add(web.signin_cookie(&csrf)), page).into_response();
    }
    let username = f.username.trim().to_owned();
    if let Some(wait) = web.limited(peer, &username) {
        warn!(ip = %peer.ip(), user = %username, "admin sign-in refused: too many attempts");
        let secs = wait.as_secs().max(1);
        let message = format!("Too many sign-in attempts. Try again in {secs} seconds.");
        let page = views::signin(&f.csrf, &next, &username, Some(&message));
        let mut r = html_response(StatusCode::TOO_MANY_REQUESTS, page);
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return r;
    }
    match web.password_matches(&username, f.password).await {
        Ok(true) => {}
        Ok(false) => {
            web.limiter().failed(peer.ip(), &username);
            info!(ip = %peer.ip(), user = %username, "admin sign-in failed");
            let message = Some("Wrong username or password.");
            let page = views::signin(&f.csrf, &next, &username, message);
            return html_response(StatusCode::UNAUTHORIZED, page);
        }
        Err(e) => return failure(None, &e),
    }
    web.limiter().succeeded(&username);
    let session_token = token();
    let now = now_ms();
    let session = StaffSession {
        username: username.clone(),
        csrf: token(),
        created_at_ms: now,
        expires_at_ms: now + web.inner.idle.min(web.inner.max).as_millis() as i64,
    };
    let store = &web.inner.store;
    if let Err(e) = store
        .create_session(&token_hash(&session_token), &session)
        .await
    {
        return failure(None, &e);
    }
    let _ = store.purge_sessions().await;
    info!(ip = %peer.ip(), user = %username, "admin sign-in");
    let jar = jar
        .add(web.cookie(SESSION_COOKIE, session_token))
        .remove(web.cookie(SIGNIN_COOKIE, String::new()));
    (jar, see_other(&next)).into_response()
}

impl Web {
    fn limiter(&self) -> std::sync::MutexGuard<'_, super::Limiter> {
        self.inner.limiter.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long this address or username must wait before trying again,
    /// if it must; also when the limiter is full of other keys.
    fn limited(&self, peer: SocketAddr, username: &str) -> Option<Duration> {
        let mut limiter = self.limiter();
        limiter
            .check(peer.ip(), username)
            .or_else(|| limiter.full().then_some(Duration::from_secs(60)))
    }

    /// Whether `password` is the staff member's, checked off the async
    /// threads and at most four at once (an unknown user is checked against
    /// a dummy hash, so both take the same time).
    async fn password_matches(
        &self,
        username: &str,
        password: String,
    ) -> Result<bool, ConfigError> {
        let stored = self.inner.store.staff_password_hash(username).await?;
        let _permit = self
            .inner
            .hashing
            .acquire()
            .await
            .map_err(|_| ConfigError::Internal("closed".into()))?;
        let dummy = self.inner.dummy_hash.clone();
        Ok(tokio::task::spawn_blocking(move || {
            verify_password(&password, stored.as_deref(), &dummy)
        })
        .await
        .unwrap_or(false))
    }
}

/// A missing field is empty.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct CsrfOnly {
    csrf: String,
}

pub(super) async fn signout(
    State(web): State<Web>,
    jar: CookieJar,
    StaffForm(me, _): StaffForm<CsrfOnly>,
) -> Response {
    if let Err(e) = web.inner.store.end_session(&me.id_hash).await {
        return failure(None, &e);
    }
    info!(user = %me.session.username, "admin sign-out");
    let jar = jar.remove(web.cookie(SESSION_COOKIE, String::new()));
    (jar, see_other("/login")).into_response()
}

csrf_forms!(CsrfOnly);
