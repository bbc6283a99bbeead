//! The background loops: the expiry sweep and the reconciler. Each is a thin loop
//! around one `*_once` step of the app, which the tests drive directly with an
//! injected `now`; here the step runs on an interval until shutdown.

use std::time::Duration;

use tokio::sync::watch;
use tracing::{debug, warn};

use crate::app::App;

/// Runs `sweep_once` every `every` until `shutdown` turns true.
pub async fn sweep_loop(app: App, every: Duration, mut shutdown: watch::Receiver<bool>) {
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
        match app.sweep_once(app.now()).await {
            Ok(report) if report.claimed > 0 => debug!(?report, "sweep"),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "sweep failed; retrying next interval"),
        }
    }
}

/// Runs `reconcile_once` at once and then every `every` until `shutdown` turns true.
pub async fn reconcile_loop(app: App, every: Duration, mut shutdown: watch::Receiver<bool>) {
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
        match app.reconcile_once(app.now()).await {
            Ok(report) => debug!(?report, "reconcile"),
            Err(e) => warn!(error = %e, "reconcile failed; retrying next interval"),
        }
    }
}
