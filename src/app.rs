//! The run modes of the `warren` binary.
//!
//! Lines meant for a person (what listens where) go to stdout, prefixed
//! `warren:`; logs go to stderr.

#![allow(clippy::print_stdout)]

use std::{future::Future, net::SocketAddr, path::Path, sync::Arc};

use anyhow::{Context as _, bail};
use tokio::net::TcpListener;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tracing::info;
use warren_bus::{AmqpBus, Bus, MemoryBus};
use warren_connector::{Connector, TokenVerifier};
use warren_proto::Uid;

use crate::{
    cli::{Cli, Command, ConfigAdmin, PartArgs},
    keys::{self, TokenSigner},
    settings::{self, BusKind, Settings, redact_url},
};

pub fn main(cli: Cli) -> anyhow::Result<()> {
    let mut settings = settings::load(cli.config.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(dir) = cli.data_dir {
        settings.data_dir = dir;
    }
    let command = cli.command.unwrap_or(Command::All(PartArgs::default()));
    let workers = settings.worker_threads;
    match command {
        Command::Token { uid, ttl_secs } => token(settings, uid, ttl_secs),
        Command::Announce {
            text,
            level,
            uids,
            in_secs,
            admin,
        } => announce(&settings, text, level, uids, in_secs, admin),
        Command::Debug {
            json,
            admin,
            connector,
            service,
            trace,
        } => match (connector, service, trace) {
            (Some(url), _, _) => debug_connector(&settings, json, &url),
            (_, Some(name), _) => debug_service(&settings, admin, &name),
            (_, _, Some(switch)) => debug_trace(&settings, admin, &switch),
            _ => debug(&settings, json, admin),
        },
        Command::Keygen { out } => {
            let (private, public) = keys::write_pair(&out)?;
            println!(
                "warren: wrote {} and {}",
                private.display(),
                public.display()
            );
            Ok(())
        }
        Command::All(args) => {
            runtime(workers)?.block_on(all(apply(settings, args), shutdown_signal()))
        }
        Command::Connector(args) => {
            let settings = apply(settings, args);
            runtime(workers)?.block_on(connector(settings, shutdown_signal()))
        }
        Command::Game(args) => {
            runtime(workers)?.block_on(game(apply(settings, args), shutdown_signal()))
        }
        Command::Gold(args) => {
            runtime(workers)?.block_on(gold(apply(settings, args), shutdown_signal()))
        }
        Command::Login(args) => {
            runtime(workers)?.block_on(login(apply(settings, args), shutdown_signal()))
        }
        Command::ConfigSvc(mut args) => {
            if let Some(database) = args.database.take() {
                settings.config_svc.database = Some(database);
            }
            runtime(workers)?.block_on(config_svc(apply(settings, args), shutdown_signal()))
        }
        Command::ConfigAdmin(ConfigAdmin::AddUser {
            username,
            password_stdin,
            database,
        }) => {
            if let Some(database) = database {
                settings.config_svc.database = Some(database);
            }
            runtime(workers)?.block_on(add_staff(&settings, &username, password_stdin))
        }
    }
}

/// The async runtime: `workers` threads, or one per core when 0.
fn runtime(workers: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if workers > 0 {
        builder.worker_threads(workers);
    }
    builder
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn apply(mut settings: Settings, args: PartArgs) -> Settings {
    if let Some(url) = args.amqp {
        settings.bus.amqp_url = Some(url);
    }
    if let Some(listen) = args.listen {
        settings.connector.listen = listen;
    }
    if let Some(id) = args.id {
        settings.connector.id = Some(id);
    }
    if let Some(database) = args.database {
        settings.gold.database = Some(database);
    }
    settings
}

fn token(settings: Settings, uid: u64, ttl_secs: Option<u64>) -> anyhow::Result<()> {
    let (private, _) = keys::ensure_dev_pair(&settings)?;
    let mut jwt = settings.jwt.clone();
    if let Some(ttl) = ttl_secs {
        jwt.ttl_secs = ttl;
    }
    let (token, _) = TokenSigner::from_file(&private, &jwt)?.sign(Uid(uid))?;
    println!("{token}");
    Ok(())
}

/// The admin endpoint's token: the configured one, or the one in the data
/// directory (generated on first use, mode 0600).
fn admin_token(settings: &Settings) -> anyhow::Result<String> {
    if let Some(token) = &settings.game.admin_token {
        return Ok(token.0.clone());
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

/// An HTTP client for the game's admin endpoint.
fn admin_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .build()
        .into()
}

fn admin_base(settings: &Settings, admin: Option<String>) -> String {
    admin.unwrap_or_else(|| format!("http://{}", shown(settings.game.admin_listen)))
}

/// Calls an admin endpoint (`what` names whose, for the error): `GET` when
/// `json` is None, else `POST` with it. Returns the status and the body.
fn admin_call(
    settings: &Settings,
    what: &str,
    base: &str,
    path: &str,
    json: Option<serde_json::Value>,
) -> anyhow::Result<(ureq::http::StatusCode, String)> {
    let auth = format!("Bearer {}", admin_token(settings)?);
    let url = format!("{base}{path}");
    let resp = match json {
        None => admin_agent()
            .get(&url)
            .header("Authorization", &auth)
            .call(),
        Some(body) => admin_agent()
            .post(&url)
            .header("Authorization", &auth)
            .send_json(&body),
    };
    let mut resp =
        resp.with_context(|| format!("reaching the {what}'s admin endpoint at {base}"))?;
    let status = resp.status();
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    Ok((status, body))
}

fn debug(settings: &Settings, json: bool, admin: Option<String>) -> anyhow::Result<()> {
    let base = admin_base(settings, admin);
    let format = if json { "json" } else { "text" };
    let path = format!("/v1/services?format={format}");
    let (status, body) = admin_call(settings, "game", &base, &path, None)?;
    print!("{body}");
    if !status.is_success() {
        bail!("the admin endpoint answered {status}");
    }
    Ok(())
}

/// `warren debug --service NAME`: one service's counters and state, as
/// indented JSON.
fn debug_service(settings: &Settings, admin: Option<String>, name: &str) -> anyhow::Result<()> {
    let base = admin_base(settings, admin);
    let path = format!("/v1/services/{name}");
    let (status, body) = admin_call(settings, "game", &base, &path, None)?;
    match serde_json::from_str::<serde_json::Value>(&body) {
        Ok(v) => println!("{}", serde_json::to_string_pretty(&v)?),
        Err(_) => println!("{body}"),
    }
    if !status.is_success() {
        bail!("the admin endpoint answered {status}");
    }
    Ok(())
}

/// `warren debug --trace NAME=on|off`.
fn debug_trace(settings: &Settings, admin: Option<String>, switch: &str) -> anyhow::Result<()> {
    let (name, on) = match switch.split_once('=') {
        Some((name, "on")) => (name, true),
        Some((name, "off")) => (name, false),
        _ => bail!("--trace takes NAME=on or NAME=off, not {switch:?}"),
    };
    let base = admin_base(settings, admin);
    let path = format!("/v1/services/{name}/trace");
    let body = serde_json::json!({ "on": on });
    let (status, body) = admin_call(settings, "game", &base, &path, Some(body))?;
    println!("{body}");
    if !status.is_success() {
        bail!("the admin endpoint answered {status}");
    }
    Ok(())
}

fn debug_connector(settings: &Settings, json: bool, base: &str) -> anyhow::Result<()> {
    let (status, body) = admin_call(settings, "connector", base, "/v1/stats", None)?;
    if !status.is_success() {
        println!("{body}");
        bail!("the admin endpoint answered {status}");
    }
    if json {
        println!("{body}");
        return Ok(());
    }
    let stats: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&body)?;
    for (name, value) in stats {
        println!("{name:<22} {value}");
    }
    Ok(())
}

fn announce(
    settings: &Settings,
    text: String,
    level: String,
    uids: Vec<u64>,
    in_secs: Option<u64>,
    admin: Option<String>,
) -> anyhow::Result<()> {
    let base = admin_base(settings, admin);
    let body = serde_json::json!({
        "text": text,
        "level": level,
        "uids": if uids.is_empty() { None } else { Some(uids) },
        "at": in_secs.map(|s| keys::unix_now() + s),
    });
    let (status, reply) = admin_call(settings, "game", &base, "/v1/announcements", Some(body))?;
    println!("{reply}");
    if !status.is_success() {
        bail!("the announcement was refused ({status})");
    }
    Ok(())
}

/// Starts the game's admin endpoint.
async fn start_admin(
    settings: &Settings,
    game: warren_game::GameHandle,
) -> anyhow::Result<Background> {
    let token = admin_token(settings)?;
    let listener = TcpListener::bind(settings.game.admin_listen)
        .await
        .with_context(|| {
            format!(
                "binding the game admin endpoint to {}",
                settings.game.admin_listen
            )
        })?;
    println!(
        "warren: game admin listening on http://{} (bearer token: game.admin_token or {})",
        shown(listener.local_addr()?),
        settings.data_dir.join("admin-token").display()
    );
    Ok(Background::spawn(|signal| async move {
        warren_game::serve_admin(listener, game, token, signal).await?;
        Ok(())
    }))
}

/// Starts the connector's admin endpoint.
async fn start_connector_admin(
    settings: &Settings,
    connector: Connector,
) -> anyhow::Result<Background> {
    let token = admin_token(settings)?;
    let addr = settings.connector.admin_listen;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the connector admin endpoint to {addr}"))?;
    println!(
        "warren: connector admin listening on http://{}",
        shown(listener.local_addr()?)
    );
    Ok(Background::spawn(|signal| async move {
        warren_connector::serve_admin(listener, connector, token, signal).await?;
        Ok(())
    }))
}

/// Resolves on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
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
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    info!("shutdown signal received");
}

/// The bus `bus.kind` names. `alone`: this process runs only the
/// connector or only the game, so the bus must reach other processes.
async fn open_bus(settings: &Settings, role: &str, alone: bool) -> anyhow::Result<Arc<dyn Bus>> {
    match settings.bus.transport().map_err(anyhow::Error::msg)? {
        BusKind::Memory if alone => bail!(
            "`warren {role}` runs apart from the other half, so it needs a networked bus: \
             give --amqp URL or set WARREN_BUS__AMQP_URL (bus.kind: {})",
            BusKind::ALL.join(", ")
        ),
        BusKind::Memory => Ok(Arc::new(MemoryBus::new(settings.bus.memory_capacity))),
        BusKind::Amqp => amqp_bus(settings, role).await,
    }
}

async fn amqp_bus(settings: &Settings, role: &str) -> anyhow::Result<Arc<dyn Bus>> {
    let Some(url) = &settings.bus.amqp_url else {
        bail!("`warren {role}` runs on RabbitMQ: give --amqp URL or set WARREN_BUS__AMQP_URL");
    };
    let bus = AmqpBus::connect(settings.bus.amqp(
        url,
        &format!("warren-{role}"),
        settings.game.shard,
    ))
    .await
    .with_context(|| format!("connecting to RabbitMQ at {}", redact_url(url)))?;
    Ok(Arc::new(bus))
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
        .with_context(|| format!("{} is not an Ed25519 public key in PEM", public.display()))?;
    Ok(Arc::new(v))
}

async fn bind(settings: &Settings) -> anyhow::Result<TcpListener> {
    let addr = settings.connector.listen;
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the connector to {addr}"))
}

fn announce_connector(
    listener: &TcpListener,
    settings: &Settings,
    connector: &Connector,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    println!(
        "warren: connector listening on ws://{}{} (id {}, bound to {addr})",
        shown(addr),
        settings.connector.path,
        connector.id()
    );
    Ok(())
}

/// A part that runs until its stop token is cancelled.
struct Background {
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

    async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.task.await.context("a background part panicked")?
    }
}

fn shown(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    }
}

/// A database URL: the configured one, or the SQLite file `file` in the
/// data directory (the embedded default).
fn database_url(
    settings: &Settings,
    configured: &Option<String>,
    file: &str,
) -> anyhow::Result<String> {
    match configured {
        Some(url) => Ok(url.clone()),
        None => {
            std::fs::create_dir_all(&settings.data_dir)
                .with_context(|| format!("creating {}", settings.data_dir.display()))?;
            Ok(format!(
                "sqlite://{}?mode=rwc",
                settings.data_dir.join(file).display()
            ))
        }
    }
}

/// Starts gold; returns its URL and the running part.
async fn start_gold(settings: &Settings) -> anyhow::Result<(String, Background)> {
    let url = database_url(settings, &settings.gold.database, "warren.db")?;
    let store = warren_gold::Store::connect(&url, settings.gold.max_connections)
        .await
        .with_context(|| format!("opening gold's database {}", redact_url(&url)))?;
    let listener = TcpListener::bind(settings.gold.listen)
        .await
        .with_context(|| format!("binding gold to {}", settings.gold.listen))?;
    let gold_url = format!("http://{}", shown(listener.local_addr()?));
    println!(
        "warren: gold listening on {gold_url} (database {})",
        redact_url(&url)
    );
    let gold_settings = settings.gold.clone();
    let gold = Background::spawn(|signal| async move {
        warren_gold::serve(listener, store.clone(), &gold_settings, signal).await?;
        store.close().await;
        Ok(())
    });
    Ok((gold_url, gold))
}

/// Opens config-svc's database; returns it and its URL (password redacted).
async fn config_store(settings: &Settings) -> anyhow::Result<(warren_config::Store, String)> {
    let url = database_url(settings, &settings.config_svc.database, "config.db")?;
    let store = warren_config::Store::connect(&url, settings.config_svc.max_connections)
        .await
        .with_context(|| format!("opening config-svc's database {}", redact_url(&url)))?;
    Ok((store, redact_url(&url)))
}

/// Starts config-svc (gRPC and the admin page); returns its gRPC URL and
/// the running part.
async fn start_config(settings: &Settings) -> anyhow::Result<(String, Background)> {
    let cs = &settings.config_svc;
    let (store, database) = config_store(settings).await?;
    if cs.seed {
        warren_config::seed(&store).await?;
    }
    let hub = warren_config::Hub::new(&store).await?;
    let service =
        warren_config::ConfigService::new(store.clone(), hub.clone(), &admin_token(settings)?);
    let web = warren_config::web::Web::new(store.clone(), hub.clone(), cs)?;
    let grpc = TcpListener::bind(cs.listen)
        .await
        .with_context(|| format!("binding config-svc to {}", cs.listen))?;
    let page = TcpListener::bind(cs.admin_listen)
        .await
        .with_context(|| format!("binding the config admin page to {}", cs.admin_listen))?;
    let url = format!("http://{}", shown(grpc.local_addr()?));
    println!("warren: config-svc listening on {url} (database {database})");
    let page_url = format!("http://{}", shown(page.local_addr()?));
    if store.staff_count().await? == 0 {
        println!(
            "warren: config admin page on {page_url} (no staff account yet: create one with `warren config-admin add-user <name>`)"
        );
    } else {
        println!("warren: config admin page on {page_url}");
    }
    let part = Background::spawn(|signal| async move {
        let stop = CancellationToken::new();
        let poller = tokio::spawn({
            let (hub, store, stop) = (hub.clone(), store.clone(), stop.clone());
            async move {
                tokio::select! {
                    () = hub.poll(store) => {}
                    () = stop.cancelled() => {}
                }
            }
        });
        let web_stop = stop.clone().cancelled_owned();
        let web_task =
            tokio::spawn(async move { warren_config::web::serve(page, web, web_stop).await });
        warren_config::serve_grpc(grpc, service, signal).await?;
        stop.cancel();
        let _ = poller.await;
        web_task.await.context("the config admin page panicked")??;
        store.close().await;
        Ok(())
    });
    Ok((url, part))
}

/// config-svc alone.
pub async fn config_svc(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let (_, part) = start_config(&settings).await?;
    shutdown.await;
    part.stop().await
}

/// `warren config-admin add-user`.
async fn add_staff(
    settings: &Settings,
    username: &str,
    password_stdin: bool,
) -> anyhow::Result<()> {
    warren_config::web::check_username(username).map_err(anyhow::Error::msg)?;
    let (password, generated) = if password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        (line.trim_end_matches(['\r', '\n']).to_owned(), false)
    } else {
        use rand::RngCore;
        let mut bytes = [0u8; 15];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        let p: String = bytes
            .iter()
            .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
            .collect();
        (p, true)
    };
    warren_config::web::check_password(&password).map_err(anyhow::Error::msg)?;
    let hash = tokio::task::spawn_blocking(move || {
        warren_config::web::hash_password(&password).map(|h| (h, password))
    })
    .await?
    .map_err(anyhow::Error::msg)?;
    let (store, _) = config_store(settings).await?;
    let created = store.put_staff(username, &hash.0).await?;
    store.close().await;
    let verb = if created {
        "created staff account"
    } else {
        "set a new password for"
    };
    if generated {
        println!(
            "warren: {verb} {username}; password (shown once): {}",
            hash.1
        );
    } else {
        println!("warren: {verb} {username}");
    }
    println!(
        "warren: sign in at http://{}/login",
        shown(settings.config_svc.admin_listen)
    );
    Ok(())
}

/// Starts login, reaching gold at `gold_url`.
async fn start_login(
    settings: &Settings,
    gold_url: &str,
    private: &Path,
) -> anyhow::Result<Background> {
    let signer = TokenSigner::from_file(private, &settings.jwt)?;
    let listener = TcpListener::bind(settings.login.listen)
        .await
        .with_context(|| format!("binding login to {}", settings.login.listen))?;
    println!(
        "warren: login listening on http://{}",
        shown(listener.local_addr()?)
    );
    let login_settings = settings.login.clone();
    let gold_url = gold_url.to_owned();
    Ok(Background::spawn(|signal| async move {
        warren_login::serve(listener, &login_settings, &gold_url, signer, signal).await?;
        Ok(())
    }))
}

/// Everything in one process: gold, login, game and connector.
pub async fn all(mut settings: Settings, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let (private, public) = keys::ensure_dev_pair(&settings)?;
    let (gold_url, gold) = start_gold(&settings).await?;
    settings.game.gold_url = gold_url.clone();
    let (config_url, config) = start_config(&settings).await?;
    settings.game.config_url = config_url;
    config_cache(&mut settings);
    let login = start_login(&settings, &gold_url, &private).await?;
    let bus = open_bus(&settings, "all", false).await?;
    let game = warren_game::builder(&settings.game)?
        .start(bus.clone())
        .await?;
    let admin = start_admin(&settings, game.handle()).await?;
    let connector = Connector::new(
        settings.connector.clone(),
        bus.clone(),
        verifier(&settings, &public)?,
    )
    .map_err(anyhow::Error::msg)?;
    let listener = bind(&settings).await?;
    announce_connector(&listener, &settings, &connector)?;
    let connector_admin = start_connector_admin(&settings, connector.clone()).await?;
    let amqp = settings.bus.amqp_url.as_ref();
    match amqp.filter(|_| settings.bus.transport() == Ok(BusKind::Amqp)) {
        None => {
            println!("warren: bus: in-process (connector and game share this process)");
            println!(
                "warren: to run on RabbitMQ as separate processes: `warren game --amqp URL` and `warren connector --amqp URL`"
            );
        }
        Some(url) => println!("warren: bus: RabbitMQ at {}", redact_url(url)),
    }
    println!(
        "warren: try it: curl -X POST -d '{{\"device_id\":\"my-phone\"}}' http://127.0.0.1:{}/v1/guest",
        settings.login.listen.port()
    );
    connector.run(listener, shutdown).await?;
    connector_admin.stop().await?;
    admin.stop().await?;
    game.shutdown().await;
    bus.close().await;
    login.stop().await?;
    config.stop().await?;
    gold.stop().await?;
    Ok(())
}

/// The game saves its last known configuration in the data directory
/// unless told otherwise.
fn config_cache(settings: &mut Settings) {
    if settings.game.config_cache.is_none() {
        settings.game.config_cache = Some(settings.data_dir.join("config-cache"));
    }
}

/// gold alone.
pub async fn gold(settings: Settings, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let (_, gold) = start_gold(&settings).await?;
    shutdown.await;
    gold.stop().await
}

/// login alone, reaching gold at `gold.url`.
pub async fn login(settings: Settings, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let private = settings
        .jwt
        .private_key
        .clone()
        .unwrap_or_else(|| settings.data_dir.join(keys::PRIVATE_FILE));
    let login = start_login(&settings, &settings.gold.url, &private).await?;
    shutdown.await;
    login.stop().await
}

/// The connector alone.
pub async fn connector(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let public = settings
        .jwt
        .public_key
        .clone()
        .unwrap_or_else(|| settings.data_dir.join(keys::PUBLIC_FILE));
    let verifier = verifier(&settings, &public)?;
    let bus = open_bus(&settings, "connector", true).await?;
    let connector = Connector::new(settings.connector.clone(), bus.clone(), verifier)
        .map_err(anyhow::Error::msg)?;
    let listener = bind(&settings).await?;
    announce_connector(&listener, &settings, &connector)?;
    let connector_admin = start_connector_admin(&settings, connector.clone()).await?;
    connector.run(listener, shutdown).await?;
    connector_admin.stop().await?;
    bus.close().await;
    Ok(())
}

/// The game process alone.
pub async fn game(
    mut settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    config_cache(&mut settings);
    let bus = open_bus(&settings, "game", true).await?;
    let game = warren_game::builder(&settings.game)?
        .start(bus.clone())
        .await?;
    let names: Vec<&str> = game.stats().iter().map(|s| s.name).collect();
    println!(
        "warren: game serving {} on RabbitMQ namespace {}, shard {} of {}",
        names.join(", "),
        settings.bus.namespace,
        settings.game.shard,
        settings.bus.shards
    );
    let admin = start_admin(&settings, game.handle()).await?;
    shutdown.await;
    admin.stop().await?;
    game.shutdown().await;
    bus.close().await;
    Ok(())
}
