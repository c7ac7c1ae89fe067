//! The batcher: order, bounds, the window and the natural (group-commit) hold.

use warren_proto::ConnectorId;

use super::*;

/// Batches everything except what goes to shard 9.
struct Test;

#[async_trait]
impl Sink for Test {
    async fn write(&self, _: &Address, _: Vec<u8>, _: usize) -> Result<Confirm, BusError> {
        Ok(Box::pin(std::future::ready(Ok(()))))
    }
    fn batches(&self, to: &Address) -> bool {
        *to != Address::Shard(9)
    }
}

fn conn(s: &str) -> Address {
    Address::Connector(ConnectorId::parse(s).expect("id"))
}

fn waiter() -> (Done, oneshot::Receiver<Result<(), BusError>>) {
    let (tx, rx) = oneshot::channel();
    (
        Box::new(move |o| {
            let _ = tx.send(o);
        }),
        rx,
    )
}

/// A callback that counts how often it heard a refusal.
fn refusal() -> (Done, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let seen = runs.clone();
    let done: Done = Box::new(move |e| {
        if e.is_err() {
            assert!(matches!(e, Err(BusError::Rejected(_))));
            seen.fetch_add(1, Ordering::SeqCst);
        }
    });
    (done, runs)
}

#[test]
fn lifecycle_events_are_copied_to_every_shard_in_order() {
    let mut p = Pending::default();
    p.add(&Test, 2, Address::Shard(1), b"m1".to_vec(), waiter().0);
    p.add(&Test, 2, Address::EveryShard, b"c".to_vec(), waiter().0);
    p.add(&Test, 2, Address::Shard(1), b"m2".to_vec(), waiter().0);
    assert_eq!(p.items, 3);
    let g1 = &p.groups[0];
    assert_eq!(g1.to, Address::Shard(1));
    assert_eq!(
        g1.parts,
        vec![b"m1".to_vec(), b"c".to_vec(), b"m2".to_vec()]
    );
    let g0 = &p.groups[1];
    assert_eq!(g0.to, Address::Shard(0));
    assert_eq!(g0.parts, vec![b"c".to_vec()]);
}

#[test]
fn where_the_transport_does_not_batch_each_message_goes_alone_in_order() {
    let mut p = Pending::default();
    p.add(&Test, 10, Address::Shard(9), b"a".to_vec(), waiter().0);
    p.add(&Test, 10, Address::Shard(9), b"b".to_vec(), waiter().0);
    p.add(&Test, 10, Address::Shard(8), b"c".to_vec(), waiter().0);
    p.add(&Test, 10, Address::Shard(8), b"d".to_vec(), waiter().0);
    let got: Vec<_> = p
        .groups
        .iter()
        .map(|g| (g.to.clone(), g.parts.len()))
        .collect();
    assert_eq!(
        got,
        vec![
            (Address::Shard(9), 1),
            (Address::Shard(9), 1),
            (Address::Shard(8), 2)
        ]
    );
    assert_eq!(p.groups[0].parts, vec![b"a".to_vec()]);
    assert_eq!(p.groups[1].parts, vec![b"b".to_vec()]);
}

#[test]
fn a_broadcast_and_single_pushes_are_never_pending_together() {
    let mut p = Pending::default();
    assert!(!p.conflicts(&conn("a")));
    p.add(&Test, 1, conn("a"), b"x".to_vec(), waiter().0);
    assert!(p.conflicts(&Address::EveryConnector));
    assert!(!p.conflicts(&conn("b")));
    p.groups.clear();
    p.add(&Test, 1, Address::EveryConnector, b"y".to_vec(), waiter().0);
    assert!(p.conflicts(&conn("a")));
    assert!(!p.conflicts(&Address::EveryConnector));
}

#[test]
fn a_copied_message_is_confirmed_when_every_copy_is() {
    let mut p = Pending::default();
    let (w, mut rx) = waiter();
    p.add(&Test, 3, Address::EveryShard, b"c".to_vec(), w);
    let waiters: Vec<_> = p.groups.iter().map(|g| g.waiters[0].clone()).collect();
    waiters[0].resolve(&Ok(()));
    waiters[1].resolve(&Err(BusError::Rejected("full".into())));
    assert!(rx.try_recv().is_err(), "not yet: one copy is unconfirmed");
    waiters[2].resolve(&Ok(()));
    assert!(matches!(rx.try_recv(), Ok(Err(BusError::Rejected(_)))));
}

#[test]
fn a_refusal_is_heard_once_and_only_when_a_copy_is_refused() {
    let mut p = Pending::default();
    let (taken, taken_runs) = refusal();
    let (lost, lost_runs) = refusal();
    p.add(&Test, 2, Address::Shard(0), b"a".to_vec(), taken);
    p.add(&Test, 2, Address::EveryShard, b"c".to_vec(), lost);
    let first = p.groups[0].waiters.clone();
    let second = p.groups[1].waiters.clone();
    for w in &first {
        w.resolve(&Ok(()));
    }
    assert_eq!(
        taken_runs.load(Ordering::SeqCst),
        0,
        "a confirmed message is silent"
    );
    assert_eq!(
        lost_runs.load(Ordering::SeqCst),
        0,
        "one copy is still unconfirmed"
    );
    second[0].resolve(&Err(BusError::Rejected("full".into())));
    assert_eq!(lost_runs.load(Ordering::SeqCst), 1);
}

/// Never takes a write.
struct Stuck;

#[async_trait]
impl Sink for Stuck {
    async fn write(&self, _: &Address, _: Vec<u8>, _: usize) -> Result<Confirm, BusError> {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_transport_that_never_takes_a_write_fails_it_instead_of_wedging() {
    let batcher = Batcher::start(Arc::new(Stuck), 1, Duration::ZERO);
    let (done, rx) = waiter();
    batcher.send(Address::Shard(0), b"a".to_vec(), done).await;
    let outcome = rx.await.expect("heard");
    assert!(
        matches!(outcome, Err(BusError::Unavailable(_))),
        "{outcome:?}"
    );
    // Stuck again: the queue in front fills, and a sender waits a
    // bounded time, then hears a refusal.
    let mut refused = 0;
    let mut heard = Vec::new();
    for _ in 0..QUEUE_CAPACITY + MAX_BATCH_ITEMS + 2 {
        let (done, rx) = waiter();
        batcher.send(Address::Shard(0), b"b".to_vec(), done).await;
        heard.push(rx);
    }
    for mut rx in heard {
        if let Ok(Err(BusError::Rejected(_))) = rx.try_recv() {
            refused += 1;
        }
    }
    assert!(refused >= 1, "a full queue refuses within SEND_WAIT");
}

/// Tells the test of each write (its parts) and confirms it when the
/// test says so.
struct Gated(mpsc::UnboundedSender<(usize, oneshot::Sender<()>)>);

#[async_trait]
impl Sink for Gated {
    async fn write(&self, _: &Address, _: Vec<u8>, parts: usize) -> Result<Confirm, BusError> {
        let (gate, confirmed) = oneshot::channel();
        let _ = self.0.send((parts, gate));
        Ok(Box::pin(async move {
            confirmed
                .await
                .map_err(|_| BusError::Unavailable("not confirmed".into()))
        }))
    }
}

/// Lets every other task run as far as it can without time passing
/// (the clock is paused and moves only when every task waits).
async fn settle() {
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn with_no_window_a_lone_message_goes_at_once_and_others_gather_behind_its_confirm() {
    let (tx, mut writes) = mpsc::unbounded_channel();
    let batcher = Batcher::start(Arc::new(Gated(tx)), 1, Duration::ZERO);
    batcher
        .send(Address::Shard(0), b"a".to_vec(), waiter().0)
        .await;
    let (parts, first) = writes.recv().await.expect("written");
    assert_eq!(parts, 1, "nothing in flight: written alone, at once");
    batcher
        .send(Address::Shard(0), b"b".to_vec(), waiter().0)
        .await;
    settle().await;
    assert!(
        writes.try_recv().is_err(),
        "held while the first is unconfirmed"
    );
    batcher
        .send(Address::Shard(0), b"c".to_vec(), waiter().0)
        .await;
    let (done, heard) = waiter();
    batcher.send(Address::Shard(0), b"d".to_vec(), done).await;
    let _ = first.send(());
    let (parts, second) = writes.recv().await.expect("written");
    assert_eq!(parts, 3, "what came meanwhile goes in one write");
    let _ = second.send(());
    assert!(matches!(heard.await, Ok(Ok(()))));
}

#[tokio::test(start_paused = true)]
async fn a_confirm_that_does_not_come_holds_the_next_batch_at_most_max_hold() {
    let (tx, mut writes) = mpsc::unbounded_channel();
    let batcher = Batcher::start(Arc::new(Gated(tx)), 1, Duration::ZERO);
    batcher
        .send(Address::Shard(0), b"a".to_vec(), waiter().0)
        .await;
    let (_, _never) = writes.recv().await.expect("written");
    let sent = tokio::time::Instant::now();
    batcher
        .send(Address::Shard(0), b"b".to_vec(), waiter().0)
        .await;
    let (parts, _) = writes.recv().await.expect("written after the hold");
    assert_eq!(parts, 1);
    assert_eq!(sent.elapsed(), MAX_HOLD);
}

#[tokio::test(start_paused = true)]
async fn a_flush_ends_the_hold() {
    let (tx, mut writes) = mpsc::unbounded_channel();
    let batcher = Batcher::start(Arc::new(Gated(tx)), 1, Duration::ZERO);
    batcher
        .send(Address::Shard(0), b"a".to_vec(), waiter().0)
        .await;
    let (_, _unconfirmed) = writes.recv().await.expect("written");
    batcher
        .send(Address::Shard(0), b"b".to_vec(), waiter().0)
        .await;
    let sent = tokio::time::Instant::now();
    assert!(batcher.flush(Duration::from_secs(1)).await);
    assert_eq!(
        sent.elapsed(),
        Duration::ZERO,
        "not held once a flush is asked"
    );
    assert_eq!(writes.try_recv().map(|(parts, _)| parts).ok(), Some(1));
}

#[tokio::test]
async fn with_a_window_what_arrives_within_it_goes_in_one_write_after_it() {
    let (tx, mut writes) = mpsc::unbounded_channel();
    // Long, so that a loaded host cannot stall the test past it.
    let window = Duration::from_secs(1);
    let batcher = Batcher::start(Arc::new(Gated(tx)), 1, window);
    let start = std::time::Instant::now();
    batcher
        .send(Address::Shard(0), b"a".to_vec(), waiter().0)
        .await;
    settle().await;
    assert!(writes.try_recv().is_err(), "held for the window");
    let (done, heard) = waiter();
    batcher.send(Address::Shard(0), b"b".to_vec(), done).await;
    let (parts, confirm) = writes.recv().await.expect("written");
    assert!(
        start.elapsed() >= window,
        "written after {:?}",
        start.elapsed()
    );
    assert_eq!(parts, 2, "both in one write");
    let _ = confirm.send(());
    assert!(matches!(heard.await, Ok(Ok(()))));
}
