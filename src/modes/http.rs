//! The HTTP call gateway alone, on a networked bus.

use std::future::Future;

use crate::{keys, parts, ready::Ready, settings::Settings};

pub(crate) async fn http(
    settings: Settings,
    ready: Ready,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let mut ready = ready;
    let public = settings
        .jwt
        .public_key
        .clone()
        .unwrap_or_else(|| settings.data_dir.join(keys::PUBLIC_FILE));
    let bus = parts::open_bus(&settings, "http", true).await?;
    let calls = parts::start_calls(&settings, bus.clone(), &public, &mut ready, None).await?;
    ready.write()?;
    shutdown.await;
    ready.stopping();
    calls.stop().await?;
    bus.close().await;
    Ok(())
}
