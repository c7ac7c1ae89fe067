//! config-svc alone: the configuration gRPC service and the staff's admin
//! page.

use std::future::Future;

use crate::{parts, ready::Ready, settings::Settings};

pub(crate) async fn config_svc(
    settings: Settings,
    mut ready: Ready,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let (_, part) = parts::start_config(&settings, &mut ready).await?;
    ready.write()?;
    shutdown.await;
    ready.stopping();
    part.stop().await
}
