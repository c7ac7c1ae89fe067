//! A TCP proxy in front of a transport's server, so a test can take the
//! transport away (every connection cut, new ones refused) and give it back
//! without touching the shared server.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
};

#[derive(Debug)]
pub(crate) struct Proxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    /// Bumped by every cut: each connection ends when it changes.
    cuts: watch::Sender<u64>,
}

impl Proxy {
    pub(crate) async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let up = Arc::new(AtomicBool::new(true));
        let (cuts, _) = watch::channel(0u64);
        let (accept_up, accept_cuts) = (up.clone(), cuts.clone());
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                // Subscribed before the check: a cut that lands between
                // the two still ends this connection.
                let mut cut = accept_cuts.subscribe();
                if !accept_up.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let mut client = client;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Proxy { addr, up, cuts }
    }

    /// Cuts every connection and refuses new ones until [`Proxy::restore`].
    pub(crate) fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    pub(crate) fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// One address a process serves, and the proxy the others reach it through.
pub(crate) struct Route {
    pub(crate) upstream: SocketAddr,
    pub(crate) proxy: Proxy,
}

impl Route {
    pub(crate) async fn new() -> Route {
        let upstream = warren_test_support::ports::unused();
        Route {
            upstream,
            proxy: Proxy::start(upstream).await,
        }
    }
}
