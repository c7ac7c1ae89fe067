//! The client library: typed values that follow publishes, the saved copy
//! when config-svc is down at start, and reconnection.

use std::time::Duration;

use serde::Deserialize;
use warren_config::{ClientSettings, ConfigClient, Live};
use warren_proto::config::PublishRequest;
use warren_test_support::{TempDir, until};

use crate::helpers::{Db, Server, TestDb, authed};

#[derive(Debug, Deserialize, PartialEq)]
struct Chat {
    max_message_len: usize,
}

async fn publish_chat(server: &Server, len: u32) {
    server
        .client()
        .await
        .publish(authed(PublishRequest {
            name: "chat".into(),
            body: format!(r#"{{"max_message_len": {len}}}"#),
            author: "ann".into(),
            comment: String::new(),
            expected_version: 0,
        }))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_gets_typed_values_that_follow_publishes() {
    let db = TestDb::new(Db::Sqlite).await;
    let server = Server::start(&db.url).await;
    let cache = TempDir::new("warren-config-cache");
    let client = ConfigClient::start(ClientSettings {
        url: server.url(),
        cache_dir: Some(cache.path().to_owned()),
        names: vec!["chat".into()],
        tls: Default::default(),
    });
    let chat: Live<Chat> = client.typed("chat", Chat { max_message_len: 3 });
    until("the first version", Duration::from_secs(5), || {
        chat.version() == 1
    })
    .await;
    assert_eq!(chat.get().max_message_len, 1024);

    publish_chat(&server, 80).await;
    until("the publish", Duration::from_secs(1), || {
        chat.version() == 2
    })
    .await;
    assert_eq!(
        *chat.get(),
        Chat {
            max_message_len: 80
        }
    );
    // A clone sees the same value (services are rebuilt from clones).
    assert_eq!(chat.clone().get().max_message_len, 80);
    let saved = std::fs::read_to_string(cache.path().join("chat.json")).unwrap();
    assert!(saved.contains("\"version\": 2"), "{saved}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_svc_down_at_start_means_the_saved_copy_then_reconnection() {
    let db = TestDb::new(Db::Sqlite).await;
    let cache = TempDir::new("warren-config-cache");
    let server = Server::start(&db.url).await;
    let addr = server.addr;
    publish_chat(&server, 42).await;
    {
        let client = ConfigClient::start(ClientSettings {
            url: server.url(),
            cache_dir: Some(cache.path().to_owned()),
            names: vec!["chat".into()],
            tls: Default::default(),
        });
        let chat = client.typed("chat", Chat { max_message_len: 3 });
        until("version 2", Duration::from_secs(5), || chat.version() == 2).await;
    }
    server.stop();
    drop(server);
    until("config-svc to stop", Duration::from_secs(5), || {
        std::net::TcpStream::connect(addr).is_err()
    })
    .await;

    // config-svc is down: the saved copy is used at once; a document with
    // no saved copy is the service's default. Nothing fails.
    let client = ConfigClient::start(ClientSettings {
        url: format!("http://{addr}"),
        cache_dir: Some(cache.path().to_owned()),
        names: vec!["chat".into(), "economy".into()],
        tls: Default::default(),
    });
    let chat = client.typed("chat", Chat { max_message_len: 3 });
    assert_eq!((chat.version(), chat.get().max_message_len), (2, 42));
    #[derive(Debug, Deserialize)]
    struct Economy {
        daily_reward: i64,
    }
    let economy = client.typed("economy", Economy { daily_reward: 7 });
    assert_eq!((economy.version(), economy.get().daily_reward), (0, 7));

    // config-svc comes back (same address, same database, a change made
    // while it was away): the client reconnects by itself. (The sleep is
    // the outage the client lives through, not a synchronisation.)
    tokio::time::sleep(Duration::from_millis(500)).await;
    let server = Server::start_with(&db.url, addr, Default::default()).await;
    publish_chat(&server, 43).await;
    until("reconnection", Duration::from_secs(10), || {
        chat.version() == 3
    })
    .await;
    assert_eq!(chat.get().max_message_len, 43);
    until("economy", Duration::from_secs(2), || economy.version() == 1).await;
    assert_eq!(economy.get().daily_reward, 100);
}
