//! `jitbot playground`: the whole flow in a browser, with no Slack workspace and no
//! cluster. It is the same app `jitbot serve` builds ([`Application::build`]: the same
//! use cases, Block Kit cards and signature-checked endpoints) with three things put
//! in place of the outside world:
//!
//! - Slack: a [`SlackStandin`], a real Slack Web API on loopback inside the process, so
//!   the real Slack client and notifier talk HTTP to it exactly as to Slack;
//! - the cluster: a [`MemoryCluster`] that keeps applied policies in memory (or, with
//!   `--kube`, the real cluster from the kubeconfig);
//! - the clock: a [`ManualClock`] that starts at the real time, runs along with it,
//!   and jumps forward on request, after which the sweep and the reconciler run at once
//!   so expiry can be watched without waiting (not with `--kube`: a reconcile of the
//!   real cluster at a future time would end real grants early).
//!
//! The store is the memory one, or Redis when `REDIS_URL` is set (under its own key
//! prefix, so a playground never touches a real jitbot's keys). The page at `/` plays
//! Slack's client ([`server`]); nothing here changes how jitbot itself behaves.

mod hosts;
pub mod inbound;
mod modals;
pub mod people;
mod server;
pub mod slack_standin;
mod view;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use crate::adapters::memory::DRY_RUN_PREVIEW;
pub use hosts::allowed_host;
pub use slack_standin::{SlackStandin, StandinConfig};
pub use view::ChannelInfo;

use self::inbound::InboundSlack;
use self::people::Workspace;
use crate::adapters::memory::MemoryCluster;
use crate::adapters::slack::SlackNotifier;
use crate::app::{App, AppError, ManualClock};
use crate::core::catalog::Catalog;
use crate::core::ports::Clock;
use crate::core::secret::Secret;
use crate::settings::{Secrets, Settings};
use crate::startup::{self, Application, ClusterPorts, Overrides};

/// The example catalog, built in so `jitbot playground` works with no file at all.
pub const EXAMPLE_CONFIG: &str = include_str!("../../config/example.toml");

/// The audit channel when the configuration names none: the audit thread is half of
/// what the playground is there to show.
pub const PLAYGROUND_AUDIT_CHANNEL: &str = "C0JITAUDIT";

/// Redis key prefix of a playground, apart from any real jitbot's.
pub const REDIS_KEY_PREFIX: &str = "{jitbot-playground}";

/// How the playground runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where the page is served, e.g. `127.0.0.1:8080`.
    pub listen: String,
    /// Use the cluster from the kubeconfig instead of the dry run.
    pub kube: bool,
    /// More names the page answers to (`HOST` or `HOST:PORT`, checked by
    /// [`allowed_host`]), besides loopback and its own address: e.g. the machine's
    /// name when it listens on `0.0.0.0`.
    pub allow_hosts: Vec<String>,
    /// Whether the clock runs along with the wall clock between jumps (tests keep it
    /// still, so every time they see is one they set).
    pub running_clock: bool,
    /// Where the clock starts.
    pub start: DateTime<Utc>,
    /// `REDIS_URL`, if set.
    pub redis_url: Option<Secret>,
    /// Seals the requests kept in Redis; without one, a key made for this run (so a
    /// later run cannot read them).
    pub state_key: Option<Secret>,
}

/// What the page's header says the playground is made of.
#[derive(Clone, Debug, Serialize)]
pub struct Facts {
    pub slack: String,
    pub cluster: String,
    pub store: String,
}

impl Facts {
    /// What the header says of a playground run with `options` on `cluster`.
    fn of(options: &Options, cluster: &str) -> Facts {
        let store = match &options.redis_url {
            Some(_) => {
                let sealed = match options.state_key {
                    Some(_) => "sealed with JITBOT_STATE_KEY",
                    None => "sealed with a key made for this run",
                };
                format!("Redis at REDIS_URL, keys under {REDIS_KEY_PREFIX}, {sealed}")
            }
            None => "in memory (gone when the playground stops)".to_owned(),
        };
        Facts {
            slack: "a stand-in Slack Web API inside this process; requests to jitbot are signed and checked as Slack's are".to_owned(),
            cluster: cluster.to_owned(),
            store,
        }
    }
}

/// What the web server works with.
pub struct Engine {
    app: App,
    notifier: SlackNotifier,
    slack: SlackStandin,
    clock: Arc<ManualClock>,
    inbound: InboundSlack,
    workspace: Workspace,
    channels: Vec<ChannelInfo>,
    facts: Facts,
    /// Whether the clock may jump forward: not against a real cluster.
    clock_jumps: bool,
}

/// Why the clock does not jump with `--kube`.
pub const NO_JUMPS_WITH_KUBE: &str = "with --kube the clock cannot jump: the sweep and the reconciler would run against the real cluster at a future time and delete grants that are still due to run; wait for the time to pass instead";

impl Engine {
    /// The page's side of a running jitbot and its stand-in Slack.
    fn new(
        application: &Application,
        standin: Standin,
        clock: Arc<ManualClock>,
        facts: Facts,
        clock_jumps: bool,
    ) -> Engine {
        let jitbot = format!("http://{}", application.addr);
        Engine {
            app: application.app.clone(),
            notifier: application.notifier.clone(),
            inbound: InboundSlack::new(jitbot, standin.signing, clock.clone()),
            slack: standin.slack,
            clock,
            workspace: standin.workspace,
            channels: standin.channels,
            facts,
            clock_jumps,
        }
    }

    /// A new `trigger_id` for something `user` does, which the stand-in takes as
    /// theirs: a modal it opens is shown to them, as Slack does.
    fn trigger_for(&self, user: &str) -> String {
        let trigger = self.inbound.trigger_id();
        self.slack.trigger_from(&trigger, user);
        trigger
    }

    pub fn facts(&self) -> &Facts {
        &self.facts
    }

    /// Whether the clock may jump forward, or why not.
    pub fn may_jump(&self) -> Result<(), &'static str> {
        if self.clock_jumps {
            Ok(())
        } else {
            Err(NO_JUMPS_WITH_KUBE)
        }
    }

    /// Moves the clock forward, then runs one sweep and one reconcile at the new time
    /// and waits until Slack has been told, so the page shows the outcome at once.
    /// Refused with `--kube` ([`NO_JUMPS_WITH_KUBE`]).
    pub async fn advance(&self, by: TimeDelta) -> Result<Value, AppError> {
        self.may_jump()
            .map_err(|why| AppError::Invalid(why.to_owned()))?;
        self.clock.advance(by);
        let now = self.clock.now();
        let sweep = self.app.sweep_once(now).await?;
        let reconcile = self.app.reconcile_once(now).await?;
        self.notifier.flush().await;
        Ok(json!({
            "now": now,
            "expired": sweep.expired,
            "warned": sweep.warned,
            "lapsed": sweep.lapsed,
            "removed": reconcile.removed,
            "reapplied": reconcile.reapplied,
            "withdrawn": reconcile.withdrawn,
        }))
    }
}

/// A running playground.
pub struct Playground {
    /// Where the page is served.
    pub addr: SocketAddr,
    pub engine: Arc<Engine>,
    application: Application,
    server: JoinHandle<()>,
    ticker: Option<JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
}

impl Playground {
    /// Starts the Slack stand-in, jitbot (as `serve` builds it) and the page.
    pub async fn start(
        mut settings: Settings,
        catalog: Catalog,
        options: Options,
    ) -> anyhow::Result<Playground> {
        let (listener, addr) = listen(&options).await?;
        let clock = Arc::new(ManualClock::new(options.start));
        let standin = Standin::start(&settings, &catalog, clock.clone()).await?;
        let secrets = standin.aim(&mut settings, &options);
        let (cluster, cluster_words) = cluster_of(&options);
        let overrides = Overrides {
            clock: Some(clock.clone() as Arc<dyn Clock>),
            kube_client: None,
            no_workers: false,
            cluster,
            store: None,
            no_delivery: false,
        };
        let application = Application::build(&settings, catalog, &secrets, overrides).await?;
        let facts = Facts::of(&options, cluster_words);
        let engine = Arc::new(Engine::new(
            &application,
            standin,
            clock.clone(),
            facts,
            !options.kube,
        ));

        let (shutdown, stopped) = watch::channel(false);
        let allowed = hosts::Allowed::for_listener(addr, &options.allow_hosts);
        let page = server::router(engine.clone(), allowed);
        let server = startup::serve(
            listener,
            page,
            stopped.clone(),
            "the playground's web server",
        );
        let ticker = options
            .running_clock
            .then(|| tokio::spawn(run_clock(clock, stopped)));
        Ok(Playground {
            addr,
            engine,
            application,
            server,
            ticker,
            shutdown,
        })
    }

    /// The address to open in a browser.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn slack(&self) -> &SlackStandin {
        &self.engine.slack
    }

    pub fn app(&self) -> &App {
        &self.engine.app
    }

    pub fn clock(&self) -> &ManualClock {
        &self.engine.clock
    }

    /// Where jitbot's own endpoints (`/slack/…`, `/healthz`, `/readyz`) listen.
    pub fn jitbot_addr(&self) -> SocketAddr {
        self.application.addr
    }

    /// Runs until SIGTERM or Ctrl-C, then stops.
    pub async fn run_until_signal(self) {
        startup::shutdown_signal().await;
        self.stop().await;
    }

    /// Stops the page, the clock and jitbot, in that order.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.server).await;
        if let Some(ticker) = self.ticker {
            let _ = ticker.await;
        }
        self.application.stop().await;
    }
}

/// Binds the page's address. With `--kube` only a loopback one: whoever reaches the
/// page applies real NetworkPolicies.
async fn listen(options: &Options) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(&options.listen)
        .await
        .with_context(|| format!("cannot listen on {} (--listen)", options.listen))?;
    let addr = listener.local_addr()?;
    if options.kube && !addr.ip().is_loopback() {
        bail!(
            "with --kube the playground applies real NetworkPolicies for whoever can reach it; listen on a loopback address such as 127.0.0.1:8080"
        );
    }
    Ok((listener, addr))
}

/// The Slack stand-in, running, and what jitbot needs to talk to it.
struct Standin {
    slack: SlackStandin,
    workspace: Workspace,
    channels: Vec<ChannelInfo>,
    /// The configured audit channel, or [`PLAYGROUND_AUDIT_CHANNEL`].
    audit: String,
    /// The bot token the stand-in accepts, new each run.
    token: String,
    /// The signing secret of jitbot and of the requests made in Slack's place, new
    /// each run.
    signing: Secret,
}

impl Standin {
    /// Makes up the workspace the catalog names (people, groups, channels) and starts
    /// a Slack Web API for it on loopback.
    async fn start(
        settings: &Settings,
        catalog: &Catalog,
        clock: Arc<ManualClock>,
    ) -> anyhow::Result<Standin> {
        let workspace = Workspace::of(catalog);
        let audit = match settings.slack.audit_channel.trim() {
            "" => PLAYGROUND_AUDIT_CHANNEL.to_owned(),
            configured => configured.to_owned(),
        };
        let channels = channels_of(catalog, &audit);
        let token = format!("xoxb-playground-{:032x}", rand::random::<u128>());
        let signing = Secret::new(format!("{:032x}", rand::random::<u128>()));
        let slack = SlackStandin::start(StandinConfig {
            token: token.clone(),
            channels: channels.iter().map(|c| c.id.clone()).collect(),
            groups: workspace.groups.clone(),
            clock,
            app_token: slack_standin::socket::STANDIN_APP_TOKEN.to_owned(),
        })
        .await
        .context("cannot start the Slack stand-in")?;
        Ok(Standin {
            slack,
            workspace,
            channels,
            audit,
            token,
            signing,
        })
    }

    /// Points jitbot's settings at the stand-in and at the playground's own places,
    /// and gives the secrets to go with them.
    fn aim(&self, settings: &mut Settings, options: &Options) -> Secrets {
        settings.slack.api_url = self.slack.api_url.clone();
        settings.slack.audit_channel = self.audit.clone();
        // jitbot's own endpoints stay on a free loopback port; only the page is public.
        settings.server.listen = "127.0.0.1:0".to_owned();
        settings.server.metrics_listen = "127.0.0.1:0".to_owned();
        settings.store.key_prefix = REDIS_KEY_PREFIX.to_owned();
        // The page plays Slack's HTTP side (signed posts to /slack/*).
        settings.slack.mode = crate::settings::SlackMode::Http;
        Secrets {
            slack_bot_token: Some(Secret::new(self.token.clone())),
            slack_signing_secret: Some(self.signing.clone()),
            slack_app_token: None,
            redis_url: options.redis_url.clone(),
            state_key: options.state_key.clone().or_else(|| {
                let bytes: [u8; 32] = rand::random();
                Some(Secret::new(hex::encode(bytes)))
            }),
            state_key_previous: None,
        }
    }
}

/// The cluster to put in place of Kubernetes, and what the page's header calls it:
/// a [`MemoryCluster`], or with `--kube` none (jitbot then uses the kubeconfig's).
fn cluster_of(options: &Options) -> (Option<ClusterPorts>, &'static str) {
    if options.kube {
        return (
            None,
            "Kubernetes from your kubeconfig: policies are applied for real",
        );
    }
    let dry = Arc::new(MemoryCluster::new());
    let ports = ClusterPorts {
        enforcer: dry.clone(),
        previewer: dry,
    };
    (
        Some(ports),
        "dry run: policies are kept in memory, nothing leaves this process",
    )
}

/// The approval channels in catalog order, each with the targets it decides, then
/// the audit channel.
fn channels_of(catalog: &Catalog, audit: &str) -> Vec<ChannelInfo> {
    let mut approvals: Vec<(String, Vec<String>)> = Vec::new();
    for t in catalog.targets() {
        let id = t.approval_channel.to_string();
        match approvals.iter_mut().find(|(c, _)| *c == id) {
            Some((_, targets)) => targets.push(t.name.to_string()),
            None => approvals.push((id, vec![t.name.to_string()])),
        }
    }
    let mut out: Vec<ChannelInfo> = approvals
        .into_iter()
        .filter(|(id, _)| id != audit)
        .map(|(id, targets)| ChannelInfo {
            id,
            kind: "approvals",
            purpose: format!("approvals for {}", targets.join(", ")),
        })
        .collect();
    out.push(ChannelInfo {
        id: audit.to_owned(),
        kind: "audit",
        purpose: "audit: one thread per request".to_owned(),
    });
    out
}

/// Keeps the clock running with the wall clock, one second at a time, until stopped.
async fn run_clock(clock: Arc<ManualClock>, mut stop: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    let mut last = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let now = tokio::time::Instant::now();
        clock.advance(TimeDelta::from_std(now - last).unwrap_or_default());
        last = now;
    }
}
