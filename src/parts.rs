//! What the run modes share: starting each server part on bound listeners,
//! the bus, the token keys, the admin token, the shutdown signal.
//!
//! A part starts in two steps, so that `--ready-file` tells the truth: what
//! can fail (binding, opening and migrating a database, connecting the bus,
//! starting the game's services) happens in `start_*`, which returns a
//! [`Background`] running the part's crate entry point (`warren_gold::run`,
//! `warren_login::run`, `warren_config::run`, `warren_game::run`); the mode
//! writes the ready file once every part has started.
//!
//! Lines meant for a person (what listens where) go to stdout, prefixed
//! `warren:`; logs go to stderr.

#![allow(clippy::print_stdout)]

use std::{future::Future, net::SocketAddr, path::Path, sync::Arc};

use anyhow::{Context as _, bail};
use tokio::net::TcpListener;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tracing::info;
use warren_bus::Bus;
use warren_connector::{Connector, TokenVerifier};
use warren_game::Holding;
use warren_kit::tls::Tls;

mod bus;
pub(crate) use bus::open_bus;

use crate::{
    keys::TokenSigner,
    ready::{Ready, Role},
    settings::{BusKind, SecretUrl, Settings},
};

/// A part that runs until its stop token is cancelled.
pub(crate) struct Background {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Background {
    /// Spawns `serve`, handing it the future that resolves on `stop`.
    fn spawn<F>(serve: impl FnOnce(WaitForCancellationFutureOwned) -> F) -> Self
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve(stop.clone().cancelled_owned()));
        Background { stop, task }
    }

    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.task.await.context("a background part panicked")?
    }
}

/// Resolves on ctrl-c or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
    info!("shutdown signal received");
}

/// A bound address as others reach it: a wildcard bind shown as loopback.
pub(crate) fn shown(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    }
}

pub(crate) async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {what} to {addr}"))
}

/// Binds a gRPC service of `what` on `addr`: TLS with the process's
/// certificate unless on loopback (`warren_kit::grpc::Listener`), plain
/// text off loopback refused unless allowed. The listener and its URL.
pub(crate) async fn bind_grpc(
    settings: &Settings,
    addr: SocketAddr,
    what: &str,
) -> anyhow::Result<(warren_kit::grpc::Listener, String)> {
    let tls = tls(settings)?;
    let listener = warren_kit::grpc::Listener::new(bind(addr, what).await?, tls.as_ref())?;
    check_plain(settings, what, addr, listener.tls())?;
    let url = format!("{}://{}", listener.scheme(), shown(listener.local_addr()));
    Ok((listener, url))
}

/// A client of gold at `url` (`https://`: TLS as `tls.ca` and
/// `tls.client_cert` say), connected on first use, every call bounded by
/// `timeout`.
pub(crate) fn gold(
    settings: &Settings,
    url: &str,
    timeout: std::time::Duration,
) -> anyhow::Result<warren_proto::gold::Gold> {
    let channel = warren_kit::grpc::lazy(url, &settings.tls, timeout)
        .map_err(|e| anyhow::anyhow!("gold.url: {e}"))?;
    Ok(warren_proto::gold::Gold::new(channel, timeout))
}

/// The URL of an admin endpoint on `addr` of a process with these
/// settings: `https` when they give a certificate.
pub(crate) fn admin_url(settings: &Settings, addr: SocketAddr) -> String {
    let scheme = if settings.tls.cert.is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{}", shown(addr))
}

/// The process's TLS (`tls.cert`, `tls.key`), or None for plain text:
/// loaded once and shared by every listener of the process (one watcher
/// of the files, one reload when they change).
pub(crate) fn tls(settings: &Settings) -> anyhow::Result<Option<Tls>> {
    static LOADED: std::sync::Mutex<Option<Option<Tls>>> = std::sync::Mutex::new(None);
    let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(tls) = &*loaded {
        return Ok(tls.clone());
    }
    let tls =
        Tls::load(&settings.tls).context("loading the TLS certificate (tls.cert, tls.key)")?;
    *loaded = Some(tls.clone());
    Ok(tls)
}

/// Refuses to serve `what` in plain text on `addr` unless it is loopback
/// or `tls.allow_plain` says so.
pub(crate) fn check_plain(
    settings: &Settings,
    what: &str,
    addr: SocketAddr,
    tls: Option<&Tls>,
) -> anyhow::Result<()> {
    Ok(warren_kit::tls::check_plain(
        what,
        addr,
        tls,
        &settings.tls,
    )?)
}

/// Binds an HTTP API of `what` on `addr`, with TLS when the settings
/// give a certificate; the listener and its URL.
pub(crate) async fn bind_http(
    settings: &Settings,
    addr: SocketAddr,
    what: &str,
) -> anyhow::Result<(warren_http::Listener, String)> {
    let tls = tls(settings)?;
    check_plain(settings, what, addr, tls.as_ref())?;
    let listener = bind(addr, what).await?;
    let local = shown(listener.local_addr()?);
    let listener = warren_http::Listener::new(listener, tls)?;
    let url = format!("{}://{local}", listener.scheme());
    Ok((listener, url))
}

/// The admin endpoints' token: the configured one, or the one in the data
/// directory (generated on first use, mode 0600).
pub(crate) fn admin_token(settings: &Settings) -> anyhow::Result<String> {
    if let Some(token) = &settings.game.admin_token {
        return Ok(secrecy::ExposeSecret::expose_secret(token).to_owned());
    }
    let path = settings.data_dir.join("admin-token");
    if let Ok(token) = std::fs::read_to_string(&path) {
        return Ok(token.trim().to_owned());
    }
    use rand::RngCore;
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::create_dir_all(&settings.data_dir)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(token.as_bytes())?;
    Ok(token)
}

/// A database URL: the configured one, or the SQLite file `file` in the
/// data directory (the embedded default).
pub(crate) fn database_url(
    settings: &Settings,
    configured: &Option<SecretUrl>,
    file: &str,
) -> anyhow::Result<SecretUrl> {
    match configured {
        Some(url) => Ok(url.clone()),
        None => {
            std::fs::create_dir_all(&settings.data_dir)
                .with_context(|| format!("creating {}", settings.data_dir.display()))?;
            Ok(SecretUrl::new(format!(
                "sqlite://{}?mode=rwc",
                settings.data_dir.join(file).display()
            )))
        }
    }
}

/// Starts gold; returns its URL and the running part.
pub(crate) async fn start_gold(
    settings: &Settings,
    ready: &mut Ready,
) -> anyhow::Result<(String, Background)> {
    let url = database_url(settings, &settings.gold.database, "warren.db")?;
    let store = warren_gold::Store::connect(url.expose(), settings.gold.max_connections)
        .await
        .with_context(|| format!("opening gold's database {url}"))?;
    let (listener, gold_url) = bind_grpc(settings, settings.gold.listen, "gold (gRPC)").await?;
    println!("warren: gold listening on {gold_url} (database {url})");
    ready.listening(Role::Gold, &gold_url);
    let (admin, admin_url) = bind_http(
        settings,
        settings.gold.admin_listen,
        "gold's metrics endpoint",
    )
    .await?;
    println!("warren: gold metrics on {admin_url}/metrics");
    ready.listening(Role::GoldAdmin, &admin_url);
    let calls = warren_http::calls::Calls::default();
    let token = admin_token(settings)?;
    let gold_settings = settings.gold.clone();
    let gold = Background::spawn(|signal| async move {
        let stop_metrics = CancellationToken::new();
        let metrics = tokio::spawn(serve_metrics(
            admin,
            calls.clone(),
            token,
            stop_metrics.clone().cancelled_owned(),
        ));
        let served =
            warren_gold::run(listener, store.clone(), &gold_settings, &calls, signal).await;
        stop_metrics.cancel();
        store.close().await;
        metrics.await??;
        served?;
        Ok(())
    });
    Ok((gold_url, gold))
}

/// `/metrics` of a service that has only its calls counted (gold), behind
/// the operators' token, on `listener` until `shutdown`.
async fn serve_metrics(
    listener: warren_http::Listener,
    calls: warren_http::calls::Calls,
    token: String,
    shutdown: WaitForCancellationFutureOwned,
) -> std::io::Result<()> {
    let router = calls
        .metrics_route(token)
        .fallback(async || warren_http::ApiError::not_found("no such endpoint"));
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Opens config-svc's database; returns it and its URL (which prints
/// without its password).
pub(crate) async fn config_store(
    settings: &Settings,
) -> anyhow::Result<(warren_config::Store, SecretUrl)> {
    let url = database_url(settings, &settings.config_svc.database, "config.db")?;
    let store = warren_config::Store::connect(url.expose(), settings.config_svc.max_connections)
        .await
        .with_context(|| format!("opening config-svc's database {url}"))?;
    Ok((store, url))
}

/// Starts config-svc (gRPC and the admin page); returns its gRPC URL and
/// the running part.
pub(crate) async fn start_config(
    settings: &Settings,
    ready: &mut Ready,
) -> anyhow::Result<(String, Background)> {
    // Served over HTTPS by Warren itself, the page's cookies are secure.
    let mut cs = settings.config_svc.clone();
    cs.secure_cookies |= settings.tls.cert.is_some();
    let cs = &cs;
    let (store, database) = config_store(settings).await?;
    let no_staff = store.staff_count().await? == 0;
    let server = warren_config::Server::open(store, cs, &admin_token(settings)?).await?;
    let page = bind_http(settings, cs.admin_listen, "the config admin page").await?;
    let grpc = bind_grpc(settings, cs.listen, "config-svc (gRPC)").await?;
    let listeners = warren_config::Listeners {
        grpc: grpc.0,
        page: page.0,
    };
    let url = grpc.1;
    let page_url = page.1;
    println!("warren: config-svc listening on {url} (database {database})");
    if no_staff {
        println!(
            "warren: config admin page on {page_url} (no staff account yet: create one with `warren config-admin add-user <name>`)"
        );
    } else {
        println!("warren: config admin page on {page_url}");
    }
    ready.listening(Role::Config, &url);
    ready.listening(Role::ConfigPage, &page_url);
    let part = Background::spawn(|signal| async move {
        Ok(warren_config::run(listeners, server, signal).await?)
    });
    Ok((url, part))
}

/// Starts login, reaching gold at `gold_url`, signing with `private` and
/// sending logouts on through the game's admin endpoint at `game_admin`
/// (`login.game_admin`, else this process's game, else
/// `game.admin_listen`).
pub(crate) async fn start_login(
    settings: &Settings,
    gold_url: &str,
    private: &Path,
    ready: &mut Ready,
) -> anyhow::Result<Background> {
    let signer = TokenSigner::from_file(private, &settings.jwt)?;
    let game_admin = match (&settings.login.game_admin, ready.url(Role::GameAdmin)) {
        (Some(url), _) => url.clone(),
        (None, Some(url)) => url.to_owned(),
        (None, None) => admin_url(settings, settings.game.admin_listen),
    };
    let token = admin_token(settings)?;
    let revoker = warren_login::Revoker::new(&game_admin, token.clone(), settings.tls.clone());
    let (listener, url) = bind_http(settings, settings.login.listen, "login").await?;
    println!("warren: login listening on {url}");
    ready.listening(Role::Login, &url);
    let login_settings = settings.login.clone();
    let gold = gold(settings, gold_url, settings.login.gold_timeout_ms)?;
    Ok(Background::spawn(|signal| async move {
        warren_login::run(
            listener,
            &login_settings,
            gold,
            signer,
            Some(revoker),
            Some(token),
            signal,
        )
        .await?;
        Ok(())
    }))
}

/// Starts the HTTP call gateway on `bus`, with `page`'s routes beside its
/// own: it consumes its replies before it listens.
pub(crate) async fn start_calls(
    settings: &Settings,
    bus: Arc<dyn Bus>,
    public: &Path,
    ready: &mut Ready,
    page: Option<axum::Router>,
) -> anyhow::Result<Background> {
    let gateway =
        warren_calls::Gateway::new(settings.http.clone(), bus, verifier(settings, public)?)
            .await
            .context("starting the HTTP call gateway")?;
    let (listener, url) =
        bind_http(settings, settings.http.listen, "the HTTP call gateway").await?;
    println!(
        "warren: http calls listening on {url} (id {}; POST /v1/call/{{cmd}})",
        gateway.id()
    );
    let mut app = gateway.router();
    if let Some(page) = page {
        println!("warren: the example web page is at {url}/");
        app = app.merge(page);
    }
    ready.listening(Role::Http, &url);
    Ok(Background::spawn(|signal| async move {
        warren_calls::run(listener, app, signal).await?;
        Ok(())
    }))
}

/// Starts the game's services on `bus` and its admin endpoint.
pub(crate) async fn start_game(
    settings: &Settings,
    bus: Arc<dyn Bus>,
    ready: &mut Ready,
) -> anyhow::Result<Background> {
    let token = admin_token(settings)?;
    let upstreams = warren_game::Upstreams {
        gold_url: settings.gold.url.clone(),
        config_url: settings.config_svc.url.clone(),
        tls: settings.tls.clone(),
    };
    if settings.game.standby && settings.bus.transport().ok() == Some(BusKind::Memory) {
        bail!(
            "game.standby is for a game process of its own (`warren game`) on a networked bus; \
             the in-process bus has one game"
        );
    }
    let game = warren_game::start(&settings.game, &upstreams, bus).await?;
    let names: Vec<&str> = game.stats().iter().map(|s| s.name).collect();
    let (listener, url) = bind_http(
        settings,
        settings.game.admin_listen,
        "the game admin endpoint",
    )
    .await?;
    let doing = if settings.game.standby {
        "started as a possible standby with"
    } else {
        "serving"
    };
    println!(
        "warren: game {doing} {} (shard {} of {})",
        names.join(", "),
        settings.game.shard,
        settings.bus.shards
    );
    println!(
        "warren: game admin listening on {url} (bearer token: game.admin_token or {})",
        settings.data_dir.join("admin-token").display()
    );
    ready.listening(Role::GameAdmin, &url);
    // After the lines above, so the console reads in order.
    if settings.game.standby {
        tell_holding(game.role().watch(), settings.game.shard);
    }
    Ok(Background::spawn(|signal| async move {
        Ok(warren_game::run(listener, game, token, signal).await?)
    }))
}

/// Says on the console when a standby waits for its shard and when it
/// takes it over (and when it loses it), as long as the game runs.
fn tell_holding(mut holding: tokio::sync::watch::Receiver<Holding>, shard: u16) {
    tokio::spawn(async move {
        loop {
            match *holding.borrow_and_update() {
                Holding::Standby => println!(
                    "warren: game standby for shard {shard}: another game serves it; \
                     this one takes over when it goes"
                ),
                Holding::Serving => println!("warren: game serving shard {shard}"),
                Holding::Asking => {}
            }
            if holding.changed().await.is_err() {
                return;
            }
        }
    });
}

/// Builds the connector and binds its listeners; `run` them with
/// `warren_connector::run`.
pub(crate) async fn prepare_connector(
    settings: &Settings,
    bus: Arc<dyn Bus>,
    public: &Path,
    ready: &mut Ready,
) -> anyhow::Result<(Connector, warren_connector::Listeners)> {
    let connector = Connector::new(settings.connector.clone(), bus, verifier(settings, public)?)
        .map_err(anyhow::Error::msg)?;
    connector
        .subscribe()
        .await
        .context("taking the connector's pushes from the bus")?;
    let tls = tls(settings)?;
    check_plain(
        settings,
        "the connector",
        settings.connector.listen,
        tls.as_ref(),
    )?;
    let (admin, admin_url) = bind_http(
        settings,
        settings.connector.admin_listen,
        "the connector admin endpoint",
    )
    .await?;
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    let listeners = warren_connector::Listeners {
        ws: bind(settings.connector.listen, "the connector").await?,
        tls,
        admin,
    };
    let addr = listeners.ws.local_addr()?;
    let url = format!("{scheme}://{}{}", shown(addr), settings.connector.path);
    println!(
        "warren: connector listening on {url} (id {}, bound to {addr})",
        connector.id()
    );
    println!("warren: connector admin listening on {admin_url}");
    ready.listening(Role::Connector, &url);
    ready.listening(Role::ConnectorAdmin, &admin_url);
    Ok((connector, listeners))
}

fn verifier(settings: &Settings, public: &Path) -> anyhow::Result<Arc<TokenVerifier>> {
    let pem = std::fs::read(public).with_context(|| {
        format!(
            "reading the token public key {} (set WARREN_JWT__PUBLIC_KEY, or create a pair with `warren keygen`)",
            public.display()
        )
    })?;
    let jwt = &settings.jwt;
    let v = TokenVerifier::from_ed_pem(&pem, &jwt.issuer, &jwt.audience, jwt.leeway_secs)
        .with_context(|| format!("{} is not an Ed25519 public key in PEM", public.display()))?
        .keeping_revocations_for(jwt.ttl_secs);
    Ok(Arc::new(v))
}

/// The game saves its last known configuration in the data directory
/// unless told otherwise.
pub(crate) fn config_cache(settings: &mut Settings) {
    if settings.game.config_cache.is_none() {
        settings.game.config_cache = Some(settings.data_dir.join("config-cache"));
    }
}
