//! The transition function: one event applied to one request at one instant.
//!
//! [`apply`] is the single entry; it hands the event to the function for the
//! request's state, which names every arrow out of that state. Ended states have
//! none.

use chrono::{DateTime, Utc};

use super::{
    AccessRequest, Actor, Approval, AuditKind, BreakGlassUse, Event, Extension, State, Transition,
    TransitionError, whole_second,
};
use crate::core::ttl::Ttl;

/// Applies one event. Pure: the same inputs always give the same answer.
pub fn apply(
    req: &AccessRequest,
    event: &Event,
    now: DateTime<Utc>,
) -> Result<Transition, TransitionError> {
    let mut next = req.clone();
    next.version += 1;
    let kind = match event {
        Event::Acknowledge { by } => acknowledge(req, by, &mut next, now)?,
        Event::Reannounce => reannounce(req, &mut next, now)?,
        _ => by_state(req, event, &mut next, now)?,
    };
    Ok(Transition {
        from: req.state,
        kind,
        request: next,
    })
}

/// The arrows of the lifecycle, by the request's state.
fn by_state(
    req: &AccessRequest,
    event: &Event,
    next: &mut AccessRequest,
    now: DateTime<Utc>,
) -> Result<AuditKind, TransitionError> {
    Ok(match req.state {
        State::Pending => from_pending(req, event, next, now)?,
        State::Approved => from_approved(req, event, next, now)?,
        State::Active => from_active(req, event, next, now)?,
        State::Denied
        | State::Lapsed
        | State::Cancelled
        | State::Failed
        | State::Expired
        | State::Revoked => return Err(wrong_state(req, past_tense(event))),
    })
}

/// An approver (or admin) other than the requester acknowledges a break-glass use,
/// in whatever state the grant is now: a use is reviewed after it ended too.
fn acknowledge(
    req: &AccessRequest,
    by: &Actor,
    next: &mut AccessRequest,
    now: DateTime<Utc>,
) -> Result<AuditKind, TransitionError> {
    let Some(bg) = &req.break_glass else {
        return Err(TransitionError::NotBreakGlass { id: req.id.clone() });
    };
    if let Some(earlier) = &bg.acknowledged_by {
        return Err(TransitionError::AlreadyAcknowledged {
            by: earlier.clone(),
        });
    }
    check_decider(req, by)?;
    if by.user == req.requester {
        return Err(TransitionError::SelfAcknowledge);
    }
    let mut bg = bg.clone();
    bg.acknowledged_by = Some(by.user.clone());
    bg.acknowledged_at = Some(now);
    bg.announce_at = None;
    next.break_glass = Some(bg);
    Ok(AuditKind::BreakGlassAcknowledged)
}

/// An unacknowledged break-glass use whose review window passed again.
fn reannounce(
    req: &AccessRequest,
    next: &mut AccessRequest,
    now: DateTime<Utc>,
) -> Result<AuditKind, TransitionError> {
    let Some(bg) = req.break_glass.as_ref().filter(|bg| !bg.acknowledged()) else {
        return Err(wrong_state(
            req,
            "announced again (no break-glass use waits for review)",
        ));
    };
    let Some(due) = bg.announce_at else {
        return Err(wrong_state(req, "announced again (no announcement is due)"));
    };
    if now < due {
        return Err(TransitionError::NotDue { due });
    }
    let mut bg = bg.clone();
    bg.announced += 1;
    // A whole window from now: a sweep that ran late announces once, not once per
    // window it missed.
    bg.announce_at = Some(now + bg.review_within.as_delta());
    next.break_glass = Some(bg);
    Ok(AuditKind::BreakGlassUnacknowledged)
}

/// Pending: an approval towards the quorum, a denial, the requester's cancel, or
/// the approval deadline passing.
fn from_pending(
    req: &AccessRequest,
    event: &Event,
    next: &mut AccessRequest,
    now: DateTime<Utc>,
) -> Result<AuditKind, TransitionError> {
    match event {
        Event::Approve { by } => approve(req, by, next, now),
        Event::Deny { by, note } => {
            check_decider(req, by)?;
            end(next, State::Denied, Some(by), note.clone(), now);
            Ok(AuditKind::Denied)
        }
        Event::Cancel { by } => {
            if by.user != req.requester && !by.is_admin {
                return Err(TransitionError::NotPermitted {
                    target: req.target.clone(),
                    action: "cancel",
                });
            }
            end(next, State::Cancelled, Some(by), None, now);
            Ok(AuditKind::Cancelled)
        }
        Event::AutoApprove { rule } => {
            next.state = State::Approved;
            next.approved_by_rule = Some(rule.clone());
            Ok(AuditKind::AutoApproved)
        }
        Event::BreakGlass { by, review_within } => {
            if *by != req.requester {
                return Err(TransitionError::NotPermitted {
                    target: req.target.clone(),
                    action: "break the glass on",
                });
            }
            next.state = State::Approved;
            next.break_glass = Some(BreakGlassUse {
                used_at: now,
                review_within: *review_within,
                announce_at: Some(now + review_within.as_delta()),
                announced: 0,
                acknowledged_by: None,
                acknowledged_at: None,
            });
            Ok(AuditKind::BreakGlassUsed)
        }
        Event::Lapse => {
            if now < req.approval_deadline {
                return Err(TransitionError::NotDue {
                    due: req.approval_deadline,
                });
            }
            end(next, State::Lapsed, None, None, now);
            Ok(AuditKind::Lapsed)
        }
        other => Err(wrong_state(req, past_tense(other))),
    }
}

/// One approval of a pending request; the last one the quorum needs approves it.
fn approve(
    req: &AccessRequest,
    by: &Actor,
    next: &mut AccessRequest,
    now: DateTime<Utc>,
) -> Result<AuditKind, TransitionError> {
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
        Ok(AuditKind::Approved)
    } else {
        Ok(AuditKind::ApprovalRecorded)
    }
}

/// Approved: the policy went in (or applying it kept failing).
fn from_approved(
    req: &AccessRequest,
    event: &Event,
    next: &mut AccessRequest,
    now: DateTime<Utc>,
) -> Result<AuditKind, TransitionError> {
    match event {
        Event::Applied { expires_at } => {
            next.state = State::Active;
            next.activated_at = Some(now);
            // The policy carries `expires_at` (computed just before applying); never
            // grant more than the approved duration from now.
            let expires_at = whole_second((*expires_at).min(now + req.duration.as_delta()));
            next.expires_at = Some(expires_at);
            next.warn_at = req.warning_for(expires_at, now);
            Ok(AuditKind::Activated)
        }
        Event::ApplyFailed { reason } => {
            end(next, State::Failed, None, Some(reason.clone()), now);
            Ok(AuditKind::Failed)
        }
        other => Err(wrong_state(req, past_tense(other))),
    }
}

/// Active: expiry and its warning, revocation, and an extension's request and
/// decision.
fn from_active(
    req: &AccessRequest,
    event: &Event,
    next: &mut AccessRequest,
    now: DateTime<Utc>,
) -> Result<AuditKind, TransitionError> {
    match event {
        Event::Approve { by } => approve_extension(req, by, next, now),
        Event::Deny { by, note } if req.extension.is_some() => {
            check_decider(req, by)?;
            // Denying an extension leaves the grant as it was.
            next.extension = None;
            next.end_reason = note.clone();
            Ok(AuditKind::ExtensionDenied)
        }
        Event::Expire => {
            let due = req.expires_at.unwrap_or(now);
            if now < due {
                return Err(TransitionError::NotDue { due });
            }
            end(next, State::Expired, None, None, now);
            next.extension = None;
            next.warn_at = None;
            Ok(AuditKind::Expired)
        }
        Event::WarnExpiry => {
            let Some(due) = req.warn_at else {
                return Err(wrong_state(req, "warned (its warning was already sent)"));
            };
            if now < due {
                return Err(TransitionError::NotDue { due });
            }
            next.warn_at = None;
            Ok(AuditKind::ExpiryWarned)
        }
        Event::Revoke { by, reason } => {
            check_holder(req, by, "revoke")?;
            end(next, State::Revoked, Some(by), reason.clone(), now);
            next.extension = None;
            next.warn_at = None;
            Ok(AuditKind::Revoked)
        }
        Event::Extend { by, duration } => request_extension(req, by, *duration, next, now),
        Event::Withdraw { reason } => {
            end(next, State::Revoked, None, Some(reason.clone()), now);
            next.extension = None;
            next.warn_at = None;
            Ok(AuditKind::Revoked)
        }
        other => Err(wrong_state(req, past_tense(other))),
    }
}

/// One approval of an Active grant's waiting extension; the last one the quorum
/// needs moves `expires_at`.
fn approve_extension(
    req: &AccessRequest,
    by: &Actor,
    next: &mut AccessRequest,
    now: DateTime<Utc>,
) -> Result<AuditKind, TransitionError> {
    let Some(ext) = &req.extension else {
        return Err(wrong_state(
            req,
            "approved again (it has no extension waiting)",
        ));
    };
    check_approver(req, by)?;
    // Whoever asked for the extension counts as its requester: an approver who asked
    // for more time on someone else's grant cannot approve it alone.
    if by.user == ext.requested_by && !req.scope.allow_self_approval {
        return Err(TransitionError::SelfApproval {
            target: req.target.clone(),
        });
    }
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
    if ext.approvals.len() < req.scope.approvals_required as usize {
        next.extension = Some(ext);
        return Ok(AuditKind::ExtensionApprovalRecorded);
    }
    // Added to what is left, but never past the target's longest grant from now: no
    // policy may carry an expiry the cluster-side guard would have to call impossible.
    let old = req.expires_at.unwrap_or(now);
    let expires_at = whole_second(
        (old.max(now) + ext.duration.as_delta()).min(now + req.scope.max_duration.as_delta()),
    );
    next.expires_at = Some(expires_at);
    next.warn_at = req.warning_for(expires_at, now);
    next.approvals.extend(ext.approvals);
    next.extension = None;
    Ok(AuditKind::Extended)
}

/// An Active grant's holder (or an approver or admin) asks for `duration` more;
/// it waits for approval, and never reaches past the target's longest grant.
fn request_extension(
    req: &AccessRequest,
    by: &Actor,
    duration: Ttl,
    next: &mut AccessRequest,
    now: DateTime<Utc>,
) -> Result<AuditKind, TransitionError> {
    check_holder(req, by, "extend")?;
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
        duration,
        requested_by: by.user.clone(),
        requested_at: now,
        approvals: Vec::new(),
        round: next.version,
    });
    Ok(AuditKind::ExtensionRequested)
}

fn wrong_state(req: &AccessRequest, action: &'static str) -> TransitionError {
    TransitionError::WrongState {
        id: req.id.clone(),
        state: req.state,
        action,
    }
}

fn missing(required: u32, have: usize) -> u32 {
    required.saturating_sub(have as u32)
}

/// Who may deny a request or an extension: an approver or an admin.
fn check_decider(req: &AccessRequest, by: &Actor) -> Result<(), TransitionError> {
    if !(by.is_approver || by.is_admin) {
        return Err(TransitionError::NotApprover {
            target: req.target.clone(),
        });
    }
    Ok(())
}

/// Who may revoke or extend a grant: its requester, an approver or an admin.
fn check_holder(
    req: &AccessRequest,
    by: &Actor,
    action: &'static str,
) -> Result<(), TransitionError> {
    if by.user != req.requester && !by.is_approver && !by.is_admin {
        return Err(TransitionError::NotPermitted {
            target: req.target.clone(),
            action,
        });
    }
    Ok(())
}

/// Who may approve: a listed approver, and not the requester unless the target
/// allows self-approval.
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
        Event::Withdraw { .. } => "withdrawn",
        Event::AutoApprove { .. } => "approved by a rule",
        Event::BreakGlass { .. } => "taken by break-glass",
        Event::Acknowledge { .. } => "acknowledged",
        Event::Reannounce => "announced again",
    }
}
