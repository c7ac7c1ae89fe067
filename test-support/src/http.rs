//! Calling a stack's HTTP endpoints (login, the admin endpoints).

use std::net::SocketAddr;

use crate::stack::STEP;

/// One HTTP request (ureq, on a blocking thread): GET, or POST with a
/// body sent as JSON (whether it is JSON or not, so a test can send a
/// broken one); returns the status and the body. Every status is an
/// answer, not an error.
pub async fn request_http(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    json: Option<String>,
) -> (u16, String) {
    let url = format!("http://{addr}{path}");
    let auth = token.map(|t| format!("Bearer {t}"));
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(STEP))
            .build()
            .into();
        let resp = match json {
            None => {
                let mut req = agent.get(&url);
                if let Some(auth) = &auth {
                    req = req.header("Authorization", auth);
                }
                req.call()
            }
            Some(body) => {
                let mut req = agent.post(&url).header("Content-Type", "application/json");
                if let Some(auth) = &auth {
                    req = req.header("Authorization", auth);
                }
                req.send(body)
            }
        };
        let mut resp = resp.unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = resp.status().as_u16();
        (status, resp.body_mut().read_to_string().unwrap_or_default())
    })
    .await
    .unwrap()
}

/// One GET with a bearer token; returns the status and the body.
pub async fn http_get(addr: SocketAddr, path: &str, token: &str) -> (u16, String) {
    request_http(addr, path, Some(token), None).await
}

/// One POST of a JSON body; returns the status and the JSON reply.
pub async fn http_post(
    addr: SocketAddr,
    path: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let (status, reply) = request_http(addr, path, None, Some(body.to_string())).await;
    (status, serde_json::from_str(&reply).unwrap())
}
