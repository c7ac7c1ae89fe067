//! echo (cmd 1001): replies with the request's body bytes, untouched.
//! Callable over HTTP.

use warren_proto::cmd;
use warren_runtime::{Context, NoMail, Request, Service};

#[derive(Debug, Default)]
pub struct Echo;

impl Echo {
    /// The cmd echo owns.
    pub const CMDS: [u32; 1] = [cmd::ECHO];
}

impl Service for Echo {
    type Mail = NoMail;
    const HTTP_CMDS: &'static [u32] = &Echo::CMDS;

    fn handle(&mut self, ctx: &mut Context, req: Request) {
        ctx.reply_bytes(&req, req.body.clone());
    }
}
