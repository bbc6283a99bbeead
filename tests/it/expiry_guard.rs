//! The cluster-side expiry guard against the real API server and redis-server: access
//! ends at its deadline with the store down, an extension is never cut short by a
//! stale deadline, replicas racing on one policy audit it once, and an expiry that
//! cannot be trusted is removed at once.
//!
//! Time is the app's manual clock: the guard sleeps on it, so moving the clock to a
//! deadline is what makes the deadline arrive. What the tests wait for (a policy to
//! disappear, a request to change) is polled with a bound that fails the test, never
//! a sleep that stands in for time passing.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, Patch, PatchParams};

use jitbot::adapters::kube::{Deleted, KubeEnforcer, KubeSettings};
use jitbot::app::ManualClock;
use jitbot::core::ids::RequestId;
use jitbot::core::netpol::{self, EXPIRES_AT_ANNOTATION};
use jitbot::core::ports::{Clock, Enforcer, PolicyRef};
use jitbot::core::request::{AccessRequest, AuditKind, State};
use jitbot::core::ttl::Ttl;
use jitbot::startup::Application;

use crate::support::fakes::{ALICE, LEAD1, active, approve, user};
use crate::support::redis::RedisServer;
use crate::support::spawn::{Stack, clock, one_replica, two_replicas};

/// Polls `check` until it holds; fails the test if it does not within `bound`.
async fn eventually<F, Fut>(what: &str, bound: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let polled = async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    if tokio::time::timeout(bound, polled).await.is_err() {
        panic!("{what}: not within {bound:?}");
    }
}

/// Polls jitbot's store until request `id` passes `check`; fails the test if it does
/// not within `secs` seconds.
async fn stored_until(
    what: &str,
    secs: u64,
    jitbot: &Application,
    id: &RequestId,
    check: impl Fn(&AccessRequest) -> bool,
) {
    eventually(what, Duration::from_secs(secs), || async {
        jitbot.app.load(id).await.is_ok_and(|r| check(&r))
    })
    .await;
}

/// A value of jitbot's `/metrics` text, 0 when the series does not exist yet.
fn metric(jitbot: &Application, series: &str) -> f64 {
    let text = jitbot.app.metrics().encode();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn guard_deleted(jitbot: &Application) -> f64 {
    metric(
        jitbot,
        "jitbot_expiry_guard_deletes_total{outcome=\"deleted\"}",
    )
}

/// Waits for the guard to count one delete of its own. The API server answers a GET
/// with 404 as soon as the delete is committed, a moment before the guard has read
/// its own answer and counted it; if another path deleted the policy instead, the
/// count stays at 0 and this fails.
async fn the_guard_deleted_one(jitbot: &Application) {
    eventually(
        "the guard counts the delete as its own",
        Duration::from_secs(10),
        || async { guard_deleted(jitbot) == 1.0 },
    )
    .await;
}

async fn exists(policies: &Api<NetworkPolicy>, name: &str) -> bool {
    policies.get_opt(name).await.unwrap().is_some()
}

async fn gone(policies: &Api<NetworkPolicy>, name: &str) -> bool {
    !exists(policies, name).await
}

/// Polls until the policy `name` is gone; fails the test (saying `what` was due) if it
/// is still there after 10 s.
async fn until_gone(what: &str, policies: &Api<NetworkPolicy>, name: &str) {
    eventually(what, Duration::from_secs(10), || gone(policies, name)).await;
}

async fn tracking(jitbot: &Application, n: f64) {
    eventually(
        "the guard tracks the grants",
        Duration::from_secs(20),
        || async {
            metric(jitbot, "jitbot_expiry_guard_tracked") == n
                && metric(jitbot, "jitbot_expiry_guard_watching") == 1.0
        },
    )
    .await;
}

/// A replica with its workers (the guard among them) on the manual clock, in `stack`,
/// and the policies of the stack's namespace. The stack's servers stop when it is
/// dropped: keep it bound for the whole test.
async fn running(stack: Stack) -> (Stack, Arc<ManualClock>, Application, Api<NetworkPolicy>) {
    let clock = clock();
    let jitbot = stack.replica(&clock, true).await;
    let policies = stack.policies();
    (stack, clock, jitbot, policies)
}

/// An active 30-minute grant of `jitbot`'s and its policy's name.
async fn grant_of(jitbot: &Application) -> (AccessRequest, String) {
    let grant = active(&jitbot.app, "payments-db", ALICE, LEAD1).await;
    let name = netpol::policy_name(&grant.id);
    (grant, name)
}

/// Writes `expires` (null: removes it) as a policy's expiry, as someone with kubectl
/// would, and waits for the guard to remove the policy at once.
async fn set_expiry_by_hand(policies: &Api<NetworkPolicy>, name: &str, expires: serde_json::Value) {
    let patch = serde_json::json!({
        "metadata": { "annotations": { EXPIRES_AT_ANNOTATION: expires } }
    });
    policies
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    until_gone("the policy is removed at once", policies, name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_access_outlives_its_expiry_while_redis_is_down() {
    let (stack, clock, jitbot, policies) =
        running(Stack::start_with(RedisServer::start_persistent()).await).await;
    let (grant, name) = grant_of(&jitbot).await;
    let expires_at = grant.expires_at.unwrap();
    tracking(&jitbot, 1.0).await;

    // 20 s before the expiry (after the expiry warning went out), Redis dies.
    clock.set(expires_at - TimeDelta::seconds(20));
    let warned = |r: &AccessRequest| r.warn_at.is_none();
    stored_until("the expiry warning is sent", 20, &jitbot, &grant.id, warned).await;
    stack.redis.stop();
    assert!(exists(&policies, &name).await);

    clock.set(expires_at);
    until_gone(
        "the policy is deleted at its expiry with Redis down",
        &policies,
        &name,
    )
    .await;
    assert_eq!(
        clock.now(),
        expires_at,
        "deleted while the clock still read expires-at"
    );
    the_guard_deleted_one(&jitbot).await;

    // Redis returns; the sweep, retrying on the app's clock, marks it Expired.
    stack.redis.restart();
    clock.advance(TimeDelta::seconds(2));
    let expired = |r: &AccessRequest| r.state == State::Expired;
    stored_until("the request is Expired", 30, &jitbot, &grant.id, expired).await;
    let history = jitbot.app.history(&grant.id).await.unwrap();
    let expired = history
        .iter()
        .filter(|e| e.kind == AuditKind::Expired)
        .count();
    assert_eq!(expired, 1, "{history:#?}");
    jitbot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extension_approved_while_the_guard_holds_the_old_deadline_is_not_cut_short() {
    let (_stack, clock, jitbot, policies) = running(Stack::start().await).await;
    let (extended, extended_name) = grant_of(&jitbot).await;
    // A second grant with the same deadline shows when the guard has acted on it.
    let (canary, canary_name) = grant_of(&jitbot).await;
    let old_deadline = extended.expires_at.unwrap();
    assert_eq!(canary.expires_at, Some(old_deadline));
    tracking(&jitbot, 2.0).await;

    jitbot
        .app
        .extend(&extended.id, &user(ALICE), Ttl::from_mins(30))
        .await
        .unwrap();
    let t = approve(&jitbot.app, &extended.id, LEAD1).await;
    let new_deadline = t.request.expires_at.unwrap();
    assert_eq!(new_deadline, old_deadline + TimeDelta::minutes(30));

    clock.set(old_deadline);
    until_gone(
        "the canary ends at the old deadline",
        &policies,
        &canary_name,
    )
    .await;
    let live = policies
        .get_opt(&extended_name)
        .await
        .unwrap()
        .expect("the extended grant's policy stays");
    assert_eq!(
        netpol::expires_at(&live),
        Some(new_deadline),
        "with its new expiry"
    );

    clock.set(new_deadline);
    until_gone(
        "the extended grant ends at its new deadline",
        &policies,
        &extended_name,
    )
    .await;
    jitbot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guards_delete_never_removes_a_version_it_has_not_seen() {
    let (stack, _clock, jitbot) = one_replica(false).await;
    let grant = active(&jitbot.app, "payments-db", ALICE, LEAD1).await;
    let policies = stack.policies();
    let name = netpol::policy_name(&grant.id);
    let seen = policies.get(&name).await.unwrap();
    let old_version = seen.metadata.resource_version.clone().unwrap();

    // The grant is extended: a new expiry, a new resourceVersion.
    let later = grant.expires_at.unwrap() + TimeDelta::minutes(30);
    let mut newer = grant.clone();
    newer.expires_at = Some(later);
    let cluster = KubeEnforcer::new(
        stack.cluster.client.clone(),
        KubeSettings::default(),
        vec![stack.cluster.namespace.clone()],
    );
    cluster.apply(&netpol::render(&newer, later)).await.unwrap();
    let at = PolicyRef {
        namespace: stack.cluster.namespace.clone(),
        name: name.clone(),
    };
    assert_eq!(
        cluster.delete_at_version(&at, &old_version).await.unwrap(),
        Deleted::NotChanged
    );
    assert!(exists(&policies, &name).await, "the stale deadline left it");

    let current = policies.get(&name).await.unwrap();
    let version = current.metadata.resource_version.unwrap();
    assert_eq!(
        cluster.delete_at_version(&at, &version).await.unwrap(),
        Deleted::Now
    );
    assert_eq!(
        cluster.delete_at_version(&at, &version).await.unwrap(),
        Deleted::Already
    );
    jitbot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_guards_racing_on_an_impossible_expiry_remove_and_audit_it_once() {
    let (stack, _clock, one, two) = two_replicas(true).await;
    let policies = stack.policies();
    let grant = active(&one.app, "payments-db", ALICE, LEAD1).await;
    let name = netpol::policy_name(&grant.id);
    tracking(&one, 1.0).await;
    tracking(&two, 1.0).await;

    // Someone writes an expiry a day away: beyond access.max_duration (12h).
    let tampered = (grant.expires_at.unwrap() + TimeDelta::days(1)).to_rfc3339();
    set_expiry_by_hand(&policies, &name, serde_json::json!(tampered)).await;
    let removals = || async {
        one.app
            .history(&grant.id)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == AuditKind::PolicyRemoved)
            .collect::<Vec<_>>()
    };
    eventually(
        "the removal is audited",
        Duration::from_secs(10),
        || async { !removals().await.is_empty() },
    )
    .await;
    for replica in [&one, &two] {
        tracking(replica, 0.0).await;
    }
    assert_eq!(guard_deleted(&one) + guard_deleted(&two), 1.0);
    let audited = removals().await;
    assert_eq!(audited.len(), 1, "{audited:#?}");
    assert!(
        audited[0].detail.contains("expiry guard deleted")
            && audited[0].detail.contains("access.max_duration"),
        "{}",
        audited[0].detail
    );
    one.stop().await;
    two.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_without_an_expiry_is_removed_at_once() {
    let (_stack, _clock, jitbot, policies) = running(Stack::start().await).await;
    let (_, name) = grant_of(&jitbot).await;
    tracking(&jitbot, 1.0).await;

    set_expiry_by_hand(&policies, &name, serde_json::Value::Null).await;
    the_guard_deleted_one(&jitbot).await;
    jitbot.stop().await;
}
