//! The composition root: [`assemble`] builds jitbot's ports from its settings and puts
//! the app over them. `jitbot serve` ([`super::Application`]), the operator commands
//! ([`super::operator_app`]), the playground, the tests and the benches all call it,
//! each with its own [`Overrides`]; nothing else wires adapters to ports.

use std::sync::Arc;

use anyhow::Context;
use tokio::task::JoinHandle;
use tracing::info;

use super::{kube_settings, open_store};
use crate::adapters::kube::KubeEnforcer;
use crate::adapters::slack::{SlackApi, SlackDirectory, SlackNotifier, SlackNotifierConfig};
use crate::app::{
    App, AppConfig, Courier, CourierConfig, DeliveryBell, Ports, StoreNotes, SystemClock,
};
use crate::core::catalog::Catalog;
use crate::core::ids::{SlackGroupId, SlackUserId};
use crate::core::ports::{
    AuditEvent, Clock, Directory, Enforcer, Notifier, NotifyError, Previewer, Store,
};
use crate::core::request::AccessRequest;
use crate::metrics::Metrics;
use crate::settings::{Secrets, Settings};
use crate::worker;

/// What tests, benches and the playground put in place of the standard choices.
#[derive(Default, Clone)]
pub struct Overrides {
    /// A clock to use instead of the system's.
    pub clock: Option<Arc<dyn Clock>>,
    /// A Kubernetes client to use instead of the standard resolution.
    pub kube_client: Option<kube::Client>,
    /// Leave the background workers off (tests drive the `*_once` steps).
    pub no_workers: bool,
    /// A cluster to use instead of Kubernetes (the in-memory cluster of the playground
    /// and the tests).
    pub cluster: Option<ClusterPorts>,
    /// A store to use instead of the one `REDIS_URL` (or its absence) chooses.
    pub store: Option<Arc<dyn Store>>,
    /// Leave Slack delivery to other processes (the operator commands: the serving
    /// replicas deliver what they record from the shared outbox).
    pub no_delivery: bool,
}

/// The cluster side as the app and the approval card see it.
#[derive(Clone)]
pub struct ClusterPorts {
    pub enforcer: Arc<dyn Enforcer>,
    pub previewer: Arc<dyn Previewer>,
}

/// jitbot assembled: the app over its ports, and the concrete parts that the servers
/// and workers around it need.
pub struct Assembly {
    pub app: App,
    /// The Slack side, when `SLACK_BOT_TOKEN` is set.
    pub slack: Option<SlackParts>,
    /// The real cluster, which the expiry guard watches; `None` for a stand-in.
    pub kube: Option<Arc<KubeEnforcer>>,
}

/// The Slack Web API client, the notifier and the task that delivers its posts from
/// the outbox (one that does nothing with `Overrides::no_delivery`).
pub struct SlackParts {
    pub api: SlackApi,
    pub notifier: SlackNotifier,
    pub delivery: JoinHandle<()>,
}

/// Builds every port from `settings` and `secrets` (or takes it from `overrides`) and
/// the app over them. Slack is optional here: without a bot token nobody is told, and
/// user groups cannot be read (which counts as "not a member").
pub async fn assemble(
    settings: &Settings,
    catalog: Catalog,
    secrets: &Secrets,
    overrides: Overrides,
) -> anyhow::Result<Assembly> {
    let catalog = Arc::new(catalog);
    let clock: Arc<dyn Clock> = overrides.clock.unwrap_or_else(|| Arc::new(SystemClock));
    let metrics = Arc::new(Metrics::new());
    let store = match overrides.store {
        Some(store) => store,
        None => open_store(settings, secrets, &metrics).await?,
    };
    let (cluster, kube) =
        cluster_ports(settings, &catalog, overrides.cluster, overrides.kube_client).await?;
    let slack = slack_side(settings, secrets, &store, &catalog, &clock, &metrics)?;
    if slack.parts.is_some() {
        store
            .open_outbox()
            .await
            .context("cannot open the Slack outbox in the store")?;
    }
    let ports = Ports {
        store,
        enforcer: cluster.enforcer,
        notifier: slack.notifier,
        directory: slack.directory,
        clock,
    };
    let app = App::new(catalog, ports, app_config(settings))
        .with_previewer(cluster.previewer)
        .with_metrics(metrics);
    let slack = slack.parts.map(|mut parts| {
        if !overrides.no_delivery {
            parts.delivery = start_delivery(&app, &parts.notifier, settings);
        }
        parts
    });
    Ok(Assembly { app, slack, kube })
}

/// Most outbox events one delivery round holds.
const DELIVERY_BATCH: usize = 100;

/// Starts this replica's Slack delivery loop; it runs until its task is aborted.
fn start_delivery(app: &App, notifier: &SlackNotifier, settings: &Settings) -> JoinHandle<()> {
    let s = &settings.slack;
    let courier = Courier::new(
        app.clone(),
        CourierConfig {
            worker: worker_name(),
            lease: s.delivery_lease.as_delta(),
            batch: DELIVERY_BATCH,
        },
    );
    let (keep, stopped) = tokio::sync::watch::channel(false);
    let bell = notifier.bell().clone();
    let poll = s.delivery_poll.as_std();
    tokio::spawn(async move {
        let _keep = keep;
        worker::delivery_loop(Arc::new(courier), bell, poll, stopped).await;
    })
}

/// This replica's name in the outbox: its host name (the pod's, in a cluster) and a
/// random part, so that a restarted pod does not pass for its former self.
fn worker_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "jitbot".to_owned());
    format!("{host}-{:08x}", rand::random::<u32>())
}

/// The cluster side: the one `overrides` brings, or Kubernetes (through the given
/// client or the standard resolution), which is then also what the expiry guard
/// watches.
async fn cluster_ports(
    settings: &Settings,
    catalog: &Catalog,
    cluster: Option<ClusterPorts>,
    kube_client: Option<kube::Client>,
) -> anyhow::Result<(ClusterPorts, Option<Arc<KubeEnforcer>>)> {
    if let Some(cluster) = cluster {
        return Ok((cluster, None));
    }
    let k = kube_settings(settings);
    let kube = Arc::new(match kube_client {
        Some(client) => KubeEnforcer::new(client, k, catalog.namespaces()),
        None => KubeEnforcer::try_default(k, catalog.namespaces())
            .await
            .context("cannot reach Kubernetes (in-cluster service account, KUBECONFIG or ~/.kube/config)")?,
    });
    let ports = ClusterPorts {
        enforcer: kube.clone(),
        previewer: kube.clone(),
    };
    Ok((ports, Some(kube)))
}

/// The Slack side as the app sees it, and the concrete parts when there is one.
struct SlackSide {
    parts: Option<SlackParts>,
    notifier: Arc<dyn Notifier>,
    directory: Arc<dyn Directory>,
}

/// The Slack client, notifier and directory when
/// `SLACK_BOT_TOKEN` is set; stand-ins that tell nobody otherwise.
fn slack_side(
    settings: &Settings,
    secrets: &Secrets,
    store: &Arc<dyn Store>,
    catalog: &Arc<Catalog>,
    clock: &Arc<dyn Clock>,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<SlackSide> {
    let Some(token) = &secrets.slack_bot_token else {
        return Ok(SlackSide {
            parts: None,
            notifier: Arc::new(NoSlack),
            directory: Arc::new(NoSlack),
        });
    };
    let s = &settings.slack;
    let api = SlackApi::new(&s.api_url, token.expose(), s.max_retries)
        .context("cannot set up the Slack client")?;
    let audit_channel = Some(s.audit_channel.trim().to_owned()).filter(|c| !c.is_empty());
    let directory: Arc<dyn Directory> = Arc::new(SlackDirectory::new(
        api.clone(),
        clock.clone(),
        s.usergroup_cache_ttl,
        metrics.clone(),
    ));
    let notifier = SlackNotifier::new(
        api.clone(),
        Arc::new(StoreNotes::new(store.clone())),
        catalog.clone(),
        directory.clone(),
        SlackNotifierConfig { audit_channel },
        metrics.clone(),
        Arc::new(DeliveryBell::default()),
    );
    // Replaced by the delivery loop once the app exists (see `start_delivery`).
    let delivery = tokio::spawn(async {});
    Ok(SlackSide {
        parts: Some(SlackParts {
            api,
            notifier: notifier.clone(),
            delivery,
        }),
        notifier: Arc::new(notifier),
        directory,
    })
}

/// The app's settings from jitbot's.
fn app_config(settings: &Settings) -> AppConfig {
    let w = &settings.worker;
    AppConfig {
        claim_lease: w.claim_lease,
        sweep_batch: w.sweep_batch,
    }
}

/// Tells nobody: for operator commands without Slack credentials.
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
