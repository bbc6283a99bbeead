use super::fixtures::t0;
use super::*;

fn user(s: &str) -> SlackUserId {
    s.parse().unwrap()
}

const REQUESTER: &str = "U0ALICE001";
const APPROVER: &str = "U01DBLEAD1";
const APPROVER2: &str = "U01DBLEAD2";

fn approver(u: &str) -> Actor {
    Actor {
        user: user(u),
        is_approver: true,
        is_admin: false,
    }
}

fn approve(u: &str) -> Event {
    Event::Approve { by: approver(u) }
}

/// The requester asks for `duration` more.
fn extend(duration: Ttl) -> Event {
    Event::Extend {
        by: requester(),
        duration,
    }
}

fn applied(expires_at: DateTime<Utc>) -> Event {
    Event::Applied { expires_at }
}

fn requester() -> Actor {
    Actor {
        user: user(REQUESTER),
        is_approver: false,
        is_admin: false,
    }
}

fn stranger() -> Actor {
    Actor {
        user: user("U0MALLORY1"),
        is_approver: false,
        is_admin: false,
    }
}

/// Alice's 30-minute request for `payments-db`, made at `t0()`, warned 5 minutes
/// before it ends.
fn base() -> fixtures::RequestBuilder {
    AccessRequest::test()
        .seed(7)
        .requester(REQUESTER)
        .expiry_warning(Ttl::from_mins(5))
}

fn request(required: u32, self_ok: bool) -> AccessRequest {
    base()
        .approvals_required(required)
        .allow_self_approval(self_ok)
        .build()
}

/// A request in `state`, with the fields the lifecycle would have set on the way.
fn in_state(state: State) -> AccessRequest {
    base().in_state(state).build()
}

fn all_events() -> Vec<Event> {
    vec![
        approve(APPROVER),
        Event::Deny {
            by: approver(APPROVER),
            note: None,
        },
        Event::Cancel { by: requester() },
        Event::Lapse,
        applied(t0() + chrono::TimeDelta::hours(3)),
        Event::ApplyFailed {
            reason: "forbidden".to_owned(),
        },
        Event::Expire,
        Event::Revoke {
            by: requester(),
            reason: None,
        },
        extend(Ttl::from_mins(30)),
        Event::WarnExpiry,
        Event::Withdraw {
            reason: "policy removed outside jitbot".to_owned(),
        },
        Event::AutoApprove {
            rule: "on-call".to_owned(),
        },
        Event::BreakGlass {
            by: user(REQUESTER),
            review_within: Ttl::from_hours(24),
        },
        // Acknowledge refuses a request with no break-glass use in its own words
        // (policy_tests.rs), not by state.
        Event::Reannounce,
    ]
}

/// An event's name in the table below and in failure messages.
fn name(event: &Event) -> &'static str {
    match event {
        Event::Approve { .. } => "approve",
        Event::Deny { .. } => "deny",
        Event::Cancel { .. } => "cancel",
        Event::Lapse => "lapse",
        Event::Applied { .. } => "applied",
        Event::ApplyFailed { .. } => "apply-failed",
        Event::Expire => "expire",
        Event::WarnExpiry => "warn-expiry",
        Event::Revoke { .. } => "revoke",
        Event::Extend { .. } => "extend",
        Event::Withdraw { .. } => "withdraw",
        Event::AutoApprove { .. } => "auto-approve",
        Event::BreakGlass { .. } => "break-glass",
        Event::Acknowledge { .. } => "acknowledge",
        Event::Reannounce => "reannounce",
    }
}

/// The states no event may move a request out of.
fn is_terminal(state: State) -> bool {
    !matches!(state, State::Pending | State::Approved | State::Active)
}

/// The whole transition table: for each (state, event), the new state and audit kind,
/// or `None` where the event is refused.
fn expected(state: State, event: &str) -> Option<(State, AuditKind)> {
    use AuditKind as K;
    use State as S;
    match (state, event) {
        (S::Pending, "approve") => Some((S::Approved, K::Approved)),
        (S::Pending, "deny") => Some((S::Denied, K::Denied)),
        (S::Pending, "cancel") => Some((S::Cancelled, K::Cancelled)),
        (S::Pending, "lapse") => Some((S::Lapsed, K::Lapsed)),
        (S::Approved, "applied") => Some((S::Active, K::Activated)),
        (S::Approved, "apply-failed") => Some((S::Failed, K::Failed)),
        (S::Active, "expire") => Some((S::Expired, K::Expired)),
        (S::Active, "revoke") => Some((S::Revoked, K::Revoked)),
        (S::Active, "withdraw") => Some((S::Revoked, K::Revoked)),
        (S::Active, "extend") => Some((S::Active, K::ExtensionRequested)),
        (S::Active, "warn-expiry") => Some((S::Active, K::ExpiryWarned)),
        (S::Pending, "auto-approve") => Some((S::Approved, K::AutoApproved)),
        (S::Pending, "break-glass") => Some((S::Approved, K::BreakGlassUsed)),
        // Acknowledge and reannounce need a break-glass use, which these have not.
        _ => None,
    }
}

#[test]
fn every_state_and_event_pair_follows_the_table() {
    // Late enough that every deadline and expiry is due.
    let now = t0() + chrono::TimeDelta::hours(2);
    let mut checked = 0;
    for state in State::ALL {
        for event in all_events() {
            let req = in_state(state);
            let got = apply(&req, &event, now);
            match (expected(state, name(&event)), got) {
                (Some((to, kind)), Ok(t)) => {
                    assert_eq!(
                        (t.from, t.request.state, t.kind),
                        (state, to, kind),
                        "{state} + {}",
                        name(&event)
                    );
                    assert_eq!(t.request.version, req.version + 1);
                }
                (None, Err(TransitionError::WrongState { state: s, .. })) => assert_eq!(s, state),
                (want, got) => panic!("{state} + {}: expected {want:?}, got {got:?}", name(&event)),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 126);
}

#[test]
fn terminal_states_accept_nothing() {
    let now = t0() + chrono::TimeDelta::hours(2);
    for state in State::ALL.into_iter().filter(|s| is_terminal(*s)) {
        for event in all_events() {
            assert!(
                apply(&in_state(state), &event, now).is_err(),
                "{state} {}",
                name(&event)
            );
        }
    }
}

#[test]
fn quorum_counts_distinct_approvers() {
    let req = request(2, false);
    let now = t0();
    let one = apply(&req, &approve(APPROVER), now).unwrap();
    assert_eq!(
        (one.request.state, one.kind),
        (State::Pending, AuditKind::ApprovalRecorded)
    );
    let again = apply(&one.request, &approve(APPROVER), now);
    assert_eq!(again, Err(TransitionError::AlreadyApproved { missing: 1 }));
    let two = apply(&one.request, &approve(APPROVER2), now).unwrap();
    assert_eq!(
        (two.request.state, two.kind),
        (State::Approved, AuditKind::Approved)
    );
    assert_eq!(
        two.request.approved_by(),
        vec![user(APPROVER), user(APPROVER2)]
    );
}

#[test]
fn only_approvers_decide() {
    let req = request(1, false);
    for event in [
        Event::Approve { by: stranger() },
        Event::Deny {
            by: stranger(),
            note: None,
        },
    ] {
        let err = apply(&req, &event, t0()).unwrap_err();
        assert_eq!(err.to_string(), "you are not an approver for payments-db");
    }
    let admin = Actor {
        is_admin: true,
        ..stranger()
    };
    assert!(
        apply(
            &req,
            &Event::Deny {
                by: admin,
                note: None
            },
            t0()
        )
        .is_ok()
    );
}

#[test]
fn self_approval_only_where_allowed() {
    let me = Actor {
        is_approver: true,
        ..requester()
    };
    let err = apply(&request(1, false), &Event::Approve { by: me.clone() }, t0()).unwrap_err();
    assert!(matches!(err, TransitionError::SelfApproval { .. }));
    let ok = apply(&request(1, true), &Event::Approve { by: me }, t0()).unwrap();
    assert_eq!(ok.request.state, State::Approved);
}

#[test]
fn only_the_requester_or_an_admin_cancels() {
    let err = apply(
        &request(1, false),
        &Event::Cancel {
            by: approver(APPROVER),
        },
        t0(),
    )
    .unwrap_err();
    assert!(matches!(
        err,
        TransitionError::NotPermitted {
            action: "cancel",
            ..
        }
    ));
    let t = apply(&request(1, false), &Event::Cancel { by: requester() }, t0()).unwrap();
    assert_eq!(t.request.ended_by, Some(user(REQUESTER)));
}

#[test]
fn lapse_and_expiry_wait_for_their_time() {
    let req = request(1, false);
    let early = t0() + chrono::TimeDelta::minutes(59);
    assert!(matches!(
        apply(&req, &Event::Lapse, early),
        Err(TransitionError::NotDue { .. })
    ));
    assert!(apply(&req, &Event::Lapse, t0() + chrono::TimeDelta::hours(1)).is_ok());

    let active = in_state(State::Active);
    let before = t0() + chrono::TimeDelta::minutes(29);
    assert!(matches!(
        apply(&active, &Event::Expire, before),
        Err(TransitionError::NotDue { .. })
    ));
    let t = apply(
        &active,
        &Event::Expire,
        t0() + chrono::TimeDelta::minutes(30),
    )
    .unwrap();
    assert_eq!(
        t.request.ended_at,
        Some(t0() + chrono::TimeDelta::minutes(30))
    );
}

#[test]
fn activation_starts_the_clock() {
    let approved = in_state(State::Approved);
    let at = t0() + chrono::TimeDelta::minutes(3);
    let planned = at - chrono::TimeDelta::seconds(1) + chrono::TimeDelta::minutes(30);
    let t = apply(&approved, &applied(planned), at).unwrap();
    assert_eq!(t.request.activated_at, Some(at));
    assert_eq!(t.request.expires_at, Some(planned), "what the policy says");
    let late = at + chrono::TimeDelta::hours(1);
    let t = apply(&approved, &Event::Applied { expires_at: late }, at).unwrap();
    assert_eq!(
        t.request.expires_at,
        Some(at + chrono::TimeDelta::minutes(30)),
        "never longer than approved"
    );
}

#[test]
fn failed_apply_keeps_the_reason() {
    let t = apply(
        &in_state(State::Approved),
        &Event::ApplyFailed {
            reason: "namespace payments not found".to_owned(),
        },
        t0(),
    )
    .unwrap();
    assert_eq!(
        t.request.end_reason.as_deref(),
        Some("namespace payments not found")
    );
}

#[test]
fn revoke_by_requester_approver_or_admin_only() {
    let active = in_state(State::Active);
    let revoke = |by: Actor| Event::Revoke {
        by,
        reason: Some("done".into()),
    };
    assert!(apply(&active, &revoke(requester()), t0()).is_ok());
    assert!(apply(&active, &revoke(approver(APPROVER)), t0()).is_ok());
    let admin = Actor {
        is_admin: true,
        ..stranger()
    };
    assert!(apply(&active, &revoke(admin), t0()).is_ok());
    let err = apply(&active, &revoke(stranger()), t0()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "only the requester, payments-db's approvers or an admin may revoke this request"
    );
}

#[test]
fn extension_needs_approval_and_never_passes_the_max_from_now() {
    let active = in_state(State::Active);
    let now = t0() + chrono::TimeDelta::minutes(10);
    // expires at +30m; max 2h from now (+130m) leaves room for 1h40m.
    let err = apply(&active, &extend(Ttl::from_hours(2)), now).unwrap_err();
    assert_eq!(
        err.to_string(),
        "payments-db allows at most 2h from now; ask for 1h40m or less"
    );
    let asked = apply(&active, &extend(Ttl::from_hours(1)), now).unwrap();
    assert_eq!(
        asked.request.expires_at, active.expires_at,
        "unchanged until approved"
    );
    let twice = apply(&asked.request, &extend(Ttl::from_mins(10)), now);
    assert_eq!(
        twice,
        Err(TransitionError::ExtensionPending(Ttl::from_hours(1)))
    );
    let own = apply(
        &asked.request,
        &Event::Approve {
            by: Actor {
                is_approver: true,
                ..requester()
            },
        },
        now,
    );
    assert!(matches!(own, Err(TransitionError::SelfApproval { .. })));
    let done = apply(&asked.request, &approve(APPROVER), now).unwrap();
    assert_eq!(done.kind, AuditKind::Extended);
    assert_eq!(done.request.state, State::Active);
    assert_eq!(
        done.request.expires_at,
        Some(t0() + chrono::TimeDelta::minutes(90))
    );
    assert!(done.request.extension.is_none());
}

#[test]
fn denying_an_extension_keeps_the_grant() {
    let active = in_state(State::Active);
    let asked = apply(&active, &extend(Ttl::from_mins(30)), t0()).unwrap();
    let denied = apply(
        &asked.request,
        &Event::Deny {
            by: approver(APPROVER),
            note: Some("not now".into()),
        },
        t0(),
    )
    .unwrap();
    assert_eq!(
        (denied.request.state, denied.kind),
        (State::Active, AuditKind::ExtensionDenied)
    );
    assert_eq!(denied.request.expires_at, active.expires_at);
    assert!(denied.request.extension.is_none());
}

#[test]
fn the_expiry_warning_comes_once_before_expiry() {
    let approved = in_state(State::Approved);
    let t = apply(
        &approved,
        &applied(t0() + chrono::TimeDelta::minutes(30)),
        t0(),
    )
    .unwrap();
    let warn_at = t0() + chrono::TimeDelta::minutes(25);
    assert_eq!(t.request.warn_at, Some(warn_at));
    assert_eq!(
        t.request.due_at(),
        Some(warn_at),
        "the timer fires for the warning first"
    );
    let early = apply(
        &t.request,
        &Event::WarnExpiry,
        warn_at - chrono::TimeDelta::seconds(1),
    );
    assert!(matches!(early, Err(TransitionError::NotDue { .. })));
    let warned = apply(&t.request, &Event::WarnExpiry, warn_at).unwrap();
    assert_eq!(warned.kind, AuditKind::ExpiryWarned);
    assert_eq!(
        warned.request.due_at(),
        t.request.expires_at,
        "then for the expiry"
    );
    assert!(
        apply(&warned.request, &Event::WarnExpiry, warn_at).is_err(),
        "only once"
    );
    // A grant shorter than the warning gets none.
    let mut short = in_state(State::Approved);
    short.duration = Ttl::from_mins(5);
    let t = apply(&short, &applied(t0() + chrono::TimeDelta::minutes(5)), t0()).unwrap();
    assert_eq!(t.request.warn_at, None);
}

#[test]
fn whoever_asked_for_an_extension_cannot_approve_it_alone() {
    let active = in_state(State::Active);
    let by_approver = Event::Extend {
        by: approver(APPROVER),
        duration: Ttl::from_mins(30),
    };
    let asked = apply(&active, &by_approver, t0()).unwrap();
    let own = apply(&asked.request, &approve(APPROVER), t0());
    assert_eq!(
        own,
        Err(TransitionError::SelfApproval {
            target: active.target.clone()
        })
    );
    let other = apply(&asked.request, &approve(APPROVER2), t0()).unwrap();
    assert_eq!(other.kind, AuditKind::Extended);
}

#[test]
fn each_extension_is_its_own_round_and_older_rounds_are_out_of_date() {
    let pending = in_state(State::Pending);
    assert_eq!(Round::of(&pending), Round::Request);
    assert_eq!(Round::Request.check(&pending), Ok(()));
    assert_eq!(
        Round::Extension(3).check(&pending),
        Err(TransitionError::OutOfDate {
            id: pending.id.clone()
        })
    );
    let active = in_state(State::Active);
    let first = apply(&active, &extend(Ttl::from_mins(30)), t0()).unwrap();
    let round = Round::of(&first.request);
    assert_eq!(round, Round::Extension(first.request.version));
    // The request's own round (the first card, a replayed click on it) is over.
    assert!(matches!(
        Round::Request.check(&first.request),
        Err(TransitionError::OutOfDate { .. })
    ));
    assert_eq!(round.check(&first.request), Ok(()));
    let denied = apply(
        &first.request,
        &Event::Deny {
            by: approver(APPROVER),
            note: None,
        },
        t0(),
    )
    .unwrap();
    let second = apply(&denied.request, &extend(Ttl::from_hours(1)), t0()).unwrap();
    assert_ne!(
        Round::of(&second.request),
        round,
        "a new extension, a new round"
    );
    assert!(matches!(
        round.check(&second.request),
        Err(TransitionError::OutOfDate { .. })
    ));
    assert!(
        TransitionError::OutOfDate {
            id: active.id.clone()
        }
        .to_string()
        .starts_with("this card is out of date")
    );
}

#[test]
fn jitbot_withdraws_an_active_grant_with_its_reason() {
    let active = in_state(State::Active);
    let reason = "policy removed outside jitbot".to_owned();
    let t = apply(
        &active,
        &Event::Withdraw {
            reason: reason.clone(),
        },
        t0(),
    )
    .unwrap();
    assert_eq!(
        (t.request.state, t.kind),
        (State::Revoked, AuditKind::Revoked)
    );
    assert_eq!(t.request.ended_by, None);
    assert_eq!(t.request.end_reason, Some(reason));
    assert_eq!(t.request.due_at(), None);
}

#[test]
fn audit_kind_all_lists_every_kind_once_in_order() {
    // Exhaustive: a new kind does not compile here until it has a place; give it
    // the next one and put it at the end of `ALL`.
    fn place(k: AuditKind) -> usize {
        use AuditKind::*;
        match k {
            Requested => 0,
            ApprovalRecorded => 1,
            Approved => 2,
            Denied => 3,
            Lapsed => 4,
            Cancelled => 5,
            Activated => 6,
            Failed => 7,
            Expired => 8,
            Revoked => 9,
            ExtensionRequested => 10,
            ExtensionApprovalRecorded => 11,
            ExtensionDenied => 12,
            Extended => 13,
            ExpiryWarned => 14,
            PolicyRemoved => 15,
            PolicyReapplied => 16,
            RevokeFailing => 17,
            RecordRejected => 18,
            AutoApproved => 19,
            BreakGlassUsed => 20,
            BreakGlassAcknowledged => 21,
            BreakGlassUnacknowledged => 22,
        }
    }
    for (i, k) in AuditKind::ALL.iter().enumerate() {
        assert_eq!(place(*k), i, "{k:?}");
    }
    assert_eq!(
        place(AuditKind::BreakGlassUnacknowledged) + 1,
        AuditKind::ALL.len()
    );
}
