//! End-to-end figures for `jitbot serve`: `cargo bench --bench serve` (about five
//! minutes once built; `cargo bench --bench serve -- --quick`, about a minute, for a
//! short run that checks the bench itself works).
//!
//! The real binary runs as a child process, configured as an operator would (a config
//! file, secrets in the environment, the cluster from `KUBECONFIG`), against a real
//! redis-server, the real kube-apiserver v1.20.2 + etcd of the test support (etcd's
//! data in memory, as the test support keeps it, so the shared disk's sync stalls do
//! not pass for jitbot's latency), and the test support's fake Slack, all on loopback. Its workers run with their default
//! settings. This process drives it the way Slack would: signed slash commands and
//! button clicks over a keep-alive HTTP client.
//!
//! 1. Ack latency of a signed `/jit request` at a steady rate, open loop: requests
//!    leave on a fixed schedule whatever the answers do; latency is send → response.
//!    Also the approval cards: how far behind the requests the Slack notifier posts
//!    them.
//! 2. Approve click → the grant's NetworkPolicy ADDED event on a watch of the API
//!    server, clicks paced.
//! 3. Revocation lag with 10k active grants in the store and the cluster, from
//!    `expires_at` to the policy's DELETED event on a watch, signed (a policy deleted
//!    before its expiry counts as negative, never as zero): a steady stream of grants
//!    expiring every second, single grants with nothing else expiring near them,
//!    cohorts of 1k expiring at one instant each, and grants expiring while the
//!    redis-server is frozen (SIGSTOP), after which the store must show them Expired.
//!    Beside it the cluster's floor: a plain kube client deleting as many unmanaged
//!    policies as a cohort, at a few concurrencies, and the goals set against it.
//!    jitbot's resident memory with the grants tracked, per grant. Then one
//!    `reconcile_once` over what is left, timed. (Details in `support/expiry.rs`.)
//! 4. Resident memory of the jitbot process (`/proc/<pid>/status`): idle, under load,
//!    after, and after step 3.
//! 5. Acks in a closed loop: `/jit request` and `/jit help`, one client on one
//!    connection (latency) and sixteen at once (throughput). (`support/closed_loop.rs`)
//! 6. The same acks over Socket Mode, beside step 5's: a second replica with
//!    `slack.mode = "socket"`, driven through the fake Slack's WebSocket.
//!    (`support/socket_mode.rs`)
//!
//! Everything shares the machine: the CPU each process used during step 1 is shown,
//! so a saturated machine is visible in the figures.
//!
//! `cargo test --all-targets` runs this binary without `--bench`; it then only says
//! how to run it.

#[path = "support/closed_loop.rs"]
mod closed_loop;
#[path = "../tests/support/config_file.rs"]
mod config_file;
#[path = "support/expiry.rs"]
mod expiry;
#[path = "../tests/support/fake_slack.rs"]
#[allow(dead_code)] // the bench uses only part of the fake
mod fake_slack;
#[path = "../tests/support/fakes.rs"]
#[allow(dead_code)] // slack_world needs it; the bench uses little of it
mod fakes;
#[path = "support/fan_out.rs"]
mod fan_out;
#[path = "../tests/support/kube.rs"]
#[allow(dead_code)] // nor does it make pods or other clients
mod kube_server;
#[path = "support/process.rs"]
mod process;
#[path = "../tests/support/redis.rs"]
#[allow(dead_code)] // it freezes the server, but neither crashes nor clusters it
mod redis_server;
#[path = "support/slack_tap.rs"]
mod slack_tap;
#[path = "../tests/support/slack_world.rs"]
#[allow(dead_code)] // only the request bodies and the constants
mod slack_world;
#[path = "support/socket_mode.rs"]
mod socket_mode;
#[path = "support/watch.rs"]
mod watch;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::task::JoinSet;

use jitbot::adapters::http::signature::SignedHeaders;
use jitbot::adapters::http::slack_request::FORM_CONTENT_TYPE;
use jitbot::adapters::kube::{KubeEnforcer, KubeSettings};
use jitbot::adapters::redis::{RedisSettings, RedisStore, StateKey};
use jitbot::app::ManualClock;
use jitbot::core::actions::APPROVE;
use jitbot::core::ids::{Namespace, RequestId};
use jitbot::core::netpol;
use jitbot::settings::{Secret, Settings};

/// `jitbot serve`'s JITBOT_STATE_KEY here, which the bench's own store seals with too.
const STATE_KEY: &str = "bench-state-key-0123456789abcdef0123456789";

fn state_key() -> StateKey {
    StateKey::new(Secret::new(STATE_KEY), None).expect("a long enough key")
}

use config_file::target_table;
use fake_slack::FakeSlack;
use fakes::{ALICE, LEAD1, t0};
use process::{CpuWindow, Jitbot, Memory, RssSampler, mib};
use redis_server::RedisServer;
use slack_tap::Tap;
use slack_world::{APPROVALS, AUDIT, InboundSlack, SECRET, TOKEN};
use watch::Watch;

/// How often the Slack tap and the memory sampler look.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// How big a run is.
struct Plan {
    /// Step 1: requests per second, after a warm-up at the same rate.
    rate: u32,
    warmup: Duration,
    load: Duration,
    /// Step 2: approvals, clicked at `click_rate` per second.
    approvals: usize,
    click_rate: u32,
    /// Step 3.
    expiry: expiry::Plan,
    /// Step 5.
    closed: closed_loop::Plan,
    /// Step 6.
    socket: socket_mode::Plan,
    /// Longest wait for Slack's backlog or the policies.
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
                expiry: expiry::Plan {
                    grants: 500,
                    stream_per_sec: 4,
                    stream_secs: 5,
                    singles: 3,
                    single_gap: 2,
                    cohorts: 2,
                    cohort: 100,
                    cohort_gap: 5,
                    outage: 5,
                    outage_secs: 3,
                    outage_hold: Duration::from_secs(8),
                    recover: Duration::from_secs(15),
                    concurrencies: &[8, 32],
                    patience: Duration::from_secs(30),
                },
                closed: closed_loop::Plan {
                    sequential: 200,
                    clients: 16,
                    requests: 500,
                    helps: 2_000,
                },
                socket: socket_mode::Plan {
                    sequential: 200,
                    clients: 16,
                    requests: 500,
                    helps: 2_000,
                },
                patience: Duration::from_secs(60),
            }
        } else {
            Plan {
                rate: 500,
                warmup: Duration::from_secs(3),
                load: Duration::from_secs(20),
                approvals: 200,
                click_rate: 20,
                expiry: expiry::Plan {
                    grants: 10_000,
                    stream_per_sec: 20,
                    stream_secs: 60,
                    singles: 10,
                    single_gap: 3,
                    cohorts: 3,
                    cohort: 1_000,
                    cohort_gap: 15,
                    outage: 20,
                    outage_secs: 10,
                    outage_hold: Duration::from_secs(20),
                    recover: Duration::from_secs(90),
                    concurrencies: &[8, 16, 32, 64],
                    patience: Duration::from_secs(60),
                },
                closed: closed_loop::Plan {
                    sequential: 2_000,
                    clients: 16,
                    requests: 5_000,
                    helps: 40_000,
                },
                socket: socket_mode::Plan {
                    sequential: 2_000,
                    clients: 16,
                    requests: 5_000,
                    helps: 40_000,
                },
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
    let floor_namespace = cluster.another_namespace("floor").await;
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
    let env = [
        ("KUBECONFIG", apiserver.kubeconfig.display().to_string()),
        ("SLACK_BOT_TOKEN", TOKEN.to_owned()),
        ("SLACK_SIGNING_SECRET", SECRET.to_owned()),
        ("REDIS_URL", redis.url()),
        ("JITBOT_STATE_KEY", STATE_KEY.to_owned()),
    ];
    let jitbot = Jitbot::start(
        Path::new(env!("CARGO_BIN_EXE_jitbot")),
        &config,
        &env,
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
            state_key: Some(state_key()),
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
    let grants = Arc::new(expiry::Grants {
        store,
        enforcer,
        catalog: Arc::new(catalog),
        namespace: grants_namespace,
    });
    let revocation = expiry::run(&plan.expiry, &bench, &grants, redis, &floor_namespace).await;
    let after_expiry = bench.jitbot.memory();
    let closed = closed_loop::run(&plan.closed, &bench, plan.patience).await;
    // Another replica, in Socket Mode: same config, store and cluster.
    let socket = socket_mode::run(&plan.socket, &slack, || {
        let mut env = env.to_vec();
        env.push(("SLACK_APP_TOKEN", slack.app_token()));
        env.push(("JITBOT__SLACK__MODE", "socket".to_owned()));
        Jitbot::start(
            Path::new(env!("CARGO_BIN_EXE_jitbot")),
            &config,
            &env,
            dir.path().join("jitbot-socket.log"),
        )
    })
    .await;

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
            after_expiry,
        },
    );
    closed_loop::print(&closed);
    socket_mode::print(&socket, &closed);
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
/// its expiry. The floor's namespace is in no target. Every request comes from Alice,
/// so the caps on one person's requests are off.
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
metrics_listen = "127.0.0.1:0"
drain_delay = "0s"
[access]
expiry_warning = "0s"
max_pending_per_requester = 0
max_requests_per_hour = 0
[slack]
api_url = "{api_url}"
audit_channel = "{AUDIT}"
[store]
key_prefix = "{prefix}"
[log]
format = "json"
level = "info"
{payments}{orders}
[[requesters]]
slack_user = "{ALICE}"
name = "alice"
source.addresses = ["10.8.0.14"]
"#,
        payments = target_table("payments-db", requests_ns.as_str(), "postgres"),
        orders = target_table("orders-db", grants_ns.as_str(), "orders-db"),
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

/// Posts `body` to `url`, signed now as Slack signs (the binary runs on the wall
/// clock); the status and the body.
async fn post_signed(
    http: &reqwest::Client,
    url: &str,
    body: String,
) -> Result<(u16, String), String> {
    let signed = SignedHeaders::sign(SECRET, Utc::now(), body.as_bytes());
    let mut req = http.post(url).header("content-type", FORM_CONTENT_TYPE);
    for (name, value) in signed.pairs() {
        req = req.header(name, value);
    }
    let res = req
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
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    let mut tasks = JoinSet::new();
    for i in 0..count {
        // A body of its own (its own trigger_id), as each command Slack sends has.
        let body = bench
            .inbound
            .command_body(ALICE, "request payments-db 30m INC-4411 replica lag");
        let due = start + period.mul_f64(i as f64);
        tokio::time::sleep_until(due).await;
        let (http, url) = (bench.http.clone(), url.clone());
        tasks.spawn(async move {
            let sent = Instant::now();
            let answer = post_signed(&http, &url, body).await;
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
    /// Requests sent per second (the generator's rate, first send to last send).
    send_rate: f64,
    /// Requests answered with a request id per second, first send to last answer.
    completed: f64,
    latency: Percentiles,
    /// Latency counted from the scheduled send time (no coordinated omission).
    from_schedule: Percentiles,
    /// Latest a request left after its scheduled time, s (negative: early).
    late_max: f64,
    errors: HashMap<String, usize>,
    cpu: (Vec<(String, f64)>, f64),
    rss_peak: u64,
    hwm_after_load: u64,
    after_drain: Memory,
    /// The card figures count only the measured requests, not the warm-up's.
    /// Approval cards posted by the end of the load, of those requested.
    cards_at_end: usize,
    requested: usize,
    /// From the end of the load until the last card was posted, s (negative: before).
    drained_after: Option<f64>,
    /// From the ack to the approval card (negative: the card came first).
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

    // The warm-up's requests still queue cards ahead of the measured ones, but only
    // the measured requests' cards are counted.
    drop(warmup);
    let ids: Vec<String> = samples
        .iter()
        .filter_map(|s| s.id.as_ref().ok().cloned())
        .collect();
    let cards_at_end = bench.cards_for(&ids);
    let waited = bench.wait_for_cards(&ids, plan.patience).await;
    let last_card = {
        let tap = bench.tap.lock().unwrap();
        ids.iter().filter_map(|id| tap.cards.get(id)).max().copied()
    };
    let drained_after = waited.and(last_card.map(|at| signed_secs(at, load_ended)));
    let after_drain = bench.jitbot.memory();

    let acked: HashMap<&str, Instant> = samples
        .iter()
        .filter_map(|s| s.id.as_ref().ok().map(|id| (id.as_str(), s.done)))
        .collect();
    let (card_latency, card_rate, card_rate_under_load) = {
        let tap = bench.tap.lock().unwrap();
        let lat: Vec<f64> = acked
            .iter()
            .filter_map(|(id, acked)| tap.cards.get(*id).map(|at| signed_secs(*at, *acked)))
            .collect();
        let cards: Vec<Instant> = ids
            .iter()
            .filter_map(|id| tap.cards.get(id))
            .copied()
            .collect();
        let after: Vec<Instant> = cards
            .iter()
            .filter(|at| **at >= load_ended)
            .copied()
            .collect();
        let rate = match (after.iter().min(), after.iter().max()) {
            (Some(first), Some(last)) if last > first => {
                (after.len() - 1) as f64 / last.duration_since(*first).as_secs_f64()
            }
            _ => 0.0,
        };
        let under_load = cards
            .iter()
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
    let first_sent = samples.iter().map(|s| s.sent).min();
    let last_sent = samples.iter().map(|s| s.sent).max();
    let last_done = samples.iter().map(|s| s.done).max();
    let per_sec = |n: usize, from: Option<Instant>, to: Option<Instant>| match (from, to) {
        (Some(a), Some(b)) if b > a => n as f64 / (b - a).as_secs_f64(),
        _ => 0.0,
    };
    AckReport {
        sent: samples.len(),
        send_rate: per_sec(samples.len().saturating_sub(1), first_sent, last_sent),
        completed: per_sec(ids.len(), first_sent, last_done),
        latency: Percentiles::of_durations(samples.iter().map(|s| s.done - s.sent)),
        from_schedule: Percentiles::of_durations(samples.iter().map(|s| s.done - s.due)),
        late_max: samples
            .iter()
            .map(|s| signed_secs(s.sent, s.due))
            .fold(f64::MIN, f64::max),
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
    let mut ids = Vec::with_capacity(plan.approvals);
    for _ in 0..plan.approvals {
        let body = bench
            .inbound
            .command_body(ALICE, "request payments-db 30m INC-4411 replica lag");
        let id =
            request_id(post_signed(&bench.http, &url, body).await).expect("a request for step 2");
        ids.push(id);
    }
    // Approvers click on cards they see.
    if bench.wait_for_cards(&ids, plan.patience).await.is_none() {
        println!("step 2: not every approval card arrived; clicking anyway");
    }
    // Clicks answered with why they changed nothing, so far.
    let refused = || {
        let tap = bench.tap.lock().unwrap();
        tap.calls.get("respond:approve").copied()
    };
    let refused_before = refused();

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
    let latency: Vec<f64> = clicked
        .iter()
        .filter_map(|(name, sent)| seen.added.get(name).map(|at| signed_secs(*at, *sent)))
        .collect();
    let refused_after = refused();
    ApproveReport {
        clicks: ids.len(),
        rate: plan.click_rate,
        present: latency.len(),
        latency: Percentiles::of(latency),
        click_ack: Percentiles::of_durations(acks),
        errors,
        refusals: refused_after.unwrap_or(0) - refused_before.unwrap_or(0),
        watch_problems: seen.problems.clone(),
    }
}

// ---------------------------------------------------------------------------------
// Figures.

/// Percentiles of signed seconds: nothing is clamped, so a lag that came out
/// negative (an effect seen before its cause was sent) stays negative and is counted.
#[derive(Clone, Copy, Default)]
struct Percentiles {
    n: usize,
    min: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    negative: usize,
}

impl Percentiles {
    fn of(mut v: Vec<f64>) -> Self {
        if v.is_empty() {
            return Percentiles::default();
        }
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
        Percentiles {
            n: v.len(),
            min: v[0],
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: v[v.len() - 1],
            negative: v.iter().filter(|x| **x < 0.0).count(),
        }
    }

    fn of_durations(v: impl IntoIterator<Item = Duration>) -> Self {
        Self::of(v.into_iter().map(|d| d.as_secs_f64()).collect())
    }

    fn ms(&self) -> String {
        format!(
            "{:>8.2} {:>8.2} {:>8.2} {:>9.2}",
            self.p50 * 1e3,
            self.p90 * 1e3,
            self.p99 * 1e3,
            self.max * 1e3
        )
    }

    /// ", N negative" when there are any.
    fn negatives(&self) -> String {
        if self.negative > 0 {
            format!(", {} NEGATIVE (min {:.3} s)", self.negative, self.min)
        } else {
            String::new()
        }
    }
}

/// `later − earlier` in seconds; negative when `later` came first.
fn signed_secs(later: Instant, earlier: Instant) -> f64 {
    if later >= earlier {
        (later - earlier).as_secs_f64()
    } else {
        -(earlier - later).as_secs_f64()
    }
}

struct Memories {
    idle: Memory,
    load_peak: u64,
    load_hwm: u64,
    drained: Memory,
    after_expiry: Memory,
}

fn report(
    plan: &Plan,
    redis: &RedisServer,
    acks: &AckReport,
    approvals: &ApproveReport,
    revocation: &expiry::Report,
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
         redis-server {} (no persistence), kube-apiserver v1.20.2 + etcd (data under {}), fake Slack; all on loopback",
        redis_version.trim(),
        kube_server::state_dir().display()
    );

    println!(
        "\n1. /jit request ack (signed POST /slack/commands), open loop at {}/s for {} s after {} s of warm-up \
         (not counted); ms",
        plan.rate,
        plan.load.as_secs(),
        plan.warmup.as_secs()
    );
    println!(
        "{:<16} {:>9} {:>9} {:>7} {:>8} {:>8} {:>8} {:>9}",
        "", "sent", "answered", "errors", "p50", "p90", "p99", "max"
    );
    let errors: usize = acks.errors.values().sum();
    println!(
        "{:<16} {:>7.1}/s {:>7.1}/s {:>7} {}",
        "send → response",
        acks.send_rate,
        acks.completed,
        errors,
        acks.latency.ms()
    );
    println!(
        "{:<16} {:>9} {:>9} {:>7} {}",
        "from schedule",
        "",
        "",
        "",
        acks.from_schedule.ms()
    );
    println!(
        "({} requests; sent = the generator's rate, answered = requests answered with a request id \
         per second, first send to last answer; the generator sent at most {:.2} ms late)",
        acks.sent,
        acks.late_max * 1e3
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
        "approval cards of the measured requests: {:.0}/s during the load; {} of {} posted when it ended; {}; \
         {:.0} cards/s while draining",
        acks.card_rate_under_load,
        acks.cards_at_end,
        acks.requested,
        match acks.drained_after {
            Some(d) => format!("the last {d:.1} s after it"),
            None => format!("not all within {} s", plan.patience.as_secs()),
        },
        acks.card_rate
    );
    println!(
        "ack → approval card, s:   p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}  ({} cards{})",
        acks.card_latency.p50,
        acks.card_latency.p90,
        acks.card_latency.p99,
        acks.card_latency.max,
        acks.card_latency.n,
        acks.card_latency.negatives()
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
        "{:<16} {:>9} {:>7} {}{}",
        "click → ADDED",
        format!("{}/{}", approvals.present, approvals.clicks),
        approvals.errors + approvals.refusals,
        approvals.latency.ms(),
        approvals.latency.negatives()
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

    expiry::print(&plan.expiry, revocation, memory.idle);

    println!("\n4. Resident memory of the jitbot process, MiB");
    println!("{:<34} {:>8} {:>8}", "", "VmRSS", "VmHWM");
    // What was measured, its VmRSS and (where one was read) its VmHWM.
    let row = |what: &str, rss_kib: u64, hwm_kib: Option<u64>| {
        let hwm = hwm_kib.map_or(String::new(), |kib| format!("{:.1}", mib(kib)));
        println!("{what:<34} {:>8.1} {hwm:>8}", mib(rss_kib));
    };
    let (idle, drained) = (memory.idle, memory.drained);
    row("idle (started, ready)", idle.rss_kib, Some(idle.hwm_kib));
    let under_load = format!("under {}/s (peak sampled; HWM)", plan.rate);
    row(&under_load, memory.load_peak, Some(memory.load_hwm));
    let backlog = "after the Slack backlog drained";
    row(backlog, drained.rss_kib, Some(drained.hwm_kib));
    let tracked = format!("with {} grants tracked", revocation.active);
    let with = revocation.rss_with;
    row(&tracked, with.rss_kib, Some(with.hwm_kib));
    let expiring = format!("writing and expiring {} grants", revocation.active);
    row(&expiring, revocation.rss_peak, None);
    let left = revocation.active - revocation.timed;
    let after = memory.after_expiry;
    row(
        &format!("after step 3 ({left} still active)"),
        after.rss_kib,
        Some(after.hwm_kib),
    );
}
