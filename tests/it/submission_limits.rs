//! The caps on one person's requests, over Slack's real HTTP protocol: a request over
//! a cap is answered with the sentence that says which and what to do, nothing is
//! stored and no card reaches Slack; a flood on the real Redis store gets exactly the
//! cap through; and caps set to 0 refuse nothing.

use std::sync::Arc;

use chrono::TimeDelta;
use reqwest::StatusCode;

use jitbot::adapters::memory::MemoryStore;
use jitbot::app::Decision;
use jitbot::core::ids::RequestId;
use jitbot::core::request::State;

use crate::redis_store::redis;
use crate::store_contract::Backend;
use crate::support::fake_slack::FakeSlack;
use crate::support::fakes::{
    ALICE, LEAD1, ask, card_round, request_id_in, t0, test_app_with, uncapped_catalog, user,
};
use crate::support::slack_world::{APPROVALS, SlackWorld};

const ASK: &str = "request payments-db 30m INC-4411 replica lag";

/// The approval cards posted so far (top-level messages in the approval channel).
fn cards(slack: &FakeSlack) -> Vec<String> {
    slack
        .messages(APPROVALS)
        .into_iter()
        .filter(|m| m.thread_ts.is_none())
        .map(|m| m.body.to_string())
        .collect()
}

/// `/jit request …` by Alice, which must be accepted; its id.
async fn accepted(w: &SlackWorld) -> RequestId {
    let (status, answer) = w.command(ALICE, ASK).await;
    assert_eq!(status, StatusCode::OK);
    request_id_in(&answer).parse().unwrap()
}

async fn deny(w: &SlackWorld, id: &RequestId) {
    let no = Decision::Deny { note: None };
    let round = card_round(&w.app, id).await;
    w.app.decide(id, &user(LEAD1), no, round).await.unwrap();
}

async fn stored_for_alice(w: &SlackWorld) -> usize {
    w.store.list_by_requester(&user(ALICE)).await.unwrap().len()
}

#[tokio::test]
async fn a_fourth_waiting_request_is_refused_naming_the_three_and_posts_no_card() {
    let w = SlackWorld::start().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(accepted(&w).await);
    }
    w.slack.wait_until(|s| cards(s).len() == 3).await;

    let (status, answer) = w.command(ALICE, ASK).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        answer.starts_with("you already have 3 requests waiting for approval ("),
        "{answer}"
    );
    for id in &ids {
        assert!(answer.contains(&format!("`{id}`")), "{answer}");
    }
    // Made at 14:00, with the default one-hour approval timeout.
    assert!(
        answer.contains("until the oldest lapses at 15:00 UTC"),
        "{answer}"
    );
    assert_eq!(stored_for_alice(&w).await, 3, "nothing was stored");

    // Once one is decided the next is accepted, and its card is the fourth: the
    // refused request left none behind.
    deny(&w, &ids[0]).await;
    let fourth = accepted(&w).await;
    ids.push(fourth);
    w.slack.wait_until(|s| cards(s).len() >= 4).await;
    let posted = cards(&w.slack);
    assert_eq!(posted.len(), 4);
    for id in &ids {
        let showing = posted.iter().filter(|c| c.contains(id.as_str())).count();
        assert_eq!(showing, 1, "one card for {id}");
    }
}

#[tokio::test]
async fn the_twenty_first_request_in_an_hour_is_refused_until_the_first_is_an_hour_old() {
    let w = SlackWorld::start().await;
    // Twenty requests two minutes apart from 14:00, each denied so none waits long.
    for _ in 0..20 {
        let id = accepted(&w).await;
        deny(&w, &id).await;
        w.clock.advance(TimeDelta::minutes(2));
    }
    w.slack.wait_until(|s| cards(s).len() == 20).await;
    let (status, answer) = w.command(ALICE, ASK).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        answer,
        "you have made 20 requests in the last hour, and jitbot accepts at most 20 an hour from one person; try again after 15:00 UTC"
    );
    assert_eq!(stored_for_alice(&w).await, 20);

    w.clock
        .advance(t0() + TimeDelta::hours(1) + TimeDelta::seconds(1) - w.app.now());
    let id = accepted(&w).await;
    assert_eq!(w.app.load(&id).await.unwrap().created_at, w.app.now());
    w.slack.wait_until(|s| cards(s).len() == 21).await;
    assert_eq!(
        cards(&w.slack).len(),
        21,
        "the refused request posted no card"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_sixty_requests_on_redis_gets_three_through() {
    let backend = redis().await;
    let w = SlackWorld::start_with_store(backend.client().await).await;
    let mut through = Vec::new();
    let mut refused = 0;
    for _ in 0..60 {
        let (status, answer) = w.command(ALICE, ASK).await;
        assert_eq!(status, StatusCode::OK);
        if answer.starts_with("Request `") {
            through.push(request_id_in(&answer));
        } else {
            assert!(
                answer.starts_with("you already have 3 requests waiting for approval"),
                "{answer}"
            );
            refused += 1;
        }
    }
    assert_eq!((through.len(), refused), (3, 57));
    assert_eq!(stored_for_alice(&w).await, 3);
    w.slack.wait_until(|s| cards(s).len() >= 3).await;
    assert_eq!(cards(&w.slack).len(), 3);
}

#[tokio::test]
async fn with_both_caps_at_zero_nothing_is_refused() {
    let t = test_app_with(Arc::new(MemoryStore::new()), uncapped_catalog());
    for _ in 0..60 {
        t.app.submit(ask("payments-db", ALICE)).await.unwrap();
    }
    let mine = t.app.list_for(&user(ALICE)).await.unwrap();
    assert_eq!(mine.len(), 60);
    assert!(mine.iter().all(|r| r.state == State::Pending));
}
