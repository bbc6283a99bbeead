//! The store and lifecycle contracts against a real redis-server, and what only a
//! shared, durable store can show: a restart of jitbot and of Redis loses no expiry,
//! the work of a worker that died is taken over once its lease ends, an outage fails
//! closed and recovers, a frozen server cannot hang a call, and every key lives in
//! one cluster slot.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::TimeDelta;
use k8s_openapi::api::networking::v1::NetworkPolicy;

use jitbot::adapters::redis::{RedisSettings, RedisStore};
use jitbot::app::AppError;
use jitbot::core::ids::RequestId;
use jitbot::core::ports::{AuditEvent, Store, StoreError};
use jitbot::core::request::{AuditKind, State};

use crate::store_contract::Backend;
use crate::support::fakes::{ALICE, LEAD1, TestApp, active, ask, t0, test_app, user};
use crate::support::redis::{RedisServer, let_ttls_pass, unique_prefix};

/// One redis-server and one key prefix; every `client()` is a new `RedisStore` with
/// its own connection, like another jitbot replica.
pub struct Redis {
    pub server: Arc<RedisServer>,
    pub settings: RedisSettings,
}

impl Redis {
    pub fn on(server: Arc<RedisServer>) -> Self {
        Redis {
            server,
            settings: RedisSettings {
                key_prefix: unique_prefix(),
                connect_timeout: Duration::from_secs(2),
                response_timeout: Duration::from_secs(2),
                state_key: Some(crate::support::spawn::state_key()),
                ..RedisSettings::default()
            },
        }
    }

    /// Short timeouts, for tests that make Redis fail on purpose.
    pub fn impatient(mut self) -> Self {
        self.settings.connect_timeout = Duration::from_millis(300);
        self.settings.response_timeout = Duration::from_millis(300);
        self
    }

    pub async fn store(&self) -> RedisStore {
        RedisStore::connect(&self.server.url(), &self.settings)
            .await
            .expect("connecting to the test redis-server")
    }
}

#[async_trait]
impl Backend for Redis {
    async fn client(&self) -> Arc<dyn Store> {
        Arc::new(self.store().await)
    }

    /// Redis expires keys by its own clock; this moves every TTL under the prefix
    /// on by `by`, as if `by` had passed.
    async fn let_time_pass(&self, by: Duration) {
        let_ttls_pass(&mut self.server.admin(), &self.settings.key_prefix, by);
    }
}

pub async fn redis() -> Redis {
    Redis::on(Arc::new(RedisServer::start()))
}

crate::store_contract!(redis_backend, redis());

/// Awaits a call that must come back on its own (the store's timeouts are a few
/// seconds); a hang fails the test instead of stalling the run.
async fn bounded<F: std::future::Future>(call: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), call)
        .await
        .expect("the call hung instead of failing with its timeout")
}

/// Submits and approves `n` grants for Alice on `payments-db` (30 minutes each).
async fn grant(t: &TestApp, n: usize) -> Vec<RequestId> {
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(active(&t.app, "payments-db", ALICE, LEAD1).await.id);
    }
    ids
}

/// Two new replicas whose clusters hold the policies `from` had applied.
async fn replicas(b: &Redis, from: &[NetworkPolicy]) -> [TestApp; 2] {
    let apps = [test_app(b.client().await), test_app(b.client().await)];
    for app in &apps {
        for policy in from {
            app.enforcer.insert(policy.clone()).unwrap();
        }
    }
    apps
}

/// Every policy either replica deleted, as `namespace/name`.
fn revoked(apps: &[TestApp]) -> Vec<String> {
    let mut all: Vec<String> = apps
        .iter()
        .flat_map(|a| a.enforcer.revoked())
        .map(|p| format!("{}/{}", p.namespace, p.name))
        .collect();
    all.sort();
    all
}

async fn count(store: &dyn Store, id: &RequestId, kind: AuditKind) -> usize {
    let history = store.audit_of(id).await.unwrap();
    history.iter().filter(|e| e.kind == kind).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_of_jitbot_and_redis_loses_no_expiry() {
    let b = Redis::on(Arc::new(RedisServer::start_persistent()));
    let first = test_app(b.client().await);
    let ids = grant(&first, 5).await;
    let policies: Vec<_> = first.enforcer.policies();
    assert_eq!(policies.len(), 5);
    drop(first);
    // Redis crashes too and comes back from its append-only file.
    b.server.restart();

    let apps = replicas(&b, &policies).await;
    let at = t0() + TimeDelta::minutes(31);
    let (one, two) = tokio::join!(apps[0].sweep(at), apps[1].sweep(at));
    assert_eq!(one.expired + two.expired, 5);
    let names = revoked(&apps);
    let distinct: BTreeSet<&String> = names.iter().collect();
    assert_eq!(names.len(), 5, "each policy deleted once: {names:?}");
    assert_eq!(distinct.len(), 5);
    let store = apps[0].store.clone();
    for id in &ids {
        assert_eq!(apps[0].state_of(id).await, State::Expired);
        assert_eq!(count(store.as_ref(), id, AuditKind::Expired).await, 1);
    }
    let again = apps[1].sweep(at + TimeDelta::hours(1)).await;
    assert_eq!(again.claimed, 0, "nothing is left to expire");
    assert_eq!(revoked(&apps).len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_of_a_worker_that_died_is_taken_over_after_its_lease_exactly_once() {
    let b = redis().await;
    let t = test_app(b.client().await);
    let id = grant(&t, 1).await.remove(0);
    let policies: Vec<_> = t.enforcer.policies();
    let expiry = t0() + TimeDelta::minutes(30);
    let lease = expiry + TimeDelta::seconds(60);

    // A worker claims the expiry, then dies without finishing it.
    let dead = b.client().await;
    assert_eq!(dead.claim_due(expiry, lease, 10).await.unwrap().len(), 1);
    drop(dead);

    let apps = replicas(&b, &policies).await;
    let during = apps[0].sweep(lease - TimeDelta::seconds(1)).await;
    assert_eq!(
        during.claimed, 0,
        "nobody else works it while the lease holds"
    );
    let (one, two) = tokio::join!(apps[0].sweep(lease), apps[1].sweep(lease));
    assert_eq!(one.claimed + two.claimed, 1, "{one:?} {two:?}");
    assert_eq!(one.expired + two.expired, 1);
    assert_eq!(revoked(&apps).len(), 1);
    assert_eq!(t.state_of(&id).await, State::Expired);
    let store = t.store.clone();
    assert_eq!(count(store.as_ref(), &id, AuditKind::Expired).await, 1);
    let later = lease + TimeDelta::minutes(5);
    assert_eq!(apps[1].sweep(later).await.claimed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fails_closed_and_loses_nothing() {
    let b = Redis::on(Arc::new(RedisServer::start_persistent())).impatient();
    let t = test_app(b.client().await);
    let granted = grant(&t, 1).await.remove(0);
    let pending = t.app.submit(ask("payments-db", ALICE)).await.unwrap();
    let store = t.store.clone();

    b.server.stop();
    let submit = bounded(t.app.submit(ask("payments-db", ALICE))).await;
    assert!(
        matches!(submit, Err(AppError::StoreUnavailable(_))),
        "{submit:?}"
    );
    let decide = bounded(t.try_approve(&pending.id, LEAD1)).await;
    assert!(
        matches!(decide, Err(AppError::StoreUnavailable(_))),
        "{decide:?}"
    );
    let sweep = bounded(t.app.sweep_once(t0() + TimeDelta::minutes(31))).await;
    assert!(
        matches!(sweep, Err(AppError::StoreUnavailable(_))),
        "{sweep:?}"
    );
    assert_eq!(
        t.enforcer.applies(),
        1,
        "nothing applied while Redis was away"
    );

    // Redis comes back; the same client reconnects and the expiry that came due
    // meanwhile is worked.
    b.server.restart();
    let report = t.sweep(t0() + TimeDelta::minutes(31)).await;
    assert_eq!(report.expired, 1, "{report:?}");
    assert!(t.enforcer.live_names().is_empty());
    assert_eq!(t.state_of(&granted).await, State::Expired);
    assert_eq!(
        t.app.load(&pending.id).await.unwrap(),
        pending,
        "no half transition"
    );
    let history = store.audit_of(&pending.id).await.unwrap();
    assert_eq!(history.len(), 1, "only `requested`: {history:?}");
    let alices = store.list_by_requester(&user(ALICE)).await.unwrap();
    assert_eq!(alices.len(), 2, "the refused submit stored nothing");
    let late = t.approve(&pending.id, LEAD1).await;
    assert_eq!(late.request.state, State::Active);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_the_reconciler_still_deletes_expired_policies_on_every_page() {
    let b = Redis::on(Arc::new(RedisServer::start())).impatient();
    let t = test_app(b.client().await);
    t.enforcer.list_in_pages_of(1);
    let ids = grant(&t, 3).await;
    b.server.stop();
    let pass = bounded(t.app.reconcile_once(t0() + TimeDelta::minutes(31))).await;
    assert!(
        matches!(pass, Err(AppError::StoreUnavailable(_))),
        "the pass says the store failed: {pass:?}"
    );
    assert!(
        t.enforcer.live_names().is_empty(),
        "each page's expired policy is deleted although the store failed on the first: {:?}",
        t.enforcer.live_names()
    );
    assert_eq!(t.enforcer.revoked().len(), ids.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_cannot_hang_a_call() {
    let b = redis().await.impatient();
    let store = b.store().await;
    let t = test_app(b.client().await);
    store.ping().await.unwrap();

    b.server.pause();
    let err = bounded(store.load(&RequestId::from_random([1; 10])))
        .await
        .unwrap_err();
    assert!(
        matches!(err, jitbot::core::ports::StoreError::Unavailable(_)),
        "{err:?}"
    );
    let submit = bounded(t.app.submit(ask("payments-db", ALICE))).await;
    assert!(
        matches!(submit, Err(AppError::StoreUnavailable(_))),
        "{submit:?}"
    );

    b.server.resume();
    store.ping().await.unwrap();
    let req = t.app.submit(ask("payments-db", ALICE)).await.unwrap();
    assert_eq!(store.load(&req.id).await.unwrap(), Some(req));
}

/// The durable audit stream jitbot keeps for operators (nothing in jitbot reads it
/// back): every event of every request, oldest first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_stream_holds_every_event_in_order() {
    let b = redis().await;
    let t = test_app(b.client().await);
    let grant = active(&t.app, "payments-db", ALICE, LEAD1).await;
    let mut con = b.server.admin();
    let stream: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(format!("{}:audit", b.settings.key_prefix))
        .arg("-")
        .arg("+")
        .query(&mut con)
        .unwrap();
    let events: Vec<AuditEvent> = stream
        .ids
        .iter()
        .map(|entry| serde_json::from_str(&entry.get::<String>("event").unwrap()).unwrap())
        .collect();
    assert_eq!(events, t.app.history(&grant.id).await.unwrap());
    assert_eq!(events.last().map(|e| e.kind), Some(AuditKind::Activated));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_stored_sealed_and_a_remembered_key_expires_with_its_window() {
    let b = redis().await;
    let store = b.client().await;
    let req = crate::store_contract::new_request(1, 1);
    store
        .create(&req, &crate::store_contract::requested(&req))
        .await
        .unwrap();
    let mut con = b.server.admin();
    let stored: String = redis::cmd("HGET")
        .arg(format!("{}:req:{}", b.settings.key_prefix, req.id))
        .arg("json")
        .query(&mut con)
        .unwrap();
    assert!(stored.starts_with("v1:"), "{stored}");
    assert_eq!(store.load(&req.id).await.unwrap(), Some(req.clone()));
    // Another key cannot open it: a store with a different JITBOT_STATE_KEY refuses.
    let mut other = b.settings.clone();
    other.state_key = Some(
        jitbot::adapters::redis::StateKey::new(
            jitbot::settings::Secret::new("another-key-0123456789abcdef0123456789"),
            None,
        )
        .unwrap(),
    );
    let stranger = RedisStore::connect(&b.server.url(), &other).await.unwrap();
    assert!(matches!(
        stranger.load(&req.id).await,
        Err(StoreError::Tampered { .. })
    ));
    assert!(
        stranger
            .list_by_state(State::Pending)
            .await
            .unwrap()
            .is_empty()
    );

    let until = t0() + TimeDelta::minutes(10);
    assert!(store.remember_once("v0=cafe", t0(), until).await.unwrap());
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{}:once:v0=cafe", b.settings.key_prefix))
        .query(&mut con)
        .unwrap();
    assert!((599_000..=600_000).contains(&ttl), "{ttl} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_the_store_writes_shares_one_cluster_slot() {
    use crate::{lifecycle_contract as life, store_contract as contract};
    // A one-node cluster refuses (CROSSSLOT) any script whose keys span slots.
    let server = Arc::new(RedisServer::start_cluster());
    let on = || Redis::on(server.clone());
    contract::create_and_load_round_trip(&on()).await;
    contract::transition_is_compare_and_set(&on()).await;
    contract::lists_by_requester_and_state(&on()).await;
    contract::claims_only_due_work_and_only_once_per_lease(&on()).await;
    contract::a_transition_releases_the_claim_and_rearms_the_timer(&on()).await;
    contract::release_rearms_only_the_current_version(&on()).await;
    contract::audit_keeps_history_per_request(&on()).await;
    contract::annotations_are_kept_per_request(&on()).await;
    contract::next_due_is_the_earliest_timer_or_lease(&on()).await;
    contract::a_key_is_remembered_once_across_replicas(&on()).await;
    life::a_grant_lives_exactly_its_duration(&on()).await;
    life::a_pending_request_lapses_after_the_approval_timeout(&on()).await;
    life::revoke_removes_access_and_only_permitted_people_may(&on()).await;
    life::extension_is_approved_again_and_moves_the_policy_expiry(&on()).await;
    life::a_failed_delete_keeps_the_grant_due_and_raises_an_alert(&on()).await;

    let mut con = server.admin();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
    let slot = |con: &mut redis::Connection, key: &str| -> i64 {
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(con)
            .unwrap()
    };
    let mut prefixes = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    for key in &keys {
        let (prefix, rest) = key.split_at(key.find('}').unwrap() + 1);
        assert_eq!(slot(&mut con, key), slot(&mut con, prefix), "{key}");
        prefixes.insert(prefix.to_owned());
        kinds.insert(rest.split(':').nth(1).unwrap_or_default().to_owned());
    }
    assert_eq!(prefixes.len(), 15, "one prefix per run: {prefixes:?}");
    let want = [
        "audit",
        "claims",
        "due",
        "history",
        "notes",
        "once",
        "req",
        "requester",
        "state",
    ];
    assert_eq!(
        kinds,
        want.map(str::to_owned).into(),
        "every kind of key was checked"
    );
}
