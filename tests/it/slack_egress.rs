//! What leaves jitbot toward Slack, over Slack's real HTTP protocol: the bot token
//! goes only to the Web API, answers go only to Slack's `response_url`s (and never
//! with the token), and a reason reaches the cards as text that cannot format.

use reqwest::StatusCode;

use jitbot::core::actions::APPROVE;
use jitbot::core::request::State;

use crate::support::fakes::{ALICE, CAROL, LEAD1, approve, request_id_in};
use crate::support::slack_world::{APPROVALS, AUDIT, SlackWorld, TOKEN};

async fn request(w: &SlackWorld, text: &str) -> String {
    let (status, answer) = w.command(ALICE, text).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    request_id_in(&answer)
}

/// Every post to a `response_url` the stand-in recorded.
fn answers(w: &SlackWorld) -> Vec<jitbot::playground::slack_standin::Call> {
    w.slack
        .all_calls()
        .into_iter()
        .filter(|c| c.method.starts_with("respond:"))
        .collect()
}

#[tokio::test]
async fn answers_through_a_response_url_carry_no_token() {
    let w = SlackWorld::start().await;
    let id = request(&w, "request payments-db 30m INC-4411 replica lag").await;
    // A click's answer (interactions) and a revoke's report (commands).
    w.click(CAROL, APPROVE, &id, "carol").await;
    w.slack.wait_for("respond:carol", |_| true).await;
    approve(&w.app, &id.parse().unwrap(), LEAD1).await;
    w.command(ALICE, &format!("revoke {id} done now")).await;
    let revoked = w
        .slack
        .wait_for(&format!("respond:cmd-{ALICE}"), |_| true)
        .await;
    assert!(
        revoked["text"].as_str().unwrap().contains("Revoked"),
        "{revoked}"
    );
    let answers = answers(&w);
    assert_eq!(answers.len(), 2, "{answers:?}");
    for answer in &answers {
        assert_eq!(
            answer.authorization, None,
            "{} carried a token",
            answer.method
        );
    }
    // The recorder does see the header where jitbot sends it: on the Web API calls.
    w.slack.posted_to(APPROVALS).await;
    let card = w
        .slack
        .all_calls()
        .into_iter()
        .find(|c| c.method == "chat.postMessage")
        .expect("the card was posted");
    assert_eq!(card.authorization, Some(format!("Bearer {TOKEN}")));
}

#[tokio::test]
async fn a_response_url_off_slack_is_refused_without_a_request_and_counted() {
    let w = SlackWorld::start().await;
    let id = request(&w, "request payments-db 30m INC-4411 replica lag").await;
    // The second would reach the stand-in were it posted to (same port, another name
    // for this machine), but `localhost` is not the host `slack.api_url` names.
    let elsewhere = format!("{}sneaky", w.respond_base.replace("127.0.0.1", "localhost"));
    assert!(elsewhere.starts_with("http://localhost:"), "{elsewhere}");
    for url in ["https://evil.example/respond/carol", elsewhere.as_str()] {
        let body = w.click_body_answered_at(CAROL, APPROVE, &id, url);
        let (status, _) = w.post_signed("/slack/interactions", body).await;
        assert_eq!(status, StatusCode::OK);
    }
    // Every answer has been sent or refused once the work after the acks is done.
    w.background.close();
    w.background.wait().await;
    assert!(answers(&w).is_empty(), "posted to: {:?}", answers(&w));
    let metrics = w.app.metrics().encode();
    assert!(
        metrics.contains("jitbot_slack_api_errors_total{kind=\"refused_url\"} 2"),
        "{metrics}"
    );
    let req = w.app.load(&id.parse().unwrap()).await.unwrap();
    assert_eq!(req.state, State::Pending, "the clicks changed nothing");
}

#[tokio::test]
async fn a_reason_with_slack_formatting_reaches_the_card_and_audit_as_text() {
    let w = SlackWorld::start().await;
    request(
        &w,
        "request payments-db 30m ``` *✅ pre-approved by security* <https://evil|click> <!channel>",
    )
    .await;
    let card = w.slack.posted_to(APPROVALS).await;
    let reason = &card["blocks"][2]["text"];
    assert_eq!(reason["type"], "plain_text", "{card}");
    assert_eq!(
        reason["text"],
        "``` *✅ pre-approved by security* ‹https://evil|click› ‹!channel›"
    );
    let policy = card["blocks"][5]["text"]["text"].as_str().unwrap();
    assert_eq!(policy.matches("```").count(), 2, "one code block: {policy}");
    assert!(policy.contains("ˋˋˋ *✅ pre-approved"), "{policy}");
    let opening = w.slack.posted_to(AUDIT).await;
    assert!(
        opening["text"]
            .as_str()
            .unwrap()
            .ends_with(">ˋˋˋ ∗✅ pre-approved by security∗ ‹https://evil|click› ‹!channel›"),
        "{opening}"
    );
}
