//! echo (cmd 1001): replies with the request's body bytes, untouched.

use warren_runtime::{Context, NoMail, Request, Service};

#[derive(Debug, Default)]
pub struct Echo;

impl Service for Echo {
    type Mail = NoMail;

    fn handle(&mut self, ctx: &mut Context, req: Request) {
        ctx.reply_bytes(&req, req.body.clone());
    }
}
