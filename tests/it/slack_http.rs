//! The Slack surface over Slack's real HTTP protocol: signed slash commands and
//! button clicks in, Web API calls out to the fake Slack.

use chrono::TimeDelta;
use reqwest::StatusCode;
use serde_json::{Value, json};

use jitbot::adapters::http::signature;
use jitbot::core::actions::{APPROVE, DENY};
use jitbot::core::request::{AuditKind, State};

use crate::support::fake_slack::Scripted;
use crate::support::fakes::{
    ALICE, CAROL, GROUP_MEMBER, LEAD1, LEAD2, approve, audit_kinds, request_id_in,
};
use crate::support::slack_world::{APPROVALS, AUDIT, SECRET, SlackWorld};

/// Sends `/jit request …` and returns the new request's id from the store.
async fn request(w: &SlackWorld, user: &str, text: &str) -> String {
    let (status, answer) = w.command(user, text).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let id = request_id_in(&answer);
    let stored = w.store.load(&id.parse().unwrap()).await.unwrap();
    assert_eq!(
        stored.map(|r| r.requester.to_string()),
        Some(user.to_owned())
    );
    id
}

fn card_text(card: &Value) -> String {
    card["blocks"].to_string()
}

#[tokio::test]
async fn a_signed_request_is_acked_and_posts_a_card_with_working_buttons() {
    let w = SlackWorld::start().await;
    let (status, answer) = w
        .command(ALICE, "request payments-db 30m INC-4411 replica lag")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        answer.contains(&format!("sent to <#{APPROVALS}>")),
        "{answer}"
    );
    let card = w.slack.posted_to(APPROVALS).await;
    let blocks = card_text(&card);
    for expected in [
        "payments-db",
        "INC-4411 replica lag",
        "10.8.0.14/32",
        "5432/TCP",
        "default-deny present, 4 pods",
        "0 of 1 approvals",
        APPROVE,
        DENY,
        "kind: NetworkPolicy",
    ] {
        assert!(
            blocks.contains(expected),
            "card lacks {expected:?}: {blocks}"
        );
    }
    let opening = w.slack.posted_to(AUDIT).await;
    assert!(
        opening["text"]
            .as_str()
            .unwrap()
            .contains("requested *30m* of *payments-db*")
    );
}

#[tokio::test]
async fn the_ack_never_waits_on_slack() {
    let w = SlackWorld::start().await;
    // Slack holds every post back for ten minutes.
    for _ in 0..4 {
        w.slack.script(
            "chat.postMessage",
            Scripted::RateLimited {
                retry_after_secs: 600,
            },
        );
    }
    // Were the ack to wait for the card, it would wait the ten minutes: this bound
    // fails the test long before.
    let (status, answer) = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        w.command(ALICE, "request payments-db 30m INC-4411 replica lag"),
    )
    .await
    .expect("the ack does not wait on Slack");
    assert_eq!(status, StatusCode::OK);
    let id = request_id_in(&answer);
    assert!(answer.contains("payments-db"), "{answer}");
    let stored = w.app.load(&id.parse().unwrap()).await.unwrap();
    assert_eq!(stored.state, jitbot::core::request::State::Pending);
}

#[tokio::test]
async fn forged_stale_unsigned_and_oversized_requests_are_refused_and_store_nothing() {
    let w = SlackWorld::start().await;
    let body = w.command_body(ALICE, "request payments-db 30m INC-4411 replica lag");
    let now = w.clock_secs();
    let forged = signature::sign("not-the-secret", &now.to_string(), body.as_bytes());
    let stale_ts = (now - 6 * 60).to_string();
    let stale = signature::sign(SECRET, &stale_ts, body.as_bytes());
    // The far end of i64: `now - ts` would overflow were it not saturated.
    let min_ts = i64::MIN.to_string();
    let min = signature::sign(SECRET, &min_ts, body.as_bytes());
    let cases = [
        (Some(now.to_string()), Some(forged)),
        (Some(stale_ts), Some(stale)),
        (Some(min_ts), Some(min)),
        (None, None),
    ];
    for (ts, sig) in cases {
        let (status, text) = w
            .post_raw(
                "/slack/commands",
                body.clone(),
                ts.as_deref(),
                sig.as_deref(),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(text.is_empty(), "no detail leaks: {text}");
    }
    let huge = format!("{body}&pad={}", "x".repeat(70 * 1024));
    let (status, _) = w.post_signed("/slack/commands", huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, _) = w
        .post_signed("/slack/interactions", "payload=%7B%7D".to_owned())
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a signed but unreadable click changes nothing"
    );
    assert!(
        w.store
            .list_by_requester(&ALICE.parse().unwrap())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(w.slack.all_calls().is_empty(), "nothing was posted");
}

#[tokio::test]
async fn ssl_check_probes_are_answered() {
    let w = SlackWorld::start().await;
    let (status, _) = w
        .post_signed("/slack/commands", "ssl_check=1&token=x".to_owned())
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_non_approvers_click_changes_nothing_and_tells_only_them() {
    let w = SlackWorld::start().await;
    let id = request(&w, ALICE, "request payments-db 30m INC-4411 replica lag").await;
    w.slack.posted_to(APPROVALS).await;
    assert_eq!(w.click(CAROL, APPROVE, &id, "carol").await, StatusCode::OK);
    let answer = w.slack.wait_for("respond:carol", |_| true).await;
    assert_eq!(answer["text"], "you are not an approver for payments-db");
    assert_eq!(answer["response_type"], "ephemeral");
    assert_eq!(
        answer["replace_original"], false,
        "the card stays for the others"
    );
    let req = w.app.load(&id.parse().unwrap()).await.unwrap();
    assert_eq!((req.state, req.approvals.len()), (State::Pending, 0));
}

#[tokio::test]
async fn self_approval_is_refused_unless_the_target_allows_it() {
    let w = SlackWorld::start().await;
    let id = request(&w, LEAD1, "request payments-db 30m INC-4411 replica lag").await;
    w.click(LEAD1, APPROVE, &id, "self").await;
    let answer = w.slack.wait_for("respond:self", |_| true).await;
    assert!(
        answer["text"]
            .as_str()
            .unwrap()
            .contains("cannot approve your own request")
    );
    let own = request(&w, LEAD1, "request grafana 30m dashboards are blank").await;
    w.click(LEAD1, APPROVE, &own, "self-ok").await;
    w.slack.card_update("Approved by").await;
    assert_eq!(
        w.app.load(&own.parse().unwrap()).await.unwrap().state,
        State::Active
    );
}

#[tokio::test]
async fn approve_updates_the_card_dms_the_requester_threads_the_audit_and_applies() {
    let w = SlackWorld::start().await;
    let id = request(&w, ALICE, "request payments-db 30m INC-4411 replica lag").await;
    // The audit thread is opened before anyone decides.
    w.slack.posted_to(AUDIT).await;
    assert_eq!(
        w.click(GROUP_MEMBER, APPROVE, &id, "member").await,
        StatusCode::OK
    );
    let update = w.slack.card_update("· expires").await;
    let blocks = card_text(&update);
    assert!(
        blocks.contains(&format!(
            "Approved by <@{GROUP_MEMBER}> at 14:00 UTC · expires 14:30 UTC"
        )),
        "{blocks}"
    );
    assert!(!blocks.contains(APPROVE), "no stale buttons");
    let dm = w
        .slack
        .wait_for("chat.postMessage", |b| {
            b["channel"].as_str().unwrap().starts_with('D')
        })
        .await;
    assert!(
        dm["text"].as_str().unwrap().contains("ends at 14:30 UTC"),
        "{dm}"
    );
    assert_eq!(
        w.slack.calls("conversations.open")[0]["users"],
        json!([ALICE])
    );
    let thread = w.slack.opening_ts(AUDIT);
    w.slack
        .wait_for("chat.postMessage", |b| {
            b["thread_ts"] == thread.as_str() && b["text"].as_str().unwrap().contains("activated")
        })
        .await;
    assert_eq!(w.enforcer.live_names().len(), 1, "the grant is applied");
    // The card the channel sees now is the updated one.
    let (channel, ts) = (
        update["channel"].as_str().unwrap(),
        update["ts"].as_str().unwrap(),
    );
    assert_eq!(
        w.slack.message(channel, ts).unwrap()["blocks"],
        update["blocks"]
    );
}

#[tokio::test]
async fn double_clicks_and_concurrent_approvals_make_one_decision() {
    let w = SlackWorld::start().await;
    let id = request(&w, ALICE, "request payments-db 30m INC-4411 replica lag").await;
    let sent = tokio::join!(
        w.click(LEAD1, APPROVE, &id, "a"),
        w.click(LEAD1, APPROVE, &id, "b"),
        w.click(LEAD2, APPROVE, &id, "c"),
        w.click(GROUP_MEMBER, APPROVE, &id, "d"),
    );
    assert_eq!(
        sent,
        (
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK
        )
    );
    // One click wins; each of the other three is told why it changed nothing.
    w.slack
        .wait_until(|s| {
            ["a", "b", "c", "d"]
                .iter()
                .map(|n| s.calls(&format!("respond:{n}")).len())
                .sum::<usize>()
                == 3
        })
        .await;
    w.slack.card_update("· expires").await;
    let history = w.store.audit_of(&id.parse().unwrap()).await.unwrap();
    assert_eq!(
        history
            .iter()
            .filter(|e| e.kind == AuditKind::Approved)
            .count(),
        1
    );
    assert_eq!(w.enforcer.applies(), 1);
}

#[tokio::test]
async fn a_429_from_slack_is_retried_after_retry_after_and_nothing_is_lost() {
    let w = SlackWorld::start().await;
    w.slack.script(
        "chat.postMessage",
        Scripted::RateLimited {
            retry_after_secs: 1,
        },
    );
    let id = request(&w, ALICE, "request payments-db 30m INC-4411 replica lag").await;
    let posts_to = |s: &crate::support::fake_slack::FakeSlack, channel: &str| {
        s.calls("chat.postMessage")
            .into_iter()
            .filter(|b| b["channel"] == channel)
            .count()
    };
    // The first post (the audit thread's opening) was rate-limited; the retry after
    // Retry-After went through, and the card followed.
    w.slack
        .wait_until(|s| posts_to(s, AUDIT) == 2 && posts_to(s, APPROVALS) == 1)
        .await;
    w.notifier.flush().await;
    let notes = w.store.annotations(&id.parse().unwrap()).await.unwrap();
    assert!(
        !notes["slack.audit"].is_empty() && !notes["slack.card"].is_empty(),
        "{notes:?}"
    );
    assert_eq!(w.slack.messages(AUDIT).len(), 1, "posted once");
}

#[tokio::test]
async fn slack_errors_never_block_or_lose_the_lifecycle() {
    let w = SlackWorld::start().await;
    w.slack
        .script("chat.postMessage", Scripted::Error("channel_not_found"));
    w.slack
        .script("chat.postMessage", Scripted::Error("invalid_auth"));
    let id = request(&w, ALICE, "request payments-db 30m INC-4411 replica lag").await;
    w.notifier.flush().await;
    let id = id.parse().unwrap();
    let decided = approve(&w.app, &id, LEAD1).await;
    assert_eq!(decided.request.state, State::Active);
    assert_eq!(
        audit_kinds(w.store.as_ref(), &id).await,
        [
            AuditKind::Requested,
            AuditKind::Approved,
            AuditKind::Activated
        ],
        "the audit stream has everything"
    );
}

#[tokio::test]
async fn the_other_commands_answer_ephemerally() {
    let w = SlackWorld::start().await;
    // What each command is answered with, in part.
    let answers: [(&str, &str, &[&str]); 5] = [
        (
            ALICE,
            "help",
            &["/jit request <target> <duration>", "/jit cancel <id>"],
        ),
        (ALICE, "targets", &["`payments-db`", "`ledger`"]),
        (
            ALICE,
            "request paymnts-db 30m INC-4411 replica lag",
            &["`paymnts-db` is not a target", "Usage:"],
        ),
        (
            ALICE,
            "request payments-db 3h INC-4411 replica lag",
            &["pick between 5m and 2h"],
        ),
        (
            "U0NOBODY01",
            "request payments-db 30m INC-4411 replica lag",
            &["not set up to request access"],
        ),
    ];
    for (user, text, says) in answers {
        let (_, answer) = w.command(user, text).await;
        for part in says {
            assert!(answer.contains(part), "/jit {text}: {answer}");
        }
    }
    let id = request(&w, ALICE, "request payments-db 30m INC-4411 replica lag").await;
    let (_, list) = w.command(ALICE, "list").await;
    assert!(list.contains(&id) && list.contains("pending"), "{list}");
    approve(&w.app, &id.parse().unwrap(), LEAD1).await;
    let (_, extend) = w.command(ALICE, &format!("extend {id} 30m")).await;
    assert!(extend.contains("Asked for *30m* more"), "{extend}");
    let (_, revoking) = w.command(ALICE, &format!("revoke {id} done now")).await;
    assert!(revoking.contains("Revoking"), "{revoking}");
    let done = w
        .slack
        .wait_for(&format!("respond:cmd-{ALICE}"), |_| true)
        .await;
    assert!(done["text"].as_str().unwrap().contains("Revoked"), "{done}");
    assert!(w.enforcer.live_names().is_empty());
    w.clock.advance(TimeDelta::minutes(1));
}
