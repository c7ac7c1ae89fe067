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
//! Calls to gold block this service's own thread (never an async thread), up
//! to `gold_timeout_ms`; gold being down is error `unavailable`.

use std::collections::BTreeMap;

use serde::Deserialize;
use tokio::runtime::Handle;
use tracing::error;
use warren_config::Live;
use warren_proto::{
    body,
    cmd::code,
    gold::{self, ApplyDeltaRequest, BalanceRequest, Failure, Gold},
};

use warren_runtime::{Context, NoMail, Request, Service};

const BALANCE: u32 = 3001;
const DAILY: u32 = 3002;
const BUY: u32 = 3003;
const ITEMS: u32 = 3004;

#[derive(Clone, Debug)]
pub struct Wallet {
    gold: Gold,
    rt: Handle,
    economy: Live<EconomyConfig>,
    items: BTreeMap<String, i64>,
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
        })
    }

    /// Answers a failed gold call with the error the player should see.
    fn fail(&self, ctx: &Context, req: &Request, status: &tonic::Status) {
        match gold::failure(status) {
            Failure::Reason("insufficient_funds") => {
                ctx.reply_error(req, "insufficient_funds", "not enough gold")
            }
            Failure::Unavailable => ctx.reply_error(
                req,
                code::UNAVAILABLE,
                "the wallet is unavailable, try again",
            ),
            _ => {
                error!(uid = %req.uid, cmd = req.cmd, error = %status, "gold call failed");
                ctx.reply_error(req, code::INTERNAL, "internal error");
            }
        }
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
        match self.rt.block_on(gold.balance(call)) {
            Ok(r) => ctx.reply(
                req,
                &body::Balance {
                    currency: currency.into(),
                    balance: r.into_inner().balance,
                },
            ),
            Err(s) => match gold::failure(&s) {
                Failure::BadRequest(message) => ctx.reply_error(req, code::BAD_REQUEST, message),
                _ => self.fail(ctx, req, &s),
            },
        }
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
        match self.rt.block_on(gold.apply_delta(call)) {
            Ok(r) if r.get_ref().replayed => ctx.reply_error(
                req,
                "already_claimed",
                "the daily reward was already claimed today",
            ),
            Ok(r) => ctx.reply(
                req,
                &body::Daily {
                    reward,
                    balance: r.into_inner().balance,
                },
            ),
            Err(s) => self.fail(ctx, req, &s),
        }
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
        match self.rt.block_on(gold.apply_delta(call)) {
            Ok(r) => ctx.reply(
                req,
                &body::Bought {
                    item,
                    price,
                    balance: r.into_inner().balance,
                },
            ),
            Err(s) => self.fail(ctx, req, &s),
        }
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
