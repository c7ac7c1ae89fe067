//! wallet/shop (cmds 3001–3004): balances, the daily reward and buying items,
//! all through gold over gRPC — the game never touches the database.
//!
//! - 3001 balance `{currency?}` → `{currency, balance}` (currency: `gold`)
//! - 3002 daily reward `{}` → `{reward, balance}` (the reward is config-svc's
//!   `economy.daily_reward`, live); the second claim of a UTC
//!   day is error `already_claimed`. Enforced by gold's idempotency key
//!   `daily:<uid>:<day>`, not by memory, so it holds across restarts and
//!   across game processes.
//! - 3003 buy `{item, request_id?}` → `{item, price, balance}`; not enough
//!   gold is error `insufficient_funds`, an unknown item `unknown_item`. The
//!   idempotency key comes from the request itself — the client's
//!   `request_id` if given, else its connection and seq — so a request the
//!   bus delivers twice is charged once.
//! - 3004 items `{}` → `{items: {name: price}}`
//!
//! 3001, 3002 and 3004 are callable over HTTP; buying is not.
//!
//! Calls to gold never block this service's thread: each runs as a task on
//! the game's runtime and answers through [`Later`], so one shard serves
//! many purchases at once. A player's calls run one at a time, in the
//! order they came, so their answers (and the balances in them) come in
//! order too; 3004 touches no gold and is answered at once. At most
//! [`MAX_CALLS`] calls wait or run at once: more are answered
//! `overloaded`. A call lasts up to `gold_timeout_ms`; gold being down is
//! error `unavailable`.

use std::{
    collections::{BTreeMap, HashMap},
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering::Relaxed},
    },
};

use serde::Deserialize;
use tokio::{runtime::Handle, sync::oneshot};
use tracing::error;
use warren_config::Live;
use warren_proto::{
    Uid, body,
    cmd::code,
    gold::{self, ApplyDeltaRequest, BalanceRequest, Failure, Gold},
};

use warren_runtime::{Context, Later, NoMail, Request, Service};

const BALANCE: u32 = 3001;
const DAILY: u32 = 3002;
const BUY: u32 = 3003;
const ITEMS: u32 = 3004;

/// Gold calls waiting or running at once, over every player of the shard.
const MAX_CALLS: usize = 4096;

#[derive(Clone, Debug)]
pub struct Wallet {
    gold: Gold,
    rt: Handle,
    economy: Live<EconomyConfig>,
    items: BTreeMap<String, i64>,
    calls: Calls,
}

/// The `economy` configuration document.
#[derive(Clone, Debug, Deserialize)]
pub struct EconomyConfig {
    /// Gold the daily reward grants.
    pub daily_reward: i64,
}

impl Wallet {
    /// The cmds the wallet owns.
    pub const CMDS: [u32; 4] = [BALANCE, DAILY, BUY, ITEMS];

    /// `gold` is reached lazily: the game starts (and its other services
    /// serve) while gold is down. Must be called inside a tokio runtime.
    pub fn new(
        gold: Gold,
        economy: Live<EconomyConfig>,
        items: BTreeMap<String, i64>,
    ) -> Result<Self, String> {
        let rt = Handle::try_current().map_err(|e| e.to_string())?;
        Ok(Wallet {
            gold,
            rt,
            economy,
            items,
            calls: Calls::default(),
        })
    }

    fn balance(&mut self, ctx: &mut Context, req: &Request) {
        let Ok(body::BalanceRequest { currency }) = req.decode() else {
            return ctx.reply_error(req, code::BAD_REQUEST, "expected {currency?}");
        };
        let currency = currency.map_or_else(|| "gold".to_owned(), |c| c.into_owned());
        let mut gold = self.gold.client();
        let call = self.gold.request(BalanceRequest {
            uid: req.uid.0,
            currency: currency.clone(),
        });
        self.calls.start(&self.rt, ctx, req, |later| async move {
            match gold.balance(call).await {
                Ok(r) => {
                    let balance = r.into_inner().balance;
                    later
                        .reply(&body::Balance {
                            currency: currency.into(),
                            balance,
                        })
                        .await
                }
                Err(s) => match gold::failure(&s) {
                    Failure::BadRequest(message) => {
                        later.reply_error(code::BAD_REQUEST, message).await
                    }
                    _ => fail(later, &s).await,
                },
            }
        });
    }

    fn daily(&mut self, ctx: &mut Context, req: &Request) {
        let day = warren_proto::time::unix_secs() / 86_400;
        let mut gold = self.gold.client();
        let reward = self.economy.get().daily_reward;
        let call = self.gold.request(ApplyDeltaRequest {
            uid: req.uid.0,
            currency: "gold".into(),
            delta: reward,
            reason: "daily_reward".into(),
            idempotency_key: format!("daily:{}:{day}", req.uid),
        });
        self.calls.start(&self.rt, ctx, req, |later| async move {
            match gold.apply_delta(call).await {
                Ok(r) if r.get_ref().replayed => {
                    later
                        .reply_error(
                            "already_claimed",
                            "the daily reward was already claimed today",
                        )
                        .await
                }
                Ok(r) => {
                    let balance = r.into_inner().balance;
                    later.reply(&body::Daily { reward, balance }).await
                }
                Err(s) => fail(later, &s).await,
            }
        });
    }

    fn buy(&mut self, ctx: &mut Context, req: &Request) {
        let Ok(body::Buy { item, request_id }) = req.decode() else {
            return ctx.reply_error(req, code::BAD_REQUEST, "expected {item, request_id?}");
        };
        let Some(&price) = self.items.get(&*item) else {
            return ctx.reply_error(
                req,
                "unknown_item",
                &format!("no item {item:?} in the shop"),
            );
        };
        let identity = match request_id {
            Some(id) if (1..=64).contains(&id.chars().count()) => id.into_owned(),
            Some(_) => {
                return ctx.reply_error(
                    req,
                    code::BAD_REQUEST,
                    "request_id has 1 to 64 characters",
                );
            }
            None => req.identity(),
        };
        let mut gold = self.gold.client();
        let call = self.gold.request(ApplyDeltaRequest {
            uid: req.uid.0,
            currency: "gold".into(),
            delta: -price,
            reason: format!("buy:{item}"),
            idempotency_key: format!("buy:{}:{identity}", req.uid),
        });
        let item = item.into_owned();
        self.calls.start(&self.rt, ctx, req, |later| async move {
            match gold.apply_delta(call).await {
                Ok(r) => {
                    let balance = r.into_inner().balance;
                    let item = item.into();
                    later
                        .reply(&body::Bought {
                            item,
                            price,
                            balance,
                        })
                        .await
                }
                Err(s) => fail(later, &s).await,
            }
        });
    }
}

/// Answers a failed gold call with the error the player should see.
async fn fail(later: Later, status: &tonic::Status) {
    match gold::failure(status) {
        Failure::Reason("insufficient_funds") => {
            later
                .reply_error("insufficient_funds", "not enough gold")
                .await
        }
        Failure::Unavailable => {
            later
                .reply_error(code::UNAVAILABLE, "the wallet is unavailable, try again")
                .await
        }
        _ => {
            error!(uid = %later.uid(), cmd = later.cmd(), error = %status, "gold call failed");
            later.reply_error(code::INTERNAL, "internal error").await
        }
    }
}

/// The gold calls of one wallet: at most [`MAX_CALLS`] waiting or running,
/// one at a time per player, in the order asked.
#[derive(Debug, Default)]
struct Calls {
    /// Each player's latest call: it ends (its sender is dropped) once it
    /// has answered, and the player's next call waits for that.
    latest: HashMap<Uid, oneshot::Receiver<()>>,
    /// `latest` is swept of ended calls when it grows past this.
    sweep_at: usize,
    /// Calls waiting or running, shared with their tasks.
    outstanding: Arc<AtomicUsize>,
}

/// A service restarted after panics keeps counting the calls still out;
/// those calls keep their order among themselves.
impl Clone for Calls {
    fn clone(&self) -> Self {
        Calls {
            outstanding: self.outstanding.clone(),
            ..Calls::default()
        }
    }
}

/// What a call's task holds until it ends.
struct Slot {
    outstanding: Arc<AtomicUsize>,
    _ended: oneshot::Sender<()>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.outstanding.fetch_sub(1, Relaxed);
    }
}

impl Calls {
    /// Runs `call` (which answers through the [`Later`] it is given) as a
    /// task once the player's earlier calls have answered; answers
    /// `overloaded` at once when [`MAX_CALLS`] are out.
    fn start<F, C>(&mut self, rt: &Handle, ctx: &Context, req: &Request, call: C)
    where
        C: FnOnce(Later) -> F,
        F: Future<Output = ()> + Send + 'static,
    {
        if self.outstanding.fetch_add(1, Relaxed) >= MAX_CALLS {
            self.outstanding.fetch_sub(1, Relaxed);
            return ctx.reply_error(req, code::OVERLOADED, "the wallet is busy, try again");
        }
        let (ended, next) = oneshot::channel();
        let before = self.latest.insert(req.uid, next);
        self.sweep();
        let slot = Slot {
            outstanding: self.outstanding.clone(),
            _ended: ended,
        };
        let work = call(ctx.later(req));
        rt.spawn(async move {
            if let Some(before) = before {
                // Ended either way: answered, or its task is gone.
                let _ = before.await;
            }
            work.await;
            drop(slot);
        });
    }

    /// Forgets the players whose latest call has ended, once `latest` has
    /// doubled since the last sweep (amortised O(1) per call).
    fn sweep(&mut self) {
        if self.latest.len() <= self.sweep_at {
            return;
        }
        self.latest.retain(|_, ended| {
            matches!(ended.try_recv(), Err(oneshot::error::TryRecvError::Empty))
        });
        self.sweep_at = (self.latest.len() * 2).max(64);
    }
}

impl Service for Wallet {
    type Mail = NoMail;
    /// Balance, daily reward and the item list answer the same whoever
    /// asks and however often (the daily reward is keyed by the day); a
    /// purchase keys its idempotency by the connection unless it names a
    /// `request_id`, so it stays on the websocket.
    const HTTP_CMDS: &'static [u32] = &[BALANCE, DAILY, ITEMS];

    fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "gold_calls_out": self.calls.outstanding.load(Relaxed),
            "daily_reward": self.economy.get().daily_reward,
            "config_version": self.economy.version(),
            "shop_items": self.items,
            "gold_timeout_ms": self.gold.timeout().as_millis() as u64,
        })
    }

    fn handle(&mut self, ctx: &mut Context, req: Request) {
        match req.cmd {
            BALANCE => self.balance(ctx, &req),
            DAILY => self.daily(ctx, &req),
            BUY => self.buy(ctx, &req),
            ITEMS => {
                if req.decode::<body::Empty>().is_err() {
                    return ctx.reply_error(&req, code::BAD_REQUEST, "expected {}");
                }
                let items = body::Items {
                    items: std::borrow::Cow::Borrowed(&self.items),
                };
                ctx.reply(&req, &items);
            }
            other => ctx.reply_error(
                &req,
                code::UNKNOWN_CMD,
                &format!("wallet has no cmd {other}"),
            ),
        }
    }
}
