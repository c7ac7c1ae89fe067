// Long: the admin page's handlers, one page each, with the HTML each writes; moving that HTML to templates (issue 14) will split it.
//! The admin web page for product staff (default `127.0.0.1:7004`).
//!
//! Every page is behind the sign-in; every form that changes something
//! carries the session's CSRF token. A change is always reviewed as a diff
//! against the live version before it is published, and every publish,
//! rollback and schema change lands in the audit log with who made it.

mod auth;
mod html;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Form, Json, Router,
    extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Query, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio::{net::TcpListener, sync::Semaphore};
use tracing::{info, warn};
use warren_proto::config::Document;

use auth::{Limiter, csrf_matches, token, token_hash, verify_password};
pub use auth::{check_password, check_username, hash_password};
use html::{Who, diff, errors, esc, page, unified, when};

use crate::{ConfigError, ConfigSettings, Hub, Store, store::StaffSession, store::now_ms};

const SESSION_COOKIE: &str = "warren_staff";
const SIGNIN_COOKIE: &str = "warren_signin";

#[derive(Clone, Debug)]
pub struct Web {
    inner: Arc<Inner>,
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

/// The value of the request's cookie `name` (parsed by the `cookie` crate).
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .and_then(|c| c.value_raw())
}

fn html_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, Html(body)).into_response();
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

fn with_cookie(mut r: Response, cookie: String) -> Response {
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
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
    html_response(
        status,
        page(
            "Error",
            who,
            &format!(
                r#"<div class="card"><h1>That did not work</h1><div class="errors">{}</div><p><a href="/">Back to the documents</a></p></div>"#,
                esc(&message)
            ),
        ),
    )
}

impl Web {
    pub fn new(store: Store, hub: Hub, settings: &ConfigSettings) -> Result<Web, ConfigError> {
        let dummy_hash = hash_password(&token()).map_err(ConfigError::Internal)?;
        Ok(Web {
            inner: Arc::new(Inner {
                store,
                hub,
                idle: Duration::from_secs(settings.session_idle_s.max(1)),
                max: Duration::from_secs(settings.session_max_s.max(1)),
                secure_cookies: settings.secure_cookies,
                limiter: Mutex::new(Limiter::new(
                    settings.signin_attempts,
                    Duration::from_secs(settings.signin_window_s.max(1)),
                )),
                dummy_hash,
                hashing: Semaphore::new(4),
            }),
        })
    }

    pub fn router(self) -> Router {
        Router::new()
            .route("/", get(documents))
            .route("/login", get(signin_page).post(signin))
            .route("/logout", post(signout))
            .route("/new", get(new_page).post(create))
            .route("/audit", get(audit))
            .route("/docs/{name}", get(editor))
            .route("/docs/{name}/edit", post(edit_again))
            .route("/docs/{name}/check", post(check))
            .route("/docs/{name}/review", post(review))
            .route("/docs/{name}/publish", post(publish))
            .route("/docs/{name}/history", get(history))
            .route("/docs/{name}/versions/{version}", get(version_page))
            .route("/docs/{name}/rollback", post(rollback))
            .route("/docs/{name}/schema", get(schema_page).post(save_schema))
            .fallback(not_found)
            .with_state(self)
    }

    fn cookie_attrs(&self) -> &'static str {
        if self.inner.secure_cookies {
            "; HttpOnly; SameSite=Strict; Path=/; Secure"
        } else {
            "; HttpOnly; SameSite=Strict; Path=/"
        }
    }

    /// The signed-in staff member, if the request has a live session; the
    /// session's idle time-out starts again.
    async fn me(&self, headers: &HeaderMap) -> Result<Option<Me>, ConfigError> {
        let Some(token) = cookie(headers, SESSION_COOKIE) else {
            return Ok(None);
        };
        let id_hash = token_hash(token);
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
        match web.me(&parts.headers).await {
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
        let headers = req.headers().clone();
        let Form(form) = Form::<T>::from_request(req, web)
            .await
            .map_err(IntoResponse::into_response)?;
        match web.me(&headers).await {
            Ok(Some(me)) if csrf_matches(&me.session.csrf, form.csrf()) => Ok(StaffForm(me, form)),
            Ok(Some(me)) => {
                warn!(user = %me.session.username, "admin page: a change with a bad CSRF token was refused");
                Err(html_response(
                    StatusCode::FORBIDDEN,
                    page(
                        "Refused",
                        Some(&me.who()),
                        r#"<div class="card"><h1>Refused</h1><div class="errors">This form is out of date or did not come from this site (bad CSRF token). Reload the page and try again.</div></div>"#,
                    ),
                ))
            }
            Ok(None) => Err(html_response(
                StatusCode::UNAUTHORIZED,
                page(
                    "Signed out",
                    None,
                    r#"<div class="card signin"><h1>You are not signed in</h1><p>Your session has ended, so nothing was changed. <a href="/login">Sign in</a> and try again.</p></div>"#,
                ),
            )),
            Err(e) => Err(failure(None, &e)),
        }
    }
}

async fn not_found(State(web): State<Web>, headers: HeaderMap) -> Response {
    let me = web.me(&headers).await.ok().flatten();
    let who = me.as_ref().map(Me::who);
    failure(
        who.as_ref(),
        &ConfigError::NotFound("there is no such page".into()),
    )
}

// ---- sign-in ----

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

fn signin_form(csrf: &str, next: &str, username: &str, message: Option<&str>) -> String {
    let message = message
        .map(|m| format!(r#"<div class="errors" id="signin-error">{}</div>"#, esc(m)))
        .unwrap_or_default();
    page(
        "Sign in",
        None,
        &format!(
            r#"<div class="card signin"><h1>Sign in</h1><p class="sub">Staff accounts are created with <code>warren config-admin add-user</code>.</p>{message}
<form method="post" action="/login">
<input type="hidden" name="csrf" value="{c}"><input type="hidden" name="next" value="{n}">
<label for="username">Username</label><input type="text" id="username" name="username" value="{u}" autocomplete="username" autofocus required>
<label for="password">Password</label><input type="password" id="password" name="password" autocomplete="current-password" required>
<div class="row"><button class="btn" type="submit" id="signin">Sign in</button></div></form></div>"#,
            c = esc(csrf),
            n = esc(next),
            u = esc(username)
        ),
    )
}

async fn signin_page(
    State(web): State<Web>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    if let Ok(Some(_)) = web.me(&headers).await {
        return see_other(&safe_next(q.next.as_deref()));
    }
    let csrf = token();
    let r = html_response(
        StatusCode::OK,
        signin_form(&csrf, &safe_next(q.next.as_deref()), "", None),
    );
    with_cookie(
        r,
        format!("{SIGNIN_COOKIE}={csrf}{}; Max-Age=3600", web.cookie_attrs()),
    )
}

#[derive(Deserialize)]
struct SigninForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    next: Option<String>,
}

// Long: every outcome of a sign-in (limits, CSRF, password, session) answered where it is decided.
async fn signin(
    State(web): State<Web>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<SigninForm>,
) -> Response {
    let next = safe_next(f.next.as_deref());
    let expected = cookie(&headers, SIGNIN_COOKIE).unwrap_or("");
    if !csrf_matches(expected, &f.csrf) {
        let csrf = token();
        let r = html_response(
            StatusCode::FORBIDDEN,
            signin_form(
                &csrf,
                &next,
                &f.username,
                Some("This sign-in form has expired. Please sign in again."),
            ),
        );
        return with_cookie(
            r,
            format!("{SIGNIN_COOKIE}={csrf}{}; Max-Age=3600", web.cookie_attrs()),
        );
    }
    let username = f.username.trim().to_owned();
    let limited = {
        let mut limiter = web.inner.limiter.lock().unwrap_or_else(|p| p.into_inner());
        limiter
            .check(peer.ip(), &username)
            .or_else(|| limiter.full().then_some(Duration::from_secs(60)))
    };
    if let Some(wait) = limited {
        warn!(ip = %peer.ip(), user = %username, "admin sign-in refused: too many attempts");
        let message = format!(
            "Too many sign-in attempts. Try again in {} seconds.",
            wait.as_secs().max(1)
        );
        let mut r = html_response(
            StatusCode::TOO_MANY_REQUESTS,
            signin_form(&f.csrf, &next, &username, Some(&message)),
        );
        if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let stored = match web.inner.store.staff_password_hash(&username).await {
        Ok(h) => h,
        Err(e) => return failure(None, &e),
    };
    let ok = {
        let Ok(_permit) = web.inner.hashing.acquire().await else {
            return failure(None, &ConfigError::Internal("closed".into()));
        };
        let (password, dummy) = (f.password.clone(), web.inner.dummy_hash.clone());
        tokio::task::spawn_blocking(move || verify_password(&password, stored.as_deref(), &dummy))
            .await
            .unwrap_or(false)
    };
    if !ok {
        web.inner
            .limiter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .failed(peer.ip(), &username);
        info!(ip = %peer.ip(), user = %username, "admin sign-in failed");
        return html_response(
            StatusCode::UNAUTHORIZED,
            signin_form(
                &f.csrf,
                &next,
                &username,
                Some("Wrong username or password."),
            ),
        );
    }
    web.inner
        .limiter
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .succeeded(&username);
    let session_token = token();
    let now = now_ms();
    let session = StaffSession {
        username: username.clone(),
        csrf: token(),
        created_at_ms: now,
        expires_at_ms: now + web.inner.idle.min(web.inner.max).as_millis() as i64,
    };
    if let Err(e) = web
        .inner
        .store
        .create_session(&token_hash(&session_token), &session)
        .await
    {
        return failure(None, &e);
    }
    let _ = web.inner.store.purge_sessions().await;
    info!(ip = %peer.ip(), user = %username, "admin sign-in");
    let r = with_cookie(
        see_other(&next),
        format!("{SESSION_COOKIE}={session_token}{}", web.cookie_attrs()),
    );
    with_cookie(
        r,
        format!("{SIGNIN_COOKIE}={}; Max-Age=0", web.cookie_attrs()),
    )
}

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

async fn signout(State(web): State<Web>, StaffForm(me, _): StaffForm<CsrfOnly>) -> Response {
    if let Err(e) = web.inner.store.end_session(&me.id_hash).await {
        return failure(None, &e);
    }
    info!(user = %me.session.username, "admin sign-out");
    with_cookie(
        see_other("/login"),
        format!("{SESSION_COOKIE}=; Max-Age=0{}", web.cookie_attrs()),
    )
}

// ---- documents ----

async fn documents(State(web): State<Web>, SignedIn(me): SignedIn) -> Response {
    let docs = match web.inner.store.list().await {
        Ok(d) => d,
        Err(e) => return failure(Some(&me.who()), &e),
    };
    let mut rows = String::new();
    for d in &docs {
        rows.push_str(&format!(
            r#"<tr><td><a href="/docs/{n}" class="doc-link"><b>{n}</b></a></td><td><span class="badge">v{v}</span></td><td>{a}</td><td class="muted">{w}</td><td>{s}</td><td><a href="/docs/{n}/history">History</a></td></tr>"#,
            n = esc(&d.name),
            v = d.version,
            a = esc(&d.author),
            w = when(d.published_at_ms),
            s = if d.has_schema { "✓" } else { "—" },
        ));
    }
    if docs.is_empty() {
        rows = r#"<tr><td colspan="6" class="muted">No documents yet.</td></tr>"#.into();
    }
    html_response(
        StatusCode::OK,
        page(
            "Documents",
            Some(&me.who()),
            &format!(
                r#"<div class="row" style="justify-content:space-between;margin:0 0 16px"><div><h1>Documents</h1><p class="sub">The live game configuration. Changes reach the running game within a second of publishing.</p></div><a class="btn" href="/new">New document</a></div>
<div class="card"><table id="documents"><thead><tr><th>Document</th><th>Live version</th><th>Last edited by</th><th>Published</th><th>Schema</th><th></th></tr></thead><tbody>{rows}</tbody></table></div>"#
            ),
        ),
    )
}

#[derive(Deserialize)]
struct EditorQuery {
    published: Option<i64>,
    rolled_back: Option<i64>,
    schema_saved: Option<u8>,
}

struct EditorView<'a> {
    live: &'a Document,
    body: &'a str,
    comment: &'a str,
    expected: i64,
    problems: &'a [String],
    notice: Option<String>,
}

fn editor_html(me: &Me, has_schema: bool, v: &EditorView<'_>) -> String {
    let name = esc(&v.live.name);
    let notice = v
        .notice
        .as_ref()
        .map(|n| format!(r#"<div class="ok" id="notice">{}</div>"#, esc(n)))
        .unwrap_or_default();
    let stale = if v.expected != v.live.version {
        format!(
            r#"<div class="errors">You started from version {} but the live version is now {}. Review will show the difference against the live version; reload to start from it.</div>"#,
            v.expected, v.live.version
        )
    } else {
        String::new()
    };
    format!(
        r#"<h1>{name} <span class="badge" id="live-version">live: v{ver}</span></h1>
<p class="sub">Last published by <b>{author}</b> on {at}. {schema} · <a href="/docs/{name}/history">History</a> · <a href="/docs/{name}/schema">Schema</a></p>
{notice}{stale}
<div class="card"><form method="post" action="/docs/{name}/review" id="editor">
<input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="expected_version" value="{expected}">
<label for="body">Document (JSON)</label>
<textarea name="body" id="body" spellcheck="false">{body}</textarea>
<div id="live-check">{errors}</div>
<label for="comment">What changed and why (shown in the history)</label>
<input type="text" name="comment" id="comment" value="{comment}" maxlength="1024">
<div class="row"><button class="btn" type="submit" id="review">Review changes</button><span class="muted">You will see the difference against the live version before anything is published.</span></div>
</form></div>
<script>
(function(){{
  var body=document.getElementById('body'), out=document.getElementById('live-check'), timer=null;
  function check(){{
    fetch('/docs/{name}/check',{{method:'POST',headers:{{'content-type':'application/json','x-csrf-token':'{csrf}'}},body:JSON.stringify({{body:body.value}})}})
      .then(function(r){{return r.json();}})
      .then(function(j){{out.innerHTML=j.html;}})
      .catch(function(){{}});
  }}
  body.addEventListener('input',function(){{clearTimeout(timer);timer=setTimeout(check,400);}});
}})();
</script>"#,
        ver = v.live.version,
        author = esc(&v.live.author),
        at = when(v.live.published_at_ms),
        schema = if has_schema {
            "Checked against its schema"
        } else {
            "No schema"
        },
        csrf = esc(&me.session.csrf),
        expected = v.expected,
        body = esc(v.body),
        errors = errors(v.problems),
        comment = esc(v.comment),
    )
}

async fn render_editor(
    web: &Web,
    me: &Me,
    name: &str,
    view: impl FnOnce(&Document) -> (String, String, i64, Vec<String>, Option<String>),
    status: StatusCode,
) -> Response {
    let live = match web.inner.store.get(name, None).await {
        Ok(d) => d,
        Err(e) => return failure(Some(&me.who()), &e),
    };
    let has_schema = matches!(web.inner.store.schema(name).await, Ok(Some(_)));
    let (body, comment, expected, problems, notice) = view(&live);
    let v = EditorView {
        live: &live,
        body: &body,
        comment: &comment,
        expected,
        problems: &problems,
        notice,
    };
    html_response(
        status,
        page(name, Some(&me.who()), &editor_html(me, has_schema, &v)),
    )
}

async fn editor(
    State(web): State<Web>,
    SignedIn(me): SignedIn,
    Path(name): Path<String>,
    Query(q): Query<EditorQuery>,
) -> Response {
    let notice = match (q.published, q.rolled_back, q.schema_saved) {
        (Some(v), _, _) => Some(format!(
            "Published version {v}. The game picks it up within a second."
        )),
        (_, Some(v), _) => Some(format!("Rolled back: version {v} is live.")),
        (_, _, Some(_)) => Some("Schema saved.".to_owned()),
        _ => None,
    };
    render_editor(
        &web,
        &me,
        &name,
        |live| {
            (
                live.body.clone(),
                String::new(),
                live.version,
                vec![],
                notice,
            )
        },
        StatusCode::OK,
    )
    .await
}

#[derive(Deserialize)]
struct EditForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    expected_version: i64,
}

async fn edit_again(
    State(web): State<Web>,
    Path(name): Path<String>,
    StaffForm(me, f): StaffForm<EditForm>,
) -> Response {
    render_editor(
        &web,
        &me,
        &name,
        |_| (f.body, f.comment, f.expected_version, vec![], None),
        StatusCode::OK,
    )
    .await
}

#[derive(Deserialize)]
struct CheckReq {
    body: String,
}

#[derive(Serialize)]
struct CheckReply {
    ok: bool,
    errors: Vec<String>,
    html: String,
}

/// Live checking while typing (the editor's JavaScript): the validation
/// errors, or the diff against the live version.
async fn check(
    State(web): State<Web>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Json(req): Json<CheckReq>,
) -> Response {
    let given = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match web.me(&headers).await {
        Ok(Some(me)) if csrf_matches(&me.session.csrf, given) => {}
        Ok(Some(_)) => return (StatusCode::FORBIDDEN, "bad CSRF token").into_response(),
        Ok(None) => return (StatusCode::UNAUTHORIZED, "not signed in").into_response(),
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
    let reply = match web.inner.store.check(&name, &req.body).await {
        Ok((_, text)) => {
            let live = web
                .inner
                .store
                .get(&name, None)
                .await
                .map(|d| d.body)
                .unwrap_or_default();
            CheckReply {
                ok: true,
                errors: vec![],
                html: format!(
                    r#"<div class="ok">Valid. Changes against the live version:</div>{}"#,
                    diff(&live, &text)
                ),
            }
        }
        Err(e) => {
            let p = problems(&e);
            CheckReply {
                ok: false,
                html: errors(&p),
                errors: p,
            }
        }
    };
    Json(reply).into_response()
}

async fn review(
    State(web): State<Web>,
    Path(name): Path<String>,
    StaffForm(me, f): StaffForm<EditForm>,
) -> Response {
    let checked = web.inner.store.check(&name, &f.body).await;
    let live = match web.inner.store.get(&name, None).await {
        Ok(d) => d,
        Err(e) => return failure(Some(&me.who()), &e),
    };
    let text = match checked {
        Ok((_, text)) if text == live.body => {
            let p = vec!["Nothing changed: this is the live version.".to_owned()];
            return render_editor(
                &web,
                &me,
                &name,
                |_| (f.body, f.comment, f.expected_version, p, None),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
        Ok((_, text)) => text,
        Err(e) => {
            let p = problems(&e);
            return render_editor(
                &web,
                &me,
                &name,
                |_| (f.body, f.comment, f.expected_version, p, None),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let n = esc(&name);
    let hidden = format!(
        r#"<input type="hidden" name="csrf" value="{c}"><input type="hidden" name="body" value="{b}"><input type="hidden" name="comment" value="{m}"><input type="hidden" name="expected_version" value="{e}">"#,
        c = esc(&me.session.csrf),
        b = esc(&text),
        m = esc(&f.comment),
        e = f.expected_version
    );
    let body = format!(
        r#"<h1>Review: {n}</h1><p class="sub">Version {next} will replace the live version {live_v}. Lines in red go, lines in green come.</p>
<div class="card"><h3 style="margin-top:0">Changes against the live version</h3>{d}
<p class="muted">Comment: {comment}</p>
<div class="row"><form method="post" action="/docs/{n}/publish">{hidden}<button class="btn" type="submit" id="publish">Publish version {next}</button></form>
<form method="post" action="/docs/{n}/edit">{hidden}<button class="btn secondary" type="submit" id="keep-editing">Keep editing</button></form></div></div>"#,
        next = live.version + 1,
        live_v = live.version,
        d = diff(&live.body, &text),
        comment = if f.comment.is_empty() {
            "(none)".to_owned()
        } else {
            esc(&f.comment)
        },
    );
    html_response(
        StatusCode::OK,
        page(&format!("Review {name}"), Some(&me.who()), &body),
    )
}

async fn publish(
    State(web): State<Web>,
    Path(name): Path<String>,
    StaffForm(me, f): StaffForm<EditForm>,
) -> Response {
    let expected = (f.expected_version > 0).then_some(f.expected_version);
    match web
        .inner
        .store
        .publish(&name, &f.body, &me.session.username, &f.comment, expected)
        .await
    {
        Ok(doc) => {
            web.inner.hub.published(&doc.name, doc.version);
            see_other(&format!(
                "/docs/{}?published={}",
                url_encode(&name),
                doc.version
            ))
        }
        Err(
            e @ (ConfigError::NotFound(_) | ConfigError::Unavailable(_) | ConfigError::Internal(_)),
        ) => failure(Some(&me.who()), &e),
        Err(e) => {
            let p = problems(&e);
            render_editor(
                &web,
                &me,
                &name,
                |_| (f.body, f.comment, f.expected_version, p, None),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

// ---- history and rollback ----

#[derive(Deserialize)]
struct HistoryQuery {
    rolled_back: Option<i64>,
    to: Option<i64>,
}

async fn history(
    State(web): State<Web>,
    SignedIn(me): SignedIn,
    Path(name): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Response {
    let versions = match web.inner.store.versions(&name).await {
        Ok(v) => v,
        Err(e) => return failure(Some(&me.who()), &e),
    };
    let live = versions.first().map_or(0, |v| v.version);
    let n = esc(&name);
    let csrf = esc(&me.session.csrf);
    let mut rows = String::new();
    for v in &versions {
        let action = if v.version == live {
            r#"<span class="badge">live</span>"#.to_owned()
        } else {
            format!(
                r#"<form method="post" action="/docs/{n}/rollback" style="margin:0"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="to" value="{ver}"><button class="btn danger rollback" type="submit" id="rollback-{ver}">Roll back to v{ver}</button></form>"#,
                ver = v.version
            )
        };
        rows.push_str(&format!(
            r#"<tr><td><a href="/docs/{n}/versions/{ver}"><b>v{ver}</b></a></td><td>{a}</td><td class="muted">{w}</td><td>{c}</td><td>{action}</td></tr>"#,
            ver = v.version,
            a = esc(&v.author),
            w = when(v.published_at_ms),
            c = esc(&v.comment),
        ));
    }
    let notice = match (q.rolled_back, q.to) {
        (Some(v), Some(to)) => format!(
            r#"<div class="ok" id="notice">Rolled back to version {to}: it is live again as version {v}.</div>"#
        ),
        _ => String::new(),
    };
    html_response(
        StatusCode::OK,
        page(
            &format!("{name} history"),
            Some(&me.who()),
            &format!(
                r#"<h1>{n}: history</h1><p class="sub">Every published version, newest first. Rolling back publishes the old version again as a new version; nothing is ever erased. <a href="/docs/{n}">Edit</a> · <a href="/audit?name={n}">Audit log</a></p>{notice}
<div class="card"><table id="history"><thead><tr><th>Version</th><th>By</th><th>Published</th><th>Comment</th><th></th></tr></thead><tbody>{rows}</tbody></table></div>"#
            ),
        ),
    )
}

async fn version_page(
    State(web): State<Web>,
    SignedIn(me): SignedIn,
    Path((name, version)): Path<(String, i64)>,
) -> Response {
    let (doc, live) = match (
        web.inner.store.get(&name, Some(version)).await,
        web.inner.store.get(&name, None).await,
    ) {
        (Ok(d), Ok(l)) => (d, l),
        (Err(e), _) | (_, Err(e)) => return failure(Some(&me.who()), &e),
    };
    let n = esc(&name);
    html_response(
        StatusCode::OK,
        page(
            &format!("{name} v{version}"),
            Some(&me.who()),
            &format!(
                r#"<h1>{n} <span class="badge">v{version}</span></h1><p class="sub">Published by <b>{a}</b> on {w}. {c} · <a href="/docs/{n}/history">History</a></p>
<div class="card"><h3 style="margin-top:0">This version</h3><pre class="body">{b}</pre>
<h3>From the live version (v{lv}) to this one</h3>{d}</div>"#,
                a = esc(&doc.author),
                w = when(doc.published_at_ms),
                c = esc(&doc.comment),
                b = esc(&doc.body),
                lv = live.version,
                d = diff(&live.body, &doc.body),
            ),
        ),
    )
}

#[derive(Deserialize)]
struct RollbackForm {
    #[serde(default)]
    csrf: String,
    to: i64,
}

async fn rollback(
    State(web): State<Web>,
    Path(name): Path<String>,
    StaffForm(me, f): StaffForm<RollbackForm>,
) -> Response {
    match web
        .inner
        .store
        .rollback(&name, f.to, &me.session.username)
        .await
    {
        Ok(doc) => {
            web.inner.hub.published(&doc.name, doc.version);
            see_other(&format!(
                "/docs/{}/history?rolled_back={}&to={}",
                url_encode(&name),
                doc.version,
                f.to
            ))
        }
        Err(e) => failure(Some(&me.who()), &e),
    }
}

// ---- schema ----

fn schema_html(me: &Me, name: &str, schema: &str, problems: &[String]) -> String {
    let n = esc(name);
    format!(
        r#"<h1>{n}: schema</h1><p class="sub">A JSON Schema every version of this document must match. Leave it empty to remove it. The live version must match a new schema. <a href="/docs/{n}">Back to the editor</a></p>{e}
<div class="card"><form method="post" action="/docs/{n}/schema"><input type="hidden" name="csrf" value="{c}">
<textarea name="schema" id="schema" spellcheck="false">{s}</textarea>
<div class="row"><button class="btn" type="submit" id="save-schema">Save schema</button></div></form></div>"#,
        e = errors(problems),
        c = esc(&me.session.csrf),
        s = esc(schema),
    )
}

async fn schema_page(
    State(web): State<Web>,
    SignedIn(me): SignedIn,
    Path(name): Path<String>,
) -> Response {
    match web.inner.store.schema(&name).await {
        Ok(s) => html_response(
            StatusCode::OK,
            page(
                &format!("{name} schema"),
                Some(&me.who()),
                &schema_html(&me, &name, &s.unwrap_or_default(), &[]),
            ),
        ),
        Err(e) => failure(Some(&me.who()), &e),
    }
}

#[derive(Deserialize)]
struct SchemaForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    schema: String,
}

async fn save_schema(
    State(web): State<Web>,
    Path(name): Path<String>,
    StaffForm(me, f): StaffForm<SchemaForm>,
) -> Response {
    let schema = (!f.schema.trim().is_empty()).then_some(f.schema.as_str());
    match web
        .inner
        .store
        .set_schema(&name, schema, &me.session.username)
        .await
    {
        Ok(()) => see_other(&format!("/docs/{}?schema_saved=1", url_encode(&name))),
        Err(
            e @ (ConfigError::NotFound(_) | ConfigError::Unavailable(_) | ConfigError::Internal(_)),
        ) => failure(Some(&me.who()), &e),
        Err(e) => html_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            page(
                &format!("{name} schema"),
                Some(&me.who()),
                &schema_html(&me, &name, &f.schema, &problems(&e)),
            ),
        ),
    }
}

// ---- new documents ----

fn new_html(me: &Me, name: &str, body: &str, schema: &str, problems: &[String]) -> String {
    format!(
        r#"<h1>New document</h1><p class="sub">A name of a-z, 0-9, _ - . and its first version. A schema is optional but recommended: it stops mistakes before they reach the game.</p>{e}
<div class="card"><form method="post" action="/new"><input type="hidden" name="csrf" value="{c}">
<label for="name">Name</label><input type="text" id="name" name="name" value="{n}" required maxlength="64">
<label for="body">First version (JSON)</label><textarea name="body" id="body" spellcheck="false">{b}</textarea>
<label for="schema">JSON Schema (optional)</label><textarea name="schema" id="schema" spellcheck="false" style="min-height:180px">{s}</textarea>
<div class="row"><button class="btn" type="submit" id="create">Create</button></div></form></div>"#,
        e = errors(problems),
        c = esc(&me.session.csrf),
        n = esc(name),
        b = esc(body),
        s = esc(schema),
    )
}

async fn new_page(SignedIn(me): SignedIn) -> Response {
    html_response(
        StatusCode::OK,
        page(
            "New document",
            Some(&me.who()),
            &new_html(&me, "", "{\n}\n", "", &[]),
        ),
    )
}

#[derive(Deserialize)]
struct NewForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    schema: String,
}

async fn create(State(web): State<Web>, StaffForm(me, f): StaffForm<NewForm>) -> Response {
    let name = f.name.trim();
    let schema = (!f.schema.trim().is_empty()).then_some(f.schema.as_str());
    match web
        .inner
        .store
        .create(name, schema, &f.body, &me.session.username)
        .await
    {
        Ok(doc) => {
            web.inner.hub.published(&doc.name, doc.version);
            see_other(&format!(
                "/docs/{}?published={}",
                url_encode(name),
                doc.version
            ))
        }
        Err(e @ (ConfigError::Unavailable(_) | ConfigError::Internal(_))) => {
            failure(Some(&me.who()), &e)
        }
        Err(e) => html_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            page(
                "New document",
                Some(&me.who()),
                &new_html(&me, name, &f.body, &f.schema, &problems(&e)),
            ),
        ),
    }
}

// ---- audit log ----

#[derive(Deserialize)]
struct AuditQuery {
    name: Option<String>,
}

async fn audit(
    State(web): State<Web>,
    SignedIn(me): SignedIn,
    Query(q): Query<AuditQuery>,
) -> Response {
    let name = q.name.filter(|n| !n.is_empty());
    let entries = match web.inner.store.audit(name.as_deref(), 500).await {
        Ok(e) => e,
        Err(e) => return failure(Some(&me.who()), &e),
    };
    let mut rows = String::new();
    for e in &entries {
        let versions = match e.action.as_str() {
            "create" => format!("v{}", e.to_version),
            "schema" => "schema".to_owned(),
            _ => format!("v{} → v{}", e.from_version, e.to_version),
        };
        rows.push_str(&format!(
            r#"<tr><td class="muted">{w}</td><td><b>{a}</b></td><td><span class="badge">{act}</span></td><td><a href="/docs/{n}">{n}</a></td><td>{versions}</td><td><details><summary>Show change</summary>{d}</details></td></tr>"#,
            w = when(e.at_ms),
            a = esc(&e.actor),
            act = esc(&e.action),
            n = esc(&e.name),
            d = unified(&e.change),
        ));
    }
    if entries.is_empty() {
        rows = r#"<tr><td colspan="6" class="muted">Nothing yet.</td></tr>"#.into();
    }
    let title = match &name {
        Some(n) => format!("Audit log: {}", esc(n)),
        None => "Audit log".to_owned(),
    };
    html_response(
        StatusCode::OK,
        page(
            "Audit log",
            Some(&me.who()),
            &format!(
                r#"<h1>{title}</h1><p class="sub">Every publish, rollback and schema change: who, when, from which version to which, and what changed. Newest first (the last 500).</p>
<div class="card"><table id="audit"><thead><tr><th>When</th><th>Who</th><th>Action</th><th>Document</th><th>Versions</th><th>Change</th></tr></thead><tbody>{rows}</tbody></table></div>"#
            ),
        ),
    )
}

/// Serves the admin page on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    web: Web,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "config admin page serving");
    axum::serve(
        listener,
        web.router()
            .into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

impl CsrfForm for CsrfOnly {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl CsrfForm for EditForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl CsrfForm for NewForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl CsrfForm for RollbackForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl CsrfForm for SchemaForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}
