//! The game process alone, on a networked bus.

use std::future::Future;

use crate::{parts, ready::Ready, settings::Settings};

pub(crate) async fn game(
    mut settings: Settings,
    mut ready: Ready,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    parts::config_cache(&mut settings);
    let bus = parts::open_bus(&settings, "game", true).await?;
    let game = parts::start_game(&settings, bus.clone(), &mut ready).await?;
    ready.write()?;
    shutdown.await;
    ready.stopping();
    game.stop().await?;
    bus.close().await;
    Ok(())
}
