//! The documents: the list, the editor with its live check, review and
//! publish, history and rollback, schemas, new documents and the audit log.

use axum::{
    Json,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use axum_extra::extract::cookie::CookieJar;
use maud::html;
use serde::{Deserialize, Serialize};

use super::{
    Me, SignedIn, StaffForm, Web, auth::csrf_matches, failure, html_response, problems, see_other,
    url_encode, views,
};
use crate::ConfigError;

/// The documents, with their live versions.
pub(super) async fn list(State(web): State<Web>, SignedIn(me): SignedIn) -> Response {
    match web.inner.store.list().await {
        Ok(docs) => html_response(StatusCode::OK, views::documents(&me.who(), &docs)),
        Err(e) => failure(Some(&me.who()), &e),
    }
}

/// What the editor holds when it is not the live version: a text posted
/// back, with what is wrong with it.
struct Draft {
    body: String,
    comment: String,
    expected: i64,
    problems: Vec<String>,
}

impl Draft {
    fn of(f: EditForm, problems: Vec<String>) -> Draft {
        Draft {
            body: f.body,
            comment: f.comment,
            expected: f.expected_version,
            problems,
        }
    }
}

/// The editor of `name`: the draft, or (without one) the live version.
async fn render_editor(
    web: &Web,
    me: &Me,
    name: &str,
    draft: Option<Draft>,
    notice: Option<String>,
    status: StatusCode,
) -> Response {
    let live = match web.inner.store.get(name, None).await {
        Ok(d) => d,
        Err(e) => return failure(Some(&me.who()), &e),
    };
    let has_schema = matches!(web.inner.store.schema(name).await, Ok(Some(_)));
    let draft = draft.unwrap_or_else(|| Draft {
        body: live.body.clone(),
        comment: String::new(),
        expected: live.version,
        problems: vec![],
    });
    let view = views::Editor {
        live: &live,
        has_schema,
        body: &draft.body,
        comment: &draft.comment,
        expected: draft.expected,
        problems: &draft.problems,
        notice,
    };
    html_response(status, views::editor(&me.who(), &view))
}

#[derive(Deserialize)]
pub(super) struct EditorQuery {
    published: Option<i64>,
    rolled_back: Option<i64>,
    schema_saved: Option<u8>,
}

pub(super) async fn editor(
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
    render_editor(&web, &me, &name, None, notice, StatusCode::OK).await
}

/// A missing field is empty.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct EditForm {
    csrf: String,
    body: String,
    comment: String,
    expected_version: i64,
}

/// Back from the review to the editor, with the text as it was.
pub(super) async fn edit_again(
    State(web): State<Web>,
    Path(name): Path<String>,
    StaffForm(me, f): StaffForm<EditForm>,
) -> Response {
    let draft = Draft::of(f, vec![]);
    render_editor(&web, &me, &name, Some(draft), None, StatusCode::OK).await
}

#[derive(Deserialize)]
pub(super) struct CheckReq {
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
pub(super) async fn check(
    State(web): State<Web>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Json(req): Json<CheckReq>,
) -> Response {
    let given = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match web.me(&CookieJar::from_headers(&headers)).await {
        Ok(Some(me)) if csrf_matches(&me.session.csrf, given) => {}
        Ok(Some(_)) => return (StatusCode::FORBIDDEN, "bad CSRF token").into_response(),
        Ok(None) => return (StatusCode::UNAUTHORIZED, "not signed in").into_response(),
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
    let reply = match web.inner.store.check(&name, &req.body).await {
        Ok((_, text)) => {
            let store = &web.inner.store;
            let live = store.get(&name, None).await.map(|d| d.body);
            let html = html! {
                div.ok { "Valid. Changes against the live version:" }
                (views::diff(&live.unwrap_or_default(), &text))
            };
            CheckReply {
                ok: true,
                errors: vec![],
                html: html.into_string(),
            }
        }
        Err(e) => {
            let p = problems(&e);
            CheckReply {
                ok: false,
                html: views::errors(&p).into_string(),
                errors: p,
            }
        }
    };
    Json(reply).into_response()
}

/// The change as a diff against the live version, before it is published;
/// a text that is invalid or unchanged goes back to the editor.
pub(super) async fn review(
    State(web): State<Web>,
    Path(name): Path<String>,
    StaffForm(me, f): StaffForm<EditForm>,
) -> Response {
    let checked = web.inner.store.check(&name, &f.body).await;
    let live = match web.inner.store.get(&name, None).await {
        Ok(d) => d,
        Err(e) => return failure(Some(&me.who()), &e),
    };
    let problems = match checked {
        Ok((_, text)) if text != live.body => {
            let review = views::Review {
                live: &live,
                text: &text,
                comment: &f.comment,
                expected: f.expected_version,
            };
            return html_response(StatusCode::OK, views::review(&me.who(), &review));
        }
        Ok(_) => vec!["Nothing changed: this is the live version.".to_owned()],
        Err(e) => problems(&e),
    };
    let draft = Draft::of(f, problems);
    let status = StatusCode::UNPROCESSABLE_ENTITY;
    render_editor(&web, &me, &name, Some(draft), None, status).await
}

pub(super) async fn publish(
    State(web): State<Web>,
    Path(name): Path<String>,
    StaffForm(me, f): StaffForm<EditForm>,
) -> Response {
    let expected = (f.expected_version > 0).then_some(f.expected_version);
    let author = &me.session.username;
    match web
        .inner
        .store
        .publish(&name, &f.body, author, &f.comment, expected)
        .await
    {
        Ok(doc) => {
            web.inner.hub.published(&doc.name, doc.version);
            let to = format!("/docs/{}?published={}", url_encode(&name), doc.version);
            see_other(&to)
        }
        Err(
            e @ (ConfigError::NotFound(_) | ConfigError::Unavailable(_) | ConfigError::Internal(_)),
        ) => failure(Some(&me.who()), &e),
        Err(e) => {
            let draft = Draft::of(f, problems(&e));
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            render_editor(&web, &me, &name, Some(draft), None, status).await
        }
    }
}

// ---- history and rollback ----

#[derive(Deserialize)]
pub(super) struct HistoryQuery {
    rolled_back: Option<i64>,
    to: Option<i64>,
}

pub(super) async fn history(
    State(web): State<Web>,
    SignedIn(me): SignedIn,
    Path(name): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Response {
    let versions = match web.inner.store.versions(&name).await {
        Ok(v) => v,
        Err(e) => return failure(Some(&me.who()), &e),
    };
    let notice = match (q.rolled_back, q.to) {
        (Some(v), Some(to)) => Some(format!(
            "Rolled back to version {to}: it is live again as version {v}."
        )),
        _ => None,
    };
    let page = views::history(&me.who(), &name, &versions, notice);
    html_response(StatusCode::OK, page)
}

pub(super) async fn version(
    State(web): State<Web>,
    SignedIn(me): SignedIn,
    Path((name, version)): Path<(String, i64)>,
) -> Response {
    match (
        web.inner.store.get(&name, Some(version)).await,
        web.inner.store.get(&name, None).await,
    ) {
        (Ok(doc), Ok(live)) => {
            html_response(StatusCode::OK, views::version(&me.who(), &doc, &live))
        }
        (Err(e), _) | (_, Err(e)) => failure(Some(&me.who()), &e),
    }
}

#[derive(Deserialize)]
pub(super) struct RollbackForm {
    #[serde(default)]
    csrf: String,
    to: i64,
}

pub(super) async fn rollback(
    State(web): State<Web>,
    Path(name): Path<String>,
    StaffForm(me, f): StaffForm<RollbackForm>,
) -> Response {
    let author = &me.session.username;
    match web.inner.store.rollback(&name, f.to, author).await {
        Ok(doc) => {
            web.inner.hub.published(&doc.name, doc.version);
            let name = url_encode(&name);
            see_other(&format!(
                "/docs/{name}/history?rolled_back={}&to={}",
                doc.version, f.to
            ))
        }
        Err(e) => failure(Some(&me.who()), &e),
    }
}

// ---- schema ----

pub(super) async fn schema_page(
    State(web): State<Web>,
    SignedIn(me): SignedIn,
    Path(name): Path<String>,
) -> Response {
    match web.inner.store.schema(&name).await {
        Ok(s) => {
            let page = views::schema(&me.who(), &name, &s.unwrap_or_default(), &[]);
            html_response(StatusCode::OK, page)
        }
        Err(e) => failure(Some(&me.who()), &e),
    }
}

/// A missing field is empty.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct SchemaForm {
    csrf: String,
    schema: String,
}

pub(super) async fn save_schema(
    State(web): State<Web>,
    Path(name): Path<String>,
    StaffForm(me, f): StaffForm<SchemaForm>,
) -> Response {
    let schema = (!f.schema.trim().is_empty()).then_some(f.schema.as_str());
    let author = &me.session.username;
    match web.inner.store.set_schema(&name, schema, author).await {
        Ok(()) => see_other(&format!("/docs/{}?schema_saved=1", url_encode(&name))),
        Err(
            e @ (ConfigError::NotFound(_) | ConfigError::Unavailable(_) | ConfigError::Internal(_)),
        ) => failure(Some(&me.who()), &e),
        Err(e) => {
            let page = views::schema(&me.who(), &name, &f.schema, &problems(&e));
            html_response(StatusCode::UNPROCESSABLE_ENTITY, page)
        }
    }
}

// ---- new documents ----

pub(super) async fn new_page(SignedIn(me): SignedIn) -> Response {
    let page = views::new_document(&me.who(), "", "{\n}\n", "", &[]);
    html_response(StatusCode::OK, page)
}

/// A missing field is empty.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct NewForm {
    csrf: String,
    name: String,
    body: String,
    schema: String,
}

pub(super) async fn create(
    State(web): State<Web>,
    StaffForm(me, f): StaffForm<NewForm>,
) -> Response {
    let name = f.name.trim();
    let schema = (!f.schema.trim().is_empty()).then_some(f.schema.as_str());
    let author = &me.session.username;
    match web.inner.store.create(name, schema, &f.body, author).await {
        Ok(doc) => {
            web.inner.hub.published(&doc.name, doc.version);
            let to = format!("/docs/{}?published={}", url_encode(name), doc.version);
            see_other(&to)
        }
        Err(e @ (ConfigError::Unavailable(_) | ConfigError::Internal(_))) => {
            failure(Some(&me.who()), &e)
        }
        Err(e) => {
            let page = views::new_document(&me.who(), name, &f.body, &f.schema, &problems(&e));
            html_response(StatusCode::UNPROCESSABLE_ENTITY, page)
        }
    }
}

// ---- audit log ----

#[derive(Deserialize)]
pub(super) struct AuditQuery {
    name: Option<String>,
}

pub(super) async fn audit(
    State(web): State<Web>,
    SignedIn(me): SignedIn,
    Query(q): Query<AuditQuery>,
) -> Response {
    let name = q.name.filter(|n| !n.is_empty());
    match web.inner.store.audit(name.as_deref(), 500).await {
        Ok(entries) => {
            let page = views::audit(&me.who(), name.as_deref(), &entries);
            html_response(StatusCode::OK, page)
        }
        Err(e) => failure(Some(&me.who()), &e),
    }
}

csrf_forms!(EditForm, RollbackForm, SchemaForm, NewForm);
