//! The App Home over HTTP: published when a person opens it (`app_home_opened`), with
//! their grants, their pending requests and, for approvers, what waits for them;
//! republished after each change of a request they are part of; its Revoke, Cancel
//! and Approve buttons work, and a refused click is told by DM (a view has no
//! `response_url`).

use chrono::TimeDelta;
use reqwest::StatusCode;
use serde_json::Value;

use jitbot::app::Decision;
use jitbot::core::actions::{APPROVE, CANCEL, DENY, EXTEND, REVOKE};
use jitbot::core::request::State;

use crate::support::fakes::{ALICE, CAROL, LEAD1, request_id_in, user};
use crate::support::slack_world::SlackWorld;

/// Whether `home` has a button `action` carrying `value`.
fn has_button(home: &Value, action: &str, value: &str) -> bool {
    home["blocks"].as_array().into_iter().flatten().any(|b| {
        b["elements"].as_array().is_some_and(|es| {
            es.iter()
                .any(|e| e["action_id"] == action && e["value"] == value)
        })
    })
}

fn shows(home: &Value, text: &str) -> bool {
    home.to_string().contains(text)
}

/// Waits until `user`'s Home, as Slack keeps it, satisfies `pred`; returns it.
async fn home_until(w: &SlackWorld, user: &str, pred: impl Fn(&Value) -> bool) -> Value {
    w.slack
        .wait_until(|s| s.home(user).is_some_and(|h| pred(&h)))
        .await;
    w.slack.home(user).unwrap()
}

/// `user` opens the Home tab (a new event each time).
async fn open_home(w: &SlackWorld, user: &str) {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let body = w.app_home_opened(&format!("Ev0HOME{n:05}"), user, "home");
    assert_eq!(w.post_event(&body, None).await.0, StatusCode::OK);
}

async fn request(w: &SlackWorld, who: &str, text: &str) -> String {
    let (status, answer) = w.command(who, text).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    request_id_in(&answer)
}

/// `who` clicks `action` on `value` in the Home they were last shown.
async fn click_in_home(w: &SlackWorld, who: &str, home: &Value, action: &str, value: &str) {
    let body = w.home_click_body(who, home, action, value);
    assert_eq!(
        w.post_signed("/slack/interactions", body).await.0,
        StatusCode::OK
    );
}

async fn state_of(w: &SlackWorld, id: &str) -> State {
    w.app.load(&id.parse().unwrap()).await.unwrap().state
}

#[tokio::test]
async fn opening_the_home_shows_the_requesters_and_the_approvers_parts() {
    let w = SlackWorld::start().await;
    let id = request(&w, ALICE, "request payments-db 30m INC-4411 replica lag").await;
    open_home(&w, ALICE).await;
    open_home(&w, LEAD1).await;
    open_home(&w, CAROL).await;
    let alice = home_until(&w, ALICE, |h| has_button(h, CANCEL, &id)).await;
    assert!(shows(&alice, "*Your pending requests*"));
    assert!(shows(
        &alice,
        "You have no active grants. Type `/jit` to ask for access."
    ));
    assert!(!shows(&alice, "Waiting for you"), "Alice approves nothing");
    let lead = home_until(&w, LEAD1, |h| has_button(h, APPROVE, &id)).await;
    assert!(has_button(&lead, DENY, &id));
    assert!(shows(&lead, "*Waiting for you*"));
    assert!(shows(
        &lead,
        &format!("<@{ALICE}> asks for *30m* of *payments-db*")
    ));
    let carol = home_until(&w, CAROL, |_| true).await;
    assert!(shows(&carol, "Type `/jit` to ask for access."), "{carol:#}");
    assert!(
        !shows(&carol, &id),
        "nobody sees another's request unless they decide it"
    );
}

#[tokio::test]
async fn the_home_follows_each_change_of_a_request() {
    let w = SlackWorld::start().await;
    // Nobody's Home is published before they open it (opening publishes it afresh).
    let first = request(&w, ALICE, "request payments-db 30m INC-4410 first look").await;
    w.notifier.flush().await;
    assert!(
        w.slack.home(ALICE).is_none(),
        "unopened Homes are left alone"
    );
    open_home(&w, ALICE).await;
    home_until(&w, ALICE, |h| has_button(h, CANCEL, &first)).await;
    w.app
        .cancel(&first.parse().unwrap(), &user(ALICE))
        .await
        .unwrap();
    home_until(&w, ALICE, |h| !has_button(h, CANCEL, &first)).await;
    // Requested: the Home, once opened, follows without opening it again.
    let id = request(&w, ALICE, "request payments-db 30m INC-4411 replica lag").await;
    home_until(&w, ALICE, |h| has_button(h, CANCEL, &id)).await;
    // Approved from the approver's Home: both Homes follow.
    open_home(&w, LEAD1).await;
    let lead = home_until(&w, LEAD1, |h| has_button(h, APPROVE, &id)).await;
    click_in_home(&w, LEAD1, &lead, APPROVE, &id).await;
    let alice = home_until(&w, ALICE, |h| has_button(h, REVOKE, &id)).await;
    assert!(has_button(&alice, EXTEND, &id));
    assert!(shows(&alice, "ends 14:30 UTC (30 min left)"), "{alice:#}");
    home_until(&w, LEAD1, |h| !has_button(h, APPROVE, &id)).await;
    // An extension asked for, then approved from the approver's Home.
    let (status, _) = w.command(ALICE, &format!("extend {id} 30m")).await;
    assert_eq!(status, StatusCode::OK);
    home_until(&w, ALICE, |h| shows(h, "30m more asked for")).await;
    open_home(&w, LEAD1).await;
    let lead = home_until(&w, LEAD1, |h| shows(h, "more on *payments-db*")).await;
    let value = lead["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
        .find(|e| e["action_id"] == APPROVE)
        .and_then(|e| e["value"].as_str().map(str::to_owned))
        .unwrap();
    assert!(value.starts_with(&format!("{id}@")), "{value}");
    click_in_home(&w, LEAD1, &lead, APPROVE, &value).await;
    home_until(&w, ALICE, |h| {
        has_button(h, REVOKE, &id) && !shows(h, "more asked for") && !shows(h, "ends 14:30 UTC")
    })
    .await;
    // Expired: the grant leaves the Home.
    w.clock.advance(TimeDelta::minutes(90));
    w.app.sweep_once(w.app.now()).await.unwrap();
    assert_eq!(state_of(&w, &id).await, State::Expired);
    home_until(&w, ALICE, |h| shows(h, "You have no active grants")).await;
    // Denied: the pending request leaves the Home.
    let second = request(&w, ALICE, "request payments-db 30m INC-4412 again").await;
    home_until(&w, ALICE, |h| has_button(h, CANCEL, &second)).await;
    w.app
        .decide(
            &second.parse().unwrap(),
            &user(LEAD1),
            Decision::Deny { note: None },
            jitbot::core::request::Round::Request,
        )
        .await
        .unwrap();
    home_until(&w, ALICE, |h| {
        !shows(h, &second) && shows(h, "Nothing of yours is waiting")
    })
    .await;
}

#[tokio::test]
async fn revoke_and_cancel_from_the_home_work() {
    let w = SlackWorld::start().await;
    open_home(&w, ALICE).await;
    let grant = request(&w, ALICE, "request payments-db 30m INC-4411 replica lag").await;
    assert_eq!(
        w.click(LEAD1, APPROVE, &grant, "lead").await,
        StatusCode::OK
    );
    let pending = request(&w, ALICE, "request ledger 30m INC-4412 ledger check").await;
    let alice = home_until(&w, ALICE, |h| {
        has_button(h, REVOKE, &grant) && has_button(h, CANCEL, &pending)
    })
    .await;
    assert_eq!(w.enforcer.live_names().len(), 1);
    click_in_home(&w, ALICE, &alice, REVOKE, &grant).await;
    let alice = home_until(&w, ALICE, |h| !has_button(h, REVOKE, &grant)).await;
    assert_eq!(state_of(&w, &grant).await, State::Revoked);
    assert!(w.enforcer.live_names().is_empty(), "the policy is gone");
    click_in_home(&w, ALICE, &alice, CANCEL, &pending).await;
    home_until(&w, ALICE, |h| shows(h, "Nothing of yours is waiting")).await;
    assert_eq!(state_of(&w, &pending).await, State::Cancelled);
}

#[tokio::test]
async fn a_refused_click_in_the_home_is_told_by_dm() {
    let w = SlackWorld::start().await;
    let id = request(&w, ALICE, "request payments-db 30m INC-4411 replica lag").await;
    open_home(&w, LEAD1).await;
    let stale = home_until(&w, LEAD1, |h| has_button(h, APPROVE, &id)).await;
    let (status, _) = w.command(ALICE, &format!("cancel {id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(state_of(&w, &id).await, State::Cancelled);
    // The approver clicks Approve in the Home they still see.
    click_in_home(&w, LEAD1, &stale, APPROVE, &id).await;
    w.slack
        .wait_until(|s| s.dm_channels().contains_key(LEAD1))
        .await;
    let dm = w.slack.dm_channels()[LEAD1].clone();
    let told = w
        .slack
        .wait_for("chat.postMessage", |b| b["channel"] == dm.as_str())
        .await;
    assert!(
        !told["text"].as_str().unwrap_or("").is_empty(),
        "the refusal says why: {told}"
    );
    assert_eq!(state_of(&w, &id).await, State::Cancelled, "nothing changed");
}
