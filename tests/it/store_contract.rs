//! The `Store` contract: the same test bodies run against every backend (memory here,
//! Redis in `redis_store`), so the embedded default and the durable store can never
//! drift apart. `store_contract!(name, backend)` instantiates the suite.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};

use jitbot::adapters::memory::MemoryStore;
use jitbot::core::ids::RequestId;
use jitbot::core::ports::{AuditEvent, Store, StoreError};
use jitbot::core::request::{self, AccessRequest, Actor, AuditKind, Event, State, fixtures};
use jitbot::core::ttl::Ttl;

use crate::support::fakes::{self, ALICE, LEAD1, LEAD2, audit_kinds, t0, user};

/// A place requests live; every `client()` is an independent connection to the same
/// data, like another replica.
#[async_trait]
pub trait Backend: Send + Sync {
    async fn client(&self) -> Arc<dyn Store>;

    /// Lets `by` pass on the backend's own clock, for what it expires by that clock
    /// (Redis's key TTLs). The memory store keeps time by its writes: nothing to do.
    async fn let_time_pass(&self, by: std::time::Duration) {
        let _ = by;
    }
}

pub struct Memory(Arc<MemoryStore>);

#[async_trait]
impl Backend for Memory {
    async fn client(&self) -> Arc<dyn Store> {
        self.0.clone()
    }
}

pub async fn memory() -> Memory {
    Memory(Arc::new(MemoryStore::new()))
}

/// A fresh Pending request for `payments-db` (or `ledger` when two approvals are wanted).
pub fn new_request(seed: u8, required: u32) -> AccessRequest {
    let target = if required == 2 {
        "ledger"
    } else {
        "payments-db"
    };
    AccessRequest::test()
        .seed(seed)
        .in_catalog(&fakes::catalog(), target, ALICE)
        .made_at(t0() + TimeDelta::seconds(i64::from(seed)))
        .build()
}

pub fn requested(req: &AccessRequest) -> AuditEvent {
    fixtures::requested(req, "requested")
}

fn approver(u: &str) -> Actor {
    Actor {
        user: user(u),
        is_approver: true,
        is_admin: false,
    }
}

/// The ids of what `claim_due(now, lease, 10)` hands out.
async fn claimed_ids(
    store: &dyn Store,
    now: DateTime<Utc>,
    lease: DateTime<Utc>,
) -> Vec<RequestId> {
    let claimed = store.claim_due(now, lease, 10).await.unwrap();
    claimed.into_iter().map(|c| c.id).collect()
}

/// Moves `req` through `event` in the store; returns the new request.
pub async fn step(
    store: &dyn Store,
    req: &AccessRequest,
    event: Event,
    at: DateTime<Utc>,
) -> AccessRequest {
    let t = request::apply(req, &event, at).unwrap();
    let audit = AuditEvent::of(&t, None, at, "test");
    store.transition(&t, &audit).await.unwrap();
    t.request
}

/// An Active grant expiring 30 minutes after `t0()` plus `seed` seconds.
pub async fn active(store: &dyn Store, seed: u8) -> AccessRequest {
    let req = new_request(seed, 1);
    store.create(&req, &requested(&req)).await.unwrap();
    let at = req.created_at;
    let req = step(
        store,
        &req,
        Event::Approve {
            by: approver(LEAD1),
        },
        at,
    )
    .await;
    step(
        store,
        &req,
        Event::Applied {
            expires_at: at + TimeDelta::minutes(30),
        },
        at,
    )
    .await
}

pub async fn create_and_load_round_trip(b: &dyn Backend) {
    let store = b.client().await;
    let req = new_request(1, 1);
    store.create(&req, &requested(&req)).await.unwrap();
    assert_eq!(store.load(&req.id).await.unwrap(), Some(req.clone()));
    assert_eq!(
        store.load(&RequestId::from_random([99; 10])).await.unwrap(),
        None
    );
    assert_eq!(
        store.create(&req, &requested(&req)).await,
        Err(StoreError::Exists(req.id.clone()))
    );
    let history = store.audit_of(&req.id).await.unwrap();
    assert_eq!(history.len(), 1, "a duplicate create adds no event");
}

pub async fn transition_is_compare_and_set(b: &dyn Backend) {
    let store = b.client().await;
    let req = new_request(2, 2);
    store.create(&req, &requested(&req)).await.unwrap();
    let at = req.created_at;
    let first = request::apply(
        &req,
        &Event::Approve {
            by: approver(LEAD1),
        },
        at,
    )
    .unwrap();
    // A second decision computed from the same (now stale) version.
    let stale = request::apply(
        &req,
        &Event::Approve {
            by: approver(LEAD2),
        },
        at,
    )
    .unwrap();
    store
        .transition(&first, &AuditEvent::of(&first, None, at, "first"))
        .await
        .unwrap();
    let lost = store
        .transition(&stale, &AuditEvent::of(&stale, None, at, "stale"))
        .await;
    assert_eq!(lost, Err(StoreError::Conflict(req.id.clone())));
    let stored = store.load(&req.id).await.unwrap().unwrap();
    assert_eq!(stored, first.request);
    let kinds = audit_kinds(store.as_ref(), &req.id).await;
    assert_eq!(
        kinds,
        [AuditKind::Requested, AuditKind::ApprovalRecorded],
        "the loser left no event"
    );
}

pub async fn lists_by_requester_and_state(b: &dyn Backend) {
    let store = b.client().await;
    let a = new_request(3, 1);
    let c = new_request(4, 1);
    store.create(&a, &requested(&a)).await.unwrap();
    store.create(&c, &requested(&c)).await.unwrap();
    let live = active(store.as_ref(), 5).await;
    let mine = store.list_by_requester(&user(ALICE)).await.unwrap();
    let ids: Vec<&RequestId> = mine.iter().map(|r| &r.id).collect();
    assert_eq!(ids, [&live.id, &c.id, &a.id], "newest first");
    assert!(
        store
            .list_by_requester(&user(LEAD1))
            .await
            .unwrap()
            .is_empty()
    );
    let pending: Vec<RequestId> = store
        .list_by_state(State::Pending)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(pending, [a.id.clone(), c.id.clone()]);
    let actives = store.list_by_state(State::Active).await.unwrap();
    assert_eq!(actives, [live]);
}

pub async fn pages_of_a_state_follow_its_listing(b: &dyn Backend) {
    let store = b.client().await;
    let mut made = Vec::new();
    for seed in 20..25 {
        let r = new_request(seed, 1);
        store.create(&r, &requested(&r)).await.unwrap();
        made.push(r.id);
    }
    let other = active(store.as_ref(), 30).await;
    let mut paged = Vec::new();
    for skip in [0, 2, 4] {
        let page = store
            .list_by_state_page(State::Pending, skip, 2)
            .await
            .unwrap();
        assert!(page.len() <= 2, "{page:?}");
        paged.extend(page.into_iter().map(|r| r.id));
    }
    assert_eq!(paged, made, "the pages, in order, are the listing");
    assert!(
        store
            .list_by_state_page(State::Pending, 5, 2)
            .await
            .unwrap()
            .is_empty()
    );
    let actives = store
        .list_by_state_page(State::Active, 0, 10)
        .await
        .unwrap();
    assert_eq!(actives, [other]);
}

pub async fn claims_only_due_work_and_only_once_per_lease(b: &dyn Backend) {
    let (one, two) = (b.client().await, b.client().await);
    let grants = [
        active(one.as_ref(), 10).await,
        active(one.as_ref(), 11).await,
        active(one.as_ref(), 12).await,
    ];
    let expiry = |r: &AccessRequest| r.expires_at.unwrap();
    // Before any expiry nothing is due.
    assert!(
        one.claim_due(t0(), t0() + TimeDelta::minutes(1), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let now = expiry(&grants[1]);
    let lease = now + TimeDelta::minutes(1);
    let claimed = one.claim_due(now, lease, 1).await.unwrap();
    assert_eq!(claimed.len(), 1, "limit respected");
    assert_eq!(claimed[0].id, grants[0].id, "earliest first");
    let claimed2 = two.claim_due(now, lease, 10).await.unwrap();
    assert_eq!(
        claimed2.len(),
        1,
        "the other replica gets only what is unclaimed and due"
    );
    assert_eq!(claimed2[0].id, grants[1].id);
    assert!(
        one.claim_due(now, lease, 10).await.unwrap().is_empty(),
        "claimed work is not handed out twice"
    );
    // After the lease, unfinished work is handed out again, exactly once.
    let later = lease + TimeDelta::seconds(1);
    let mut ids = claimed_ids(two.as_ref(), later, later + TimeDelta::minutes(1)).await;
    ids.sort();
    // The two whose lease ran out, and the third, which has come due meanwhile.
    let mut want: Vec<RequestId> = grants.iter().map(|g| g.id.clone()).collect();
    want.sort();
    assert_eq!(ids, want);
    assert!(
        one.claim_due(later, later + TimeDelta::minutes(1), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn next_due_is_the_earliest_timer_or_lease(b: &dyn Backend) {
    let store = b.client().await;
    assert_eq!(store.next_due().await.unwrap(), None, "nothing can move");
    let pending = new_request(30, 1);
    store.create(&pending, &requested(&pending)).await.unwrap();
    let grant = active(store.as_ref(), 31).await;
    let (first, second) = (grant.due_at().unwrap(), pending.due_at().unwrap());
    assert!(first < second);
    assert_eq!(store.next_due().await.unwrap(), Some(first));

    // A claimed timer comes due again when its lease runs out.
    let lease = first + TimeDelta::minutes(1);
    assert_eq!(store.claim_due(first, lease, 10).await.unwrap().len(), 1);
    assert_eq!(store.next_due().await.unwrap(), Some(lease.min(second)));
    let long_lease = first + TimeDelta::hours(2);
    store.release(&grant).await.unwrap();
    store.claim_due(first, long_lease, 10).await.unwrap();
    assert_eq!(store.next_due().await.unwrap(), Some(second));

    // Ended requests have no timer.
    step(
        store.as_ref(),
        &grant,
        Event::Expire,
        grant.expires_at.unwrap(),
    )
    .await;
    assert_eq!(store.next_due().await.unwrap(), Some(second));
}

pub async fn a_transition_releases_the_claim_and_rearms_the_timer(b: &dyn Backend) {
    let store = b.client().await;
    let grant = active(store.as_ref(), 20).await;
    let due = grant.expires_at.unwrap();
    let claimed = store
        .claim_due(due, due + TimeDelta::minutes(1), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let done = step(store.as_ref(), &grant, Event::Expire, due).await;
    assert_eq!(done.state, State::Expired);
    let far = due + TimeDelta::days(30);
    assert!(
        store.claim_due(far, far, 10).await.unwrap().is_empty(),
        "a terminal request has no timer"
    );
}

pub async fn release_rearms_only_the_current_version(b: &dyn Backend) {
    let store = b.client().await;
    let grant = active(store.as_ref(), 21).await;
    let due = grant.expires_at.unwrap();
    store
        .claim_due(due, due + TimeDelta::hours(1), 10)
        .await
        .unwrap();
    store.release(&grant).await.unwrap();
    let again = store
        .claim_due(due, due + TimeDelta::hours(1), 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "released work is claimable at once");
    // A release based on an old version must not re-arm that version's timer: here
    // the grant was extended meanwhile, so the old expiry must not fire.
    let old = active(store.as_ref(), 22).await;
    let at = old.created_at;
    let alice = Actor {
        user: user(ALICE),
        is_approver: false,
        is_admin: false,
    };
    let asked = step(
        store.as_ref(),
        &old,
        Event::Extend {
            by: alice,
            duration: Ttl::from_mins(30),
        },
        at,
    )
    .await;
    let extended = step(
        store.as_ref(),
        &asked,
        Event::Approve {
            by: approver(LEAD1),
        },
        at,
    )
    .await;
    assert_eq!(
        extended.expires_at,
        Some(old.expires_at.unwrap() + TimeDelta::minutes(30))
    );
    store.release(&old).await.unwrap();
    let between = old.expires_at.unwrap() + TimeDelta::minutes(15);
    let claimed = claimed_ids(store.as_ref(), between, between).await;
    assert!(!claimed.contains(&old.id), "the old expiry stays disarmed");
    let after = extended.expires_at.unwrap();
    let claimed = claimed_ids(store.as_ref(), after, after).await;
    assert!(claimed.contains(&old.id), "the new expiry fires");
}

pub async fn audit_keeps_history_per_request(b: &dyn Backend) {
    let store = b.client().await;
    let grant = active(store.as_ref(), 30).await;
    let extra = AuditEvent {
        request_id: grant.id.clone(),
        kind: AuditKind::PolicyReapplied,
        at: t0(),
        actor: None,
        from: Some(State::Active),
        to: Some(State::Active),
        detail: "reconciler re-applied".to_owned(),
    };
    store.append_audit(&extra).await.unwrap();
    let kinds = audit_kinds(store.as_ref(), &grant.id).await;
    assert_eq!(
        kinds,
        [
            AuditKind::Requested,
            AuditKind::Approved,
            AuditKind::Activated,
            AuditKind::PolicyReapplied
        ]
    );
    store.ping().await.unwrap();
}

pub async fn annotations_are_kept_per_request(b: &dyn Backend) {
    let store = b.client().await;
    let req = new_request(40, 1);
    store.create(&req, &requested(&req)).await.unwrap();
    store
        .annotate(&req.id, "slack.card", "C03DBAPPRV 1700000000.000100")
        .await
        .unwrap();
    store
        .annotate(&req.id, "slack.card", "C03DBAPPRV 1700000000.000200")
        .await
        .unwrap();
    store
        .annotate(&req.id, "preview", "default-deny present, 4 pods")
        .await
        .unwrap();
    let notes = store.annotations(&req.id).await.unwrap();
    assert_eq!(notes.len(), 2);
    assert_eq!(
        notes["slack.card"], "C03DBAPPRV 1700000000.000200",
        "last write wins"
    );
    let unknown = RequestId::from_random([41; 10]);
    assert_eq!(
        store.annotate(&unknown, "k", "v").await,
        Err(StoreError::NotFound(unknown.clone()))
    );
    assert!(store.annotations(&unknown).await.unwrap().is_empty());
}

/// A key is remembered once across every client of the store (every replica), and
/// keys are independent.
pub async fn a_key_is_remembered_once_across_replicas(b: &dyn Backend) {
    let (one, two) = (b.client().await, b.client().await);
    let until = t0() + TimeDelta::minutes(10);
    assert!(one.remember_once("v0=aa", t0(), until).await.unwrap());
    assert!(!two.remember_once("v0=aa", t0(), until).await.unwrap());
    assert!(!one.remember_once("v0=aa", t0(), until).await.unwrap());
    assert!(two.remember_once("v0=bb", t0(), until).await.unwrap());
}

/// Creates `n` requests in `store`, each with its `requested` event; answers them.
async fn created(store: &dyn Store, seeds: std::ops::Range<u8>) -> Vec<AccessRequest> {
    let mut out = Vec::new();
    for seed in seeds {
        let req = new_request(seed, 1);
        store.create(&req, &requested(&req)).await.unwrap();
        out.push(req);
    }
    out
}

pub async fn outbox_hands_each_event_to_one_worker_in_order(b: &dyn Backend) {
    let (one, two) = (b.client().await, b.client().await);
    one.open_outbox().await.unwrap();
    two.open_outbox().await.unwrap();
    let reqs = created(one.as_ref(), 1..4).await;
    let lease = t0() + TimeDelta::seconds(60);
    let first = one.claim_outgoing("one", t0(), lease, 2).await.unwrap();
    let ids = |c: &jitbot::core::ports::OutboxClaim| -> Vec<RequestId> {
        c.events
            .iter()
            .map(|o| o.event.request_id.clone())
            .collect()
    };
    assert_eq!(ids(&first), [reqs[0].id.clone(), reqs[1].id.clone()]);
    assert!(
        first.events[0].id < first.events[1].id,
        "ids follow the writes"
    );
    assert!(first.events.iter().all(|o| o.done.is_empty()));
    assert_eq!(first.events[0].event, requested(&reqs[0]));
    let second = two.claim_outgoing("two", t0(), lease, 10).await.unwrap();
    assert_eq!(
        ids(&second),
        [reqs[2].id.clone()],
        "each event goes to one worker"
    );
    let again = one.claim_outgoing("one", t0(), lease, 10).await.unwrap();
    assert!(
        again.events.is_empty(),
        "leased events are not handed out again"
    );
    assert_eq!(one.outbox_backlog().await.unwrap(), 3);
    one.ack_outgoing(&first.events[0].id).await.unwrap();
    assert_eq!(two.outbox_backlog().await.unwrap(), 2);
    // A transition's and an alert's events enter the outbox too.
    let approve = Event::Approve {
        by: approver(LEAD1),
    };
    let approved = step(two.as_ref(), &reqs[0], approve, reqs[0].created_at).await;
    let alert = fixtures::requested(&approved, "an alert");
    two.append_audit(&alert).await.unwrap();
    let later = one.claim_outgoing("one", t0(), lease, 10).await.unwrap();
    let kinds: Vec<AuditKind> = later.events.iter().map(|o| o.event.kind).collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    assert_eq!(one.outbox_backlog().await.unwrap(), 4);
}

pub async fn outbox_delivers_only_what_was_written_after_it_opened(b: &dyn Backend) {
    let store = b.client().await;
    created(store.as_ref(), 1..2).await;
    store.open_outbox().await.unwrap();
    let after = created(store.as_ref(), 2..3).await;
    let lease = t0() + TimeDelta::seconds(60);
    let claim = store.claim_outgoing("one", t0(), lease, 10).await.unwrap();
    let ids: Vec<RequestId> = claim
        .events
        .iter()
        .map(|o| o.event.request_id.clone())
        .collect();
    assert_eq!(ids, [after[0].id.clone()]);
    assert_eq!(store.outbox_backlog().await.unwrap(), 1);
}

pub async fn an_expired_lease_goes_to_another_worker_with_its_progress(b: &dyn Backend) {
    let (one, two) = (b.client().await, b.client().await);
    one.open_outbox().await.unwrap();
    created(one.as_ref(), 1..2).await;
    let lease = t0() + TimeDelta::seconds(60);
    let claim = one.claim_outgoing("one", t0(), lease, 10).await.unwrap();
    let id = claim.events[0].id.clone();
    assert!(
        one.mark_outgoing(&id, "one", Some("opening"), lease)
            .await
            .unwrap()
    );
    let early = two
        .claim_outgoing("two", t0() + TimeDelta::seconds(59), lease, 10)
        .await
        .unwrap();
    assert!(early.events.is_empty(), "the lease still holds");
    let late = t0() + TimeDelta::seconds(61);
    let taken = two
        .claim_outgoing("two", late, late + TimeDelta::seconds(60), 10)
        .await
        .unwrap();
    assert_eq!(taken.events.len(), 1);
    assert_eq!(taken.events[0].id, id);
    assert_eq!(
        taken.events[0].done.iter().collect::<Vec<_>>(),
        ["opening"],
        "the progress comes along"
    );
    assert!(
        !one.mark_outgoing(&id, "one", Some("card"), late)
            .await
            .unwrap(),
        "the first worker has lost it"
    );
    assert!(
        two.mark_outgoing(&id, "two", Some("card"), late + TimeDelta::seconds(60))
            .await
            .unwrap()
    );
    let none = one
        .claim_outgoing("one", late, late + TimeDelta::seconds(60), 10)
        .await
        .unwrap();
    assert!(none.events.is_empty(), "a renewed lease holds");
    two.ack_outgoing(&id).await.unwrap();
    assert_eq!(one.outbox_backlog().await.unwrap(), 0);
    assert!(
        !two.mark_outgoing(&id, "two", None, late).await.unwrap(),
        "acknowledged"
    );
    let far = late + TimeDelta::hours(1);
    let after_ack = one.claim_outgoing("one", far, far, 10).await.unwrap();
    assert!(
        after_ack.events.is_empty(),
        "an acknowledged event never comes back"
    );
}

/// One `#[$attr] async fn $test()` per name, each running `$crate::$suite::$test` on a
/// fresh `$backend`.
#[macro_export]
macro_rules! contract_tests {
    ($suite:ident, #[$attr:meta], $backend:expr; $($test:ident),* $(,)?) => {
        $(
            #[$attr]
            async fn $test() {
                $crate::$suite::$test(&$backend.await).await
            }
        )*
    };
}

/// Instantiates every contract test for one backend.
#[macro_export]
macro_rules! store_contract {
    ($name:ident, $backend:expr) => {
        mod $name {
            use super::*;
            $crate::contract_tests!(store_contract, #[tokio::test], $backend;
                create_and_load_round_trip, transition_is_compare_and_set,
                lists_by_requester_and_state, pages_of_a_state_follow_its_listing,
                claims_only_due_work_and_only_once_per_lease,
                a_transition_releases_the_claim_and_rearms_the_timer,
                next_due_is_the_earliest_timer_or_lease, release_rearms_only_the_current_version,
                audit_keeps_history_per_request, annotations_are_kept_per_request,
                a_key_is_remembered_once_across_replicas,
                outbox_hands_each_event_to_one_worker_in_order,
                outbox_delivers_only_what_was_written_after_it_opened,
                an_expired_lease_goes_to_another_worker_with_its_progress,
            );
            $crate::lifecycle_contract!($backend);
            $crate::retention_contract!($backend);
        }
    };
}

store_contract!(memory_store, memory());
