//! The physical ceiling of the benchmark suite: a minimal websocket echo
//! server, with the same library and socket settings as Warren's connector
//! but nothing behind it. Every binary message goes straight back, so
//! `warren-bots --no-login` gets its request frame back as the reply.
//!
//! Not part of the product. `cargo run --release -p warren-bots --example
//! direct_echo -- 127.0.0.1:7101`

#![allow(clippy::print_stdout)]

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::{
    accept_async_with_config,
    tungstenite::{Message, protocol::WebSocketConfig},
};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7101".to_owned());
    let listener = TcpListener::bind(&addr).await?;
    println!("direct echo on ws://{}/ws", listener.local_addr()?);
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        tokio::spawn(async move {
            let config = WebSocketConfig::default()
                .read_buffer_size(1024)
                .write_buffer_size(0);
            let Ok(ws) = accept_async_with_config(tcp, Some(config)).await else {
                return;
            };
            let (mut sink, mut stream) = ws.split();
            while let Some(Ok(msg)) = stream.next().await {
                let done = match msg {
                    Message::Binary(b) => sink.send(Message::Binary(b)).await.is_err(),
                    Message::Close(_) => true,
                    _ => false,
                };
                if done {
                    break;
                }
            }
        });
    }
}
