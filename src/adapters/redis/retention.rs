//! What the store reads and passes for the submission caps and for retention: the
//! caps' counts from the indexes, and the retention arguments of the transition
//! script (see `scripts::RETAIN_ENDED`).

use chrono::{DateTime, Utc};

use super::{RedisStore, ms_floor};
use crate::core::ids::{RequestId, SlackUserId};
use crate::core::ports::{StoreError, has_ended};
use crate::core::request::State;
use crate::core::submission::limits::{Activity, Waiting};

impl RedisStore {
    /// The person's Pending requests (their index intersected with the Pending
    /// index, which costs the smaller of the two) and the created-at scores of their
    /// index from `since` on, in one round trip. No request is loaded.
    pub(super) async fn read_activity(
        &self,
        user: &SlackUserId,
        since: DateTime<Utc>,
    ) -> Result<Activity, StoreError> {
        let (mine, pending) = (self.keys.requester(user), self.keys.state(State::Pending));
        let (waiting, recent): (Scored, Scored) = self
            .call("activity", |mut c| {
                let (mine, pending) = (&mine, &pending);
                async move {
                    redis::pipe()
                        .cmd("ZINTER")
                        .arg(2)
                        .arg(mine)
                        .arg(pending)
                        .arg("AGGREGATE")
                        .arg("MIN")
                        .arg("WITHSCORES")
                        .cmd("ZRANGEBYSCORE")
                        .arg(mine)
                        .arg(ms_floor(since))
                        .arg("+inf")
                        .arg("WITHSCORES")
                        .query_async(&mut c)
                        .await
                }
            })
            .await?;
        let pending = waiting
            .into_iter()
            .map(|(id, ms)| {
                Ok(Waiting {
                    id: id
                        .parse::<RequestId>()
                        .map_err(|e| StoreError::Corrupt(format!("pending index: {e}")))?,
                    made_at: made_at(ms)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let recent = recent
            .into_iter()
            .map(|(_, ms)| made_at(ms))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let mut activity = Activity { pending, recent };
        activity
            .pending
            .sort_by(|a, b| a.made_at.cmp(&b.made_at).then(a.id.cmp(&b.id)));
        Ok(activity)
    }

    /// The transition script's retention arguments for a request now in `state`,
    /// written at `now`: the retention in ms (empty unless `state` has ended and
    /// retention is on) and the cutoff in unix ms (for the indexes' created-at scores
    /// and the audit stream's ids).
    pub(super) fn retention_args(&self, state: State, now: DateTime<Utc>) -> (String, String) {
        match self.retention_ms {
            Some(ms) if has_ended(state) => {
                let cutoff = ms_floor(now).saturating_sub(i64::try_from(ms).unwrap_or(i64::MAX));
                (ms.to_string(), cutoff.to_string())
            }
            _ => (String::new(), String::new()),
        }
    }
}

/// Index entries with their scores: (id, unix ms).
type Scored = Vec<(String, f64)>;

/// An index score (unix ms) as the instant a request was made.
fn made_at(ms: f64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms as i64)
        .ok_or_else(|| StoreError::Corrupt(format!("request index: {ms} is not a time")))
}
