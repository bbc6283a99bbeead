//! Redis memory per finished request, before and after retention removed it: `count`
//! grants are made, approved, applied (with the notes Slack leaves: card, audit
//! thread, preview) and expired, the way the use cases write them, by
//! [`REQUESTERS`] people; then retention is let act: what Redis does once the TTLs
//! set by the ending transitions run out (the keys go), and what the scripts do on
//! the next ends (each person's next request ends after the cutoff, trimming the
//! indexes; the audit stream is trimmed by age as that script would, its events being
//! retention old by then).

use chrono::{DateTime, TimeDelta, Utc};

use jitbot::adapters::redis::RedisStore;
use jitbot::core::ids::{RequestId, SlackUserId};
use jitbot::core::ports::{AuditEvent, DEFAULT_RETENTION, Store};
use jitbot::core::request::{self, AccessRequest, Actor, Event};

use super::fan_out::fan_out;
use super::redis_server::RedisServer;
use super::redis_stats::RedisStats;
use super::{POPULATE_TASKS, fakes, store, template};

/// People the finished requests are spread over.
const REQUESTERS: usize = 200;

/// The figures, in bytes of `used_memory` per finished request.
pub struct FinishedMemory {
    pub count: usize,
    pub before: i64,
    pub after: i64,
    /// The audit stream's share of `before` (`MEMORY USAGE`).
    pub stream_before: i64,
    /// What jitbot's keys still hold after retention (`MEMORY USAGE` of each), per
    /// finished request: `after` also counts what Redis has not given back yet (its
    /// key tables shrink later), which the next writes reuse.
    pub keys_after: i64,
}

fn person(i: usize) -> SlackUserId {
    format!("U0BENCH{:04}", i % REQUESTERS)
        .parse()
        .expect("a Slack user id")
}

/// Runs one event on `req` in the store, as the use cases do.
async fn step(
    store: &RedisStore,
    req: AccessRequest,
    event: Event,
    at: DateTime<Utc>,
) -> AccessRequest {
    let t = request::apply(&req, &event, at).expect("a valid transition");
    let audit = AuditEvent::of(&t, None, at, "NetworkPolicy applied in payments");
    store.transition(&t, &audit).await.expect("transition");
    t.request
}

/// One grant by `who`, made at `at`, from request to expiry (four scripts, four
/// audit events, three notes).
async fn finished(store: &RedisStore, base: &AccessRequest, who: SlackUserId, at: DateTime<Utc>) {
    let mut req = base.clone();
    req.id = RequestId::from_random(rand::random());
    req.requester = who;
    req.created_at = at;
    req.approval_deadline = at + TimeDelta::hours(1);
    let detail = format!(
        "{} for {} from {}: {}",
        req.duration, req.target, req.source, req.reason
    );
    store
        .create(&req, &request::fixtures::requested(&req, &detail))
        .await
        .expect("create");
    for (key, value) in [
        ("slack.card", "C03DBAPPRV 1700000000.000100"),
        ("slack.audit", "C09AUDIT01 1700000000.000200"),
        ("preview", "default-deny present, 4 pods"),
    ] {
        store.annotate(&req.id, key, value).await.expect("annotate");
    }
    let lead = Actor {
        user: fakes::user(fakes::LEAD1),
        is_approver: true,
        is_admin: false,
    };
    let req = step(store, req, Event::Approve { by: lead }, at).await;
    let expires_at = at + TimeDelta::minutes(30);
    let req = step(store, req, Event::Applied { expires_at }, at).await;
    step(store, req, Event::Expire, expires_at).await;
}

/// `count` finished grants, all at `at`, spread over the people.
async fn finish_many(store: &RedisStore, count: usize, first: usize, at: DateTime<Utc>) {
    let base = std::sync::Arc::new(template(at));
    let store = store.clone();
    fan_out(count, POPULATE_TASKS, move |i| {
        let (store, base) = (store.clone(), base.clone());
        async move { finished(&store, &base, person(first + i), at).await }
    })
    .await;
}

/// What Redis does when the TTLs under `prefix` run out: it deletes those keys.
fn expire_all(stats: &mut RedisStats, prefix: &str) {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut stats.0)
        .expect("KEYS");
    for key in keys {
        let left: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query(&mut stats.0)
            .expect("PTTL");
        if left > 0 {
            let _: i64 = redis::cmd("DEL")
                .arg(&key)
                .query(&mut stats.0)
                .expect("DEL");
        }
    }
}

pub async fn finished_memory(
    server: &RedisServer,
    stats: &mut RedisStats,
    count: usize,
) -> FinishedMemory {
    let prefix = "{bench-retention}";
    let store = store(server, prefix).await;
    let baseline = stats.used_memory();
    let made = fakes::t0();
    finish_many(&store, count, 0, made).await;
    let before = stats.used_memory() - baseline;
    let stream_before = stats.memory_usage(&format!("{prefix}:audit"));

    // Retention later: the keys have expired, and each person's next grant ends
    // after the cutoff, which trims their index and the Expired index.
    expire_all(stats, prefix);
    let later = made + DEFAULT_RETENTION.as_delta() + TimeDelta::hours(1);
    finish_many(&store, REQUESTERS, 0, later).await;
    // Those later grants go in turn (only what they left in the indexes stays), and
    // the audit stream loses the events older than retention, as the next ends'
    // `XTRIM MINID ~` would once they are that old (each end trims
    // at most 10,000 entries, `~`'s default limit, so several ends are needed here).
    expire_all(stats, prefix);
    let cutoff = Utc::now().timestamp_millis();
    loop {
        let trimmed: i64 = redis::cmd("XTRIM")
            .arg(format!("{prefix}:audit"))
            .arg("MINID")
            .arg("~")
            .arg(cutoff)
            .query(&mut stats.0)
            .expect("XTRIM");
        if trimmed == 0 {
            break;
        }
    }
    let after = stats.used_memory() - baseline;
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut stats.0)
        .expect("KEYS");
    let keys_after: i64 = left.iter().map(|k| stats.memory_usage(k)).sum();
    FinishedMemory {
        count,
        before: before / count as i64,
        after: after / count as i64,
        stream_before: stream_before / count as i64,
        keys_after: keys_after / count as i64,
    }
}
