//! The use cases people trigger: submit, decide, revoke, extend, cancel; and
//! `activate`, which puts an approved grant's policy in the cluster.

use chrono::{DateTime, SecondsFormat, Utc};
use tracing::{info, instrument, warn};

use super::{App, AppError, CONFLICT_RETRIES};
use crate::core::command::Reason;
use crate::core::ids::{RequestId, SlackUserId};
use crate::core::netpol;
use crate::core::policy::{self, AutoApproval};
use crate::core::ports::{AuditEvent, EnforceError, PREVIEW_NOTE, Ready, StoreError};
use crate::core::request::{
    self, AccessRequest, AuditKind, Event, Round, State, Transition, TransitionError,
};
use crate::core::submission::{self, Submission};
use crate::core::trust;
use crate::core::ttl::Ttl;

/// An approver's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Deny { note: Option<String> },
}

/// What a revoke did: the grant ended in the store, and whether the cluster then let
/// go of its policy (when it did not, the reconciler and the expiry guard delete it).
#[derive(Debug)]
pub struct Revocation {
    pub transition: Transition,
    /// Why the cluster did not delete the policy, if it did not.
    pub policy: Result<(), String>,
}

impl Revocation {
    /// What the person who revoked is told.
    pub fn sentence(&self) -> String {
        let id = &self.transition.request.id;
        match &self.policy {
            Ok(()) => format!("Revoked `{id}`: the policy is gone."),
            Err(_) => format!(
                "Revoked `{id}`: it has ended, but the cluster did not delete its policy just now; jitbot's reconciler deletes it on its next pass, and the audit thread says why."
            ),
        }
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl App {
    /// Records a new Pending request for a catalog target and has the approvers told,
    /// with a preview of its grant, after the answer. A request the target's policy
    /// refuses, or over one of the caps (see `within_limits`, `within_caps`), is
    /// refused before anything is stored. When one of the target's auto-approval
    /// rules matches, it is approved "by rule" and applied before this returns.
    #[instrument(skip(self, s), fields(requester = %s.requester, target = %s.target, request_id))]
    pub async fn submit(&self, s: Submission) -> Result<AccessRequest, AppError> {
        let now = self.now();
        let (req, who) = self.admit(&s, now).await?;
        self.within_limits(&s.requester, now).await?;
        let target = submission::target(&self.catalog, &s.target)
            .map_err(|r| AppError::Invalid(r.to_string()))?;
        self.within_caps(target, &s.requester).await?;
        let auto = policy::auto_approval(target, &who, s.duration, now);
        tracing::Span::current().record("request_id", req.id.as_str());
        let event = AuditEvent {
            request_id: req.id.clone(),
            kind: AuditKind::Requested,
            at: now,
            actor: Some(s.requester.clone()),
            from: None,
            to: Some(State::Pending),
            detail: format!(
                "{} for {} from {}: {}",
                req.duration, req.target, req.source, req.reason
            ),
        };
        self.ports.store.create(&req, &event).await?;
        self.armed(&req);
        self.metrics.requested();
        info!(request_id = %req.id, "request submitted");
        self.announce_new(&req, &event).await;
        let AutoApproval::By(rule) = auto else {
            return Ok(req);
        };
        info!(request_id = %req.id, %rule, "auto-approved by rule");
        let t = self
            .step(&req.id, &Event::AutoApprove { rule }, None, now)
            .await?;
        self.activate(t.request, self.now()).await
    }

    /// Has the approvers told of a new request once its preview is noted: the card
    /// waits for the preview (which asks the cluster), the requester's answer does not.
    pub(super) async fn announce_new(&self, req: &AccessRequest, event: &AuditEvent) {
        let app = self.clone();
        let noted = req.clone();
        let ready: Ready = Box::pin(async move {
            app.note_preview(&noted).await;
            noted
        });
        if let Err(e) = self.ports.notifier.announce(event, ready).await {
            warn!(request_id = %req.id, error = %e, "notification failed; the audit stream still has the event");
        }
    }

    /// Previews a new request's grant and notes the preview beside the request, so the
    /// card shows it from its first rendering on, whichever replica renders it.
    async fn note_preview(&self, req: &AccessRequest) {
        if let Some(preview) = self.preview(req).await
            && let Err(e) = self
                .ports
                .store
                .annotate(&req.id, PREVIEW_NOTE, &preview)
                .await
        {
            warn!(request_id = %req.id, error = %e, "cannot keep the preview; the card shows none");
        }
    }

    /// Approves or denies `round` of a request: the request itself, or the extension
    /// its card showed. A decision on a round that is no longer open (an older card,
    /// a replayed click) is refused and changes nothing. Exactly one decision wins
    /// however many clicks race; when the quorum is met the grant is applied before
    /// this returns.
    #[instrument(skip(self, decision), fields(request_id = %id, by = %user))]
    pub async fn decide(
        &self,
        id: &RequestId,
        user: &SlackUserId,
        decision: Decision,
        round: Round,
    ) -> Result<Transition, AppError> {
        let req = self.load(id).await?;
        round.check(&req)?;
        let actor = self.actor(user, &req).await;
        // The caps hold when access is granted, not only when it was asked for.
        if decision == Decision::Approve
            && req.state == State::Pending
            && let Some(target) = self.catalog.target(req.target.as_str())
        {
            self.within_caps(target, &req.requester).await?;
        }
        let event = match decision {
            Decision::Approve => Event::Approve { by: actor },
            Decision::Deny { note } => Event::Deny { by: actor, note },
        };
        let t = self
            .step_if(id, &event, Some(user), self.now(), |r| round.check(r))
            .await?;
        match t.kind {
            AuditKind::Approved => {
                let after = self.activate(t.request.clone(), self.now()).await?;
                Ok(Transition {
                    request: after,
                    ..t
                })
            }
            AuditKind::Extended => {
                self.reapply(&t.request).await;
                Ok(t)
            }
            _ => Ok(t),
        }
    }

    /// Ends an active grant now: the store first, then the cluster.
    #[instrument(skip(self, reason), fields(request_id = %id, by = %user))]
    pub async fn revoke(
        &self,
        id: &RequestId,
        user: &SlackUserId,
        reason: Option<Reason>,
    ) -> Result<Revocation, AppError> {
        let req = self.load(id).await?;
        let actor = self.actor(user, &req).await;
        let event = Event::Revoke {
            by: actor,
            reason: reason.map(|r| r.to_string()),
        };
        let t = self.step(id, &event, Some(user), self.now()).await?;
        let policy = self
            .remove_policies(&t.request, self.now())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
        Ok(Revocation {
            transition: t,
            policy,
        })
    }

    /// Asks for more time on an active grant; approvers must approve it again.
    #[instrument(skip(self), fields(request_id = %id, by = %user))]
    pub async fn extend(
        &self,
        id: &RequestId,
        user: &SlackUserId,
        duration: Ttl,
    ) -> Result<Transition, AppError> {
        let req = self.load(id).await?;
        let actor = self.actor(user, &req).await;
        self.step(
            id,
            &Event::Extend {
                by: actor,
                duration,
            },
            Some(user),
            self.now(),
        )
        .await
    }

    /// Withdraws a pending request.
    #[instrument(skip(self), fields(request_id = %id, by = %user))]
    pub async fn cancel(&self, id: &RequestId, user: &SlackUserId) -> Result<Transition, AppError> {
        let req = self.load(id).await?;
        let actor = self.actor(user, &req).await;
        self.step(id, &Event::Cancel { by: actor }, Some(user), self.now())
            .await
    }

    /// Puts an Approved request's policies in the cluster and marks it Active, or ends
    /// it Failed when applying keeps failing. Safe to run twice: apply is idempotent
    /// and only one Approved → Active transition can win.
    #[instrument(skip(self, req), fields(request_id = %req.id))]
    pub async fn activate(
        &self,
        req: AccessRequest,
        now: DateTime<Utc>,
    ) -> Result<AccessRequest, AppError> {
        let expires_at = request::whole_second(now + req.duration.as_delta());
        // The record as read back must ask for no more than the catalog gives now.
        if let Err(untrusted) = trust::vet(&req, &self.catalog) {
            return self.refuse_untrusted(req, untrusted, now).await;
        }
        // One call: the enforcer retries what is worth retrying within its own bounds
        // (see `Enforcer::apply`), so an error here is its last word.
        let applied = self
            .ports
            .enforcer
            .apply(&netpol::render(&req, expires_at))
            .await;
        let event = match &applied {
            Ok(()) => Event::Applied { expires_at },
            Err(e) => {
                self.count_kube_error(e);
                warn!(request_id = %req.id, error = %e, "apply failed for good; ending the request as failed");
                Event::ApplyFailed {
                    reason: format!("applying the NetworkPolicy failed: {e}"),
                }
            }
        };
        match self.step(&req.id, &event, None, now).await {
            Ok(t) => {
                if t.request.state == State::Failed {
                    // Part of the grant may have been applied (e.g. ingress but not egress).
                    let _ = self.remove_policies(&t.request, now).await;
                }
                Ok(t.request)
            }
            // Another replica finished it first, or it was revoked meanwhile.
            Err(AppError::Refused(TransitionError::WrongState { state, .. })) => {
                let current = self.load(&req.id).await?;
                if state != State::Active && applied.is_ok() {
                    let _ = self.remove_policies(&current, now).await;
                }
                Ok(current)
            }
            Err(e) => Err(e),
        }
    }

    /// An Approved request whose record asks for more than the catalog gives: nothing
    /// is applied, any policy of it is deleted, it ends Failed and the alert is raised.
    async fn refuse_untrusted(
        &self,
        req: AccessRequest,
        untrusted: trust::Untrusted,
        now: DateTime<Utc>,
    ) -> Result<AccessRequest, AppError> {
        warn!(request_id = %req.id, error = %untrusted, "refusing to apply a stored request that does not match the catalog");
        let _ = self.remove_policies(&req, now).await;
        self.reject(&req, now, untrusted.to_string()).await;
        let event = Event::ApplyFailed {
            reason: format!("nothing was applied: {untrusted}"),
        };
        match self.step(&req.id, &event, None, now).await {
            Ok(t) => Ok(t.request),
            Err(AppError::Refused(TransitionError::WrongState { .. })) => self.load(&req.id).await,
            Err(e) => Err(e),
        }
    }

    /// Applies one event to the freshest copy of the request until its
    /// compare-and-set wins; then audits (atomically, in the store) and notifies.
    pub(crate) async fn step(
        &self,
        id: &RequestId,
        event: &Event,
        actor: Option<&SlackUserId>,
        now: DateTime<Utc>,
    ) -> Result<Transition, AppError> {
        self.step_if(id, event, actor, now, |_| Ok(())).await
    }

    /// [`App::step`], where `still` must accept each fresh copy before the event is
    /// applied to it (a decision checks that its round is still open).
    async fn step_if(
        &self,
        id: &RequestId,
        event: &Event,
        actor: Option<&SlackUserId>,
        now: DateTime<Utc>,
        still: impl Fn(&AccessRequest) -> Result<(), TransitionError>,
    ) -> Result<Transition, AppError> {
        for _ in 0..CONFLICT_RETRIES {
            let req = self.load(id).await?;
            still(&req)?;
            let t = request::apply(&req, event, now)?;
            let audit = AuditEvent::of(&t, actor, now, describe(&t));
            match self.ports.store.transition(&t, &audit).await {
                Ok(()) => {
                    self.armed(&t.request);
                    self.metrics.transition(&t, now);
                    info!(request_id = %id, from = %t.from, to = %t.request.state, kind = t.kind.as_str(), "transition");
                    self.publish(&t.request, &audit).await;
                    return Ok(t);
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::Contended(id.clone()))
    }

    /// Deletes a request's policies: how many this call deleted (none when another
    /// path was first), or why deleting failed, after logging it and raising an audit
    /// alert (so callers with nobody to tell may drop the error); the reconciler
    /// deletes any policy whose request is not Active.
    pub(crate) async fn remove_policies(
        &self,
        req: &AccessRequest,
        now: DateTime<Utc>,
    ) -> Result<usize, EnforceError> {
        match self.ports.enforcer.revoke(&netpol::policy_refs(req)).await {
            Ok(deleted) => Ok(deleted),
            Err(e) => {
                self.count_kube_error(&e);
                warn!(request_id = %req.id, error = %e, "deleting the policy failed; the reconciler will retry");
                self.alert(
                    req,
                    now,
                    format!("deleting the NetworkPolicy failed: {e}; retrying"),
                )
                .await;
                Err(e)
            }
        }
    }

    /// Puts an Active grant's policy back as the store says it should be, once the
    /// record has passed [`trust::vet`]. A record that fails it is not applied: its
    /// policy is deleted, the grant is ended Revoked and the alert is raised.
    pub(crate) async fn reapply(&self, req: &AccessRequest) -> bool {
        let Some(expires_at) = req.expires_at else {
            return false;
        };
        if let Err(untrusted) = trust::vet(req, &self.catalog) {
            warn!(request_id = %req.id, error = %untrusted, "refusing to re-apply a stored request that does not match the catalog");
            let now = self.now();
            self.reject(req, now, untrusted.to_string()).await;
            self.withdraw(req, untrusted.to_string(), now).await;
            return false;
        }
        match self
            .ports
            .enforcer
            .apply(&netpol::render(req, expires_at))
            .await
        {
            Ok(()) => true,
            Err(e) => {
                self.count_kube_error(&e);
                warn!(request_id = %req.id, error = %e, "re-applying the policy failed; the reconciler will retry");
                false
            }
        }
    }

    /// Ends an Active grant on jitbot's own word (see [`Event::Withdraw`]): deletes
    /// its policy and records the end, which tells the requester why.
    pub(crate) async fn withdraw(&self, req: &AccessRequest, why: String, now: DateTime<Utc>) {
        let _ = self.remove_policies(req, now).await;
        let event = Event::Withdraw { reason: why };
        if let Err(e) = self.step(&req.id, &event, None, now).await {
            warn!(request_id = %req.id, error = %e, "cannot record the end of a withdrawn grant; its policy is deleted");
        }
    }

    /// Records a `record_rejected` alert in the audit log and tells Slack.
    pub(crate) async fn reject(&self, req: &AccessRequest, now: DateTime<Utc>, detail: String) {
        self.raise(AuditKind::RecordRejected, req, now, detail)
            .await;
    }

    /// Records a `revoke_failing` alert in the audit log and tells Slack.
    pub(crate) async fn alert(&self, req: &AccessRequest, now: DateTime<Utc>, detail: String) {
        self.raise(AuditKind::RevokeFailing, req, now, detail).await;
    }

    async fn raise(
        &self,
        kind: AuditKind,
        req: &AccessRequest,
        now: DateTime<Utc>,
        detail: String,
    ) {
        let event = AuditEvent {
            request_id: req.id.clone(),
            kind,
            at: now,
            actor: None,
            from: Some(req.state),
            to: Some(req.state),
            detail,
        };
        if let Err(e) = self.ports.store.append_audit(&event).await {
            warn!(request_id = %req.id, error = %e, "cannot record the alert in the audit stream");
        }
        self.publish(req, &event).await;
    }
}

/// The audit line for a transition, in plain words.
fn describe(t: &Transition) -> String {
    let r = &t.request;
    let who = |u: &Option<SlackUserId>| u.as_ref().map_or("jitbot".to_owned(), |u| u.to_string());
    let why = r
        .end_reason
        .as_deref()
        .map(|w| format!(": {w}"))
        .unwrap_or_default();
    match t.kind {
        AuditKind::ApprovalRecorded => format!(
            "approved by {} ({} of {})",
            r.approvals
                .last()
                .map_or("?".to_owned(), |a| a.by.to_string()),
            r.approvals.len(),
            r.scope.approvals_required
        ),
        AuditKind::Approved => format!(
            "approved by {}",
            r.approved_by()
                .iter()
                .map(|u| u.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        AuditKind::Activated => format!(
            "NetworkPolicy {} applied in {}; expires {}",
            netpol::policy_name(&r.id),
            r.scope.namespace,
            r.expires_at.map(rfc3339).unwrap_or_default()
        ),
        AuditKind::Expired => format!(
            "expired at {}; NetworkPolicy deleted",
            r.expires_at.map(rfc3339).unwrap_or_default()
        ),
        AuditKind::Denied | AuditKind::ExtensionDenied => {
            format!("denied by {}{why}", who(&r.ended_by))
        }
        AuditKind::Cancelled => format!("cancelled by {}", who(&r.ended_by)),
        AuditKind::Revoked => format!("revoked by {}{why}", who(&r.ended_by)),
        AuditKind::Lapsed => "nobody decided before the approval deadline".to_owned(),
        AuditKind::Failed => format!("failed{why}"),
        AuditKind::ExtensionRequested | AuditKind::ExtensionApprovalRecorded => r
            .extension
            .as_ref()
            .map(|e| {
                format!(
                    "extension of {} asked by {} ({} of {} approvals)",
                    e.duration,
                    e.requested_by,
                    e.approvals.len(),
                    r.scope.approvals_required
                )
            })
            .unwrap_or_default(),
        AuditKind::Extended => format!(
            "extended; now expires {}",
            r.expires_at.map(rfc3339).unwrap_or_default()
        ),
        AuditKind::AutoApproved => format!(
            "approved by rule {}; nobody clicked",
            r.approved_by_rule.as_deref().unwrap_or("?")
        ),
        AuditKind::BreakGlassUsed => format!(
            "BREAK-GLASS: {} took {} of access without approval; an approver must acknowledge it within {}",
            r.requester,
            r.duration,
            r.break_glass
                .as_ref()
                .map(|b| b.review_within.to_string())
                .unwrap_or_default()
        ),
        AuditKind::BreakGlassAcknowledged => format!(
            "break-glass use acknowledged by {}",
            r.break_glass
                .as_ref()
                .and_then(|b| b.acknowledged_by.as_ref())
                .map_or("?".to_owned(), |u| u.to_string())
        ),
        AuditKind::BreakGlassUnacknowledged => format!(
            "break-glass use by {} is still not acknowledged (announced {} time(s) again)",
            r.requester,
            r.break_glass.as_ref().map_or(0, |b| b.announced)
        ),
        other => other.as_str().to_owned(),
    }
}
