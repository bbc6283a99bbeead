//! The App Home: one person's view of jitbot, as Block Kit JSON for `views.publish`.
//! Pure: [`view`] takes what the store says and the time, and builds the view.
//!
//! Three parts, newest first in each:
//! - **Active grants** with the time left, Revoke and Extend;
//! - **Your pending requests** with Cancel;
//! - **Waiting for you** (for approvers) with Approve and Deny.
//!
//! The buttons carry the same action ids and values as the approval card's and the
//! acknowledgement's ([`crate::core::actions`]), so one click handler serves both.
//! Slack shows at most 100 blocks in a view: each part shows its newest
//! [`SHOWN_PER_PART`] and says how many more there are (`/jit list` shows them all).
//! Typed text (a reason) is shown as `plain_text`, so it cannot format or ping.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::blocks::{button, context, hhmm, section};
use crate::core::actions::{
    ACKNOWLEDGE, APPROVE, CANCEL, DENY, EXTEND, REVOKE, REVOKE_GRANT, decision_value,
};
use crate::core::request::{AccessRequest, Round, State};

/// Slack's most blocks in a view.
pub const VIEW_BLOCKS_MAX: usize = 100;

/// Most items each part shows: with two blocks an item and the parts' headings,
/// dividers and "more" lines, the view stays within [`VIEW_BLOCKS_MAX`].
pub const SHOWN_PER_PART: usize = 15;

/// Longest reason shown on an item.
const REASON_ROOM: usize = 300;

/// What the Home of one person shows.
#[derive(Clone, Copy, Debug)]
pub struct HomeData<'a> {
    pub now: DateTime<Utc>,
    /// The person's own requests, newest first (as `App::list_for` gives them).
    pub mine: &'a [AccessRequest],
    /// Requests (or extensions) waiting for this person's decision, newest first.
    pub waiting: &'a [AccessRequest],
    /// Whether the person approves anything: the "Waiting for you" part shows for
    /// approvers, and for anyone something waits for.
    pub approver: bool,
}

/// The Home view for `data`.
pub fn view(data: &HomeData<'_>) -> Value {
    let mut blocks = vec![
        json!({ "type": "header", "text": { "type": "plain_text", "text": "Your network access" } }),
        context(format!(
            "Type `/jit` to ask for access with a form, or `/jit help` for the commands. Updated {}.",
            hhmm(data.now)
        )),
    ];

    let grants: Vec<&AccessRequest> = data
        .mine
        .iter()
        .filter(|r| matches!(r.state, State::Active | State::Approved))
        .collect();
    part(
        &mut blocks,
        "*Active grants*",
        &grants,
        "You have no active grants. Type `/jit` to ask for access.",
        |r| grant(r, data.now),
    );

    let pending: Vec<&AccessRequest> = data
        .mine
        .iter()
        .filter(|r| r.state == State::Pending)
        .collect();
    blocks.push(json!({ "type": "divider" }));
    part(
        &mut blocks,
        "*Your pending requests*",
        &pending,
        "Nothing of yours is waiting for approval.",
        pending_item,
    );

    if data.approver || !data.waiting.is_empty() {
        let waiting: Vec<&AccessRequest> = data.waiting.iter().collect();
        blocks.push(json!({ "type": "divider" }));
        part(
            &mut blocks,
            "*Waiting for you*",
            &waiting,
            "No requests are waiting for your decision.",
            waiting_item,
        );
    }

    json!({ "type": "home", "blocks": blocks })
}

/// A part: its heading, its newest [`SHOWN_PER_PART`] items (or the empty state),
/// and how many more there are.
fn part(
    blocks: &mut Vec<Value>,
    heading: &str,
    items: &[&AccessRequest],
    empty: &str,
    item: impl Fn(&AccessRequest) -> Vec<Value>,
) {
    blocks.push(section(heading.to_owned()));
    if items.is_empty() {
        blocks.push(context(empty.to_owned()));
        return;
    }
    for req in items.iter().take(SHOWN_PER_PART) {
        blocks.extend(item(req));
    }
    let more = items.len().saturating_sub(SHOWN_PER_PART);
    if more > 0 {
        blocks.push(context(format!(
            "…and {more} more. `/jit list` shows them all."
        )));
    }
}

/// An active grant: target, id, when it ends and the time left; Revoke and Extend.
/// One being applied has no buttons yet (neither would work before it is active).
fn grant(req: &AccessRequest, now: DateTime<Utc>) -> Vec<Value> {
    let id = req.id.as_str();
    let mut text = match (req.state, req.expires_at) {
        (State::Active, Some(until)) => format!(
            "*{}* · `{id}` · ends {} ({})",
            req.target,
            hhmm(until),
            left(now, until)
        ),
        _ => {
            return vec![section(format!(
                "*{}* · `{id}` · approved, applying the policy…",
                req.target
            ))];
        }
    };
    if let Some(ext) = req
        .extension
        .as_ref()
        .filter(|_| req.state == State::Active)
    {
        text.push_str(&format!(
            "\n⏳ {} more asked for: {} of {} approvals",
            ext.duration,
            ext.approvals.len(),
            req.scope.approvals_required
        ));
    }
    let mut revoke = button("Revoke", REVOKE, id, Some("danger"));
    revoke["confirm"] = confirm(
        "Revoke this grant?",
        &format!("Closes {} at once.", req.target),
        "Revoke",
    );
    vec![
        section(text),
        json!({
            "type": "actions",
            "block_id": format!("home-grant:{id}"),
            "elements": [revoke, button("Extend", EXTEND, id, None)],
        }),
    ]
}

/// A pending request of the person's: target, duration, approvals so far, when it
/// lapses; Cancel.
fn pending_item(req: &AccessRequest) -> Vec<Value> {
    let id = req.id.as_str();
    vec![
        section(format!(
            "*{}* for {} · `{id}` · {} of {} approvals · lapses at {}",
            req.target,
            req.duration,
            req.approvals.len(),
            req.scope.approvals_required,
            hhmm(req.approval_deadline)
        )),
        json!({
            "type": "actions",
            "block_id": format!("home-pending:{id}"),
            "elements": [button("Cancel request", CANCEL, id, None)],
        }),
    ]
}

/// A request (or extension) waiting for the person's decision; Approve and Deny
/// carrying the round, as on the card.
fn waiting_item(req: &AccessRequest) -> Vec<Value> {
    let id = req.id.as_str();
    if req.extension.is_none()
        && let Some(bg) = req.break_glass.as_ref().filter(|bg| !bg.acknowledged())
    {
        let line = format!(
            "🚨 <@{}> took *{}* of *{}* by break-glass at {} · `{id}` · not acknowledged yet",
            req.requester,
            req.duration,
            req.target,
            hhmm(bg.used_at)
        );
        let reason = cut(req.reason.as_str(), REASON_ROOM);
        let mut buttons = vec![button("Acknowledge", ACKNOWLEDGE, id, Some("primary"))];
        if req.state == State::Active {
            buttons.push(button("Revoke", REVOKE_GRANT, id, Some("danger")));
        }
        return vec![
            json!({
                "type": "section",
                "text": { "type": "mrkdwn", "text": line },
                "fields": [{ "type": "plain_text", "text": reason, "emoji": false }],
            }),
            json!({
                "type": "actions",
                "block_id": format!("home-review:{id}"),
                "elements": buttons,
            }),
        ];
    }
    let round = Round::of(req);
    let value = decision_value(&req.id, round);
    let (line, what) = match (&req.extension, round) {
        (Some(ext), Round::Extension(_)) => (
            format!(
                "<@{}> asks for *{}* more on *{}* · `{id}`",
                ext.requested_by, ext.duration, req.target
            ),
            format!("Keeps {} open for {} more.", req.target, ext.duration),
        ),
        _ => (
            format!(
                "<@{}> asks for *{}* of *{}* · `{id}` · {} of {} approvals",
                req.requester,
                req.duration,
                req.target,
                req.approvals.len(),
                req.scope.approvals_required
            ),
            format!("Opens {} for {}.", req.target, req.duration),
        ),
    };
    let reason = cut(req.reason.as_str(), REASON_ROOM);
    let mut approve = button("Approve", APPROVE, &value, Some("primary"));
    approve["confirm"] = confirm("Approve this access?", &what, "Approve");
    vec![
        json!({
            "type": "section",
            "text": { "type": "mrkdwn", "text": line },
            "fields": [{ "type": "plain_text", "text": reason, "emoji": false }],
        }),
        json!({
            "type": "actions",
            "block_id": format!("home-decide:{id}"),
            "elements": [approve, button("Deny", DENY, &value, Some("danger"))],
        }),
    ]
}

/// "1 h 5 min left", "4 min left", "less than a minute left", "ending now".
pub fn left(now: DateTime<Utc>, until: DateTime<Utc>) -> String {
    let secs = (until - now).num_seconds();
    if secs <= 0 {
        return "ending now".to_owned();
    }
    let mins = secs / 60;
    match (mins / 60, mins % 60) {
        (0, 0) => "less than a minute left".to_owned(),
        (0, m) => format!("{m} min left"),
        (h, 0) => format!("{h} h left"),
        (h, m) => format!("{h} h {m} min left"),
    }
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

fn confirm(title: &str, text: &str, yes: &str) -> Value {
    json!({
        "title": { "type": "plain_text", "text": title },
        "text": { "type": "mrkdwn", "text": text },
        "confirm": { "type": "plain_text", "text": yes },
        "deny": { "type": "plain_text", "text": "Cancel" },
    })
}

#[cfg(test)]
#[path = "home_tests.rs"]
mod tests;
