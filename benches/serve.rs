//! End-to-end figures for `jitbot serve`: `cargo bench --bench serve` (about a
//! minute and a half once built; `cargo bench --bench serve -- --quick` for a short
//! run that checks the bench itself works).
//!
//! The real binary runs as a child process, configured as an operator would (a config
//! file, secrets in the environment, the cluster from `KUBECONFIG`), against a real
//! redis-server, the real kube-apiserver v1.20.2 + etcd of the test support, and the
//! test support's fake Slack, all on loopback. Its workers run with their default
//! intervals. This process drives it the way Slack would: signed slash commands and
//! button clicks over a keep-alive HTTP client.
//!
//! 1. Ack latency of a signed `/jit request` at a steady rate, open loop: requests
//!    leave on a fixed schedule whatever the answers do; latency is send → response.
//!    Also the approval cards: how far behind the requests the Slack notifier posts
//!    them.
//! 2. Approve click → the grant's NetworkPolicy ADDED event on a watch of the API
//!    server, clicks paced.
//! 3. Revocation lag with 10k active grants, cohorts of 1k of which expire at one
//!    instant each: from `expires_at` to the DELETED event on a watch, while the sweep
//!    loop runs on its default interval. Three cohorts, 11.7 s apart, meet the sweep
//!    at three points of its interval, which is most of the spread. The grants are
//!    written the way the use cases write them (the store's create / approve /
//!    applied scripts, the enforcer's server-side apply) by this process rather than
//!    through Slack, so that 10k approval cards and previews do not swamp the run.
//!    Then one `reconcile_once` over what is left, timed.
//! 4. Resident memory of the jitbot process (`/proc/<pid>/status`): idle, under load,
//!    after, and with the active grants of step 3.
//!
//! Everything shares the machine: the CPU each process used during step 1 is shown,
//! so a saturated machine is visible in the figures.
//!
//! `cargo test --all-targets` runs this binary without `--bench`; it then only says
//! how to run it.

#[path = "../tests/support/fake_slack.rs"]
#[allow(dead_code)] // the bench uses only part of the fake
mod fake_slack;
#[path = "../tests/support/fakes.rs"]
#[allow(dead_code)] // slack_world needs it; the bench uses little of it
mod fakes;
#[path = "../tests/support/kube.rs"]
#[allow(dead_code)] // nor does it make pods or other clients
mod kube_server;
#[path = "support/process.rs"]
mod process;
#[path = "../tests/support/redis.rs"]
#[allow(dead_code)] // nor does it stop, freeze or cluster the server
mod redis_server;
#[path = "support/slack_tap.rs"]
mod slack_tap;
#[path = "../tests/support/slack_world.rs"]
#[allow(dead_code)] // only the request bodies and the constants
mod slack_world;
#[path = "support/watch.rs"]
mod watch;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use tokio::task::JoinSet;

use jitbot::adapters::http::signature;
use jitbot::adapters::kube::{KubeEnforcer, KubeSettings};
use jitbot::adapters::redis::{RedisSettings, RedisStore};
use jitbot::adapters::slack::blocks::APPROVE;
use jitbot::app::{App, AppConfig, ManualClock, Ports, SystemClock};
use jitbot::core::catalog::Catalog;
use jitbot::core::command::Reason;
use jitbot::core::ids::{Namespace, RequestId};
use jitbot::core::netpol;
use jitbot::core::ports::{AuditEvent, Enforcer, Store};
use jitbot::core::request::{
    self, AccessRequest, Actor, AuditKind, Event, NewRequest, Scope, State,
};
use jitbot::core::ttl::Ttl;
use jitbot::settings::Settings;

use fake_slack::FakeSlack;
use fakes::{ALICE, LEAD1, t0, user};
use process::{CpuWindow, Jitbot, Memory, RssSampler, mib};
use redis_server::RedisServer;
use slack_tap::Tap;
use slack_world::{APPROVALS, AUDIT, InboundSlack, SECRET, TOKEN};
use watch::Watch;

/// Tasks writing grants at once while populating step 3.
const POPULATE_TASKS: usize = 32;
/// How often the Slack tap and the memory sampler look.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// Between the expiries of two cohorts in step 3: not a multiple of the sweep
/// interval (5 s), so each cohort meets the sweep at another point of its interval.
const COHORT_GAP: Duration = Duration::from_millis(11_667);

/// How big a run is.
struct Plan {
    /// Step 1: requests per second, after a warm-up at the same rate.
    rate: u32,
    warmup: Duration,
    load: Duration,
    /// Step 2: approvals, clicked at `click_rate` per second.
    approvals: usize,
    click_rate: u32,
    /// Step 3: active grants; `cohorts` times `due` of them expire, each cohort at
    /// one instant.
    grants: usize,
    due: usize,
    cohorts: usize,
    /// Longest wait for Slack's backlog, the policies, or the sweep.
    patience: Duration,
}

impl Plan {
    /// `None` outside `cargo bench` (then `cargo test --all-targets` stays fast).
    fn from_args() -> Option<Self> {
        let args: Vec<String> = std::env::args().collect();
        if !args.iter().any(|a| a == "--bench") {
            return None;
        }
        Some(if args.iter().any(|a| a == "--quick") {
            Plan {
                rate: 100,
                warmup: Duration::from_secs(1),
                load: Duration::from_secs(3),
                approvals: 20,
                click_rate: 20,
                grants: 500,
                due: 100,
                cohorts: 2,
                patience: Duration::from_secs(60),
            }
        } else {
            Plan {
                rate: 500,
                warmup: Duration::from_secs(3),
                load: Duration::from_secs(20),
                approvals: 200,
                click_rate: 20,
                grants: 10_000,
                due: 1_000,
                cohorts: 3,
                patience: Duration::from_secs(120),
            }
        })
    }
}

fn main() {
    let Some(plan) = Plan::from_args() else {
        println!("serve bench: skipped outside `cargo bench`; run `cargo bench --bench serve`");
        return;
    };
    // Both servers are started from the main thread: they die with the thread that
    // started them should this process be killed.
    let redis = RedisServer::start();
    let apiserver = kube_server::server();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run(&plan, &redis, apiserver));
}

/// Everything the steps share.
struct Bench {
    jitbot: Jitbot,
    /// Bodies of Slack's requests (the signature is made per request).
    inbound: InboundSlack,
    http: reqwest::Client,
    tap: Arc<Mutex<Tap>>,
    kube: kube::Client,
    /// Processes whose CPU is shown.
    procs: Vec<(String, u32)>,
}

async fn run(plan: &Plan, redis: &RedisServer, apiserver: &kube_server::ApiServer) {
    let cluster = kube_server::cluster().await;
    let grants_namespace = cluster.another_namespace("sweep").await;
    let slack = FakeSlack::start(TOKEN, &[APPROVALS, AUDIT], &[]).await;
    let dir = tempfile::Builder::new()
        .prefix("jitbot-serve-bench-")
        .tempdir()
        .expect("a temporary directory");
    let prefix = "{jitbot-bench}";
    let config = dir.path().join("jitbot.toml");
    std::fs::write(
        &config,
        config_toml(
            &slack.api_url,
            prefix,
            &cluster.namespace,
            &grants_namespace,
        ),
    )
    .expect("write the config file");
    let jitbot = Jitbot::start(
        Path::new(env!("CARGO_BIN_EXE_jitbot")),
        &config,
        &[
            ("KUBECONFIG", apiserver.kubeconfig.display().to_string()),
            ("SLACK_BOT_TOKEN", TOKEN.to_owned()),
            ("SLACK_SIGNING_SECRET", SECRET.to_owned()),
            ("REDIS_URL", redis.url()),
        ],
        dir.path().join("jitbot.log"),
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client");
    wait_ready(&http, &jitbot.base).await;
    let inbound = InboundSlack::new(
        jitbot.base.clone(),
        Arc::new(ManualClock::new(t0())),
        &slack,
    );
    let run_dir = apiserver
        .kubeconfig
        .parent()
        .expect("the kubeconfig's directory")
        .to_owned();
    let pid_in = |name: &str| {
        std::fs::read_to_string(run_dir.join(format!("{name}.pid")))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
            .unwrap_or(0)
    };
    let procs = vec![
        ("jitbot".to_owned(), jitbot.pid),
        ("redis-server".to_owned(), redis_pid(redis)),
        ("kube-apiserver".to_owned(), pid_in("apiserver")),
        ("etcd".to_owned(), pid_in("etcd")),
        ("bench (client, fake Slack)".to_owned(), std::process::id()),
    ];
    let tap = Tap::start(&slack, APPROVALS, SAMPLE_EVERY);
    let bench = Bench {
        jitbot,
        inbound,
        http,
        tap,
        kube: cluster.client.clone(),
        procs,
    };

    // Settle, then the idle figure.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = bench.jitbot.memory();

    let acks = ack_latency(plan, &bench).await;
    let approvals = approve_to_policy(plan, &bench, &cluster.namespace).await;
    let settings = Settings::load(Some(&config), &HashMap::new()).expect("the bench config");
    let catalog = settings.catalog().expect("the bench catalog");
    let store = RedisStore::connect(
        &redis.url(),
        &RedisSettings {
            key_prefix: prefix.to_owned(),
            response_timeout: Duration::from_secs(10),
            ..RedisSettings::default()
        },
    )
    .await
    .expect("connect to the bench redis-server");
    let enforcer = KubeEnforcer::new(
        cluster.client.clone(),
        KubeSettings::default(),
        catalog.namespaces(),
    );
    let grants = Arc::new(Grants {
        store,
        enforcer,
        catalog: Arc::new(catalog),
        namespace: grants_namespace,
    });
    let revocation = revocation_lag(plan, &bench, &grants).await;
    let with_grants = bench.jitbot.memory();

    let warnings = bench.jitbot.log_lines("WARN");
    let errors = bench.jitbot.log_lines("ERROR");
    let Bench { jitbot, .. } = bench;
    let (exit, stopping) = jitbot.stop(Duration::from_secs(40));

    report(
        plan,
        redis,
        &acks,
        &approvals,
        &revocation,
        Memories {
            idle,
            load_peak: acks.rss_peak,
            load_hwm: acks.hwm_after_load,
            drained: acks.after_drain,
            with_grants,
        },
    );
    println!(
        "\njitbot log: {} WARN, {} ERROR lines",
        total(&warnings),
        total(&errors)
    );
    for (message, n) in warnings.iter().chain(errors.iter()) {
        println!("  {n:>6} × {message}");
    }
    println!(
        "SIGTERM → exit: {} in {:.1} s",
        exit.map_or("killed after the grace period".to_owned(), |s| s
            .to_string()),
        stopping.as_secs_f64()
    );
}

fn total(lines: &std::collections::BTreeMap<String, usize>) -> usize {
    lines.values().sum()
}

/// Two targets: `payments-db` for steps 1 and 2, `orders-db` (in its own namespace)
/// for the active grants of step 3. No expiry warnings, so a grant's only timer is
/// its expiry.
fn config_toml(
    api_url: &str,
    prefix: &str,
    requests_ns: &Namespace,
    grants_ns: &Namespace,
) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
[access]
expiry_warning = "0s"
[slack]
api_url = "{api_url}"
audit_channel = "{AUDIT}"
[store]
key_prefix = "{prefix}"
[log]
format = "json"
level = "info"

[[targets]]
name = "payments-db"
namespace = "{requests_ns}"
pod_selector = {{ app = "postgres" }}
ports = [{{ port = 5432 }}]
default_duration = "30m"
max_duration = "2h"
approvers = ["{LEAD1}"]
approval_channel = "{APPROVALS}"

[[targets]]
name = "orders-db"
namespace = "{grants_ns}"
pod_selector = {{ app = "orders-db" }}
ports = [{{ port = 5432 }}]
default_duration = "30m"
max_duration = "2h"
approvers = ["{LEAD1}"]
approval_channel = "{APPROVALS}"

[[requesters]]
slack_user = "{ALICE}"
name = "alice"
source.addresses = ["10.8.0.14"]
"#
    )
}

async fn wait_ready(http: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "jitbot was not ready within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn redis_pid(redis: &RedisServer) -> u32 {
    let info: String = ::redis::cmd("INFO")
        .arg("server")
        .query(&mut redis.admin())
        .expect("INFO server");
    info.lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or(0)
}

fn unix_secs() -> String {
    Utc::now().timestamp().to_string()
}

/// Posts `body` to `url`, signed now as Slack signs; the status and the body.
async fn post_signed(
    http: &reqwest::Client,
    url: &str,
    body: String,
) -> Result<(u16, String), String> {
    let ts = unix_secs();
    let sig = signature::sign(SECRET, &ts, body.as_bytes());
    let res = http
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", ts)
        .header("x-slack-signature", sig)
        .body(body)
        .send()
        .await
        .map_err(|e| format!("transport: {e}"))?;
    let status = res.status().as_u16();
    let text = res.text().await.map_err(|e| format!("body: {e}"))?;
    Ok((status, text))
}

/// The request id in a `/jit request` answer, or why there is none.
fn request_id(answer: Result<(u16, String), String>) -> Result<String, String> {
    let (status, body) = answer?;
    if status != 200 {
        return Err(format!("HTTP {status}"));
    }
    let text = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["text"].as_str().map(str::to_owned))
        .unwrap_or(body);
    text.strip_prefix("Request `")
        .and_then(|r| r.split('`').next())
        .map(str::to_owned)
        .ok_or_else(|| format!("answer: {}", text.chars().take(80).collect::<String>()))
}

impl Bench {
    fn cards_for(&self, ids: &[String]) -> usize {
        let tap = self.tap.lock().unwrap();
        ids.iter().filter(|id| tap.cards.contains_key(*id)).count()
    }

    /// Waits until every id has its approval card, or `patience` ran out; how long
    /// it took.
    async fn wait_for_cards(&self, ids: &[String], patience: Duration) -> Option<Duration> {
        let started = Instant::now();
        while started.elapsed() < patience {
            if self.cards_for(ids) == ids.len() {
                return Some(started.elapsed());
            }
            tokio::time::sleep(SAMPLE_EVERY).await;
        }
        None
    }
}

// ---------------------------------------------------------------------------------
// 1. `/jit request` acks at a steady rate.

struct Sample {
    /// When the schedule said to send it.
    due: Instant,
    sent: Instant,
    done: Instant,
    id: Result<String, String>,
}

/// Sends `/jit request` at `rate` per second for `length`, whatever the answers do.
async fn open_loop(bench: &Bench, rate: u32, length: Duration) -> Vec<Sample> {
    let count = (f64::from(rate) * length.as_secs_f64()).round() as usize;
    let period = Duration::from_secs_f64(1.0 / f64::from(rate));
    let url: Arc<str> = format!("{}/slack/commands", bench.jitbot.base).into();
    let body: Arc<str> = bench
        .inbound
        .command_body(ALICE, "request payments-db 30m INC-4411 replica lag")
        .into();
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    let mut tasks = JoinSet::new();
    for i in 0..count {
        let due = start + period.mul_f64(i as f64);
        tokio::time::sleep_until(due).await;
        let (http, url, body) = (bench.http.clone(), url.clone(), body.clone());
        tasks.spawn(async move {
            let sent = Instant::now();
            let answer = post_signed(&http, &url, body.to_string()).await;
            let done = Instant::now();
            Sample {
                due: due.into_std(),
                sent,
                done,
                id: request_id(answer),
            }
        });
    }
    let mut samples = Vec::with_capacity(count);
    while let Some(s) = tasks.join_next().await {
        samples.push(s.expect("a request task"));
    }
    samples.sort_by_key(|s| s.due);
    samples
}

struct AckReport {
    sent: usize,
    achieved: f64,
    latency: Percentiles,
    /// Latency counted from the scheduled send time (no coordinated omission).
    from_schedule: Percentiles,
    /// Latest a request left after its scheduled time.
    late_max: Duration,
    errors: HashMap<String, usize>,
    cpu: (Vec<(String, f64)>, f64),
    rss_peak: u64,
    hwm_after_load: u64,
    after_drain: Memory,
    /// Approval cards posted by the end of the load, of those requested.
    cards_at_end: usize,
    requested: usize,
    /// From the end of the load until the last card was posted.
    drained_after: Option<Duration>,
    /// From the ack to the approval card.
    card_latency: Percentiles,
    /// Cards per second while the backlog drained.
    card_rate: f64,
    /// Cards per second posted during the measured load.
    card_rate_under_load: f64,
}

async fn ack_latency(plan: &Plan, bench: &Bench) -> AckReport {
    let warmup = open_loop(bench, plan.rate, plan.warmup).await;

    let rss = RssSampler::start(bench.jitbot.pid, SAMPLE_EVERY);
    let cpu = CpuWindow::start(&bench.procs);
    let load_started = Instant::now();
    let samples = open_loop(bench, plan.rate, plan.load).await;
    let cpu = cpu.cores();
    let load_ended = Instant::now();
    let rss_peak = rss.stop();
    let hwm_after_load = bench.jitbot.memory().hwm_kib;

    let ids: Vec<String> = warmup
        .iter()
        .chain(samples.iter())
        .filter_map(|s| s.id.as_ref().ok().cloned())
        .collect();
    let cards_at_end = bench.cards_for(&ids);
    let waited = bench.wait_for_cards(&ids, plan.patience).await;
    let last_card = {
        let tap = bench.tap.lock().unwrap();
        ids.iter().filter_map(|id| tap.cards.get(id)).max().copied()
    };
    let drained_after = waited.and(last_card.map(|at| at.saturating_duration_since(load_ended)));
    let after_drain = bench.jitbot.memory();

    let acked: HashMap<&str, Instant> = warmup
        .iter()
        .chain(samples.iter())
        .filter_map(|s| s.id.as_ref().ok().map(|id| (id.as_str(), s.done)))
        .collect();
    let (card_latency, card_rate, card_rate_under_load) = {
        let tap = bench.tap.lock().unwrap();
        let lat: Vec<Duration> = acked
            .iter()
            .filter_map(|(id, acked)| {
                tap.cards
                    .get(*id)
                    .map(|at| at.saturating_duration_since(*acked))
            })
            .collect();
        let after: Vec<Instant> = ids
            .iter()
            .filter_map(|id| tap.cards.get(id))
            .filter(|at| **at >= load_ended)
            .copied()
            .collect();
        let rate = match (after.iter().min(), after.iter().max()) {
            (Some(first), Some(last)) if last > first => {
                (after.len() - 1) as f64 / last.duration_since(*first).as_secs_f64()
            }
            _ => 0.0,
        };
        let under_load = tap
            .cards
            .values()
            .filter(|at| **at >= load_started && **at < load_ended)
            .count() as f64
            / (load_ended - load_started).as_secs_f64();
        (Percentiles::of(lat), rate, under_load)
    };

    let mut errors: HashMap<String, usize> = HashMap::new();
    for s in &samples {
        if let Err(e) = &s.id {
            *errors.entry(e.clone()).or_default() += 1;
        }
    }
    let first = samples.first().map(|s| s.sent);
    let last = samples.last().map(|s| s.sent);
    let achieved = match (first, last) {
        (Some(a), Some(b)) if b > a => (samples.len() - 1) as f64 / (b - a).as_secs_f64(),
        _ => 0.0,
    };
    AckReport {
        sent: samples.len(),
        achieved,
        latency: Percentiles::of(samples.iter().map(|s| s.done - s.sent).collect()),
        from_schedule: Percentiles::of(samples.iter().map(|s| s.done - s.due).collect()),
        late_max: samples
            .iter()
            .map(|s| s.sent.saturating_duration_since(s.due))
            .max()
            .unwrap_or_default(),
        errors,
        cpu,
        rss_peak,
        hwm_after_load,
        after_drain,
        cards_at_end,
        requested: ids.len(),
        drained_after,
        card_latency,
        card_rate,
        card_rate_under_load,
    }
}

// ---------------------------------------------------------------------------------
// 2. Approve click → policy in the API server.

struct ApproveReport {
    clicks: usize,
    rate: u32,
    present: usize,
    latency: Percentiles,
    click_ack: Percentiles,
    errors: usize,
    refusals: usize,
    watch_problems: Vec<String>,
}

async fn approve_to_policy(plan: &Plan, bench: &Bench, namespace: &Namespace) -> ApproveReport {
    let url = format!("{}/slack/commands", bench.jitbot.base);
    let body = bench
        .inbound
        .command_body(ALICE, "request payments-db 30m INC-4411 replica lag");
    let mut ids = Vec::with_capacity(plan.approvals);
    for _ in 0..plan.approvals {
        let id = request_id(post_signed(&bench.http, &url, body.clone()).await)
            .expect("a request for step 2");
        ids.push(id);
    }
    // Approvers click on cards they see.
    if bench.wait_for_cards(&ids, plan.patience).await.is_none() {
        println!("step 2: not every approval card arrived; clicking anyway");
    }
    let refused_before = bench
        .tap
        .lock()
        .unwrap()
        .calls
        .get("respond:approve")
        .copied();

    let watch = Watch::start(&bench.kube, namespace).await;
    let url: Arc<str> = format!("{}/slack/interactions", bench.jitbot.base).into();
    let period = Duration::from_secs_f64(1.0 / f64::from(plan.click_rate));
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    let mut tasks = JoinSet::new();
    for (i, id) in ids.iter().enumerate() {
        let due = start + period.mul_f64(i as f64);
        tokio::time::sleep_until(due).await;
        let body = bench.inbound.click_body(LEAD1, APPROVE, id, "approve");
        let (http, url, id) = (bench.http.clone(), url.clone(), id.clone());
        tasks.spawn(async move {
            let sent = Instant::now();
            let answer = post_signed(&http, &url, body).await;
            (id, sent, Instant::now(), matches!(answer, Ok((200, _))))
        });
    }
    let mut clicked = HashMap::new();
    let (mut acks, mut errors) = (Vec::new(), 0);
    while let Some(done) = tasks.join_next().await {
        let (id, sent, acked, ok) = done.expect("a click task");
        acks.push(acked - sent);
        errors += usize::from(!ok);
        clicked.insert(
            netpol::policy_name(&id.parse::<RequestId>().expect("an id")),
            sent,
        );
    }
    watch
        .until(plan.patience, |seen| {
            clicked.keys().all(|name| seen.added.contains_key(name))
        })
        .await;
    let seen = watch.seen.lock().unwrap();
    let latency: Vec<Duration> = clicked
        .iter()
        .filter_map(|(name, sent)| {
            seen.added
                .get(name)
                .map(|at| at.saturating_duration_since(*sent))
        })
        .collect();
    let refused_after = bench
        .tap
        .lock()
        .unwrap()
        .calls
        .get("respond:approve")
        .copied();
    ApproveReport {
        clicks: ids.len(),
        rate: plan.click_rate,
        present: latency.len(),
        latency: Percentiles::of(latency),
        click_ack: Percentiles::of(acks),
        errors,
        refusals: refused_after.unwrap_or(0) - refused_before.unwrap_or(0),
        watch_problems: seen.problems.clone(),
    }
}

// ---------------------------------------------------------------------------------
// 3. Revocation lag with many active grants.

/// Writes active grants the way the use cases do.
struct Grants {
    store: RedisStore,
    enforcer: KubeEnforcer,
    catalog: Arc<Catalog>,
    namespace: Namespace,
}

impl Grants {
    /// A Pending request of Alice's for `orders-db`, made now, for two hours.
    fn template(&self) -> AccessRequest {
        let target = self.catalog.target("orders-db").expect("the bench target");
        let alice = self
            .catalog
            .requester(&user(ALICE))
            .expect("the bench requester");
        AccessRequest::new(
            NewRequest {
                id: RequestId::from_random(rand::random()),
                requester: user(ALICE),
                target: target.name.clone(),
                scope: Scope::of(target),
                source: alice.resolve_source(None).expect("Alice's address"),
                duration: Ttl::from_hours(2),
                reason: Reason::new("INC-4411 replica lag", 0).expect("a valid reason"),
                approval_timeout: self.catalog.limits.approval_timeout,
                expiry_warning: self.catalog.limits.expiry_warning,
            },
            Utc::now(),
        )
    }

    /// One grant, as `submit` then `decide` write it: created Pending, approved, the
    /// policy applied, then Active until `expires_at`.
    async fn one(&self, base: &AccessRequest, expires_at: DateTime<Utc>) -> RequestId {
        let now = Utc::now();
        let mut req = base.clone();
        req.id = RequestId::from_random(rand::random());
        req.created_at = now;
        req.approval_deadline = now + self.catalog.limits.approval_timeout.as_delta();
        let requested = AuditEvent {
            request_id: req.id.clone(),
            kind: AuditKind::Requested,
            at: now,
            actor: Some(req.requester.clone()),
            from: None,
            to: Some(State::Pending),
            detail: format!("{} for {} from {}", req.duration, req.target, req.source),
        };
        self.store.create(&req, &requested).await.expect("create");
        let lead = Actor {
            user: user(LEAD1),
            is_approver: true,
            is_admin: false,
        };
        let approved = request::apply(&req, &Event::Approve { by: lead }, now).expect("approve");
        let audit = AuditEvent::of(&approved, Some(&user(LEAD1)), now, "approved by the bench");
        self.store
            .transition(&approved, &audit)
            .await
            .expect("approved");
        req = approved.request;
        self.enforcer
            .apply(&netpol::render(&req, expires_at))
            .await
            .expect("server-side apply");
        let applied = request::apply(&req, &Event::Applied { expires_at }, now).expect("applied");
        let audit = AuditEvent::of(&applied, None, now, "NetworkPolicy applied by the bench");
        self.store
            .transition(&applied, &audit)
            .await
            .expect("active");
        req.id
    }

    /// One `reconcile_once`, by the app built on this store and cluster (Slack left
    /// out): (policies seen, wall time).
    async fn reconcile_once(&self) -> Option<(usize, Duration)> {
        let app = App::new(
            self.catalog.clone(),
            Ports {
                store: Arc::new(self.store.clone()),
                enforcer: Arc::new(self.enforcer.clone()),
                notifier: fakes::RecordingNotifier::new(),
                directory: Arc::new(fakes::StaticDirectory::default()),
                clock: Arc::new(SystemClock),
            },
            AppConfig::default(),
        );
        let started = Instant::now();
        match app.reconcile_once(Utc::now()).await {
            Ok(report) => Some((report.seen, started.elapsed())),
            Err(e) => {
                println!("step 3: reconcile_once failed: {e}");
                None
            }
        }
    }

    /// `count` grants, [`POPULATE_TASKS`] at a time; `expires_at(i)` for the i-th.
    async fn many(
        self: &Arc<Self>,
        count: usize,
        expires_at: impl Fn(usize) -> DateTime<Utc> + Send + Sync + 'static,
    ) -> Vec<(RequestId, DateTime<Utc>)> {
        let base = Arc::new(self.template());
        let expires_at = Arc::new(expires_at);
        let mut tasks = JoinSet::new();
        for task in 0..POPULATE_TASKS {
            let (grants, base, expires_at) = (self.clone(), base.clone(), expires_at.clone());
            tasks.spawn(async move {
                let mut ids = Vec::new();
                for i in (task..count).step_by(POPULATE_TASKS) {
                    let at = expires_at(i);
                    ids.push((grants.one(&base, at).await, at));
                }
                ids
            });
        }
        let mut ids = Vec::with_capacity(count);
        while let Some(done) = tasks.join_next().await {
            ids.extend(done.expect("a populate task"));
        }
        ids
    }
}

/// One cohort's deletes, in seconds after its expiry.
struct Cohort {
    deleted: usize,
    lag: Percentiles,
    /// The first delete after the expiry (the sweep's phase, mostly).
    first: Duration,
    /// From the first delete to the last.
    spread: Duration,
}

impl Cohort {
    /// Deletes per second from the first to the last.
    fn rate(&self) -> f64 {
        if self.spread > Duration::ZERO {
            (self.deleted - 1) as f64 / self.spread.as_secs_f64()
        } else {
            0.0
        }
    }
}

struct RevocationReport {
    active: usize,
    due: usize,
    populate: Duration,
    /// Every cohort was written completely before its expiry.
    in_time: bool,
    cohorts: Vec<Cohort>,
    /// All cohorts together.
    pooled: Percentiles,
    /// Policies deleted that were not due.
    wrongly_deleted: usize,
    /// Deletes done by the reconciler rather than the sweep.
    by_reconciler: usize,
    /// jitbot's own `revocation_lag_seconds`: count and mean.
    own_metric: Option<(f64, f64)>,
    /// Peak resident memory of jitbot while the grants were written and swept.
    rss_peak: u64,
    /// One `reconcile_once` over the grants left, run here on the same store and
    /// cluster: (policies seen, wall time).
    reconcile: Option<(usize, Duration)>,
    watch_problems: Vec<String>,
}

async fn revocation_lag(plan: &Plan, bench: &Bench, grants: &Arc<Grants>) -> RevocationReport {
    let rss = RssSampler::start(bench.jitbot.pid, SAMPLE_EVERY);
    let started = Instant::now();
    // The grants that stay: they expire 90 minutes or more from now.
    let later = Utc::now() + TimeDelta::minutes(90);
    let due = plan.due * plan.cohorts;
    let rest = plan.grants - due;
    grants
        .many(rest, move |i| {
            later + TimeDelta::milliseconds(i as i64 * 100)
        })
        .await;
    // The cohorts: each expires at one whole millisecond, the first once they are all
    // written, the next ones COHORT_GAP apart, so the sweep meets each at another
    // point of its interval.
    let per_grant = started.elapsed().as_secs_f64() / rest.max(1) as f64;
    let margin = Duration::from_secs_f64(per_grant * due as f64 * 1.5 + 5.0);
    let first = Utc::now() + TimeDelta::from_std(margin).expect("a small margin");
    let first = DateTime::from_timestamp_millis(first.timestamp_millis()).expect("an instant");
    let expiries: Vec<DateTime<Utc>> = (0..plan.cohorts)
        .map(|c| first + TimeDelta::from_std(COHORT_GAP * c as u32).expect("a gap"))
        .collect();
    let cohorts = plan.cohorts;
    let of_cohort = {
        let expiries = expiries.clone();
        move |i: usize| expiries[i % cohorts]
    };
    let written = grants.many(due, of_cohort).await;
    let populate = started.elapsed();
    let in_time = Utc::now() < first;
    // The policy names of each cohort.
    let mut members: Vec<HashSet<String>> = vec![HashSet::new(); cohorts];
    for (id, at) in &written {
        let c = expiries.iter().position(|e| e == at).expect("a cohort");
        members[c].insert(netpol::policy_name(id));
    }
    let reconciled_before = bench.jitbot.count_log("reconciler removed a policy");

    let watch = Watch::start(&bench.kube, &grants.namespace).await;
    let last = *expiries.last().expect("a cohort");
    let until_last = (last - Utc::now()).to_std().unwrap_or_default();
    watch
        .until(until_last + plan.patience, |seen| {
            members
                .iter()
                .flatten()
                .all(|name| seen.deleted.contains_key(name))
        })
        .await;
    // A little longer, to catch a wrong delete right after the last cohort.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_peak = rss.stop();
    let (results, pooled, wrongly_deleted, watch_problems) = {
        let seen = watch.seen.lock().unwrap();
        let mut pooled = Vec::new();
        let results: Vec<Cohort> = members
            .iter()
            .zip(&expiries)
            .map(|(names, expiry)| {
                let deletes: Vec<DateTime<Utc>> = names
                    .iter()
                    .filter_map(|name| seen.deleted.get(name).copied())
                    .collect();
                let after = |at: DateTime<Utc>| (at - *expiry).to_std().unwrap_or_default();
                let lag: Vec<Duration> = deletes.iter().map(|at| after(*at)).collect();
                pooled.extend(lag.iter().copied());
                let (a, b) = (deletes.iter().min(), deletes.iter().max());
                Cohort {
                    deleted: deletes.len(),
                    lag: Percentiles::of(lag),
                    first: a.map(|a| after(*a)).unwrap_or_default(),
                    spread: match (a, b) {
                        (Some(a), Some(b)) => (*b - *a).to_std().unwrap_or_default(),
                        _ => Duration::ZERO,
                    },
                }
            })
            .collect();
        let due: HashSet<&String> = members.iter().flatten().collect();
        let wrong = seen.deleted.keys().filter(|n| !due.contains(n)).count();
        (
            results,
            Percentiles::of(pooled),
            wrong,
            seen.problems.clone(),
        )
    };
    drop(watch);
    let by_reconciler = bench.jitbot.count_log("reconciler removed a policy") - reconciled_before;
    let own_metric = own_revocation_metric(bench).await;
    let reconcile = grants.reconcile_once().await;
    RevocationReport {
        active: plan.grants,
        due: plan.due,
        populate,
        in_time,
        cohorts: results,
        pooled,
        wrongly_deleted,
        by_reconciler,
        own_metric,
        rss_peak,
        reconcile,
        watch_problems,
    }
}

/// jitbot's `revocation_lag_seconds` histogram: (count, mean seconds).
async fn own_revocation_metric(bench: &Bench) -> Option<(f64, f64)> {
    let text = bench
        .http
        .get(format!("{}/metrics", bench.jitbot.base))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
    };
    let count = value("jitbot_revocation_lag_seconds_count")?;
    let sum = value("jitbot_revocation_lag_seconds_sum")?;
    (count > 0.0).then(|| (count, sum / count))
}

// ---------------------------------------------------------------------------------
// Figures.

#[derive(Clone, Copy, Default)]
struct Percentiles {
    n: usize,
    p50: Duration,
    p90: Duration,
    p99: Duration,
    max: Duration,
}

impl Percentiles {
    fn of(mut v: Vec<Duration>) -> Self {
        if v.is_empty() {
            return Percentiles::default();
        }
        v.sort();
        let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
        Percentiles {
            n: v.len(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: v[v.len() - 1],
        }
    }

    fn ms(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        format!(
            "{:>8.2} {:>8.2} {:>8.2} {:>9.2}",
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.max)
        )
    }

    fn secs(&self) -> String {
        let s = |d: Duration| d.as_secs_f64();
        format!(
            "{:>8.2} {:>8.2} {:>8.2} {:>9.2}",
            s(self.p50),
            s(self.p90),
            s(self.p99),
            s(self.max)
        )
    }
}

struct Memories {
    idle: Memory,
    load_peak: u64,
    load_hwm: u64,
    drained: Memory,
    with_grants: Memory,
}

fn report(
    plan: &Plan,
    redis: &RedisServer,
    acks: &AckReport,
    approvals: &ApproveReport,
    revocation: &RevocationReport,
    memory: Memories,
) {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "optimized"
    };
    let redis_version: String = ::redis::cmd("INFO")
        .arg("server")
        .query::<String>(&mut redis.admin())
        .ok()
        .and_then(|i| {
            i.lines()
                .find_map(|l| l.strip_prefix("redis_version:").map(str::to_owned))
        })
        .unwrap_or_default();
    println!(
        "\njitbot serve end to end: {cpus} CPUs, {build} build; the `jitbot serve` binary, \
         redis-server {} (no persistence), kube-apiserver v1.20.2 + etcd, fake Slack; all on loopback",
        redis_version.trim()
    );

    println!(
        "\n1. /jit request ack (signed POST /slack/commands), open loop at {}/s for {} s after {} s of warm-up; ms",
        plan.rate,
        plan.load.as_secs(),
        plan.warmup.as_secs()
    );
    println!(
        "{:<16} {:>9} {:>7} {:>8} {:>8} {:>8} {:>9}",
        "", "achieved", "errors", "p50", "p90", "p99", "max"
    );
    let errors: usize = acks.errors.values().sum();
    println!(
        "{:<16} {:>7.1}/s {:>7} {}",
        "send → response",
        acks.achieved,
        errors,
        acks.latency.ms()
    );
    println!(
        "{:<16} {:>9} {:>7} {}",
        "from schedule",
        "",
        "",
        acks.from_schedule.ms()
    );
    println!(
        "({} requests; the generator sent at most {:.2} ms late)",
        acks.sent,
        acks.late_max.as_secs_f64() * 1e3
    );
    for (e, n) in &acks.errors {
        println!("  error × {n}: {e}");
    }
    let (cores, machine) = &acks.cpu;
    let cores: Vec<String> = cores
        .iter()
        .map(|(name, c)| format!("{name} {c:.2}"))
        .collect();
    println!(
        "CPU during the load, in cores: {}; machine {machine:.2} of {cpus}",
        cores.join(", ")
    );
    println!(
        "approval cards: {:.0}/s during the load; {} of {} posted when it ended; {}; {:.0} cards/s while draining",
        acks.card_rate_under_load,
        acks.cards_at_end,
        acks.requested,
        match acks.drained_after {
            Some(d) => format!("the last {:.1} s after it", d.as_secs_f64()),
            None => format!("not all within {} s", plan.patience.as_secs()),
        },
        acks.card_rate
    );
    println!(
        "ack → approval card, s:   p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}  ({} cards)",
        acks.card_latency.p50.as_secs_f64(),
        acks.card_latency.p90.as_secs_f64(),
        acks.card_latency.p99.as_secs_f64(),
        acks.card_latency.max.as_secs_f64(),
        acks.card_latency.n
    );

    println!(
        "\n2. Approve click (signed POST /slack/interactions) → NetworkPolicy ADDED on a watch; {} clicks at {}/s; ms",
        approvals.clicks, approvals.rate
    );
    println!(
        "{:<16} {:>9} {:>7} {:>8} {:>8} {:>8} {:>9}",
        "", "present", "errors", "p50", "p90", "p99", "max"
    );
    println!(
        "{:<16} {:>9} {:>7} {}",
        "click → ADDED",
        format!("{}/{}", approvals.present, approvals.clicks),
        approvals.errors + approvals.refusals,
        approvals.latency.ms()
    );
    println!(
        "{:<16} {:>9} {:>7} {}",
        "click ack",
        "",
        approvals.errors,
        approvals.click_ack.ms()
    );
    for p in approvals.watch_problems.iter().take(3) {
        println!("  watch: {p}");
    }

    println!(
        "\n3. Revocation lag: {} active grants; {} cohorts of {} expire, each at one instant, {:.1} s apart; \
         the sweep loop runs every {} s (default); s from expires_at to DELETED on a watch",
        revocation.active,
        revocation.cohorts.len(),
        revocation.due,
        COHORT_GAP.as_secs_f64(),
        Settings::default().worker.sweep_interval.as_secs()
    );
    println!(
        "{:<16} {:>9} {:>8} {:>8} {:>8} {:>9} {:>11} {:>9}",
        "", "deleted", "p50", "p90", "p99", "max", "1st delete", "deletes/s"
    );
    for (i, c) in revocation.cohorts.iter().enumerate() {
        println!(
            "{:<16} {:>9} {} {:>11.2} {:>9.0}",
            format!("cohort {}", i + 1),
            format!("{}/{}", c.deleted, revocation.due),
            c.lag.secs(),
            c.first.as_secs_f64(),
            c.rate()
        );
    }
    println!(
        "{:<16} {:>9} {}",
        "all cohorts",
        format!(
            "{}/{}",
            revocation.pooled.n,
            revocation.due * revocation.cohorts.len()
        ),
        revocation.pooled.secs()
    );
    println!(
        "policies deleted that were not due: {}; deleted by the reconciler: {}",
        revocation.wrongly_deleted, revocation.by_reconciler
    );
    if let Some((count, mean)) = revocation.own_metric {
        println!("jitbot's own revocation_lag_seconds: {count:.0} observations, mean {mean:.2} s");
    }
    println!(
        "populate: {} grants (3 store scripts + 1 server-side apply each, {POPULATE_TASKS} at a time) in {:.1} s: {:.0} grants/s{}",
        revocation.active,
        revocation.populate.as_secs_f64(),
        revocation.active as f64 / revocation.populate.as_secs_f64(),
        if revocation.in_time {
            ""
        } else {
            "; a cohort was NOT all written before its expiry"
        }
    );
    if let Some((seen, took)) = revocation.reconcile {
        println!(
            "reconcile_once over {seen} managed policies (the app on the same store and cluster, in the bench): {:.2} s",
            took.as_secs_f64()
        );
    }
    for p in revocation.watch_problems.iter().take(3) {
        println!("  watch: {p}");
    }

    println!("\n4. Resident memory of the jitbot process, MiB");
    println!("{:<34} {:>8} {:>8}", "", "VmRSS", "VmHWM");
    println!(
        "{:<34} {:>8.1} {:>8.1}",
        "idle (started, ready)",
        mib(memory.idle.rss_kib),
        mib(memory.idle.hwm_kib)
    );
    println!(
        "{:<34} {:>8.1} {:>8.1}",
        format!("under {}/s (peak sampled; HWM)", plan.rate),
        mib(memory.load_peak),
        mib(memory.load_hwm)
    );
    println!(
        "{:<34} {:>8.1} {:>8.1}",
        "after the Slack backlog drained",
        mib(memory.drained.rss_kib),
        mib(memory.drained.hwm_kib)
    );
    println!(
        "{:<34} {:>8.1} {:>8}",
        format!("writing and sweeping {} grants", revocation.active),
        mib(revocation.rss_peak),
        ""
    );
    println!(
        "{:<34} {:>8.1} {:>8.1}",
        format!(
            "after ({} of them still active)",
            revocation.active - revocation.due * revocation.cohorts.len()
        ),
        mib(memory.with_grants.rss_kib),
        mib(memory.with_grants.hwm_kib)
    );
}
