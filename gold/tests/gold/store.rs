//! Accounts, wallets and the ledger, straight on the store.

use warren_gold::{Applied, GoldError, Store, Transferred};

use warren_test_support::on_both_databases;

use crate::helpers::{Db, OpenStore, TestDb};

on_both_databases!(
    guest_and_username_accounts,
    deltas_are_applied_once_per_key,
    insufficient_funds_write_nothing,
    transfers_move_money_once,
    history_pages_newest_first,
    migrations_run_once_for_many_processes,
);

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

async fn guest_and_username_accounts(db: Db) {
    let db = TestDb::new(db).await;
    let store = db.store().await;
    let (a, created) = store.guest_account("device-a").await.unwrap();
    assert!(created);
    assert_eq!(store.guest_account("device-a").await.unwrap(), (a, false));
    let (b, _) = store.guest_account("device-b").await.unwrap();
    assert_ne!(a, b);
    assert!(matches!(
        store.guest_account("").await,
        Err(GoldError::BadRequest(_))
    ));

    let alice = store.create_user("alice", HASH).await.unwrap();
    assert!(matches!(
        store.create_user("alice", HASH).await,
        Err(GoldError::UsernameTaken)
    ));
    assert_eq!(
        store.credentials("alice").await.unwrap(),
        (alice, HASH.to_owned())
    );
    assert!(matches!(
        store.credentials("bob").await,
        Err(GoldError::UnknownUser)
    ));
    assert!(matches!(
        store.create_user("a b", HASH).await,
        Err(GoldError::BadRequest(_))
    ));
    assert!(matches!(
        store.create_user("carol", "plain").await,
        Err(GoldError::BadRequest(_))
    ));
    store.close().await;
}

async fn deltas_are_applied_once_per_key(db: Db) {
    let db = TestDb::new(db).await;
    let store = db.store().await;
    let (uid, _) = store.guest_account("d").await.unwrap();
    assert_eq!(store.balance(uid, "gold").await.unwrap(), 0);
    let first = store
        .apply_delta(uid, "gold", 100, "reward", "k1")
        .await
        .unwrap();
    assert_eq!((first.balance, first.replayed), (100, false));
    // The same request again: the original result, nothing applied.
    let again = store
        .apply_delta(uid, "gold", 100, "reward", "k1")
        .await
        .unwrap();
    assert_eq!(
        again,
        Applied {
            replayed: true,
            ..first
        }
    );
    assert_eq!(store.balance(uid, "gold").await.unwrap(), 100);
    // The same key for another request is refused.
    assert!(matches!(
        store.apply_delta(uid, "gold", 5, "reward", "k1").await,
        Err(GoldError::KeyReused)
    ));
    let spent = store
        .apply_delta(uid, "gold", -30, "buy", "k2")
        .await
        .unwrap();
    assert_eq!(spent.balance, 70);
    // Currencies are separate wallets.
    store
        .apply_delta(uid, "diamond", 3, "gift", "k3")
        .await
        .unwrap();
    assert_eq!(store.balance(uid, "diamond").await.unwrap(), 3);
    assert_eq!(store.balance(uid, "gold").await.unwrap(), 70);
    // Unknown players and bad values are clear errors.
    assert!(matches!(
        store.apply_delta(999_999, "gold", 1, "x", "k4").await,
        Err(GoldError::UnknownUser)
    ));
    assert!(matches!(
        store.balance(999_999, "gold").await,
        Err(GoldError::UnknownUser)
    ));
    assert!(matches!(
        store.apply_delta(uid, "gold", 0, "x", "k5").await,
        Err(GoldError::BadRequest(_))
    ));
    assert!(matches!(
        store.apply_delta(uid, "GOLD", 1, "x", "k6").await,
        Err(GoldError::BadRequest(_))
    ));
    assert!(matches!(
        store.apply_delta(uid, "gold", 1, "x", "").await,
        Err(GoldError::BadRequest(_))
    ));
    store.close().await;
}

async fn insufficient_funds_write_nothing(db: Db) {
    let db = TestDb::new(db).await;
    let store = db.store().await;
    let (uid, _) = store.guest_account("d").await.unwrap();
    store
        .apply_delta(uid, "gold", 10, "seed", "s")
        .await
        .unwrap();
    let refused = store.apply_delta(uid, "gold", -11, "buy", "b1").await;
    assert!(matches!(
        refused,
        Err(GoldError::InsufficientFunds { balance: 10 })
    ));
    assert_eq!(store.balance(uid, "gold").await.unwrap(), 10);
    assert_eq!(store.history(uid, "", 0, 50).await.unwrap().len(), 1);
    // Nothing was remembered either: the key is still free once funds allow.
    store
        .apply_delta(uid, "gold", 5, "seed", "s2")
        .await
        .unwrap();
    assert_eq!(
        store
            .apply_delta(uid, "gold", -11, "buy", "b1")
            .await
            .unwrap()
            .balance,
        4
    );
    store.close().await;
}

async fn transfers_move_money_once(db: Db) {
    let db = TestDb::new(db).await;
    let store = db.store().await;
    let (a, _) = store.guest_account("a").await.unwrap();
    let (b, _) = store.guest_account("b").await.unwrap();
    store
        .apply_delta(a, "gold", 50, "seed", "seed-a")
        .await
        .unwrap();
    let t = store
        .transfer(a, b, "gold", 20, "gift", "t1")
        .await
        .unwrap();
    assert_eq!(
        t,
        Transferred {
            from_balance: 30,
            to_balance: 20,
            replayed: false
        }
    );
    let again = store
        .transfer(a, b, "gold", 20, "gift", "t1")
        .await
        .unwrap();
    assert_eq!(
        again,
        Transferred {
            replayed: true,
            ..t
        }
    );
    assert!(matches!(
        store.transfer(b, a, "gold", 20, "gift", "t1").await,
        Err(GoldError::KeyReused)
    ));
    assert!(matches!(
        store.transfer(b, a, "gold", 21, "gift", "t2").await,
        Err(GoldError::InsufficientFunds { balance: 20 })
    ));
    assert!(matches!(
        store.transfer(a, a, "gold", 1, "x", "t3").await,
        Err(GoldError::BadRequest(_))
    ));
    assert!(matches!(
        store.transfer(a, b, "gold", -1, "x", "t4").await,
        Err(GoldError::BadRequest(_))
    ));
    assert!(matches!(
        store.transfer(a, 999_999, "gold", 1, "x", "t5").await,
        Err(GoldError::UnknownUser)
    ));
    assert_eq!(store.balance(a, "gold").await.unwrap(), 30);
    assert_eq!(store.balance(b, "gold").await.unwrap(), 20);
    // Both sides are in the ledger under the same key.
    let hb = store.history(b, "gold", 0, 50).await.unwrap();
    assert_eq!((hb[0].delta, hb[0].idempotency_key.as_str()), (20, "t1"));
    store.close().await;
}

async fn history_pages_newest_first(db: Db) {
    let db = TestDb::new(db).await;
    let store = db.store().await;
    let (uid, _) = store.guest_account("d").await.unwrap();
    for i in 1..=7 {
        let currency = if i % 2 == 0 { "diamond" } else { "gold" };
        store
            .apply_delta(uid, currency, i, "r", &format!("h{i}"))
            .await
            .unwrap();
    }
    let page1 = store.history(uid, "", 0, 3).await.unwrap();
    assert_eq!(
        page1.iter().map(|e| e.delta).collect::<Vec<_>>(),
        vec![7, 6, 5]
    );
    let page2 = store.history(uid, "", page1[2].id, 3).await.unwrap();
    assert_eq!(
        page2.iter().map(|e| e.delta).collect::<Vec<_>>(),
        vec![4, 3, 2]
    );
    let page3 = store.history(uid, "", page2[2].id, 3).await.unwrap();
    assert_eq!(page3.iter().map(|e| e.delta).collect::<Vec<_>>(), vec![1]);
    let gold = store.history(uid, "gold", 0, 50).await.unwrap();
    assert_eq!(
        gold.iter().map(|e| e.balance_after).collect::<Vec<_>>(),
        vec![16, 9, 4, 1]
    );
    store.close().await;
}

async fn migrations_run_once_for_many_processes(db: Db) {
    let kind = db;
    let db = TestDb::new(kind).await;
    // PostgreSQL: several gold processes start at once on one database.
    // SQLite serves one process (the embedded default): restarts, in turn.
    let stores: Vec<Store> = match kind {
        Db::Postgres => {
            let (a, b, c) = tokio::join!(db.store(), db.store(), db.store());
            vec![a, b, c]
        }
        Db::Sqlite => {
            let mut v = Vec::new();
            for _ in 0..3 {
                v.push(db.store().await);
            }
            v
        }
    };
    let (uid, _) = stores[0].guest_account("shared").await.unwrap();
    assert_eq!(
        stores[2].guest_account("shared").await.unwrap(),
        (uid, false)
    );
    for s in stores {
        s.close().await;
    }
}
