//! warren-bots: load-tests a Warren game server with websocket bots that
//! log in and play like clients. See `warren-bots --help`.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]
// A command-line tool: the report goes to standard output.
#![allow(clippy::print_stdout)]

mod bot;
mod flaky_bot;
mod http_bot;
mod pacer;
mod plan;
mod plot;
mod progress;
mod report;
mod stats;
mod sys;
mod workers;

use std::{
    io::Write,
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, bail};
use clap::Parser;
use tokio::sync::{Semaphore, mpsc, watch};

use crate::{
    plan::{Auth, Group, Plan, Scenario, ScenarioFile, Span, UrlList},
    report::Report,
    stats::{Snapshot, Stats, Tally},
};

/// Where the bots go unless told: the embedded default's connector, or
/// its call gateway for http-echo.
const DEFAULT_URL: &str = "ws://127.0.0.1:7001/ws";
const DEFAULT_CALLS_URL: &str = "http://127.0.0.1:7006";

/// `--help`'s examples.
const EXAMPLES: &str = include_str!("examples.txt");

/// Load-test a Warren game server with websocket bots.
///
/// Bots log in like real clients, run a scenario (echo, chat, idle, shop) for
/// a fixed window, and report throughput, latency percentiles, connect times,
/// and every error, kick and failure by kind.
#[derive(Debug, Parser)]
#[command(name = "warren-bots", version, after_help = EXAMPLES)]
struct Args {
    /// Websocket URL of a connector. Repeat it to spread the bots over
    /// several connectors (bot n uses URL n mod count).
    /// For http-echo: the call gateway's http:// URL (default
    /// http://127.0.0.1:7006).
    #[arg(long, default_value = DEFAULT_URL)]
    url: Vec<String>,
    /// What the bots do once logged in.
    #[arg(long, value_enum, default_value_t = Scenario::Echo)]
    scenario: Scenario,
    /// How many bots.
    #[arg(long, default_value_t = 100)]
    bots: u64,
    /// Requests per second per bot; 0 sends the next request as soon as the
    /// answer comes (closed loop).
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// Echo body bytes; chat text length.
    #[arg(long, default_value_t = 100)]
    payload: usize,
    /// Chat: bots per room.
    #[arg(long, default_value_t = 10)]
    room_size: u64,
    /// Flaky: seconds between cuts of a bot's connection, on average.
    #[arg(long, default_value_t = 10.0)]
    cut_every: f64,
    /// A TOML scenario file with several groups of bots (see bots/README.md);
    /// replaces --scenario, --bots, --rate, --payload and --room-size.
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// The login service, for guest tokens.
    #[arg(long, default_value = "http://127.0.0.1:7000")]
    login: String,
    /// Sign tokens with this Ed25519 private key (PEM) instead of logging in
    /// over HTTP, e.g. warren-data/jwt-private.pem of the embedded default.
    #[arg(long, value_name = "PEM")]
    key: Option<PathBuf>,
    /// Issuer of signed tokens (the server's jwt.issuer).
    #[arg(long, default_value = "warren")]
    issuer: String,
    /// Audience of signed tokens (the server's jwt.audience).
    #[arg(long, default_value = "warren")]
    audience: String,
    /// Send no login frame: for a plain echo server (the benchmark ceiling).
    #[arg(long)]
    no_login: bool,
    /// Drive a Colyseus echo room at this HTTP address instead of Warren
    /// (the benchmark's peer, benches/colyseus/server.mjs); echo only.
    #[arg(long, value_name = "URL", conflicts_with_all = ["no_login", "key"])]
    colyseus: Option<String>,
    /// New connections per second over every process; 0 opens them all at
    /// once (at most 256 handshakes at a time per process).
    #[arg(long, default_value_t = 1000.0)]
    ramp: f64,
    /// Load after the ramp before measuring starts.
    #[arg(long, default_value = "0s")]
    warmup: Span,
    /// The measured window.
    #[arg(long, default_value = "30s")]
    duration: Span,
    /// Time for one bot to connect and log in.
    #[arg(long, default_value = "10s")]
    connect_timeout: Span,
    /// A bot that has sent nothing for this long sends a heartbeat (the
    /// connector's idle timeout is 30 s by default).
    #[arg(long, default_value = "10s")]
    heartbeat: Span,
    /// Device ids are `<prefix>-<n>`; also names chat rooms and purchases.
    #[arg(long, default_value = "warren-bots")]
    id_prefix: String,
    /// With --key: bot n is uid first-uid + n.
    #[arg(long, default_value_t = 1_000_000)]
    first_uid: u64,
    /// Local addresses to connect from: "auto" (127.0.0.1, .2, … when more
    /// than 25,000 bots target a loopback address: one address has about
    /// 28,000 ports), "none", or a comma-separated list.
    #[arg(long, default_value = "auto")]
    source_ips: String,
    /// Processes to spread the bots over (default: as few as the open-file
    /// limit allows).
    #[arg(long)]
    procs: Option<u64>,
    /// Report the CPU and memory of a server process over the window, as
    /// CPU-µs per answered request. Repeatable.
    #[arg(long = "watch", value_name = "NAME=PID")]
    watch: Vec<String>,
    /// Write the report as JSON to this file ("-": standard output, instead
    /// of the table).
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Write a latency plot (SVG) to this file.
    #[arg(long, value_name = "PATH")]
    plot: Option<PathBuf>,
    /// No progress line.
    #[arg(long, short)]
    quiet: bool,
    /// Exit with status 3 if a group's p99 is above this.
    #[arg(long, value_name = "MS")]
    max_p99_ms: Option<f64>,
    /// Exit with status 3 on any error answer, kick or bot failure.
    #[arg(long)]
    fail_on_errors: bool,
    /// Internal: run one share of a plan read from standard input.
    #[arg(long, hide = true)]
    worker: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("warren-bots: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = if args.worker {
        rt.block_on(workers::worker_main())
            .map(|()| ExitCode::SUCCESS)
    } else {
        rt.block_on(main_run(args))
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("warren-bots: {e:#}");
            ExitCode::from(2)
        }
    }
}

// Long: one check per command-line option, each with its error message.
fn build_plan(args: &Args) -> anyhow::Result<Plan> {
    let mut urls = args.url.clone();
    let mut ramp = args.ramp;
    let mut warmup = args.warmup.0;
    let mut duration = args.duration.0;
    let groups = match &args.file {
        Some(path) => {
            let file = ScenarioFile::read(path)?;
            if let Some(u) = file.url {
                urls = match u {
                    UrlList::One(u) => vec![u],
                    UrlList::Many(u) => u,
                };
            }
            ramp = file.ramp.unwrap_or(ramp);
            warmup = file.warmup.map_or(warmup, |s| s.0);
            duration = file.duration.map_or(duration, |s| s.0);
            file.groups
        }
        None => vec![Group {
            name: args.scenario.to_string(),
            scenario: args.scenario,
            bots: args.bots,
            rate: args.rate,
            payload: args.payload,
            room_size: args.room_size,
            cut_every: args.cut_every,
        }],
    };
    let http_only = groups.iter().all(|g| g.scenario == Scenario::HttpEcho);
    if http_only && urls == [DEFAULT_URL] {
        urls = vec![DEFAULT_CALLS_URL.to_owned()];
    }
    if let Some(base) = &args.colyseus {
        let host = base.split("://").nth(1).unwrap_or("").trim_end_matches('/');
        urls = vec![format!("ws://{host}")];
    }
    let auth = if let Some(base) = &args.colyseus {
        Auth::Colyseus(base.trim_end_matches('/').to_owned())
    } else if args.no_login {
        Auth::None
    } else if let Some(key) = &args.key {
        let pem = std::fs::read_to_string(key)
            .with_context(|| format!("reading the private key {}", key.display()))?;
        jsonwebtoken::EncodingKey::from_ed_pem(pem.as_bytes())
            .with_context(|| format!("{} is not an Ed25519 private key (PEM)", key.display()))?;
        Auth::Key {
            pem,
            issuer: args.issuer.clone(),
            audience: args.audience.clone(),
        }
    } else {
        Auth::Guest(args.login.clone())
    };
    let total: u64 = groups.iter().map(|g| g.bots).sum();
    let loopback = urls.iter().all(|u| {
        let host = u
            .split("://")
            .nth(1)
            .unwrap_or("")
            .split(['/', ':'])
            .next()
            .unwrap_or("");
        host == "localhost" || host.starts_with("127.")
    });
    const PER_IP: u64 = 25_000;
    let source_ips: Vec<Ipv4Addr> = match args.source_ips.as_str() {
        "none" => Vec::new(),
        "auto" if loopback && total > PER_IP => (0..total.div_ceil(PER_IP).min(250))
            .map(|k| Ipv4Addr::new(127, 0, 0, 1 + k as u8))
            .collect(),
        "auto" => Vec::new(),
        list => list
            .split(',')
            .map(|s| {
                s.trim()
                    .parse()
                    .with_context(|| format!("{s:?} is not an IPv4 address"))
            })
            .collect::<anyhow::Result<_>>()?,
    };
    if !source_ips.is_empty() && total > PER_IP * source_ips.len() as u64 {
        eprintln!(
            "warren-bots: warning: {total} bots from {} source address(es) may run out of local ports \
             (about 28,000 per address and target)",
            source_ips.len()
        );
    }
    let plan = Plan {
        urls,
        auth,
        groups,
        ramp,
        warmup,
        duration,
        connect_timeout: args.connect_timeout.0,
        heartbeat: args.heartbeat.0,
        id_prefix: args.id_prefix.clone(),
        first_uid: args.first_uid,
        per_source_ip: if source_ips.is_empty() {
            1
        } else {
            total.div_ceil(source_ips.len() as u64)
        },
        source_ips,
        start_unix_ms: 0,
        worker: 0,
        workers: 1,
    };
    plan.check()?;
    Ok(plan)
}

// Long: the harness's run from start to report, in the order it happens.
async fn main_run(args: Args) -> anyhow::Result<ExitCode> {
    let mut plan = build_plan(&args)?;
    let limit = sys::raise_open_files();
    let capacity = limit.saturating_sub(64).max(1);
    let total = plan.total_bots();
    let procs = match args.procs {
        Some(0) => bail!("--procs must be at least 1"),
        Some(p) => p,
        None => total.div_ceil(capacity),
    };
    if total.div_ceil(procs) > capacity {
        bail!(
            "{} bots per process, but a process may open only {limit} files here; use --procs {} \
             or raise the limit (ulimit -n)",
            total.div_ceil(procs),
            total.div_ceil(capacity)
        );
    }
    if procs > 1 && !args.quiet {
        eprintln!(
            "warren-bots: {total} bots over {procs} processes (open-file limit {limit} per process)"
        );
    }
    let watched: Vec<(String, u32)> = args
        .watch
        .iter()
        .map(|w| {
            let (name, pid) = w
                .split_once('=')
                .with_context(|| format!("--watch {w}: expected NAME=PID"))?;
            let pid: u32 = pid
                .parse()
                .with_context(|| format!("--watch {w}: {pid:?} is not a pid"))?;
            if sys::cpu_secs(pid).is_none() {
                bail!("--watch {w}: no process {pid}");
            }
            Ok((name.to_owned(), pid))
        })
        .collect::<anyhow::Result<_>>()?;

    // Every process shares one timeline, from a start a moment ahead.
    plan.start_unix_ms = warren_proto::time::unix_ms() + if procs > 1 { 1000 } else { 200 };
    plan.workers = procs;
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("warren-bots: stopping (Ctrl-C); the report covers what was measured");
            let _ = stop_tx.send(true);
        }
    });
    let (snap_tx, snap_rx) = mpsc::channel::<(u64, Snapshot)>(1024);
    let progress = tokio::spawn(progress::show_progress(
        plan.clone(),
        procs,
        snap_rx,
        args.quiet,
    ));
    let watcher = tokio::spawn(progress::watch_processes(plan.clone(), watched));
    let tally = if procs == 1 {
        let (tally, _) = run_share(plan.clone(), stop_rx, move |s| {
            let _ = snap_tx.try_send((0, s));
        })
        .await?;
        tally
    } else {
        workers::run_children(&plan, procs, snap_tx, stop_rx).await?
    };
    let _ = progress.await;
    let watched = watcher.await.unwrap_or_default();
    let answered: u64 = tally.groups.iter().map(|g| g.answered).sum();
    let watched = watched
        .into_iter()
        .map(|mut w| {
            w.cpu_us_per_request = w.cpu_secs * 1e6 / answered.max(1) as f64;
            w.switches_per_request = w.context_switches as f64 / answered.max(1) as f64;
            w
        })
        .collect();
    let report = Report::new(&plan, tally, procs, watched);
    let json = serde_json::to_string_pretty(&report)?;
    match args.json.as_deref() {
        Some(p) if p.as_os_str() == "-" => println!("{json}"),
        Some(p) => {
            std::fs::write(p, &json).with_context(|| format!("writing {}", p.display()))?;
            print!("{}", report.table());
        }
        None => print!("{}", report.table()),
    }
    if let Some(p) = &args.plot {
        std::fs::write(p, report.svg()?).with_context(|| format!("writing {}", p.display()))?;
        if !args.quiet {
            eprintln!("warren-bots: latency plot written to {}", p.display());
        }
    }
    let _ = std::io::stdout().flush();
    let mut failed = false;
    if let Some(max) = args.max_p99_ms
        && report.worst_p99_ms() > max
    {
        eprintln!(
            "warren-bots: FAILED: p99 {:.2} ms is over {max} ms",
            report.worst_p99_ms()
        );
        failed = true;
    }
    if args.fail_on_errors && report.problems() > 0 {
        eprintln!(
            "warren-bots: FAILED: {} errors, kicks or failures",
            report.problems()
        );
        failed = true;
    }
    if report.answered() == 0 && report.groups.iter().any(|g| g.scenario != "idle") {
        eprintln!("warren-bots: no request was answered in the window");
        failed = true;
    }
    Ok(if failed {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

/// Runs one process's share of the plan: every `workers`-th bot from
/// `worker`. Calls `emit` with a snapshot every second.
async fn run_share(
    plan: Plan,
    stop: watch::Receiver<bool>,
    emit: impl Fn(Snapshot) + Send + 'static,
) -> anyhow::Result<(Tally, Arc<Stats>)> {
    let mut addrs = Vec::new();
    for url in &plan.urls {
        let authority = url
            .split("://")
            .nth(1)
            .unwrap_or("")
            .split('/')
            .next()
            .unwrap_or("");
        let addr: SocketAddr = tokio::net::lookup_host(authority)
            .await
            .with_context(|| format!("{url}: cannot resolve {authority}"))?
            .find(SocketAddr::is_ipv4)
            .with_context(|| format!("{url}: {authority} has no IPv4 address"))?;
        addrs.push(addr);
    }
    let signer = match &plan.auth {
        Auth::Key { pem, .. } => Some(jsonwebtoken::EncodingKey::from_ed_pem(pem.as_bytes())?),
        _ => None,
    };
    let http = matches!(plan.auth, Auth::Guest(_) | Auth::Colyseus(_)).then(|| {
        ureq::Agent::config_builder()
            .timeout_global(Some(plan.connect_timeout))
            .build()
            .new_agent()
    });
    let stats = Arc::new(Stats::new(plan.groups.len()));
    let start = plan.start_instant();
    let (begin, end) = plan.window();
    let ctx = Arc::new(bot::Ctx {
        start,
        begin: start + begin,
        end: start + end,
        addrs,
        signer,
        http,
        connecting: Semaphore::new(256),
        stop,
        pacer: pacer::Pacer::start().context("starting the pacer thread")?,
        stats: stats.clone(),
        flaky: flaky_bot::Book::default(),
        plan,
    });
    let reporter = {
        let stats = stats.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                emit(stats.snapshot());
            }
        })
    };
    let mut tasks = tokio::task::JoinSet::new();
    let total = ctx.plan.total_bots();
    let mut i = ctx.plan.worker;
    while i < total {
        tasks.spawn(bot::run(ctx.clone(), i));
        i += ctx.plan.workers.max(1);
    }
    while tasks.join_next().await.is_some() {}
    stats.flaky("lines_lost", ctx.flaky.lost_lines());
    reporter.abort();
    Ok((stats.tally(), stats))
}
