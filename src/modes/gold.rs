//! gold alone.

use std::future::Future;

use crate::{parts, ready::Ready, settings::Settings};

pub(crate) async fn gold(
    settings: Settings,
    mut ready: Ready,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let (_, gold) = parts::start_gold(&settings, &mut ready).await?;
    ready.write()?;
    shutdown.await;
    ready.stopping();
    gold.stop().await
}
