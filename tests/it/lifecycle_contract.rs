//! The use cases over each store backend, with recording fakes for the cluster and
//! Slack. These prove DESIGN.md's invariants by name: exactly-once decisions, no
//! access outliving its expiry, fail closed, every change audited.

use chrono::TimeDelta;

use jitbot::app::{AppError, Decision};
use jitbot::core::command::Reason;
use jitbot::core::ports::EnforceError;
use jitbot::core::request::{AuditKind, Round, State, TransitionError};
use jitbot::core::ttl::Ttl;

use crate::store_contract::Backend;
use crate::support::fakes::{
    ALICE, CAROL, GROUP_MEMBER, LEAD1, LEAD2, TestApp, active, ask, t0, test_app, user,
};

pub async fn a_grant_lives_exactly_its_duration(b: &dyn Backend) {
    let t = test_app(b.client().await);
    let req = t.app.submit(ask("payments-db", CAROL)).await.unwrap();
    assert_eq!(req.state, State::Pending);
    let done = t.approve(&req.id, LEAD1).await;
    assert_eq!(done.request.state, State::Active);
    assert_eq!(done.request.expires_at, Some(t0() + TimeDelta::minutes(30)));
    let live = t.enforcer.live_names();
    assert_eq!(
        live.len(),
        2,
        "ingress plus egress companion for a pod source: {live:?}"
    );

    // Five minutes before expiry the requester is warned; one second before expiry
    // nothing else happens; at expiry the policies go.
    let report = t.sweep(t0() + TimeDelta::minutes(25)).await;
    assert_eq!(report.warned, 1);
    let almost = t0() + TimeDelta::minutes(30) - TimeDelta::seconds(1);
    assert_eq!(t.sweep(almost).await.claimed, 0);
    let report = t.sweep(t0() + TimeDelta::minutes(30)).await;
    assert_eq!(report.expired, 1);
    assert!(t.enforcer.live_names().is_empty());
    assert_eq!(t.state_of(&req.id).await, State::Expired);
    assert_eq!(
        t.audit_kinds(&req.id).await,
        [
            AuditKind::Requested,
            AuditKind::Approved,
            AuditKind::Activated,
            AuditKind::ExpiryWarned,
            AuditKind::Expired
        ]
    );
    assert_eq!(
        t.notifier.kinds(),
        [
            "requested",
            "approved",
            "activated",
            "expiry_warned",
            "expired"
        ]
    );
}

pub async fn exactly_once_decisions_under_fifty_concurrent_approvals(b: &dyn Backend) {
    let clients: Vec<TestApp> = vec![test_app(b.client().await), test_app(b.client().await)];
    let req = clients[0]
        .app
        .submit(ask("payments-db", ALICE))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let app = clients[i % 2].app.clone();
        let id = req.id.clone();
        let approver = [LEAD1, LEAD2, GROUP_MEMBER][i % 3];
        tasks.push(tokio::spawn(async move {
            app.decide(&id, &user(approver), Decision::Approve, Round::Request)
                .await
        }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(t) if t.kind == AuditKind::Approved => won += 1,
            Ok(t) => panic!("unexpected transition {:?}", t.kind),
            Err(AppError::Refused(TransitionError::WrongState { .. })) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(won, 1, "one Approved transition");
    let store = clients[0].store.clone();
    let history = clients[0].audit_kinds(&req.id).await;
    assert_eq!(
        history
            .iter()
            .filter(|k| **k == AuditKind::Approved)
            .count(),
        1,
        "one audit event"
    );
    let applies: usize = clients.iter().map(|c| c.enforcer.applies()).sum();
    assert_eq!(applies, 1, "one apply");
    assert_eq!(
        store.load(&req.id).await.unwrap().unwrap().state,
        State::Active
    );
}

pub async fn quorum_needs_distinct_approvers(b: &dyn Backend) {
    let t = test_app(b.client().await);
    let req = t.app.submit(ask("ledger", ALICE)).await.unwrap();
    let first = t.approve(&req.id, LEAD1).await;
    assert_eq!(first.kind, AuditKind::ApprovalRecorded);
    let again = t.try_approve(&req.id, LEAD1).await;
    assert!(matches!(
        again,
        Err(AppError::Refused(TransitionError::AlreadyApproved {
            missing: 1
        }))
    ));
    assert_eq!(t.enforcer.applies(), 0, "nothing applied before the quorum");
    let second = t.approve(&req.id, GROUP_MEMBER).await;
    assert_eq!(
        second.request.state,
        State::Active,
        "a user-group member counts"
    );
}

pub async fn strangers_and_self_approval_change_nothing(b: &dyn Backend) {
    let t = test_app(b.client().await);
    let req = t.app.submit(ask("payments-db", LEAD1)).await.unwrap();
    let err = t.try_approve(&req.id, ALICE).await.unwrap_err();
    assert_eq!(err.to_string(), "you are not an approver for payments-db");
    let err = t.try_approve(&req.id, LEAD1).await.unwrap_err();
    assert!(
        err.to_string().contains("cannot approve your own request"),
        "{err}"
    );
    assert_eq!(t.app.load(&req.id).await.unwrap(), req, "unchanged");
    // grafana allows self-approval.
    let own = t.app.submit(ask("grafana", LEAD1)).await.unwrap();
    let ok = t.approve(&own.id, LEAD1).await;
    assert_eq!(ok.request.state, State::Active);
}

pub async fn a_pending_request_lapses_after_the_approval_timeout(b: &dyn Backend) {
    let t = test_app(b.client().await);
    let req = t.app.submit(ask("payments-db", ALICE)).await.unwrap();
    assert_eq!(t.sweep(t0() + TimeDelta::minutes(59)).await.lapsed, 0);
    let report = t.sweep(t0() + TimeDelta::hours(1)).await;
    assert_eq!(report.lapsed, 1);
    assert_eq!(t.state_of(&req.id).await, State::Lapsed);
    let late = t.try_approve(&req.id, LEAD1).await;
    assert!(matches!(
        late,
        Err(AppError::Refused(TransitionError::WrongState {
            state: State::Lapsed,
            ..
        }))
    ));
    assert_eq!(t.enforcer.applies(), 0);
}

/// The attempts are the enforcer's (the Kubernetes one's are counted through the fault
/// proxy in kube_enforcer/faults.rs); when it gives up, the app does not ask again.
pub async fn an_apply_the_cluster_gives_up_on_ends_failed(b: &dyn Backend) {
    let t = test_app(b.client().await);
    let req = t.app.submit(ask("payments-db", ALICE)).await.unwrap();
    t.enforcer
        .fail_next_applies(vec![EnforceError::Unavailable("503".to_owned())]);
    let done = t.approve(&req.id, LEAD1).await;
    assert_eq!(done.request.state, State::Failed);
    assert!(
        done.request
            .end_reason
            .as_deref()
            .unwrap()
            .contains("applying the NetworkPolicy failed: the cluster is unavailable: 503"),
        "{:?}",
        done.request.end_reason
    );
    assert_eq!(t.enforcer.applies(), 1);
    assert!(t.enforcer.live_names().is_empty());
    // A refusal is not retried.
    let req = t.app.submit(ask("payments-db", ALICE)).await.unwrap();
    t.enforcer.fail_next_applies([EnforceError::Refused(
        "namespace payments not found".to_owned(),
    )]);
    let done = t.approve(&req.id, LEAD1).await;
    assert_eq!(done.request.state, State::Failed);
    assert_eq!(t.enforcer.applies(), 2);
}

pub async fn an_apply_interrupted_by_a_crash_is_finished_by_a_sweep(b: &dyn Backend) {
    let t = test_app(b.client().await);
    let req = t.app.submit(ask("payments-db", ALICE)).await.unwrap();
    // The replica that approved dies before applying: only the transition is stored.
    let actor = t.app.actor(&user(LEAD1), &req).await;
    let store = t.store.clone();
    crate::store_contract::step(
        store.as_ref(),
        &req,
        jitbot::core::request::Event::Approve { by: actor },
        t0(),
    )
    .await;
    assert!(t.enforcer.live_names().is_empty());
    let report = t.sweep(t0() + TimeDelta::minutes(3)).await;
    assert_eq!(report.activated, 1);
    let after = t.app.load(&req.id).await.unwrap();
    assert_eq!(after.state, State::Active);
    assert_eq!(after.expires_at, Some(t0() + TimeDelta::minutes(33)));
}

pub async fn revoke_removes_access_and_only_permitted_people_may(b: &dyn Backend) {
    let t = test_app(b.client().await);
    let req = active(&t.app, "payments-db", ALICE, LEAD1).await;
    let err = t.app.revoke(&req.id, &user(CAROL), None).await.unwrap_err();
    assert!(err.to_string().starts_with("only the requester"), "{err}");
    assert_eq!(t.enforcer.live_names().len(), 1);
    let done = t
        .app
        .revoke(&req.id, &user(ALICE), Some(Reason::new("done", 0).unwrap()))
        .await
        .unwrap();
    assert_eq!(done.transition.request.state, State::Revoked);
    assert_eq!(done.policy, Ok(()));
    assert!(t.enforcer.live_names().is_empty());
    // The expiry timer of a revoked grant never fires.
    assert_eq!(t.sweep(t0() + TimeDelta::hours(5)).await.claimed, 0);
}

pub async fn a_revoke_the_cluster_refuses_ends_the_grant_and_says_so(b: &dyn Backend) {
    let t = test_app(b.client().await);
    let req = active(&t.app, "payments-db", ALICE, LEAD1).await;
    t.enforcer
        .fail_next_revokes([EnforceError::Refused("forbidden".to_owned())]);
    let done = t.app.revoke(&req.id, &user(ALICE), None).await.unwrap();
    assert_eq!(done.transition.request.state, State::Revoked);
    assert!(done.policy.as_ref().unwrap_err().contains("forbidden"));
    assert!(
        done.sentence().contains("did not delete its policy"),
        "{}",
        done.sentence()
    );
    assert_eq!(
        t.enforcer.live_names().len(),
        1,
        "the policy is still there"
    );
    assert!(
        t.audit_kinds(&req.id)
            .await
            .contains(&AuditKind::RevokeFailing)
    );
    // The reconciler deletes the policy of a grant that is no longer Active.
    t.app
        .reconcile_once(t0() + TimeDelta::minutes(1))
        .await
        .unwrap();
    assert!(t.enforcer.live_names().is_empty());
}

pub async fn extension_is_approved_again_and_moves_the_policy_expiry(b: &dyn Backend) {
    let t = test_app(b.client().await);
    let req = active(&t.app, "payments-db", ALICE, LEAD1).await;
    let asked = t
        .app
        .extend(&req.id, &user(ALICE), Ttl::from_mins(30))
        .await
        .unwrap();
    assert_eq!(asked.kind, AuditKind::ExtensionRequested);
    let done = t.approve(&req.id, LEAD2).await;
    assert_eq!(done.kind, AuditKind::Extended);
    let new_expiry = t0() + TimeDelta::hours(1);
    assert_eq!(done.request.expires_at, Some(new_expiry));
    let live = t.enforcer.policies().remove(0);
    assert_eq!(
        jitbot::core::netpol::expires_at(&live),
        Some(new_expiry),
        "the annotation moved too"
    );
    assert_eq!(t.sweep(t0() + TimeDelta::minutes(45)).await.expired, 0);
    assert_eq!(t.sweep(new_expiry).await.expired, 1);
}

pub async fn slack_being_down_never_blocks_the_lifecycle(b: &dyn Backend) {
    let t = test_app(b.client().await);
    *t.notifier.fail.lock().unwrap() = true;
    let req = t.app.submit(ask("payments-db", ALICE)).await.unwrap();
    let done = t.approve(&req.id, LEAD1).await;
    assert_eq!(done.request.state, State::Active);
    assert_eq!(
        t.audit_kinds(&req.id).await.len(),
        3,
        "the audit stream has every event"
    );
}

pub async fn a_failed_delete_keeps_the_grant_due_and_raises_an_alert(b: &dyn Backend) {
    let t = test_app(b.client().await);
    let req = active(&t.app, "payments-db", ALICE, LEAD1).await;
    t.enforcer
        .fail_next_revokes([EnforceError::Unavailable("timeout".to_owned())]);
    let expiry = t0() + TimeDelta::minutes(30);
    let report = t.sweep(expiry).await;
    assert_eq!((report.expired, report.errors), (0, 1));
    assert_eq!(
        t.state_of(&req.id).await,
        State::Active,
        "not marked expired while the policy exists"
    );
    assert!(
        t.audit_kinds(&req.id)
            .await
            .contains(&AuditKind::RevokeFailing)
    );
    // After the lease another sweep finishes it.
    let report = t.sweep(expiry + TimeDelta::minutes(2)).await;
    assert_eq!(report.expired, 1);
    assert!(t.enforcer.live_names().is_empty());
}

/// Instantiates the lifecycle tests inside a backend's module.
#[macro_export]
macro_rules! lifecycle_contract {
    ($backend:expr) => {
        $crate::contract_tests!(
            lifecycle_contract,
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)],
            $backend;
            a_grant_lives_exactly_its_duration,
            exactly_once_decisions_under_fifty_concurrent_approvals,
            quorum_needs_distinct_approvers,
            strangers_and_self_approval_change_nothing,
            a_pending_request_lapses_after_the_approval_timeout,
            an_apply_the_cluster_gives_up_on_ends_failed,
            an_apply_interrupted_by_a_crash_is_finished_by_a_sweep,
            revoke_removes_access_and_only_permitted_people_may,
            a_revoke_the_cluster_refuses_ends_the_grant_and_says_so,
            extension_is_approved_again_and_moves_the_policy_expiry,
            slack_being_down_never_blocks_the_lifecycle,
            a_failed_delete_keeps_the_grant_due_and_raises_an_alert,
        );
    };
}
