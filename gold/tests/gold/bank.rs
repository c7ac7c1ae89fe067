//! The bank test, in the spirit of Jepsen's: random transfers between ten
//! accounts from fifty concurrent clients over gRPC, some calls cut short by
//! tiny deadlines and retried with the same idempotency key. At the end the
//! total is conserved exactly, no balance is negative, each account's ledger
//! sums to its balance, and no key was applied twice.

use std::{collections::HashMap, time::Duration};

use rand::{Rng, SeedableRng, rngs::StdRng};
use tonic::{Code, Request, transport::Channel};
use warren_proto::gold::{
    ApplyDeltaRequest, BalanceRequest, GuestAccountRequest, HistoryRequest, TransferRequest,
    gold_client::GoldClient,
};

use warren_test_support::on_both_databases;

use crate::helpers::{Db, OpenStore, Server, TestDb};

on_both_databases!(the_bank_conserves_money_under_concurrency_and_cancellation);

const ACCOUNTS: usize = 10;
const START: i64 = 1_000;
const TASKS: u64 = 50;
const TRANSFERS_PER_TASK: u64 = 30;

// Long: one scenario, told in order.
async fn the_bank_conserves_money_under_concurrency_and_cancellation(db: Db) {
    let db = TestDb::new(db).await;
    let server = Server::start(db.store().await).await;
    let channel = Channel::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = GoldClient::new(channel.clone());

    let mut uids = Vec::new();
    for i in 0..ACCOUNTS {
        let acc = client
            .guest_account(GuestAccountRequest {
                device_id: format!("bank-{i}"),
            })
            .await
            .unwrap()
            .into_inner();
        client
            .apply_delta(ApplyDeltaRequest {
                uid: acc.uid,
                currency: "gold".into(),
                delta: START,
                reason: "opening".into(),
                idempotency_key: format!("open-{i}"),
            })
            .await
            .unwrap();
        uids.push(acc.uid);
    }

    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let mut client = GoldClient::new(channel.clone());
        let uids = uids.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(t);
            let (mut applied, mut refused, mut cut_short) = (0u32, 0u32, 0u32);
            for n in 0..TRANSFERS_PER_TASK {
                let from = uids[rng.gen_range(0..ACCOUNTS)];
                let mut to = uids[rng.gen_range(0..ACCOUNTS)];
                if to == from {
                    to = uids[(uids.iter().position(|&u| u == from).unwrap() + 1) % ACCOUNTS];
                }
                let transfer = TransferRequest {
                    from_uid: from,
                    to_uid: to,
                    currency: "gold".into(),
                    amount: rng.gen_range(1..=300),
                    reason: "bank".into(),
                    idempotency_key: format!("bank-{t}-{n}"),
                };
                // One call in four gets a deadline too short to finish;
                // then it is retried, same key, until it has an answer.
                let mut first = rng.gen_range(0..4) == 0;
                loop {
                    let deadline = if first {
                        Duration::from_micros(rng.gen_range(50..3_000))
                    } else {
                        Duration::from_secs(20)
                    };
                    first = false;
                    let mut req = Request::new(transfer.clone());
                    req.set_timeout(deadline);
                    match client.transfer(req).await {
                        Ok(_) => {
                            applied += 1;
                            break;
                        }
                        Err(s) if warren_gold::reason(&s) == "insufficient_funds" => {
                            refused += 1;
                            break;
                        }
                        Err(s)
                            if matches!(
                                s.code(),
                                Code::DeadlineExceeded | Code::Cancelled | Code::Unavailable
                            ) =>
                        {
                            cut_short += 1;
                        }
                        Err(s) => panic!("transfer failed: {s:?}"),
                    }
                }
            }
            (applied, refused, cut_short)
        }));
    }
    let (mut applied, mut refused, mut cut_short) = (0, 0, 0);
    for t in tasks {
        let (a, r, c) = t.await.unwrap();
        applied += a;
        refused += r;
        cut_short += c;
    }
    assert!(
        applied > 0 && cut_short > 0,
        "the run must exercise both: {applied} applied, {cut_short} cut short"
    );
    eprintln!(
        "bank: {applied} transfers applied, {refused} refused for funds, {cut_short} calls cut short and retried"
    );

    let mut total = 0;
    let mut keys: HashMap<String, Vec<i64>> = HashMap::new();
    for &uid in &uids {
        let balance = client
            .balance(BalanceRequest {
                uid,
                currency: "gold".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .balance;
        assert!(balance >= 0, "uid {uid} went negative: {balance}");
        total += balance;
        // The whole ledger of the account, page by page.
        let mut sum = 0;
        let mut before = 0;
        loop {
            let page = client
                .history(HistoryRequest {
                    uid,
                    currency: "gold".into(),
                    before_id: before,
                    limit: 100,
                })
                .await
                .unwrap()
                .into_inner();
            for e in &page.entries {
                sum += e.delta;
                keys.entry(e.idempotency_key.clone())
                    .or_default()
                    .push(e.delta);
            }
            if page.next_before_id == 0 {
                break;
            }
            before = page.next_before_id;
        }
        assert_eq!(sum, balance, "the ledger of uid {uid} sums to its balance");
    }
    assert_eq!(total, START * ACCOUNTS as i64, "money is conserved exactly");
    let transfers: Vec<_> = keys
        .iter()
        .filter(|(k, _)| k.starts_with("bank-"))
        .collect();
    assert_eq!(
        transfers.len(),
        applied as usize,
        "every applied transfer is in the ledger once"
    );
    for (key, deltas) in transfers {
        assert_eq!(deltas.len(), 2, "{key} applied more than once: {deltas:?}");
        assert_eq!(
            deltas[0] + deltas[1],
            0,
            "{key} moved money in and out equally"
        );
    }
}
