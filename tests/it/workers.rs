//! The worker loops on tokio's paused clock and the app's manual clock: the sweep
//! wakes at the store's next deadline (moved earlier by timers this replica arms) and
//! works a cohort concurrently, and stops on shutdown; the reconciler runs once at
//! start. No test waits for real time.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use jitbot::app::AppConfig;
use jitbot::core::ports::Clock;

use jitbot::adapters::memory::MemoryStore;
use jitbot::core::request::State;
use jitbot::worker;

use crate::support::fakes::{ALICE, LEAD1, active, test_app};

/// Lets spawned tasks run until they wait on something again.
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

/// Starts a worker loop in the background and lets it run until it waits. Sending
/// `true` stops it; the handle ends when it has.
async fn started<F>(
    worker: impl FnOnce(watch::Receiver<bool>) -> F,
) -> (watch::Sender<bool>, JoinHandle<()>)
where
    F: Future<Output = ()> + Send + 'static,
{
    let (stop, stopped) = watch::channel(false);
    let running = tokio::spawn(worker(stopped));
    settle().await;
    (stop, running)
}

#[tokio::test(start_paused = true)]
async fn the_sweep_loop_expires_grants_on_its_interval_and_stops_on_shutdown() {
    let t = test_app(Arc::new(MemoryStore::new()));
    let req = active(&t.app, "payments-db", ALICE, LEAD1).await;
    let (stop, sweeper) =
        started(|stopped| worker::sweep_loop(t.app.clone(), Duration::from_secs(5), stopped)).await;
    assert_eq!(t.state_of(&req.id).await, State::Active, "not due yet");

    // The grant's time is up on the app clock; the loop notices at its next tick.
    t.clock.advance(TimeDelta::minutes(31));
    tokio::time::advance(Duration::from_secs(5)).await;
    settle().await;
    assert_eq!(t.state_of(&req.id).await, State::Expired);
    assert!(t.enforcer.live_names().is_empty());

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(1), sweeper)
        .await
        .expect("the loop stops")
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_reconcile_loop_runs_at_once_on_start() {
    let t = test_app(Arc::new(MemoryStore::new()));
    let req = active(&t.app, "payments-db", ALICE, LEAD1).await;
    // Someone deletes the policy behind jitbot's back, a while after it went in.
    t.enforcer.clear();
    t.clock.advance(TimeDelta::minutes(3));
    let _reconciler =
        started(|stopped| worker::reconcile_loop(t.app.clone(), Duration::from_secs(30), stopped))
            .await;
    assert_eq!(
        t.state_of(&req.id).await,
        State::Revoked,
        "the grant ended without waiting an interval"
    );
    assert!(t.enforcer.live_names().is_empty(), "never re-created");
}

#[tokio::test(start_paused = true)]
async fn a_full_batch_is_followed_at_once_by_another_sweep() {
    let mut t = test_app(Arc::new(MemoryStore::new()));
    let one_at_a_time = AppConfig {
        sweep_batch: 1,
        ..t.app.config().clone()
    };
    t.app = t.app.with_config(one_at_a_time);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let req = active(&t.app, "payments-db", ALICE, LEAD1).await;
        ids.push(req.id);
    }
    t.clock.advance(TimeDelta::minutes(31));
    let _sweeper =
        started(|stopped| worker::sweep_loop(t.app.clone(), Duration::from_secs(5), stopped)).await;
    for id in &ids {
        assert_eq!(
            t.state_of(id).await,
            State::Expired,
            "all three in one tick"
        );
    }
}

/// A ceiling so long that only a deadline can wake the sweep in these tests.
const NO_CEILING: Duration = Duration::from_secs(24 * 3600);

#[tokio::test(start_paused = true)]
async fn the_sweep_wakes_at_the_grants_deadline_not_on_a_tick() {
    let t = test_app(Arc::new(MemoryStore::new()));
    let req = active(&t.app, "payments-db", ALICE, LEAD1).await;
    let expires_at = req.expires_at.unwrap();
    let _sweeper = started(|stopped| worker::sweep_loop(t.app.clone(), NO_CEILING, stopped)).await;

    t.clock.set(expires_at - TimeDelta::seconds(1));
    settle().await;
    assert_eq!(
        t.state_of(&req.id).await,
        State::Active,
        "a second before its expiry the grant stands"
    );
    t.clock.set(expires_at);
    settle().await;
    assert_eq!(
        t.state_of(&req.id).await,
        State::Expired,
        "at its expiry, with no tick to wait for"
    );
    assert!(t.enforcer.live_names().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_timer_this_replica_arms_wakes_a_sleeping_sweep_early() {
    let t = test_app(Arc::new(MemoryStore::new()));
    // Nothing is due: the sweep sleeps until its ceiling, a day away.
    let _sweeper = started(|stopped| worker::sweep_loop(t.app.clone(), NO_CEILING, stopped)).await;

    // A 30-minute grant arms a timer far before that.
    let req = active(&t.app, "payments-db", ALICE, LEAD1).await;
    t.clock.set(req.expires_at.unwrap());
    settle().await;
    assert_eq!(t.state_of(&req.id).await, State::Expired);
}

#[tokio::test(start_paused = true)]
async fn a_cohort_expiring_at_one_instant_is_worked_concurrently() {
    let t = test_app(Arc::new(MemoryStore::new()));
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(active(&t.app, "payments-db", ALICE, LEAD1).await.id);
    }
    // Each revoke waits until all three are in flight: one after another would hang.
    t.enforcer
        .hold_revokes_at(Arc::new(tokio::sync::Barrier::new(3)));
    t.clock.advance(TimeDelta::minutes(31));
    let report = tokio::time::timeout(Duration::from_secs(60), t.app.sweep_once(t.clock.now()))
        .await
        .expect("the three deletes run at once, not one after another")
        .unwrap();
    assert_eq!(report.expired, 3);
    for id in &ids {
        assert_eq!(t.state_of(id).await, State::Expired);
    }
}
