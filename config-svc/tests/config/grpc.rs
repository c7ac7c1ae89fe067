//! The gRPC contract: get, list, versions, watch (delivering a publish,
//! resuming after a reconnect), schema rejection, rollback and the audit log.

use std::time::{Duration, Instant};

use tonic::Code;
use warren_proto::config::{
    AuditRequest, GetRequest, ListRequest, PublishRequest, RollbackRequest, SetSchemaRequest,
    VersionsRequest, WatchRequest,
};

use warren_test_support::on_both_databases;

use crate::helpers::{Db, Server, TestDb, authed};

fn publish(name: &str, body: &str) -> PublishRequest {
    PublishRequest {
        name: name.into(),
        body: body.into(),
        author: "ann".into(),
        comment: "test".into(),
        expected_version: 0,
    }
}

// Long: one scenario, told in order.
async fn get_list_versions(db: Db) {
    let db = TestDb::new(db).await;
    let server = Server::start(&db.url).await;
    let mut c = server.client().await;

    let list = c.list(ListRequest {}).await.unwrap().into_inner().documents;
    let names: Vec<_> = list
        .iter()
        .map(|d| (d.name.as_str(), d.version, d.has_schema))
        .collect();
    assert_eq!(names, [("chat", 1, true), ("economy", 1, true)]);

    let v2 = c
        .publish(authed(publish("chat", r#"{"max_message_len": 80}"#)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((v2.version, v2.author.as_str()), (2, "ann"));
    assert_eq!(
        v2.body, "{\n  \"max_message_len\": 80\n}\n",
        "stored pretty-printed"
    );

    let latest = c
        .get(GetRequest {
            name: "chat".into(),
            version: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(latest, v2);
    let first = c
        .get(GetRequest {
            name: "chat".into(),
            version: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(first.body.contains("1024"), "{first:?}");
    assert_eq!(first.author, "system");

    let versions = c
        .versions(VersionsRequest {
            name: "chat".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .versions;
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [2, 1]
    );

    for (name, version, code) in [
        ("nope", 0, Code::NotFound),
        ("chat", 9, Code::NotFound),
        ("Bad Name", 0, Code::InvalidArgument),
        ("chat", -1, Code::InvalidArgument),
    ] {
        let e = c
            .get(GetRequest {
                name: name.into(),
                version,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), code, "{name} v{version}: {e:?}");
    }

    // A new document, published without a schema, is created by its
    // first publish.
    let d = c
        .publish(authed(publish("shop", r#"{"sword": 10}"#)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.version, 1);
    let list = c.list(ListRequest {}).await.unwrap().into_inner().documents;
    assert!(list.iter().any(|d| d.name == "shop" && !d.has_schema));
}

async fn changes_need_the_admin_token(db: Db) {
    let db = TestDb::new(db).await;
    let server = Server::start(&db.url).await;
    let mut c = server.client().await;
    let e = c
        .publish(publish("chat", r#"{"max_message_len": 5}"#))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let e = c
        .rollback(RollbackRequest {
            name: "chat".into(),
            to_version: 1,
            author: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let latest = c
        .get(GetRequest {
            name: "chat".into(),
            version: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(latest.version, 1, "nothing was published");
}

// Long: one scenario, told in order.
async fn schema_rejection(db: Db) {
    let db = TestDb::new(db).await;
    let server = Server::start(&db.url).await;
    let mut c = server.client().await;

    let e = c
        .publish(authed(publish(
            "chat",
            r#"{"max_message_len": "long", "colour": 1}"#,
        )))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let problems: Vec<&str> = e.message().lines().collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems.iter().any(|p| p.starts_with("/max_message_len:")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("colour")),
        "{problems:?}"
    );

    let e = c
        .publish(authed(publish("chat", "{\"max_message_len\": 5,")))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("not JSON"), "{}", e.message());

    let e = c
        .publish(authed(publish("chat", r#"{"max_message_len": 0}"#)))
        .await
        .unwrap_err();
    assert!(e.message().contains("minimum"), "{}", e.message());

    // A schema the live version does not match is refused too.
    let e = c
        .set_schema(authed(SetSchemaRequest {
            name: "chat".into(),
            schema: r#"{"type": "object", "required": ["rooms"]}"#.into(),
            author: "ann".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("live version 1"), "{}", e.message());
    let e = c
        .set_schema(authed(SetSchemaRequest {
            name: "chat".into(),
            schema: r#"{"type": "no-such-type"}"#.into(),
            author: "ann".into(),
        }))
        .await
        .unwrap_err();
    assert!(
        e.message().contains("not a valid JSON Schema"),
        "{}",
        e.message()
    );

    // Nothing of that was published; a stale expected version is refused.
    let v = c
        .versions(VersionsRequest {
            name: "chat".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.versions.len(), 1);
    c.publish(authed(publish("chat", r#"{"max_message_len": 9}"#)))
        .await
        .unwrap();
    let mut stale = publish("chat", r#"{"max_message_len": 10}"#);
    stale.expected_version = 1;
    let e = c.publish(authed(stale)).await.unwrap_err();
    assert_eq!(e.code(), Code::Aborted);
    assert!(
        e.message().contains("live version is now 2"),
        "{}",
        e.message()
    );
    // Publishing what is live already says so.
    let e = c
        .publish(authed(publish("chat", r#"{"max_message_len": 9}"#)))
        .await
        .unwrap_err();
    assert!(
        e.message().contains("same as the live version"),
        "{}",
        e.message()
    );
}

async fn rollback_and_audit(db: Db) {
    let db = TestDb::new(db).await;
    let server = Server::start(&db.url).await;
    let mut c = server.client().await;
    c.publish(authed(publish("economy", r#"{"daily_reward": 250}"#)))
        .await
        .unwrap();
    let v3 = c
        .rollback(authed(RollbackRequest {
            name: "economy".into(),
            to_version: 1,
            author: "bob".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v3.version, 3);
    assert_eq!(v3.author, "bob");
    assert!(v3.body.contains("100"), "{v3:?}");
    assert_eq!(v3.comment, "rollback to version 1");
    let e = c
        .rollback(authed(RollbackRequest {
            name: "economy".into(),
            to_version: 7,
            author: "bob".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    let audit = c
        .audit(AuditRequest {
            name: "economy".into(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let rows: Vec<_> = audit
        .iter()
        .map(|e| {
            (
                e.action.as_str(),
                e.actor.as_str(),
                e.from_version,
                e.to_version,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("rollback", "bob", 2, 3),
            ("publish", "ann", 1, 2),
            ("create", "system", 0, 1)
        ]
    );
    assert!(
        audit[0].change.contains("-  \"daily_reward\": 250"),
        "{}",
        audit[0].change
    );
    assert!(
        audit[0].change.contains("+  \"daily_reward\": 100"),
        "{}",
        audit[0].change
    );
    assert!(audit.iter().all(|e| e.at_ms > 0));
}

async fn watch_delivers_a_publish(db: Db) {
    let db = TestDb::new(db).await;
    let server = Server::start(&db.url).await;
    let mut c = server.client().await;
    let mut stream = c
        .watch(WatchRequest {
            names: vec!["chat".into()],
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(
        (first.name.as_str(), first.version),
        ("chat", 1),
        "told the current version first"
    );

    // Only watched documents arrive.
    c.publish(authed(publish("economy", r#"{"daily_reward": 5}"#)))
        .await
        .unwrap();
    let published = Instant::now();
    c.publish(authed(publish("chat", r#"{"max_message_len": 7}"#)))
        .await
        .unwrap();
    let next = tokio::time::timeout(Duration::from_secs(1), stream.message())
        .await
        .expect("within a second of the publish")
        .unwrap()
        .unwrap();
    assert_eq!((next.name.as_str(), next.version), ("chat", 2));
    assert!(next.body.contains('7'));
    assert!(published.elapsed() < Duration::from_secs(1));
}

async fn watch_resumes_after_a_reconnect(db: Db) {
    let db = TestDb::new(db).await;
    let server = Server::start(&db.url).await;
    let mut c = server.client().await;
    let mut stream = c
        .watch(WatchRequest { names: vec![] })
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let d = stream.message().await.unwrap().unwrap();
        seen.push((d.name, d.version));
    }
    seen.sort();
    assert_eq!(seen, [("chat".to_owned(), 1), ("economy".to_owned(), 1)]);

    // The server goes away; publishes happen while the client is gone
    // (straight into the database, as another config-svc would).
    let addr = server.addr;
    let store = server.store.clone();
    drop(server);
    drop(stream);
    store
        .publish("chat", r#"{"max_message_len": 11}"#, "ann", "", None)
        .await
        .unwrap();
    store
        .publish("chat", r#"{"max_message_len": 12}"#, "ann", "", None)
        .await
        .unwrap();

    let server = Server::start_with(&db.url, addr, Default::default()).await;
    let mut c = server.client().await;
    let mut stream = c
        .watch(WatchRequest { names: vec![] })
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let d = stream.message().await.unwrap().unwrap();
        seen.push((d.name, d.version));
    }
    seen.sort();
    assert_eq!(
        seen,
        [("chat".to_owned(), 3), ("economy".to_owned(), 1)],
        "the current versions first, not the missed history"
    );
}

on_both_databases!(
    get_list_versions,
    changes_need_the_admin_token,
    schema_rejection,
    rollback_and_audit,
    watch_delivers_a_publish,
    watch_resumes_after_a_reconnect,
);

/// Two config-svc processes on one PostgreSQL database: a publish on one
/// reaches the watchers of the other within a second (its poller).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_reaches_watchers_of_another_instance() {
    let db = TestDb::new(Db::Postgres).await;
    let a = Server::start(&db.url).await;
    let b = Server::start(&db.url).await;
    let mut watcher = b.client().await;
    let mut stream = watcher
        .watch(WatchRequest {
            names: vec!["economy".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stream.message().await.unwrap().unwrap().version, 1);
    let mut c = a.client().await;
    c.publish(authed(publish("economy", r#"{"daily_reward": 42}"#)))
        .await
        .unwrap();
    let d = tokio::time::timeout(Duration::from_secs(1), stream.message())
        .await
        .expect("within a second")
        .unwrap()
        .unwrap();
    assert_eq!(d.version, 2);
}
