//! Sessions (refresh-token families) and bans, straight on the store.

use warren_gold::{GoldError, MAX_SESSIONS, Store};

use warren_test_support::on_both_databases;

use crate::helpers::{Db, OpenStore, TestDb};

on_both_databases!(
    a_rotated_token_works_once_and_its_reuse_ends_the_family,
    two_refreshes_with_one_token_leave_exactly_one_winner,
    sessions_end_one_or_all_and_stay_bounded,
    a_ban_ends_sessions_refuses_new_ones_and_is_audited,
);

fn hash(n: u32) -> String {
    format!("{n:064x}")
}

fn in_a_day() -> i64 {
    i64::try_from(warren_proto::time::unix_secs()).unwrap() + 86_400
}

async fn rotate(store: &Store, family: &str, old: u32, new: u32) -> Result<i64, GoldError> {
    store
        .rotate_session(family, &hash(old), &hash(new), in_a_day())
        .await
}

async fn guest(store: &Store, device: &str) -> i64 {
    store.guest_account(device).await.unwrap().0
}

async fn a_rotated_token_works_once_and_its_reuse_ends_the_family(db: Db) {
    let db = TestDb::new(db).await;
    let store = db.store().await;
    let uid = guest(&store, "phone").await;
    let family = "family-0123456789";
    store
        .start_session(uid, family, &hash(1), in_a_day())
        .await
        .unwrap();
    let got = rotate(&store, family, 1, 2);
    assert_eq!(got.await.unwrap(), uid);
    let got = rotate(&store, family, 2, 3);
    assert_eq!(got.await.unwrap(), uid);
    // Token 1 again: a thief (or a replay) — the whole family ends, so
    // the current token 3 is refused too.
    let reused = rotate(&store, family, 1, 4);
    assert!(matches!(reused.await, Err(GoldError::RefreshReused)));
    let current = rotate(&store, family, 3, 5);
    assert!(matches!(current.await, Err(GoldError::InvalidRefresh)));
    // Unknown family, malformed hash.
    let unknown = rotate(&store, "family-unknown-00", 1, 2);
    assert!(matches!(unknown.await, Err(GoldError::InvalidRefresh)));
    let new = hash(2);
    let malformed = store.rotate_session(family, "zz", &new, in_a_day());
    assert!(matches!(malformed.await, Err(GoldError::BadRequest(_))));
    // An expired family is refused and swept.
    let past = i64::try_from(warren_proto::time::unix_secs()).unwrap() - 1;
    store
        .start_session(uid, "family-expired-0", &hash(7), past)
        .await
        .unwrap();
    let expired = rotate(&store, "family-expired-0", 7, 8);
    assert!(matches!(expired.await, Err(GoldError::InvalidRefresh)));
    assert_eq!(
        store
            .end_sessions(uid, Some("family-expired-0"))
            .await
            .unwrap(),
        0
    );
    store.close().await;
}

async fn two_refreshes_with_one_token_leave_exactly_one_winner(db: Db) {
    let db = TestDb::new(db).await;
    let store = db.store().await;
    let uid = guest(&store, "racer").await;
    for round in 0..20u32 {
        let family = format!("family-race-{round:05}");
        store
            .start_session(uid, &family, &hash(1), in_a_day())
            .await
            .unwrap();
        let (a, b) = tokio::join!(rotate(&store, &family, 1, 2), rotate(&store, &family, 1, 3),);
        let won = [&a, &b].iter().filter(|r| r.is_ok()).count();
        assert_eq!(won, 1, "round {round}: {a:?} {b:?}");
        let lost = if a.is_ok() { b } else { a };
        assert!(matches!(lost, Err(GoldError::RefreshReused)), "{lost:?}");
        // The reuse ended the family: the winner's new token is dead too.
        let after = rotate(&store, &family, 2, 4);
        let after = after.await.and(rotate(&store, &family, 3, 4).await);
        assert!(matches!(after, Err(GoldError::InvalidRefresh)), "{after:?}");
    }
    store.close().await;
}

async fn sessions_end_one_or_all_and_stay_bounded(db: Db) {
    let db = TestDb::new(db).await;
    let store = db.store().await;
    let uid = guest(&store, "tablet").await;
    let other = guest(&store, "someone-else").await;
    let families: Vec<String> = (0..MAX_SESSIONS + 5)
        .map(|i| format!("family-bound-{i:05}"))
        .collect();
    for (i, family) in families.iter().enumerate() {
        let n = u32::try_from(i).unwrap();
        store
            .start_session(uid, family, &hash(n), in_a_day())
            .await
            .unwrap();
    }
    store
        .start_session(other, "family-other-0000", &hash(9), in_a_day())
        .await
        .unwrap();
    // The five oldest were ended by the newer ones.
    let oldest = rotate(&store, &families[0], 0, 100);
    assert!(matches!(oldest.await, Err(GoldError::InvalidRefresh)));
    // Logout: one family; ending it again ends nothing.
    let last = families.last().unwrap();
    assert_eq!(store.end_sessions(uid, Some(last)).await.unwrap(), 1);
    assert_eq!(store.end_sessions(uid, Some(last)).await.unwrap(), 0);
    // Another uid cannot end a family that is not its own.
    assert_eq!(
        store
            .end_sessions(other, Some(&families[10]))
            .await
            .unwrap(),
        0
    );
    // Logout needs the family's current token.
    let family = &families[10];
    let wrong = store.logout(family, &hash(11), true).await;
    assert!(matches!(wrong, Err(GoldError::InvalidRefresh)), "{wrong:?}");
    assert_eq!(
        store.logout(family, &hash(10), false).await.unwrap(),
        (uid, 1)
    );
    // Everywhere: the rest of this uid's, not the other uid's.
    let left = u64::try_from(MAX_SESSIONS - 2).unwrap();
    let everywhere = store.logout(&families[11], &hash(11), true).await.unwrap();
    assert_eq!(everywhere, (uid, left));
    let theirs = rotate(&store, "family-other-0000", 9, 10);
    assert_eq!(theirs.await.unwrap(), other);
    store.close().await;
}

async fn a_ban_ends_sessions_refuses_new_ones_and_is_audited(db: Db) {
    let db = TestDb::new(db).await;
    let store = db.store().await;
    let uid = guest(&store, "cheater").await;
    store
        .start_session(uid, "family-cheater-01", &hash(1), in_a_day())
        .await
        .unwrap();
    assert_eq!(
        store.ban(uid, "speed hack", None, "ops:ana").await.unwrap(),
        1
    );
    let ban = store.ban_of(uid).await.unwrap().unwrap();
    assert_eq!((ban.reason.as_str(), ban.until_s), ("speed hack", None));
    let refused = rotate(&store, "family-cheater-01", 1, 2);
    assert!(matches!(refused.await, Err(GoldError::InvalidRefresh)));
    let refused = store
        .start_session(uid, "family-cheater-02", &hash(3), in_a_day())
        .await;
    match refused {
        Err(GoldError::Banned(message)) => {
            assert!(
                message.contains("for good") && message.contains("speed hack"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    // A ban with an end replaces it; a ban in the past is refused.
    let until = in_a_day();
    store
        .ban(uid, "second chance", Some(until), "ops:ana")
        .await
        .unwrap();
    assert_eq!(
        store.ban_of(uid).await.unwrap().unwrap().until_s,
        Some(until)
    );
    let past = store.ban(uid, "late", Some(1), "ops:ana");
    assert!(matches!(past.await, Err(GoldError::BadRequest(_))));
    assert!(matches!(
        store.ban(i64::MAX, "nobody", None, "ops:ana").await,
        Err(GoldError::UnknownUser)
    ));
    // Lifted: signing in works again; lifting twice changes nothing.
    assert!(store.lift_ban(uid, "ops:ben").await.unwrap());
    assert!(!store.lift_ban(uid, "ops:ben").await.unwrap());
    assert_eq!(store.ban_of(uid).await.unwrap(), None);
    store
        .start_session(uid, "family-cheater-03", &hash(4), in_a_day())
        .await
        .unwrap();
    let audit = store.ban_audit(uid).await.unwrap();
    let actions: Vec<(&str, &str)> = audit
        .iter()
        .map(|a| (a.action.as_str(), a.by.as_str()))
        .collect();
    assert_eq!(
        actions,
        [("ban", "ops:ana"), ("ban", "ops:ana"), ("lift", "ops:ben")]
    );
    store.close().await;
}
