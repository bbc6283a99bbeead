//! `reconcile_once`: the second, independent path that keeps the cluster honest. It
//! lists every policy labelled as jitbot's, a page at a time (so that a pass over
//! many grants holds one page of them), and for each page
//! 1. deletes any past its `jitbot.dev/expires-at`, without a readable one, or with
//!    one further away than `access.max_duration` (see [`crate::core::expiry`])
//!    before it asks the store anything, and goes on doing so on every page when the
//!    store does not answer, so a store outage cannot keep access open;
//! 2. deletes any whose request the store knows and is not Active (or Approved, which
//!    is being applied right now); keeps a policy it cannot explain (unknown request)
//!    only until its expires-at; restores an Active grant's policy that someone
//!    edited; deletes, with a `record_rejected` alert, a policy whose request the
//!    store has but cannot read back or whose seal does not verify (one such request
//!    costs its own policy, not the pass);
//! 3. (once every page is done) ends an Active grant whose policy is missing: it was
//!    removed outside jitbot, or the store was rolled back to before a revoke. The
//!    grant is Revoked ("policy removed outside jitbot"), audited and its requester
//!    told; its policy is never re-created. The Active grants are read from the store
//!    a page at a time too. (Re-applying is left to grants approved but never
//!    applied, which the sweep takes over while they are Approved.)
//!
//! Every apply (restoring an edited policy) first holds the stored request against
//! the current catalog (see [`crate::core::trust`]).
//!
//! Policies without jitbot's label are never touched, whatever their name. What to do
//! with each policy is decided in [`crate::core::reconcile`]; this file does the
//! listing, deletes, re-applies and audit around those decisions, in that order.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use tracing::{error, info, instrument, warn};

use super::{App, AppError};
use crate::core::expiry::{Ending, Removal};
use crate::core::ids::{Namespace, RequestId};
use crate::core::netpol;
use crate::core::ports::{AuditEvent, ListCursor, PolicyRef, StoreError};
use crate::core::reconcile::{self, Verdict};
use crate::core::request::{AccessRequest, AuditKind, State};
use crate::core::ttl::Ttl;

/// Active grants step 3 loads from the store at a time.
const STORE_PAGE: usize = 500;

/// Why step 3 ends a grant, as its requester and the audit log read it.
pub const REMOVED_OUTSIDE: &str = "policy removed outside jitbot";

/// What one reconcile pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    pub seen: usize,
    pub removed: usize,
    /// Edited policies put back as approved.
    pub reapplied: usize,
    /// Active grants ended because their policy had gone from the cluster.
    pub withdrawn: usize,
    /// Unknown to the store but not yet expired: kept until their expires-at.
    pub kept_unexplained: usize,
    pub errors: usize,
}

/// A live policy and where it is.
struct Live<'a> {
    policy: &'a NetworkPolicy,
    at: PolicyRef,
    id: Option<RequestId>,
}

impl App {
    #[instrument(skip(self))]
    pub async fn reconcile_once(&self, now: DateTime<Utc>) -> Result<ReconcileReport, AppError> {
        let cap = self.catalog.limits.max_duration;
        let mut report = ReconcileReport::default();
        let mut present: HashSet<PolicyRef> = HashSet::new();
        // The store answering is needed for steps 2 and 3 only: once it fails, the
        // remaining pages still get step 1, and the pass then reports the failure.
        let mut store_failed = None;
        let mut from = Some(ListCursor::default());
        while let Some(cursor) = from {
            let page = self
                .ports
                .enforcer
                .list_managed_page(cursor)
                .await
                .map_err(|e| {
                    self.count_kube_error(&e);
                    AppError::Internal(format!("cannot list jitbot's policies: {e}"))
                })?;
            from = page.next;
            report.seen += page.policies.len();
            let live: Vec<Live<'_>> = page.policies.iter().filter_map(Live::of).collect();
            present.extend(live.iter().map(|l| l.at.clone()));
            let (removed, current) = self.remove_overdue(&live, now, cap, &mut report).await;
            if store_failed.is_none()
                && let Err(e) = self
                    .settle_with_store(&removed, &current, now, cap, &mut report)
                    .await
            {
                store_failed = Some(e);
            }
        }
        if let Some(e) = store_failed {
            return Err(e);
        }
        self.end_missing(&present, now, &mut report).await?;
        self.metrics.reconciled(self.now());
        Ok(report)
    }

    /// Step 1, for one page: deletes what the policies themselves say is over, without
    /// asking the store anything. Returns those this pass deleted, with why, and the
    /// policies that are still current.
    async fn remove_overdue<'a>(
        &self,
        live: &'a [Live<'a>],
        now: DateTime<Utc>,
        cap: Ttl,
        report: &mut ReconcileReport,
    ) -> (Vec<(&'a Live<'a>, String)>, Vec<&'a Live<'a>>) {
        let mut removed = Vec::new();
        let mut current = Vec::new();
        for l in live {
            match reconcile::overdue(l.policy, now, cap) {
                Some(why) => {
                    if self.remove_live(l, &why, report).await {
                        removed.push((l, why));
                    }
                }
                None => current.push(l),
            }
        }
        (removed, current)
    }

    /// Step 2, for one page: audits what step 1 removed, then judges the current
    /// policies against their requests in the store.
    async fn settle_with_store(
        &self,
        removed: &[(&Live<'_>, String)],
        current: &[&Live<'_>],
        now: DateTime<Utc>,
        cap: Ttl,
        report: &mut ReconcileReport,
    ) -> Result<(), AppError> {
        for (l, why) in removed {
            let req = self.request_of(l, report).await?;
            self.record_removal(l, req.known(), why, now).await;
        }
        for l in current {
            let stored = self.request_of(l, report).await?;
            if let Stored::Unreadable(why) = &stored {
                self.remove_untrusted(l, why, now, report).await;
                continue;
            }
            let req = stored.known();
            match reconcile::verdict(l.policy, req, now, cap) {
                Verdict::Remove(why) => {
                    if self.remove_live(l, &why, report).await {
                        self.record_removal(l, req, &why, now).await;
                    }
                }
                Verdict::Restore => {
                    // A verdict to restore always comes with its request.
                    if let Some(r) = req {
                        self.restore(r, &l.at, now, report).await;
                    }
                }
                Verdict::KeepUnexplained => report.kept_unexplained += 1,
                Verdict::Keep => {}
            }
        }
        Ok(())
    }

    /// Step 3: ends the Active grants whose policies the cluster did not list.
    async fn end_missing(
        &self,
        present: &HashSet<PolicyRef>,
        now: DateTime<Utc>,
        report: &mut ReconcileReport,
    ) -> Result<(), AppError> {
        let mut active = 0;
        loop {
            let page = self
                .ports
                .store
                .list_by_state_page(State::Active, active, STORE_PAGE)
                .await?;
            let last = page.len() < STORE_PAGE;
            active += page.len();
            for r in page {
                self.end_if_missing(&r, present, now, report).await;
            }
            if last {
                break;
            }
        }
        self.metrics.set_active(active);
        Ok(())
    }

    async fn end_if_missing(
        &self,
        r: &AccessRequest,
        present: &HashSet<PolicyRef>,
        now: DateTime<Utc>,
        report: &mut ReconcileReport,
    ) {
        let missing = reconcile::missing(r, present, now);
        if missing.is_empty() {
            return;
        }
        let names: Vec<String> = missing.iter().map(ToString::to_string).collect();
        warn!(request_id = %r.id, policies = %names.join(", "), "an active grant's policy was removed outside jitbot; ending the grant");
        self.withdraw(r, REMOVED_OUTSIDE.to_owned(), now).await;
        report.withdrawn += 1;
    }

    /// The request behind a live policy. Only an unavailable store is an error (the
    /// pass cannot go on); a request that cannot be read is counted and skipped.
    async fn request_of(
        &self,
        l: &Live<'_>,
        report: &mut ReconcileReport,
    ) -> Result<Stored, AppError> {
        let Some(id) = &l.id else {
            return Ok(Stored::Unknown);
        };
        match self.ports.store.load(id).await {
            Ok(Some(r)) => Ok(Stored::Known(Box::new(r))),
            Ok(None) => Ok(Stored::Unknown),
            Err(e @ StoreError::Unavailable(_)) => Err(e.into()),
            Err(e) => {
                report.errors += 1;
                Ok(Stored::Unreadable(e.to_string()))
            }
        }
    }

    /// A live policy whose stored request cannot be read back or does not verify: no
    /// record jitbot can trust explains it, so it goes, with a `record_rejected` alert.
    async fn remove_untrusted(
        &self,
        l: &Live<'_>,
        why: &str,
        now: DateTime<Utc>,
        report: &mut ReconcileReport,
    ) {
        error!(request_id = ?l.id, policy = %l.at, error = why, "the stored request behind this policy cannot be trusted; deleting the policy");
        if !self.remove_live(l, why, report).await {
            return;
        }
        if let Some(id) = &l.id {
            let detail = format!(
                "reconciler deleted NetworkPolicy {}: its stored request cannot be trusted ({why})",
                l.at
            );
            let mut event = removal_event(id, None, now, detail);
            event.kind = AuditKind::RecordRejected;
            if let Err(e) = self.ports.store.append_audit(&event).await {
                warn!(request_id = %id, error = %e, "cannot record the alert in the audit stream");
            }
        }
    }

    /// Deletes one live policy; true when this pass deleted it (not when another
    /// path was first: then there is nothing to count or audit).
    async fn remove_live(&self, l: &Live<'_>, why: &str, report: &mut ReconcileReport) -> bool {
        match self
            .ports
            .enforcer
            .revoke(std::slice::from_ref(&l.at))
            .await
        {
            Ok(0) => false,
            Ok(_) => {
                report.removed += 1;
                info!(request_id = ?l.id, policy = %l.at, why, "reconciler removed a policy");
                true
            }
            Err(e) => {
                self.count_kube_error(&e);
                report.errors += 1;
                warn!(request_id = ?l.id, policy = %l.at, error = %e, "reconciler could not delete a policy");
                false
            }
        }
    }

    async fn record_removal(
        &self,
        l: &Live<'_>,
        req: Option<&AccessRequest>,
        why: &str,
        now: DateTime<Utc>,
    ) {
        if let Some(id) = &l.id {
            let detail = format!("reconciler deleted NetworkPolicy {}: {why}", l.at);
            self.record(id, req, AuditKind::PolicyRemoved, now, detail)
                .await;
        }
    }

    /// Puts back an Active grant's policy that someone edited.
    async fn restore(
        &self,
        r: &AccessRequest,
        at: &PolicyRef,
        now: DateTime<Utc>,
        report: &mut ReconcileReport,
    ) {
        if self.reapply(r).await {
            report.reapplied += 1;
            let detail = format!("reconciler restored NetworkPolicy {at}, which had been edited");
            self.record(&r.id, Some(r), AuditKind::PolicyReapplied, now, detail)
                .await;
        } else {
            report.errors += 1;
        }
    }

    /// Audits a policy the expiry guard deleted because its expiry could not be
    /// trusted (an expiry on time is audited by the sweep, as the request's Expired
    /// transition). Waits for nothing but the store.
    pub async fn guard_removed(&self, removal: &Removal) -> Result<(), AppError> {
        let Some(id) = &removal.request_id else {
            return Ok(());
        };
        let Ending::Invalid(why) = &removal.ending else {
            return Ok(());
        };
        let req = self.ports.store.load(id).await?;
        let detail = format!(
            "expiry guard deleted NetworkPolicy {}: {why}",
            removal.policy
        );
        let event = removal_event(id, req.as_ref(), removal.at, detail);
        self.ports.store.append_audit(&event).await?;
        if let Some(r) = &req {
            self.publish(r, &event).await;
        }
        Ok(())
    }

    /// Audits a reconciler action (and tells Slack when the request is known).
    async fn record(
        &self,
        id: &RequestId,
        req: Option<&AccessRequest>,
        kind: AuditKind,
        now: DateTime<Utc>,
        detail: String,
    ) {
        let mut event = removal_event(id, req, now, detail);
        event.kind = kind;
        if let Err(e) = self.ports.store.append_audit(&event).await {
            warn!(request_id = %id, error = %e, "cannot record a reconciler action in the audit stream");
        }
        if let Some(r) = req {
            self.publish(r, &event).await;
        }
    }
}

/// What the store says of a live policy's request.
enum Stored {
    Known(Box<AccessRequest>),
    /// No request of that id (or no readable id on the policy).
    Unknown,
    /// The store has it but cannot read it back, or its seal does not verify.
    Unreadable(String),
}

impl Stored {
    fn known(&self) -> Option<&AccessRequest> {
        match self {
            Stored::Known(r) => Some(r),
            _ => None,
        }
    }
}

impl<'a> Live<'a> {
    /// A listed policy with a name and a valid namespace; others cannot be ours.
    fn of(policy: &'a NetworkPolicy) -> Option<Self> {
        let name = policy.metadata.name.clone()?;
        let namespace = policy
            .metadata
            .namespace
            .as_ref()?
            .parse::<Namespace>()
            .ok()?;
        Some(Live {
            policy,
            at: PolicyRef { namespace, name },
            id: netpol::request_id(policy),
        })
    }
}

/// A `policy_removed` event by jitbot itself, with the request's state when known.
fn removal_event(
    id: &RequestId,
    req: Option<&AccessRequest>,
    at: DateTime<Utc>,
    detail: String,
) -> AuditEvent {
    AuditEvent {
        request_id: id.clone(),
        kind: AuditKind::PolicyRemoved,
        at,
        actor: None,
        from: req.map(|r| r.state),
        to: req.map(|r| r.state),
        detail,
    }
}
