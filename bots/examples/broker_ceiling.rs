//! The broker's ceiling for the benchmark suite: RabbitMQ alone, through
//! lapin, no websockets and no Warren.
//!
//! 1. **publish → consume**: one publisher (publisher confirms, a window of
//!    unconfirmed messages) and one consumer (prefetch 256, batched acks) on
//!    one queue: messages per second.
//! 2. **request → reply**: `clients` concurrent requesters, each with one
//!    request at a time, publish to a request queue; a responder consumes it
//!    and publishes each request back to a reply queue: round trips per
//!    second and latency. This is the shape of one Warren round trip,
//!    one AMQP message each way.
//!
//! Queues are named `ceiling-<pid>-…` and deleted at the end.
//! `cargo run --release -p warren-bots --example broker_ceiling -- [secs] [clients] [payload]`
//! (default 10 s, 100 clients, 100 bytes; AMQP_URL overrides the broker).

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
    },
    types::FieldTable,
};
use tokio::sync::oneshot;

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn cpu_secs(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?) as f64 / 100.0)
        })
        .unwrap_or(0.0)
}

/// The broker's pid (beam.smp), to report its CPU per message.
fn broker_pid() -> Option<String> {
    let out = std::process::Command::new("pgrep")
        .args(["-f", "beam.smp"])
        .output()
        .ok()?;
    String::from_utf8(out.stdout)
        .ok()?
        .lines()
        .next()
        .map(str::to_owned)
}

async fn declare(ch: &Channel, name: &str) {
    ch.queue_declare(
        name.into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
}

async fn consumer(conn: &Connection, queue: &str) -> (Channel, lapin::Consumer) {
    let ch = conn.create_channel().await.unwrap();
    ch.basic_qos(256, BasicQosOptions::default()).await.unwrap();
    let c = ch
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    (ch, c)
}

async fn publisher(conn: &Connection) -> Channel {
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    ch
}

async fn publish_consume(url: &str, secs: u64, payload: usize, prefix: &str) -> f64 {
    let pc = Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap();
    let cc = Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap();
    let queue = format!("{prefix}-pc");
    let pubch = publisher(&pc).await;
    declare(&pubch, &queue).await;
    let (_cch, mut cons) = consumer(&cc, &queue).await;
    let body = vec![7u8; payload];
    let end = Instant::now() + Duration::from_secs(secs);
    let reader = tokio::spawn(async move {
        let mut n = 0u64;
        let mut since_ack = 0;
        while let Some(Ok(d)) = cons.next().await {
            n += 1;
            since_ack += 1;
            if since_ack >= 64 {
                d.acker
                    .ack(BasicAckOptions { multiple: true })
                    .await
                    .unwrap();
                since_ack = 0;
            }
            if Instant::now() >= end {
                break;
            }
        }
        n
    });
    let mut window = std::collections::VecDeque::new();
    while Instant::now() < end {
        let confirm = pubch
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                &body,
                BasicProperties::default(),
            )
            .await
            .unwrap();
        window.push_back(confirm);
        if window.len() >= 512 {
            window.pop_front().unwrap().await.unwrap();
        }
    }
    for c in window {
        let _ = c.await;
    }
    let n = reader.await.unwrap();
    pubch
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    let _ = pc.close(200, "done".into()).await;
    let _ = cc.close(200, "done".into()).await;
    n as f64 / secs as f64
}

type Waiting = Arc<Mutex<HashMap<u64, oneshot::Sender<()>>>>;

// Long: one measurement, set up and run in order.
async fn request_reply(
    url: &str,
    secs: u64,
    clients: u64,
    payload: usize,
    prefix: &str,
) -> (f64, Histogram<u64>) {
    let conn = |_| async {
        Connection::connect(url, ConnectionProperties::default())
            .await
            .unwrap()
    };
    let (client_pub, client_con, server_pub, server_con) =
        (conn(0).await, conn(1).await, conn(2).await, conn(3).await);
    let requests = format!("{prefix}-requests");
    let replies = format!("{prefix}-replies");
    let cp = publisher(&client_pub).await;
    declare(&cp, &requests).await;
    declare(&cp, &replies).await;
    // The responder: every request straight back to the reply queue.
    let sp = publisher(&server_pub).await;
    let (_sch, mut scons) = consumer(&server_con, &requests).await;
    let replies_q = replies.clone();
    let responder = tokio::spawn(async move {
        while let Some(Ok(d)) = scons.next().await {
            let _ = sp
                .basic_publish(
                    "".into(),
                    replies_q.as_str().into(),
                    BasicPublishOptions::default(),
                    &d.data,
                    BasicProperties::default(),
                )
                .await;
            d.acker.ack(BasicAckOptions::default()).await.unwrap();
        }
    });
    let waiting: Waiting = Arc::default();
    let (_rch, mut rcons) = consumer(&client_con, &replies).await;
    let w = waiting.clone();
    let dispatcher = tokio::spawn(async move {
        while let Some(Ok(d)) = rcons.next().await {
            let id = u64::from_be_bytes(d.data[..8].try_into().unwrap());
            if let Some(tx) = w.lock().unwrap().remove(&id) {
                let _ = tx.send(());
            }
            d.acker.ack(BasicAckOptions::default()).await.unwrap();
        }
    });
    let start = Instant::now() + Duration::from_secs(1);
    let end = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let cp = cp.clone();
        let waiting = waiting.clone();
        let requests = requests.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            let mut n = 0u64;
            let mut id = c << 32;
            let mut body = vec![7u8; payload.max(8)];
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                id += 1;
                body[..8].copy_from_slice(&id.to_be_bytes());
                let (tx, rx) = oneshot::channel();
                waiting.lock().unwrap().insert(id, tx);
                let _confirm = cp
                    .basic_publish(
                        "".into(),
                        requests.as_str().into(),
                        BasicPublishOptions::default(),
                        &body,
                        BasicProperties::default(),
                    )
                    .await
                    .unwrap();
                rx.await.unwrap();
                if t0 >= start {
                    h.record(t0.elapsed().as_micros() as u64).unwrap();
                    n += 1;
                }
            }
            (h, n)
        }));
    }
    let mut total = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let mut n = 0;
    for t in tasks {
        let (h, k) = t.await.unwrap();
        total.add(h).unwrap();
        n += k;
    }
    responder.abort();
    dispatcher.abort();
    for q in [&requests, &replies] {
        cp.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await
            .unwrap();
    }
    for c in [client_pub, client_con, server_pub, server_con] {
        let _ = c.close(200, "done".into()).await;
    }
    (n as f64 / secs as f64, total)
}

#[tokio::main]
async fn main() {
    let secs = arg(1, 10);
    let clients = arg(2, 100);
    let payload = arg(3, 100) as usize;
    let url = std::env::var("AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let prefix = format!("ceiling-{}", std::process::id());
    let broker = broker_pid();
    let cpu = || broker.as_deref().map(cpu_secs).unwrap_or(0.0);
    let c0 = cpu();
    let rate = publish_consume(&url, secs, payload, &prefix).await;
    let c1 = cpu();
    println!(
        "publish → consume: {rate:.0} messages/s ({payload} B); broker CPU {:.1} µs per message",
        (c1 - c0) * 1e6 / (rate * secs as f64).max(1.0)
    );
    let (rt, h) = request_reply(&url, secs, clients, payload, &prefix).await;
    let c2 = cpu();
    println!(
        "request → reply: {rt:.0} round trips/s ({clients} clients, 2 messages each); latency ms p50 {:.2} p99 {:.2} max {:.2}; broker CPU {:.1} µs per round trip",
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0,
        (c2 - c1) * 1e6 / (rt * (secs + 1) as f64).max(1.0)
    );
    println!(
        "JSON {{\"publish_consume_per_s\": {rate:.1}, \"request_reply_per_s\": {rt:.1}, \"request_reply_p99_ms\": {:.3}}}",
        h.value_at_quantile(0.99) as f64 / 1000.0
    );
}
