//! faults (cmds 9990–9992): a service that fails on demand, registered only
//! with `fault_injection = true`, so tests can prove a panicking handler is
//! contained. 9990 panics; 9991 replies `{}`, showing the service lives on;
//! 9992 never answers (what a request lost on the way looks like).

use std::ops::RangeInclusive;

use warren_runtime::{Context, NoMail, Request, Service};

#[derive(Debug, Default)]
pub struct Faults;

impl Faults {
    pub const PANIC: u32 = 9990;
    pub const ALIVE: u32 = 9991;
    pub const SILENT: u32 = 9992;
    pub const CMDS: RangeInclusive<u32> = Self::PANIC..=Self::SILENT;
}

#[derive(serde::Serialize)]
struct Empty {}

impl Service for Faults {
    type Mail = NoMail;
    /// Callable over HTTP too, so the call gateway's time-out is tested.
    const HTTP_CMDS: &'static [u32] = &[Self::PANIC, Self::ALIVE, Self::SILENT];

    fn handle(&mut self, ctx: &mut Context, req: Request) {
        if req.cmd == Self::PANIC {
            panic!("fault injected by uid {} (seq {})", req.uid, req.seq);
        }
        if req.cmd == Self::SILENT {
            return;
        }
        ctx.reply(&req, &Empty {});
    }
}
