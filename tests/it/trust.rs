//! The store is not a trust root: what someone with write access to Redis (or a Redis
//! rolled back to an older copy) can make jitbot do, against real Redis and the real
//! API server, and what a replayed or out-of-date Slack click can do, over Slack's
//! HTTP protocol. In each case: nothing wider than the catalog allows is ever applied,
//! a revoked grant stays revoked, and a click decides only what its card showed.

use chrono::TimeDelta;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, ListParams, Patch, PatchParams};
use reqwest::StatusCode;

use jitbot::core::actions::{APPROVE, decision_value};
use jitbot::core::catalog::Source;
use jitbot::core::ids::RequestId;
use jitbot::core::netpol;
use jitbot::core::ports::{Clock, Store};
use jitbot::core::request::{AccessRequest, AuditKind, Round, State};

use crate::support::fakes::{ALICE, LEAD1, LEAD2, active, ask, audit_kinds, request_id_in};
use crate::support::slack_world::SlackWorld;
use crate::support::spawn::{Stack, one_replica, state_key};

/// What the attacker in the report stored: all of kube-system, every port, from
/// anywhere.
fn widened(mut req: AccessRequest) -> AccessRequest {
    req.scope.namespace = "kube-system".parse().unwrap();
    req.scope.pod_selector.clear();
    req.scope.ports.clear();
    req.source = Source::Addresses {
        addresses: vec!["0.0.0.0/0".parse().unwrap()],
    };
    req
}

/// Overwrites a request's stored JSON, keeping the seal in front of it (someone who
/// can write to Redis but has no key).
fn overwrite_keeping_the_seal(stack: &Stack, req: &AccessRequest) {
    let key = format!("{}:req:{}", stack.prefix, req.id);
    let mut admin = stack.redis.admin();
    let stored: String = redis::cmd("HGET")
        .arg(&key)
        .arg("json")
        .query(&mut admin)
        .unwrap();
    let seal = &stored[..stored.find(":{").expect("a sealed record") + 1];
    let forged = format!("{seal}{}", serde_json::to_string(req).unwrap());
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg("json")
        .arg(forged)
        .query(&mut admin)
        .unwrap();
}

/// Overwrites a request's stored JSON sealed with jitbot's own key (an insider, or a
/// record from before the catalog was narrowed).
fn overwrite_sealed(stack: &Stack, req: &AccessRequest) {
    let key = format!("{}:req:{}", stack.prefix, req.id);
    let sealed = state_key().seal(&req.id, &serde_json::to_string(req).unwrap());
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg("json")
        .arg(sealed)
        .query(&mut stack.redis.admin())
        .unwrap();
}

/// Every NetworkPolicy of request `id` in any namespace.
async fn policies_of(stack: &Stack, id: &RequestId) -> Vec<NetworkPolicy> {
    let all: Api<NetworkPolicy> = Api::all(stack.cluster.client.clone());
    let selector = format!("{}={id}", netpol::REQUEST_ID_LABEL);
    all.list(&ListParams::default().labels(&selector))
        .await
        .unwrap()
        .items
}

async fn widen_by_hand(stack: &Stack, id: &RequestId) {
    let widen = serde_json::json!({ "spec": { "podSelector": { "matchLabels": null } } });
    stack
        .policies()
        .patch(
            &netpol::policy_name(id),
            &PatchParams::default(),
            &Patch::Merge(&widen),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_edited_without_the_key_is_refused_and_its_policy_deleted() {
    let (stack, clock, app) = one_replica(false).await;
    let grant = active(&app.app, "payments-db", ALICE, LEAD1).await;
    overwrite_keeping_the_seal(&stack, &widened(grant.clone()));

    let err = app.app.load(&grant.id).await.unwrap_err();
    assert!(err.to_string().contains("internal problem"), "{err}");
    clock.advance(TimeDelta::minutes(3));
    let report = app.app.reconcile_once(clock.now()).await.unwrap();
    assert_eq!(report.removed, 1, "{report:?}");
    assert!(policies_of(&stack, &grant.id).await.is_empty());
    let store = stack.store().await;
    let history = store.audit_of(&grant.id).await.unwrap();
    let alert = history.last().unwrap();
    assert_eq!(alert.kind, AuditKind::RecordRejected);
    assert!(alert.detail.contains("seal does not verify"), "{alert:?}");
    // Later passes apply nothing either: the forged record is never read as a grant.
    clock.advance(TimeDelta::minutes(1));
    app.app.reconcile_once(clock.now()).await.unwrap();
    assert!(policies_of(&stack, &grant.id).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_record_wider_than_the_catalog_is_never_applied() {
    let (stack, clock, app) = one_replica(false).await;
    let grant = active(&app.app, "payments-db", ALICE, LEAD1).await;
    // Same namespace, but every port and every source: sealed with the real key.
    let mut wider = grant.clone();
    wider.scope.ports.clear();
    wider.source = Source::Addresses {
        addresses: vec!["0.0.0.0/0".parse().unwrap()],
    };
    overwrite_sealed(&stack, &wider);
    // Someone edits the policy, so the reconciler would put back "what was approved".
    widen_by_hand(&stack, &grant.id).await;
    clock.advance(TimeDelta::minutes(3));
    let report = app.app.reconcile_once(clock.now()).await.unwrap();
    assert_eq!(report.reapplied, 0, "{report:?}");
    assert!(
        policies_of(&stack, &grant.id).await.is_empty(),
        "neither the edit nor the wider record stays"
    );
    let ended = app.app.load(&grant.id).await.unwrap();
    assert_eq!(ended.state, State::Revoked);
    assert!(
        ended
            .end_reason
            .as_deref()
            .unwrap()
            .contains("does not match the catalog"),
        "{ended:?}"
    );
    let kinds = audit_kinds(&stack.store().await, &grant.id).await;
    assert!(kinds.contains(&AuditKind::RecordRejected), "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_of_a_record_wider_than_the_catalog_applies_nothing_and_fails() {
    let (stack, _clock, app) = one_replica(false).await;
    let pending = app.app.submit(ask("payments-db", ALICE)).await.unwrap();
    let mut wider = pending.clone();
    wider.scope.namespace = "kube-system".parse().unwrap();
    overwrite_sealed(&stack, &wider);
    let t = crate::support::fakes::approve(&app.app, &pending.id, LEAD1).await;
    assert_eq!(t.request.state, State::Failed);
    assert!(policies_of(&stack, &pending.id).await.is_empty());
    let kinds = audit_kinds(&stack.store().await, &pending.id).await;
    assert!(kinds.contains(&AuditKind::RecordRejected), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&AuditKind::Failed));
}

/// DESIGN invariant: no resurrection. A Redis restored from before a revoke says the
/// grant is Active again; its policy is gone, so the grant is ended, not re-created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_store_does_not_bring_a_revoked_grant_back() {
    let (stack, clock, app) = one_replica(false).await;
    let grant = active(&app.app, "payments-db", ALICE, LEAD1).await;
    let keys = [
        format!("{}:req:{}", stack.prefix, grant.id),
        format!("{}:state:active", stack.prefix),
        format!("{}:state:revoked", stack.prefix),
        format!("{}:due", stack.prefix),
    ];
    let mut admin = stack.redis.admin();
    let before: Vec<Option<Vec<u8>>> = keys
        .iter()
        .map(|k| redis::cmd("DUMP").arg(k).query(&mut admin).unwrap())
        .collect();
    app.app
        .revoke(&grant.id, &LEAD1.parse().unwrap(), None)
        .await
        .unwrap();
    assert!(policies_of(&stack, &grant.id).await.is_empty());
    // The rollback: every key as it was before the revoke.
    for (key, dump) in keys.iter().zip(&before) {
        let _: () = redis::cmd("DEL").arg(key).query(&mut admin).unwrap();
        if let Some(dump) = dump {
            let _: () = redis::cmd("RESTORE")
                .arg(key)
                .arg(0)
                .arg(dump.as_slice())
                .query(&mut admin)
                .unwrap();
        }
    }
    assert_eq!(app.app.load(&grant.id).await.unwrap().state, State::Active);
    clock.advance(TimeDelta::minutes(3));
    let report = app.app.reconcile_once(clock.now()).await.unwrap();
    assert_eq!((report.withdrawn, report.reapplied), (1, 0), "{report:?}");
    assert!(policies_of(&stack, &grant.id).await.is_empty());
    assert_eq!(app.app.load(&grant.id).await.unwrap().state, State::Revoked);
}

/// Alice's active grant through Slack, approved by LEAD1: the world and its id.
async fn granted_over_slack() -> (SlackWorld, String) {
    let w = SlackWorld::start().await;
    let (_, answer) = w
        .command(ALICE, "request payments-db 30m INC-4411 replica lag")
        .await;
    let id = request_id_in(&answer);
    crate::support::fakes::approve(&w.app, &id.parse().unwrap(), LEAD1).await;
    (w, id)
}

#[tokio::test]
async fn a_replayed_or_out_of_date_click_cannot_approve_a_later_extension() {
    let w = SlackWorld::start().await;
    let (_, answer) = w
        .command(ALICE, "request payments-db 30m INC-4411 replica lag")
        .await;
    let id = request_id_in(&answer);
    // LEAD1 approves from the card; the signed request is recorded on the way.
    let click = w.inbound.click_body(LEAD1, APPROVE, &id, "first");
    assert_eq!(
        w.inbound
            .post_signed("/slack/interactions", click.clone())
            .await
            .0,
        StatusCode::OK
    );
    let rid: RequestId = id.parse().unwrap();
    w.slack.card_update("· expires").await;
    assert_eq!(w.app.load(&rid).await.unwrap().state, State::Active);

    let (_, asked) = w.command(ALICE, &format!("extend {id} 1h")).await;
    assert!(asked.contains("Asked for *1h* more"), "{asked}");
    // The exact signed click again, within Slack's window: refused as a replay.
    w.inbound.post_signed("/slack/interactions", click).await;
    let replay = w.slack.wait_for("respond:first", |_| true).await;
    assert!(
        replay["text"].as_str().unwrap().contains("already acted"),
        "{replay}"
    );
    // A new click on the first card's button: out of date, privately.
    w.click(LEAD1, APPROVE, &id, "old-card").await;
    let stale = w.slack.wait_for("respond:old-card", |_| true).await;
    assert!(
        stale["text"]
            .as_str()
            .unwrap()
            .starts_with("this card is out of date"),
        "{stale}"
    );
    assert_eq!(stale["replace_original"], false);
    let waiting = w.app.load(&rid).await.unwrap();
    let ext = waiting
        .extension
        .as_ref()
        .expect("the extension still waits");
    assert!(ext.approvals.is_empty());
    // The extension's own card decides it.
    let value = decision_value(&rid, Round::of(&waiting));
    w.click(LEAD2, APPROVE, &value, "new-card").await;
    extended_in_the_audit_thread(&w).await;
    let extended = w.app.load(&rid).await.unwrap();
    assert!(extended.extension.is_none(), "{extended:?}");
    assert!(extended.expires_at > waiting.expires_at);
}

#[tokio::test]
async fn whoever_asks_for_an_extension_cannot_approve_it_alone() {
    let (w, id) = granted_over_slack().await;
    let rid: RequestId = id.parse().unwrap();
    // LEAD1, an approver, asks for more time on Alice's grant...
    let (_, asked) = w.command(LEAD1, &format!("extend {id} 30m")).await;
    assert!(asked.contains("Asked for"), "{asked}");
    let waiting = w.app.load(&rid).await.unwrap();
    let value = decision_value(&rid, Round::of(&waiting));
    // ...and cannot approve it themselves.
    w.click(LEAD1, APPROVE, &value, "own").await;
    let own = w.slack.wait_for("respond:own", |_| true).await;
    assert!(
        own["text"]
            .as_str()
            .unwrap()
            .contains("cannot approve your own request"),
        "{own}"
    );
    assert_eq!(w.app.load(&rid).await.unwrap(), waiting, "nothing changed");
    w.click(LEAD2, APPROVE, &value, "other").await;
    extended_in_the_audit_thread(&w).await;
    assert!(w.app.load(&rid).await.unwrap().extension.is_none());
}

/// Waits for the audit thread's line that a grant was extended (posted once the
/// extension's transition is stored).
async fn extended_in_the_audit_thread(w: &SlackWorld) {
    w.slack
        .wait_for("chat.postMessage", |b| {
            b["text"].as_str().is_some_and(|t| t.contains("*extended*"))
        })
        .await;
}

#[tokio::test]
async fn a_replayed_command_is_acted_on_once() {
    let w = SlackWorld::start().await;
    let body = w
        .inbound
        .command_body(ALICE, "request payments-db 30m INC-4411 replica lag");
    let (first, answer) = w.inbound.post_signed("/slack/commands", body.clone()).await;
    assert_eq!(first, StatusCode::OK);
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let id = request_id_in(answer["text"].as_str().unwrap());
    let (again, replayed) = w.inbound.post_signed("/slack/commands", body).await;
    assert_eq!(again, StatusCode::OK);
    assert!(replayed.contains("already acted"), "{replayed}");
    let mine = w.app.list_for(&ALICE.parse().unwrap()).await.unwrap();
    assert_eq!(mine.len(), 1, "one request, {id}");
    // The same words typed again are a new request.
    let (_, typed) = w
        .command(ALICE, "request payments-db 30m INC-4411 replica lag")
        .await;
    assert!(typed.contains("sent to"), "{typed}");
}
