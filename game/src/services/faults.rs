//! faults (cmds 9990–9991): a service that fails on demand, registered only
//! with `fault_injection = true`, so tests can prove a panicking handler is
//! contained. 9990 panics; 9991 replies `{}`, showing the service lives on.

use std::ops::RangeInclusive;

use warren_runtime::{Context, NoMail, Request, Service};

#[derive(Debug, Default)]
pub struct Faults;

impl Faults {
    pub const PANIC: u32 = 9990;
    pub const ALIVE: u32 = 9991;
    pub const CMDS: RangeInclusive<u32> = Self::PANIC..=Self::ALIVE;
}

#[derive(serde::Serialize)]
struct Empty {}

impl Service for Faults {
    type Mail = NoMail;

    fn handle(&mut self, ctx: &mut Context, req: Request) {
        if req.cmd == Self::PANIC {
            panic!("fault injected by uid {} (seq {})", req.uid, req.seq);
        }
        ctx.reply(&req, &Empty {});
    }
}
