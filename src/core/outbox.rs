//! The outbox port: events waiting to be told to people in Slack. Every event the store
//! keeps (a transition's, a new request's, an alert's) enters the outbox in the same
//! write, so nothing can be recorded and never posted, or posted and never recorded.
//! A delivery worker claims events with a lease, does each event's steps (post the
//! card, send the DM, reply in the audit thread), records each step as it is done and
//! acknowledges the event. A replica that dies mid-delivery leaves its events leased;
//! once the lease runs out another replica claims them and skips the steps already
//! recorded, so a retry neither re-posts nor skips.
//!
//! Nothing here does I/O: the stores implement [`Outbox`], the Slack notifier does the
//! steps through [`Progress`].

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::ports::{AuditEvent, StoreError};

/// An event the outbox handed to a delivery worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// The event's id in the outbox (on Redis the audit stream's entry id): what makes
    /// its delivery idempotent. Ids sort in the order the events were written.
    pub id: OutgoingId,
    pub event: AuditEvent,
    /// The steps already done for this event, by whichever replica did them.
    pub done: BTreeSet<String>,
}

/// An outbox entry's id, `<milliseconds>-<sequence>` as Redis streams write them; it
/// orders entries as they were written.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutgoingId {
    ms: u64,
    seq: u64,
    text: String,
}

impl OutgoingId {
    pub fn new(ms: u64, seq: u64) -> Self {
        OutgoingId {
            ms,
            seq,
            text: format!("{ms}-{seq}"),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl std::str::FromStr for OutgoingId {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, StoreError> {
        let bad = || StoreError::Corrupt(format!("`{s}` is not an outbox entry id"));
        let (ms, seq) = s.split_once('-').ok_or_else(bad)?;
        Ok(OutgoingId::new(
            ms.parse().map_err(|_| bad())?,
            seq.parse().map_err(|_| bad())?,
        ))
    }
}

impl std::fmt::Display for OutgoingId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// What one claim handed out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboxClaim {
    /// Oldest first: events whose lease ran out (another worker's, or a dead one's),
    /// then events nobody had claimed yet.
    pub events: Vec<Outgoing>,
    /// Claimed events the store no longer had (trimmed away before they were
    /// delivered); they leave the outbox undelivered.
    pub lost: u64,
}

/// The store side of Slack delivery. Leases run on the app's clock, like the timers'.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Starts keeping events for delivery; calling it again changes nothing. Events
    /// written before the first call are never delivered (they predate delivery).
    async fn open_outbox(&self) -> Result<(), StoreError>;

    /// Claims up to `limit` events for `worker` until `lease_until`: first events whose
    /// lease ran out at `now`, then events nobody claimed yet, each oldest first. An
    /// event is handed to one worker at a time.
    async fn claim_outgoing(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<OutboxClaim, StoreError>;

    /// Records that `step` of event `id` is done (`None`: nothing new, only renew) and
    /// extends `worker`'s lease to `lease_until`. Answers `false`, recording nothing,
    /// when the event is no longer `worker`'s: its lease ran out and another worker
    /// claimed it, or it was acknowledged. The worker then leaves it alone.
    async fn mark_outgoing(
        &self,
        id: &OutgoingId,
        worker: &str,
        step: Option<&str>,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// The event is delivered: it leaves the outbox with its progress.
    async fn ack_outgoing(&self, id: &OutgoingId) -> Result<(), StoreError>;

    /// How many events are not delivered yet, claimed or not.
    async fn outbox_backlog(&self) -> Result<u64, StoreError>;
}

/// Why an event's delivery stopped before it was done.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Slack failed in a way worth retrying (unreachable, 5xx, rate-limited); not
    /// before `after`, when Slack said so (a 429's Retry-After).
    #[error("Slack is not taking posts now: {why}")]
    Retry {
        why: String,
        after: Option<Duration>,
    },
    /// The event is not ready to tell yet (a new request's preview is still being
    /// prepared); try again soon, without backing off.
    #[error("not ready to deliver yet")]
    NotReady,
    /// Another worker has the event now; leave it to that worker.
    #[error("another worker took the event over")]
    Taken,
    /// Progress could not be recorded.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One event's delivery progress, as the notifier sees it: which steps are done, and
/// a way to record the next one before doing another.
#[async_trait]
pub trait Progress: Send {
    /// Whether `step` was done already, by this worker or an earlier one.
    fn done(&self, step: &str) -> bool;

    /// Records `step` as done. `Err(Taken)`: the event is another worker's now, so
    /// the notifier stops at once.
    async fn mark(&mut self, step: &str) -> Result<(), DeliveryError>;
}
