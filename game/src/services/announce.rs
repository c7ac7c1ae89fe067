//! announce: marquee announcements (PROTOCOL.md push 9001) from operators,
//! to every player or to a list of uids, now or at a set time.
//!
//! Operators reach it through the game's admin HTTP endpoint (and `warren
//! announce`, which calls it); the request arrives as [`AnnounceRequest`]
//! mail and is answered on its reply channel. An immediate announcement
//! reports how many players it went to: the players online (as the session
//! service knows them) among its recipients when it was sent. A scheduled
//! one is answered with its id at once and reports when it went out.
//!
//! Bounds: a text of 1 to 512 characters, at most 10,000 uids per
//! announcement, at most 1,000 scheduled at once (one more is refused), at
//! most 30 days ahead; the 1,000 most recent outcomes are kept.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tracing::info;
use warren_proto::{Uid, body::Marquee, cmd};

use warren_runtime::{Context, Request, Service, TimerId};

const MAX_TEXT: usize = 512;
const MAX_UIDS: usize = 10_000;
const MAX_SCHEDULED: usize = 1_000;
const MAX_AHEAD: Duration = Duration::from_secs(30 * 24 * 3600);
const KEEP_OUTCOMES: usize = 1_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Urgent,
}

/// An announcement as an operator asks for it.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Announcement {
    pub text: String,
    #[serde(default = "default_level")]
    pub level: Level,
    /// Unset: everyone online. Set: exactly these players (those online).
    #[serde(default)]
    pub uids: Option<Vec<u64>>,
    /// Unix seconds to send it at; unset or past: now.
    #[serde(default)]
    pub at: Option<u64>,
}

impl Level {
    /// As the protocol writes it.
    pub fn name(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Urgent => "urgent",
        }
    }
}

fn default_level() -> Level {
    Level::Info
}

/// What became of an announcement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub id: u64,
    /// `sent` or `scheduled`.
    pub state: String,
    /// Players it went to (online recipients when sent); 0 while scheduled.
    pub delivered: u64,
    /// Listed uids that were offline when it was sent.
    pub offline: u64,
    /// Unix seconds it was (or will be) sent at.
    pub at: u64,
}

/// What the admin endpoint mails the announce service.
#[derive(Debug)]
pub enum AnnounceRequest {
    Send {
        announcement: Announcement,
        reply: oneshot::Sender<Result<Outcome, String>>,
    },
    Status {
        id: u64,
        reply: oneshot::Sender<Option<Outcome>>,
    },
}

#[derive(Debug, Default)]
pub struct Announce {
    next_id: u64,
    scheduled: HashMap<TimerId, (u64, Announcement)>,
    outcomes: BTreeMap<u64, Outcome>,
    order: VecDeque<u64>,
}

use warren_proto::time::unix_secs as unix_now;

impl Announce {
    fn validate(a: &Announcement) -> Result<(), String> {
        let chars = a.text.chars().count();
        if chars == 0 || chars > MAX_TEXT {
            return Err(format!("text must have 1 to {MAX_TEXT} characters"));
        }
        if let Some(uids) = &a.uids
            && (uids.is_empty() || uids.len() > MAX_UIDS)
        {
            return Err(format!("uids must list 1 to {MAX_UIDS} players"));
        }
        if let Some(at) = a.at
            && at > unix_now() + MAX_AHEAD.as_secs()
        {
            return Err("at must be within 30 days".into());
        }
        Ok(())
    }

    fn remember(&mut self, outcome: Outcome) {
        if !self.outcomes.contains_key(&outcome.id) {
            self.order.push_back(outcome.id);
        }
        self.outcomes.insert(outcome.id, outcome);
        while self.order.len() > KEEP_OUTCOMES {
            if let Some(old) = self.order.pop_front() {
                self.outcomes.remove(&old);
            }
        }
    }

    fn send_now(&mut self, ctx: &Context, id: u64, a: &Announcement) -> Outcome {
        let body = Marquee {
            text: a.text.as_str().into(),
            level: a.level.name().into(),
        };
        let (delivered, offline) = match &a.uids {
            None => {
                ctx.broadcast(cmd::ANNOUNCEMENT, &body);
                (ctx.online_count() as u64, 0)
            }
            Some(uids) => {
                let mut unique: Vec<u64> = uids.clone();
                unique.sort_unstable();
                unique.dedup();
                let (online, offline): (Vec<Uid>, Vec<Uid>) =
                    unique.into_iter().map(Uid).partition(|u| ctx.is_online(*u));
                let n = online.len() as u64;
                ctx.push_many(online, cmd::ANNOUNCEMENT, &body);
                (n, offline.len() as u64)
            }
        };
        info!(id, delivered, offline, "announcement sent");
        let outcome = Outcome {
            id,
            state: "sent".into(),
            delivered,
            offline,
            at: unix_now(),
        };
        self.remember(outcome.clone());
        outcome
    }

    fn request(&mut self, ctx: &mut Context, a: Announcement) -> Result<Outcome, String> {
        Self::validate(&a)?;
        self.next_id += 1;
        let id = self.next_id;
        // Timed to the millisecond: `at` is the start of that second.
        let now_ms = warren_proto::time::unix_ms();
        match a.at.filter(|&at| at.saturating_mul(1000) > now_ms) {
            None => Ok(self.send_now(ctx, id, &a)),
            Some(at) => {
                if self.scheduled.len() >= MAX_SCHEDULED {
                    return Err(format!(
                        "{MAX_SCHEDULED} announcements are already scheduled"
                    ));
                }
                let timer = ctx
                    .set_timer(Duration::from_millis(at * 1000 - now_ms))
                    .ok_or("too many timers")?;
                self.scheduled.insert(timer, (id, a));
                let outcome = Outcome {
                    id,
                    state: "scheduled".into(),
                    delivered: 0,
                    offline: 0,
                    at,
                };
                self.remember(outcome.clone());
                Ok(outcome)
            }
        }
    }
}

impl Service for Announce {
    type Mail = AnnounceRequest;

    fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "scheduled": self.scheduled.len(),
            "outcomes_kept": self.outcomes.len(),
            "next_id": self.next_id,
        })
    }

    /// Players cannot announce: no client cmd is owned.
    fn handle(&mut self, ctx: &mut Context, req: Request) {
        ctx.reply_error(
            &req,
            cmd::code::UNKNOWN_CMD,
            "announcements come from operators",
        );
    }

    fn mail(&mut self, ctx: &mut Context, _from: &'static str, req: AnnounceRequest) {
        match req {
            AnnounceRequest::Send {
                announcement,
                reply,
            } => {
                let _ = reply.send(self.request(ctx, announcement));
            }
            AnnounceRequest::Status { id, reply } => {
                let _ = reply.send(self.outcomes.get(&id).cloned());
            }
        }
    }

    fn timer(&mut self, ctx: &mut Context, timer: TimerId) {
        if let Some((id, a)) = self.scheduled.remove(&timer) {
            self.send_now(ctx, id, &a);
        }
    }
}
