//! The body of a service's thread: timers when due, otherwise the next
//! mail, each handled guarded; after a panic the supervisor decides
//! whether the service goes on, restarts with fresh state or stops the
//! process.

use std::{sync::atomic::Ordering::Relaxed, time::Instant};

use tracing::{error, info, warn};
use warren_proto::cmd;

use crate::{
    Context, Service,
    mail::{Control, Mail},
    mailbox::{Empty, Inbox},
    outbox::Settle,
    stats::Counters,
    supervisor::{RESTART_STORM_EXIT, RestartPolicy, Restarts, Verdict, guarded},
};

/// One service's thread: the service, how to build it afresh, its context
/// and its mailbox.
pub(crate) struct ServiceThread<S, F> {
    pub(crate) service: S,
    pub(crate) make: F,
    pub(crate) ctx: Context,
    pub(crate) inbox: Inbox,
    pub(crate) policy: RestartPolicy,
}

/// What one step of the loop came to.
enum Step {
    /// Handled (true) or panicked (false).
    Handled(bool),
    /// A timer is due: nothing was taken from the mailbox.
    Due,
    Stop,
}

impl<S: Service, F: FnMut() -> S> ServiceThread<S, F> {
    pub(crate) fn run(mut self) {
        let name = self.ctx.name();
        let counters = self.inbox.counters.clone();
        counters.record_thread();
        let mut restarts = Restarts::new(self.policy);
        guarded(&counters, name, format_args!("init"), 0, || {
            self.service.init(&mut self.ctx)
        });
        loop {
            let ok = match self.fire_timers(&counters) {
                false => false,
                true => match self.step(&counters) {
                    Step::Handled(ok) => ok,
                    Step::Due => true,
                    Step::Stop => break,
                },
            };
            if !ok {
                self.panicked(&counters, &mut restarts);
            }
        }
        guarded(&counters, name, format_args!("stop"), 0, || {
            self.service.stop(&mut self.ctx)
        });
        let panics = counters.panics.load(Relaxed);
        if panics > 0 {
            warn!(
                service = name,
                panics, "service stopped after caught panics"
            );
        }
    }

    /// Runs every timer that is due; false if one panicked.
    fn fire_timers(&mut self, counters: &Counters) -> bool {
        let mut ok = true;
        while let Some(timer) = self.ctx.timers.pop_due(Instant::now()) {
            counters.messages.fetch_add(1, Relaxed);
            ok &= guarded(counters, self.ctx.name(), format_args!("timer"), 0, || {
                self.service.timer(&mut self.ctx, timer)
            });
        }
        ok
    }

    /// Waits for the next mail (until the next timer is due) and handles it.
    fn step(&mut self, counters: &Counters) -> Step {
        let mail = match self.inbox.next(self.ctx.timers.next_deadline()) {
            Ok(mail) => mail,
            Err(Empty::Timeout) => return Step::Due,
            Err(Empty::Closed) => return Step::Stop,
        };
        let name = self.ctx.name();
        let trace = counters.trace.load(Relaxed);
        let (service, ctx) = (&mut self.service, &mut self.ctx);
        Step::Handled(match mail {
            Mail::Request(req) => request(service, ctx, counters, req),
            Mail::Session(event) => {
                if trace {
                    info!(target: "warren::trace", service = name, event = ?event, "session event");
                }
                guarded(counters, name, format_args!("session event"), 0, || {
                    service.session(ctx, &event)
                })
            }
            Mail::Peer { from, msg } => {
                if trace {
                    info!(target: "warren::trace", service = name, from, "mail");
                }
                let Ok(msg) = msg.downcast::<S::Mail>() else {
                    // `MailboxTx::send_mail` checked the type: unreachable.
                    error!(service = name, from, "mail of the wrong type dropped");
                    return Step::Handled(true);
                };
                guarded(counters, name, format_args!("mail"), 0, || {
                    service.mail(ctx, from, *msg)
                })
            }
            Mail::Control(Control::Lifecycle { event, recorded }) => {
                let ok = guarded(counters, name, format_args!("lifecycle event"), 0, || {
                    service.lifecycle(ctx, event)
                });
                let _ = recorded.send(());
                ok
            }
            Mail::Control(Control::Inspect(answer)) => {
                let mut summary = serde_json::Value::Null;
                let ok = guarded(counters, name, format_args!("summary"), 0, || {
                    summary = service.summary();
                });
                let _ = answer.send(summary);
                ok
            }
            Mail::Control(Control::Stop) => return Step::Stop,
        })
    }

    /// After a panic: go on, restart with fresh state, or stop the process.
    fn panicked(&mut self, counters: &Counters, restarts: &mut Restarts) {
        let name = self.ctx.name();
        match restarts.panicked(Instant::now()) {
            Verdict::GoOn => {}
            Verdict::Restart => {
                counters.restarts.fetch_add(1, Relaxed);
                warn!(
                    service = name,
                    "too many panics: restarting the service with fresh state"
                );
                guarded(counters, name, format_args!("stop"), 0, || {
                    self.service.stop(&mut self.ctx)
                });
                self.ctx.timers = Default::default();
                self.service = (self.make)();
                guarded(counters, name, format_args!("init"), 0, || {
                    self.service.init(&mut self.ctx)
                });
            }
            Verdict::Storm => {
                error!(
                    service = name,
                    restarts = self.policy.storm + 1,
                    within = ?self.policy.storm_period,
                    exit_code = RESTART_STORM_EXIT,
                    "restart storm: stopping the process"
                );
                std::process::exit(RESTART_STORM_EXIT);
            }
        }
    }
}

/// Handles one client request; false if the handler panicked (the player
/// is answered `internal`).
fn request<S: Service>(
    service: &mut S,
    ctx: &mut Context,
    counters: &Counters,
    mut req: crate::Request,
) -> bool {
    let name = ctx.name();
    let ack = std::mem::take(&mut req.ack);
    // Durable mode: acknowledged once what the handler sends is confirmed
    // (see `outbox::Settle`).
    ctx.settle = ack.is_manual().then(|| Settle::new(ack));
    let (origin, seq, cmd, uid) = (req.origin.clone(), req.seq, req.cmd, req.uid);
    let _span = tracing::debug_span!("request", service = name, cmd, %uid, seq).entered();
    let what = format_args!("request cmd {cmd} from uid {uid}");
    let started = Instant::now();
    let done = guarded(counters, name, what, cmd, || service.handle(ctx, req));
    if counters.trace.load(Relaxed) {
        info!(target: "warren::trace", service = name, cmd, %uid, seq, ok = done, us = started.elapsed().as_micros() as u64, "request handled");
    }
    if !done {
        ctx.error_to(&origin, seq, cmd::code::INTERNAL, "internal error");
        // Durable mode: another attempt, up to the delivery limit, then the
        // dead-letter queue.
        if let Some(settle) = &ctx.settle {
            settle.retry();
        }
    }
    ctx.settle = None;
    done
}
