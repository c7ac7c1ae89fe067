//! The `warren` binary's command dispatch: settings, then the run mode
//! (`modes`) or the command-line tool (`admin_client`, `staff`, keys,
//! tokens) the command names.

#![allow(clippy::print_stdout)]

use anyhow::Context as _;
use warren_proto::Uid;

use crate::{
    admin_client::{self, announce},
    cli::{Cli, Command, ConfigAdmin, PartArgs},
    health,
    keys::{self, TokenSigner},
    modes,
    parts::shutdown_signal,
    ready::Ready,
    settings::{self, BusKind, Settings},
    staff::add_staff,
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
            push_server,
            service,
            trace,
        } => match push_server {
            Some(url) => admin_client::debug_push_server(&settings, json, &url),
            None => admin_client::debug_command(&settings, json, admin, connector, service, trace),
        },
        Command::Ban(args) => crate::ban::ban(&settings, args),
        Command::Health => {
            let Some(ready_file) = cli.ready_file else {
                anyhow::bail!(
                    "warren health reads a ready file: give --ready-file PATH or set WARREN_READY_FILE"
                );
            };
            println!("warren: {}", health::check(&ready_file)?);
            Ok(())
        }
        Command::Keygen { out } => {
            let (private, public) = keys::write_pair(&out)?;
            println!(
                "warren: wrote {} and {}",
                private.display(),
                public.display()
            );
            Ok(())
        }
        Command::ConfigAdmin(ConfigAdmin::AddUser {
            username,
            password_stdin,
            database,
        }) => {
            if let Some(database) = database {
                settings.config_svc.database = Some(database.into());
            }
            runtime(workers)?.block_on(add_staff(&settings, &username, password_stdin))
        }
        server => serve(settings, server, cli.ready_file),
    }
}

/// Runs one of the servers (or all of them) until a shutdown signal.
fn serve(
    mut settings: Settings,
    command: Command,
    ready_file: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let workers = settings.worker_threads;
    let ready = |mode| Ready::new(mode, ready_file.clone());
    match command {
        Command::All(args) => {
            let settings = apply(settings, args);
            runtime(workers)?.block_on(modes::all(settings, ready("all"), shutdown_signal()))
        }
        Command::Connector(args) => {
            let settings = apply(settings, args);
            runtime(workers)?.block_on(modes::connector(
                settings,
                ready("connector"),
                shutdown_signal(),
            ))
        }
        Command::Game(args) => {
            let settings = apply(settings, args);
            runtime(workers)?.block_on(modes::game(settings, ready("game"), shutdown_signal()))
        }
        Command::Gold(args) => {
            let settings = apply(settings, args);
            runtime(workers)?.block_on(modes::gold(settings, ready("gold"), shutdown_signal()))
        }
        Command::Login(args) => {
            let settings = apply(settings, args);
            runtime(workers)?.block_on(modes::login(settings, ready("login"), shutdown_signal()))
        }
        Command::Http(mut args) => {
            // --listen and --id name the gateway's own.
            if let Some(listen) = args.listen.take() {
                settings.http.listen = listen;
            }
            if let Some(id) = args.id.take() {
                settings.http.id = Some(id);
            }
            let settings = apply(settings, args);
            runtime(workers)?.block_on(modes::http(settings, ready("http"), shutdown_signal()))
        }
        Command::ConfigSvc(mut args) => {
            if let Some(database) = args.database.take() {
                settings.config_svc.database = Some(database.into());
            }
            let settings = apply(settings, args);
            runtime(workers)?.block_on(modes::config_svc(
                settings,
                ready("config-svc"),
                shutdown_signal(),
            ))
        }
        Command::PushServer => runtime(workers)?.block_on(modes::push_server(
            settings,
            ready("push-server"),
            shutdown_signal(),
        )),
        tool => unreachable!("serve was handed a tool command: {tool:?}"),
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
    // A flag names the transport too: it wins over the settings file's.
    if let Some(url) = args.amqp {
        settings.bus.amqp_url = Some(url.into());
        settings.bus.kind = Some(BusKind::Amqp);
    }
    if let Some(url) = args.redis {
        settings.bus.redis.url = Some(url.into());
        settings.bus.kind = Some(BusKind::Redis);
    }
    if let Some(gateways) = args.gateways {
        settings.bus.grpc.gateways = gateways;
        settings.bus.kind = Some(BusKind::Grpc);
    }
    if let Some(listen) = args.listen {
        settings.connector.listen = listen;
    }
    if let Some(id) = args.id {
        settings.connector.id = Some(id);
    }
    if let Some(database) = args.database {
        settings.gold.database = Some(database.into());
    }
    settings
}

fn token(settings: Settings, uid: u64, ttl_secs: Option<u64>) -> anyhow::Result<()> {
    let (private, _) = keys::ensure_dev_pair(&settings)?;
    let mut jwt = settings.jwt.clone();
    if let Some(ttl) = ttl_secs {
        jwt.ttl_secs = std::time::Duration::from_secs(ttl);
    }
    let (token, _) = TokenSigner::from_file(&private, &jwt)?.sign(Uid(uid))?;
    println!("{token}");
    Ok(())
}
