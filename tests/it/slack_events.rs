//! The Events API over HTTP (`/slack/events`): Slack's `url_verification`, the
//! signature check, `app_home_opened` acted on once per `event_id` however often
//! Slack retries it, and a 503 (so Slack retries) when the store cannot tell whether
//! an event is new.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::json;

use jitbot::adapters::http::signature;

use crate::redis_store::Redis;
use crate::support::fakes::{ALICE, CAROL};
use crate::support::redis::RedisServer;
use crate::support::slack_world::SlackWorld;

/// How many times `user`'s Home was published.
fn publishes(w: &SlackWorld, user: &str) -> usize {
    w.slack
        .calls("views.publish")
        .iter()
        .filter(|b| b["user_id"] == user)
        .count()
}

/// Waits until every answer jitbot owes after its acks has been sent.
async fn settle(w: &SlackWorld) {
    w.background.close();
    w.background.wait().await;
    w.background.reopen();
}

#[tokio::test]
async fn url_verification_is_answered_with_its_challenge() {
    let w = SlackWorld::start().await;
    let body = json!({
        "token": "legacy",
        "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
        "type": "url_verification",
    })
    .to_string();
    let (status, text) = w.post_event(&body, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text, "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P");
}

#[tokio::test]
async fn an_event_without_slacks_signature_is_refused_and_does_nothing() {
    let w = SlackWorld::start().await;
    let body = w.app_home_opened("Ev0FORGED01", ALICE, "home");
    let now = w.clock_secs().to_string();
    let forged = signature::sign("not-the-secret", &now, body.as_bytes());
    let (status, text) = w
        .post_raw("/slack/events", body.clone(), Some(&now), Some(&forged))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(text.is_empty(), "no detail leaks: {text}");
    let (status, _) = w.post_raw("/slack/events", body, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The signature is checked on the URL verification too.
    let challenge = json!({ "type": "url_verification", "challenge": "x" }).to_string();
    let wrong = signature::sign("not-the-secret", &now, challenge.as_bytes());
    let (status, _) = w
        .post_raw("/slack/events", challenge, Some(&now), Some(&wrong))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    settle(&w).await;
    assert!(w.slack.all_calls().is_empty(), "nothing was published");
}

#[tokio::test]
async fn a_retried_delivery_is_acted_on_once() {
    let w = SlackWorld::start().await;
    let body = w.app_home_opened("Ev0RETRY001", ALICE, "home");
    let (status, _) = w.post_event(&body, None).await;
    assert_eq!(status, StatusCode::OK);
    w.slack.wait_until(|s| s.home(ALICE).is_some()).await;
    for retry in 1..=3 {
        let (status, _) = w.post_event(&body, Some(retry)).await;
        assert_eq!(status, StatusCode::OK, "a retry is acked, not acted on");
    }
    // Another event for the same person is acted on: the id, not the person, counts.
    let again = w.app_home_opened("Ev0RETRY002", ALICE, "home");
    assert_eq!(w.post_event(&again, None).await.0, StatusCode::OK);
    settle(&w).await;
    assert_eq!(publishes(&w, ALICE), 2, "{:#?}", w.slack.all_calls());
}

#[tokio::test]
async fn opening_the_messages_tab_publishes_nothing() {
    let w = SlackWorld::start().await;
    let body = w.app_home_opened("Ev0MESSAGES", CAROL, "messages");
    assert_eq!(w.post_event(&body, None).await.0, StatusCode::OK);
    settle(&w).await;
    assert_eq!(publishes(&w, CAROL), 0);
}

#[tokio::test]
async fn an_event_the_store_cannot_check_is_left_for_slacks_retry() {
    let server = Arc::new(RedisServer::start());
    let redis = Redis::on(server.clone()).impatient();
    let w = SlackWorld::start_with_store(Arc::new(redis.store().await)).await;
    let body = w.app_home_opened("Ev0STOREDWN", ALICE, "home");
    server.stop();
    let (status, _) = w.post_event(&body, None).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "Slack retries an event that got no 2xx"
    );
    settle(&w).await;
    assert_eq!(publishes(&w, ALICE), 0);
    server.restart();
    // Slack's retry, once the store is back, is acted on. (Each refused attempt
    // waits out the store's timeout, while its client reconnects.)
    let mut acked = false;
    for retry in 1..=30 {
        if w.post_event(&body, Some(retry)).await.0 == StatusCode::OK {
            acked = true;
            break;
        }
    }
    assert!(acked, "a retry is taken once the store answers");
    w.slack.wait_until(|s| s.home(ALICE).is_some()).await;
}
