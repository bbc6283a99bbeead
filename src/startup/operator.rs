//! The app for one operator command (`jitbot grants revoke`): no HTTP server, no
//! workers; Slack only when a bot token is set.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tracing::info;

use super::{kube_settings, open_store};
use crate::adapters::kube::KubeEnforcer;
use crate::adapters::slack::{SlackApi, SlackDirectory, SlackNotifier, SlackNotifierConfig};
use crate::app::{App, AppConfig, Ports, SystemClock};
use crate::core::catalog::Catalog;
use crate::core::ids::{SlackGroupId, SlackUserId};
use crate::core::ports::{AuditEvent, Clock, Directory, Notifier, NotifyError};
use crate::core::request::AccessRequest;
use crate::metrics::Metrics;
use crate::settings::{Secrets, Settings};

/// Tells nobody: for command-line use without Slack credentials.
struct NoSlack;

#[async_trait::async_trait]
impl Notifier for NoSlack {
    async fn publish(&self, req: &AccessRequest, event: &AuditEvent) -> Result<(), NotifyError> {
        info!(request_id = %req.id, kind = event.kind.as_str(), "not told in Slack: SLACK_BOT_TOKEN is not set");
        Ok(())
    }
}

#[async_trait::async_trait]
impl Directory for NoSlack {
    async fn group_members(&self, group: &SlackGroupId) -> Result<Vec<SlackUserId>, NotifyError> {
        Err(NotifyError(format!(
            "user group {group} cannot be read without SLACK_BOT_TOKEN"
        )))
    }
}

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
    let catalog = Arc::new(catalog);
    let store = open_store(settings, secrets).await?;
    let enforcer = Arc::new(
        KubeEnforcer::try_default(kube_settings(settings), catalog.namespaces())
            .await
            .context("cannot reach Kubernetes (in-cluster service account, KUBECONFIG or ~/.kube/config)")?,
    );
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (notifier, directory, flush): (Arc<dyn Notifier>, Arc<dyn Directory>, _) = match &secrets
        .slack_bot_token
    {
        Some(token) => {
            let slack = SlackApi::new(
                &settings.slack.api_url,
                token.expose(),
                settings.slack.max_retries,
            )?;
            let audit_channel =
                Some(settings.slack.audit_channel.trim().to_owned()).filter(|c| !c.is_empty());
            let (notifier, _task) = SlackNotifier::start(
                slack.clone(),
                store.clone(),
                catalog.clone(),
                enforcer.clone(),
                SlackNotifierConfig { audit_channel },
                Arc::new(Metrics::new()),
            );
            let directory =
                SlackDirectory::new(slack, clock.clone(), settings.slack.usergroup_cache_ttl);
            let flusher = notifier.clone();
            let flush: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> =
                Box::pin(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(10), flusher.flush()).await;
                });
            (Arc::new(notifier), Arc::new(directory), flush)
        }
        None => (Arc::new(NoSlack), Arc::new(NoSlack), Box::pin(async {})),
    };
    let app = App::new(
        catalog,
        Ports {
            store,
            enforcer,
            notifier,
            directory,
            clock,
        },
        AppConfig {
            apply_attempts: 1,
            ..AppConfig::default()
        },
    );
    Ok((app, flush))
}
