//! An HTTP bot (scenario `http-echo`): no socket to a connector, but one
//! keep-alive HTTP/1.1 connection to the call gateway, over which it calls
//! echo (`POST /v1/call/1001`, a JSON body of `payload` bytes, the bot's
//! token) at its rate — what a web page or a tool does (PROTOCOL.md §4).
//! One call at a time per connection, as a browser does; latency is
//! measured from the intended send time, like the websocket bots'.

use std::{
    sync::{Arc, atomic::Ordering::Relaxed},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{
    Request, StatusCode,
    client::conn::http1::{self, SendRequest},
    header,
};
use hyper_util::rt::TokioIo;
use tokio::{
    net::TcpStream,
    time::{Instant, sleep_until, timeout},
};

use crate::{
    bot::{Ctx, connect_counted, fired, micros, token},
    plan::Group,
};

/// How long one call may take before the bot counts it unanswered and
/// stops (the gateway's own time-out is 10 s by default).
const CALL_LIMIT: Duration = Duration::from_secs(15);

/// Runs HTTP bot `i` of group `g` to the end of the window.
pub(crate) async fn run(ctx: Arc<Ctx>, i: u64, g: usize, group: Group) {
    let Some(conn) = connect_counted(&ctx, i, connect(&ctx, i)).await else {
        return;
    };
    let mut bot = HttpBot {
        ctx: ctx.clone(),
        i,
        g,
        conn,
        body: echo_body(group.payload),
    };
    let ended = bot.calls(group.rate).await;
    ctx.stats.connected.fetch_sub(1, Relaxed);
    match ended {
        Ok(()) if Instant::now() >= ctx.end => {
            ctx.stats.connected_at_end.fetch_add(1, Relaxed);
        }
        Ok(()) => {}
        Err(kind) => ctx.stats.failure(kind),
    }
}

/// `{"payload": "xxx…"}`, `payload` bytes in all (at least the braces).
fn echo_body(payload: usize) -> Bytes {
    let filler = payload.saturating_sub(r#"{"payload":""}"#.len());
    Bytes::from(format!(r#"{{"payload":"{}"}}"#, "x".repeat(filler)))
}

/// A connection: where to send, and the token to send with.
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: String,
    bearer: String,
}

async fn connect(ctx: &Ctx, i: u64) -> Result<Conn, String> {
    let token = token(ctx, i)
        .await?
        .ok_or_else(|| "token: the call gateway needs a token (--key or a login)".to_owned())?;
    let n = ctx.plan.urls.len() as u64;
    let addr = ctx.addrs[(i % n) as usize];
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {}", e.kind()))?;
    let _ = tcp.set_nodelay(true);
    let (sender, connection) = http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    // Drives the connection; ends when the sender is dropped or it breaks.
    tokio::spawn(connection);
    Ok(Conn {
        sender,
        host: addr.to_string(),
        bearer: format!("Bearer {token}"),
    })
}

struct HttpBot {
    ctx: Arc<Ctx>,
    i: u64,
    g: usize,
    conn: Conn,
    body: Bytes,
}

impl HttpBot {
    /// Calls at `rate` per second (0: each as soon as the last is
    /// answered) until the window ends.
    async fn calls(&mut self, rate: f64) -> Result<(), &'static str> {
        let ctx = self.ctx.clone();
        let interval = (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate));
        // Phases spread over one interval, as the websocket bots do.
        let mut next = Instant::now()
            + interval.map_or(Duration::ZERO, |iv| {
                iv.mul_f64((self.i as f64 * 0.618_034) % 1.0)
            });
        let mut stop = ctx.stop.clone();
        loop {
            if interval.is_some() {
                let mut wake = Some(ctx.pacer.at(next));
                tokio::select! {
                    _ = stop.changed() => return Ok(()),
                    _ = sleep_until(ctx.end) => return Ok(()),
                    () = fired(&mut wake) => {}
                }
            } else {
                next = Instant::now();
            }
            if next >= ctx.end || *stop.borrow() {
                return Ok(());
            }
            self.call(next).await?;
            if let Some(iv) = interval {
                next += iv;
            }
        }
    }

    /// One echo call meant to be sent at `intended`, recorded.
    async fn call(&mut self, intended: Instant) -> Result<(), &'static str> {
        let stats = &self.ctx.stats;
        let counted = intended >= self.ctx.begin && intended < self.ctx.end;
        let request = Request::post("/v1/call/1001")
            .header(header::HOST, &self.conn.host)
            .header(header::AUTHORIZATION, &self.conn.bearer)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(self.body.clone()))
            .map_err(|_| "bad_request_built")?;
        self.conn
            .sender
            .ready()
            .await
            .map_err(|_| "closed_by_server")?;
        let sent = Instant::now();
        stats.sent_all.fetch_add(1, Relaxed);
        let group = &stats.groups[self.g];
        if counted {
            group.sent.fetch_add(1, Relaxed);
            group
                .lag
                .record(self.i, micros(sent.saturating_duration_since(intended)));
        }
        let answer = async {
            let response = self.conn.sender.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        };
        let (status, body) = match timeout(CALL_LIMIT, answer).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => return Err("socket_error"),
            Err(_) => {
                if counted {
                    stats.failure("no_answer");
                }
                return Err("call_timeout");
            }
        };
        let latency = micros(Instant::now().saturating_duration_since(intended));
        stats.received_all.fetch_add(1, Relaxed);
        stats.live(self.i, latency);
        let error = (status != StatusCode::OK).then(|| error_code(status, &body));
        if let Some(code) = &error {
            stats.error(code);
        }
        if counted {
            group.answered.fetch_add(1, Relaxed);
            if error.is_some() {
                group.failed.fetch_add(1, Relaxed);
            } else {
                group.reply.record(self.i, latency);
            }
        }
        Ok(())
    }
}

/// The code of an error response (`{"error": {"code": …}}`), or its status.
fn error_code(status: StatusCode, body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("http_{}", status.as_u16()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_echo_body_has_the_payload_size() {
        for size in [0, 14, 100, 1000] {
            let body = echo_body(size);
            assert_eq!(body.len(), size.max(14), "{size}");
            let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
            assert!(v["payload"].is_string());
        }
    }

    #[test]
    fn an_error_names_its_code_or_status() {
        let body = br#"{"error": {"code": "rate_limited", "message": "slow down"}}"#;
        assert_eq!(
            error_code(StatusCode::TOO_MANY_REQUESTS, body),
            "rate_limited"
        );
        assert_eq!(error_code(StatusCode::BAD_GATEWAY, b"<html>"), "http_502");
    }
}
