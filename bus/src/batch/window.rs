//! Sleeping out a batch window shorter than a millisecond.
//!
//! tokio's timers tick in whole milliseconds, and a batch window is usually
//! shorter (500 µs by default). On Linux the window is a timerfd armed for
//! it and awaited in the runtime's own epoll, like a socket: the runtime
//! thread, which would sleep in epoll anyway, wakes when it fires. Before,
//! the window was slept on a blocking thread: at low load that cost two
//! thread wake-ups per batch (the blocking thread's, then the runtime's)
//! and the blocking pool's bookkeeping. Elsewhere, or if the timerfd cannot
//! be had (a sandbox without it), the window is still slept on a blocking
//! thread, said once in the log.

use std::time::Duration;

use tracing::warn;

/// One batcher's window timer. Made on the runtime it is awaited on.
pub(crate) struct WindowTimer {
    #[cfg(target_os = "linux")]
    fd: Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>,
}

impl WindowTimer {
    pub(crate) fn new() -> Self {
        #[cfg(target_os = "linux")]
        {
            let fd = linux::timer()
                .inspect_err(|e| {
                    warn!(error = %e, "no timerfd: the batch window is slept on a blocking thread");
                })
                .ok();
            WindowTimer { fd }
        }
        #[cfg(not(target_os = "linux"))]
        WindowTimer {}
    }

    /// Returns once `d` has passed (never sooner).
    pub(crate) async fn sleep(&mut self, d: Duration) {
        if d.is_zero() {
            return;
        }
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.fd {
            match linux::sleep(fd, d).await {
                Ok(()) => return,
                Err(e) => {
                    // Not seen: a timerfd that was made does not fail. Should
                    // it, the window is not lost, only slept the old way.
                    warn!(error = %e, "the batch window's timerfd failed: sleeping on a blocking thread from now on");
                    self.fd = None;
                }
            }
        }
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(d)).await;
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::{io, os::fd::OwnedFd, time::Duration};

    use rustix::time::{
        Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, timerfd_create,
        timerfd_settime,
    };
    use tokio::io::{Interest, unix::AsyncFd};

    pub(super) fn timer() -> io::Result<AsyncFd<OwnedFd>> {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        // tokio 1.54 deprecates the safe constructors for types whose raw
        // fd could change or close under the registration; an `OwnedFd`
        // owns its descriptor for as long as the `AsyncFd` holds it, which
        // is what the unsafe `register_with_interest` asks the caller to
        // promise (and the workspace forbids unsafe code).
        #[allow(deprecated)]
        AsyncFd::with_interest(fd, Interest::READABLE)
    }

    /// Arms the timer for `d` (which resets its count of expirations) and
    /// waits until it has fired.
    pub(super) async fn sleep(fd: &AsyncFd<OwnedFd>, d: Duration) -> io::Result<()> {
        let value = rustix::time::Timespec {
            tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: d.subsec_nanos().into(),
        };
        let spec = Itimerspec {
            it_interval: rustix::time::Timespec::default(),
            it_value: value,
        };
        timerfd_settime(fd.get_ref(), TimerfdTimerFlags::empty(), &spec)?;
        loop {
            let mut ready = fd.readable().await?;
            // A readiness left from an earlier window reads nothing (the
            // arming reset the count) and is cleared by the `WouldBlock`.
            let mut expirations = [0u8; 8];
            match ready.try_io(|fd| Ok(rustix::io::read(fd.get_ref(), &mut expirations)?)) {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[tokio::test]
    async fn a_window_is_never_cut_short_however_often_it_is_slept() {
        let mut timer = WindowTimer::new();
        #[cfg(target_os = "linux")]
        assert!(timer.fd.is_some(), "Linux has timerfd");
        for micros in [500, 50, 1, 2_000, 500, 500] {
            let d = Duration::from_micros(micros);
            let start = Instant::now();
            timer.sleep(d).await;
            assert!(start.elapsed() >= d, "slept {:?} of {d:?}", start.elapsed());
        }
    }

    #[tokio::test]
    async fn a_window_dropped_half_way_leaves_the_next_one_whole() {
        let mut timer = WindowTimer::new();
        let cut = tokio::time::timeout(
            Duration::from_millis(1),
            timer.sleep(Duration::from_secs(60)),
        );
        assert!(
            cut.await.is_err(),
            "a minute does not pass in a millisecond"
        );
        let d = Duration::from_millis(3);
        let start = Instant::now();
        timer.sleep(d).await;
        assert!(start.elapsed() >= d, "slept {:?} of {d:?}", start.elapsed());
    }
}
