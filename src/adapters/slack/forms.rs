//! jitbot's modals as Block Kit JSON: the request form (`/jit`, `/jit request`), the
//! reason asked for by Deny, and how much longer asked for by Extend. Building them and
//! reading what was entered is pure; [`super::inbound`] opens them and acts on their
//! submissions.
//!
//! The request form's target picker is a `static_select` with the targets grouped by
//! namespace while the catalog has at most [`STATIC_SELECT_MAX`] of them (Slack's
//! limit on a static select's options); past that it is an `external_select` whose
//! choices come from a `block_suggestion` ([`target_choices`]).
//!
//! The duration choices do not follow the picked target: the form offers the durations
//! any target allows, with "the target's default" preselected, and the submission
//! checks the pick against the chosen target's maximum (an inline error names it).
//! Following the target would need a `dispatch_action` on the picker and a
//! `views.update` for every pick, a Web API round trip (with its own failures and its
//! race against the person typing their reason) for what one inline error on submit
//! says as well; and each target's option shows its maximum, so the limit is in
//! sight before the pick.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::core::actions::{decision_value, parse_decision_value};
use crate::core::catalog::{Catalog, Limits, REASON_MAX_CHARS, Requester, SourceSpec, Target};
use crate::core::ids::{RequestId, clip};
use crate::core::request::Round;
use crate::core::ttl::Ttl;

/// The request form's `callback_id`.
pub const REQUEST_FORM: &str = "jit_request_form";
/// The Deny form's `callback_id`.
pub const DENY_FORM: &str = "jit_deny_form";
/// The Extend form's `callback_id`.
pub const EXTEND_FORM: &str = "jit_extend_form";

/// The fields' `block_id`s, which the inline errors name.
pub const TARGET_BLOCK: &str = "target";
pub const DURATION_BLOCK: &str = "duration";
pub const REASON_BLOCK: &str = "reason";
pub const ADDRESS_BLOCK: &str = "address";
pub const NOTE_BLOCK: &str = "note";

/// The fields' `action_id`s.
pub const TARGET_ACTION: &str = "jit_target";
pub const DURATION_ACTION: &str = "jit_duration";
pub const REASON_ACTION: &str = "jit_reason";
pub const ADDRESS_ACTION: &str = "jit_address";
pub const NOTE_ACTION: &str = "jit_note";

/// The duration choice that means "the target's own default".
pub const DEFAULT_DURATION: &str = "default";

/// Slack's most options in one static select (and in one answer to a
/// `block_suggestion`).
pub const STATIC_SELECT_MAX: usize = 100;

/// How many characters a person types before the external target picker asks for
/// choices.
pub const MIN_QUERY_LENGTH: u64 = 1;

/// Slack's limits on a modal and its parts.
const TITLE_MAX: usize = 24;
const BUTTON_MAX: usize = 24;
const BLOCKS_MAX: usize = 100;
const METADATA_MAX: usize = 3000;
const LABEL_MAX: usize = 2000;
const PLACEHOLDER_MAX: usize = 150;
const OPTION_TEXT_MAX: usize = 75;
const OPTION_VALUE_MAX: usize = 150;
const GROUPS_MAX: usize = 100;

/// How long a Deny note may be (Slack shows it in a DM and the audit thread).
pub const NOTE_MAX_CHARS: usize = REASON_MAX_CHARS;

/// Durations people usually pick; a form offers those inside its bounds, plus the
/// targets' own defaults and maximums.
const LADDER_MINS: [u64; 14] = [
    5, 10, 15, 30, 45, 60, 90, 120, 180, 240, 360, 480, 720, 1440,
];

fn plain(text: &str) -> Value {
    json!({ "type": "plain_text", "text": text, "emoji": false })
}

fn option(text: &str, value: &str) -> Value {
    // `clip` marks a cut with one more character.
    json!({ "text": plain(&clip(text, OPTION_TEXT_MAX - 1)), "value": value })
}

fn modal(title: &str, submit: &str, callback: &str, metadata: &str, blocks: Vec<Value>) -> Value {
    json!({
        "type": "modal",
        "callback_id": callback,
        "title": plain(title),
        "submit": plain(submit),
        "close": plain("Cancel"),
        "private_metadata": metadata,
        "blocks": blocks,
    })
}

/// The choice for `target` in the picker: its name, and its maximum in sight.
fn target_option(target: &Target) -> Value {
    option(
        &format!("{} (up to {})", target.name, target.max_duration),
        target.name.as_str(),
    )
}

/// `targets` grouped by namespace, groups and targets in catalog order.
fn grouped<'t>(targets: impl Iterator<Item = &'t Target>) -> Value {
    let mut order: Vec<String> = Vec::new();
    let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for t in targets {
        let ns = t.namespace.to_string();
        if !groups.contains_key(&ns) {
            order.push(ns.clone());
        }
        groups.entry(ns).or_default().push(target_option(t));
    }
    let groups: Vec<Value> = order
        .into_iter()
        .take(GROUPS_MAX)
        .map(|ns| {
            let options = groups.remove(&ns).unwrap_or_default();
            json!({ "label": plain(&clip(&format!("namespace {ns}"), OPTION_TEXT_MAX - 1)), "options": options })
        })
        .collect();
    Value::Array(groups)
}

/// The target picker: a static select grouped by namespace, or an external select
/// once the catalog is over [`STATIC_SELECT_MAX`] targets.
fn target_picker(catalog: &Catalog) -> Value {
    let targets = catalog.targets();
    if targets.len() > STATIC_SELECT_MAX {
        return json!({
            "type": "external_select",
            "action_id": TARGET_ACTION,
            "placeholder": plain("Type part of a target's name"),
            "min_query_length": MIN_QUERY_LENGTH,
        });
    }
    let mut picker = json!({
        "type": "static_select",
        "action_id": TARGET_ACTION,
        "placeholder": plain("Pick a target"),
        "option_groups": grouped(targets.iter()),
    });
    if let [only] = targets {
        picker["initial_option"] = target_option(only);
    }
    picker
}

/// The answer to a `block_suggestion` on the target picker: the targets whose name,
/// namespace or description contain `typed` (any case), grouped by namespace, at
/// most [`STATIC_SELECT_MAX`].
pub fn target_choices(catalog: &Catalog, typed: &str) -> Value {
    let typed = typed.trim().to_lowercase();
    let matching = catalog
        .targets()
        .iter()
        .filter(|t| {
            typed.is_empty()
                || t.name.as_str().contains(&typed)
                || t.namespace.to_string().contains(&typed)
                || t.description.to_lowercase().contains(&typed)
        })
        .take(STATIC_SELECT_MAX);
    json!({ "option_groups": grouped(matching) })
}

/// The ladder's durations inside `[min, max]`, with `extra` (defaults, maximums)
/// added, shortest first, at most what a select holds.
pub fn duration_choices(min: Ttl, max: Ttl, extra: &[Ttl]) -> Vec<Ttl> {
    let mut out: Vec<Ttl> = LADDER_MINS
        .iter()
        .map(|m| Ttl::from_mins(*m))
        .chain(extra.iter().copied())
        .filter(|d| *d >= min && *d <= max)
        .collect();
    out.sort();
    out.dedup();
    out.truncate(STATIC_SELECT_MAX - 1);
    out
}

fn duration_option(d: Ttl) -> Value {
    let shown = d.to_string();
    option(&shown, &shown)
}

/// The request form for `requester`: target, duration, reason, and the source
/// address only when their source is a range. `private_metadata` says whether the
/// address field was shown, so the submission reads the form it was given.
pub fn request_form(catalog: &Catalog, requester: &Requester) -> Value {
    let limits = &catalog.limits;
    let longest = catalog
        .targets()
        .iter()
        .map(|t| t.max_duration)
        .max()
        .unwrap_or(limits.max_duration);
    let extra: Vec<Ttl> = catalog
        .targets()
        .iter()
        .flat_map(|t| [t.default_duration, t.max_duration])
        .collect();
    let default = option("The target's default", DEFAULT_DURATION);
    let mut durations = vec![default.clone()];
    durations.extend(
        duration_choices(limits.min_duration, longest, &extra)
            .into_iter()
            .map(duration_option),
    );
    let mut blocks = vec![
        json!({
            "type": "input",
            "block_id": TARGET_BLOCK,
            "label": plain("Target"),
            "element": target_picker(catalog),
        }),
        json!({
            "type": "input",
            "block_id": DURATION_BLOCK,
            "label": plain("For how long"),
            "hint": plain("Each target allows up to the time beside its name."),
            "element": {
                "type": "static_select",
                "action_id": DURATION_ACTION,
                "options": durations,
                "initial_option": default,
            },
        }),
    ];
    let range = match &requester.source {
        SourceSpec::Range(range) => Some(*range),
        _ => None,
    };
    if let Some(range) = range {
        blocks.push(json!({
            "type": "input",
            "block_id": ADDRESS_BLOCK,
            "label": plain("Your address"),
            "hint": plain(&format!("The address you connect from, inside your range {range}.")),
            "element": {
                "type": "plain_text_input",
                "action_id": ADDRESS_ACTION,
                "placeholder": plain(&range.addr().to_string()),
            },
        }));
    }
    let mut reason = json!({
        "type": "plain_text_input",
        "action_id": REASON_ACTION,
        "multiline": true,
        "max_length": REASON_MAX_CHARS,
        "placeholder": plain("INC-4411 replica lag"),
    });
    if limits.reason_min_chars > 0 {
        reason["min_length"] = json!(limits.reason_min_chars);
    }
    blocks.push(json!({
        "type": "input",
        "block_id": REASON_BLOCK,
        "label": plain("Why"),
        "hint": plain("An incident or ticket id helps the approvers."),
        "element": reason,
    }));
    let metadata = json!({ "address": range.is_some() }).to_string();
    modal("Request access", "Request", REQUEST_FORM, &metadata, blocks)
}

/// Whether the request form in `metadata` showed the address field.
pub fn asked_address(metadata: &str) -> bool {
    serde_json::from_str::<Value>(metadata)
        .ok()
        .and_then(|m| m["address"].as_bool())
        .unwrap_or(false)
}

/// The Deny form for `round` of request `id`: an optional note. The card's round
/// travels in `private_metadata`, so the denial answers the round the card showed.
pub fn deny_form(id: &RequestId, round: Round) -> Value {
    let what = match round {
        Round::Request => format!("Deny request `{id}`."),
        Round::Extension(_) => format!("Deny the extension of `{id}`; the grant keeps its time."),
    };
    let blocks = vec![
        json!({ "type": "section", "text": { "type": "mrkdwn", "text": what } }),
        json!({
            "type": "input",
            "block_id": NOTE_BLOCK,
            "optional": true,
            "label": plain("Reason (the requester sees it)"),
            "element": {
                "type": "plain_text_input",
                "action_id": NOTE_ACTION,
                "multiline": true,
                "max_length": NOTE_MAX_CHARS,
            },
        }),
    ];
    modal(
        "Deny request",
        "Deny",
        DENY_FORM,
        &decision_value(id, round),
        blocks,
    )
}

/// The request and round a Deny form's `private_metadata` names.
pub fn denied_round(metadata: &str) -> Option<(RequestId, Round)> {
    parse_decision_value(metadata)
}

/// The Extend form for grant `id` of `target`: how much longer, between the catalog's
/// minimum and the target's maximum, its default preselected. The grant's id travels
/// in `private_metadata`.
pub fn extend_form(id: &RequestId, target: &Target, limits: &Limits) -> Value {
    let max = target.max_duration.min(limits.max_duration);
    let choices = duration_choices(
        limits.min_duration,
        max,
        &[target.default_duration, target.max_duration],
    );
    let options: Vec<Value> = choices.iter().copied().map(duration_option).collect();
    let mut select = json!({
        "type": "static_select",
        "action_id": DURATION_ACTION,
        "options": options,
    });
    if let Some(d) = choices.iter().find(|d| **d == target.default_duration) {
        select["initial_option"] = duration_option(*d);
    }
    let blocks = vec![
        json!({ "type": "section", "text": { "type": "mrkdwn", "text": format!("Ask for more time on `{id}` (*{}*). The approvers decide again.", target.name) } }),
        json!({
            "type": "input",
            "block_id": DURATION_BLOCK,
            "label": plain("How much longer"),
            "element": select,
        }),
    ];
    modal("Extend access", "Ask", EXTEND_FORM, id.as_str(), blocks)
}

/// What was entered in `block` (as Slack's `state.values` has it): the text typed,
/// or the value of the option picked; `None` when nothing was.
pub fn entered(values: &Value, block: &str, action: &str) -> Option<String> {
    let field = &values[block][action];
    field["value"]
        .as_str()
        .or_else(|| field["selected_option"]["value"].as_str())
        .map(str::to_owned)
        .filter(|v| !v.trim().is_empty())
}

/// Checks a modal against Slack's limits on views (`views.open` refuses one over
/// them with `invalid_arguments`, which the person sees as a form that never opens).
pub fn check_view(view: &Value) -> Result<(), String> {
    let len = |v: &Value| v.as_str().map_or(0, |s| s.chars().count());
    if len(&view["title"]["text"]) > TITLE_MAX || len(&view["title"]["text"]) == 0 {
        return Err(format!("the title must be 1 to {TITLE_MAX} characters"));
    }
    for button in ["submit", "close"] {
        if len(&view[button]["text"]) > BUTTON_MAX {
            return Err(format!(
                "the {button} button is over {BUTTON_MAX} characters"
            ));
        }
    }
    if len(&view["private_metadata"]) > METADATA_MAX {
        return Err(format!(
            "private_metadata is over {METADATA_MAX} characters"
        ));
    }
    if len(&view["callback_id"]) > 255 {
        return Err("callback_id is over 255 characters".into());
    }
    let blocks = view["blocks"].as_array().ok_or("blocks is not a list")?;
    if blocks.len() > BLOCKS_MAX {
        return Err(format!("{} blocks (at most {BLOCKS_MAX})", blocks.len()));
    }
    for (i, b) in blocks.iter().enumerate() {
        if len(&b["block_id"]) > 255 {
            return Err(format!("block {i} block_id is over 255 characters"));
        }
        if len(&b["text"]["text"]) > 3000 {
            return Err(format!("block {i} text is over 3000 characters"));
        }
        if len(&b["label"]["text"]) > LABEL_MAX || len(&b["hint"]["text"]) > LABEL_MAX {
            return Err(format!(
                "block {i} label or hint is over {LABEL_MAX} characters"
            ));
        }
        let e = &b["element"];
        if len(&e["placeholder"]["text"]) > PLACEHOLDER_MAX {
            return Err(format!(
                "block {i} placeholder is over {PLACEHOLDER_MAX} characters"
            ));
        }
        check_options(e).map_err(|why| format!("block {i}: {why}"))?;
    }
    Ok(())
}

/// A select's options and option groups within Slack's limits.
fn check_options(element: &Value) -> Result<(), String> {
    let len = |v: &Value| v.as_str().map_or(0, |s| s.chars().count());
    let one = |o: &Value| {
        if len(&o["text"]["text"]) > OPTION_TEXT_MAX || len(&o["value"]) > OPTION_VALUE_MAX {
            Err("an option is over Slack's limits".to_owned())
        } else {
            Ok(())
        }
    };
    if let Some(options) = element["options"].as_array() {
        if options.len() > STATIC_SELECT_MAX {
            return Err(format!(
                "{} options (at most {STATIC_SELECT_MAX})",
                options.len()
            ));
        }
        options.iter().try_for_each(one)?;
    }
    if let Some(groups) = element["option_groups"].as_array() {
        if groups.len() > GROUPS_MAX {
            return Err(format!(
                "{} option groups (at most {GROUPS_MAX})",
                groups.len()
            ));
        }
        let mut total = 0;
        for g in groups {
            if len(&g["label"]["text"]) > OPTION_TEXT_MAX {
                return Err("an option group's label is over 75 characters".into());
            }
            let options = g["options"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            total += options.len();
            options.iter().try_for_each(one)?;
        }
        if total > STATIC_SELECT_MAX {
            return Err(format!(
                "{total} options in groups (at most {STATIC_SELECT_MAX})"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "forms_tests.rs"]
mod tests;
