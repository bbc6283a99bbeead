//! Checking a target's approval policy: who may request it, its reason pattern, its
//! auto-approval rules (durations within the target's, hours with a real time zone,
//! no two rules that could both match the same person at the same time) and its
//! break-glass path.

use regex::Regex;

use super::Problems;
use crate::core::catalog::{AutoApproveConfig, TargetConfig};
use crate::core::ids::{SlackGroupId, SlackUserId};
use crate::core::policy::{
    AutoRule, BreakGlass, Days, Hours, LocalTime, People, ReasonRule, overlaps, parse_tz,
};
use crate::core::ttl::Ttl;

/// Longest reason pattern accepted, in bytes, and the most memory its compiled form
/// may take: a pattern is configuration, but a huge one is a mistake.
const PATTERN_MAX: usize = 1000;
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// Slack user ids (`U…`, `W…`) and user-group ids (`S…`) under `path`; the ones
/// that parse are kept even when others do not.
pub(super) fn check_people(path: &str, ids: &[String], p: &mut Problems) -> People {
    let mut people = People::default();
    for (i, id) in ids.iter().enumerate() {
        let at = format!("{path}[{i}]");
        if id.starts_with('S') {
            people
                .groups
                .extend(p.check(at, id.parse::<SlackGroupId>()));
        } else {
            let user = id
                .parse::<SlackUserId>()
                .map_err(|e| format!("{e}; user groups look like `S0614TZR7`"));
            people.users.extend(p.check(at, user));
        }
    }
    people
}

/// `reason_pattern` (a regular expression) and its `reason_hint`.
pub(super) fn check_reason_rule(
    path: &str,
    t: &TargetConfig,
    p: &mut Problems,
) -> Option<Option<ReasonRule>> {
    let pattern = t.reason_pattern.trim();
    if pattern.is_empty() {
        if !t.reason_hint.trim().is_empty() {
            p.add(
                format!("{path}.reason_hint"),
                "is set without reason_pattern; add the pattern it explains, or remove it",
            );
        }
        return Some(None);
    }
    if pattern.len() > PATTERN_MAX {
        p.add(
            format!("{path}.reason_pattern"),
            format!("is {} bytes; keep it under {PATTERN_MAX}", pattern.len()),
        );
        return None;
    }
    let compiled = regex::RegexBuilder::new(pattern)
        .size_limit(PATTERN_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("is not a regular expression: {}", one_line(&e.to_string())));
    let compiled: Option<Regex> = p.check(format!("{path}.reason_pattern"), compiled);
    let hint = match t.reason_hint.trim() {
        "" => format!("the reason must match `{pattern}` (for example a ticket id)"),
        hint => hint.to_owned(),
    };
    Some(Some(ReasonRule {
        pattern: compiled?,
        hint,
    }))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A duration key of a rule: parses, is not 0, and is within the target's longest grant.
fn check_rule_duration(
    at: String,
    text: &str,
    target_max: Option<Ttl>,
    p: &mut Problems,
) -> Option<Ttl> {
    let d = p.check(at.clone(), text.parse::<Ttl>())?;
    if d.as_secs() == 0 {
        p.add(at, "must be more than 0s");
        return None;
    }
    if let Some(max) = target_max
        && d > max
    {
        p.add(
            at,
            format!("{d} is longer than the target's max_duration ({max}); a rule never grants more than the target allows"),
        );
        return None;
    }
    Some(d)
}

/// `auto_approve`: each rule checked, names unique, and no two rules that can both
/// match one person at one time.
pub(super) fn check_auto_approve(
    path: &str,
    t: &TargetConfig,
    target_max: Option<Ttl>,
    p: &mut Problems,
) -> Option<Vec<AutoRule>> {
    let mut rules = Vec::new();
    let mut ok = true;
    for (i, rule) in t.auto_approve.iter().enumerate() {
        let at = format!("{path}.auto_approve[{i}]");
        match check_rule(&at, rule, target_max, p) {
            Some(r) => {
                if rules.iter().any(|o: &AutoRule| o.name == r.name) {
                    p.add(
                        format!("{at}.name"),
                        format!(
                            "`{}` is used by an earlier rule of this target; names must be unique",
                            r.name
                        ),
                    );
                    ok = false;
                }
                if let Some((j, other)) = rules
                    .iter()
                    .enumerate()
                    .find(|(_, o): &(usize, &AutoRule)| overlaps(o, &r))
                {
                    p.add(
                        at.clone(),
                        format!(
                            "overlaps rule `{}` ({path}.auto_approve[{j}]): both can match the same person at the same time, so only the first would ever apply; give them different `who` or hours that do not meet",
                            other.name
                        ),
                    );
                    ok = false;
                }
                rules.push(r);
            }
            None => ok = false,
        }
    }
    ok.then_some(rules)
}

fn check_rule(
    at: &str,
    rule: &AutoApproveConfig,
    target_max: Option<Ttl>,
    p: &mut Problems,
) -> Option<AutoRule> {
    let name = rule.name.trim();
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !name_ok {
        p.add(
            format!("{at}.name"),
            format!("`{name}` is not a rule name; use 1 to 64 letters, digits, `-` or `_` (it appears in the audit log)"),
        );
    }
    if rule.who.is_empty() {
        p.add(
            format!("{at}.who"),
            "is empty; list the Slack users (`U…`) or user groups (`S…`, e.g. an on-call rotation) the rule approves",
        );
    }
    let who = check_people(&format!("{at}.who"), &rule.who, p);
    let max = check_rule_duration(
        format!("{at}.max_duration"),
        &rule.max_duration,
        target_max,
        p,
    );
    let hours = match &rule.hours {
        None => Some(None),
        Some(h) => {
            let hat = format!("{at}.hours");
            let days = p.check(format!("{hat}.days"), Days::parse(&h.days));
            let from = p.check(format!("{hat}.from"), LocalTime::parse(&h.from, false));
            let to = p.check(format!("{hat}.to"), LocalTime::parse(&h.to, true));
            let tz = p.check(format!("{hat}.tz"), parse_tz(&h.tz));
            if let (Some(f), Some(t)) = (from, to)
                && (f == t || (f == LocalTime::MIDNIGHT && t == LocalTime::END_OF_DAY))
            {
                p.add(
                    format!("{hat}.to"),
                    "makes the window the whole day; leave `from` and `to` out by dropping `hours`, or narrow it",
                );
            }
            match (days, from, to, tz) {
                (Some(days), Some(from), Some(to), Some(tz)) => {
                    Some(Some(Hours { days, from, to, tz }))
                }
                _ => None,
            }
        }
    };
    if !name_ok || who.users.len() + who.groups.len() != rule.who.len() {
        return None;
    }
    Some(AutoRule {
        name: name.to_owned(),
        who,
        max_duration: max?,
        hours: hours?,
    })
}

/// `break_glass = { max_duration, review_within }`.
pub(super) fn check_break_glass(
    path: &str,
    t: &TargetConfig,
    target_max: Option<Ttl>,
    p: &mut Problems,
) -> Option<Option<BreakGlass>> {
    let Some(bg) = &t.break_glass else {
        return Some(None);
    };
    let at = format!("{path}.break_glass");
    let max = check_rule_duration(
        format!("{at}.max_duration"),
        &bg.max_duration,
        target_max,
        p,
    );
    let review = p.check(
        format!("{at}.review_within"),
        bg.review_within.parse::<Ttl>(),
    );
    if review.is_some_and(|r| r.as_secs() < 60) {
        p.add(
            format!("{at}.review_within"),
            "must be at least 1m: it is also how often an unacknowledged use is announced again",
        );
        return None;
    }
    Some(Some(BreakGlass {
        max_duration: max?,
        review_within: review?,
    }))
}
