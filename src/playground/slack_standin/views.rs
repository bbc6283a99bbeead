//! `views.open`, `views.update` and `views.publish` as Slack answers them: a view
//! Slack would refuse (wrong type, a title over 24 characters, over 100 blocks,
//! input blocks without a submit button, `private_metadata` over 3000 characters)
//! gets `invalid_arguments`; an unknown view id `not_found`; a missing trigger
//! `invalid_trigger_id`. Answers carry the view with its `id`, `hash` and empty
//! `state`, as Slack's do.

use axum::response::Response;
use serde_json::{Value, json};

use super::web_api::{envelope, error};
use super::{OpenView, World};

/// Slack's limits on a view.
const TITLE_MAX: usize = 24;
const BLOCKS_MAX: usize = 100;
const METADATA_MAX: usize = 3000;

pub(super) fn method(w: &mut World, method: &str, body: Value) -> Response {
    let view = match parse_view(&body["view"]) {
        Ok(view) => view,
        Err(code) => return error(code),
    };
    match method {
        "views.open" => {
            let Some(trigger) = body["trigger_id"].as_str().filter(|t| !t.is_empty()) else {
                return error("invalid_trigger_id");
            };
            if let Err(code) = modal_problem(&view) {
                return error(code);
            }
            let user = w
                .origins
                .get(&format!("trigger:{trigger}"))
                .map(|o| o.user.clone())
                .unwrap_or_default();
            w.next_view += 1;
            let id = format!("V{:08}", w.next_view);
            let open = OpenView {
                id: id.clone(),
                user,
                view,
                hash: format!("{}.1", w.next_view),
            };
            let answer = open.stateful();
            w.views.insert(id, open);
            envelope(json!({ "ok": true, "view": answer }))
        }
        "views.update" => {
            if let Err(code) = modal_problem(&view) {
                return error(code);
            }
            let id = body["view_id"].as_str().unwrap_or("");
            let Some(open) = w.views.get_mut(id) else {
                return error("not_found");
            };
            if let Some(hash) = body["hash"].as_str()
                && hash != open.hash
            {
                return error("hash_conflict");
            }
            open.replace(view);
            envelope(json!({ "ok": true, "view": open.stateful() }))
        }
        _ => {
            let Some(user) = body["user_id"].as_str().filter(|u| !u.is_empty()) else {
                return error("invalid_arguments");
            };
            if view["type"] != "home" {
                return error("invalid_arguments");
            }
            w.homes.insert(user.to_owned(), view.clone());
            let home = OpenView {
                id: home_id(user),
                user: user.to_owned(),
                view,
                hash: "1.1".to_owned(),
            };
            envelope(json!({ "ok": true, "view": home.stateful() }))
        }
    }
}

/// The view of a call: JSON, or a JSON string (as form-encoded calls send it).
fn parse_view(raw: &Value) -> Result<Value, &'static str> {
    let view = match raw {
        Value::String(s) => serde_json::from_str(s).map_err(|_| "invalid_arguments")?,
        Value::Object(_) => raw.clone(),
        _ => return Err("invalid_arguments"),
    };
    let blocks = view["blocks"].as_array().ok_or("invalid_arguments")?;
    if blocks.len() > BLOCKS_MAX {
        return Err("invalid_arguments");
    }
    let metadata = view["private_metadata"].as_str().unwrap_or("");
    if metadata.chars().count() > METADATA_MAX {
        return Err("invalid_arguments");
    }
    Ok(view)
}

/// Why Slack would refuse a modal, if it would.
fn modal_problem(view: &Value) -> Result<(), &'static str> {
    if view["type"] != "modal" {
        return Err("invalid_arguments");
    }
    let title = view["title"]["text"].as_str().unwrap_or("");
    if title.is_empty()
        || title.chars().count() > TITLE_MAX
        || view["title"]["type"] != "plain_text"
    {
        return Err("invalid_arguments");
    }
    let has_input = view["blocks"]
        .as_array()
        .is_some_and(|b| b.iter().any(|block| block["type"] == "input"));
    if has_input && view["submit"]["text"].as_str().unwrap_or("").is_empty() {
        return Err("invalid_arguments");
    }
    Ok(())
}

/// The view id of `user`'s App Home.
pub(super) fn home_id(user: &str) -> String {
    format!("VHOME{user}")
}

impl OpenView {
    /// The view as Slack's answers and payloads carry it: with its `id`, `team_id`,
    /// `hash` and an empty `state`.
    pub fn stateful(&self) -> Value {
        let mut view = self.view.clone();
        view["id"] = json!(self.id);
        view["team_id"] = json!("T0PLAYGRND");
        view["hash"] = json!(self.hash);
        view["state"] = json!({ "values": {} });
        view
    }

    /// Shows `view` instead, with a new `hash`, as `views.update` or a submission's
    /// `response_action: update` does.
    pub(super) fn replace(&mut self, view: Value) {
        self.view = view;
        let n = self
            .hash
            .rsplit_once('.')
            .and_then(|(_, n)| n.parse::<u64>().ok())
            .unwrap_or(1);
        self.hash = format!("{}.{}", self.id.trim_start_matches('V'), n + 1);
    }
}

/// Why Slack would refuse `view` in a `response_action: update`, if it would.
pub(super) fn update_problem(view: &Value) -> Result<Value, &'static str> {
    let view = parse_view(view)?;
    modal_problem(&view)?;
    Ok(view)
}
