//! `sweep_once`: one pass of the expiry worker. It claims due timers from the store
//! (so each is worked by one replica at a time), then lapses pending requests, retries
//! the apply of approved ones whose replica vanished, and expires active grants:
//! policy deleted first, then the request marked Expired. The claims of one pass are
//! worked [`SWEEP_CONCURRENCY`] at a time, so a cohort of grants expiring at one
//! instant waits on the cluster's pace, not on a queue of its own.

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use futures_util::stream;
use tracing::{instrument, warn};

use super::{App, AppError};
use crate::core::ids::RequestId;
use crate::core::request::{Event, State};
use crate::metrics::RevocationPath;

/// Claims one sweep works at once. Each is a few store calls and, for an expiry, a
/// delete in the API server; past a few dozen in flight the API server (an etcd write
/// per delete) is the limit, not jitbot.
pub const SWEEP_CONCURRENCY: usize = 32;

/// What one sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub claimed: usize,
    pub lapsed: usize,
    pub activated: usize,
    pub failed: usize,
    pub expired: usize,
    /// Expiry warnings sent.
    pub warned: usize,
    /// Unacknowledged break-glass uses announced again.
    pub reannounced: usize,
    /// Claims given back because the timer had moved (e.g. the grant was extended).
    pub released: usize,
    /// Claims that hit an error; their lease runs out and a later sweep retries them.
    pub errors: usize,
}

impl SweepReport {
    /// Adds another sweep's counts to this one.
    pub fn add(&mut self, other: &SweepReport) {
        self.claimed += other.claimed;
        self.lapsed += other.lapsed;
        self.activated += other.activated;
        self.failed += other.failed;
        self.expired += other.expired;
        self.warned += other.warned;
        self.reannounced += other.reannounced;
        self.released += other.released;
        self.errors += other.errors;
    }
}

enum Outcome {
    Lapsed,
    Activated,
    Failed,
    Expired,
    Warned,
    Reannounced,
    Released,
}

impl App {
    /// Claims the timers due at `now` and works each one.
    #[instrument(skip(self))]
    pub async fn sweep_once(&self, now: DateTime<Utc>) -> Result<SweepReport, AppError> {
        let lease_until = now + self.config.claim_lease.as_delta();
        let claims = self
            .ports
            .store
            .claim_due(now, lease_until, self.config.sweep_batch)
            .await?;
        let mut report = SweepReport {
            claimed: claims.len(),
            ..SweepReport::default()
        };
        // Latest-due first: the expiry guard works a cohort from its earliest end, so
        // the two paths meet in the middle instead of racing for the same policies.
        let mut outcomes = stream::iter(claims.into_iter().rev())
            .map(|claim| async move { (self.sweep_one(&claim.id, now).await, claim.id) })
            .buffer_unordered(SWEEP_CONCURRENCY);
        while let Some((outcome, id)) = outcomes.next().await {
            match outcome {
                Ok(Outcome::Lapsed) => report.lapsed += 1,
                Ok(Outcome::Activated) => report.activated += 1,
                Ok(Outcome::Failed) => report.failed += 1,
                Ok(Outcome::Expired) => report.expired += 1,
                Ok(Outcome::Warned) => report.warned += 1,
                Ok(Outcome::Reannounced) => report.reannounced += 1,
                Ok(Outcome::Released) => report.released += 1,
                Err(e) => {
                    warn!(request_id = %id, error = %e, "sweep could not finish this request; it will be retried after the lease");
                    report.errors += 1;
                }
            }
        }
        self.metrics.swept(self.now());
        Ok(report)
    }

    async fn sweep_one(&self, id: &RequestId, now: DateTime<Utc>) -> Result<Outcome, AppError> {
        let req = self.load(id).await?;
        match req.state {
            State::Pending if now >= req.approval_deadline => {
                self.step(id, &Event::Lapse, None, now).await?;
                Ok(Outcome::Lapsed)
            }
            State::Approved => {
                let after = self.activate(req, now).await?;
                Ok(if after.state == State::Failed {
                    Outcome::Failed
                } else {
                    Outcome::Activated
                })
            }
            State::Active
                if req.expires_at.is_none_or(|at| at > now)
                    && req.warn_at.is_some_and(|at| at <= now) =>
            {
                self.step(id, &Event::WarnExpiry, None, now).await?;
                Ok(Outcome::Warned)
            }
            State::Active if req.expires_at.is_some_and(|at| at <= now) => {
                // Access ends in the cluster first; if that fails the claim stays
                // taken until its lease runs out, then another sweep tries again.
                let Ok(deleted) = self.remove_policies(&req, now).await else {
                    return Err(AppError::Internal(
                        "deleting the NetworkPolicy failed".to_owned(),
                    ));
                };
                // Timed only when this sweep made the delete (the guard is often first).
                if let Some(expires_at) = req.expires_at.filter(|_| deleted > 0) {
                    self.metrics.revoked_after_expiry(
                        RevocationPath::Sweep,
                        expires_at,
                        self.now().max(now),
                    );
                }
                self.step(id, &Event::Expire, None, now).await?;
                Ok(Outcome::Expired)
            }
            _ if req.break_glass.as_ref().is_some_and(|bg| {
                !bg.acknowledged() && bg.announce_at.is_some_and(|at| at <= now)
            }) =>
            {
                self.step(id, &Event::Reannounce, None, now).await?;
                Ok(Outcome::Reannounced)
            }
            _ => {
                self.ports.store.release(&req).await?;
                Ok(Outcome::Released)
            }
        }
    }
}
