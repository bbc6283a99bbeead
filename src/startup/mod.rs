//! Builds jitbot from its settings: the only place that knows every concrete adapter.
//! Store (Redis when `REDIS_URL` is set, memory otherwise), Kubernetes enforcer and
//! previewer (or the cluster the playground passes in), Slack client, notifier and
//! directory, the app, the HTTP server and the workers (the sweep, the reconciler and,
//! on a real cluster, the expiry guard with its audit loop). `Application::build` binds
//! its port (0 in tests) and starts them all; `stop` shuts down in order so no
//! transition is left half-done.

mod operator;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

use crate::adapters::http::{HttpState, router};
use crate::adapters::kube::{KubeEnforcer, KubeSettings};
use crate::adapters::memory::MemoryStore;
use crate::adapters::redis::{RedisSettings, RedisStore};
use crate::adapters::slack::{SlackApi, SlackDirectory, SlackNotifier, SlackNotifierConfig};
use crate::app::{App, AppConfig, Ports, SystemClock};
use crate::core::catalog::Catalog;
use crate::core::ports::{Clock, Enforcer, Previewer, Store};
use crate::metrics::Metrics;
use crate::settings::{LogFormat, LogSettings, Secrets, Settings};
use crate::worker;
pub use operator::operator_app;

/// Removals by the expiry guard waiting for the store to audit them. Only policies
/// with an untrustworthy expiry are sent, so this is far more than a burst needs.
const GUARD_AUDIT_BACKLOG: usize = 10_000;

/// What tests (and the playground) put in place of the standard choices.
#[derive(Default, Clone)]
pub struct Overrides {
    /// A clock to use instead of the system's.
    pub clock: Option<Arc<dyn Clock>>,
    /// A Kubernetes client to use instead of the standard resolution.
    pub kube_client: Option<kube::Client>,
    /// Leave the sweep and reconcile loops off (tests drive the `*_once` steps).
    pub no_workers: bool,
    /// A cluster to use instead of Kubernetes (the playground's dry run).
    pub cluster: Option<ClusterPorts>,
}

/// The cluster side as the app and the approval card see it.
#[derive(Clone)]
pub struct ClusterPorts {
    pub enforcer: Arc<dyn Enforcer>,
    pub previewer: Arc<dyn Previewer>,
}

/// The settings `serve` cannot run without, each with how to set it.
pub fn missing_settings(secrets: &Secrets) -> Vec<String> {
    let mut missing = Vec::new();
    if secrets.slack_signing_secret.is_none() {
        missing.push(
            "SLACK_SIGNING_SECRET is not set: create the Slack app from manifests/slack-app.yaml and copy its signing secret (Basic Information → App Credentials)"
                .to_owned(),
        );
    }
    if secrets.slack_bot_token.is_none() {
        missing.push(
            "SLACK_BOT_TOKEN is not set: install the Slack app to your workspace and copy its Bot User OAuth Token (xoxb-…)"
                .to_owned(),
        );
    }
    missing
}

/// Sets up logging: JSON lines in a cluster (stderr is not a terminal), readable text
/// on a terminal, unless the settings force one. `RUST_LOG` wins over `log.level`.
pub fn init_logging(log: &LogSettings) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.level));
    let json = match log.format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (tests) keeps the first subscriber.
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        builder.try_init()
    };
}

/// Converts the `[kubernetes]` settings for the adapter.
pub fn kube_settings(settings: &Settings) -> KubeSettings {
    let k = &settings.kubernetes;
    KubeSettings {
        request_timeout: k.request_timeout.as_std(),
        apply_attempts: k.apply_attempts.max(1),
        revoke_deadline: k.revoke_deadline.as_std(),
        scope: k.scope,
        ..KubeSettings::default()
    }
}

/// Opens the store: Redis when a URL is given, memory (with a warning) otherwise.
pub async fn open_store(settings: &Settings, secrets: &Secrets) -> anyhow::Result<Arc<dyn Store>> {
    match &secrets.redis_url {
        Some(url) => {
            let s = &settings.store;
            let redis = RedisSettings {
                key_prefix: s.key_prefix.clone(),
                audit_maxlen: s.audit_maxlen as u64,
                connect_timeout: s.connect_timeout.as_std(),
                response_timeout: s.response_timeout.as_std(),
            };
            let store = RedisStore::connect(url.expose(), &redis)
                .await
                .context("cannot use the Redis store at REDIS_URL")?;
            Ok(Arc::new(store))
        }
        None => {
            warn!(
                "REDIS_URL is not set: state lives in memory, is lost on restart, and only one replica may run"
            );
            Ok(Arc::new(MemoryStore::new()))
        }
    }
}

/// A running jitbot.
pub struct Application {
    pub addr: SocketAddr,
    pub app: App,
    pub notifier: SlackNotifier,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<()>,
    workers: Vec<JoinHandle<()>>,
    background: TaskTracker,
}

impl Application {
    /// Builds every adapter, binds `server.listen` and starts the server and workers.
    pub async fn build(
        settings: &Settings,
        catalog: Catalog,
        secrets: &Secrets,
        overrides: Overrides,
    ) -> anyhow::Result<Application> {
        let missing = missing_settings(secrets);
        if !missing.is_empty() {
            bail!("jitbot cannot start:\n  {}", missing.join("\n  "));
        }
        let (Some(token), Some(signing)) =
            (&secrets.slack_bot_token, &secrets.slack_signing_secret)
        else {
            bail!("jitbot cannot start: Slack credentials are missing");
        };
        let catalog = Arc::new(catalog);
        let clock: Arc<dyn Clock> = overrides
            .clock
            .clone()
            .unwrap_or_else(|| Arc::new(SystemClock));
        let metrics = Arc::new(Metrics::new());
        let store = open_store(settings, secrets).await?;
        let kube = kube_settings(settings);
        // The expiry guard needs a real API server to watch; the playground's dry-run
        // cluster has none.
        let mut kube_cluster = None;
        let ClusterPorts {
            enforcer,
            previewer,
        } = match overrides.cluster.clone() {
            Some(cluster) => cluster,
            None => {
                let cluster = Arc::new(match overrides.kube_client.clone() {
                    Some(client) => KubeEnforcer::new(client, kube, catalog.namespaces()),
                    None => KubeEnforcer::try_default(kube, catalog.namespaces())
                        .await
                        .context("cannot reach Kubernetes (in-cluster service account, KUBECONFIG or ~/.kube/config)")?,
                });
                kube_cluster = Some(cluster.clone());
                ClusterPorts {
                    enforcer: cluster.clone(),
                    previewer: cluster,
                }
            }
        };
        let slack = SlackApi::new(
            &settings.slack.api_url,
            token.expose(),
            settings.slack.max_retries,
        )
        .context("cannot set up the Slack client")?;
        let audit_channel =
            Some(settings.slack.audit_channel.trim().to_owned()).filter(|c| !c.is_empty());
        let (notifier, notifier_task) = SlackNotifier::start(
            slack.clone(),
            store.clone(),
            catalog.clone(),
            previewer,
            SlackNotifierConfig { audit_channel },
            metrics.clone(),
        );
        let directory = SlackDirectory::new(
            slack.clone(),
            clock.clone(),
            settings.slack.usergroup_cache_ttl,
        );
        let w = &settings.worker;
        let app = App::new(
            catalog,
            Ports {
                store,
                enforcer,
                notifier: Arc::new(notifier.clone()),
                directory: Arc::new(directory),
                clock,
            },
            AppConfig {
                // The Kubernetes enforcer retries by itself (kubernetes.apply_attempts).
                apply_attempts: 1,
                claim_lease: w.claim_lease,
                sweep_batch: w.sweep_batch,
                ..AppConfig::default()
            },
        )
        .with_metrics(metrics);

        let listener = tokio::net::TcpListener::bind(&settings.server.listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (server.listen)",
                    settings.server.listen
                )
            })?;
        let addr = listener.local_addr()?;
        let background = TaskTracker::new();
        let state = Arc::new(HttpState {
            app: app.clone(),
            signing_secret: signing.clone(),
            slack,
            background: background.clone(),
        });
        let (shutdown, stopped) = watch::channel(false);
        let mut on_stop = stopped.clone();
        let server = tokio::spawn(async move {
            let serving = axum::serve(listener, router(state)).with_graceful_shutdown(async move {
                let _ = on_stop.wait_for(|stop| *stop).await;
            });
            if let Err(e) = serving.await {
                warn!(error = %e, "the HTTP server stopped with an error");
            }
        });
        let mut workers = vec![notifier_task];
        if !overrides.no_workers
            && let Some(cluster) = &kube_cluster
        {
            let (removals, removed) = mpsc::channel(GUARD_AUDIT_BACKLOG);
            let guard = cluster.expiry_guard(
                app.catalog.limits.max_duration,
                app.ports.clock.clone(),
                app.metrics.clone(),
                removals,
            );
            workers.push(tokio::spawn(guard.run(stopped.clone())));
            workers.push(tokio::spawn(worker::guard_audit_loop(
                app.clone(),
                removed,
                stopped.clone(),
            )));
        }
        if !overrides.no_workers {
            workers.push(tokio::spawn(worker::sweep_loop(
                app.clone(),
                w.sweep_interval.as_std(),
                stopped.clone(),
            )));
            workers.push(tokio::spawn(worker::reconcile_loop(
                app.clone(),
                w.reconcile_interval.as_std(),
                stopped,
            )));
        }
        info!(%addr, "jitbot is listening");
        Ok(Application {
            addr,
            app,
            notifier,
            shutdown,
            server,
            workers,
            background,
        })
    }

    /// Runs until SIGTERM or Ctrl-C, then stops gracefully.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        shutdown_signal().await;
        info!("stopping: no new requests; finishing what is in flight");
        self.stop().await;
        Ok(())
    }

    /// Stops accepting requests, lets in-flight ones and their background work finish
    /// (bounded), stops the workers and delivers what Slack still has queued.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let grace = Duration::from_secs(25);
        if tokio::time::timeout(grace, self.server).await.is_err() {
            warn!("the HTTP server did not finish in time");
        }
        self.background.close();
        if tokio::time::timeout(grace, self.background.wait())
            .await
            .is_err()
        {
            warn!(
                "background work did not finish in time; the sweep of another replica takes it over"
            );
        }
        let mut workers = self.workers.into_iter();
        let notifier_task = workers.next();
        for w in workers {
            let _ = w.await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.notifier.flush()).await;
        drop(self.notifier);
        drop(self.app);
        if let Some(task) = notifier_task {
            task.abort();
        }
    }
}

/// Waits for SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    warn!(error = %e, "cannot listen for SIGTERM; stopping on Ctrl-C only");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
