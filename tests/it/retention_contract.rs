//! What both stores promise about the submission caps' counts and about retention,
//! run on every backend by `store_contract!`: the counts come from what is stored,
//! finished requests go `DEFAULT_RETENTION` after they ended (with their history and
//! notes, and from every listing), and what can still move never goes.

use chrono::{DateTime, TimeDelta, Utc};

use jitbot::core::ids::RequestId;
use jitbot::core::ports::{AuditEvent, DEFAULT_RETENTION, Store};
use jitbot::core::request::{AccessRequest, Actor, AuditKind, Event, State};

use crate::store_contract::{Backend, active, new_request, requested, step};
use crate::support::fakes::{self, ALICE, CAROL, LEAD1, t0, user};

fn lead() -> Actor {
    Actor {
        user: user(LEAD1),
        is_approver: true,
        is_admin: false,
    }
}

/// `requester`'s Pending request for `payments-db`, made at `at`, stored.
async fn made(store: &dyn Store, seed: u8, requester: &str, at: DateTime<Utc>) -> AccessRequest {
    let req = AccessRequest::test()
        .seed(seed)
        .in_catalog(&fakes::catalog(), "payments-db", requester)
        .made_at(at)
        .build();
    store.create(&req, &requested(&req)).await.unwrap();
    req
}

/// Alice's request made at `at` and denied at once: a write that ends a request.
async fn denied_at(store: &dyn Store, seed: u8, at: DateTime<Utc>) -> AccessRequest {
    let req = made(store, seed, ALICE, at).await;
    let by = lead();
    step(store, &req, Event::Deny { by, note: None }, at).await
}

fn ids(requests: &[AccessRequest]) -> Vec<RequestId> {
    requests.iter().map(|r| r.id.clone()).collect()
}

pub async fn activity_counts_what_waits_and_what_was_made_lately(b: &dyn Backend) {
    let store = b.client().await;
    let mut waiting = Vec::new();
    for seed in [50, 51, 52] {
        let r = new_request(seed, 1);
        store.create(&r, &requested(&r)).await.unwrap();
        waiting.push(r);
    }
    let live = active(store.as_ref(), 53).await;
    let ended = denied_at(store.as_ref(), 54, t0() + TimeDelta::seconds(54)).await;
    let lead_waits = made(store.as_ref(), 55, LEAD1, t0() + TimeDelta::seconds(55)).await;

    let since = t0() + TimeDelta::seconds(52);
    let alice = store.activity_of(&user(ALICE), since).await.unwrap();
    let pending: Vec<(RequestId, DateTime<Utc>)> = alice
        .pending
        .iter()
        .map(|w| (w.id.clone(), w.made_at))
        .collect();
    let expected: Vec<(RequestId, DateTime<Utc>)> = waiting
        .iter()
        .map(|r| (r.id.clone(), r.created_at))
        .collect();
    assert_eq!(pending, expected, "her Pending requests, oldest first");
    assert_eq!(
        alice.recent,
        [waiting[2].created_at, live.created_at, ended.created_at],
        "made at or after `since`, in any state"
    );
    let all = store.activity_of(&user(ALICE), t0()).await.unwrap();
    assert_eq!(all.recent.len(), 5);

    let lead = store.activity_of(&user(LEAD1), t0()).await.unwrap();
    assert_eq!(lead.pending.len(), 1);
    assert_eq!(lead.pending[0].id, lead_waits.id);
    assert_eq!(lead.recent, [lead_waits.created_at]);
    let carol = store.activity_of(&user(CAROL), t0()).await.unwrap();
    assert!(carol.pending.is_empty() && carol.recent.is_empty());
}

pub async fn finished_requests_go_after_retention_and_live_ones_stay(b: &dyn Backend) {
    let store = b.client().await;
    let keep = DEFAULT_RETENTION.as_delta();
    let waiting = made(store.as_ref(), 60, ALICE, t0()).await;
    let live = active(store.as_ref(), 61).await;
    let gone = made(store.as_ref(), 62, ALICE, t0() + TimeDelta::seconds(62)).await;
    store
        .annotate(&gone.id, "slack.card", "C1 1.0")
        .await
        .unwrap();
    let at = gone.created_at;
    let by = lead();
    let gone = step(store.as_ref(), &gone, Event::Deny { by, note: None }, at).await;
    // A note and an audit line written after the end go with the request.
    store
        .annotate(&gone.id, "slack.audit", "C2 2.0")
        .await
        .unwrap();
    let alert = AuditEvent {
        request_id: gone.id.clone(),
        kind: AuditKind::RevokeFailing,
        at,
        actor: None,
        from: Some(State::Denied),
        to: Some(State::Denied),
        detail: "late".to_owned(),
    };
    store.append_audit(&alert).await.unwrap();
    let grant = active(store.as_ref(), 63).await;
    let expires = grant.expires_at.unwrap();
    let expired = step(store.as_ref(), &grant, Event::Expire, expires).await;

    // An hour before retention runs out, everything is kept.
    b.let_time_pass((keep - TimeDelta::hours(1)).to_std().unwrap())
        .await;
    let first_later = denied_at(store.as_ref(), 64, t0() + keep - TimeDelta::hours(1)).await;
    assert_eq!(store.load(&gone.id).await.unwrap(), Some(gone.clone()));
    assert_eq!(store.audit_of(&gone.id).await.unwrap().len(), 3);
    assert_eq!(store.annotations(&gone.id).await.unwrap().len(), 2);
    assert!(store.load(&expired.id).await.unwrap().is_some());

    // An hour after it ran out, the finished requests are gone, whole.
    b.let_time_pass(std::time::Duration::from_secs(2 * 3600))
        .await;
    let second_later = denied_at(store.as_ref(), 65, t0() + keep + TimeDelta::hours(1)).await;
    for old in [&gone, &expired] {
        assert_eq!(store.load(&old.id).await.unwrap(), None, "{}", old.id);
        assert!(store.audit_of(&old.id).await.unwrap().is_empty());
        assert!(store.annotations(&old.id).await.unwrap().is_empty());
    }
    let denied = store.list_by_state(State::Denied).await.unwrap();
    assert_eq!(
        ids(&denied),
        [first_later.id.clone(), second_later.id.clone()]
    );
    assert!(
        store
            .list_by_state(State::Expired)
            .await
            .unwrap()
            .is_empty()
    );
    let mine = store.list_by_requester(&user(ALICE)).await.unwrap();
    assert_eq!(
        ids(&mine),
        [
            second_later.id.clone(),
            first_later.id.clone(),
            live.id.clone(),
            waiting.id.clone()
        ],
        "newest first, without the finished ones that went"
    );
    // What can still move never goes.
    assert_eq!(store.load(&waiting.id).await.unwrap(), Some(waiting));
    assert_eq!(store.load(&live.id).await.unwrap(), Some(live.clone()));
    assert_eq!(store.audit_of(&live.id).await.unwrap().len(), 3);
    let actives = store.list_by_state(State::Active).await.unwrap();
    assert_eq!(actives, [live]);
}

/// Instantiates the retention tests inside a backend's module.
#[macro_export]
macro_rules! retention_contract {
    ($backend:expr) => {
        $crate::contract_tests!(
            retention_contract,
            #[tokio::test],
            $backend;
            activity_counts_what_waits_and_what_was_made_lately,
            finished_requests_go_after_retention_and_live_ones_stay,
        );
    };
}
