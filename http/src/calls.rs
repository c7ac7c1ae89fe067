//! Calls counted per route, for the `/metrics` of the services that have
//! no counters of their own (gold, login, config-svc): a tower layer over
//! an axum router or a tonic server.
//!
//! Each call is counted under its path (`/v1/login`,
//! `/warren.gold.Gold/Transfer`) as taken, refused (the caller's fault:
//! HTTP 4xx, or a gRPC status such as `InvalidArgument`) or failed (the
//! service's: HTTP 5xx, or gRPC `Unknown`, `DeadlineExceeded`, `Internal`,
//! `Unavailable`, `DataLoss`, or no response at all). A path answered 404
//! is counted as `unmatched`, and past [`MAX_PATHS`] distinct paths new
//! ones as `other`, so a scan cannot grow the table.

use std::{
    collections::BTreeMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use axum::{
    Router,
    http::{Request, Response, StatusCode},
    response::Response as AxumResponse,
    routing::get,
};

use crate::metrics::{Family, Kind};

/// Distinct paths counted; more are counted as `other`.
pub const MAX_PATHS: usize = 64;

/// The counts of one service's calls; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Calls(Arc<Mutex<BTreeMap<String, Tally>>>);

#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    calls: u64,
    refused: u64,
    failed: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Taken,
    Refused,
    Failed,
}

impl Calls {
    /// The layer that counts every call of the service it wraps here.
    pub fn layer(&self) -> CountCalls {
        CountCalls(self.clone())
    }

    fn record(&self, path: &str, outcome: Outcome) {
        let mut table = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let key = if table.contains_key(path) || table.len() < MAX_PATHS {
            path
        } else {
            "other"
        };
        let tally = table.entry(key.to_owned()).or_default();
        tally.calls += 1;
        match outcome {
            Outcome::Taken => {}
            Outcome::Refused => tally.refused += 1,
            Outcome::Failed => tally.failed += 1,
        }
    }

    /// `GET /metrics` (the [`Calls::response`]) behind the operators'
    /// `token`, to merge into a service's router.
    pub fn metrics_route<S: Clone + Send + Sync + 'static>(&self, token: String) -> Router<S> {
        let calls = self.clone();
        let route = Router::new().route("/metrics", get(async move || calls.response()));
        crate::require_bearer(route, token)
    }

    /// `/metrics`: `warren_rpc_calls_total`, `warren_rpc_refused_total`
    /// and `warren_rpc_errors_total`, by `method` (the path).
    pub fn response(&self) -> AxumResponse {
        let table = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        type Get = fn(&Tally) -> u64;
        let families: [(&str, &str, Get); 3] = [
            ("warren_rpc_calls_total", "Calls answered.", |t| t.calls),
            (
                "warren_rpc_refused_total",
                "Calls refused for the caller's fault (HTTP 4xx, gRPC InvalidArgument and the like).",
                |t| t.refused,
            ),
            (
                "warren_rpc_errors_total",
                "Calls that failed on this side (HTTP 5xx, gRPC Internal, Unavailable and the like).",
                |t| t.failed,
            ),
        ];
        let families: Vec<Family<'_>> = families
            .into_iter()
            .map(|(name, help, get)| Family {
                name,
                kind: Kind::Counter,
                help,
                samples: table
                    .iter()
                    .map(|(path, t)| (vec![("method", path.as_str())], get(t) as f64))
                    .collect(),
            })
            .collect();
        crate::metrics::response(&families)
    }
}

/// How a response went: gRPC's status if it has one, else HTTP's.
fn outcome<B>(response: &Response<B>) -> Outcome {
    if let Some(code) = response.headers().get("grpc-status") {
        return match code.to_str().ok().and_then(|c| c.parse::<u8>().ok()) {
            Some(0) => Outcome::Taken,
            // Unknown, DeadlineExceeded, Internal, Unavailable, DataLoss.
            Some(2 | 4 | 13 | 14 | 15) | None => Outcome::Failed,
            Some(_) => Outcome::Refused,
        };
    }
    let status = response.status();
    if status.is_server_error() {
        Outcome::Failed
    } else if status.is_client_error() {
        Outcome::Refused
    } else {
        Outcome::Taken
    }
}

/// The tower layer of [`Calls`].
#[derive(Clone, Debug)]
pub struct CountCalls(Calls);

impl<S> tower::Layer<S> for CountCalls {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            calls: self.0.clone(),
        }
    }
}

/// A service whose calls are counted.
#[derive(Clone, Debug)]
pub struct Counted<S> {
    inner: S,
    calls: Calls,
}

impl<S, B, RB> tower::Service<Request<B>> for Counted<S>
where
    S: tower::Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<RB>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let calls = self.calls.clone();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answer = answer.await;
            match &answer {
                Ok(r) if r.status() == StatusCode::NOT_FOUND => {
                    calls.record("unmatched", Outcome::Refused)
                }
                Ok(r) => calls.record(&path, outcome(r)),
                Err(_) => calls.record(&path, Outcome::Failed),
            }
            answer
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, grpc: Option<&str>) -> Response<()> {
        let mut r = Response::builder().status(status);
        if let Some(code) = grpc {
            r = r.header("grpc-status", code);
        }
        r.body(()).unwrap()
    }

    #[test]
    fn an_answer_is_taken_refused_or_failed_by_grpc_status_then_http_status() {
        assert_eq!(outcome(&response(200, None)), Outcome::Taken);
        assert_eq!(outcome(&response(429, None)), Outcome::Refused);
        assert_eq!(outcome(&response(503, None)), Outcome::Failed);
        assert_eq!(outcome(&response(200, Some("0"))), Outcome::Taken);
        assert_eq!(outcome(&response(200, Some("3"))), Outcome::Refused);
        assert_eq!(outcome(&response(200, Some("14"))), Outcome::Failed);
        assert_eq!(outcome(&response(200, Some("x"))), Outcome::Failed);
    }

    #[test]
    fn paths_past_the_bound_are_counted_as_other() {
        let calls = Calls::default();
        for i in 0..MAX_PATHS + 5 {
            calls.record(&format!("/p/{i}"), Outcome::Taken);
        }
        calls.record("/p/0", Outcome::Failed);
        let table = calls.0.lock().unwrap().clone();
        assert_eq!(table.len(), MAX_PATHS + 1);
        assert_eq!(table["other"].calls, 5);
        assert_eq!((table["/p/0"].calls, table["/p/0"].failed), (2, 1));
    }
}
