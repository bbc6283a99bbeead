//! An access request and its lifecycle, as pure functions of `(request, event, now)`.
//!
//! ```text
//!           ┌──── deny ───▶ Denied
//! Pending ──┼──── approval timeout ───▶ Lapsed
//!           ├──── requester cancels ───▶ Cancelled
//!           └──── approve (quorum met) ─▶ Approved ── policy applied ─▶ Active
//!                                             └── apply keeps failing ─▶ Failed
//! Active ── expires_at reached ─▶ Expired
//! Active ── revoke (requester, approver, admin) ─▶ Revoked
//! Active ── extend (approved again) ─▶ Active (new expires_at)
//! ```
//!
//! Every accepted event yields a [`Transition`]: the new request (its `version` one
//! higher, which the store uses for compare-and-set) and exactly one [`AuditKind`].
//! Who is an approver is decided by the caller (user groups live in Slack) and passed
//! in as an [`Actor`].

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::core::catalog::{PortSpec, Source, Target};
use crate::core::command::Reason;
use crate::core::ids::{Namespace, RequestId, SlackUserId, TargetName};
use crate::core::ttl::Ttl;

/// How long an Approved request waits for its apply before a sweep takes it over.
pub const APPLY_RETRY_AFTER: Ttl = Ttl::from_mins(2);

/// Where a request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Pending,
    Approved,
    Active,
    Denied,
    Lapsed,
    Cancelled,
    Failed,
    Expired,
    Revoked,
}

impl State {
    pub const ALL: [State; 9] = [
        State::Pending,
        State::Approved,
        State::Active,
        State::Denied,
        State::Lapsed,
        State::Cancelled,
        State::Failed,
        State::Expired,
        State::Revoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Active => "active",
            State::Denied => "denied",
            State::Lapsed => "lapsed",
            State::Cancelled => "cancelled",
            State::Failed => "failed",
            State::Expired => "expired",
            State::Revoked => "revoked",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a grant opens, copied from the catalog when the request is made, so that what
/// approvers see is what gets applied even if the catalog changes meanwhile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    pub namespace: Namespace,
    pub pod_selector: std::collections::BTreeMap<String, String>,
    pub ports: Vec<PortSpec>,
    pub approvals_required: u32,
    pub allow_self_approval: bool,
    /// The target's longest grant, which also bounds extensions.
    pub max_duration: Ttl,
}

impl Scope {
    pub fn of(target: &Target) -> Self {
        Scope {
            namespace: target.namespace.clone(),
            pod_selector: target.pod_selector.clone(),
            ports: target.ports.clone(),
            approvals_required: target.approvals_required,
            allow_self_approval: target.allow_self_approval,
            max_duration: target.max_duration,
        }
    }
}

/// One approver's yes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub by: SlackUserId,
    pub at: DateTime<Utc>,
}

/// A request for more time on an active grant, waiting for approvals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    pub duration: Ttl,
    pub requested_by: SlackUserId,
    pub requested_at: DateTime<Utc>,
    pub approvals: Vec<Approval>,
    /// Which decision round this extension is: the request's version when it was
    /// asked for. The card's buttons carry it, so a click on an older card (or a
    /// replayed one) cannot approve a later extension.
    #[serde(default)]
    pub round: u64,
}

/// One access request, from submission to its end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRequest {
    pub id: RequestId,
    pub requester: SlackUserId,
    pub target: TargetName,
    pub scope: Scope,
    pub source: Source,
    pub duration: Ttl,
    pub reason: Reason,
    pub state: State,
    /// Bumped by every transition; the store's compare-and-set checks it.
    pub version: u64,
    pub created_at: DateTime<Utc>,
    /// When a pending request lapses.
    pub approval_deadline: DateTime<Utc>,
    pub approvals: Vec<Approval>,
    /// Who denied, cancelled or revoked it.
    pub ended_by: Option<SlackUserId>,
    /// Why it ended, in words (denial note, apply failure, revoke reason).
    pub end_reason: Option<String>,
    pub activated_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub extension: Option<Extension>,
    /// How long before expiry the requester is warned (0s: never).
    #[serde(default = "no_warning")]
    pub expiry_warning: Ttl,
    /// When the expiry warning is due; `None` once sent or when there is none.
    #[serde(default)]
    pub warn_at: Option<DateTime<Utc>>,
    /// The auto-approval rule that approved it, when no person did.
    #[serde(default)]
    pub approved_by_rule: Option<String>,
    /// Set when the requester took it by break-glass, without approval.
    #[serde(default)]
    pub break_glass: Option<BreakGlassUse>,
}

/// A break-glass use: applied without approval, so an approver must acknowledge it
/// afterwards. Until one does, it is announced again every `review_within`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakGlassUse {
    pub used_at: DateTime<Utc>,
    pub review_within: Ttl,
    /// When it is next announced, while nobody has acknowledged it.
    pub announce_at: Option<DateTime<Utc>>,
    /// How often it was announced again.
    pub announced: u32,
    pub acknowledged_by: Option<SlackUserId>,
    pub acknowledged_at: Option<DateTime<Utc>>,
}

impl BreakGlassUse {
    pub fn acknowledged(&self) -> bool {
        self.acknowledged_by.is_some()
    }
}

/// `t` without its fraction of a second. Expiries are whole seconds, so the
/// `jitbot.dev/expires-at` annotation (RFC 3339 to the second) says exactly what the
/// store says, and a guard reading only the annotation never ends access early.
pub fn whole_second(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

fn no_warning() -> Ttl {
    Ttl::from_secs(0)
}

/// Everything needed to create a request; the caller has checked the command.
#[derive(Clone, Debug)]
pub struct NewRequest {
    pub id: RequestId,
    pub requester: SlackUserId,
    pub target: TargetName,
    pub scope: Scope,
    pub source: Source,
    pub duration: Ttl,
    pub reason: Reason,
    pub approval_timeout: Ttl,
    /// How long before expiry to warn the requester (0s: never).
    pub expiry_warning: Ttl,
}

impl AccessRequest {
    pub fn new(n: NewRequest, now: DateTime<Utc>) -> Self {
        AccessRequest {
            id: n.id,
            requester: n.requester,
            target: n.target,
            scope: n.scope,
            source: n.source,
            duration: n.duration,
            reason: n.reason,
            state: State::Pending,
            version: 1,
            created_at: now,
            approval_deadline: now + n.approval_timeout.as_delta(),
            approvals: Vec::new(),
            ended_by: None,
            end_reason: None,
            activated_at: None,
            expires_at: None,
            ended_at: None,
            extension: None,
            expiry_warning: n.expiry_warning,
            warn_at: None,
            approved_by_rule: None,
            break_glass: None,
        }
    }

    /// The warning point for a grant expiring at `expires_at`, if it is still ahead.
    fn warning_for(&self, expires_at: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let at = expires_at - self.expiry_warning.as_delta();
        (self.expiry_warning.as_secs() > 0 && at > now).then_some(at)
    }

    /// When this request's timer fires, if it can still move: the approval deadline
    /// while Pending, a retry of the apply while Approved (should the replica applying
    /// it die), the expiry while Active; and, in any state, the next announcement of
    /// an unacknowledged break-glass use.
    pub fn due_at(&self) -> Option<DateTime<Utc>> {
        let review = self.break_glass.as_ref().and_then(|bg| bg.announce_at);
        match (self.state_due_at(), review) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The lifecycle's own timer, without break-glass announcements.
    pub fn state_due_at(&self) -> Option<DateTime<Utc>> {
        match self.state {
            State::Pending => Some(self.approval_deadline),
            State::Approved => {
                let approved = self.approvals.last().map_or(self.created_at, |a| a.at);
                Some(approved + APPLY_RETRY_AFTER.as_delta())
            }
            State::Active => self.warn_at.or(self.expires_at),
            _ => None,
        }
    }

    /// The approvers whose yes made the grant, in order.
    pub fn approved_by(&self) -> Vec<SlackUserId> {
        self.approvals.iter().map(|a| a.by.clone()).collect()
    }
}

/// Which decision a card's buttons answer: the request itself (while Pending) or one
/// extension of an Active grant (by its [`Extension::round`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Round {
    Request,
    Extension(u64),
}

impl Round {
    /// The round a card for `req` as it is now asks about.
    pub fn of(req: &AccessRequest) -> Self {
        match &req.extension {
            Some(ext) if req.state == State::Active => Round::Extension(ext.round),
            _ => Round::Request,
        }
    }

    /// Whether a decision on this round may still be taken on `req`: the request's
    /// own round while it is Pending, an extension's round while that extension waits.
    /// Anything else is a click on a card that is out of date; states where no
    /// decision is open at all are left to the transition to refuse.
    pub fn check(self, req: &AccessRequest) -> Result<(), TransitionError> {
        let open = match req.state {
            State::Pending => Some(Round::Request),
            State::Active => req.extension.as_ref().map(|e| Round::Extension(e.round)),
            _ => None,
        };
        match open {
            Some(current) if current != self => {
                Err(TransitionError::OutOfDate { id: req.id.clone() })
            }
            _ => Ok(()),
        }
    }
}

/// Who is acting, and in which roles for this request's target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub user: SlackUserId,
    /// A listed approver of the target (directly or through a user group).
    pub is_approver: bool,
    pub is_admin: bool,
}

/// Something that happens to a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Approve {
        by: Actor,
    },
    Deny {
        by: Actor,
        note: Option<String>,
    },
    Cancel {
        by: Actor,
    },
    /// The approval deadline passed.
    Lapse,
    /// The NetworkPolicy is in the cluster, annotated to expire at `expires_at`.
    Applied {
        expires_at: DateTime<Utc>,
    },
    /// Applying kept failing; the request ends.
    ApplyFailed {
        reason: String,
    },
    /// `expires_at` passed and the policy is gone.
    Expire,
    /// The expiry warning is due.
    WarnExpiry,
    Revoke {
        by: Actor,
        reason: Option<String>,
    },
    Extend {
        by: Actor,
        duration: Ttl,
    },
    /// jitbot itself ends an Active grant: its policy was removed outside jitbot, or
    /// its stored record no longer matches the catalog.
    Withdraw {
        reason: String,
    },
    /// An auto-approval rule approves a pending request (the caller has checked it).
    AutoApprove {
        rule: String,
    },
    /// The requester takes a pending request by break-glass (the caller has checked
    /// that the target offers it).
    BreakGlass {
        by: SlackUserId,
        review_within: Ttl,
    },
    /// An approver acknowledges a break-glass use.
    Acknowledge {
        by: Actor,
    },
    /// An unacknowledged break-glass use is due to be announced again.
    Reannounce,
}

/// The audit event a transition emits: one per transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    Requested,
    /// An approval was recorded; the quorum is not met yet.
    ApprovalRecorded,
    Approved,
    Denied,
    Lapsed,
    Cancelled,
    Activated,
    Failed,
    Expired,
    Revoked,
    ExtensionRequested,
    ExtensionApprovalRecorded,
    ExtensionDenied,
    Extended,
    /// The requester was told the grant ends soon.
    ExpiryWarned,
    /// The reconciler deleted a policy (expired, unknown or not active).
    PolicyRemoved,
    /// The reconciler put back an active grant's missing or edited policy.
    PolicyReapplied,
    /// Deleting a policy keeps failing; people must look.
    RevokeFailing,
    /// A stored request did not verify (its seal) or asks for more than the catalog
    /// allows now: nothing of it was applied, and its policy was deleted.
    RecordRejected,
    /// An auto-approval rule approved the request; nobody clicked.
    AutoApproved,
    /// The requester took access by break-glass, without approval.
    BreakGlassUsed,
    /// An approver acknowledged a break-glass use.
    BreakGlassAcknowledged,
    /// A break-glass use is still unacknowledged after its review window.
    BreakGlassUnacknowledged,
}

impl AuditKind {
    /// Every kind, in declaration order (for whoever must cover them all, such as
    /// the metrics test).
    pub const ALL: [AuditKind; 23] = {
        use AuditKind::*;
        [
            Requested,
            ApprovalRecorded,
            Approved,
            Denied,
            Lapsed,
            Cancelled,
            Activated,
            Failed,
            Expired,
            Revoked,
            ExtensionRequested,
            ExtensionApprovalRecorded,
            ExtensionDenied,
            Extended,
            ExpiryWarned,
            PolicyRemoved,
            PolicyReapplied,
            RevokeFailing,
            RecordRejected,
            AutoApproved,
            BreakGlassUsed,
            BreakGlassAcknowledged,
            BreakGlassUnacknowledged,
        ]
    };

    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::Requested => "requested",
            AuditKind::ApprovalRecorded => "approval_recorded",
            AuditKind::Approved => "approved",
            AuditKind::Denied => "denied",
            AuditKind::Lapsed => "lapsed",
            AuditKind::Cancelled => "cancelled",
            AuditKind::Activated => "activated",
            AuditKind::Failed => "failed",
            AuditKind::Expired => "expired",
            AuditKind::Revoked => "revoked",
            AuditKind::ExtensionRequested => "extension_requested",
            AuditKind::ExtensionApprovalRecorded => "extension_approval_recorded",
            AuditKind::ExtensionDenied => "extension_denied",
            AuditKind::Extended => "extended",
            AuditKind::ExpiryWarned => "expiry_warned",
            AuditKind::PolicyRemoved => "policy_removed",
            AuditKind::PolicyReapplied => "policy_reapplied",
            AuditKind::RevokeFailing => "revoke_failing",
            AuditKind::RecordRejected => "record_rejected",
            AuditKind::AutoApproved => "auto_approved",
            AuditKind::BreakGlassUsed => "break_glass_used",
            AuditKind::BreakGlassAcknowledged => "break_glass_acknowledged",
            AuditKind::BreakGlassUnacknowledged => "break_glass_unacknowledged",
        }
    }
}

/// An accepted event: the request as it is now, and what to audit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub from: State,
    pub kind: AuditKind,
    pub request: AccessRequest,
}

/// Why an event was refused. Each message is a sentence for the person who acted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("request {id} is {state}, so it cannot be {action}")]
    WrongState {
        id: RequestId,
        state: State,
        action: &'static str,
    },
    #[error("you are not an approver for {target}")]
    NotApprover { target: TargetName },
    #[error("request {id} was not a break-glass use, so there is nothing to acknowledge")]
    NotBreakGlass { id: RequestId },
    #[error("this break-glass use was already acknowledged by {by}")]
    AlreadyAcknowledged { by: SlackUserId },
    #[error("you cannot acknowledge your own break-glass use; another approver has to")]
    SelfAcknowledge,
    #[error("you cannot approve your own request for {target}; another approver has to")]
    SelfApproval { target: TargetName },
    #[error("you have already approved this; it needs {missing} more approval(s)")]
    AlreadyApproved { missing: u32 },
    #[error("only the requester, {target}'s approvers or an admin may {action} this request")]
    NotPermitted {
        target: TargetName,
        action: &'static str,
    },
    #[error("it is not due yet (due at {due})")]
    NotDue { due: DateTime<Utc> },
    #[error("{target} allows at most {max} from now; ask for {allowed} or less")]
    ExtensionTooLong {
        target: TargetName,
        max: Ttl,
        allowed: Ttl,
    },
    #[error("an extension of {0} is already waiting for approval")]
    ExtensionPending(Ttl),
    #[error(
        "this card is out of date: request {id} has moved on since it was posted, so nothing was changed; use the card's latest version"
    )]
    OutOfDate { id: RequestId },
}

#[doc(hidden)] // test data for tests and benches, not an API
pub mod fixtures;
mod transition;

pub use transition::apply;

#[cfg(test)]
mod policy_tests;
#[cfg(test)]
mod tests;
