//! Approval policy through the Slack surface: an on-call rule approves at once and
//! the grant is applied without a click (and audited as such); a person the target
//! does not list is refused with no card; a reason must fit the target's pattern;
//! break-glass applies at once, tells every approver, is announced again until an
//! approver acknowledges it, and ends on time; the caps on active grants refuse with
//! a message that names them.

use std::sync::Arc;

use chrono::TimeDelta;
use reqwest::StatusCode;

use jitbot::adapters::memory::MemoryStore;
use jitbot::core::actions::{ACKNOWLEDGE, REVOKE_GRANT};
use jitbot::core::catalog::fixtures::{address_config, requester_config, target_config};
use jitbot::core::catalog::{
    AccessConfig, AutoApproveConfig, BreakGlassConfig, Catalog, TargetConfig,
};
use jitbot::core::ids::RequestId;
use jitbot::core::ports::{Clock, Store};
use jitbot::core::request::{AuditKind, State};

use crate::redis_store::redis;
use crate::store_contract::Backend;
use crate::support::fake_slack::FakeSlack;
use crate::support::fakes::{
    ALICE, CAROL, GROUP_MEMBER, LEAD1, LEAD2, approve, audit_kinds, request_id_in, user,
};
use crate::support::slack_world::{APPROVALS, AUDIT, SlackWorld};

/// The on-call rotation, as PagerDuty keeps it in a Slack user group: Alice.
const ON_CALL: &str = "S0ONCALL01";
const DBAS: &str = "S02DBAS001";

/// `payments-db`: on-call members are approved at once for up to 1h; reasons must
/// name an incident. `ledger`: only Alice may ask; break-glass up to 1h, reviewed
/// within 24h; one grant at a time. Nobody holds more than two grants.
fn policy_catalog() -> Catalog {
    let approvers = vec![LEAD1.to_owned(), LEAD2.to_owned(), DBAS.to_owned()];
    let payments = TargetConfig {
        approvers: approvers.clone(),
        reason_pattern: r"\bINC-\d+".to_owned(),
        reason_hint: "name the incident, e.g. INC-4411".to_owned(),
        auto_approve: vec![AutoApproveConfig {
            name: "on-call".to_owned(),
            who: vec![ON_CALL.to_owned()],
            max_duration: "1h".to_owned(),
            hours: None,
        }],
        ..target_config("payments-db")
    };
    let ledger = TargetConfig {
        approvers,
        requesters: vec![ALICE.to_owned()],
        break_glass: Some(BreakGlassConfig {
            max_duration: "1h".to_owned(),
            review_within: "24h".to_owned(),
        }),
        max_active_grants: 1,
        ..target_config("ledger")
    };
    let access = AccessConfig {
        max_active_per_requester: 2,
        ..AccessConfig::default()
    };
    Catalog::build(
        &access,
        &[payments, ledger, target_config("grafana")],
        &[
            requester_config(ALICE, address_config(&["10.8.0.14"])),
            requester_config(CAROL, address_config(&["10.8.0.15"])),
        ],
    )
    .expect("the policy catalog is valid")
}

async fn world() -> SlackWorld {
    world_on(Arc::new(MemoryStore::new())).await
}

async fn world_on(store: Arc<dyn Store>) -> SlackWorld {
    SlackWorld::start_in(
        store,
        policy_catalog(),
        &[(DBAS, &[GROUP_MEMBER]), (ON_CALL, &[ALICE])],
    )
    .await
}

/// Top-level messages in `channel`, as their bodies show now.
fn top_level(slack: &FakeSlack, channel: &str) -> Vec<String> {
    slack
        .messages(channel)
        .into_iter()
        .filter(|m| m.thread_ts.is_none())
        .map(|m| m.body.to_string())
        .collect()
}

/// What `user` was sent by DM, as bodies.
fn dms_to(slack: &FakeSlack, person: &str) -> Vec<String> {
    let Some(channel) = slack.dm_channels().get(person).cloned() else {
        return Vec::new();
    };
    slack
        .messages(&channel)
        .into_iter()
        .map(|m| m.body.to_string())
        .collect()
}

/// The text of the `n`th answer (from 1) posted to `/jit` typed by `who` after its ack.
async fn later_answer(w: &SlackWorld, who: &str, n: usize) -> String {
    let method = format!("respond:cmd-{who}");
    w.slack.wait_until(|s| s.calls(&method).len() >= n).await;
    let body = &w.slack.calls(&method)[n - 1];
    body["text"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn an_on_call_request_is_approved_by_its_rule_and_applied_without_a_click() {
    let w = world().await;
    let (status, answer) = w
        .command(ALICE, "request payments-db 30m INC-4411 replica lag")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(answer.contains("approved by rule `on-call`"), "{answer}");
    assert!(answer.contains("open until 14:30 UTC"), "{answer}");
    let id: RequestId = request_id_in(&answer).parse().unwrap();
    assert_eq!(w.enforcer.live_names(), vec![format!("payments/jit-{id}")]);
    assert_eq!(
        audit_kinds(w.store.as_ref(), &id).await,
        vec![
            AuditKind::Requested,
            AuditKind::AutoApproved,
            AuditKind::Activated
        ]
    );
    // The approvers still see it, marked, with a way to end it.
    w.slack
        .wait_until(|s| {
            top_level(s, APPROVALS)
                .iter()
                .any(|c| c.contains("Auto-approved by rule") && c.contains(REVOKE_GRANT))
        })
        .await;
    let audit = w
        .slack
        .wait_for("chat.postMessage", |b| {
            b["channel"] == AUDIT && b["text"].as_str().unwrap_or("").contains("auto approved")
        })
        .await;
    assert!(
        audit["text"].as_str().unwrap().contains("on-call"),
        "{audit}"
    );

    // Revoke from the card: the grant ends, the card stays, only the clicker is told.
    let cards_before = top_level(&w.slack, APPROVALS).len();
    let status = w
        .click(LEAD1, REVOKE_GRANT, id.as_str(), "lead-revokes")
        .await;
    assert_eq!(status, StatusCode::OK);
    let told = w.slack.wait_for("respond:lead-revokes", |_| true).await;
    assert!(told["text"].as_str().unwrap().contains("Revoked"), "{told}");
    assert_ne!(told["replace_original"], true, "the card is kept: {told}");
    assert!(w.enforcer.live_names().is_empty());
    assert_eq!(w.app.load(&id).await.unwrap().state, State::Revoked);
    assert_eq!(top_level(&w.slack, APPROVALS).len(), cards_before);
}

#[tokio::test]
async fn no_rule_approves_more_than_its_longest_grant_or_anyone_outside_it() {
    let w = world().await;
    // Alice is on call, but 2h is over the rule's 1h: a person must approve.
    let (_, answer) = w
        .command(ALICE, "request payments-db 2h INC-4411 replica lag")
        .await;
    assert!(answer.contains("sent to"), "{answer}");
    let id: RequestId = request_id_in(&answer).parse().unwrap();
    assert_eq!(w.app.load(&id).await.unwrap().state, State::Pending);
    // Carol is not on call.
    let (_, answer) = w
        .command(CAROL, "request payments-db 30m INC-4411 replica lag")
        .await;
    let carols: RequestId = request_id_in(&answer).parse().unwrap();
    assert_eq!(w.app.load(&carols).await.unwrap().state, State::Pending);
    assert!(w.enforcer.live_names().is_empty(), "nothing applied");
    approve(&w.app, &carols, LEAD1).await;
    assert_eq!(w.app.load(&carols).await.unwrap().state, State::Active);
}

#[tokio::test]
async fn a_requester_the_target_does_not_list_is_refused_and_no_card_is_posted() {
    let w = world().await;
    let (status, answer) = w
        .command(CAROL, "request ledger 30m INC-4411 reconcile the books")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        answer,
        format!("you cannot request ledger; ask in <#{APPROVALS}> if you need it")
    );
    assert!(
        w.store
            .list_by_requester(&user(CAROL))
            .await
            .unwrap()
            .is_empty(),
        "nothing was stored"
    );
    // `/jit targets` shows Carol only what she may ask for.
    let (_, targets) = w.command(CAROL, "targets").await;
    assert!(targets.contains("`payments-db`"), "{targets}");
    assert!(!targets.contains("`ledger`"), "{targets}");
    let (_, alices) = w.command(ALICE, "targets").await;
    assert!(alices.contains("`ledger`"), "{alices}");
    assert!(top_level(&w.slack, APPROVALS).is_empty(), "no card");
}

#[tokio::test]
async fn a_reason_that_does_not_fit_the_pattern_is_answered_with_the_hint() {
    let w = world().await;
    let (_, answer) = w
        .command(CAROL, "request payments-db 30m checking replica lag")
        .await;
    assert_eq!(
        answer,
        "that reason does not fit payments-db's rule: name the incident, e.g. INC-4411"
    );
    assert!(
        w.store
            .list_by_requester(&user(CAROL))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn break_glass_applies_at_once_is_announced_until_acknowledged_and_ends_on_time() {
    break_glass_is_reviewed(world().await).await;
}

/// The same on the real Redis store, where an ended request keeps its review timer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn break_glass_on_redis_is_announced_until_acknowledged_after_it_ended() {
    let backend = redis().await;
    break_glass_is_reviewed(world_on(backend.client().await).await).await;
}

async fn break_glass_is_reviewed(w: SlackWorld) {
    let (status, ack) = w
        .command(ALICE, "breakglass ledger 30m INC-9 the books are on fire")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(ack.contains("Breaking the glass on `ledger`"), "{ack}");
    let answer = later_answer(&w, ALICE, 1).await;
    assert!(
        answer.contains("Break-glass access to *ledger* is open until 14:30 UTC"),
        "{answer}"
    );
    let id: RequestId = answer
        .rsplit_once("(`")
        .and_then(|(_, rest)| rest.split('`').next())
        .expect("the answer names the request")
        .parse()
        .unwrap();
    assert_eq!(w.enforcer.live_names(), vec![format!("payments/jit-{id}")]);
    assert_eq!(
        audit_kinds(w.store.as_ref(), &id).await,
        vec![
            AuditKind::Requested,
            AuditKind::BreakGlassUsed,
            AuditKind::Activated
        ]
    );

    // Every approver, the group's members too, is told by DM; the card is the
    // break-glass card with Acknowledge; the audit thread is loud.
    for approver in [LEAD1, LEAD2, GROUP_MEMBER] {
        w.slack
            .wait_until(|s| {
                dms_to(s, approver)
                    .iter()
                    .any(|m| m.contains("used *break-glass* on *ledger*"))
            })
            .await;
    }
    assert!(
        dms_to(&w.slack, ALICE)
            .iter()
            .all(|m| !m.contains("used *break-glass*"))
    );
    w.slack
        .wait_until(|s| {
            top_level(s, APPROVALS)
                .iter()
                .any(|c| c.contains("BREAK-GLASS: ledger") && c.contains(ACKNOWLEDGE))
        })
        .await;
    w.slack
        .wait_for("chat.postMessage", |b| {
            b["channel"] == AUDIT && b["text"].as_str().unwrap_or("").contains("<!channel>")
        })
        .await;

    // It ends on time, like any grant.
    w.clock.advance(TimeDelta::minutes(30));
    let report = w.app.sweep_once(w.clock.now()).await.unwrap();
    assert_eq!(report.expired, 1);
    assert!(w.enforcer.live_names().is_empty());

    // Unacknowledged, it is announced again each review window, after its end too.
    let reminders = |s: &FakeSlack| {
        top_level(s, AUDIT)
            .iter()
            .filter(|m| m.contains("is still not acknowledged"))
            .count()
    };
    w.clock.advance(TimeDelta::hours(24));
    let report = w.app.sweep_once(w.clock.now()).await.unwrap();
    assert_eq!(report.reannounced, 1);
    w.slack.wait_until(|s| reminders(s) == 1).await;
    w.clock.advance(TimeDelta::hours(24));
    assert_eq!(
        w.app.sweep_once(w.clock.now()).await.unwrap().reannounced,
        1
    );
    w.slack.wait_until(|s| reminders(s) == 2).await;
    let metrics = w.app.metrics().encode();
    assert!(
        metrics.contains("jitbot_break_glass_total{outcome=\"unacknowledged\"} 2"),
        "{metrics}"
    );

    // Its user, no approver, cannot acknowledge it (an approver who broke the glass
    // cannot either: see the lifecycle's tests); an approver can, and then it is quiet.
    w.click(ALICE, ACKNOWLEDGE, id.as_str(), "alice-acks").await;
    let refused = w.slack.wait_for("respond:alice-acks", |_| true).await;
    assert!(
        refused["text"]
            .as_str()
            .unwrap()
            .contains("you are not an approver for ledger"),
        "{refused}"
    );
    w.click(LEAD2, ACKNOWLEDGE, id.as_str(), "lead-acks").await;
    w.slack.wait_for("respond:lead-acks", |_| true).await;
    let after = w.app.load(&id).await.unwrap();
    let bg = after.break_glass.clone().expect("a break-glass use");
    assert_eq!(bg.acknowledged_by, Some(user(LEAD2)));
    assert_eq!(after.due_at(), None, "nothing more to announce");
    w.clock.advance(TimeDelta::hours(48));
    assert_eq!(
        w.app.sweep_once(w.clock.now()).await.unwrap().reannounced,
        0
    );
    assert_eq!(
        audit_kinds(w.store.as_ref(), &id).await.last(),
        Some(&AuditKind::BreakGlassAcknowledged)
    );
}

#[tokio::test]
async fn break_glass_is_refused_where_the_target_offers_none_or_for_longer_than_it_allows() {
    let w = world().await;
    w.command(
        ALICE,
        "breakglass payments-db 30m INC-9 the books are on fire",
    )
    .await;
    let answer = later_answer(&w, ALICE, 1).await;
    assert_eq!(
        answer,
        "payments-db has no break-glass access; use `/jit request` and ask its approvers"
    );
    w.command(ALICE, "breakglass ledger 90m INC-9 the books are on fire")
        .await;
    let answer = later_answer(&w, ALICE, 2).await;
    assert_eq!(
        answer,
        "break-glass on ledger lasts at most 1h; ask for 1h or less"
    );
    assert!(w.enforcer.live_names().is_empty());
    assert!(
        w.store
            .list_by_requester(&user(ALICE))
            .await
            .unwrap()
            .is_empty(),
        "nothing was stored"
    );
}

#[tokio::test]
async fn the_caps_on_active_grants_refuse_with_a_message_that_names_them() {
    let w = world().await;
    // ledger holds one grant at a time.
    let (_, answer) = w
        .command(ALICE, "request ledger 30m INC-4411 reconcile the books")
        .await;
    let first: RequestId = request_id_in(&answer).parse().unwrap();
    approve(&w.app, &first, LEAD1).await;
    let (_, again) = w
        .command(ALICE, "request ledger 30m INC-4411 reconcile again")
        .await;
    assert!(
        again.starts_with("ledger already has 1 active grant(s), its limit (max_active_grants)"),
        "{again}"
    );
    // Alice holds two grants at most: ledger and an on-call payments-db; a third is refused.
    let (_, second) = w
        .command(ALICE, "request payments-db 30m INC-4411 replica lag")
        .await;
    assert!(second.contains("approved by rule `on-call`"), "{second}");
    let (_, third) = w
        .command(ALICE, "request grafana 30m INC-4411 dashboards")
        .await;
    assert!(
        third.starts_with("you already hold 2 active grant(s), the most one person may"),
        "{third}"
    );
    assert_eq!(w.enforcer.live_names().len(), 2);
}

#[tokio::test]
async fn an_approver_sees_an_unacknowledged_break_glass_use_in_their_home_and_acknowledges_it_there()
 {
    let w = world().await;
    w.command(ALICE, "breakglass ledger 30m INC-9 the books are on fire")
        .await;
    let answer = later_answer(&w, ALICE, 1).await;
    assert!(answer.contains("is open until"), "{answer}");
    let body = w.app_home_opened("Ev0GLASS0001", LEAD1, "home");
    assert_eq!(w.post_event(&body, None).await.0, StatusCode::OK);
    w.slack
        .wait_until(|s| {
            s.home(LEAD1)
                .is_some_and(|h| h.to_string().contains("by break-glass"))
        })
        .await;
    let home = w.slack.home(LEAD1).unwrap();
    let id = w.store.list_by_requester(&user(ALICE)).await.unwrap()[0]
        .id
        .clone();
    let click = w.home_click_body(LEAD1, &home, ACKNOWLEDGE, id.as_str());
    assert_eq!(
        w.post_signed("/slack/interactions", click).await.0,
        StatusCode::OK
    );
    w.slack
        .wait_until(|s| {
            s.home(LEAD1)
                .is_some_and(|h| !h.to_string().contains("by break-glass"))
        })
        .await;
    let bg = w.app.load(&id).await.unwrap().break_glass.unwrap();
    assert_eq!(bg.acknowledged_by, Some(user(LEAD1)));
    // Its user does not see their own use as something to review.
    let body = w.app_home_opened("Ev0GLASS0002", ALICE, "home");
    assert_eq!(w.post_event(&body, None).await.0, StatusCode::OK);
    w.slack.wait_until(|s| s.home(ALICE).is_some()).await;
    assert!(
        !w.slack
            .home(ALICE)
            .unwrap()
            .to_string()
            .contains(ACKNOWLEDGE)
    );
}
