//! The connector alone, on a networked bus.

use std::future::Future;

use crate::{
    keys,
    parts::{self, admin_token},
    ready::Ready,
    settings::Settings,
};

pub(crate) async fn connector(
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
    let bus = parts::open_bus(&settings, "connector", true).await?;
    let (connector, listeners) =
        parts::prepare_connector(&settings, bus.clone(), &public, &mut ready).await?;
    let token = admin_token(&settings)?;
    ready.write()?;
    warren_connector::run(listeners, connector, token, shutdown).await?;
    ready.stopping();
    bus.close().await;
    Ok(())
}
