//! The ports: traits the app drives and adapters implement. The app holds each as
//! `Arc<dyn Port>`, so tests can put a real Redis, a real API server or a recording
//! fake behind the same use cases. One goes the other way: [`Notes`], which the app
//! implements over the store and hands to the notifier, so that the notifier can
//! remember where it posted without reaching the store itself.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde::{Deserialize, Serialize};

use super::ids::{Namespace, RequestId, SlackGroupId, SlackUserId};
use super::request::{AccessRequest, AuditKind, State, Transition};
use super::submission::limits::Activity;
use super::ttl::Ttl;

pub use super::outbox::{DeliveryError, Outbox, OutboxClaim, Outgoing, OutgoingId, Progress};

/// One line of the audit log: what happened to which request, when, and by whom.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub request_id: RequestId,
    pub kind: AuditKind,
    pub at: DateTime<Utc>,
    /// The person who acted; `None` for jitbot's own steps (expiry, reconcile).
    pub actor: Option<SlackUserId>,
    pub from: Option<State>,
    pub to: Option<State>,
    /// Plain words for people reading the log.
    pub detail: String,
}

impl AuditEvent {
    /// The event a transition emits.
    pub fn of(
        t: &Transition,
        actor: Option<&SlackUserId>,
        at: DateTime<Utc>,
        detail: impl Into<String>,
    ) -> Self {
        AuditEvent {
            request_id: t.request.id.clone(),
            kind: t.kind,
            at,
            actor: actor.cloned(),
            from: Some(t.from),
            to: Some(t.request.state),
            detail: detail.into(),
        }
    }
}

/// Why the store could not do what was asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached; nothing was written.
    #[error("the state store is unavailable: {0}")]
    Unavailable(String),
    /// Someone else changed the request first (compare-and-set lost).
    #[error("request {0} was changed by someone else")]
    Conflict(RequestId),
    #[error("request {0} already exists")]
    Exists(RequestId),
    #[error("request {0} not found")]
    NotFound(RequestId),
    /// Stored data could not be read back (a bug or a hand edit).
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// A stored request's seal does not verify: someone other than jitbot wrote it.
    #[error("stored request {id} is refused: {why}")]
    Tampered { id: RequestId, why: String },
}

/// A claimed piece of due work: the request whose timer fired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub id: RequestId,
    /// When the claim runs out and another worker may take the work over.
    pub lease_until: DateTime<Utc>,
}

/// Durable state: requests, their timers and the audit log.
///
/// Every request that can still move has one timer (its [`AccessRequest::due_at`]):
/// the approval deadline while Pending, a retry point while Approved, the expiry while
/// Active. `claim_due` hands due timers to one worker at a time, with a lease.
///
/// Every event it keeps also enters its [`Outbox`], in the same write.
#[async_trait]
pub trait Store: Outbox + Send + Sync {
    /// Stores a new request and its `requested` audit event.
    async fn create(&self, req: &AccessRequest, event: &AuditEvent) -> Result<(), StoreError>;

    async fn load(&self, id: &RequestId) -> Result<Option<AccessRequest>, StoreError>;

    /// Writes `t.request` only if the stored version is still `t.request.version - 1`,
    /// re-arms its timer, releases any claim on it and appends `event`: all at once, or
    /// nothing (then `Conflict`).
    async fn transition(&self, t: &Transition, event: &AuditEvent) -> Result<(), StoreError>;

    /// Requests by one person, newest first. Here and in `list_by_state`, a stored
    /// request that cannot be read back is left out (and logged), so one hand edit
    /// cannot hide all the others.
    async fn list_by_requester(&self, user: &SlackUserId)
    -> Result<Vec<AccessRequest>, StoreError>;

    async fn list_by_state(&self, state: State) -> Result<Vec<AccessRequest>, StoreError>;

    /// At most `limit` of the requests in `state`, skipping the first `skip` of them in
    /// the same order as `list_by_state`, so that a pass over many holds a page at a
    /// time. Requests that change state between two pages may be skipped or seen twice
    /// by such a pass. By default this slices `list_by_state`.
    async fn list_by_state_page(
        &self,
        state: State,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<AccessRequest>, StoreError> {
        let all = self.list_by_state(state).await?;
        Ok(all.into_iter().skip(skip).take(limit).collect())
    }

    /// Claims up to `limit` requests whose timer is at or before `now`, each until
    /// `lease_until`. Work claimed earlier whose lease has run out is claimable again.
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Claim>, StoreError>;

    /// When the earliest timer is due: the first armed timer, or the first claim whose
    /// lease runs out (its work becomes claimable again then). `None` when nothing
    /// can still move. The sweep sleeps until then.
    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Gives a claim back without a transition, re-arming the request's timer as it
    /// stands at `version` (a newer version keeps its own timer).
    async fn release(&self, req: &AccessRequest) -> Result<(), StoreError>;

    /// Appends an event that is not a transition (reconciler actions, alerts).
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError>;

    /// One request's history, oldest first.
    async fn audit_of(&self, id: &RequestId) -> Result<Vec<AuditEvent>, StoreError>;

    /// Remembers a small fact about a request outside its lifecycle, such as where its
    /// Slack card was posted. Not versioned: the last write wins.
    async fn annotate(&self, id: &RequestId, key: &str, value: &str) -> Result<(), StoreError>;

    /// Everything `annotate` remembered about a request.
    async fn annotations(&self, id: &RequestId) -> Result<BTreeMap<String, String>, StoreError>;

    /// Whether the store answers (for readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Remembers `key` until `until`: true the first time, false while it is still
    /// remembered, whichever replica asked first. A signed Slack request is acted on
    /// once this way: its signature is the key, for as long as it would verify.
    async fn remember_once(
        &self,
        key: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// What the submission caps count for `user`: their Pending requests, and when
    /// each of their requests made at or after `since` was made (see [`Activity`]).
    /// It is read on every `/jit request`, so the stores answer it from their indexes;
    /// this default reads every request of theirs.
    async fn activity_of(
        &self,
        user: &SlackUserId,
        since: DateTime<Utc>,
    ) -> Result<Activity, StoreError> {
        let mut mine = self.list_by_requester(user).await?;
        mine.reverse();
        Ok(Activity::of(&mine, since))
    }
}

/// How long a store keeps a finished request (Denied, Lapsed, Cancelled, Failed,
/// Expired, Revoked), its history and its notes after it ended, unless told otherwise
/// (`store.retention`). Pending, Approved and Active requests are kept until they end.
pub const DEFAULT_RETENTION: Ttl = Ttl::from_hours(90 * 24);

/// Whether a request in `state` has ended for good, so that retention applies to it.
pub fn has_ended(state: State) -> bool {
    !matches!(state, State::Pending | State::Approved | State::Active)
}

/// Where a policy lives.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyRef {
    pub namespace: Namespace,
    pub name: String,
}

impl std::fmt::Display for PolicyRef {
    /// `namespace/name`, as kubectl writes it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Why the cluster did not do what was asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnforceError {
    /// Worth retrying: timeouts, 429, 5xx, connection errors.
    #[error("the cluster is unavailable: {0}")]
    Unavailable(String),
    /// Retrying will not help: forbidden, invalid, namespace missing.
    #[error("the cluster refused: {0}")]
    Refused(String),
}

/// The cluster side: NetworkPolicies.
#[async_trait]
pub trait Enforcer: Send + Sync {
    /// Creates or updates the policies (idempotent). Retrying a transient failure is
    /// the enforcer's job, within its own bounds (the Kubernetes one follows a 429's
    /// `Retry-After` and makes `kubernetes.apply_attempts` attempts per policy): the
    /// app calls once, and an error ends the grant Failed.
    async fn apply(&self, policies: &[NetworkPolicy]) -> Result<(), EnforceError>;
    /// Deletes the policies; already gone counts as done. Answers how many this call
    /// deleted (those already gone are not counted), so that a path that found its
    /// work done by another neither audits nor times a delete it did not make.
    async fn revoke(&self, policies: &[PolicyRef]) -> Result<usize, EnforceError>;
    /// Every policy jitbot manages, found by its label.
    async fn list_managed(&self) -> Result<Vec<NetworkPolicy>, EnforceError>;
    /// The same one page at a time, from `from` (the default cursor: the first page),
    /// so that a pass over many policies holds one page, not all of them. By default
    /// everything comes as one page.
    async fn list_managed_page(&self, from: ListCursor) -> Result<PolicyPage, EnforceError> {
        let _ = from;
        Ok(PolicyPage {
            policies: self.list_managed().await?,
            next: None,
        })
    }
    /// Whether the cluster answers (for readiness).
    async fn ping(&self) -> Result<(), EnforceError> {
        self.list_managed().await.map(|_| ())
    }
}

/// Where a paged listing of jitbot's policies goes on: the place (one of the
/// adapter's namespaces, by position) and the server's continue token within it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListCursor {
    pub place: usize,
    pub token: Option<String>,
}

/// One page of jitbot's policies.
#[derive(Clone, Debug, Default)]
pub struct PolicyPage {
    pub policies: Vec<NetworkPolicy>,
    /// Where the next page starts; `None` after the last.
    pub next: Option<ListCursor>,
}

/// Why a notification did not go out. The lifecycle never waits on it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("notification failed: {0}")]
pub struct NotifyError(pub String);

/// A request a notification waits for: it yields the request once what the message
/// should show has been prepared (see [`Notifier::announce`]).
pub type Ready =
    std::pin::Pin<Box<dyn std::future::Future<Output = AccessRequest> + Send + 'static>>;

/// The Slack side: cards, DMs and the audit channel.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Tells people about an event of `req` (as it is after the event).
    async fn publish(&self, req: &AccessRequest, event: &AuditEvent) -> Result<(), NotifyError>;

    /// Tells people about an event of the request `ready` yields, once it has (the app
    /// noting what the message should show), in order with the events published after
    /// it. A notifier that delivers later should await `ready` later too, so that the
    /// caller waits for neither; by default both happen before this returns.
    async fn announce(&self, event: &AuditEvent, ready: Ready) -> Result<(), NotifyError> {
        let req = ready.await;
        self.publish(&req, event).await
    }

    /// Tells people about `event` of `req` (as the store has it now) from the outbox,
    /// doing only the steps `progress` does not have yet and recording each as it is
    /// done. A notifier that tells people in `publish` has nothing left to do here.
    async fn deliver(
        &self,
        req: &AccessRequest,
        event: &AuditEvent,
        progress: &mut dyn Progress,
    ) -> Result<(), DeliveryError> {
        let _ = (req, event, progress);
        Ok(())
    }
}

/// The note under which the app keeps a request's preview (see [`Previewer`]), for
/// every rendering of its approval card.
pub const PREVIEW_NOTE: &str = "preview";

/// What the notifier may keep and read about a request between its events: where its
/// approval card and audit thread were posted, and the preview the app noted for the
/// card. The notes live in the store's annotations, so that any replica can update
/// what another posted, but this port is all of the store a notifier reaches: it
/// cannot read or change a request's lifecycle.
#[async_trait]
pub trait Notes: Send + Sync {
    /// Remembers `value` under `key`; the last write wins.
    async fn note(&self, id: &RequestId, key: &str, value: &str) -> Result<(), StoreError>;

    /// Everything noted about a request.
    async fn notes(&self, id: &RequestId) -> Result<BTreeMap<String, String>, StoreError>;
}

/// Tells approvers whether a grant would change anything in the cluster.
#[async_trait]
pub trait Previewer: Send + Sync {
    /// One plain line, e.g. "default-deny present, 4 pods" or
    /// "cluster unreachable: unknown". Never fails: not knowing is an answer.
    async fn preview(&self, req: &AccessRequest) -> String;
}

/// Resolves Slack user groups to their members.
#[async_trait]
pub trait Directory: Send + Sync {
    async fn group_members(&self, group: &SlackGroupId) -> Result<Vec<SlackUserId>, NotifyError>;
}

/// The time, passed in so tests control it.
#[async_trait]
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
    /// Returns once [`Clock::now`] has reached `at` (at once if it has). The workers
    /// wait on deadlines with this, so a test that moves its clock wakes them.
    async fn sleep_until(&self, at: DateTime<Utc>);
}
