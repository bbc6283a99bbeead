//! The lifecycle's policy arrows: approval by a rule, break-glass, and the review of
//! a break-glass use (acknowledged once, by an approver other than its user, and
//! announced again every review window until then, whatever the grant's state).

use chrono::TimeDelta;

use super::fixtures::t0;
use super::*;

const REQUESTER: &str = "U0ALICE001";
const APPROVER: &str = "U01DBLEAD1";

fn user(s: &str) -> SlackUserId {
    s.parse().unwrap()
}

fn actor(u: &str, is_approver: bool) -> Actor {
    Actor {
        user: user(u),
        is_approver,
        is_admin: false,
    }
}

fn pending() -> AccessRequest {
    AccessRequest::test()
        .seed(9)
        .requester(REQUESTER)
        .expiry_warning(Ttl::from_secs(0))
        .pending()
        .build()
}

fn glass() -> Event {
    Event::BreakGlass {
        by: user(REQUESTER),
        review_within: Ttl::from_hours(24),
    }
}

/// A break-glass use made at `t0()`, applied and active for its 30 minutes.
fn broken() -> AccessRequest {
    let t = apply(&pending(), &glass(), t0()).unwrap();
    let expires = t0() + TimeDelta::minutes(30);
    apply(
        &t.request,
        &Event::Applied {
            expires_at: expires,
        },
        t0(),
    )
    .unwrap()
    .request
}

#[test]
fn a_rule_approves_a_pending_request_and_is_named() {
    let t = apply(
        &pending(),
        &Event::AutoApprove {
            rule: "on-call".to_owned(),
        },
        t0(),
    )
    .unwrap();
    assert_eq!(
        (t.request.state, t.kind),
        (State::Approved, AuditKind::AutoApproved)
    );
    assert_eq!(t.request.approved_by_rule.as_deref(), Some("on-call"));
    assert!(t.request.approvals.is_empty(), "nobody clicked");
}

#[test]
fn only_the_requester_breaks_the_glass_and_a_review_is_then_due() {
    let other = Event::BreakGlass {
        by: user("U0MALLORY1"),
        review_within: Ttl::from_hours(24),
    };
    assert!(matches!(
        apply(&pending(), &other, t0()),
        Err(TransitionError::NotPermitted { .. })
    ));
    let t = apply(&pending(), &glass(), t0()).unwrap();
    assert_eq!(
        (t.request.state, t.kind),
        (State::Approved, AuditKind::BreakGlassUsed)
    );
    let bg = t.request.break_glass.as_ref().unwrap();
    assert_eq!(bg.announce_at, Some(t0() + TimeDelta::hours(24)));
    assert!(!bg.acknowledged());
}

#[test]
fn an_unacknowledged_use_is_announced_again_each_window_even_after_it_ended() {
    let active = broken();
    // The expiry comes first; the review stays due after it.
    assert_eq!(active.due_at(), Some(t0() + TimeDelta::minutes(30)));
    let ended = apply(&active, &Event::Expire, t0() + TimeDelta::minutes(30))
        .unwrap()
        .request;
    assert_eq!(ended.due_at(), Some(t0() + TimeDelta::hours(24)));
    assert!(matches!(
        apply(&ended, &Event::Reannounce, t0() + TimeDelta::hours(23)),
        Err(TransitionError::NotDue { .. })
    ));
    let late = t0() + TimeDelta::hours(30);
    let again = apply(&ended, &Event::Reannounce, late).unwrap();
    assert_eq!(again.kind, AuditKind::BreakGlassUnacknowledged);
    assert_eq!(again.request.state, State::Expired);
    let bg = again.request.break_glass.as_ref().unwrap();
    assert_eq!(bg.announced, 1);
    // Late by six hours: announced once, next a whole window from now.
    assert_eq!(bg.announce_at, Some(late + TimeDelta::hours(24)));
}

#[test]
fn an_approver_other_than_its_user_acknowledges_it_once() {
    let active = broken();
    assert!(matches!(
        apply(
            &active,
            &Event::Acknowledge {
                by: actor("U0MALLORY1", false)
            },
            t0()
        ),
        Err(TransitionError::NotApprover { .. })
    ));
    assert_eq!(
        apply(
            &active,
            &Event::Acknowledge {
                by: actor(REQUESTER, true)
            },
            t0()
        )
        .unwrap_err(),
        TransitionError::SelfAcknowledge
    );
    let at = t0() + TimeDelta::minutes(10);
    let t = apply(
        &active,
        &Event::Acknowledge {
            by: actor(APPROVER, true),
        },
        at,
    )
    .unwrap();
    assert_eq!(
        (t.request.state, t.kind),
        (State::Active, AuditKind::BreakGlassAcknowledged)
    );
    let bg = t.request.break_glass.as_ref().unwrap();
    assert_eq!(bg.acknowledged_by, Some(user(APPROVER)));
    assert_eq!(bg.announce_at, None);
    assert_eq!(
        t.request.due_at(),
        t.request.expires_at,
        "no review timer left"
    );
    assert_eq!(
        apply(
            &t.request,
            &Event::Acknowledge {
                by: actor(APPROVER, true)
            },
            at
        )
        .unwrap_err(),
        TransitionError::AlreadyAcknowledged { by: user(APPROVER) }
    );
    assert!(matches!(
        apply(&t.request, &Event::Reannounce, t0() + TimeDelta::days(3)),
        Err(TransitionError::WrongState { .. })
    ));
}

#[test]
fn a_request_taken_the_usual_way_has_nothing_to_acknowledge() {
    let req = AccessRequest::test()
        .seed(3)
        .requester(REQUESTER)
        .active()
        .build();
    assert!(matches!(
        apply(
            &req,
            &Event::Acknowledge {
                by: actor(APPROVER, true)
            },
            t0()
        ),
        Err(TransitionError::NotBreakGlass { .. })
    ));
}
