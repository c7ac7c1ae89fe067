//! The game process's content: the built-in services (echo, chat, wallet,
//! announce, session, faults), their settings and configuration documents,
//! and the operators' admin endpoint — composed on the service runtime
//! (`warren-runtime`), which knows none of them by name.
//!
//! [`builder`] gives a [`GameBuilder`] with every built-in service
//! registered; add your own with [`GameBuilder::service`] before starting
//! it ([`start`] does both for the built-in set). [`run`] is the game
//! process's entry point: it serves the admin endpoint until shutdown, then
//! stops the game.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod admin;
pub mod services;
pub mod settings;

use std::{future::Future, sync::Arc, time::Duration};

use warren_bus::Bus;

use warren_config::{ClientSettings, ConfigClient, Live};

pub use admin::AdminError;
pub use settings::{GameSettings, Secret};
pub use warren_runtime::{
    Context, Game, GameBuilder, GameError, GameHandle, Holding, NoMail, RESTART_STORM_EXIT,
    Request, SendError, Service, ServiceStats, SessionEvent, TimerId,
};

/// Where the game reaches the services it calls: gold (the settings'
/// `gold.url`) and config-svc (`config_svc.url`; empty: none, and
/// `chat_max_text` and `daily_reward` stay as set), and what an
/// `https://` URL among them trusts (`tls`).
#[derive(Clone, Debug)]
pub struct Upstreams {
    pub gold_url: String,
    pub config_url: String,
    pub tls: warren_kit::tls::TlsSettings,
}

/// The configuration the built-in services read: from config-svc when
/// its URL is set (watched, so a publish reaches them without a
/// restart), else fixed from the settings. The settings' values are also
/// the defaults used until config-svc has been reached once.
fn live_config(
    s: &GameSettings,
    upstreams: &Upstreams,
) -> (Live<services::ChatConfig>, Live<services::EconomyConfig>) {
    let chat = services::ChatConfig {
        max_message_len: s.chat_max_text,
    };
    let economy = services::EconomyConfig {
        daily_reward: s.daily_reward,
    };
    let config_url = &upstreams.config_url;
    if config_url.is_empty() {
        return (Live::fixed(chat), Live::fixed(economy));
    }
    let client = ConfigClient::start(ClientSettings {
        url: config_url.to_owned(),
        cache_dir: s.config_cache.clone(),
        names: vec!["chat".into(), "economy".into()],
        tls: upstreams.tls.clone(),
    });
    (client.typed("chat", chat), client.typed("economy", economy))
}

/// A game with every built-in service: session (the sessions keeper), echo,
/// chat, announce and wallet, plus `faults` when `fault_injection` is on.
/// Call inside a tokio runtime (the wallet's gold client needs one).
pub fn builder(s: &GameSettings, upstreams: &Upstreams) -> Result<GameBuilder, GameError> {
    let (chat, economy) = live_config(s, upstreams);
    let gold = warren_kit::grpc::lazy(&upstreams.gold_url, &upstreams.tls, s.gold_timeout_ms)
        .map_err(|e| GameError::Setup(format!("gold: {e}")))?;
    let gold = warren_proto::gold::Gold::new(gold, s.gold_timeout_ms);
    let wallet =
        services::Wallet::new(gold, economy, s.shop_items.clone()).map_err(GameError::Setup)?;
    let expiry = s.connector_expiry_ms.max(Duration::from_millis(1));
    let b = GameBuilder::new(s.runtime())
        .service("echo", services::Echo::CMDS, || services::Echo)
        .service("chat", services::Chat::CMDS, move || {
            services::Chat::new(chat.clone())
        })
        .service("announce", [], services::Announce::default)
        .service("wallet", services::Wallet::CMDS, move || wallet.clone());
    let b = if s.fault_injection {
        b.service("faults", services::Faults::CMDS, || services::Faults)
    } else {
        b
    };
    Ok(b.sessions("session", services::Session::CMDS, move || {
        services::Session::new(expiry)
    }))
}

/// Starts a game with the built-in services on `bus`.
pub async fn start(
    settings: &GameSettings,
    upstreams: &Upstreams,
    bus: Arc<dyn Bus>,
) -> Result<Game, GameError> {
    builder(settings, upstreams)?.start(bus).await
}

/// The game's entry point: serves the operators' admin endpoint on `admin`
/// (behind `admin_token`) until `shutdown`, then stops the game — every
/// service finishes its mailbox and its `stop`, what they sent is published
/// — and returns.
pub async fn run(
    admin: warren_http::Listener,
    game: Game,
    admin_token: String,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AdminError> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(admin::serve_admin(
        admin,
        game.handle(),
        admin_token,
        async move {
            let _ = stopped.await;
        },
    ));
    shutdown.await;
    let _ = stop.send(());
    let served = served.await;
    game.shutdown().await;
    served.map_err(std::io::Error::other)?
}
