//! A steady player for fault tests: an echo every 50 ms while something
//! breaks, every answer classified (the echo, or the error's code), and
//! whatever was never answered counted.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use warren_proto::cmd;

use crate::client::{Client, ErrorBody, Event, decode};

/// What one steady player saw.
#[derive(Debug, Default)]
pub struct Seen {
    pub answers: BTreeMap<String, usize>,
    /// Requests not answered within `due` (the connector's time-out
    /// plus 5 s).
    pub late: usize,
    /// The socket ended.
    pub ended: Option<String>,
}

/// Sends an echo every `every` until `stop`, then waits for the answers
/// still due; classifies every answer. An answer is due within `due`.
async fn steady(mut p: Client, stop: Arc<AtomicBool>, every: Duration, due: Duration) -> Seen {
    let mut seen = Seen::default();
    let mut pending: BTreeMap<u64, Instant> = BTreeMap::new();
    let mut next_send = Instant::now();
    let mut stopping_since: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if stop.load(Ordering::Relaxed) {
            let since = *stopping_since.get_or_insert(now);
            if pending.is_empty() || now.duration_since(since) > due {
                break;
            }
        } else if now >= next_send {
            let seq = p.seq();
            if let Err(e) = p.send_frame(seq, cmd::ECHO, b"\x80".to_vec()).await {
                seen.ended = Some(e);
                break;
            }
            pending.insert(seq, now);
            next_send += every;
        }
        let wait = next_send
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(5));
        match p.try_next_event(wait).await {
            Some(Event::Frame(f)) => {
                if pending.remove(&f.seq).is_none() {
                    continue;
                }
                let kind = if f.cmd == cmd::ECHO {
                    "echo".to_owned()
                } else {
                    decode::<ErrorBody>(&f).code
                };
                *seen.answers.entry(kind).or_default() += 1;
            }
            Some(other) => {
                seen.ended = Some(format!("{other:?}"));
                break;
            }
            None => {}
        }
        let now = Instant::now();
        let before = pending.len();
        pending.retain(|_, sent| now.duration_since(*sent) <= due);
        seen.late += before - pending.len();
    }
    seen.late += pending.len();
    seen
}

/// Steady players on a stack, sending until [`Traffic::finish`].
#[derive(Debug)]
pub struct Traffic {
    stop: Arc<AtomicBool>,
    players: Vec<tokio::task::JoinHandle<Seen>>,
}

impl Traffic {
    /// `n` players, uids from `first_uid`, logged in and sending an echo
    /// every 50 ms each; an answer is due within the stack's request
    /// time-out plus 5 s.
    pub async fn start(stack: &crate::stack::Stack, first_uid: u64, n: u64) -> Traffic {
        Self::start_every(stack, first_uid, n, Duration::from_millis(50)).await
    }

    /// The same, each player sending every `every`.
    pub async fn start_every(
        stack: &crate::stack::Stack,
        first_uid: u64,
        n: u64,
        every: Duration,
    ) -> Traffic {
        let timeout = stack
            .setting("WARREN_CONNECTOR__REQUEST_TIMEOUT_MS")
            .map_or(10_000, |ms| ms.parse().expect("a request time-out in ms"));
        let due = Duration::from_millis(timeout) + Duration::from_secs(5);
        let stop = Arc::new(AtomicBool::new(false));
        let mut players = Vec::new();
        for uid in first_uid..first_uid + n {
            let p = stack.player(uid).await;
            players.push(tokio::spawn(steady(p, stop.clone(), every, due)));
        }
        Traffic { stop, players }
    }

    /// Stops sending; every answer of every player by kind, after checking
    /// that no socket ended and no request went unanswered.
    pub async fn finish(self, what: &str) -> BTreeMap<String, usize> {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = BTreeMap::new();
        for (i, p) in self.players.into_iter().enumerate() {
            let seen = p.await.expect("a steady player panicked");
            assert_eq!(seen.ended, None, "{what}: player {i}'s socket ended");
            assert_eq!(seen.late, 0, "{what}: player {i}: unanswered: {seen:?}");
            for (k, n) in seen.answers {
                *total.entry(k).or_default() += n;
            }
        }
        total
    }
}
