//! Figures for the Redis store on a real redis-server it starts itself, printed as a
//! small table: `cargo bench --bench store`.
//!
//! - `sweep_once` expiring 1k due grants among 10k and among 100k active ones (the
//!   median of five sweeps, each of its own 1k cohort): wall time, the time Redis
//!   spent on it, round trips and commands run inside Redis
//!   (from `INFO commandstats`). Claiming reads only what is due, so the Redis
//!   columns match whatever the number of active grants. The wall time is mostly
//!   round-trip latency on a machine the client and the server share, so it is the
//!   noisier figure.
//! - `claim_due` alone for 1k due timers among 10k and 100k.
//! - Memory per grant: its own keys (`MEMORY USAGE`) and `used_memory` growth per
//!   grant, which includes its share of the indexes, timers and audit stream.
//! - Submit + approve pairs per second through the use cases, with the cluster and
//!   Slack faked, one at a time and 16 at once.
//! - The Slack outbox without Slack: events appended (64 at once), then claimed a
//!   batch of 100 at a time and acknowledged one by one (16 at once), in events/s.
//! - Memory per finished request (`used_memory` growth per grant run from request to
//!   expiry), before and after retention removed it (see `support/retention.rs`).
//!
//! `cargo bench --bench store -- outbox` measures the outbox alone.

#[path = "../tests/support/fakes.rs"]
#[allow(dead_code)] // the bench uses only part of the test fakes
mod fakes;
#[path = "support/fan_out.rs"]
mod fan_out;
#[path = "../tests/support/redis.rs"]
#[allow(dead_code)] // nor does it stop, freeze or cluster the server
mod redis_server;
#[path = "support/redis_stats.rs"]
mod redis_stats;
#[path = "support/retention.rs"]
mod retention;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use tokio::task::JoinSet;

use jitbot::adapters::redis::{RedisSettings, RedisStore};
use jitbot::app::Decision;
use jitbot::core::ids::RequestId;
use jitbot::core::ports::{AuditEvent, Outbox, Store};
use jitbot::core::request::{self, AccessRequest, Actor, Event, Round, State};

use fakes::{ALICE, LEAD1, t0, user};
use fan_out::fan_out;
use redis_server::RedisServer;
use redis_stats::{Calls, RedisStats};

/// Grants written at once while populating; the store multiplexes them on one
/// connection, so this is how many scripts are in flight.
const POPULATE_TASKS: usize = 64;

/// How big a run is. `cargo bench` passes `--bench` and gets the real figures;
/// `cargo test --all-targets` runs this binary too, and gets a quick smoke run.
struct Plan {
    /// Active grants in each run; `due` of them expire at each `cohort_due`.
    active: [usize; 2],
    due: usize,
    /// Submit + approve pairs at 16 at once (a quarter of it one at a time).
    pairs: usize,
    /// Grants run from request to expiry for the memory per finished request.
    finished: usize,
}

impl Plan {
    fn from_args() -> Self {
        if std::env::args().any(|a| a == "--bench") {
            Plan {
                active: [10_000, 100_000],
                due: 1_000,
                pairs: 4_000,
                finished: 10_000,
            }
        } else {
            Plan {
                active: [500, 1_000],
                due: 50,
                pairs: 160,
                finished: 400,
            }
        }
    }
}

/// The instant the first due cohort expires; the second comes due ten minutes later,
/// every other grant an hour after that or later.
/// Cohorts of `due` grants that come due ten minutes apart: the first `SWEEPS` are
/// swept one by one (the median is shown), the last is claimed alone.
const SWEEPS: usize = 5;
const COHORTS: usize = SWEEPS + 1;

/// When cohort `c` is made: every grant lasts 30 minutes.
fn cohort_made(c: usize) -> DateTime<Utc> {
    t0() + TimeDelta::minutes(10 * c as i64)
}

fn cohort_due(c: usize) -> DateTime<Utc> {
    cohort_made(c) + TimeDelta::minutes(30)
}

/// A Pending request for Alice on payments-db, made at `at`, lasting 30 minutes.
fn template(at: DateTime<Utc>) -> AccessRequest {
    AccessRequest::test()
        .id(RequestId::from_random(rand::random()))
        .in_catalog(&fakes::catalog(), "payments-db", ALICE)
        .made_at(at)
        .build()
}

/// Writes one Active grant made at `at` the way the use cases do: create, approve,
/// applied (three scripts, three audit events).
async fn active_grant(store: &RedisStore, base: &AccessRequest, at: DateTime<Utc>) -> RequestId {
    let mut req = base.clone();
    req.id = RequestId::from_random(rand::random());
    req.created_at = at;
    req.approval_deadline = at + TimeDelta::hours(1);
    let detail = format!(
        "{} for {} from {}: {}",
        req.duration, req.target, req.source, req.reason
    );
    let requested = request::fixtures::requested(&req, &detail);
    store.create(&req, &requested).await.expect("create");
    let lead = Actor {
        user: user(LEAD1),
        is_approver: true,
        is_admin: false,
    };
    let events = [
        Event::Approve { by: lead },
        Event::Applied {
            expires_at: at + TimeDelta::minutes(30),
        },
    ];
    for event in events {
        let t = request::apply(&req, &event, at).expect("a valid transition");
        let audit = AuditEvent::of(
            &t,
            Some(&user(LEAD1)),
            at,
            "NetworkPolicy applied in payments",
        );
        store.transition(&t, &audit).await.expect("transition");
        req = t.request;
    }
    req.id
}

/// `active` grants: `COHORTS` cohorts of `due` grants, the rest due hours later.
async fn populate(store: &RedisStore, active: usize, due: usize) -> Vec<RequestId> {
    let mut times: Vec<DateTime<Utc>> = Vec::with_capacity(active);
    for c in 0..COHORTS {
        times.extend((0..due).map(|_| cohort_made(c)));
    }
    let later = (0..active - COHORTS * due)
        .map(|i| t0() + TimeDelta::hours(1) + TimeDelta::milliseconds(i as i64 * 50));
    times.extend(later);
    let base = Arc::new(template(t0()));
    let store = store.clone();
    let written = fan_out(times.len(), POPULATE_TASKS, move |i| {
        let (store, base, at) = (store.clone(), base.clone(), times[i]);
        async move { active_grant(&store, &base, at).await }
    })
    .await;
    written.into_iter().map(|(_, id)| id).collect()
}

/// One measured step.
struct Row {
    what: &'static str,
    active: usize,
    done: usize,
    wall: Duration,
    calls: Calls,
}

async fn store(server: &RedisServer, prefix: &str) -> RedisStore {
    let settings = RedisSettings {
        key_prefix: prefix.to_owned(),
        response_timeout: Duration::from_secs(10),
        // Sealed as `jitbot serve` stores requests, so the figures include the seal.
        state_key: Some(
            jitbot::adapters::redis::StateKey::new(
                jitbot::settings::Secret::new("bench-state-key-0123456789abcdef0123"),
                None,
            )
            .expect("a long enough key"),
        ),
        ..RedisSettings::default()
    };
    RedisStore::connect(&server.url(), &settings)
        .await
        .expect("connect to the bench redis-server")
}

/// Submit + approve pairs, `concurrency` at a time: (pairs, wall time, round trips).
async fn pairs(
    server: &RedisServer,
    stats: &mut RedisStats,
    count: usize,
    concurrency: usize,
) -> (usize, Duration, u64) {
    let store = store(server, &format!("{{bench-pairs-{concurrency}}}")).await;
    // Every pair comes from Alice: the caps on one person's requests are off.
    let t = fakes::test_app_with(Arc::new(store), fakes::uncapped_catalog());
    stats.reset();
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency {
        let app = t.app.clone();
        tasks.spawn(async move {
            for _ in 0..count / concurrency {
                let req = app
                    .submit(fakes::ask("payments-db", ALICE))
                    .await
                    .expect("submit");
                let done = app
                    .decide(&req.id, &user(LEAD1), Decision::Approve, Round::Request)
                    .await
                    .expect("decide");
                assert_eq!(done.request.state, State::Active);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a submit+approve task");
    }
    let wall = started.elapsed();
    (count, wall, stats.calls().round_trips())
}

/// Appends `n` events to a fresh outbox, then claims and acknowledges them all:
/// answers the time of each half.
async fn outbox(server: &RedisServer, n: usize) -> (Duration, Duration) {
    let store = store(server, "{bench-outbox}").await;
    store.open_outbox().await.expect("open_outbox");
    let event = AuditEvent {
        request_id: RequestId::from_random([7; 10]),
        kind: request::AuditKind::PolicyRemoved,
        at: t0(),
        actor: None,
        from: Some(State::Active),
        to: Some(State::Active),
        detail: "reconciler deleted NetworkPolicy payments/jit-bench: benchmark".to_owned(),
    };
    let started = Instant::now();
    let (writer, written) = (store.clone(), event.clone());
    fan_out(n, POPULATE_TASKS, move |_| {
        let (store, event) = (writer.clone(), written.clone());
        async move { store.append_audit(&event).await.expect("append_audit") }
    })
    .await;
    let appended = started.elapsed();
    let started = Instant::now();
    let mut acked = 0;
    while acked < n {
        let claim = store
            .claim_outgoing("bench", t0(), t0() + TimeDelta::minutes(2), 100)
            .await
            .expect("claim_outgoing");
        assert!(
            !claim.events.is_empty(),
            "the outbox ran dry at {acked} of {n}"
        );
        acked += claim.events.len();
        let ids: Arc<Vec<_>> = Arc::new(claim.events.into_iter().map(|o| o.id).collect());
        let acker = store.clone();
        fan_out(ids.len(), 16, move |i| {
            let (store, id) = (acker.clone(), ids[i].clone());
            async move { store.ack_outgoing(&id).await.expect("ack_outgoing") }
        })
        .await;
    }
    assert_eq!(store.outbox_backlog().await.expect("backlog"), 0);
    (appended, started.elapsed())
}

fn print_outbox(n: usize, (appended, delivered): (Duration, Duration)) {
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "\n{:>7} {:>12} {:>20} {:>12}",
        "events", "appended/s", "claimed+acked/s", "overall/s"
    );
    println!(
        "{:>7} {:>12.0} {:>20.0} {:>12.0}",
        n,
        rate(appended),
        rate(delivered),
        rate(appended + delivered)
    );
}

#[tokio::main]
async fn main() {
    let plan = Plan::from_args();
    let server = RedisServer::start();
    let outbox_events = plan.pairs * 5;
    if std::env::args().skip(1).any(|a| a == "outbox") {
        print_outbox(outbox_events, outbox(&server, outbox_events).await);
        return;
    }
    let mut stats = RedisStats(server.admin());
    let mut rows = Vec::new();
    let mut memory = Vec::new();
    for active in plan.active {
        let prefix = format!("{{bench-{active}}}");
        let store = store(&server, &prefix).await;
        let before = stats.used_memory();
        let started = Instant::now();
        let ids = populate(&store, active, plan.due).await;
        let populated = started.elapsed();
        let grown = stats.used_memory() - before;
        let sample = &ids[..200.min(ids.len())];
        let own: i64 = sample
            .iter()
            .map(|id| {
                stats.memory_usage(&format!("{prefix}:req:{id}"))
                    + stats.memory_usage(&format!("{prefix}:history:{id}"))
            })
            .sum();
        memory.push((
            active,
            populated,
            own / sample.len() as i64,
            grown / active as i64,
        ));

        let t = fakes::test_app(Arc::new(store.clone()));
        let mut sweeps = Vec::new();
        for c in 0..SWEEPS {
            stats.reset();
            let started = Instant::now();
            let report = t.app.sweep_once(cohort_due(c)).await.expect("sweep_once");
            let wall = started.elapsed();
            assert_eq!(report.expired, plan.due, "{report:?}");
            sweeps.push(Row {
                what: "sweep_once",
                active,
                done: report.expired,
                wall,
                calls: stats.calls(),
            });
        }
        sweeps.sort_by_key(|r| r.wall);
        rows.push(sweeps.swap_remove(SWEEPS / 2));

        stats.reset();
        let started = Instant::now();
        let (now, lease) = (
            cohort_due(SWEEPS),
            cohort_due(SWEEPS) + TimeDelta::minutes(1),
        );
        let claims = store
            .claim_due(now, lease, plan.due)
            .await
            .expect("claim_due");
        let wall = started.elapsed();
        assert_eq!(claims.len(), plan.due);
        rows.push(Row {
            what: "claim_due",
            active,
            done: claims.len(),
            wall,
            calls: stats.calls(),
        });
    }
    let pairs = [
        pairs(&server, &mut stats, plan.pairs / 4, 1).await,
        pairs(&server, &mut stats, plan.pairs, 16).await,
    ];
    let outbox_times = outbox(&server, outbox_events).await;
    let finished = retention::finished_memory(&server, &mut stats, plan.finished).await;

    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "optimized"
    };
    println!(
        "\njitbot Redis store: redis-server {}, {cpus} CPUs, {build} build",
        stats.version()
    );
    println!(
        "\n{:<11} {:>7} {:>5} {:>8} {:>14} {:>11} {:>14}",
        "step", "active", "done", "wall ms", "redis busy ms", "round trips", "cmds in redis"
    );
    for r in &rows {
        let ms = r.wall.as_secs_f64() * 1e3;
        println!(
            "{:<11} {:>7} {:>5} {:>8.1} {:>14.1} {:>11} {:>14}",
            r.what,
            r.active,
            r.done,
            ms,
            r.calls.busy_ms(),
            r.calls.round_trips(),
            r.calls.in_redis()
        );
    }
    println!(
        "\n{:>7} {:>11} {:>12} {:>12} {:>20}",
        "grants", "populate s", "grants/s", "own keys B", "used_memory B/grant"
    );
    for (active, took, own, per) in &memory {
        let rate = *active as f64 / took.as_secs_f64();
        println!(
            "{:>7} {:>11.1} {:>12.0} {:>12} {:>20}",
            active,
            took.as_secs_f64(),
            rate,
            own,
            per
        );
    }
    println!(
        "\n{:>10} {:>6} {:>7} {:>8} {:>16}",
        "at a time", "pairs", "wall s", "pairs/s", "round trips/pair"
    );
    for ((count, wall, trips), concurrency) in pairs.iter().zip([1, 16]) {
        let rate = *count as f64 / wall.as_secs_f64();
        println!(
            "{:>10} {:>6} {:>7.2} {:>8.0} {:>16.1}",
            concurrency,
            count,
            wall.as_secs_f64(),
            rate,
            *trips as f64 / *count as f64
        );
    }
    print_outbox(outbox_events, outbox_times);
    println!(
        "\n{:>9} {:>16} {:>15} {:>22} {:>22}",
        "finished", "used_memory B/r", "of which audit", "after retention B/r", "left in keys B/r"
    );
    println!(
        "{:>9} {:>16} {:>15} {:>22} {:>22}",
        finished.count,
        finished.before,
        finished.stream_before,
        finished.after,
        finished.keys_after
    );
}
