//! The example web page (`examples/web/`): the embedded default serves it
//! on the HTTP call gateway's listener at `/`, with `endpoints.json`
//! telling it where login and the connector listen (ports on the page's
//! own host). The page itself is plain files; this only hands them out.

use axum::{Json, Router, http::header, response::IntoResponse, routing::get};
use serde_json::json;

const INDEX: &str = include_str!("../examples/web/index.html");
const APP: &str = include_str!("../examples/web/app.js");

/// The page's routes, for the call gateway's router.
pub(crate) fn router(login_port: u16, ws_port: u16, ws_path: &str) -> Router {
    let endpoints = json!({
        "login_port": login_port,
        "ws_port": ws_port,
        "ws_path": ws_path,
    });
    Router::new()
        .route("/", get(|| file("text/html; charset=utf-8", INDEX)))
        .route(
            "/app.js",
            get(|| file("text/javascript; charset=utf-8", APP)),
        )
        .route(
            "/endpoints.json",
            get(move || async move { Json(endpoints) }),
        )
}

async fn file(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}
