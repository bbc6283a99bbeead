//! The background loops: the expiry sweep and the reconciler. Each is a thin loop
//! around one `*_once` step of the app, which the tests drive directly with an
//! injected `now`; here the step runs on an interval until shutdown.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{debug, warn};

use crate::app::{App, AppError, SweepReport};

/// Runs `sweep_once` every `every` until `shutdown` turns true. A sweep that filled
/// its batch is followed at once by another, so a burst of expiries is not spread
/// over several intervals.
pub async fn sweep_loop(app: App, every: Duration, shutdown: watch::Receiver<bool>) {
    let app = &app;
    repeat("sweep", every, shutdown, || async move {
        let mut total = SweepReport::default();
        loop {
            let report = app.sweep_once(app.now()).await?;
            let full = report.claimed >= app.config.sweep_batch;
            total.add(&report);
            if !full {
                return Ok(total);
            }
        }
    })
    .await;
}

/// Runs `reconcile_once` at once and then every `every` until `shutdown` turns true.
pub async fn reconcile_loop(app: App, every: Duration, shutdown: watch::Receiver<bool>) {
    repeat("reconcile", every, shutdown, || {
        app.reconcile_once(app.now())
    })
    .await;
}

/// Runs `step` at once and then every `every`; a failed step is logged and retried at
/// the next tick.
async fn repeat<F, Fut, R>(
    name: &'static str,
    every: Duration,
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
        match step().await {
            Ok(report) => debug!(?report, "{name} done"),
            Err(e) => warn!(error = %e, "{name} failed; retrying next interval"),
        }
    }
}
