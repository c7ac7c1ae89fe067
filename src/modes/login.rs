//! login alone, reaching gold at `gold.url`.

use std::future::Future;

use crate::{keys, parts, ready::Ready, settings::Settings};

pub(crate) async fn login(
    settings: Settings,
    mut ready: Ready,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let private = settings
        .jwt
        .private_key
        .clone()
        .unwrap_or_else(|| settings.data_dir.join(keys::PRIVATE_FILE));
    let login = parts::start_login(&settings, &settings.gold.url, &private, &mut ready).await?;
    ready.write()?;
    shutdown.await;
    ready.stopping();
    login.stop().await
}
