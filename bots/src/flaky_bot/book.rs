//! What the flaky bots of one process share: the book of lines answered
//! and heard (for the count of lost lines at the end), and the proxy in
//! front of the connectors that can stall a connection.

use std::{
    collections::{BTreeSet, HashMap},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Notify,
    time::sleep,
};

/// The lines one bot heard: sender uid → line numbers.
pub(super) type Heard = HashMap<u64, BTreeSet<u64>>;

/// How long the proxy holds a stalled connection before closing it.
const STALL: Duration = Duration::from_secs(5);

/// What the bots of one process leave for the end-of-run count.
#[derive(Debug, Default)]
pub(crate) struct Book {
    /// sender uid → its chat lines answered without error.
    pub(super) acked: Mutex<HashMap<u64, BTreeSet<u64>>>,
    /// For every bot that never resynced: its room's members and the lines
    /// it heard from each (sender → line numbers).
    pub(super) heard: Mutex<Vec<(Vec<u64>, Heard)>>,
    pub(super) proxy: tokio::sync::OnceCell<Proxy>,
}

impl Book {
    /// Lines of room members that their sender had answered and a member
    /// never heard.
    pub(crate) fn lost_lines(&self) -> u64 {
        let acked = self.acked.lock().unwrap_or_else(|p| p.into_inner());
        let heard = self.heard.lock().unwrap_or_else(|p| p.into_inner());
        let mut lost = 0;
        for (members, from) in heard.iter() {
            for sender in members {
                let Some(sent) = acked.get(sender) else {
                    continue;
                };
                let got = from.get(sender);
                lost += sent
                    .iter()
                    .filter(|k| !got.is_some_and(|g| g.contains(k)))
                    .count() as u64;
            }
        }
        lost
    }
}

/// A TCP proxy in front of the connectors that can stall one connection.
#[derive(Debug)]
pub(super) struct Proxy {
    pub(super) addrs: Vec<SocketAddr>,
    stalls: Stalls,
}

type Stalls = Arc<Mutex<HashMap<SocketAddr, Arc<Notify>>>>;

impl Proxy {
    pub(super) async fn start(targets: &[SocketAddr]) -> std::io::Result<Proxy> {
        let stalls = Stalls::default();
        let mut addrs = Vec::new();
        for &target in targets {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            addrs.push(listener.local_addr()?);
            let stalls = stalls.clone();
            tokio::spawn(async move {
                while let Ok((client, peer)) = listener.accept().await {
                    let stall = Arc::new(Notify::new());
                    stalls
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(peer, stall.clone());
                    let stalls = stalls.clone();
                    tokio::spawn(async move {
                        if let Ok(server) = TcpStream::connect(target).await {
                            let _ = server.set_nodelay(true);
                            let _ = client.set_nodelay(true);
                            relay(client, server, &stall).await;
                        }
                        stalls
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&peer);
                    });
                }
            });
        }
        Ok(Proxy { addrs, stalls })
    }

    /// Stops everything on the connection from `peer`; it stays open, silent,
    /// for [`STALL`], then closes.
    pub(super) fn stall(&self, peer: SocketAddr) {
        if let Some(stall) = self
            .stalls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&peer)
        {
            stall.notify_one();
        }
    }
}

/// Copies both ways until either side closes, or until `stall`: then the
/// connection is held open and silent for [`STALL`], and closed.
async fn relay(client: TcpStream, server: TcpStream, stall: &Notify) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let (mut up, mut down) = (vec![0u8; 8192], vec![0u8; 8192]);
    loop {
        tokio::select! {
            () = stall.notified() => {
                sleep(STALL).await;
                return;
            }
            r = cr.read(&mut up) => match r {
                Ok(n) if n > 0 && sw.write_all(&up[..n]).await.is_ok() => {}
                _ => return,
            },
            r = sr.read(&mut down) => match r {
                Ok(n) if n > 0 && cw.write_all(&down[..n]).await.is_ok() => {}
                _ => return,
            },
        }
    }
}
