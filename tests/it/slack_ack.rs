//! Slack is acked within its 3 seconds whatever the store does (the hang guard), and a
//! requester can withdraw a pending request: `/jit cancel <id>` and the Cancel button
//! on the acknowledgement. Over HTTP with the real handlers and a real redis-server.

use std::sync::Arc;

use serde_json::Value;

use jitbot::adapters::http::slack_request::ButtonClick;
use jitbot::core::actions::CANCEL;
use jitbot::core::request::State;

use crate::redis_store::{Redis, redis};
use crate::support::fakes::{ALICE, CAROL, LEAD1, request_id_in};
use crate::support::redis::RedisServer;
use crate::support::slack_world::{APPROVALS, SlackWorld};

/// The ack's JSON body for `/jit <text>` typed by `user`.
async fn ack(w: &SlackWorld, user: &str, text: &str) -> Value {
    let (status, body) = w
        .post_signed("/slack/commands", w.command_body(user, text))
        .await;
    assert!(status.is_success(), "{status}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// A store whose calls wait for a frozen server longer than the ack budget (2 s), so
/// only the hang guard can answer Slack in time.
async fn slow_to_give_up() -> (Arc<RedisServer>, SlackWorld) {
    let server = redis().await.server;
    let mut patient = Redis::on(server.clone());
    patient.settings.response_timeout = std::time::Duration::from_secs(30);
    let w = SlackWorld::start_with_store(Arc::new(patient.store().await)).await;
    (server, w)
}

#[tokio::test]
async fn a_request_while_the_store_is_frozen_is_acked_at_once_and_answered_after() {
    let (server, w) = slow_to_give_up().await;
    server.pause();
    let acked = ack(&w, ALICE, "request payments-db 30m INC-4411 replica lag").await;
    let text = acked["text"].as_str().unwrap();
    assert!(text.contains("still working on this"), "{text}");
    assert!(acked["response_type"] == "ephemeral", "{acked}");
    assert!(
        w.slack.calls(&format!("respond:cmd-{ALICE}")).is_empty(),
        "nothing is answered while the store is frozen"
    );
    server.resume();
    // The answer the ack could not carry arrives through the command's response_url.
    let answer = w
        .slack
        .wait_for(&format!("respond:cmd-{ALICE}"), |b| {
            b["text"].as_str().is_some_and(|t| t.contains("sent to"))
        })
        .await;
    let id = request_id_in(answer["text"].as_str().unwrap());
    let stored = w.app.load(&id.parse().unwrap()).await.unwrap();
    assert_eq!(stored.state, State::Pending);
    assert_eq!(
        answer["blocks"][1]["elements"][0]["action_id"], CANCEL,
        "the late answer carries the Cancel button too: {answer}"
    );
}

#[tokio::test]
async fn a_list_while_the_store_is_frozen_is_acked_and_answered_when_it_thaws() {
    let (server, w) = slow_to_give_up().await;
    let id = request_id_in(
        ack(&w, ALICE, "request payments-db 30m INC-4411 replica lag").await["text"]
            .as_str()
            .unwrap(),
    );
    server.pause();
    let acked = ack(&w, ALICE, "list").await;
    assert!(
        acked["text"].as_str().unwrap().contains("still working"),
        "{acked}"
    );
    server.resume();
    w.slack
        .wait_for(&format!("respond:cmd-{ALICE}"), |b| {
            b["text"].as_str().is_some_and(|t| t.contains(&id))
        })
        .await;
}

#[tokio::test]
async fn commands_that_need_no_store_are_answered_while_it_is_frozen() {
    let (server, w) = slow_to_give_up().await;
    server.pause();
    let help = ack(&w, ALICE, "help").await;
    assert!(help["text"].as_str().unwrap().contains("/jit cancel <id>"));
    let targets = ack(&w, ALICE, "targets").await;
    assert!(targets["text"].as_str().unwrap().contains("`payments-db`"));
    let typo = ack(&w, ALICE, "request paymnts-db 30m INC-4411 replica lag").await;
    assert!(typo["text"].as_str().unwrap().contains("not a target"));
    // A revoke is acked before anything is read, and answered once the store is back.
    let revoking = ack(&w, ALICE, "revoke k3x9m2q7v8d4a1b6 done").await;
    assert!(revoking["text"].as_str().unwrap().contains("Revoking"));
    server.resume();
    let answer = w
        .slack
        .wait_for(&format!("respond:cmd-{ALICE}"), |_| true)
        .await;
    assert!(
        answer["text"]
            .as_str()
            .unwrap()
            .contains("no request `k3x9m2q7v8d4a1b6`"),
        "{answer}"
    );
}

#[tokio::test]
async fn the_acknowledgement_has_a_cancel_button_that_withdraws_the_request() {
    let w = SlackWorld::start().await;
    let acked = ack(&w, ALICE, "request payments-db 30m INC-4411 replica lag").await;
    let id = request_id_in(acked["text"].as_str().unwrap());
    let button = &acked["blocks"][1]["elements"][0];
    assert_eq!(button["action_id"], CANCEL, "{acked}");
    assert_eq!(button["value"], id.as_str());
    // Somebody else's click on it (a forwarded message, say) changes nothing.
    let click = |user: &str| {
        ButtonClick {
            team_id: "T1DC2JH3J",
            team_domain: "example",
            user_id: user,
            user_name: "someone",
            api_app_id: "A0JITBOT01",
            channel_id: "C01GENERAL",
            channel_name: "general",
            message_ts: "1700000000.000900",
            trigger_id: &format!("1.2.{user}"),
            response_url: &w.slack.response_url(&format!("ack-{user}")),
            action_id: CANCEL,
            block_id: &format!("requested:{id}"),
            value: &id,
            action_ts: "1700000001.000200",
        }
        .form()
    };
    assert!(
        w.post_signed("/slack/interactions", click(CAROL))
            .await
            .0
            .is_success()
    );
    let refused = w
        .slack
        .wait_for(&format!("respond:ack-{CAROL}"), |_| true)
        .await;
    assert!(
        refused["text"]
            .as_str()
            .unwrap()
            .contains("only the requester, payments-db's approvers or an admin may cancel"),
        "{refused}"
    );
    assert_eq!(refused["replace_original"], false);
    let pending = w.app.load(&id.parse().unwrap()).await.unwrap();
    assert_eq!(pending.state, State::Pending);

    assert!(
        w.post_signed("/slack/interactions", click(ALICE))
            .await
            .0
            .is_success()
    );
    let done = w
        .slack
        .wait_for(&format!("respond:ack-{ALICE}"), |_| true)
        .await;
    assert!(
        done["text"].as_str().unwrap().contains("is cancelled"),
        "{done}"
    );
    assert_eq!(
        done["replace_original"], true,
        "the acknowledgement and its button make way for the answer"
    );
    let cancelled = w.app.load(&id.parse().unwrap()).await.unwrap();
    assert_eq!(cancelled.state, State::Cancelled);
    // The approval card says so and offers no buttons.
    let card = w.slack.card_update("Cancelled").await;
    assert_eq!(card["channel"], APPROVALS);
    assert!(
        !card["blocks"].to_string().contains("jit_approve"),
        "{card}"
    );
}

#[tokio::test]
async fn jit_cancel_withdraws_ones_own_pending_request_only() {
    let w = SlackWorld::start().await;
    let id = request_id_in(
        ack(&w, ALICE, "request payments-db 30m INC-4411 replica lag").await["text"]
            .as_str()
            .unwrap(),
    );
    let not_yours = ack(&w, CAROL, &format!("cancel {id}")).await;
    assert!(
        not_yours["text"].as_str().unwrap().contains("may cancel"),
        "{not_yours}"
    );
    let mine = ack(&w, ALICE, &format!("cancel {id}")).await;
    assert!(
        mine["text"].as_str().unwrap().contains("is cancelled"),
        "{mine}"
    );
    assert_eq!(
        w.app.load(&id.parse().unwrap()).await.unwrap().state,
        State::Cancelled
    );
    let again = ack(&w, ALICE, &format!("cancel {id}")).await;
    let again = again["text"].as_str().unwrap();
    assert!(again.contains("cannot be cancelled"), "{again}");

    // A decided request cannot be withdrawn.
    let other = request_id_in(
        ack(&w, ALICE, "request payments-db 30m INC-4411 replica lag").await["text"]
            .as_str()
            .unwrap(),
    );
    crate::support::fakes::approve(&w.app, &other.parse().unwrap(), LEAD1).await;
    let late = ack(&w, ALICE, &format!("cancel {other}")).await;
    assert!(
        late["text"]
            .as_str()
            .unwrap()
            .contains("cannot be cancelled"),
        "{late}"
    );
    assert_eq!(
        w.app.load(&other.parse().unwrap()).await.unwrap().state,
        State::Active
    );
}
