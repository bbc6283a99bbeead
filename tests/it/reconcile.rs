//! `reconcile_once` against the real API server: the second, independent path that
//! removes access past its expiry even when the store knows nothing, restores what an
//! active grant should have, and never touches policies that are not jitbot's.

use chrono::{DateTime, TimeDelta, Utc};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};

use jitbot::app::REMOVED_OUTSIDE;
use jitbot::app::{AppError, ReconcileReport};
use jitbot::core::ids::RequestId;
use jitbot::core::netpol;
use jitbot::core::ports::{Clock, Store};
use jitbot::core::request::{AccessRequest, AuditKind, State};
use jitbot::startup::Application;

use crate::support::fakes::{ALICE, LEAD1, active, t0};
use crate::support::spawn::{Stack, one_replica};

struct Fixture {
    stack: Stack,
    app: Application,
    clock: std::sync::Arc<jitbot::app::ManualClock>,
}

async fn fixture() -> Fixture {
    let (stack, clock, app) = one_replica(false).await;
    Fixture { stack, app, clock }
}

impl Fixture {
    fn policies(&self) -> Api<NetworkPolicy> {
        self.stack.policies()
    }

    async fn exists(&self, name: &str) -> bool {
        self.policies().get_opt(name).await.unwrap().is_some()
    }

    /// One reconcile pass at the clock's time; it must not fail.
    async fn reconcile(&self) -> ReconcileReport {
        self.app.app.reconcile_once(self.clock.now()).await.unwrap()
    }

    /// One pass, which must delete the policy `name`.
    async fn pass_removes(&self, name: &str) {
        let report = self.reconcile().await;
        assert_eq!(report.removed, 1, "{report:?}");
        assert!(!self.exists(name).await, "{name} is still there");
    }

    /// Puts a jitbot policy in the cluster that the store knows nothing about, as a
    /// store that lost its data would leave it.
    async fn orphan(&self, expires_at: DateTime<Utc>) -> String {
        let req = AccessRequest::test()
            .id(RequestId::from_random(rand::random()))
            .namespace(self.stack.cluster.namespace.clone())
            .ports(vec![])
            .reason("left over")
            .build();
        let policy = netpol::render(&req, expires_at).remove(0);
        self.policies()
            .create(&PostParams::default(), &policy)
            .await
            .unwrap();
        netpol::policy_name(&req.id)
    }

    /// An active grant made through the app.
    async fn grant(&self) -> AccessRequest {
        active(&self.app.app, "payments-db", ALICE, LEAD1).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_empty_store_an_expired_policy_is_deleted() {
    let f = fixture().await;
    let name = f.orphan(t0() - TimeDelta::minutes(1)).await;
    f.pass_removes(&name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unexplained_policy_is_kept_only_until_its_expires_at() {
    let f = fixture().await;
    let expires = t0() + TimeDelta::minutes(20);
    let name = f.orphan(expires).await;
    let report = f.reconcile().await;
    assert_eq!(
        (report.kept_unexplained, report.removed),
        (1, 0),
        "{report:?}"
    );
    assert!(
        f.exists(&name).await,
        "the store may have lost a real grant: keep it for now"
    );
    f.clock.set(expires);
    // But never past its expiry.
    f.pass_removes(&name).await;
}

/// DESIGN invariant: a missing policy is never resurrected. Removed outside jitbot
/// (or revoked before the store was rolled back), the grant ends and its requester is
/// told; the policy stays gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_active_grant_is_ended_not_recreated() {
    let f = fixture().await;
    let grant = f.grant().await;
    let name = netpol::policy_name(&grant.id);
    f.policies()
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    // A pass right after the activation leaves the grant alone: its apply could have
    // been on its way while the cluster was listed.
    let early = f.reconcile().await;
    assert_eq!(early.withdrawn, 0, "{early:?}");
    f.clock.advance(TimeDelta::minutes(3));
    let report = f.reconcile().await;
    assert_eq!(report.withdrawn, 1, "{report:?}");
    assert_eq!(report.reapplied, 0, "{report:?}");
    assert!(!f.exists(&name).await, "the policy was re-created");
    let ended = f.app.app.load(&grant.id).await.unwrap();
    assert_eq!(ended.state, State::Revoked);
    assert_eq!(ended.end_reason.as_deref(), Some(REMOVED_OUTSIDE));
    let history = f.app.app.history(&grant.id).await.unwrap();
    assert_eq!(history.last().unwrap().kind, AuditKind::Revoked);
    f.app.notifier.flush().await;
    let dm = f
        .stack
        .slack
        .wait_for("chat.postMessage", |b| {
            b["text"]
                .as_str()
                .is_some_and(|t| t.contains("policy removed outside jitbot"))
        })
        .await;
    assert!(
        dm["text"].as_str().unwrap().contains("revoked by jitbot"),
        "{dm}"
    );
    // Later passes leave it ended, and the cluster without it.
    f.clock.advance(TimeDelta::minutes(1));
    let again = f.reconcile().await;
    assert_eq!((again.withdrawn, again.reapplied), (0, 0), "{again:?}");
    assert!(!f.exists(&name).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_active_grant_is_restored() {
    let f = fixture().await;
    let grant = f.grant().await;
    let name = netpol::policy_name(&grant.id);
    // Someone widens the grant by hand: every pod in the namespace.
    let widen = serde_json::json!({ "spec": { "podSelector": { "matchLabels": null } } });
    f.policies()
        .patch(&name, &PatchParams::default(), &Patch::Merge(&widen))
        .await
        .unwrap();
    let report = f.reconcile().await;
    assert_eq!(report.reapplied, 1, "{report:?}");
    let restored = f.policies().get(&name).await.unwrap();
    let selector = restored
        .spec
        .unwrap()
        .pod_selector
        .unwrap()
        .match_labels
        .unwrap();
    assert_eq!(selector["app"], "postgres");
    let again = f.reconcile().await;
    assert_eq!(again.reapplied, 0, "a restored policy is left alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_whose_request_ended_is_deleted() {
    let f = fixture().await;
    let grant = f.grant().await;
    let name = netpol::policy_name(&grant.id);
    // The revoke's own delete is lost (say the cluster was down): the policy stays.
    let t = jitbot::core::request::apply(
        &f.app.app.load(&grant.id).await.unwrap(),
        &jitbot::core::request::Event::Revoke {
            by: f.app.app.actor(&ALICE.parse().unwrap(), &grant).await,
            reason: None,
        },
        f.clock.now(),
    )
    .unwrap();
    let audit = jitbot::core::ports::AuditEvent::of(&t, None, f.clock.now(), "revoked");
    f.stack.store().await.transition(&t, &audit).await.unwrap();
    assert!(f.exists(&name).await);
    f.pass_removes(&name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_that_are_not_jitbots_are_never_touched() {
    let f = fixture().await;
    let mut lookalike = netpol::render(&f.grant().await, t0() - TimeDelta::hours(1)).remove(0);
    // Same name pattern and an expired annotation, but someone else's label...
    lookalike.metadata.name = Some("jit-not-ours".to_owned());
    lookalike.metadata.resource_version = None;
    let labels = lookalike.metadata.labels.as_mut().unwrap();
    labels.insert(netpol::MANAGED_BY_KEY.to_owned(), "someone-else".to_owned());
    f.policies()
        .create(&PostParams::default(), &lookalike)
        .await
        .unwrap();
    // ...and one with no labels at all.
    let mut bare = lookalike.clone();
    bare.metadata.name = Some("jit-bare".to_owned());
    bare.metadata.labels = None;
    f.policies()
        .create(&PostParams::default(), &bare)
        .await
        .unwrap();
    f.clock.advance(TimeDelta::days(2));
    f.reconcile().await;
    assert!(f.exists("jit-not-ours").await);
    assert!(f.exists("jit-bare").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_store_frozen_an_expired_policy_is_still_deleted() {
    let f = fixture().await;
    let grant = f.grant().await;
    let name = netpol::policy_name(&grant.id);
    f.stack.redis.pause();
    let after = grant.expires_at.unwrap() + TimeDelta::seconds(1);
    let pass = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        f.app.app.reconcile_once(after),
    )
    .await
    .expect("a frozen store cannot hang the pass");
    f.stack.redis.resume();
    assert!(
        matches!(pass, Err(AppError::StoreUnavailable(_))),
        "{pass:?}"
    );
    assert!(!f.exists(&name).await, "deleted before the store was asked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_unreadable_request_does_not_stop_the_pass() {
    let f = fixture().await;
    let unreadable = f.grant().await;
    let edited = f.grant().await;
    // A hand edit leaves one stored request that does not decode.
    let key = format!("{}:req:{}", f.stack.prefix, unreadable.id);
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg("json")
        .arg("{not json")
        .query(&mut f.stack.redis.admin())
        .unwrap();
    // And someone widens the other grant by hand.
    let widen = serde_json::json!({ "spec": { "podSelector": { "matchLabels": null } } });
    f.policies()
        .patch(
            &netpol::policy_name(&edited.id),
            &PatchParams::default(),
            &Patch::Merge(&widen),
        )
        .await
        .unwrap();
    let report = f.reconcile().await;
    assert_eq!(report.errors, 1, "{report:?}");
    assert_eq!(report.reapplied, 1, "the other grant is still restored");
    // No record jitbot can read explains the first policy: it goes, with an alert.
    assert_eq!(report.removed, 1, "{report:?}");
    assert!(!f.exists(&netpol::policy_name(&unreadable.id)).await);
    let history = f
        .stack
        .store()
        .await
        .audit_of(&unreadable.id)
        .await
        .unwrap();
    assert_eq!(history.last().unwrap().kind, AuditKind::RecordRejected);
}
