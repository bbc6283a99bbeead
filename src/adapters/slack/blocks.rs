//! Every message jitbot shows in Slack, as Block Kit JSON: the approval card (whose
//! footer follows the request's state), the requester's DMs and the audit lines. All
//! of it stays inside Slack's limits, which `check_limits` enforces in tests.
//!
//! Text a person typed (a reason, a denial or revoke note) cannot format, link, ping
//! or end a code block: the card shows the reason as a `plain_text` object, and
//! wherever only mrkdwn is possible (message text, context lines, the policy's code
//! block) it goes through [`inert`] or [`fenced`].

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::core::actions::{ACKNOWLEDGE, APPROVE, DENY, REVOKE, REVOKE_GRANT, decision_value};
use crate::core::netpol;
use crate::core::ports::AuditEvent;
use crate::core::request::{AccessRequest, AuditKind, BreakGlassUse, Round, State};

/// Room for the policy YAML in one section (Slack allows 3000 characters).
const YAML_ROOM: usize = 2600;

/// A message: fallback text (notifications, screen readers) and blocks.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub text: String,
    pub blocks: Value,
}

/// Escapes text for Slack mrkdwn: `&`, `<` and `>` are control characters there.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Slack's mrkdwn marks and the look-alikes that stand in for them in typed text.
/// mrkdwn has no backslash escape, and a zero-width space beside a mark makes Slack
/// apply it even inside a word rather than stopping it, so look-alikes are what works.
const LOOK_ALIKES: [(char, char); 4] = [
    ('*', '\u{2217}'), // ∗ asterisk operator
    ('_', '\u{02CD}'), // ˍ modifier letter low macron
    ('~', '\u{223C}'), // ∼ tilde operator
    ('`', '\u{02CB}'), // ˋ modifier letter grave accent
];

fn look_alike(c: char) -> char {
    LOOK_ALIKES
        .iter()
        .find(|(mark, _)| *mark == c)
        .map_or(c, |(_, like)| *like)
}

/// Typed text for a mrkdwn field: [`escape`]d (so no `<…>` link or mention) and with
/// `*`, `_`, `~` and `` ` `` swapped for look-alikes (so no bold, italics, strike or
/// code). [`crate::core::command::sanitise`] has already broken `@here` and friends.
pub fn inert(s: &str) -> String {
    escape(s).chars().map(look_alike).collect()
}

/// Text for the inside of a ```` ``` ```` code block, where Slack applies no formatting
/// but three backticks end the block: backticks become look-alikes, the rest is
/// [`escape`]d.
pub fn fenced(s: &str) -> String {
    escape(s)
        .chars()
        .map(|c| if c == '`' { look_alike(c) } else { c })
        .collect()
}

fn mention(user: &impl std::fmt::Display) -> String {
    format!("<@{user}>")
}

/// A time as cards and the App Home show it: `14:05 UTC`.
pub(super) fn hhmm(t: DateTime<Utc>) -> String {
    t.format("%H:%M UTC").to_string()
}

/// Escapes `s` and cuts it to `max` characters, never inside an `&…;` entity.
fn fit(s: &str, max: usize) -> String {
    cut_escaped(escape(s), max)
}

/// Cuts already escaped text to `max` characters, never inside an `&…;` entity.
fn cut_escaped(escaped: String, max: usize) -> String {
    if escaped.chars().count() <= max {
        return escaped;
    }
    let mut out: String = escaped.chars().take(max.saturating_sub(1)).collect();
    if let Some(amp) = out.rfind('&')
        && !out[amp..].contains(';')
    {
        out.truncate(amp);
    }
    out.push('…');
    out
}

/// A `section` block of mrkdwn `text`.
pub(super) fn section(text: String) -> Value {
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": text } })
}

/// A section whose text Slack shows as typed: no formatting, links or mentions.
fn plain_section(text: &str, max: usize) -> Value {
    let mut shown: String = text.chars().take(max).collect();
    if shown.len() < text.len() {
        shown.pop();
        shown.push('…');
    }
    json!({ "type": "section", "text": { "type": "plain_text", "text": shown, "emoji": false } })
}

/// A `context` block of one mrkdwn `text`.
pub(super) fn context(text: String) -> Value {
    json!({ "type": "context", "elements": [{ "type": "mrkdwn", "text": text }] })
}

/// A button labelled `text` with its `action_id` and `value`, in `style`
/// (`primary`, `danger`) if given.
pub(super) fn button(text: &str, action: &str, value: &str, style: Option<&str>) -> Value {
    let mut b = json!({
        "type": "button",
        "text": { "type": "plain_text", "text": text },
        "action_id": action,
        "value": value,
    });
    if let Some(style) = style {
        b["style"] = json!(style);
    }
    b
}

/// The approval card for `req`, with the policy it would apply and what the
/// cluster says about it.
pub fn card(req: &AccessRequest, policy_yaml: &str, preview: Option<&str>) -> Message {
    let id = req.id.as_str();
    let selector: Vec<String> = req
        .scope
        .pod_selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let ports: Vec<String> = req.scope.ports.iter().map(|p| p.to_string()).collect();
    let (header, intro) = if req.break_glass.is_some() {
        (
            format!("🚨 BREAK-GLASS: {}", req.target),
            format!(
                "🚨 {} took *{}* of access to *{}* by break-glass, without approval:",
                mention(&req.requester),
                req.duration,
                req.target,
            ),
        )
    } else {
        (
            format!("Access request: {}", req.target),
            format!(
                "{} asks for *{}* of access to *{}*:",
                mention(&req.requester),
                req.duration,
                req.target,
            ),
        )
    };
    let mut blocks = vec![
        json!({ "type": "header", "text": { "type": "plain_text", "text": header } }),
        section(intro),
        plain_section(req.reason.as_str(), 2500),
        json!({ "type": "section", "fields": [
            { "type": "mrkdwn", "text": format!("*Namespace*\n{}", req.scope.namespace) },
            { "type": "mrkdwn", "text": format!("*Pods*\n`{}`", fit(&selector.join(", "), 1800)) },
            { "type": "mrkdwn", "text": format!("*Ports*\n{}", fit(&ports.join(", "), 1800)) },
            { "type": "mrkdwn", "text": format!("*Source*\n{}", fit(&req.source.to_string(), 1800)) },
            { "type": "mrkdwn", "text": format!("*Duration*\n{}", req.duration) },
            { "type": "mrkdwn", "text": format!("*Request*\n`{id}`") },
        ]}),
        section(format!(
            "*Does it matter?* {}",
            fit(preview.unwrap_or("not checked"), 500)
        )),
        section(format!(
            "*Policy to apply*\n```{}```",
            cut_escaped(fenced(policy_yaml), YAML_ROOM)
        )),
    ];
    blocks.extend(footer(req));
    let text = if req.break_glass.is_some() {
        format!(
            "BREAK-GLASS: {} took {} of access to {} ({id})",
            req.requester, req.duration, req.target
        )
    } else {
        format!(
            "{} asks for {} of access to {} ({id})",
            req.requester, req.duration, req.target
        )
    };
    Message {
        text,
        blocks: Value::Array(blocks),
    }
}

/// The card's last blocks: approvals and buttons while a decision is open, the
/// outcome once it is not (so no stale buttons remain).
fn footer(req: &AccessRequest) -> Vec<Value> {
    let mut out = vec![context(status_line(req))];
    if let Some(bg) = &req.break_glass {
        out.push(context(review_line(bg)));
    }
    let unreviewed = req
        .break_glass
        .as_ref()
        .is_some_and(|bg| !bg.acknowledged());
    let by_policy = req.break_glass.is_some() || req.approved_by_rule.is_some();
    let id = req.id.as_str();
    let mut buttons = Vec::new();
    if unreviewed {
        buttons.push(button("Acknowledge", ACKNOWLEDGE, id, Some("primary")));
    }
    // Nobody approved it by hand, so the approvers get a way to end it from the card.
    if by_policy && req.state == State::Active && req.extension.is_none() {
        buttons.push(button("Revoke", REVOKE_GRANT, id, Some("danger")));
    }
    if !buttons.is_empty() {
        out.push(json!({
            "type": "actions",
            "block_id": format!("review:{id}"),
            "elements": buttons,
        }));
    }
    match req.state {
        State::Pending => out.push(decision_buttons(req)),
        State::Active => {
            if let Some(ext) = &req.extension {
                out.push(section(format!(
                    "⏳ {} asks for *{}* more: {} of {} approvals.",
                    mention(&ext.requested_by),
                    ext.duration,
                    ext.approvals.len(),
                    req.scope.approvals_required
                )));
                out.push(decision_buttons(req));
            }
        }
        _ => {}
    }
    out
}

/// The footer's first line: where the request stands in its state.
fn status_line(req: &AccessRequest) -> String {
    match req.state {
        State::Pending => format!(
            "{} of {} approvals · lapses at {}",
            req.approvals.len(),
            req.scope.approvals_required,
            hhmm(req.approval_deadline)
        ),
        State::Approved => format!("{} · applying the policy…", approved_by(req)),
        State::Active => format!(
            "{} · expires {}",
            approved_by(req),
            req.expires_at.map(hhmm).unwrap_or_default()
        ),
        State::Denied => format!(
            "⛔ Denied by {} at {}{}",
            ended_by(req),
            ended_at(req),
            end_reason(req)
        ),
        State::Lapsed => format!(
            "⌛ Nobody decided before {}; the request lapsed",
            ended_at(req)
        ),
        State::Cancelled => format!("Cancelled by {} at {}", ended_by(req), ended_at(req)),
        State::Failed => format!(
            "⚠️ {}, but applying the policy failed{}",
            approved_by(req),
            end_reason(req)
        ),
        State::Expired => format!(
            "{} · expired at {}; the policy is gone",
            approved_by(req),
            ended_at(req)
        ),
        State::Revoked => format!(
            "{} · revoked by {} at {}{}",
            approved_by(req),
            ended_by(req),
            ended_at(req),
            end_reason(req)
        ),
    }
}

/// Approve (behind a confirmation that says what it opens, for how long) and Deny,
/// for the request or its waiting extension. Both buttons carry the round they
/// answer, so a click on this card cannot decide a later extension.
fn decision_buttons(req: &AccessRequest) -> Value {
    let id = req.id.as_str();
    let value = decision_value(&req.id, Round::of(req));
    let source = fit(&req.source.to_string(), 150);
    let (title, what) = match (&req.extension, req.state) {
        (Some(ext), State::Active) => (
            "Approve this extension?",
            format!(
                "Keeps {} open to {source} for {} more.",
                req.target, ext.duration
            ),
        ),
        _ => (
            "Approve this access?",
            format!("Opens {} to {source} for {}.", req.target, req.duration),
        ),
    };
    let mut approve = button("Approve", APPROVE, &value, Some("primary"));
    approve["confirm"] = json!({
        "title": { "type": "plain_text", "text": title },
        "text": { "type": "mrkdwn", "text": what },
        "confirm": { "type": "plain_text", "text": "Approve" },
        "deny": { "type": "plain_text", "text": "Cancel" },
    });
    json!({
        "type": "actions",
        "block_id": format!("decision:{id}"),
        "elements": [approve, button("Deny", DENY, &value, Some("danger"))],
    })
}

/// Where a break-glass use stands in its review.
fn review_line(bg: &BreakGlassUse) -> String {
    match (&bg.acknowledged_by, bg.acknowledged_at) {
        (Some(by), Some(at)) => format!(
            "Break-glass use acknowledged by {} at {}",
            mention(by),
            hhmm(at)
        ),
        _ => format!(
            "⚠️ Not acknowledged yet: an approver must acknowledge this use; it is announced again every {} until one does",
            bg.review_within
        ),
    }
}

fn approved_by(req: &AccessRequest) -> String {
    if let Some(bg) = &req.break_glass {
        return format!("🚨 Taken by break-glass at {}", hhmm(bg.used_at));
    }
    if let Some(rule) = &req.approved_by_rule {
        let extra: Vec<String> = req.approvals.iter().map(|a| mention(&a.by)).collect();
        let also = if extra.is_empty() {
            String::new()
        } else {
            format!(", extended with {}", extra.join(", "))
        };
        return format!("🤖 Auto-approved by rule `{}`{also}", inert(rule));
    }
    let names: Vec<String> = req.approvals.iter().map(|a| mention(&a.by)).collect();
    let at = req.approvals.last().map(|a| hhmm(a.at)).unwrap_or_default();
    format!("✅ Approved by {} at {at}", names.join(", "))
}

fn ended_by(req: &AccessRequest) -> String {
    req.ended_by
        .as_ref()
        .map(mention)
        .unwrap_or_else(|| "jitbot".to_owned())
}

fn ended_at(req: &AccessRequest) -> String {
    req.ended_at.map(hhmm).unwrap_or_default()
}

/// `: <reason>` when the request's end has one, else nothing.
fn end_reason(req: &AccessRequest) -> String {
    req.end_reason
        .as_deref()
        .map(|w| format!(": {}", inert(w)))
        .unwrap_or_default()
}

/// The DM the requester gets for `event`, if any.
pub fn direct_message(req: &AccessRequest, event: &AuditEvent) -> Option<Message> {
    let id = req.id.as_str();
    let target = &req.target;
    let by = || ended_by(req);
    let why = || end_reason(req);
    let expires = || req.expires_at.map(hhmm).unwrap_or_default();
    let text = match event.kind {
        AuditKind::Activated => {
            let names: Vec<String> = req.approvals.iter().map(|a| mention(&a.by)).collect();
            let how = match (&req.break_glass, &req.approved_by_rule) {
                (Some(_), _) => {
                    "by break-glass; the approvers have been told and must acknowledge it"
                        .to_owned()
                }
                (None, Some(rule)) => format!("auto-approved by rule `{}`", inert(rule)),
                (None, None) => format!("approved by {}", names.join(", ")),
            };
            format!(
                "✅ Your access to *{target}* is on ({how}). It ends at {} · `{id}`",
                expires()
            )
        }
        AuditKind::Denied => format!(
            "⛔ Your request `{id}` for *{target}* was denied by {}{}",
            by(),
            why()
        ),
        AuditKind::Failed => format!(
            "⚠️ Your request `{id}` for *{target}* was approved, but applying it failed{}. Nothing was opened.",
            why()
        ),
        AuditKind::Lapsed => format!(
            "⌛ Nobody decided on your request `{id}` for *{target}* in time. Ask again if you still need it."
        ),
        AuditKind::Expired => format!("Your access to *{target}* has ended (`{id}`)."),
        AuditKind::Revoked => format!(
            "Your access to *{target}* was revoked by {}{} (`{id}`).",
            by(),
            why()
        ),
        AuditKind::Extended => format!(
            "⏳ Your access to *{target}* now ends at {} (`{id}`).",
            expires()
        ),
        AuditKind::ExtensionDenied => format!(
            "⛔ Your extension of `{id}` for *{target}* was denied by {}{}",
            by(),
            why()
        ),
        AuditKind::ExpiryWarned => {
            let text = format!(
                "⏳ Your access to *{target}* ends at {}. Need longer? `/jit extend {id} 30m`",
                expires()
            );
            let blocks = json!([
                section(text.clone()),
                { "type": "actions", "block_id": format!("warning:{id}"), "elements": [
                    button("Revoke now", REVOKE, id, Some("danger")),
                ]},
            ]);
            return Some(Message { text, blocks });
        }
        _ => return None,
    };
    Some(Message {
        blocks: json!([section(text.clone())]),
        text,
    })
}

/// The audit channel's top-level message for a request.
pub fn audit_opening(req: &AccessRequest) -> String {
    format!(
        "{} requested *{}* of *{}* from {} · `{}`\n>{}",
        mention(&req.requester),
        req.duration,
        req.target,
        escape(&req.source.to_string()),
        req.id,
        inert(req.reason.as_str())
    )
}

/// One reply in a request's audit thread. Break-glass events are loud: they call
/// the channel's attention (`<!channel>` is Slack's own syntax, never typed text).
pub fn audit_reply(event: &AuditEvent) -> String {
    let who = event
        .actor
        .as_ref()
        .map(|a| format!("{} · ", mention(a)))
        .unwrap_or_default();
    let loud = match event.kind {
        AuditKind::BreakGlassUsed | AuditKind::BreakGlassUnacknowledged => "🚨 <!channel> ",
        _ => "",
    };
    format!(
        "{loud}{who}*{}*: {}",
        event.kind.as_str().replace('_', " "),
        inert(&event.detail)
    )
}

/// The approvers' DM for a break-glass use: what was taken, and where to look.
pub fn break_glass_dm(req: &AccessRequest) -> Message {
    let text = format!(
        "🚨 {} used *break-glass* on *{}*: {} of access from {}, without approval (`{}`). Please review it and acknowledge it on the card in the approval channel, or revoke it.",
        mention(&req.requester),
        req.target,
        req.duration,
        escape(&req.source.to_string()),
        req.id
    );
    let id = req.id.as_str();
    Message {
        blocks: json!([
            section(text.clone()),
            plain_section(req.reason.as_str(), 2500),
            { "type": "actions", "block_id": format!("review:{id}"), "elements": [
                button("Acknowledge", ACKNOWLEDGE, id, Some("primary")),
                button("Revoke", REVOKE_GRANT, id, Some("danger")),
            ]},
        ]),
        text,
    }
}

/// The audit channel's top-level reminder of a break-glass use nobody acknowledged.
pub fn break_glass_reminder(req: &AccessRequest) -> String {
    format!(
        "🚨 <!channel> The break-glass use `{}` by {} on *{}* ({}, {}) is still not acknowledged by an approver.",
        req.id,
        mention(&req.requester),
        req.target,
        req.duration,
        req.state
    )
}

/// The policy YAML a request would apply, for the card.
pub fn policy_yaml(req: &AccessRequest) -> String {
    let expires = req
        .expires_at
        .unwrap_or(req.created_at + req.duration.as_delta());
    netpol::to_yaml(&netpol::render(req, expires))
        .unwrap_or_else(|e| format!("(cannot render: {e})"))
}

/// Checks a message against Slack's Block Kit limits.
pub fn check_limits(m: &Message) -> Result<(), String> {
    let fail = |what: String| Err(what);
    if m.text.chars().count() > 40_000 {
        return fail("text is over 40000 characters".into());
    }
    let Some(blocks) = m.blocks.as_array() else {
        return fail("blocks is not a list".into());
    };
    if blocks.len() > 50 {
        return fail(format!("{} blocks (at most 50)", blocks.len()));
    }
    let len = |v: &Value| v.as_str().map_or(0, |s| s.chars().count());
    for (i, b) in blocks.iter().enumerate() {
        let kind = b["type"].as_str().unwrap_or("");
        let max_text = match kind {
            "header" => 150,
            _ => 3000,
        };
        if len(&b["text"]["text"]) > max_text {
            return fail(format!(
                "block {i} ({kind}) text is over {max_text} characters"
            ));
        }
        if len(&b["block_id"]) > 255 {
            return fail(format!("block {i} block_id is over 255 characters"));
        }
        if let Some(fields) = b["fields"].as_array()
            && (fields.len() > 10 || fields.iter().any(|f| len(&f["text"]) > 2000))
        {
            return fail(format!("block {i} has too many or too long fields"));
        }
        for e in b["elements"].as_array().into_iter().flatten() {
            if len(&e["action_id"]) > 255 || len(&e["value"]) > 2000 || len(&e["text"]["text"]) > 75
            {
                return fail(format!("block {i} has a button over Slack's limits"));
            }
            let c = &e["confirm"];
            if len(&c["title"]["text"]) > 100
                || len(&c["text"]["text"]) > 300
                || len(&c["confirm"]["text"]) > 30
            {
                return fail(format!(
                    "block {i} has a confirm dialog over Slack's limits"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "blocks_tests.rs"]
mod tests;
