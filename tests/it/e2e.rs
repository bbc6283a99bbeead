//! The whole product through its HTTP surface, built exactly as `jitbot serve` builds
//! it: real redis-server, real kube-apiserver, fake Slack. DESIGN.md's invariants by
//! name: no access outlives its expiry, exactly-once decisions across replicas,
//! every state change audited, nothing posted twice.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use reqwest::StatusCode;

use jitbot::app::ManualClock;
use jitbot::core::actions::APPROVE;
use jitbot::core::ports::Clock;
use jitbot::core::request::State;
use jitbot::startup::Application;

use crate::support::fake_slack::FakeSlack;
use crate::support::fakes::{ALICE, LEAD1, LEAD2, request_id_in, t0};
use crate::support::slack_world::{APPROVALS, AUDIT, InboundSlack};
use crate::support::spawn::{Stack, one_replica, two_replicas};

/// A stack with one replica in it (its workers off), and Slack's side of that replica.
async fn replica_and_slack() -> (Stack, Arc<ManualClock>, Application, InboundSlack) {
    let (s, clock, app) = one_replica(false).await;
    let slack = s.inbound(&app, &clock);
    (s, clock, app, slack)
}

async fn live_policy(s: &Stack, id: &str) -> Option<NetworkPolicy> {
    s.policies().get_opt(&format!("jit-{id}")).await.unwrap()
}

/// `/jit request` through the HTTP surface; returns the request id from the answer.
async fn request(slack: &InboundSlack) -> String {
    let (status, answer) = slack
        .command(ALICE, "request payments-db 30m INC-4411 replica lag")
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    request_id_in(&answer)
}

fn texts_in_thread(slack: &FakeSlack, thread: &str) -> Vec<String> {
    slack
        .calls("chat.postMessage")
        .into_iter()
        .filter(|b| b["thread_ts"] == thread)
        .map(|b| b["text"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_approve_apply_expire_and_audit_end_to_end() {
    let (s, clock, app, slack) = replica_and_slack().await;

    let id = request(&slack).await;
    let card = s.slack.posted_to(APPROVALS).await;
    assert!(card["blocks"].to_string().contains(APPROVE));
    assert!(
        card["blocks"]
            .to_string()
            .contains("no default-deny: this grant changes nothing"),
        "the card carries the cluster's preview: {}",
        card["blocks"]
    );
    assert_eq!(
        slack.click(LEAD1, APPROVE, &id, "lead").await,
        StatusCode::OK
    );
    s.slack.card_update("· expires").await;

    let policy = live_policy(&s, &id)
        .await
        .expect("the NetworkPolicy is in the API server");
    let annotations = policy.metadata.annotations.unwrap();
    assert_eq!(annotations["jitbot.dev/expires-at"], "2026-11-26T14:30:00Z");
    assert_eq!(annotations["jitbot.dev/approved-by"], LEAD1);

    clock.advance(TimeDelta::minutes(30));
    let report = app.app.sweep_once(clock.now()).await.unwrap();
    assert_eq!(report.expired, 1, "{report:?}");
    assert!(
        live_policy(&s, &id).await.is_none(),
        "gone within one sweep"
    );

    app.notifier.flush().await;
    let thread = s.slack.opening_ts(AUDIT);
    let replies = texts_in_thread(&s.slack, &thread).join("\n");
    for step in ["*approved*", "*activated*", "*expired*"] {
        assert!(
            replies.contains(step),
            "audit thread lacks {step}:\n{replies}"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_sharing_redis_decide_apply_and_revoke_once() {
    let (s, clock, a, b) = two_replicas(false).await;
    let (via_a, via_b) = (s.inbound(&a, &clock), s.inbound(&b, &clock));

    let id = request(&via_a).await;
    s.slack.posted_to(APPROVALS).await;
    // Both approvers click at once, each through a different replica.
    let (one, two) = tokio::join!(
        via_a.click(LEAD1, APPROVE, &id, "one"),
        via_b.click(LEAD2, APPROVE, &id, "two")
    );
    assert_eq!((one, two), (StatusCode::OK, StatusCode::OK));
    s.slack.card_update("· expires").await;
    s.slack
        .wait_until(|f| f.calls("respond:one").len() + f.calls("respond:two").len() == 1)
        .await;
    assert!(live_policy(&s, &id).await.is_some());

    clock.advance(TimeDelta::minutes(31));
    let (ra, rb) = tokio::join!(a.app.sweep_once(clock.now()), b.app.sweep_once(clock.now()));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.expired + rb.expired, 1, "one revoke: {ra:?} {rb:?}");
    assert!(live_policy(&s, &id).await.is_none());

    a.notifier.flush().await;
    b.notifier.flush().await;
    let cards = s
        .slack
        .calls("chat.postMessage")
        .into_iter()
        .filter(|m| m["channel"] == APPROVALS)
        .count();
    assert_eq!(cards, 1, "one card");
    let thread = s.slack.opening_ts(AUDIT);
    let replies = texts_in_thread(&s.slack, &thread);
    for step in ["*approved*", "*activated*", "*expired*"] {
        assert_eq!(
            replies.iter().filter(|r| r.contains(step)).count(),
            1,
            "{step} posted once: {replies:#?}"
        );
    }
    let dms = s
        .slack
        .calls("chat.postMessage")
        .into_iter()
        .filter(|m| m["channel"].as_str().unwrap().starts_with('D'))
        .count();
    // The sweep came after the expiry itself, so no late warning was sent.
    assert_eq!(dms, 2, "the activation and expiry DMs, each once");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_dies_after_approval_is_cleaned_up_by_the_next_at_start_up() {
    let (s, clock, first, slack) = replica_and_slack().await;
    let id = request(&slack).await;
    slack.click(LEAD1, APPROVE, &id, "lead").await;
    s.slack.card_update("· expires").await;
    assert!(live_policy(&s, &id).await.is_some());
    first.stop().await;

    // Long after expiry, a new process starts with its workers on.
    clock.set(t0() + TimeDelta::hours(3));
    let next = s.replica(&clock, true).await;
    let gone = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if live_policy(&s, &id).await.is_none() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await; // polling the API server
        }
    })
    .await;
    assert!(gone.is_ok(), "the expired policy was removed at start-up");
    // The guard or the reconciler may delete it a moment before the sweep marks the
    // request Expired: wait for that too, with a bound.
    let id = id.parse().unwrap();
    let expired = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if next.app.load(&id).await.unwrap().state == State::Expired {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await; // polling the store
        }
    })
    .await;
    assert!(
        expired.is_ok(),
        "the request was marked Expired: {:?}",
        next.app.load(&id).await.unwrap().state
    );
    next.stop().await;
}

/// What a person is told when the store cannot be reached or written.
const STORE_DOWN: &str = "jitbot cannot reach its state store right now, so nothing was changed and no access was granted";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_a_request_with_redis_stopped_gets_plain_words_and_changes_nothing() {
    let (s, _clock, app, slack) = replica_and_slack().await;
    s.redis.stop();
    let (status, answer) = tokio::time::timeout(
        Duration::from_secs(30),
        slack.command(ALICE, "request payments-db 30m INC-4411 replica lag"),
    )
    .await
    .expect("the answer is bounded by the store's timeouts");
    assert_eq!(status, StatusCode::OK);
    let answer = match answer.as_str() {
        // Acked at once, the outcome follows on the response_url.
        a if a.contains(STORE_DOWN) => a.to_owned(),
        _ => s
            .slack
            .wait_for(&format!("respond:cmd-{ALICE}"), |_| true)
            .await["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    };
    assert!(answer.contains(STORE_DOWN), "{answer}");
    assert!(
        s.slack.messages(APPROVALS).is_empty(),
        "no approval card for a request that was not stored"
    );
    // The replica stays ready (it answers Slack, in plain words) and alive; the
    // probe's body and the metrics say the store is down.
    let http = reqwest::Client::new();
    let get =
        |addr: std::net::SocketAddr, path: &str| http.get(format!("http://{addr}{path}")).send();
    let ready = get(app.addr, "/readyz").await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(
        ready.text().await.unwrap(),
        "ready\nstore: unreachable (see the log)\ncluster: ok\n"
    );
    assert_eq!(
        get(app.addr, "/healthz").await.unwrap().status(),
        StatusCode::OK
    );
    let metrics = get(app.metrics_addr, "/metrics")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("jitbot_dependency_up{dependency=\"store\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("jitbot_store_errors_total{kind=\"unavailable\"}"),
        "{metrics}"
    );
    assert!(
        s.policies()
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_the_store_is_written_before_the_cluster_is_touched() {
    let (s, _clock, app, slack) = replica_and_slack().await;
    let id = request(&slack).await;
    s.slack.posted_to(APPROVALS).await;

    // Redis still answers reads but refuses every write: the approval can be loaded,
    // not recorded.
    let mut admin = s.redis.admin();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("noeviction")
        .query(&mut admin)
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("1")
        .query(&mut admin)
        .unwrap();
    assert_eq!(
        slack.click(LEAD1, APPROVE, &id, "lead").await,
        StatusCode::OK
    );
    let answer = s.slack.wait_for("respond:lead", |_| true).await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("0")
        .query(&mut admin)
        .unwrap();
    assert!(
        answer["text"]
            .as_str()
            .unwrap_or_default()
            .contains(STORE_DOWN),
        "{answer}"
    );
    assert!(
        live_policy(&s, &id).await.is_none(),
        "nothing applied that the store did not record"
    );
    let stored = app.app.load(&id.parse().unwrap()).await.unwrap();
    assert_eq!(stored.state, State::Pending);
    app.stop().await;
}
