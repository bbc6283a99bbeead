//! The store on highly available Redis, all real `redis-server` processes: the whole
//! store and lifecycle contract on a three-master Redis Cluster (each test's keys land
//! on whichever master owns its prefix's slot), and a Sentinel failover, forced or by
//! a crash, that keeps every grant, timer and audit event, after which writes reach
//! the new master. Plus what `check-config` says about `REDIS_URL`.

use std::any::Any;
use std::future::Future;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::TimeDelta;

use jitbot::adapters::redis::{RedisSettings, RedisStore};
use jitbot::core::ids::RequestId;
use jitbot::core::ports::{Store, StoreError};
use jitbot::core::request::{AuditKind, State};

use crate::store_contract::Backend;
use crate::support::fakes::{
    ALICE, LEAD1, TestApp, active, ask, t0, test_app, test_app_with, uncapped_catalog,
};
use crate::support::redis::{let_ttls_pass, unique_prefix};
use crate::support::redis_ha::{RedisCluster, SentinelGroup};

/// A store on `url` under its own key prefix; every `client()` is a new `RedisStore`,
/// like another jitbot replica. Holds the servers so they live as long as it does.
pub struct Ha {
    url: String,
    settings: RedisSettings,
    _servers: Arc<dyn Any + Send + Sync>,
}

impl Ha {
    fn on<T: Any + Send + Sync>(url: String, servers: Arc<T>) -> Self {
        Ha {
            url,
            settings: RedisSettings {
                key_prefix: unique_prefix(),
                connect_timeout: Duration::from_secs(2),
                response_timeout: Duration::from_secs(2),
                state_key: Some(crate::support::spawn::state_key()),
                ..RedisSettings::default()
            },
            _servers: servers,
        }
    }

    fn with_prefix(mut self, prefix: &str) -> Self {
        self.settings.key_prefix = prefix.to_owned();
        self
    }

    async fn store(&self) -> RedisStore {
        RedisStore::connect(&self.url, &self.settings)
            .await
            .expect("connecting to the test Redis")
    }
}

#[async_trait]
impl Backend for Ha {
    async fn client(&self) -> Arc<dyn Store> {
        Arc::new(self.store().await)
    }

    /// On a cluster, moves the TTLs on the master that owns the prefix's slot.
    async fn let_time_pass(&self, by: Duration) {
        let Some(cluster) = self._servers.downcast_ref::<RedisCluster>() else {
            panic!("letting time pass is only done on the cluster");
        };
        let prefix = &self.settings.key_prefix;
        let_ttls_pass(&mut cluster.owner_of(prefix).admin(), prefix, by);
    }
}

pub async fn cluster() -> Ha {
    let cluster = RedisCluster::start();
    Ha::on(cluster.url(), Arc::new(cluster))
}

crate::store_contract!(cluster_backend, cluster());

/// How long Redis may take to serve writes again after a failover.
const BACK_WITHIN: Duration = Duration::from_secs(30);

/// Retries `call` until it stops failing with `Unavailable` (Redis between masters),
/// within [`BACK_WITHIN`]; any other error fails the test. Answers the result and how
/// many calls were refused first.
async fn once_available<T, F, Fut>(mut call: F) -> (T, usize)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let deadline = Instant::now() + BACK_WITHIN;
    let mut refused = 0;
    loop {
        match call().await {
            Ok(value) => return (value, refused),
            Err(StoreError::Unavailable(why)) => {
                assert!(
                    Instant::now() < deadline,
                    "Redis did not serve again within {BACK_WITHIN:?}: {why}"
                );
                refused += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(other) => panic!("not a passing failure: {other:?}"),
        }
    }
}

/// The keys stored under `prefix` on one server.
fn keys_on(server: &crate::support::redis::RedisServer, prefix: &str) -> Vec<String> {
    redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut server.admin())
        .expect("KEYS")
}

/// Grants Alice `n` 30-minute grants of `payments-db`.
async fn grant(t: &TestApp, n: usize) -> Vec<RequestId> {
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(active(&t.app, "payments-db", ALICE, LEAD1).await.id);
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_master_serves_the_prefixes_of_its_slots_and_reloads_flushed_scripts() {
    let cluster = Arc::new(RedisCluster::start());
    // One prefix for each master, so that calls follow MOVED to every node.
    let mut prefixes: Vec<Option<String>> = vec![None; 3];
    for n in 0.. {
        if prefixes.iter().all(Option::is_some) {
            break;
        }
        let prefix = format!("{{jt-ha-{n}}}");
        let owner = cluster.owner_of(&prefix).port();
        let i = cluster
            .nodes()
            .iter()
            .position(|s| s.port() == owner)
            .unwrap();
        prefixes[i].get_or_insert(prefix);
    }
    for (i, prefix) in prefixes.iter().flatten().enumerate() {
        let b = Ha::on(cluster.url(), cluster.clone()).with_prefix(prefix);
        let t = test_app(b.client().await);
        let first = grant(&t, 1).await.remove(0);
        // A script cache emptied behind jitbot's back (a restarted node): EVALSHA
        // answers NOSCRIPT and the script is loaded again.
        let owner = &cluster.nodes()[i];
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query(&mut owner.admin())
            .unwrap();
        let second = grant(&t, 1).await.remove(0);
        let report = t.sweep(t0() + TimeDelta::minutes(31)).await;
        assert_eq!(report.expired, 2, "{prefix}: {report:?}");
        for id in [&first, &second] {
            assert_eq!(t.state_of(id).await, State::Expired);
            let kinds = t.audit_kinds(id).await;
            assert_eq!(kinds.first(), Some(&AuditKind::Requested), "{kinds:?}");
            assert_eq!(kinds.last(), Some(&AuditKind::Expired), "{kinds:?}");
        }
        for (j, node) in cluster.nodes().iter().enumerate() {
            let keys = keys_on(node, prefix);
            assert_eq!(i == j, !keys.is_empty(), "{prefix} on node {j}: {keys:?}");
        }
    }
}

/// Three grants and a pending request, written on the master and copied to the
/// replica; what a failover must keep.
struct BeforeFailover {
    t: TestApp,
    store: RedisStore,
    grants: Vec<RequestId>,
    pending: RequestId,
    next_due: Option<chrono::DateTime<chrono::Utc>>,
    histories: Vec<Vec<jitbot::core::ports::AuditEvent>>,
    old_master: u16,
}

async fn before_failover(group: &SentinelGroup, b: &Ha) -> BeforeFailover {
    let store = b.store().await;
    let t = test_app(Arc::new(store.clone()));
    let grants = grant(&t, 3).await;
    let pending = t.app.submit(ask("payments-db", ALICE)).await.unwrap().id;
    let next_due = store.next_due().await.unwrap();
    assert!(next_due.is_some());
    let mut histories = Vec::new();
    for id in grants.iter().chain([&pending]) {
        histories.push(store.audit_of(id).await.unwrap());
    }
    group.sync_replica();
    BeforeFailover {
        t,
        store,
        grants,
        pending,
        next_due,
        histories,
        old_master: group.master_port(),
    }
}

/// After the failover: the same client finds the new master within a bound, every
/// timer and event is there, a new write lands on the new master, and the grants
/// expire on time, once each.
async fn after_failover(group: &SentinelGroup, b: &Ha, was: BeforeFailover) {
    let new_master = group.master();
    assert_ne!(new_master.port(), was.old_master, "a new master serves");
    let started = Instant::now();
    let (submitted, refused) = once_available(|| async {
        was.t
            .app
            .submit(ask("payments-db", ALICE))
            .await
            .map_err(unavailable)
    })
    .await;
    eprintln!(
        "the first write after the failover succeeded after {:?} and {refused} refused call(s)",
        started.elapsed()
    );
    let key = format!("{}:req:{}", b.settings.key_prefix, submitted.id);
    let on_new: Option<String> = redis::cmd("HGET")
        .arg(&key)
        .arg("json")
        .query(&mut new_master.admin())
        .unwrap();
    assert!(
        on_new.is_some(),
        "the write after the failover is on the new master"
    );

    assert_eq!(was.store.next_due().await.unwrap(), was.next_due);
    for (id, history) in was.grants.iter().chain([&was.pending]).zip(&was.histories) {
        assert_eq!(&was.store.audit_of(id).await.unwrap(), history, "{id}");
    }
    let report = was.t.sweep(t0() + TimeDelta::minutes(31)).await;
    assert_eq!(report.expired, 3, "{report:?}");
    for id in &was.grants {
        assert_eq!(was.t.state_of(id).await, State::Expired);
        let kinds = was.t.audit_kinds(id).await;
        let expired = kinds.iter().filter(|k| **k == AuditKind::Expired).count();
        assert_eq!(expired, 1, "{kinds:?}");
    }
    assert_eq!(was.t.state_of(&was.pending).await, State::Pending);
    assert_eq!(was.t.enforcer.revoked().len(), 3);
}

fn unavailable(e: jitbot::app::AppError) -> StoreError {
    match e {
        jitbot::app::AppError::StoreUnavailable(why) => StoreError::Unavailable(why),
        other => panic!("not a store outage: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_sentinel_failover_keeps_grants_timers_and_history() {
    let group = Arc::new(SentinelGroup::start());
    let b = Ha::on(group.url(), group.clone());
    let was = before_failover(&group, &b).await;
    group.fail_over();
    after_failover(&group, &b, was).await;
    // The old master now copies the new one.
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut group.replica().admin())
        .unwrap();
    assert!(info.contains("role:slave"), "{info}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_sentinel_master_is_replaced_without_losing_a_grant() {
    let group = Arc::new(SentinelGroup::start());
    let b = Ha::on(group.url(), group.clone());
    let was = before_failover(&group, &b).await;
    group.kill_master();
    after_failover(&group, &b, was).await;
}

/// A switch-over nothing announces to the old master's clients: it stays master and
/// keeps answering. jitbot moves because it asks the sentinel which server is master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_follow_the_master_the_sentinel_names() {
    let group = Arc::new(SentinelGroup::start());
    let b = Ha::on(group.url(), group.clone());
    let store = b.store().await;
    // Alice submits until a write lands on the new master: no cap may stop her.
    let t = test_app_with(Arc::new(store.clone()), uncapped_catalog());
    let before = grant(&t, 1).await.remove(0);
    group.sync_replica();
    let old = group.master_port();
    let new = group.switch_by_hand();
    assert_ne!(old, new);

    let moved = Instant::now();
    let on = |port: u16, id: &RequestId| {
        let server = group.server_on(port);
        let key = format!("{}:req:{id}", b.settings.key_prefix);
        let found: Option<String> = redis::cmd("HGET")
            .arg(key)
            .arg("json")
            .query(&mut server.admin())
            .unwrap();
        found.is_some()
    };
    loop {
        let (req, _) = once_available(|| async {
            t.app
                .submit(ask("payments-db", ALICE))
                .await
                .map_err(unavailable)
        })
        .await;
        if on(new, &req.id) {
            break;
        }
        assert!(
            on(old, &req.id),
            "each write lands on one master or the other"
        );
        assert!(
            moved.elapsed() < Duration::from_secs(10),
            "jitbot still writes to the old master {:?} after the switch",
            moved.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "writes reached the new master {:?} after the switch",
        moved.elapsed()
    );
    assert!(
        on(new, &before),
        "the grant from before the switch is on the new master"
    );
    assert_eq!(t.state_of(&before).await, State::Active);
}

/// The commands the README, and manifests/redis's ACL file, give jitbot's ACL user
/// (tests/it/manifests.rs checks both say exactly this). `-@dangerous` takes FLUSHALL,
/// KEYS and the like back out of `@write`/`@read`, since key patterns do not hold them.
pub const JITBOT_COMMANDS: &str =
    "+@read +@write +@scripting +@connection -@dangerous +role +info +cluster|slots";

/// Those rights for keys under `prefix`.
fn jitbot_acl(prefix: &str, password: &str) -> Vec<String> {
    format!("jitbot on >{password} ~{prefix}:* {JITBOT_COMMANDS}")
        .split(' ')
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_user_with_the_documented_rights_runs_a_grant_to_its_end() {
    const PASSWORD: &str = "acl-Pa55-w0rd";
    let server = Arc::new(crate::support::redis::RedisServer::start());
    let prefix = unique_prefix();
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(jitbot_acl(&prefix, PASSWORD))
        .query(&mut server.admin())
        .unwrap();
    let url = format!("redis://jitbot:{PASSWORD}@127.0.0.1:{}", server.port());
    let b = Ha::on(url, server.clone()).with_prefix(&prefix);
    let store = b.client().await;
    store.open_outbox().await.unwrap();
    let t = test_app(store.clone());
    let id = grant(&t, 1).await.remove(0);
    let end = t0() + TimeDelta::minutes(31);
    assert_eq!(t.sweep(end).await.expired, 1);
    assert_eq!(t.state_of(&id).await, State::Expired);
    // Its events told in Slack, through the outbox's consumer group.
    let lease = end + TimeDelta::minutes(2);
    let claim = store.claim_outgoing("acl", end, lease, 100).await.unwrap();
    assert!(!claim.events.is_empty());
    for told in &claim.events {
        assert!(
            store
                .mark_outgoing(&told.id, "acl", Some("posted"), lease)
                .await
                .unwrap()
        );
        store.ack_outgoing(&told.id).await.unwrap();
    }
    assert_eq!(store.outbox_backlog().await.unwrap(), 0);
    // Nothing was refused along the way, not even a call whose error jitbot shrugs
    // off (a script's pcall, a client library's CLIENT SETINFO).
    let denied: Vec<redis::Value> = redis::cmd("ACL")
        .arg("LOG")
        .query(&mut server.admin())
        .unwrap();
    assert!(denied.is_empty(), "{denied:?}");
    let mut as_jitbot = redis::Client::open(b.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let flushed: redis::RedisResult<()> = redis::cmd("FLUSHALL").query_async(&mut as_jitbot).await;
    assert!(
        flushed.is_err(),
        "jitbot's user must not flush the database"
    );

    let wrong = format!("redis://jitbot:not-{PASSWORD}@127.0.0.1:{}", server.port());
    let err = RedisStore::connect(&wrong, &b.settings).await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(
        shown.contains("cannot connect to Redis (single server)"),
        "{shown}"
    );
    assert!(!shown.contains(PASSWORD), "{shown}");
}

/// `jitbot check-config` with `REDIS_URL` set as given (and a state key to go with it).
fn check_config(redis_url: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_jitbot"))
        .arg("check-config")
        .env_remove("JITBOT_CONFIG")
        .env("REDIS_URL", redis_url)
        .env("JITBOT_STATE_KEY", crate::support::spawn::STATE_KEY)
        .output()
        .expect("the jitbot binary runs")
}

#[test]
fn check_config_names_the_redis_mode_without_the_password() {
    const PASSWORD: &str = "hunter2-Sentinel";
    for (url, says) in [
        (
            format!("redis+sentinel://jitbot:{PASSWORD}@10.0.0.5,10.0.0.6:26380/payments/1"),
            "store: Redis (Redis Sentinel) at redis+sentinel://10.0.0.5:26379,10.0.0.6:26380/payments/1",
        ),
        (
            format!("rediss+cluster://:{PASSWORD}@node-a:7000,node-b:7000"),
            "store: Redis (Redis Cluster) at rediss+cluster://node-a:7000,node-b:7000",
        ),
        (
            format!("rediss://jitbot:{PASSWORD}@redis.internal:6380"),
            "store: Redis (single server) at rediss://redis.internal:6380",
        ),
    ] {
        let out = check_config(&url);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "{stderr}");
        assert!(stdout.contains(says), "{stdout}");
        assert!(
            !format!("{stdout}{stderr}").contains(PASSWORD),
            "{stdout}{stderr}"
        );
    }
    let out = check_config(&format!("redis+sentinel://jitbot:{PASSWORD}@10.0.0.5"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("REDIS_URL is not usable: a Sentinel URL ends with the master's name"),
        "{stderr}"
    );
    assert!(!stderr.contains(PASSWORD), "{stderr}");
}
