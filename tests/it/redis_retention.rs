//! Retention on a real redis-server, in the keys themselves: the transition that ends
//! a request gives its keys the retention as their TTL (read back with `PTTL`, so
//! nothing waits for it), live requests keep none, the indexes lose finished requests
//! made before the cutoff, and the audit stream loses events older than retention.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;

use jitbot::core::ids::RequestId;
use jitbot::core::ports::{DEFAULT_RETENTION, Store};
use jitbot::core::request::{AccessRequest, Actor, Event};

use crate::redis_store::Redis;
use crate::store_contract::{active, new_request, requested, step};
use crate::support::fakes::{ALICE, LEAD1, t0, user};
use crate::support::redis::RedisServer;

const TEN_MINUTES: Duration = Duration::from_secs(600);

fn redis_with(retention: Option<Duration>) -> Redis {
    let mut b = Redis::on(Arc::new(RedisServer::start()));
    b.settings.retention = retention;
    b
}

fn key(b: &Redis, kind: &str, id: &RequestId) -> String {
    format!("{}:{kind}:{id}", b.settings.key_prefix)
}

fn pttl(admin: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query(admin).unwrap()
}

/// Alice's request `seed`, denied `at`.
async fn denied(store: &dyn Store, seed: u8, at: chrono::DateTime<chrono::Utc>) -> AccessRequest {
    let req = AccessRequest::test().seed(seed).made_at(at).build();
    store.create(&req, &requested(&req)).await.unwrap();
    let by = Actor {
        user: user(LEAD1),
        is_approver: true,
        is_admin: false,
    };
    step(store, &req, Event::Deny { by, note: None }, at).await
}

#[tokio::test]
async fn ending_a_request_gives_its_keys_the_retention_and_live_ones_none() {
    let b = redis_with(Some(TEN_MINUTES));
    let store = b.store().await;
    let waiting = new_request(1, 1);
    store.create(&waiting, &requested(&waiting)).await.unwrap();
    let live = active(&store, 2).await;
    store
        .annotate(&live.id, "slack.card", "C1 1.0")
        .await
        .unwrap();
    let gone = denied(&store, 3, t0()).await;
    store
        .annotate(&gone.id, "slack.card", "C1 2.0")
        .await
        .unwrap();

    let mut admin = b.server.admin();
    let range = 9 * 60 * 1000..=10 * 60 * 1000;
    for kind in ["req", "history", "notes"] {
        let left = pttl(&mut admin, &key(&b, kind, &gone.id));
        assert!(range.contains(&left), "{kind}: PTTL {left}");
    }
    for (kind, id) in [
        ("req", &waiting.id),
        ("history", &waiting.id),
        ("req", &live.id),
        ("history", &live.id),
        ("notes", &live.id),
    ] {
        assert_eq!(pttl(&mut admin, &key(&b, kind, id)), -1, "{kind} of {id}");
    }
}

#[tokio::test]
async fn the_default_retention_is_ninety_days_and_none_keeps_for_ever() {
    let b = redis_with(Some(DEFAULT_RETENTION.as_std()));
    let gone = denied(&b.store().await, 1, t0()).await;
    let left = pttl(&mut b.server.admin(), &key(&b, "req", &gone.id));
    let ninety_days = 90 * 24 * 3600 * 1000;
    assert!(
        (ninety_days - 60_000..=ninety_days).contains(&left),
        "{left}"
    );
    assert_eq!(
        jitbot::adapters::redis::RedisSettings::default().retention,
        Some(DEFAULT_RETENTION.as_std())
    );

    let b = redis_with(None);
    let kept = denied(&b.store().await, 2, t0()).await;
    assert_eq!(pttl(&mut b.server.admin(), &key(&b, "req", &kept.id)), -1);
}

#[tokio::test]
async fn a_later_end_trims_finished_requests_from_the_indexes() {
    let b = redis_with(Some(TEN_MINUTES));
    let store = b.store().await;
    let waiting = new_request(1, 1);
    store.create(&waiting, &requested(&waiting)).await.unwrap();
    let live = active(&store, 2).await;
    let old = denied(&store, 3, t0() + TimeDelta::seconds(3)).await;
    // Ended twenty minutes later: the cutoff (ten minutes back) is past all three.
    let later = denied(&store, 4, t0() + TimeDelta::minutes(20)).await;
    let mut admin = b.server.admin();
    let score = |admin: &mut redis::Connection, index: &str, id: &RequestId| -> Option<f64> {
        let key = format!("{}:{index}", b.settings.key_prefix);
        redis::cmd("ZSCORE")
            .arg(key)
            .arg(id.as_str())
            .query(admin)
            .unwrap()
    };
    let mine = format!("requester:{ALICE}");
    assert_eq!(score(&mut admin, "state:denied", &old.id), None);
    assert_eq!(score(&mut admin, &mine, &old.id), None);
    assert!(score(&mut admin, "state:denied", &later.id).is_some());
    for id in [&waiting.id, &live.id, &later.id] {
        assert!(score(&mut admin, &mine, id).is_some(), "{id} is still hers");
    }
    assert!(score(&mut admin, "state:active", &live.id).is_some());
}

#[tokio::test]
async fn the_audit_stream_loses_events_older_than_retention() {
    let b = redis_with(Some(TEN_MINUTES));
    let stream = format!("{}:audit", b.settings.key_prefix);
    let mut admin = b.server.admin();
    // Five hundred events from 1970, in five stream nodes of a hundred.
    for ms in 1..=500 {
        let _: String = redis::cmd("XADD")
            .arg(&stream)
            .arg(format!("{ms}-0"))
            .arg("event")
            .arg("{}")
            .query(&mut admin)
            .unwrap();
    }
    denied(&b.store().await, 1, t0()).await;
    let left: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(&stream)
        .arg("-")
        .arg("+")
        .query(&mut admin)
        .unwrap();
    let ids: Vec<&str> = left.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids.len(), 2, "requested and denied are left: {ids:?}");
    for id in ids {
        let ms: u64 = id.split('-').next().unwrap().parse().unwrap();
        assert!(ms > 500, "{id} is older than retention");
    }
}
