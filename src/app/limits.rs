//! The caps on how much one person may ask for, checked on every `/jit request`
//! before anything is stored: the count comes from the store, shared by every
//! replica; the verdict from the core ([`limits::check`]).

use chrono::{DateTime, Utc};
use tracing::info;

use super::{App, AppError};
use crate::core::ids::SlackUserId;
use crate::core::submission::limits;

impl App {
    /// Refuses a new request from `requester` at `now` that would go over
    /// `access.max_pending_per_requester` or `access.max_requests_per_hour`, with the
    /// sentence that says which, and what to do. With both caps off the store is not
    /// asked.
    pub(super) async fn within_limits(
        &self,
        requester: &SlackUserId,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let caps = &self.catalog.limits;
        if caps.max_pending_per_requester == 0 && caps.max_requests_per_hour == 0 {
            return Ok(());
        }
        let activity = self
            .ports
            .store
            .activity_of(requester, now - limits::rate_window())
            .await?;
        limits::check(caps, &activity, now).map_err(|refusal| {
            info!(%requester, pending = activity.pending.len(), last_hour = activity.recent.len(), "request refused: over a submission cap");
            AppError::Invalid(refusal.to_string())
        })
    }
}
