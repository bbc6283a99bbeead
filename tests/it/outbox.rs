//! Slack delivery from the durable outbox, against a real redis-server and the fake
//! Slack over HTTP: an outage loses and repeats nothing, replicas share the work
//! without posting anything twice, a replica that dies mid-delivery is taken over,
//! and a 429's Retry-After is honoured. Time passes on the app's manual clock.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use futures_util::StreamExt;
use futures_util::stream;
use reqwest::StatusCode;

use jitbot::adapters::slack::SlackNotifier;
use jitbot::app::{App, Courier, CourierConfig};
use jitbot::core::actions::APPROVE;
use jitbot::core::ids::RequestId;
use jitbot::core::ports::{Clock, Store};
use jitbot::settings::{Secrets, Settings};
use jitbot::startup::{self, Assembly, ClusterPorts, Overrides};

use crate::redis_store::{Redis, redis};
use crate::support::fake_slack::{FakeSlack, Scripted};
use crate::support::fakes::{self, ALICE, LEAD1, ask, request_id_in, uncapped_catalog};
use crate::support::slack_world::{APPROVALS, AUDIT, FixedPreview, SlackWorld, TOKEN};

/// Long enough for a debug build to deliver a thousand requests.
const DRAIN: Duration = Duration::from_secs(180);

async fn bounded<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(DRAIN, f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen in time"))
}

/// The request id a top-level message (a card or an audit opening) is about.
fn about(body: &serde_json::Value, ids: &[String]) -> Option<String> {
    let text = body.to_string();
    ids.iter().find(|id| text.contains(id.as_str())).cloned()
}

/// Per request: how many top-level messages in `channel` are about it.
fn top_level_per_request(
    slack: &FakeSlack,
    channel: &str,
    ids: &[String],
) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for m in slack.messages(channel) {
        if m.thread_ts.is_none() {
            let id = about(&m.body, ids)
                .unwrap_or_else(|| panic!("a message about no request: {}", m.body));
            *counts.entry(id).or_insert(0) += 1;
        }
    }
    counts
}

/// Checks that every request has exactly one card and one audit thread, that each
/// thread has one reply per later event in the store, and that each approved request
/// got exactly one "access is on" DM.
async fn each_told_once(slack: &FakeSlack, store: &dyn Store, ids: &[String], approved: &[String]) {
    let cards = top_level_per_request(slack, APPROVALS, ids);
    assert_eq!(cards.len(), ids.len(), "every request has a card");
    assert!(cards.values().all(|n| *n == 1), "a card was posted twice");
    let openings = top_level_per_request(slack, AUDIT, ids);
    assert_eq!(
        openings.len(),
        ids.len(),
        "every request has an audit thread"
    );
    assert!(
        openings.values().all(|n| *n == 1),
        "a thread was opened twice"
    );
    let audit = slack.messages(AUDIT);
    let mut replies: HashMap<String, usize> = HashMap::new();
    for m in &audit {
        if let Some(parent) = &m.thread_ts {
            *replies.entry(parent.clone()).or_insert(0) += 1;
        }
    }
    for m in audit.iter().filter(|m| m.thread_ts.is_none()) {
        let id = about(&m.body, ids).unwrap();
        let history = store.audit_of(&id.parse().unwrap()).await.unwrap();
        assert_eq!(
            replies.get(&m.ts).copied().unwrap_or(0),
            history.len() - 1,
            "one audit reply per later event of {id}"
        );
    }
    let dms = slack
        .dm_channels()
        .get(ALICE)
        .map(|dm| slack.messages(dm))
        .unwrap_or_default();
    for id in approved {
        let on = dms
            .iter()
            .filter(|m| m.body["text"].as_str().unwrap_or("").contains(id.as_str()))
            .filter(|m| m.body["text"].as_str().unwrap_or("").contains("is on"))
            .count();
        assert_eq!(on, 1, "{id}: one DM that access is on");
    }
}

#[tokio::test]
async fn slack_down_for_a_minute_during_1000_requests_loses_and_repeats_nothing() {
    let redis = redis().await;
    // A thousand requests from one person: the caps on her requests are off.
    let w = SlackWorld::start_with(Arc::new(redis.store().await), uncapped_catalog()).await;
    w.slack.set_down(true);
    let answers: Vec<(StatusCode, String)> = stream::iter(0..1000)
        .map(|_| w.command(ALICE, "request payments-db 30m INC-4411 replica lag"))
        .buffer_unordered(16)
        .collect()
        .await;
    let ids: Vec<String> = answers
        .iter()
        .map(|(status, text)| {
            assert_eq!(*status, StatusCode::OK, "{text}");
            request_id_in(text)
        })
        .collect();
    let approved: Vec<String> = ids[..50].to_vec();
    for id in &approved {
        assert_eq!(w.click(LEAD1, APPROVE, id, "lead").await, StatusCode::OK);
    }
    // A minute of outage: the loop keeps trying at its backoff and keeps failing.
    let bell = w.notifier.bell().clone();
    bounded("a retry after the first failure", bell.retry_planned()).await;
    for _ in 0..6 {
        w.clock.advance(TimeDelta::seconds(10));
        let now = w.clock.now();
        bounded("a retry planned after the last", async {
            while bell.status().retry_at.is_none_or(|at| at <= now) {
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
    }
    assert!(
        w.slack.refused() >= 3,
        "retried during the outage: {}",
        w.slack.refused()
    );
    assert!(
        w.slack.messages(APPROVALS).is_empty(),
        "nothing got through"
    );
    w.slack.set_down(false);
    w.clock.advance(TimeDelta::seconds(61));
    bounded("the outbox drained", w.notifier.flush()).await;
    each_told_once(&w.slack, w.store.as_ref(), &ids, &approved).await;
    let metrics = w.app.metrics().encode();
    assert!(
        metrics.contains("jitbot_slack_outbox_backlog 0"),
        "{metrics}"
    );
}

/// Another jitbot sharing `w`'s Slack, clock, cluster and catalog, on `store`; with
/// `delivering`, it runs its own delivery loop.
async fn replica(w: &SlackWorld, store: Arc<dyn Store>, delivering: bool) -> (App, SlackNotifier) {
    let mut settings = Settings::default();
    settings.slack.api_url = w.slack.api_url.clone();
    settings.slack.audit_channel = AUDIT.to_owned();
    settings.slack.max_retries = 0;
    let secrets = Secrets::from_vars(&HashMap::from([(
        "SLACK_BOT_TOKEN".to_owned(),
        TOKEN.to_owned(),
    )]));
    let overrides = Overrides {
        clock: Some(w.clock.clone()),
        store: Some(store),
        cluster: Some(ClusterPorts {
            enforcer: w.enforcer.clone(),
            previewer: Arc::new(FixedPreview("default-deny present, 4 pods")),
        }),
        no_delivery: !delivering,
        ..Overrides::default()
    };
    let Assembly { app, slack, .. } =
        startup::assemble(&settings, w.app.catalog().clone(), &secrets, overrides)
            .await
            .unwrap();
    (app, slack.expect("a bot token is set").notifier)
}

#[tokio::test]
async fn two_replicas_sharing_redis_deliver_each_event_once() {
    let redis = redis().await;
    let w = SlackWorld::start_with(Arc::new(redis.store().await), uncapped_catalog()).await;
    let (b, b_notifier) = replica(&w, Arc::new(redis.store().await), true).await;
    let mut ids = Vec::new();
    for i in 0..60 {
        let app = if i % 2 == 0 { &w.app } else { &b };
        ids.push(app.submit(ask("payments-db", ALICE)).await.unwrap().id);
    }
    let approved: Vec<String> = ids[..20].iter().map(|id| id.to_string()).collect();
    for (i, id) in ids[..20].iter().enumerate() {
        let app = if i % 2 == 0 { &b } else { &w.app };
        fakes::approve(app, id, LEAD1).await;
    }
    bounded("replica a drained", w.notifier.flush()).await;
    bounded("replica b drained", b_notifier.flush()).await;
    let ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    each_told_once(&w.slack, w.store.as_ref(), &ids, &approved).await;
}

#[tokio::test]
async fn a_replica_that_dies_mid_delivery_has_its_event_delivered_once_by_another() {
    let redis = redis().await;
    let w = SlackWorld::start_with_store(Arc::new(redis.store().await)).await;
    // Two replicas of their own (`w`'s delivery loop would take their work).
    let theirs = Redis::on(redis.server.clone());
    let store: Arc<dyn Store> = Arc::new(theirs.store().await);
    let (a, _) = replica(&w, Arc::new(theirs.store().await), false).await;
    let (b, _) = replica(&w, Arc::new(theirs.store().await), false).await;
    let lease = TimeDelta::seconds(120);
    let courier = |app: &App, worker: &str| {
        Courier::new(
            app.clone(),
            CourierConfig {
                worker: worker.to_owned(),
                lease,
                batch: 10,
            },
        )
    };
    let (dying, taking_over) = (courier(&a, "dying"), courier(&b, "taking-over"));
    // Replica `a` opens the audit thread, then Slack fails the card and `a` dies
    // holding the event; nothing else is delivered meanwhile.
    w.slack.set_down(true);
    let id: RequestId = a.submit(ask("payments-db", ALICE)).await.unwrap().id;
    bounded("the preview noted", async {
        while !store
            .annotations(&id)
            .await
            .unwrap()
            .contains_key("preview")
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    w.slack.set_down(false);
    w.slack.script("chat.postMessage", Scripted::AsUsual);
    w.slack.script("chat.postMessage", Scripted::Unavailable);
    let report = dying.deliver_once(w.clock.now()).await.unwrap();
    assert_eq!(
        (report.claimed, report.delivered, report.held),
        (1, 0, 1),
        "{report:?}"
    );
    assert_eq!(w.slack.messages(AUDIT).len(), 1, "the thread was opened");
    assert!(w.slack.messages(APPROVALS).is_empty(), "the card failed");
    drop(dying);
    let early = taking_over.deliver_once(w.clock.now()).await.unwrap();
    assert_eq!(early.claimed, 0, "the dead replica's lease still holds");
    w.clock.advance(lease + TimeDelta::seconds(1));
    let report = taking_over.deliver_once(w.clock.now()).await.unwrap();
    assert_eq!((report.claimed, report.delivered), (1, 1), "{report:?}");
    let ids = [id.to_string()];
    each_told_once(&w.slack, store.as_ref(), &ids, &[]).await;
    let card = &w.slack.messages(APPROVALS)[0].body;
    assert!(
        card.to_string().contains("default-deny present"),
        "the card shows the preview"
    );
    assert_eq!(store.outbox_backlog().await.unwrap(), 0);
}

#[tokio::test]
async fn a_429s_retry_after_is_honoured_before_the_card_goes_out() {
    let redis = redis().await;
    let w = SlackWorld::start_with_store(Arc::new(redis.store().await)).await;
    // A replica of its own whose Slack client does not retry 429s itself, so the
    // outbox does.
    let theirs = Redis::on(redis.server.clone());
    let store: Arc<dyn Store> = Arc::new(theirs.store().await);
    let (b, b_notifier) = replica(&w, Arc::new(theirs.store().await), true).await;
    w.slack.set_down(true);
    let id = b.submit(ask("payments-db", ALICE)).await.unwrap().id;
    let bell = b_notifier.bell().clone();
    let first = bounded("a retry planned", bell.retry_planned()).await;
    w.slack.set_down(false);
    w.slack.script(
        "chat.postMessage",
        Scripted::RateLimited {
            retry_after_secs: 30,
        },
    );
    w.clock.set(first);
    let now = w.clock.now();
    let retry = bounded("the Retry-After followed", async {
        loop {
            match bell.status().retry_at {
                Some(at) if at > now => return at,
                _ => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    })
    .await;
    assert!(
        retry >= now + TimeDelta::seconds(30),
        "retry at {retry}, 429 at {now}"
    );
    assert!(w.slack.messages(APPROVALS).is_empty());
    w.clock.set(retry);
    bounded("the outbox drained", b_notifier.flush()).await;
    each_told_once(&w.slack, store.as_ref(), &[id.to_string()], &[]).await;
}
