//! The app for one operator command: no HTTP server, no workers. `grants revoke` gets
//! the shared store, the cluster and Slack (when a bot token is set); `grants list`
//! the store alone; `render --check` the cluster alone.

use std::sync::Arc;

use anyhow::bail;
use async_trait::async_trait;
use k8s_openapi::api::networking::v1::NetworkPolicy;

use super::{Assembly, ClusterPorts, Overrides, assemble};
use crate::adapters::memory::MemoryStore;
use crate::app::App;
use crate::core::catalog::Catalog;
use crate::core::ports::{EnforceError, Enforcer, PolicyRef, Previewer};
use crate::core::request::AccessRequest;
use crate::settings::{Secrets, Settings};

/// The app for one operator command (`jitbot grants revoke`): the shared Redis store,
/// the cluster, and Slack when a token is set. Its events go to the shared outbox,
/// which the serving replicas deliver; the returned future is kept for callers that
/// await it before exiting, and does nothing.
pub async fn operator_app(
    settings: &Settings,
    catalog: Catalog,
    secrets: &Secrets,
) -> anyhow::Result<(
    App,
    std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
)> {
    needs_redis(secrets)?;
    let overrides = Overrides {
        no_delivery: true,
        ..Overrides::default()
    };
    let Assembly { app, .. } = assemble(settings, catalog, secrets, overrides).await?;
    let flush: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> = Box::pin(async {});
    Ok((app, flush))
}

/// The app for `jitbot grants list`: the shared Redis store and nothing else, so the
/// command works wherever Redis can be reached, with or without a cluster.
pub async fn store_app(
    settings: &Settings,
    catalog: Catalog,
    secrets: &Secrets,
) -> anyhow::Result<App> {
    needs_redis(secrets)?;
    let store_only = Secrets {
        slack_bot_token: None,
        ..secrets.clone()
    };
    let elsewhere = Arc::new(NoCluster);
    let overrides = Overrides {
        cluster: Some(ClusterPorts {
            enforcer: elsewhere.clone(),
            previewer: elsewhere,
        }),
        ..Overrides::default()
    };
    Ok(assemble(settings, catalog, &store_only, overrides)
        .await?
        .app)
}

/// The app for `jitbot render --check`: the cluster from the standard resolution,
/// asked only for a preview; nothing is stored and nobody is told.
pub async fn preview_app(settings: &Settings, catalog: Catalog) -> anyhow::Result<App> {
    let overrides = Overrides {
        store: Some(Arc::new(MemoryStore::new())),
        ..Overrides::default()
    };
    Ok(assemble(settings, catalog, &Secrets::default(), overrides)
        .await?
        .app)
}

fn needs_redis(secrets: &Secrets) -> anyhow::Result<()> {
    if secrets.redis_url.is_none() {
        bail!("REDIS_URL is not set: operator commands work on the shared Redis store");
    }
    Ok(())
}

/// The cluster of a command that must not touch it: every call is refused.
struct NoCluster;

const NOT_HERE: &str = "this command does not use the cluster";

#[async_trait]
impl Enforcer for NoCluster {
    async fn apply(&self, _policies: &[NetworkPolicy]) -> Result<(), EnforceError> {
        Err(EnforceError::Refused(NOT_HERE.to_owned()))
    }

    async fn revoke(&self, _policies: &[PolicyRef]) -> Result<usize, EnforceError> {
        Err(EnforceError::Refused(NOT_HERE.to_owned()))
    }

    async fn list_managed(&self) -> Result<Vec<NetworkPolicy>, EnforceError> {
        Err(EnforceError::Refused(NOT_HERE.to_owned()))
    }
}

#[async_trait]
impl Previewer for NoCluster {
    async fn preview(&self, _req: &AccessRequest) -> String {
        NOT_HERE.to_owned()
    }
}
