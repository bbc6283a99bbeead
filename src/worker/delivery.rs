//! The Slack delivery loop: rounds of [`Courier::deliver_once`]. It runs a round when
//! this replica writes an event (the [`DeliveryBell`] rings; it then gathers for
//! [`GATHER`] so a burst goes out in batches), every `poll` for events
//! other replicas wrote, and at once again after a round that filled its batch. When
//! Slack fails it backs off on the app's clock ([`BACKOFF_START`] doubling up to
//! [`BACKOFF_MAX`], and never sooner than Slack's Retry-After), so a test that moves
//! its clock drives the retries, and nothing is lost meanwhile: the events stay in the
//! outbox.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::app::{Courier, DeliveryBell, DeliveryReport};

/// The first wait after a failed round.
pub const BACKOFF_START: TimeDelta = TimeDelta::seconds(1);
/// The longest wait between two attempts while Slack (or the store) keeps failing.
pub const BACKOFF_MAX: TimeDelta = TimeDelta::seconds(60);

/// How long a rung bell waits for more events before the next round, so that a
/// burst is claimed and delivered in batches (one claim for many events) rather than
/// a round per event competing with the requests being answered.
pub const GATHER: Duration = Duration::from_millis(10);

/// How long to wait after a round, and what the next failure waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Another round at once (the batch was full).
    Now,
    /// Until the bell rings or `poll` passes.
    Idle,
    /// Until this instant on the app's clock (a backoff).
    At(DateTime<Utc>),
}

/// What follows a round that ended with `report` (or failed) at `now`, given the
/// current backoff; answers the next backoff too. Pure, so the policy is unit-tested.
pub fn plan(
    report: Option<&DeliveryReport>,
    batch: usize,
    now: DateTime<Utc>,
    backoff: TimeDelta,
) -> (Next, TimeDelta) {
    let failing = match report {
        None => Some(None),
        Some(r) if r.slack_failing.is_some() => r.slack_failing,
        Some(r) if r.store_failing => Some(None),
        Some(_) => None,
    };
    if let Some(after) = failing {
        let asked = after
            .and_then(|d| TimeDelta::from_std(d).ok())
            .unwrap_or(TimeDelta::zero());
        let wait = backoff.max(asked);
        return (Next::At(now + wait), (backoff * 2).min(BACKOFF_MAX));
    }
    let full = report.is_some_and(|r| r.claimed > 0 && r.claimed + r.held >= batch);
    let next = if full { Next::Now } else { Next::Idle };
    (next, BACKOFF_START)
}

/// Runs delivery rounds until `shutdown` turns true.
pub async fn delivery_loop(
    courier: Arc<Courier>,
    bell: Arc<DeliveryBell>,
    poll: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = courier.app().clone();
    let batch = courier.config().batch;
    let mut backoff = BACKOFF_START;
    // Slack's Retry-After may rightly keep it waiting for any time: only its ending
    // counts against liveness.
    let _beat = app.health().follow("slack delivery", None);
    loop {
        if *shutdown.borrow() {
            break;
        }
        let report = match courier.deliver_once(app.now()).await {
            Ok(r) => {
                debug!(report = ?r, "delivery round done");
                Some(r)
            }
            Err(e) => {
                warn!(error = %e, "delivery round failed; retrying after a backoff");
                None
            }
        };
        let backlog = courier.backlog().await.ok();
        if let Some(n) = backlog {
            app.metrics().set_outbox_backlog(n);
        }
        let (next, following) = plan(report.as_ref(), batch, app.now(), backoff);
        backoff = following;
        let retry_at = match next {
            Next::At(at) => Some(at),
            _ => None,
        };
        bell.round_done(backlog, retry_at);
        let stop = match next {
            Next::Now => false,
            Next::Idle => tokio::select! {
                _ = bell.rung() => {
                    tokio::time::sleep(GATHER).await;
                    false
                }
                _ = tokio::time::sleep(poll) => false,
                changed = shutdown.changed() => changed.is_err() || *shutdown.borrow(),
            },
            // Backing off: a ring now would only fail again, so only time wakes it.
            Next::At(at) => tokio::select! {
                _ = app.clock().sleep_until(at) => false,
                changed = shutdown.changed() => changed.is_err() || *shutdown.borrow(),
            },
        };
        if stop {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn failing(after: Option<u64>) -> DeliveryReport {
        DeliveryReport {
            slack_failing: Some(after.map(Duration::from_secs)),
            ..DeliveryReport::default()
        }
    }

    #[test]
    fn backoff_doubles_up_to_its_ceiling_and_resets_after_a_good_round() {
        let mut backoff = BACKOFF_START;
        let mut waits = Vec::new();
        for _ in 0..9 {
            let (next, following) = plan(Some(&failing(None)), 100, t(0), backoff);
            waits.push(next);
            backoff = following;
        }
        let secs: Vec<i64> = waits
            .iter()
            .map(|n| match n {
                Next::At(at) => (*at - t(0)).num_seconds(),
                other => panic!("a failed round waits, not {other:?}"),
            })
            .collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        let (next, reset) = plan(Some(&DeliveryReport::default()), 100, t(0), backoff);
        assert_eq!((next, reset), (Next::Idle, BACKOFF_START));
    }

    #[test]
    fn a_retry_after_longer_than_the_backoff_is_honoured() {
        let (next, _) = plan(Some(&failing(Some(30))), 100, t(0), BACKOFF_START);
        assert_eq!(next, Next::At(t(30)));
        let (next, _) = plan(Some(&failing(Some(0))), 100, t(0), TimeDelta::seconds(8));
        assert_eq!(next, Next::At(t(8)), "the backoff still applies");
    }

    #[test]
    fn a_full_batch_runs_again_at_once_and_a_store_failure_backs_off() {
        let full = DeliveryReport {
            claimed: 100,
            delivered: 100,
            ..DeliveryReport::default()
        };
        assert_eq!(plan(Some(&full), 100, t(0), BACKOFF_START).0, Next::Now);
        assert_eq!(plan(None, 100, t(0), BACKOFF_START).0, Next::At(t(1)));
        let store = DeliveryReport {
            store_failing: true,
            ..DeliveryReport::default()
        };
        assert_eq!(
            plan(Some(&store), 100, t(0), BACKOFF_START).0,
            Next::At(t(1))
        );
    }
}
