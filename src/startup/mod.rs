//! Builds jitbot from its settings: the only place that knows every concrete adapter.
//! Store (Redis when `REDIS_URL` is set, memory otherwise), Kubernetes enforcer and
//! previewer (or the cluster the playground passes in), Slack client, notifier and
//! directory, the app, the HTTP server (or, in Socket Mode, the probes and the Socket
//! Mode connections) and the workers (the sweep, the reconciler and,
//! on a real cluster, the expiry guard with its audit loop). `Application::build` binds
//! its port (0 in tests) and starts them all; `stop` shuts down in order so no
//! transition is left half-done.

mod assemble;
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

use crate::adapters::http::{HttpState, metrics_router, probes_router, router};
use crate::adapters::kube::{KubeEnforcer, KubeSettings};
use crate::adapters::memory::MemoryStore;
use crate::adapters::redis::{RedisSettings, RedisStore, RedisTarget, StateKey};
use crate::adapters::slack::SlackNotifier;
use crate::adapters::slack::inbound::Inbound;
use crate::adapters::slack::socket::SocketMode;
use crate::app::App;
use crate::core::catalog::Catalog;
use crate::core::ports::Store;
use crate::metrics::Metrics;
use crate::settings::{LogFormat, LogSettings, Secrets, Settings, SlackTransport, WorkerSettings};
use crate::worker;
pub use assemble::{Assembly, ClusterPorts, Overrides, SlackParts, assemble};
pub use operator::{operator_app, preview_app, store_app};

/// Removals by the expiry guard waiting for the store to audit them. Only policies
/// with an untrustworthy expiry are sent, so this is far more than a burst needs.
const GUARD_AUDIT_BACKLOG: usize = 10_000;

/// The settings `serve` cannot run without, each with how to set it. Which Slack
/// secrets those are depends on `slack.mode`: HTTP mode checks Slack's signature
/// (`SLACK_SIGNING_SECRET`), Socket Mode opens its connections with the app-level
/// token (`SLACK_APP_TOKEN`); both call the Web API with the bot token.
pub fn missing_settings(settings: &Settings, secrets: &Secrets) -> Vec<String> {
    let mut missing = Vec::new();
    match settings.slack.mode.transport(secrets) {
        SlackTransport::Http => {
            if secrets.slack_signing_secret.is_none() {
                missing.push(
                    "SLACK_SIGNING_SECRET is not set: create the Slack app from manifests/slack-app.yaml and copy its signing secret (Basic Information → App Credentials); or run in Socket Mode (slack.mode = \"socket\", SLACK_APP_TOKEN), which needs none"
                        .to_owned(),
                );
            }
        }
        SlackTransport::Socket => match &secrets.slack_app_token {
            None => missing.push(
                "SLACK_APP_TOKEN is not set, and slack.mode = \"socket\" needs it: create the Slack app from manifests/slack-app-socket.yaml, then under Basic Information → App-Level Tokens generate a token with the connections:write scope and copy it (xapp-…)"
                    .to_owned(),
            ),
            Some(token) if !token.expose().starts_with("xapp-") => missing.push(
                "SLACK_APP_TOKEN is not an app-level token (those start with xapp-): generate one under Basic Information → App-Level Tokens with the connections:write scope; the bot token (xoxb-…) goes in SLACK_BOT_TOKEN"
                    .to_owned(),
            ),
            Some(_) => {}
        },
    }
    if secrets.slack_bot_token.is_none() {
        missing.push(
            "SLACK_BOT_TOKEN is not set: install the Slack app to your workspace and copy its Bot User OAuth Token (xoxb-…)"
                .to_owned(),
        );
    }
    if secrets.redis_url.is_some() && secrets.state_key.is_none() {
        missing.push(STATE_KEY_HOW.to_owned());
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

/// What `JITBOT_STATE_KEY` must be set to, and how to make one.
const STATE_KEY_HOW: &str = "JITBOT_STATE_KEY is not set: with REDIS_URL, jitbot seals every request it stores with this key and refuses records that do not verify. Create one with `openssl rand -hex 32`, keep it in the same Secret as REDIS_URL, and give every replica the same key";

/// The key that seals requests in Redis, or why there is none to use.
pub fn state_key(secrets: &Secrets) -> anyhow::Result<StateKey> {
    let current = secrets
        .state_key
        .clone()
        .ok_or_else(|| anyhow::anyhow!(STATE_KEY_HOW))?;
    Ok(StateKey::new(current, secrets.state_key_previous.clone())?)
}

/// Opens the store: Redis when a URL is given (counting its failed calls in
/// `metrics`), memory (with a warning) otherwise.
pub async fn open_store(
    settings: &Settings,
    secrets: &Secrets,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Arc<dyn Store>> {
    match &secrets.redis_url {
        Some(url) => {
            let s = &settings.store;
            let redis = RedisSettings {
                key_prefix: s.key_prefix.clone(),
                audit_maxlen: s.audit_maxlen as u64,
                connect_timeout: s.connect_timeout.as_std(),
                response_timeout: s.response_timeout.as_std(),
                state_key: Some(state_key(secrets)?),
                sentinel_auth: s.sentinel_auth,
                retention: (s.retention.as_secs() > 0).then(|| s.retention.as_std()),
            };
            let store = RedisStore::connect(url.expose(), &redis)
                .await
                .context("cannot use the Redis store at REDIS_URL")?;
            info!(
                mode = store.mode(),
                endpoint = store.endpoint(),
                "store: Redis ({}) at {}",
                store.mode(),
                store.endpoint()
            );
            Ok(Arc::new(store.with_metrics(metrics.clone())))
        }
        None => {
            warn!(
                "REDIS_URL is not set: state lives in memory, is lost on restart, and only one replica may run"
            );
            Ok(Arc::new(MemoryStore::with_retention(
                settings.store.retention,
            )))
        }
    }
}

/// Which store `REDIS_URL` chooses, in one line without credentials (for
/// `check-config`), or why `REDIS_URL` cannot be used. Connects to nothing.
pub fn describe_store(secrets: &Secrets) -> Result<String, String> {
    match &secrets.redis_url {
        Some(url) => RedisTarget::parse(url.expose())
            .map(|t| format!("store: Redis ({}) at {}", t.mode(), t.endpoint()))
            .map_err(|e| e.to_string()),
        None => Ok(
            "store: memory (REDIS_URL is not set: one replica only, state is lost on restart)"
                .to_owned(),
        ),
    }
}

/// How long a stop waits for requests in flight, then for their background work,
/// then for the Slack outbox; what is left is taken over by another replica.
const SERVER_GRACE: Duration = Duration::from_secs(15);
const BACKGROUND_GRACE: Duration = Duration::from_secs(10);
const FLUSH_GRACE: Duration = Duration::from_secs(5);

/// The longest a stop takes after the drain delay (the workers stop at their next
/// step): the
/// pod's `terminationGracePeriodSeconds` must exceed it plus `server.drain_delay`.
pub const STOP_BOUND: Duration = SERVER_GRACE
    .saturating_add(BACKGROUND_GRACE)
    .saturating_add(FLUSH_GRACE);

/// A running jitbot.
pub struct Application {
    /// Slack's endpoints and the probes (`server.listen`); the probes alone in
    /// Socket Mode.
    pub addr: SocketAddr,
    /// `/metrics` and the probes (`server.metrics_listen`).
    pub metrics_addr: SocketAddr,
    pub app: App,
    pub notifier: SlackNotifier,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<()>,
    workers: Vec<JoinHandle<()>>,
    background: TaskTracker,
    /// How long a stopping replica keeps answering, unready, before it drains.
    drain_delay: Duration,
    /// The Socket Mode connections, in Socket Mode.
    socket: Option<SocketMode>,
}

impl Application {
    /// Builds every adapter, binds `server.listen` and starts the server and workers.
    pub async fn build(
        settings: &Settings,
        catalog: Catalog,
        secrets: &Secrets,
        overrides: Overrides,
    ) -> anyhow::Result<Application> {
        let missing = missing_settings(settings, secrets);
        if !missing.is_empty() {
            bail!("jitbot cannot start:\n  {}", missing.join("\n  "));
        }
        let transport = settings.slack.mode.transport(secrets);
        let no_workers = overrides.no_workers;
        let Assembly { app, slack, kube } = assemble(settings, catalog, secrets, overrides).await?;
        let Some(SlackParts {
            api: slack,
            notifier,
            delivery,
        }) = slack
        else {
            bail!("jitbot cannot start: Slack credentials are missing");
        };

        let listener = bind(&settings.server.listen, "server.listen").await?;
        let metrics_listener =
            bind(&settings.server.metrics_listen, "server.metrics_listen").await?;
        let addr = listener.local_addr()?;
        let metrics_addr = metrics_listener.local_addr()?;
        let background = TaskTracker::new();
        let inbound = Arc::new(Inbound::new(app.clone(), slack, background.clone()));
        notifier.bind_home(&inbound);
        // Slack reaches jitbot on server.listen (HTTP mode) or down the Socket Mode
        // connections jitbot opens, when server.listen serves the probes alone.
        let (slack_router, socket) = match transport {
            SlackTransport::Http => {
                let Some(signing) = &secrets.slack_signing_secret else {
                    bail!("jitbot cannot start: SLACK_SIGNING_SECRET is missing");
                };
                let state = Arc::new(HttpState {
                    inbound,
                    signing_secret: signing.clone(),
                });
                (router(state), None)
            }
            SlackTransport::Socket => {
                let Some(token) = &secrets.slack_app_token else {
                    bail!("jitbot cannot start: SLACK_APP_TOKEN is missing");
                };
                let socket = SocketMode::start(inbound, token.expose())
                    .await
                    .context(
                        "cannot start Socket Mode: Slack refused SLACK_APP_TOKEN (it must be the app-level token, xapp-…, with the connections:write scope, of this app)",
                    )?;
                (probes_router(app.clone()), Some(socket))
            }
        };
        let (shutdown, stopped) = watch::channel(false);
        let server = serve(listener, slack_router, stopped.clone(), "the HTTP server");
        let metrics_server = serve(
            metrics_listener,
            metrics_router(app.clone()),
            stopped.clone(),
            "the metrics server",
        );
        let mut workers = vec![delivery, metrics_server];
        if !no_workers {
            workers.extend(start_workers(
                &app,
                kube.as_deref(),
                &settings.worker,
                &stopped,
            ));
        }
        info!(%addr, %metrics_addr, ?transport, "jitbot is listening");
        Ok(Application {
            addr,
            metrics_addr,
            app,
            notifier,
            shutdown,
            server,
            workers,
            background,
            drain_delay: settings.server.drain_delay.as_std(),
            socket,
        })
    }

    /// Runs until SIGTERM or Ctrl-C, then turns unready, keeps answering for
    /// `server.drain_delay` (while load balancers take this replica out) and stops
    /// gracefully.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        shutdown_signal().await;
        self.app.health().stop();
        info!(
            drain_delay = ?self.drain_delay,
            "stopping: unready now; answering for the drain delay, then finishing what is in flight"
        );
        tokio::time::sleep(self.drain_delay).await;
        self.stop().await;
        Ok(())
    }

    /// Stops accepting requests, lets in-flight ones and their background work finish
    /// (bounded), stops the workers and waits (bounded) for the Slack outbox to drain;
    /// what is left stays in the outbox for the next replica.
    pub async fn stop(self) {
        self.app.health().stop();
        let _ = self.shutdown.send(true);
        if let Some(socket) = &self.socket {
            socket.stop().await;
        }
        if tokio::time::timeout(SERVER_GRACE, self.server)
            .await
            .is_err()
        {
            warn!("the HTTP server did not finish in time");
        }
        self.background.close();
        if tokio::time::timeout(BACKGROUND_GRACE, self.background.wait())
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
        let _ = tokio::time::timeout(FLUSH_GRACE, self.notifier.flush()).await;
        drop(self.notifier);
        drop(self.app);
        if let Some(task) = notifier_task {
            task.abort();
        }
    }
}

/// Binds `address`, the value of the setting `setting`.
async fn bind(address: &str, setting: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} ({setting})"))
}

/// Serves `router` on `listener` until `stop` turns true, then lets requests in flight
/// finish; `what` names it in the log.
pub fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    mut stop: watch::Receiver<bool>,
    what: &'static str,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let serving = axum::serve(listener, router).with_graceful_shutdown(async move {
            let _ = stop.wait_for(|stop| *stop).await;
        });
        if let Err(e) = serving.await {
            warn!(error = %e, "{what} stopped with an error");
        }
    })
}

/// Starts the background workers: the sweep, the reconciler and, on a real cluster,
/// the expiry guard with the loop that audits its removals.
fn start_workers(
    app: &App,
    kube: Option<&KubeEnforcer>,
    w: &WorkerSettings,
    stopped: &watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let mut workers = Vec::new();
    if let Some(cluster) = kube {
        let (removals, removed) = mpsc::channel(GUARD_AUDIT_BACKLOG);
        let guard = cluster.expiry_guard(
            app.catalog().limits.max_duration,
            app.clock().clone(),
            app.metrics().clone(),
            removals,
        );
        let (owner, until) = (app.clone(), stopped.clone());
        workers.push(tokio::spawn(async move {
            owner.health().run("expiry guard", guard.run(until)).await;
        }));
        workers.push(tokio::spawn(worker::guard_audit_loop(
            app.clone(),
            removed,
            stopped.clone(),
        )));
    }
    workers.push(tokio::spawn(worker::sweep_loop(
        app.clone(),
        w.sweep_interval.as_std(),
        stopped.clone(),
    )));
    workers.push(tokio::spawn(worker::reconcile_loop(
        app.clone(),
        w.reconcile_interval.as_std(),
        stopped.clone(),
    )));
    workers
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
