//! What Warren's HTTP APIs share — login, the game's and the connector's
//! admin endpoints:
//!
//! - [`ApiError`]: a refusal as the protocol's JSON error, `{"error":
//!   {"code", "message"}}`, with its status.
//! - [`JsonBody`]: a JSON body whose every failure is an [`ApiError`] (413
//!   over the size limit, 400 for anything else).
//! - [`require_bearer`]: the operators' bearer token on every route of a
//!   router, checked in constant time; a request without it is 401.
//! - [`metrics`]: Prometheus' text format for `/metrics`.
//! - [`calls`]: calls counted per route, for the services' `/metrics`.
//! - [`cors`]: the CORS answer a web page on another origin needs.
//! - [`Listener`]: where an API listens, plain or TLS.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod calls;
mod listener;
pub mod metrics;

pub use listener::{Listener, Peer};

use std::borrow::Cow;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{FromRequest, Request},
    http::StatusCode,
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use serde::de::DeserializeOwned;
use warren_proto::http::{ErrorJson, bearer_matches};

/// A refused request: its status, a machine-readable code and a message
/// for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Cow<'static, str>,
    pub message: String,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    /// 400 with `code`.
    pub fn bad_request(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 413 `body_too_large`.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", message)
    }

    /// 503 with `code` (`busy`, `unavailable`): try again.
    pub fn unavailable(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }

    /// 500 `internal`; the cause belongs in the log, not the response.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorJson::new(&self.code, &self.message);
        (self.status, Json(body)).into_response()
    }
}

/// A JSON body whose every failure is an [`ApiError`]: 413 over the size
/// limit (`DefaultBodyLimit`), 400 for anything that is not the expected
/// JSON.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large("the request body is too large")
            } else {
                ApiError::bad_request("bad_request", rejection.body_text())
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::bad_request("bad_request", format!("invalid JSON body: {e}")))
    }
}

/// Lets web pages from `origins` (`"*"`: any) call `router`'s POST
/// routes with a JSON body and a bearer token; no origin listed: no CORS
/// headers, so browsers keep other origins out. Credentials (cookies) are
/// never allowed: these APIs take a token in a header, so any origin may
/// safely be let in.
pub fn cors<S: Clone + Send + Sync + 'static>(router: Router<S>, origins: &[String]) -> Router<S> {
    use axum::http::{HeaderValue, Method, header};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return router;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok()),
        )
    };
    router.layer(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::POST])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .max_age(std::time::Duration::from_secs(3600)),
    )
}

/// Requires `Authorization: Bearer <token>` on every route of `router` (not
/// on its fallback: an unknown path is still 404); anything else is 401
/// `unauthorized`.
pub fn require_bearer<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    token: String,
) -> Router<S> {
    router.route_layer(middleware::from_fn(move |req: Request, next: Next| {
        let allowed = bearer_matches(
            req.headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok()),
            &token,
        );
        async move {
            if allowed {
                next.run(req).await
            } else {
                ApiError::unauthorized("a valid admin token is required").into_response()
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, routing::get};
    use tower::ServiceExt;

    use super::*;

    async fn status(router: &Router, path: &str, auth: Option<&str>) -> StatusCode {
        let mut req = axum::http::Request::builder().uri(path);
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        let req = req.body(Body::empty()).unwrap_or_default();
        match router.clone().oneshot(req).await {
            Ok(resp) => resp.status(),
            Err(never) => match never {},
        }
    }

    #[tokio::test]
    async fn routes_want_the_token_and_unknown_paths_stay_404() {
        let router = require_bearer(
            Router::new().route("/x", get(async || "ok")),
            "s3cret".to_owned(),
        )
        .fallback(async || ApiError::not_found("no such endpoint"));
        assert_eq!(
            status(&router, "/x", Some("Bearer s3cret")).await,
            StatusCode::OK
        );
        assert_eq!(
            status(&router, "/x", Some("Bearer nope")).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(status(&router, "/x", None).await, StatusCode::UNAUTHORIZED);
        assert_eq!(status(&router, "/y", None).await, StatusCode::NOT_FOUND);
    }

    /// The `Access-Control-Allow-Origin` a preflight from `origin` gets.
    async fn preflight(router: &Router, origin: &str) -> Option<String> {
        let req = axum::http::Request::builder()
            .method("OPTIONS")
            .uri("/x")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .body(Body::empty())
            .unwrap_or_default();
        let resp = match router.clone().oneshot(req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        };
        resp.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap_or_default().to_owned())
    }

    #[tokio::test]
    async fn cors_lets_in_the_listed_origins_only() {
        let base = || Router::new().route("/x", axum::routing::post(async || "ok"));
        let any = cors(base(), &["*".to_owned()]);
        assert_eq!(
            preflight(&any, "https://game.example").await.as_deref(),
            Some("*")
        );
        let listed = cors(base(), &["https://game.example/".to_owned()]);
        assert_eq!(
            preflight(&listed, "https://game.example").await.as_deref(),
            Some("https://game.example")
        );
        assert_eq!(preflight(&listed, "https://evil.example").await, None);
        let none = cors(base(), &[]);
        assert_eq!(preflight(&none, "https://game.example").await, None);
    }
}
