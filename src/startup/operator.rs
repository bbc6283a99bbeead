//! The app for one operator command (`jitbot grants revoke`): no HTTP server, no
//! workers; Slack only when a bot token is set.

use std::time::Duration;

use anyhow::bail;

use super::{Assembly, Overrides, SlackParts, assemble};
use crate::app::App;
use crate::core::catalog::Catalog;
use crate::settings::{Secrets, Settings};

/// The app for one operator command (`jitbot grants revoke`): the shared Redis store,
/// the cluster, and Slack when a token is set. The returned future delivers what
/// Slack still has queued; await it before exiting.
pub async fn operator_app(
    settings: &Settings,
    catalog: Catalog,
    secrets: &Secrets,
) -> anyhow::Result<(
    App,
    std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
)> {
    if secrets.redis_url.is_none() {
        bail!("REDIS_URL is not set: operator commands work on the shared Redis store");
    }
    let Assembly { app, slack, .. } =
        assemble(settings, catalog, secrets, Overrides::default()).await?;
    let flush: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> = match slack {
        Some(SlackParts { notifier, .. }) => Box::pin(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), notifier.flush()).await;
        }),
        None => Box::pin(async {}),
    };
    Ok((app, flush))
}
