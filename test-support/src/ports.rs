//! Loopback ports for a server a test starts later.
//!
//! A port the kernel hands out for `bind(":0")` comes from the ephemeral
//! range (32768–60999 here), the same range every outgoing connection
//! takes its local port from. Freed and bound again later (a game that
//! binds its address after the test wrote it into the settings, or binds
//! it again after a restart), such a port may have been taken meanwhile by
//! any connection on the host. [`unused`] picks below that range instead,
//! where only another test's explicit bind can collide: each process walks
//! its own sequence from an offset drawn from its id, and skips a port it
//! cannot bind now.

use std::{
    net::{SocketAddr, TcpListener},
    sync::atomic::{AtomicU32, Ordering},
};

/// Below Linux's default ephemeral range and clear of Warren's own
/// defaults (7000–7105) and the shared servers (5432, 5672, 6379, 25672+).
const FIRST: u32 = 12_000;
const COUNT: u32 = 12_000;

/// A loopback address outside the ephemeral range that no one listens on
/// now and that this process has not handed out before.
pub fn unused() -> SocketAddr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let offset = std::process::id().wrapping_mul(2_654_435_761) % COUNT;
    for _ in 0..COUNT {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = FIRST + (offset + n) % COUNT;
        let addr = SocketAddr::from(([127, 0, 0, 1], u16::try_from(port).unwrap()));
        if TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
    panic!("no loopback port free in {FIRST}..{}", FIRST + COUNT);
}
