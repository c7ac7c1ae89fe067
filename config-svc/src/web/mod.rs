//! The admin web page for product staff (default `127.0.0.1:7004`).
//!
//! Every page is behind the sign-in; every form that changes something
//! carries the session's CSRF token. A change is always reviewed as a diff
//! against the live version before it is published, and every publish,
//! rollback and schema change lands in the audit log with who made it.
//!
//! This file is the page's frame: the router, the two extractors every
//! handler stands on (`SignedIn` for a page, `StaffForm` for a change)
//! and the answers they share. The handlers are in `signin.rs` and
//! `documents.rs`, the HTML in `views.rs`.

/// Forms whose `csrf` field carries the session's CSRF token.
macro_rules! csrf_forms {
    ($($form:ty),* $(,)?) => {
        $(impl super::CsrfForm for $form {
            fn csrf(&self) -> &str {
                &self.csrf
            }
        })*
    };
}

mod auth;
mod documents;
mod signin;
mod views;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Form, Router,
    extract::{FromRequest, FromRequestParts, Request, State},
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use maud::Markup;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use tracing::{info, warn};
use warren_http::calls::Calls;

use auth::{Limiter, csrf_matches, token, token_hash};
pub use auth::{check_password, check_username, hash_password};
use views::Who;

use crate::{ConfigError, ConfigSettings, Hub, Store, store::StaffSession, store::now_ms};

const SESSION_COOKIE: &str = "warren_staff";
const SIGNIN_COOKIE: &str = "warren_signin";

#[derive(Clone, Debug)]
pub struct Web {
    inner: Arc<Inner>,
    /// `/metrics` behind the operators' token, and the calls it counts.
    metrics: Option<(Calls, String)>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    hub: Hub,
    idle: Duration,
    max: Duration,
    secure_cookies: bool,
    limiter: Mutex<Limiter>,
    dummy_hash: String,
    /// argon2 checks at once (each takes ~19 MiB for tens of ms).
    hashing: Semaphore,
}

/// The staff member making a request.
struct Me {
    id_hash: String,
    session: StaffSession,
}

impl Me {
    fn who(&self) -> Who<'_> {
        Who {
            username: &self.session.username,
            csrf: &self.session.csrf,
        }
    }
}

/// A page, never cached and never framed.
fn html_response(status: StatusCode, page: Markup) -> Response {
    let mut r = (status, Html(page.into_string())).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut()
        .insert("x-frame-options", HeaderValue::from_static("DENY"));
    r
}

fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// Only paths on this site are followed after sign-in.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".to_owned(),
    }
}

/// What a path may carry as a query value unescaped: RFC 3986's unreserved
/// characters, and `/`.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

fn url_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, QUERY_VALUE).to_string()
}

fn problems(e: &ConfigError) -> Vec<String> {
    match e {
        ConfigError::Invalid(p) => p.clone(),
        other => vec![other.to_string()],
    }
}

fn failure(who: Option<&Who<'_>>, e: &ConfigError) -> Response {
    let status = match e {
        ConfigError::NotFound(_) => StatusCode::NOT_FOUND,
        ConfigError::BadRequest(_) | ConfigError::Invalid(_) => StatusCode::BAD_REQUEST,
        ConfigError::Conflict(_) => StatusCode::CONFLICT,
        ConfigError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        ConfigError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let message = match e {
        ConfigError::Internal(m) => {
            warn!(error = %m, "admin page internal error");
            "Something went wrong on our side; the error is in config-svc's log.".to_owned()
        }
        other => other.to_string(),
    };
    html_response(status, views::failure(who, &message))
}

impl Web {
    pub fn new(store: Store, hub: Hub, settings: &ConfigSettings) -> Result<Web, ConfigError> {
        let dummy_hash = hash_password(&token()).map_err(ConfigError::Internal)?;
        Ok(Web {
            inner: Arc::new(Inner {
                store,
                hub,
                idle: settings.session_idle_s.max(Duration::from_secs(1)),
                max: settings.session_max_s.max(Duration::from_secs(1)),
                secure_cookies: settings.secure_cookies,
                limiter: Mutex::new(Limiter::new(
                    settings.signin_attempts,
                    settings.signin_window_s.max(Duration::from_secs(1)),
                )),
                dummy_hash,
                hashing: Semaphore::new(4),
            }),
            metrics: None,
        })
    }

    /// Counts every call of the page in `calls`, and serves them all
    /// (the gRPC side's too) at `/metrics` behind `token`.
    pub fn with_metrics(self, calls: Calls, token: String) -> Web {
        Web {
            metrics: Some((calls, token)),
            ..self
        }
    }

    pub fn router(self) -> Router {
        let metrics = self.metrics.clone();
        let page = self.routes();
        let Some((calls, token)) = metrics else {
            return page;
        };
        calls.metrics_route(token).merge(page).layer(calls.layer())
    }

    fn routes(self) -> Router {
        Router::new()
            .route("/", get(documents::list))
            .route("/login", get(signin::page).post(signin::submit))
            .route("/logout", post(signin::signout))
            .route("/new", get(documents::new_page).post(documents::create))
            .route("/audit", get(documents::audit))
            .route("/docs/{name}", get(documents::editor))
            .route("/docs/{name}/edit", post(documents::edit_again))
            .route("/docs/{name}/check", post(documents::check))
            .route("/docs/{name}/review", post(documents::review))
            .route("/docs/{name}/publish", post(documents::publish))
            .route("/docs/{name}/history", get(documents::history))
            .route("/docs/{name}/versions/{version}", get(documents::version))
            .route("/docs/{name}/rollback", post(documents::rollback))
            .route(
                "/docs/{name}/schema",
                get(documents::schema_page).post(documents::save_schema),
            )
            .fallback(not_found)
            .with_state(self)
    }

    /// A cookie of this page: HttpOnly, SameSite=Strict, for the whole
    /// site, and Secure when `secure_cookies` is on.
    fn cookie(&self, name: &'static str, value: String) -> Cookie<'static> {
        Cookie::build((name, value))
            .http_only(true)
            .same_site(SameSite::Strict)
            .path("/")
            .secure(self.inner.secure_cookies)
            .build()
    }

    /// The signed-in staff member, if the request has a live session; the
    /// session's idle time-out starts again.
    async fn me(&self, jar: &CookieJar) -> Result<Option<Me>, ConfigError> {
        let Some(token) = jar.get(SESSION_COOKIE) else {
            return Ok(None);
        };
        let id_hash = token_hash(token.value());
        let Some(mut session) = self.inner.store.session(&id_hash).await? else {
            return Ok(None);
        };
        let expires = (now_ms() + self.inner.idle.as_millis() as i64)
            .min(session.created_at_ms + self.inner.max.as_millis() as i64);
        if expires > session.expires_at_ms {
            self.inner.store.extend_session(&id_hash, expires).await?;
            session.expires_at_ms = expires;
        }
        Ok(Some(Me { id_hash, session }))
    }
}

/// A page for signed-in staff: the request's live session (its idle
/// time-out starts again). Without one the browser is sent to the sign-in,
/// which brings it back here after.
struct SignedIn(Me);

impl FromRequestParts<Web> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Self, Response> {
        match web.me(&CookieJar::from_headers(&parts.headers)).await {
            Ok(Some(me)) => Ok(SignedIn(me)),
            Ok(None) => Err(see_other(&format!(
                "/login?next={}",
                url_encode(parts.uri.path())
            ))),
            Err(e) => Err(failure(None, &e)),
        }
    }
}

/// A form that carries the session's CSRF token.
trait CsrfForm {
    fn csrf(&self) -> &str;
}

/// A change posted by signed-in staff: who posted it, and the form, whose
/// CSRF token matched the session's. A bad token is refused (403), a post
/// without a live session too (401): nothing is changed either way.
struct StaffForm<T>(Me, T);

impl<T: DeserializeOwned + CsrfForm + Send> FromRequest<Web> for StaffForm<T> {
    type Rejection = Response;

    async fn from_request(req: Request, web: &Web) -> Result<Self, Response> {
        let jar = CookieJar::from_headers(req.headers());
        let Form(form) = Form::<T>::from_request(req, web)
            .await
            .map_err(IntoResponse::into_response)?;
        match web.me(&jar).await {
            Ok(Some(me)) if csrf_matches(&me.session.csrf, form.csrf()) => Ok(StaffForm(me, form)),
            Ok(Some(me)) => {
                warn!(user = %me.session.username, "admin page: a change with a bad CSRF token was refused");
                Err(html_response(
                    StatusCode::FORBIDDEN,
                    views::refused(&me.who()),
                ))
            }
            Ok(None) => Err(html_response(StatusCode::UNAUTHORIZED, views::signed_out())),
            Err(e) => Err(failure(None, &e)),
        }
    }
}

async fn not_found(State(web): State<Web>, jar: CookieJar) -> Response {
    let me = web.me(&jar).await.ok().flatten();
    let who = me.as_ref().map(Me::who);
    failure(
        who.as_ref(),
        &ConfigError::NotFound("there is no such page".into()),
    )
}

/// Serves the admin page on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: warren_http::Listener,
    web: Web,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = axum::serve::Listener::local_addr(&listener)?;
    info!(%addr, tls = listener.tls(), "config admin page serving");
    axum::serve(
        listener,
        web.router()
            .into_make_service_with_connect_info::<warren_http::Peer>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
