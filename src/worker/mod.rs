//! The background loops: the expiry sweep and the reconciler (and, in [`delivery`],
//! the Slack delivery loop). Each is a thin loop
//! around one `*_once` step of the app, which the tests drive directly with an
//! injected `now`. The sweep sleeps until the store's next deadline (on the app's
//! clock, so a test that moves its clock wakes it); the reconciler runs on an
//! interval. Both run until shutdown.

pub mod delivery;

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use chrono::{DateTime, TimeDelta, Utc};

use crate::app::{App, AppError, Beat, SweepReport, bound_for};
use crate::core::expiry::Removal;
pub use delivery::delivery_loop;

/// How soon the sweep looks again after the store did not answer: often enough to
/// catch up promptly once it is back, rarely enough not to hammer it.
const STORE_RETRY: TimeDelta = TimeDelta::seconds(1);

/// Sweeps whatever is due, then sleeps until the store's next timer, and again, until
/// `shutdown` turns true. It wakes early when this replica arms an earlier timer (see
/// [`crate::app::Alarm`]) and sleeps at most `ceiling`, which bounds the wait for a
/// timer another replica armed. A sweep that filled its batch is followed at once by
/// another, so a burst of expiries is not spread over several wake-ups.
pub async fn sweep_loop(app: App, ceiling: Duration, mut shutdown: watch::Receiver<bool>) {
    let beat = app.health().follow("sweep", Some(bound_for(ceiling)));
    let ceiling = TimeDelta::from_std(ceiling).unwrap_or(TimeDelta::MAX);
    loop {
        if *shutdown.borrow() {
            break;
        }
        beat.beat();
        app.alarm().waking();
        match sweep_due(&app).await {
            Ok(report) => debug!(?report, "sweep done"),
            Err(e) => warn!(error = %e, "sweep failed; retrying shortly"),
        }
        let now = app.now();
        let latest = now
            .checked_add_signed(ceiling)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let next = match app.next_due().await {
            Ok(next) => next.map_or(latest, |at| at.min(latest)),
            Err(e) => {
                warn!(error = %e, "cannot read the next deadline from the store; retrying shortly");
                (now + STORE_RETRY).min(latest)
            }
        };
        let mut until = app.alarm().sleep_until(next);
        loop {
            tokio::select! {
                _ = app.clock().sleep_until(until) => break,
                _ = app.alarm().moved_earlier() => {
                    until = app.alarm().planned().unwrap_or(until).min(until);
                }
                // A dropped sender means nobody can stop us any more: stop now.
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    break;
                }
            }
        }
    }
}

/// Sweeps until a sweep leaves part of its batch unused.
async fn sweep_due(app: &App) -> Result<SweepReport, AppError> {
    let mut total = SweepReport::default();
    loop {
        let report = app.sweep_once(app.now()).await?;
        let full = report.claimed >= app.config().sweep_batch;
        total.add(&report);
        if !full {
            return Ok(total);
        }
    }
}

/// Audits what the expiry guard removed, as the store allows: each removal is
/// retried while the store is unavailable, so it is recorded once it answers.
pub async fn guard_audit_loop(
    app: App,
    mut removals: mpsc::Receiver<Removal>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _beat = app.health().follow("expiry guard audit", None);
    loop {
        let removal = tokio::select! {
            removal = removals.recv() => match removal {
                Some(removal) => removal,
                None => return,
            },
            _ = shutdown.changed() => return,
        };
        let mut wait = STORE_RETRY;
        loop {
            match app.guard_removed(&removal).await {
                Ok(()) => break,
                Err(AppError::StoreUnavailable(why)) => {
                    warn!(policy = %removal.policy, error = %why, "cannot audit the expiry guard's removal yet; retrying");
                    let at = app.now() + wait;
                    tokio::select! {
                        _ = app.clock().sleep_until(at) => {}
                        _ = shutdown.changed() => return,
                    }
                    wait = (wait * 2).min(TimeDelta::seconds(30));
                }
                Err(e) => {
                    warn!(policy = %removal.policy, error = %e, "cannot audit the expiry guard's removal; it is in the log only");
                    break;
                }
            }
        }
    }
}

/// Runs `reconcile_once` at once and then every `every` until `shutdown` turns true.
pub async fn reconcile_loop(app: App, every: Duration, shutdown: watch::Receiver<bool>) {
    let beat = app.health().follow("reconcile", Some(bound_for(every)));
    repeat("reconcile", every, &beat, shutdown, || {
        app.reconcile_once(app.now())
    })
    .await;
}

/// Runs `step` at once and then every `every`, beating `beat` each time; a failed
/// step is logged and retried at the next tick.
async fn repeat<F, Fut, R>(
    name: &'static str,
    every: Duration,
    beat: &Beat<'_>,
    mut shutdown: watch::Receiver<bool>,
    step: F,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<R, AppError>>,
    R: Debug,
{
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.changed() => break,
        }
        if *shutdown.borrow() {
            break;
        }
        beat.beat();
        match step().await {
            Ok(report) => debug!(?report, "{name} done"),
            Err(e) => warn!(error = %e, "{name} failed; retrying next interval"),
        }
    }
}
