//! The use cases of approval policy: who may ask for a target (with the user groups
//! read from Slack), the caps on active grants, break-glass and its acknowledgement.
//! The rules themselves are pure (`core::policy`); here is what they need from the
//! ports: group members from the directory, active grants from the store.

use chrono::{DateTime, Utc};
use tracing::{info, instrument, warn};

use super::{App, AppError};
use crate::core::catalog::Target;
use crate::core::ids::{RequestId, SlackUserId};
use crate::core::policy::{self, ActiveCounts, Membership};
use crate::core::ports::AuditEvent;
use crate::core::request::{AccessRequest, AuditKind, Event, State, Transition};
use crate::core::submission::{self, Refusal, Submission};

impl App {
    /// `user` and the user groups they are in, among those `target`'s rules name. A
    /// group Slack cannot give is `unreadable`, which no rule counts as membership.
    pub async fn membership(&self, user: &SlackUserId, target: &Target) -> Membership {
        let mut who = Membership::direct(user.clone());
        for group in policy::groups_named(target) {
            match self.ports.directory.group_members(&group).await {
                Ok(members) if members.contains(user) => {
                    who.groups.insert(group);
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(%group, %user, error = %e, "cannot read user group; it counts as not containing the person");
                    who.unreadable.insert(group);
                }
            }
        }
        who
    }

    /// The targets `user` may request, in catalog order (`/jit targets`, the form).
    pub async fn targets_for(&self, user: &SlackUserId) -> Vec<Target> {
        if self.catalog.requester(user).is_none() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for target in self.catalog.targets() {
            let who = if target.requesters.groups.is_empty() {
                Membership::direct(user.clone())
            } else {
                self.membership(user, target).await
            };
            if policy::may_request(target, &who).is_ok() {
                out.push(target.clone());
            }
        }
        out
    }

    /// The catalog's checks of `s` at `now`, the target's own rules included: the
    /// Pending request it makes, the target, and who asked (with their groups).
    pub(super) async fn admit(
        &self,
        s: &Submission,
        now: DateTime<Utc>,
    ) -> Result<(AccessRequest, Membership), AppError> {
        let refuse = |refusal: Refusal| AppError::Invalid(refusal.to_string());
        let req = s
            .admit(&self.catalog, RequestId::from_random(rand::random()), now)
            .map_err(refuse)?;
        let target = submission::target(&self.catalog, &s.target).map_err(refuse)?;
        let who = self.membership(&s.requester, target).await;
        s.check_policy(target, &who).map_err(|refusal| {
            info!(requester = %s.requester, target = %s.target, "request refused by the target's policy");
            refuse(refusal)
        })?;
        Ok((req, who))
    }

    /// Refuses one more grant of `target` for `requester` over `max_active_grants` or
    /// `access.max_active_per_requester`. Counted from the store's active (and
    /// approved) grants; with both caps off the store is not asked.
    pub(super) async fn within_caps(
        &self,
        target: &Target,
        requester: &SlackUserId,
    ) -> Result<(), AppError> {
        let per_person = self.catalog.limits.max_active_per_requester;
        if target.max_active_grants == 0 && per_person == 0 {
            return Ok(());
        }
        let mut counts = ActiveCounts::default();
        for state in [State::Approved, State::Active] {
            for r in self.ports.store.list_by_state(state).await? {
                counts.on_target += usize::from(r.target == target.name);
                counts.of_requester += usize::from(&r.requester == requester);
            }
        }
        policy::check_caps(target, per_person, counts).map_err(|cap| {
            info!(%requester, target = %target.name, on_target = counts.on_target, of_requester = counts.of_requester, "refused: over a cap on active grants");
            AppError::Invalid(Refusal::Cap(cap).to_string())
        })
    }

    /// Break-glass: the requester takes access to a target that offers it, at once
    /// and without approval. It is announced loudly (a card for the approvers, a DM
    /// to each, the audit thread) and again every `review_within` until an approver
    /// acknowledges it. The target's requesters, reason rule and caps still apply.
    #[instrument(skip(self, s), fields(requester = %s.requester, target = %s.target, request_id))]
    pub async fn break_glass(&self, s: Submission) -> Result<AccessRequest, AppError> {
        let now = self.now();
        let (req, _) = self.admit(&s, now).await?;
        let target = submission::target(&self.catalog, &s.target)
            .map_err(|r| AppError::Invalid(r.to_string()))?;
        let bg = policy::break_glass(target, s.duration)
            .map_err(|r| AppError::Invalid(Refusal::BreakGlass(r).to_string()))?;
        self.within_caps(target, &s.requester).await?;
        tracing::Span::current().record("request_id", req.id.as_str());
        let event = AuditEvent {
            request_id: req.id.clone(),
            kind: AuditKind::Requested,
            at: now,
            actor: Some(s.requester.clone()),
            from: None,
            to: Some(State::Pending),
            detail: format!(
                "BREAK-GLASS: {} for {} from {}: {}",
                req.duration, req.target, req.source, req.reason
            ),
        };
        self.ports.store.create(&req, &event).await?;
        self.metrics.requested();
        warn!(request_id = %req.id, requester = %s.requester, target = %s.target, "break-glass used");
        self.announce_new(&req, &event).await;
        let glass = Event::BreakGlass {
            by: s.requester.clone(),
            review_within: bg.review_within,
        };
        let t = self.step(&req.id, &glass, Some(&s.requester), now).await?;
        self.activate(t.request, self.now()).await
    }

    /// An approver (or admin) acknowledges a break-glass use: it is no longer
    /// announced again.
    #[instrument(skip(self), fields(request_id = %id, by = %user))]
    pub async fn acknowledge(
        &self,
        id: &RequestId,
        user: &SlackUserId,
    ) -> Result<Transition, AppError> {
        let req = self.load(id).await?;
        let actor = self.actor(user, &req).await;
        self.step(
            id,
            &Event::Acknowledge { by: actor },
            Some(user),
            self.now(),
        )
        .await
    }
}
