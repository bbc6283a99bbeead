//! Approval policy: who may request a target, what a reason must say, when a request
//! is approved without a click (auto-approval rules), the emergency path
//! (break-glass) and the caps on active grants. Every rule is a pure function of the
//! catalog, the person (with the user groups they are in, which the caller reads from
//! Slack), the duration and `now`, so the same answer comes from `/jit request`,
//! `jitbot explain` and the tests.
//!
//! Auto-approval never widens a grant: a rule approves only up to its own
//! `max_duration`, which the catalog check keeps within the target's, and the
//! evaluation checks both again.

mod hours;
mod overlap;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use regex::Regex;

use crate::core::catalog::Target;
use crate::core::command::Reason;
use crate::core::ids::{SlackGroupId, SlackUserId};
use crate::core::ttl::Ttl;

pub use hours::{Days, Hours, LocalTime, parse_tz};
pub use overlap::overlaps;

/// Slack users named directly, and Slack user groups whose members count too.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct People {
    pub users: Vec<SlackUserId>,
    pub groups: Vec<SlackGroupId>,
}

impl People {
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.groups.is_empty()
    }

    /// Whether `who` is one of these people, directly or through a group.
    pub fn includes(&self, who: &Membership) -> bool {
        self.users.contains(&who.user) || self.groups.iter().any(|g| who.groups.contains(g))
    }

    /// The groups among these that `who` could not be looked up in.
    fn unreadable<'a>(&'a self, who: &'a Membership) -> impl Iterator<Item = &'a SlackGroupId> {
        self.groups.iter().filter(|g| who.unreadable.contains(*g))
    }
}

/// One person and the user groups they are in, among the groups a target's rules
/// name. The caller reads the groups from Slack; a group it could not read is in
/// `unreadable` and counts as not containing them (fail closed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    pub user: SlackUserId,
    pub groups: BTreeSet<SlackGroupId>,
    pub unreadable: BTreeSet<SlackGroupId>,
}

impl Membership {
    /// Someone known by their user id only (no groups looked up).
    pub fn direct(user: SlackUserId) -> Self {
        Membership {
            user,
            groups: BTreeSet::new(),
            unreadable: BTreeSet::new(),
        }
    }
}

/// The user groups whose members a target's rules depend on: its requesters' and
/// its auto-approval rules'.
pub fn groups_named(target: &Target) -> Vec<SlackGroupId> {
    let mut out: Vec<SlackGroupId> = target.requesters.groups.clone();
    for rule in &target.auto_approve {
        out.extend(rule.who.groups.iter().cloned());
    }
    out.sort();
    out.dedup();
    out
}

/// `targets[].reason_pattern`, with the hint shown when a reason does not match.
#[derive(Clone, Debug)]
pub struct ReasonRule {
    pub pattern: Regex,
    pub hint: String,
}

impl PartialEq for ReasonRule {
    fn eq(&self, other: &Self) -> bool {
        self.pattern.as_str() == other.pattern.as_str() && self.hint == other.hint
    }
}

impl Eq for ReasonRule {}

/// One checked auto-approval rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutoRule {
    pub name: String,
    pub who: People,
    /// At most the target's `max_duration` (the catalog check sees to it).
    pub max_duration: Ttl,
    /// `None`: at any time.
    pub hours: Option<Hours>,
}

/// A target's break-glass path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakGlass {
    pub max_duration: Ttl,
    pub review_within: Ttl,
}

/// Why a person may not request a target; `Display` is their sentence.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotAllowed {
    #[error("you cannot request {target}; ask in <#{channel}> if you need it")]
    NotListed { target: String, channel: String },
    #[error(
        "jitbot cannot read the Slack user group(s) that may request {target} right now, so it cannot tell whether you are in them; please try again in a minute"
    )]
    GroupsUnreadable { target: String },
}

/// Whether `who` may request `target`: anyone in the catalog when the target names
/// no requesters, else the people it names.
pub fn may_request(target: &Target, who: &Membership) -> Result<(), NotAllowed> {
    if target.requesters.is_empty() || target.requesters.includes(who) {
        return Ok(());
    }
    if target.requesters.unreadable(who).next().is_some() {
        return Err(NotAllowed::GroupsUnreadable {
            target: target.name.to_string(),
        });
    }
    Err(NotAllowed::NotListed {
        target: target.name.to_string(),
        channel: target.approval_channel.to_string(),
    })
}

/// Whether `reason` satisfies the target's `reason_pattern`; the error is the hint.
pub fn check_reason(target: &Target, reason: &Reason) -> Result<(), String> {
    match &target.reason_rule {
        Some(rule) if !rule.pattern.is_match(reason.as_str()) => Err(rule.hint.clone()),
        _ => Ok(()),
    }
}

/// What the auto-approval rules say of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AutoApproval {
    /// Approved at once by this rule (the first that matches, in catalog order).
    By(String),
    /// No rule matches: a person must approve. One line per rule, saying why not.
    NoRule(Vec<(String, String)>),
}

/// Which of the target's rules, if any, approves a request by `who` for `duration`
/// made at `now`. A rule matches when the person is in its `who`, the duration is
/// within its `max_duration` (and the target's), and `now` is inside its hours.
pub fn auto_approval(
    target: &Target,
    who: &Membership,
    duration: Ttl,
    now: DateTime<Utc>,
) -> AutoApproval {
    let mut why_not = Vec::new();
    for rule in &target.auto_approve {
        match rule_verdict(target, rule, who, duration, now) {
            Ok(()) => return AutoApproval::By(rule.name.clone()),
            Err(why) => why_not.push((rule.name.clone(), why)),
        }
    }
    AutoApproval::NoRule(why_not)
}

fn rule_verdict(
    target: &Target,
    rule: &AutoRule,
    who: &Membership,
    duration: Ttl,
    now: DateTime<Utc>,
) -> Result<(), String> {
    if !rule.who.includes(who) {
        if let Some(group) = rule.who.unreadable(who).next() {
            return Err(format!("user group {group} could not be read"));
        }
        return Err(format!("{} is not in its `who`", who.user));
    }
    let cap = rule.max_duration.min(target.max_duration);
    if duration > cap {
        return Err(format!("{duration} is longer than its {cap}"));
    }
    if let Some(hours) = &rule.hours
        && !hours.contains(now)
    {
        return Err(format!("{} is outside {hours}", hours.local(now)));
    }
    Ok(())
}

/// Why break-glass is refused for a request; `Display` is the requester's sentence.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BreakGlassRefusal {
    #[error("{target} has no break-glass access; use `/jit request` and ask its approvers")]
    NotOffered { target: String },
    #[error("break-glass on {target} lasts at most {max}; ask for {max} or less")]
    TooLong { target: String, max: Ttl },
}

/// Whether `target` offers break-glass for `duration`.
pub fn break_glass(target: &Target, duration: Ttl) -> Result<BreakGlass, BreakGlassRefusal> {
    let Some(bg) = target.break_glass else {
        return Err(BreakGlassRefusal::NotOffered {
            target: target.name.to_string(),
        });
    };
    let max = bg.max_duration.min(target.max_duration);
    if duration > max {
        return Err(BreakGlassRefusal::TooLong {
            target: target.name.to_string(),
            max,
        });
    }
    Ok(bg)
}

/// How many grants are active now: on the target asked for, and of the person
/// asking. The store counts them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ActiveCounts {
    pub on_target: usize,
    pub of_requester: usize,
}

/// Why one more grant would go over a cap; `Display` is the sentence.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CapReached {
    #[error(
        "{target} already has {active} active grant(s), its limit (max_active_grants); try again when one ends, or ask an approver to revoke one"
    )]
    Target { target: String, active: usize },
    #[error(
        "you already hold {active} active grant(s), the most one person may (access.max_active_per_requester); revoke one you no longer need with `/jit revoke <id>`"
    )]
    Requester { active: usize },
}

/// Whether one more grant fits `target.max_active_grants` and
/// `max_active_per_requester` (0: no cap) given what is active now.
pub fn check_caps(
    target: &Target,
    max_active_per_requester: u32,
    active: ActiveCounts,
) -> Result<(), CapReached> {
    let cap = target.max_active_grants as usize;
    if cap > 0 && active.on_target >= cap {
        return Err(CapReached::Target {
            target: target.name.to_string(),
            active: active.on_target,
        });
    }
    let cap = max_active_per_requester as usize;
    if cap > 0 && active.of_requester >= cap {
        return Err(CapReached::Requester {
            active: active.of_requester,
        });
    }
    Ok(())
}
