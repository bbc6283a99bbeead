//! Step 3 of the serve bench: how long after `expires_at` a grant's NetworkPolicy is
//! gone, with many grants active in the store and the cluster, and the cluster's own
//! floor for deleting as many policies.
//!
//! The grants are written the way the use cases write them (the store's create /
//! approve / applied scripts, the enforcer's server-side apply) by this process rather
//! than through Slack, so that thousands of approval cards and previews do not swamp
//! the run; to jitbot they are grants another replica approved. Most expire hours
//! later; the others follow one timeline, in whole seconds (the `jitbot.dev/expires-at`
//! annotation has seconds precision), each part well apart from the next:
//!
//! - a steady stream: a few grants at every second for a while;
//! - single grants, each alone, nothing else expiring within seconds of it;
//! - cohorts that each expire at one instant;
//! - grants that expire while the redis-server is frozen (SIGSTOP): what deletes them
//!   then can only have read them from the cluster. Redis is thawed once they are
//!   gone (or after a bounded wait), then the store must show each request Expired.
//!
//! A watch on the grants' namespace notes when each policy's DELETED event arrives; the
//! lag is that minus `expires_at`, signed: a policy deleted before its expiry shows as
//! a negative lag and is counted, never clamped to zero.
//!
//! The floor: a plain kube client (no jitbot) creates as many unmanaged policies (no
//! `managed-by=jitbot` label, in a namespace of their own) as a cohort, deletes them at
//! a few concurrencies, and the fastest run from the first delete call to the last
//! DELETED event is what the cluster itself allows.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, PostParams};
use tokio::task::JoinSet;

use jitbot::adapters::kube::KubeEnforcer;
use jitbot::adapters::redis::RedisStore;
use jitbot::core::catalog::Catalog;
use jitbot::core::ids::{Namespace, RequestId};
use jitbot::core::netpol;
use jitbot::core::ports::{AuditEvent, Enforcer, Store};
use jitbot::core::request::{self, AccessRequest, Actor, Event};
use jitbot::core::ttl::Ttl;
use jitbot::settings::{Secrets, Settings};
use jitbot::startup::{ClusterPorts, Overrides, assemble};

use crate::fakes::{ALICE, LEAD1, user};
use crate::fan_out::fan_out;
use crate::process::{Memory, RssSampler, mib};
use crate::redis_server::RedisServer;
use crate::watch::Watch;
use crate::{Bench, Percentiles, SAMPLE_EVERY};

/// Tasks writing grants at once.
const POPULATE_TASKS: usize = 32;
/// Tasks creating the floor's policies at once (not timed).
const FLOOR_CREATE_TASKS: usize = 32;
/// The label of the floor's policies: anything but jitbot's.
const FLOOR_LABEL: &str = "bench.jitbot.dev/floor";
/// Redis stays frozen at least this long after the last outage expiry.
const FROZEN_PAST_LAST: Duration = Duration::from_secs(3);
/// What the goals allow on top of the floor.
const GOAL_SLACK: f64 = 0.25;

/// How big step 3 is.
pub struct Plan {
    /// Active grants in the store and the cluster, all parts of the timeline included.
    pub grants: usize,
    /// The stream: `stream_per_sec` grants at each of `stream_secs` seconds.
    pub stream_per_sec: usize,
    pub stream_secs: u32,
    /// Single grants, `single_gap` seconds from anything else.
    pub singles: usize,
    pub single_gap: u32,
    /// Cohorts of `cohort` grants each, `cohort_gap` seconds apart: far enough that
    /// one is gone before the next expires.
    pub cohorts: usize,
    pub cohort: usize,
    pub cohort_gap: u32,
    /// Grants expiring over `outage_secs` seconds while Redis is frozen; it stays
    /// frozen until they are all deleted or `outage_hold` after the last expiry.
    pub outage: usize,
    pub outage_secs: u32,
    pub outage_hold: Duration,
    /// Longest wait, once Redis is back, for the store to show them Expired.
    pub recover: Duration,
    /// Concurrencies the floor's deletes are tried at.
    pub concurrencies: &'static [usize],
    /// Longest wait for the remaining deletes at the end.
    pub patience: Duration,
}

/// The part of the timeline a grant belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Part {
    Stream,
    Single,
    Cohort(usize),
    Outage,
}

/// Every timed grant's part and expiry, in expiry order, from `t0` (a whole second).
fn timeline(plan: &Plan, t0: DateTime<Utc>) -> Vec<(Part, DateTime<Utc>)> {
    let at = |s: u32| t0 + TimeDelta::seconds(i64::from(s));
    let mut out = Vec::new();
    for k in 0..plan.stream_secs {
        out.extend((0..plan.stream_per_sec).map(|_| (Part::Stream, at(k))));
    }
    let mut next = plan.stream_secs.saturating_sub(1) + plan.single_gap;
    for _ in 0..plan.singles {
        out.push((Part::Single, at(next)));
        next += plan.single_gap;
    }
    next += plan.cohort_gap.saturating_sub(plan.single_gap);
    for c in 0..plan.cohorts {
        out.extend((0..plan.cohort).map(|_| (Part::Cohort(c), at(next))));
        next += plan.cohort_gap;
    }
    let n = plan.outage.max(1) as u32;
    for i in 0..plan.outage as u32 {
        out.push((Part::Outage, at(next + i * plan.outage_secs / n)));
    }
    out
}

fn whole_second(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).expect("a whole second")
}

/// `later − earlier` in seconds; negative when `later` came first.
fn secs_between(later: DateTime<Utc>, earlier: DateTime<Utc>) -> f64 {
    (later - earlier)
        .num_microseconds()
        .map_or(f64::MAX, |us| us as f64 / 1e6)
}

async fn sleep_until(at: DateTime<Utc>) {
    if let Ok(wait) = (at - Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
}

/// Writes active grants the way the use cases do.
pub struct Grants {
    pub store: RedisStore,
    pub enforcer: KubeEnforcer,
    pub catalog: Arc<Catalog>,
    pub namespace: Namespace,
}

impl Grants {
    /// A Pending request of Alice's for `orders-db`, made now, for two hours.
    fn template(&self) -> AccessRequest {
        let limits = &self.catalog.limits;
        AccessRequest::test()
            .id(RequestId::from_random(rand::random()))
            .in_catalog(&self.catalog, "orders-db", ALICE)
            .duration(Ttl::from_hours(2))
            .approval_timeout(limits.approval_timeout)
            .expiry_warning(limits.expiry_warning)
            .made_at(Utc::now())
            .build()
    }

    /// One grant, as `submit` then `decide` write it: created Pending, approved, the
    /// policy applied, then Active until `expires_at`.
    async fn one(&self, base: &AccessRequest, expires_at: DateTime<Utc>) -> RequestId {
        let now = Utc::now();
        let mut req = base.clone();
        req.id = RequestId::from_random(rand::random());
        req.created_at = now;
        req.approval_deadline = now + self.catalog.limits.approval_timeout.as_delta();
        let detail = format!("{} for {} from {}", req.duration, req.target, req.source);
        let requested = request::fixtures::requested(&req, &detail);
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
        let overrides = Overrides {
            store: Some(Arc::new(self.store.clone())),
            cluster: Some(ClusterPorts {
                enforcer: Arc::new(self.enforcer.clone()),
                previewer: Arc::new(self.enforcer.clone()),
            }),
            no_workers: true,
            ..Overrides::default()
        };
        let no_secrets = Secrets::from_vars(&std::collections::HashMap::new());
        let catalog = (*self.catalog).clone();
        let app = match assemble(&Settings::default(), catalog, &no_secrets, overrides).await {
            Ok(assembly) => assembly.app,
            Err(e) => {
                println!("step 3: cannot assemble jitbot for reconcile_once: {e:#}");
                return None;
            }
        };
        let started = Instant::now();
        match app.reconcile_once(Utc::now()).await {
            Ok(report) => Some((report.seen, started.elapsed())),
            Err(e) => {
                println!("step 3: reconcile_once failed: {e}");
                None
            }
        }
    }

    /// `count` grants, [`POPULATE_TASKS`] at a time, the i-th expiring at
    /// `expires_at(i)`; their ids in that order.
    async fn many(
        self: &Arc<Self>,
        count: usize,
        expires_at: impl Fn(usize) -> DateTime<Utc> + Send + Sync + 'static,
    ) -> Vec<RequestId> {
        let base = Arc::new(self.template());
        let grants = self.clone();
        let mut ids = fan_out(count, POPULATE_TASKS, move |i| {
            let (grants, base, at) = (grants.clone(), base.clone(), expires_at(i));
            async move { grants.one(&base, at).await }
        })
        .await;
        ids.sort_by_key(|(i, _)| *i);
        ids.into_iter().map(|(_, id)| id).collect()
    }
}

/// One part of the timeline: how many of its policies were deleted, and the lags.
#[derive(Default)]
pub struct Lags {
    pub expected: usize,
    /// Signed seconds from `expires_at` to DELETED, of those deleted.
    pub lag: Percentiles,
}

impl Lags {
    /// Deletes per second from the first to the last.
    fn rate(&self) -> f64 {
        let spread = self.lag.max - self.lag.min;
        if self.lag.n > 1 && spread > 0.0 {
            (self.lag.n - 1) as f64 / spread
        } else {
            0.0
        }
    }
}

/// The timed grants that expired while Redis was frozen.
#[derive(Default)]
pub struct Outage {
    pub lags: Lags,
    /// From SIGSTOP to SIGCONT.
    pub frozen: Duration,
    /// From their last expiry to SIGCONT.
    pub held_after_last: f64,
    /// Deleted before Redis was thawed.
    pub deleted_while_frozen: usize,
    /// Requests the store shows Expired once Redis is back, and when the last did.
    pub expired: usize,
    pub expired_after: Option<Duration>,
    /// Their states in the store at the end of that wait.
    pub states: BTreeMap<String, usize>,
    pub recover: Duration,
    /// jitbot's `/readyz` said the store answers again this long after SIGCONT.
    pub ready_after: Option<Duration>,
}

/// One floor run: deleting all the floor's policies at one concurrency.
pub struct FloorRun {
    pub concurrency: usize,
    /// Until every delete call had returned.
    pub calls: Duration,
    /// Until the last DELETED event arrived on a watch.
    pub seen: Option<f64>,
    pub errors: usize,
}

#[derive(Default)]
pub struct Floor {
    pub policies: usize,
    pub namespace: String,
    pub runs: Vec<FloorRun>,
}

impl Floor {
    /// The fastest run, by its last DELETED event.
    pub fn best(&self) -> Option<&FloorRun> {
        self.runs
            .iter()
            .filter(|r| r.seen.is_some() && r.errors == 0)
            .min_by(|a, b| {
                a.seen
                    .unwrap_or(f64::MAX)
                    .total_cmp(&b.seen.unwrap_or(f64::MAX))
            })
    }
}

pub struct Report {
    pub active: usize,
    pub timed: usize,
    pub populate: Duration,
    /// Every timed grant was written before the first expiry.
    pub in_time: bool,
    pub stream: Lags,
    pub singles: Lags,
    pub cohorts: Vec<Lags>,
    pub outage: Outage,
    /// Policies deleted that were not due yet (their grants expire hours later).
    pub wrongly_deleted: usize,
    /// "reconciler removed a policy" lines in jitbot's log. The reconciler logs that
    /// for a policy already gone when it deleted it too, so this is an upper bound.
    pub by_reconciler: usize,
    /// jitbot's own `revocation_lag_seconds` by path: labels, count, mean seconds.
    pub own_metric: Vec<(String, f64, f64)>,
    /// jitbot's `expiry_guard_deletes` series at the end.
    pub guard_deletes: Vec<(String, f64)>,
    /// jitbot's `expiry_guard_tracked` with all the grants written.
    pub guard_tracked: Option<f64>,
    /// jitbot's resident memory right before the grants were written, and with all
    /// of them tracked (before the first expiry).
    pub rss_before: Memory,
    pub rss_with: Memory,
    /// Peak resident memory of jitbot while the grants were written and expired.
    pub rss_peak: u64,
    pub floor: Floor,
    /// One `reconcile_once` over the grants left, run here on the same store and
    /// cluster: (policies seen, wall time).
    pub reconcile: Option<(usize, Duration)>,
    pub watch_problems: Vec<String>,
}

pub async fn run(
    plan: &Plan,
    bench: &Bench,
    grants: &Arc<Grants>,
    redis: &RedisServer,
    floor_namespace: &Namespace,
) -> Report {
    let rss_before = bench.jitbot.memory();
    let rss = RssSampler::start(bench.jitbot.pid, SAMPLE_EVERY);
    // Watching from before the first write: a policy deleted early is seen too.
    let watch = Watch::start(&bench.kube, &grants.namespace).await;
    let started = Instant::now();
    let timed = timeline(plan, Utc::now()).len();
    let rest = plan.grants.saturating_sub(timed);
    // The grants that stay: they expire 90 minutes or more from now, in whole seconds.
    let later = whole_second(Utc::now() + TimeDelta::minutes(90));
    grants
        .many(rest, move |i| later + TimeDelta::seconds((i % 1800) as i64))
        .await;
    // The timeline starts once its grants can all be written, judging by the rate so
    // far, and jitbot has had a few seconds to take them in.
    let per_grant = started.elapsed().as_secs_f64() / rest.max(1) as f64;
    let margin = Duration::from_secs_f64(per_grant * timed as f64 * 1.5 + 8.0);
    let t0 = whole_second(Utc::now() + TimeDelta::from_std(margin).expect("a small margin"))
        + TimeDelta::seconds(1);
    let schedule = Arc::new(timeline(plan, t0));
    let ids = {
        let schedule = schedule.clone();
        grants.many(schedule.len(), move |i| schedule[i].1).await
    };
    let populate = started.elapsed();
    let in_time = Utc::now() < t0;
    sleep_until(t0 - TimeDelta::seconds(2)).await;
    let rss_with = bench.jitbot.memory();
    let guard_tracked = series(&metrics(bench).await, "jitbot_expiry_guard_tracked")
        .first()
        .map(|(_, v)| *v);

    let reconciled_before = bench.jitbot.count_log("reconciler removed a policy");
    let names: Vec<String> = ids.iter().map(netpol::policy_name).collect();
    let outage = outage(plan, bench, grants, redis, &watch, &schedule, &ids, &names).await;
    // Any straggler, up to `patience` after the last expiry.
    let last = schedule.last().map_or(t0, |(_, at)| *at);
    let until_last = (last - Utc::now()).to_std().unwrap_or_default();
    watch
        .until(until_last + plan.patience, |seen| {
            names.iter().all(|n| seen.deleted.contains_key(n))
        })
        .await;
    // A little longer, to catch a wrong delete right after the last expiry.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_peak = rss.stop();

    let (stream, singles, cohorts, outage_lags, wrongly_deleted, watch_problems) = {
        let seen = watch.seen.lock().unwrap();
        let lags_of = |part: Part| {
            let mut expected = 0;
            let mut lag = Vec::new();
            for (name, (p, at)) in names.iter().zip(schedule.iter()) {
                if *p == part {
                    expected += 1;
                    if let Some(deleted) = seen.deleted.get(name) {
                        lag.push(secs_between(*deleted, *at));
                    }
                }
            }
            Lags {
                expected,
                lag: Percentiles::of(lag),
            }
        };
        let timed: HashSet<&String> = names.iter().collect();
        let wrong = seen.deleted.keys().filter(|n| !timed.contains(n)).count();
        (
            lags_of(Part::Stream),
            lags_of(Part::Single),
            (0..plan.cohorts)
                .map(|c| lags_of(Part::Cohort(c)))
                .collect::<Vec<_>>(),
            lags_of(Part::Outage),
            wrong,
            seen.problems.clone(),
        )
    };
    drop(watch);
    let by_reconciler = bench.jitbot.count_log("reconciler removed a policy") - reconciled_before;
    let at_end = metrics(bench).await;
    let own_metric = own_revocation_lag(&at_end);
    let guard_deletes = series(&at_end, "jitbot_expiry_guard_deletes_total")
        .into_iter()
        .map(|(l, v)| (l.to_owned(), v))
        .collect();
    let floor = floor(plan, bench, grants, floor_namespace).await;
    let reconcile = grants.reconcile_once().await;
    Report {
        active: plan.grants,
        timed,
        populate,
        in_time,
        stream,
        singles,
        cohorts,
        outage: Outage {
            lags: outage_lags,
            ..outage
        },
        wrongly_deleted,
        by_reconciler,
        own_metric,
        guard_deletes,
        guard_tracked,
        rss_before,
        rss_with,
        rss_peak,
        floor,
        reconcile,
        watch_problems,
    }
}

/// Freezes Redis two seconds before the outage grants' first expiry and thaws it once
/// they are all deleted (or `outage_hold` after the last); then waits for the store
/// to show them Expired and for jitbot to be ready again.
#[allow(clippy::too_many_arguments)]
async fn outage(
    plan: &Plan,
    bench: &Bench,
    grants: &Grants,
    redis: &RedisServer,
    watch: &Watch,
    schedule: &[(Part, DateTime<Utc>)],
    ids: &[RequestId],
    names: &[String],
) -> Outage {
    let members: Vec<usize> = (0..schedule.len())
        .filter(|i| schedule[*i].0 == Part::Outage)
        .collect();
    let (Some(first), Some(last)) = (
        members.iter().map(|i| schedule[*i].1).min(),
        members.iter().map(|i| schedule[*i].1).max(),
    ) else {
        return Outage::default();
    };
    sleep_until(first - TimeDelta::seconds(2)).await;
    redis.pause();
    let frozen = Instant::now();
    let hold = (last - Utc::now()).to_std().unwrap_or_default() + plan.outage_hold;
    watch
        .until(hold, |seen| {
            members
                .iter()
                .all(|i| seen.deleted.contains_key(&names[*i]))
        })
        .await;
    // Frozen a while past the last expiry in any case, so that jitbot's store calls
    // time out rather than finish once it thaws.
    sleep_until(last + TimeDelta::from_std(FROZEN_PAST_LAST).expect("a few seconds")).await;
    redis.resume();
    let thawed_at = Utc::now();
    let thawed = Instant::now();
    let deleted_while_frozen = {
        let seen = watch.seen.lock().unwrap();
        members
            .iter()
            .filter(|i| {
                seen.deleted
                    .get(&names[**i])
                    .is_some_and(|at| *at < thawed_at)
            })
            .count()
    };
    let expiring = async {
        let mut states = BTreeMap::new();
        while thawed.elapsed() < plan.recover {
            states.clear();
            for i in &members {
                let state = match grants.store.load(&ids[*i]).await {
                    Ok(Some(req)) => format!("{:?}", req.state),
                    Ok(None) => "missing".to_owned(),
                    Err(e) => format!("unreadable ({e})"),
                };
                *states.entry(state).or_insert(0) += 1;
            }
            let expired = states.get("Expired").copied().unwrap_or(0);
            if expired == members.len() {
                return (states, Some(thawed.elapsed()));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        (states, None)
    };
    let ((states, expired_after), ready_after) = tokio::join!(
        expiring,
        ready_within(bench, thawed, Duration::from_secs(30))
    );
    Outage {
        frozen: thawed - frozen,
        held_after_last: secs_between(thawed_at, last),
        deleted_while_frozen,
        expired: states.get("Expired").copied().unwrap_or(0),
        states,
        expired_after,
        recover: plan.recover,
        ready_after,
        ..Outage::default()
    }
}

/// How long after `since` jitbot's `/readyz` said the store answers, if within
/// `patience`.
async fn ready_within(bench: &Bench, since: Instant, patience: Duration) -> Option<Duration> {
    let url = format!("{}/readyz", bench.jitbot.base);
    while since.elapsed() < patience {
        if let Ok(r) = bench.http.get(&url).send().await
            && r.status().is_success()
            && r.text().await.is_ok_and(|body| body.contains("store: ok"))
        {
            return Some(since.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Runs `op` on every name, `concurrency` at a time; how many failed.
async fn each<F, Fut>(concurrency: usize, names: &Arc<Vec<String>>, op: F) -> usize
where
    F: Fn(String) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency {
        let (next, names, op) = (next.clone(), names.clone(), op.clone());
        tasks.spawn(async move {
            let mut failed = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(name) = names.get(i) else {
                    return failed;
                };
                failed += usize::from(!op(name.clone()).await);
            }
        });
    }
    let mut failed = 0;
    while let Some(done) = tasks.join_next().await {
        failed += done.expect("a floor task");
    }
    failed
}

/// The cluster's floor: a plain client creates as many unmanaged policies as a cohort
/// (the same shape as a grant's), then deletes them all, once per concurrency.
async fn floor(plan: &Plan, bench: &Bench, grants: &Grants, namespace: &Namespace) -> Floor {
    let api: Api<NetworkPolicy> = Api::namespaced(bench.kube.clone(), namespace.as_str());
    let shape = netpol::render(&grants.template(), whole_second(Utc::now()))
        .into_iter()
        .next()
        .expect("a policy");
    let mut runs = Vec::new();
    for &concurrency in plan.concurrencies {
        let names: Arc<Vec<String>> = Arc::new(
            (0..plan.cohort)
                .map(|i| format!("floor-c{concurrency}-{i}"))
                .collect(),
        );
        let create = {
            let (api, shape, namespace) = (api.clone(), shape.clone(), namespace.to_string());
            move |name: String| {
                let mut policy = shape.clone();
                policy.metadata.name = Some(name);
                policy.metadata.namespace = Some(namespace.clone());
                policy.metadata.labels =
                    Some(BTreeMap::from([(FLOOR_LABEL.to_owned(), "1".to_owned())]));
                let api = api.clone();
                async move { api.create(&PostParams::default(), &policy).await.is_ok() }
            }
        };
        let failed = each(FLOOR_CREATE_TASKS, &names, create).await;
        if failed > 0 {
            println!("floor: {failed} of {} creates failed", names.len());
        }
        let watch = Watch::start(&bench.kube, namespace).await;
        let delete = {
            let api = api.clone();
            move |name: String| {
                let api = api.clone();
                async move { api.delete(&name, &DeleteParams::default()).await.is_ok() }
            }
        };
        let (started_at, started) = (Utc::now(), Instant::now());
        let errors = each(concurrency, &names, delete).await;
        let calls = started.elapsed();
        let all = watch
            .until(plan.patience, |seen| {
                names.iter().all(|n| seen.deleted.contains_key(n))
            })
            .await;
        let seen = all
            .then(|| {
                let seen = watch.seen.lock().unwrap();
                names
                    .iter()
                    .filter_map(|n| seen.deleted.get(n))
                    .max()
                    .map(|last| secs_between(*last, started_at))
            })
            .flatten();
        runs.push(FloorRun {
            concurrency,
            calls,
            seen,
            errors,
        });
    }
    Floor {
        policies: plan.cohort,
        namespace: namespace.to_string(),
        runs,
    }
}

/// jitbot's `/metrics` now: each series (name and labels) with its value.
async fn metrics(bench: &Bench) -> Vec<(String, f64)> {
    let text = match bench
        .http
        .get(format!("{}/metrics", bench.jitbot.metrics_base))
        .send()
        .await
    {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// The series of metric `name`: (labels, value), labels as written (`{…}` or "").
fn series<'a>(all: &'a [(String, f64)], name: &str) -> Vec<(&'a str, f64)> {
    all.iter()
        .filter_map(|(s, v)| {
            let labels = s.strip_prefix(name)?;
            (labels.is_empty() || labels.starts_with('{')).then_some((labels, *v))
        })
        .collect()
}

/// jitbot's `revocation_lag_seconds` by label set (the deleting path): count, mean s.
fn own_revocation_lag(all: &[(String, f64)]) -> Vec<(String, f64, f64)> {
    let sums = series(all, "jitbot_revocation_lag_seconds_sum");
    series(all, "jitbot_revocation_lag_seconds_count")
        .into_iter()
        .filter(|(_, count)| *count > 0.0)
        .map(|(labels, count)| {
            let sum = sums
                .iter()
                .find(|(l, _)| *l == labels)
                .map_or(0.0, |(_, s)| *s);
            (labels.to_owned(), count, sum / count)
        })
        .collect()
}

fn lag_row(label: &str, l: &Lags) -> String {
    let p = &l.lag;
    format!(
        "{label:<24} {:>9} {:>8} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
        format!("{}/{}", p.n, l.expected),
        p.negative,
        p.min,
        p.p50,
        p.p99,
        p.max
    )
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

pub fn print(plan: &Plan, r: &Report, idle: Memory) {
    println!(
        "\n3. Revocation lag: {} active grants in the store and the cluster, {} of them on a timeline; \
         s from expires_at (whole seconds) to DELETED on a watch; negative = deleted BEFORE its expiry",
        r.active, r.timed
    );
    println!(
        "{:<24} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "", "deleted", "negative", "min", "p50", "p99", "max"
    );
    println!(
        "{}",
        lag_row(
            &format!("stream {}/s × {} s", plan.stream_per_sec, plan.stream_secs),
            &r.stream
        )
    );
    println!(
        "{}",
        lag_row(&format!("single, alone × {}", plan.singles), &r.singles)
    );
    println!(
        "{}",
        lag_row(&format!("Redis frozen × {}", plan.outage), &r.outage.lags)
    );
    for (i, c) in r.cohorts.iter().enumerate() {
        println!(
            "{}  {:>5.0} deletes/s",
            lag_row(&format!("cohort {} ({} at once)", i + 1, plan.cohort), c),
            c.rate()
        );
    }
    let o = &r.outage;
    println!(
        "Redis frozen (SIGSTOP) {:.1} s, thawed {:.1} s after the last of its {} expiries; \
         {} of {} policies deleted while it was frozen",
        o.frozen.as_secs_f64(),
        o.held_after_last,
        plan.outage,
        o.deleted_while_frozen,
        plan.outage
    );
    let states: Vec<String> = o.states.iter().map(|(s, n)| format!("{n} {s}")).collect();
    println!(
        "  after SIGCONT: {} of {} requests Expired in the store {}; jitbot /readyz {}",
        o.expired,
        plan.outage,
        match o.expired_after {
            Some(d) => format!("within {:.1} s", d.as_secs_f64()),
            None => format!(
                "after waiting {} s (states: {})",
                o.recover.as_secs(),
                states.join(", ")
            ),
        },
        match o.ready_after {
            Some(d) => format!("store: ok again {:.1} s after", d.as_secs_f64()),
            None => "store NOT ok within 30 s".to_owned(),
        }
    );
    println!(
        "policies deleted that were not due: {}; \"reconciler removed a policy\" log lines: {} \
         (also logged when the policy was already gone)",
        r.wrongly_deleted, r.by_reconciler
    );
    for (labels, count, mean) in &r.own_metric {
        println!(
            "jitbot's own revocation_lag_seconds{labels}: {count:.0} observations, mean {mean:.3} s"
        );
    }
    if !r.guard_deletes.is_empty() {
        let deletes: Vec<String> = r
            .guard_deletes
            .iter()
            .map(|(l, v)| format!("{l} {v:.0}"))
            .collect();
        println!(
            "jitbot's expiry_guard_deletes_total: {}",
            deletes.join(", ")
        );
    }

    let f = &r.floor;
    println!(
        "\nfloor: a plain kube client (no jitbot) deletes {} unmanaged NetworkPolicies (label {FLOOR_LABEL}, \
         namespace {}); s from the first delete call",
        f.policies, f.namespace
    );
    println!(
        "{:<12} {:>11} {:>13} {:>7}",
        "concurrency", "calls done", "last DELETED", "errors"
    );
    for run in &f.runs {
        println!(
            "{:<12} {:>11.3} {:>13} {:>7}",
            run.concurrency,
            run.calls.as_secs_f64(),
            run.seen.map_or("not all".to_owned(), |s| format!("{s:.3}")),
            run.errors
        );
    }
    match f.best() {
        Some(best) => {
            let floor = best.seen.unwrap_or_default();
            println!(
                "floor = {floor:.3} s (concurrency {}, by the last DELETED event)",
                best.concurrency
            );
            let last_goal = floor + GOAL_SLACK;
            let p50_goal = floor / 2.0 + GOAL_SLACK;
            for (i, c) in r.cohorts.iter().enumerate() {
                let complete = c.lag.n == c.expected;
                println!(
                    "cohort {}: last deletion {:.3} s vs goal ≤ floor + 250 ms = {last_goal:.3} s: {}; \
                     p50 {:.3} s vs goal ≤ floor/2 + 250 ms = {p50_goal:.3} s: {}",
                    i + 1,
                    c.lag.max,
                    met(complete && c.lag.max <= last_goal),
                    c.lag.p50,
                    met(complete && c.lag.p50 <= p50_goal),
                );
            }
        }
        None => println!("floor: no run completed without errors"),
    }

    println!(
        "\npopulate: {} grants (3 store scripts + 1 server-side apply each, {POPULATE_TASKS} at a time) in {:.1} s: {:.0} grants/s{}",
        r.active,
        r.populate.as_secs_f64(),
        r.active as f64 / r.populate.as_secs_f64(),
        if r.in_time {
            ""
        } else {
            "; the timeline was NOT all written before its first expiry"
        }
    );
    let per_grant =
        |base: Memory| (r.rss_with.rss_kib as f64 - base.rss_kib as f64) / r.active.max(1) as f64;
    println!(
        "jitbot RSS: idle {:.1} MiB; before writing the grants (after steps 1–2) {:.1} MiB; \
         with {} grants tracked {:.1} MiB",
        mib(idle.rss_kib),
        mib(r.rss_before.rss_kib),
        r.active,
        mib(r.rss_with.rss_kib)
    );
    println!(
        "  per tracked grant: {:.2} KiB (with − idle); {:.2} KiB (with − before writing){}",
        per_grant(idle),
        per_grant(r.rss_before),
        r.guard_tracked.map_or(String::new(), |t| format!(
            "; the guard tracked {t:.0} policies then"
        ))
    );
    if let Some((seen, took)) = r.reconcile {
        println!(
            "reconcile_once over {seen} managed policies (the app on the same store and cluster, in the bench): {:.2} s",
            took.as_secs_f64()
        );
    }
    for p in r.watch_problems.iter().take(3) {
        println!("  watch: {p}");
    }
}
