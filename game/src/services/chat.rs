//! chat (cmds 2001–2004): rooms that players join, talk in and leave.
//!
//! - 2001 join `{room}` → `{members: [uid, …]}` (sorted, the joiner included)
//! - 2002 send `{room, text}` → `{}`; every member, sender included, gets
//!   push 2003 `{room, from, text}` exactly once
//! - 2004 leave `{room}` → `{}` (leaving a room one is not in is fine)
//!
//! A player who disconnects leaves every room. With several game shards,
//! each room lives on the shard its name hashes to; requests for it that
//! reach another shard are forwarded there. Limits, each refused with
//! `bad_request`: room names of 1–64 characters, texts of at most
//! `max_message_len` characters (config-svc's `chat` document, live), 64
//! rooms per player; sending to a room one has not joined is `not_in_room`.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::Deserialize;
use warren_config::Live;
use warren_proto::{
    Uid,
    body::{Empty, Members, Room, Said, Say},
    cmd,
};

use warren_runtime::{Context, NoMail, Request, Service, SessionEvent};

const MAX_ROOM_NAME: usize = 64;
const MAX_ROOMS_PER_PLAYER: usize = 64;

/// The `chat` configuration document.
#[derive(Clone, Debug, Deserialize)]
pub struct ChatConfig {
    /// Longest message a player may send, in characters.
    pub max_message_len: usize,
}

#[derive(Debug)]
pub struct Chat {
    config: Live<ChatConfig>,
    rooms: HashMap<String, BTreeSet<Uid>>,
    joined: HashMap<Uid, HashSet<String>>,
}

impl Chat {
    /// The cmds chat owns (it pushes `CHAT_MESSAGE`).
    pub const CMDS: [u32; 3] = [cmd::CHAT_JOIN, cmd::CHAT_SEND, cmd::CHAT_LEAVE];

    pub fn new(config: Live<ChatConfig>) -> Self {
        Chat {
            config,
            rooms: HashMap::new(),
            joined: HashMap::new(),
        }
    }

    fn valid_room(name: &str) -> bool {
        !name.is_empty() && name.chars().count() <= MAX_ROOM_NAME
    }

    fn join(&mut self, ctx: &mut Context, req: &Request) {
        let Ok(Room { room }) = req.decode::<Room>() else {
            return ctx.reply_error(req, cmd::code::BAD_REQUEST, "expected {room}");
        };
        let room = room.into_owned();
        if !Self::valid_room(&room) {
            return ctx.reply_error(
                req,
                cmd::code::BAD_REQUEST,
                "room names have 1 to 64 characters",
            );
        }
        let mine = self.joined.entry(req.uid).or_default();
        if !mine.contains(&room) && mine.len() >= MAX_ROOMS_PER_PLAYER {
            return ctx.reply_error(
                req,
                cmd::code::BAD_REQUEST,
                "a player may be in at most 64 rooms",
            );
        }
        mine.insert(room.clone());
        let members = self.rooms.entry(room).or_default();
        members.insert(req.uid);
        let members = members.iter().map(|u| u.0).collect();
        ctx.reply(req, &Members { members });
    }

    fn send(&mut self, ctx: &mut Context, req: &Request) {
        let Ok(Say { room, text }) = req.decode::<Say>() else {
            return ctx.reply_error(req, cmd::code::BAD_REQUEST, "expected {room, text}");
        };
        let max = self.config.get().max_message_len;
        if text.chars().count() > max {
            let message = format!("text is longer than {max} characters");
            return ctx.reply_error(req, cmd::code::BAD_REQUEST, &message);
        }
        let Some(members) = self.rooms.get(&*room).filter(|m| m.contains(&req.uid)) else {
            return ctx.reply_error(req, "not_in_room", "join the room before sending to it");
        };
        ctx.reply(req, &Empty {});
        let said = Said {
            room,
            from: req.uid.0,
            text,
        };
        ctx.push_many(members.iter().copied().collect(), cmd::CHAT_MESSAGE, &said);
    }

    fn leave_room(&mut self, uid: Uid, room: &str) {
        if let Some(members) = self.rooms.get_mut(room) {
            members.remove(&uid);
            if members.is_empty() {
                self.rooms.remove(room);
            }
        }
    }

    fn leave(&mut self, ctx: &mut Context, req: &Request) {
        let Ok(Room { room }) = req.decode::<Room>() else {
            return ctx.reply_error(req, cmd::code::BAD_REQUEST, "expected {room}");
        };
        if let Some(mine) = self.joined.get_mut(&req.uid) {
            mine.remove(&*room);
            if mine.is_empty() {
                self.joined.remove(&req.uid);
            }
        }
        self.leave_room(req.uid, &room);
        ctx.reply(req, &Empty {});
    }
}

/// The shard that owns a room: FNV-1a of its name, the same in every process.
fn owner(room: &str, shards: u16) -> u16 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in room.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % u64::from(shards.max(1))) as u16
}

#[derive(Deserialize)]
struct AnyRoom {
    room: String,
}

impl Service for Chat {
    type Mail = NoMail;
    const WANTS_SESSIONS: bool = true;

    fn summary(&self) -> serde_json::Value {
        let largest = self.rooms.iter().max_by_key(|(_, m)| m.len());
        serde_json::json!({
            "rooms": self.rooms.len(),
            "players_in_rooms": self.joined.len(),
            "largest_room": largest.map(|(name, m)| serde_json::json!({"room": name, "members": m.len()})),
            "max_message_len": self.config.get().max_message_len,
            "config_version": self.config.version(),
        })
    }

    fn handle(&mut self, ctx: &mut Context, req: Request) {
        // A room lives on one shard; a request that reached another one is
        // handed over, and the owner answers the player.
        if ctx.shards() > 1
            && let Ok(AnyRoom { room }) = req.decode::<AnyRoom>()
        {
            let shard = owner(&room, ctx.shards());
            if shard != ctx.shard() {
                return ctx.forward(&req, shard);
            }
        }
        match req.cmd {
            cmd::CHAT_JOIN => self.join(ctx, &req),
            cmd::CHAT_SEND => self.send(ctx, &req),
            cmd::CHAT_LEAVE => self.leave(ctx, &req),
            other => ctx.reply_error(
                &req,
                cmd::code::UNKNOWN_CMD,
                &format!("chat has no cmd {other}"),
            ),
        }
    }

    fn session(&mut self, _ctx: &mut Context, event: &SessionEvent) {
        if let SessionEvent::Disconnected { uid, .. } = event
            && let Some(rooms) = self.joined.remove(uid)
        {
            for room in rooms {
                self.leave_room(*uid, &room);
            }
        }
    }
}
