//! A client that drips its websocket handshake is closed at the handshake
//! time limit, and it costs others nothing.

use std::time::{Duration, Instant};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use warren_connector::ConnectorSettings;
use warren_test_support::until;

use crate::helpers::start_with;

#[tokio::test]
async fn a_dripped_handshake_is_closed_at_the_time_limit() {
    let mut h = start_with(ConnectorSettings {
        handshake_timeout_ms: Duration::from_millis(500),
        ..ConnectorSettings::default()
    })
    .await;
    let addr = h
        .url
        .trim_start_matches("ws://")
        .trim_end_matches("/ws")
        .to_owned();
    let mut drips = Vec::new();
    for _ in 0..10 {
        let mut tcp = TcpStream::connect(&addr).await.unwrap();
        tcp.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        drips.push(tcp);
    }
    let started = Instant::now();
    // Meanwhile a real player gets in.
    let _ws = h.player(1).await;
    // Keep dripping a header byte every 100 ms until the server hangs up.
    let mut closed_after = Vec::new();
    for mut tcp in drips {
        let mut buf = [0u8; 256];
        loop {
            if tcp.write_all(b"X").await.is_err() {
                break;
            }
            match tokio::time::timeout(Duration::from_millis(100), tcp.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(_)) => break, // an HTTP error answer: refused too
                Err(_) => {}        // still open: drip again
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "a dripping handshake is still open after 5 s"
            );
        }
        closed_after.push(started.elapsed());
    }
    // The counter moves just after the socket is dropped: give it a moment.
    until(
        "10 handshake failures counted",
        Duration::from_secs(2),
        || h.connector.stats().handshake_failures >= 10,
    )
    .await;
    assert_eq!(h.connector.stats().handshake_failures, 10);
    eprintln!(
        "dripped handshakes closed after {:?}",
        closed_after.iter().max()
    );
}
