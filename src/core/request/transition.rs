//! The transition function: one event applied to one request at one instant.

use chrono::{DateTime, Utc};

use super::{
    AccessRequest, Actor, Approval, AuditKind, Event, Extension, State, Transition,
    TransitionError, whole_second,
};
use crate::core::ttl::Ttl;

/// Applies one event. Pure: the same inputs always give the same answer.
pub fn apply(
    req: &AccessRequest,
    event: &Event,
    now: DateTime<Utc>,
) -> Result<Transition, TransitionError> {
    let wrong = |action: &'static str| TransitionError::WrongState {
        id: req.id.clone(),
        state: req.state,
        action,
    };
    let mut next = req.clone();
    next.version += 1;
    let kind = match (req.state, event) {
        (State::Pending, Event::Approve { by }) => {
            check_approver(req, by)?;
            if req.approvals.iter().any(|a| a.by == by.user) {
                return Err(TransitionError::AlreadyApproved {
                    missing: missing(req.scope.approvals_required, req.approvals.len()),
                });
            }
            next.approvals.push(Approval {
                by: by.user.clone(),
                at: now,
            });
            if next.approvals.len() >= req.scope.approvals_required as usize {
                next.state = State::Approved;
                AuditKind::Approved
            } else {
                AuditKind::ApprovalRecorded
            }
        }
        (State::Active, Event::Approve { by }) => {
            let Some(ext) = &req.extension else {
                return Err(wrong("approved again (it has no extension waiting)"));
            };
            check_approver(req, by)?;
            if ext.approvals.iter().any(|a| a.by == by.user) {
                return Err(TransitionError::AlreadyApproved {
                    missing: missing(req.scope.approvals_required, ext.approvals.len()),
                });
            }
            let mut ext = ext.clone();
            ext.approvals.push(Approval {
                by: by.user.clone(),
                at: now,
            });
            if ext.approvals.len() >= req.scope.approvals_required as usize {
                // Added to what is left, but never past the target's longest grant
                // from now: no policy may carry an expiry the cluster-side guard
                // would have to call impossible.
                let old = req.expires_at.unwrap_or(now);
                let expires_at = whole_second(
                    (old.max(now) + ext.duration.as_delta())
                        .min(now + req.scope.max_duration.as_delta()),
                );
                next.expires_at = Some(expires_at);
                next.warn_at = req.warning_for(expires_at, now);
                next.approvals.extend(ext.approvals);
                next.extension = None;
                AuditKind::Extended
            } else {
                next.extension = Some(ext);
                AuditKind::ExtensionApprovalRecorded
            }
        }
        (State::Pending, Event::Deny { by, note }) => {
            if !(by.is_approver || by.is_admin) {
                return Err(TransitionError::NotApprover {
                    target: req.target.clone(),
                });
            }
            end(&mut next, State::Denied, Some(by), note.clone(), now);
            AuditKind::Denied
        }
        (State::Active, Event::Deny { by, note }) if req.extension.is_some() => {
            if !(by.is_approver || by.is_admin) {
                return Err(TransitionError::NotApprover {
                    target: req.target.clone(),
                });
            }
            // Denying an extension leaves the grant as it was.
            next.extension = None;
            next.end_reason = note.clone();
            AuditKind::ExtensionDenied
        }
        (State::Pending, Event::Cancel { by }) => {
            if by.user != req.requester && !by.is_admin {
                return Err(TransitionError::NotPermitted {
                    target: req.target.clone(),
                    action: "cancel",
                });
            }
            end(&mut next, State::Cancelled, Some(by), None, now);
            AuditKind::Cancelled
        }
        (State::Pending, Event::Lapse) => {
            if now < req.approval_deadline {
                return Err(TransitionError::NotDue {
                    due: req.approval_deadline,
                });
            }
            end(&mut next, State::Lapsed, None, None, now);
            AuditKind::Lapsed
        }
        (State::Approved, Event::Applied { expires_at }) => {
            next.state = State::Active;
            next.activated_at = Some(now);
            // The policy carries `expires_at` (computed just before applying); never
            // grant more than the approved duration from now.
            let expires_at = whole_second((*expires_at).min(now + req.duration.as_delta()));
            next.expires_at = Some(expires_at);
            next.warn_at = req.warning_for(expires_at, now);
            AuditKind::Activated
        }
        (State::Approved, Event::ApplyFailed { reason }) => {
            end(&mut next, State::Failed, None, Some(reason.clone()), now);
            AuditKind::Failed
        }
        (State::Active, Event::Expire) => {
            let due = req.expires_at.unwrap_or(now);
            if now < due {
                return Err(TransitionError::NotDue { due });
            }
            end(&mut next, State::Expired, None, None, now);
            next.extension = None;
            next.warn_at = None;
            AuditKind::Expired
        }
        (State::Active, Event::WarnExpiry) => {
            let Some(due) = req.warn_at else {
                return Err(wrong("warned (its warning was already sent)"));
            };
            if now < due {
                return Err(TransitionError::NotDue { due });
            }
            next.warn_at = None;
            AuditKind::ExpiryWarned
        }
        (State::Active, Event::Revoke { by, reason }) => {
            if by.user != req.requester && !by.is_approver && !by.is_admin {
                return Err(TransitionError::NotPermitted {
                    target: req.target.clone(),
                    action: "revoke",
                });
            }
            end(&mut next, State::Revoked, Some(by), reason.clone(), now);
            next.extension = None;
            next.warn_at = None;
            AuditKind::Revoked
        }
        (State::Active, Event::Extend { by, duration }) => {
            if by.user != req.requester && !by.is_approver && !by.is_admin {
                return Err(TransitionError::NotPermitted {
                    target: req.target.clone(),
                    action: "extend",
                });
            }
            if let Some(ext) = &req.extension {
                return Err(TransitionError::ExtensionPending(ext.duration));
            }
            let expires = req.expires_at.unwrap_or(now).max(now);
            let limit = now + req.scope.max_duration.as_delta();
            if expires + duration.as_delta() > limit {
                let room = (limit - expires).num_seconds().max(0) as u64;
                return Err(TransitionError::ExtensionTooLong {
                    target: req.target.clone(),
                    max: req.scope.max_duration,
                    allowed: Ttl::from_secs(room - room % 60),
                });
            }
            next.extension = Some(Extension {
                duration: *duration,
                requested_by: by.user.clone(),
                requested_at: now,
                approvals: Vec::new(),
            });
            AuditKind::ExtensionRequested
        }
        (_, event) => return Err(wrong(past_tense(event))),
    };
    Ok(Transition {
        from: req.state,
        kind,
        request: next,
    })
}

fn missing(required: u32, have: usize) -> u32 {
    required.saturating_sub(have as u32)
}

fn check_approver(req: &AccessRequest, by: &Actor) -> Result<(), TransitionError> {
    if !by.is_approver {
        return Err(TransitionError::NotApprover {
            target: req.target.clone(),
        });
    }
    if by.user == req.requester && !req.scope.allow_self_approval {
        return Err(TransitionError::SelfApproval {
            target: req.target.clone(),
        });
    }
    Ok(())
}

fn end(
    next: &mut AccessRequest,
    state: State,
    by: Option<&Actor>,
    reason: Option<String>,
    now: DateTime<Utc>,
) {
    next.state = state;
    next.ended_by = by.map(|a| a.user.clone());
    next.end_reason = reason;
    next.ended_at = Some(now);
}

fn past_tense(event: &Event) -> &'static str {
    match event {
        Event::Approve { .. } => "approved",
        Event::Deny { .. } => "denied",
        Event::Cancel { .. } => "cancelled",
        Event::Lapse => "lapsed",
        Event::Applied { .. } => "activated",
        Event::ApplyFailed { .. } => "marked failed",
        Event::Expire => "expired",
        Event::WarnExpiry => "warned",
        Event::Revoke { .. } => "revoked",
        Event::Extend { .. } => "extended",
    }
}
