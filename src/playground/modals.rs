//! The page's endpoints for views: what a person does in a modal jitbot opened
//! (submit it, close it, click or change something in it, type in an
//! `external_select`) and in the App Home (open the tab, click its buttons). Each is
//! sent to jitbot as Slack sends it ([`super::inbound`]), and what jitbot answers is
//! done to the view as Slack does it: an empty ack to a submission closes the modal,
//! `response_action: errors` keeps it open with the errors under the fields,
//! `update` shows the new view.
//!
//! A person reaches only their own views: a modal opened with their `trigger_id`,
//! and their own App Home.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Engine;
use super::inbound::ViewAct;
use super::server::{person, refuse, unanswered};
use super::slack_standin::OpenView;

/// The element types whose actions a view sends as `block_actions`.
const ACTION_TYPES: [&str; 6] = [
    "button",
    "static_select",
    "external_select",
    "radio_buttons",
    "checkboxes",
    "overflow",
];

/// Longest `block_id`, `action_id`, value or typed text the page forwards (Slack's
/// own limits are 255 and 2000).
const MAX_FIELD: usize = 3000;

/// The view `id` if it is `user`'s: a modal opened for them, or their App Home.
fn own_view(engine: &Engine, user: &str, id: &str) -> Result<OpenView, &'static str> {
    if let Some(open) = engine.slack.open_view(id) {
        if open.user == user {
            return Ok(open);
        }
        return Err("that modal is someone else's");
    }
    match engine.slack.home_view(user) {
        Some(home) if home.id == id => Ok(home),
        _ => Err("there is no such view open"),
    }
}

/// `state.values` as the page sends them: `{block_id: {action_id: {type, …}}}`.
fn values_of(values: Value) -> Result<Value, &'static str> {
    match values {
        Value::Null => Ok(json!({})),
        Value::Object(blocks) if blocks.values().all(|b| b.is_object()) => {
            Ok(Value::Object(blocks))
        }
        _ => Err("values must be an object of blocks"),
    }
}

fn too_long(fields: &[&str]) -> bool {
    fields.iter().any(|f| f.chars().count() > MAX_FIELD)
}

#[derive(Deserialize)]
pub(super) struct Submitted {
    user: String,
    view_id: String,
    #[serde(default)]
    values: Value,
}

/// A modal submitted: `view_submission` to jitbot, then what Slack does with the
/// answer. Answers `outcome` `closed`, `errors` (with `errors` by block id),
/// `updated`, or `failed` (the modal stays open, as Slack keeps it when the app
/// fails to answer).
pub(super) async fn submit(
    State(engine): State<Arc<Engine>>,
    Json(s): Json<Submitted>,
) -> Response {
    let user = match person(&engine, &s.user) {
        Ok(u) => u,
        Err(why) => return refuse(why),
    };
    let open = match own_view(&engine, user.as_str(), &s.view_id) {
        Ok(open) if open.view["type"] == "modal" => open,
        Ok(_) => return refuse("only a modal is submitted"),
        Err(why) => return refuse(why),
    };
    let values = match values_of(s.values) {
        Ok(v) => v,
        Err(why) => return refuse(why),
    };
    let answer = engine
        .inbound
        .submit(user.as_str(), &open.stateful(), &values)
        .await;
    let (status, answer) = match answer {
        Ok(done) => done,
        Err(e) => return unanswered(e),
    };
    if status != 200 {
        let error = format!("jitbot answered HTTP {status}");
        return Json(json!({ "status": status, "outcome": "failed", "error": error }))
            .into_response();
    }
    let answer = answer.unwrap_or(Value::Null);
    let outcome = match answer["response_action"].as_str() {
        Some("errors") => {
            return Json(
                json!({ "status": status, "outcome": "errors", "errors": answer["errors"] }),
            )
            .into_response();
        }
        // Slack pushes a new view on the stack; the page shows only the top one.
        Some("update") | Some("push") => match engine.slack.replace_view(&open.id, &answer["view"])
        {
            Ok(_) => "updated",
            Err(code) => {
                let error = format!("Slack refused the view jitbot answered with: {code}");
                return Json(json!({ "status": status, "outcome": "failed", "error": error }))
                    .into_response();
            }
        },
        _ => {
            engine.slack.close_view(&open.id);
            "closed"
        }
    };
    Json(json!({ "status": status, "outcome": outcome })).into_response()
}

#[derive(Deserialize)]
pub(super) struct Closed {
    user: String,
    view_id: String,
}

/// A modal's Close button: `view_closed` to jitbot if the view asked for it
/// (`notify_on_close`), and the modal closes either way.
pub(super) async fn close(State(engine): State<Arc<Engine>>, Json(c): Json<Closed>) -> Response {
    let user = match person(&engine, &c.user) {
        Ok(u) => u,
        Err(why) => return refuse(why),
    };
    let open = match own_view(&engine, user.as_str(), &c.view_id) {
        Ok(open) if open.view["type"] == "modal" => open,
        Ok(_) => return refuse("only a modal is closed"),
        Err(why) => return refuse(why),
    };
    engine.slack.close_view(&open.id);
    if open.view["notify_on_close"] != true {
        return Json(json!({ "notified": false })).into_response();
    }
    match engine.inbound.closed(user.as_str(), &open.stateful()).await {
        Ok(status) => Json(json!({ "notified": true, "status": status })).into_response(),
        Err(e) => unanswered(e),
    }
}

#[derive(Deserialize)]
pub(super) struct Acted {
    user: String,
    view_id: String,
    #[serde(default)]
    values: Value,
    /// `{type, action_id, block_id, value | selected_option | selected_options}`.
    action: Value,
}

/// A click or change in a modal or the App Home: `block_actions` with the view as
/// its container.
pub(super) async fn act(State(engine): State<Arc<Engine>>, Json(a): Json<Acted>) -> Response {
    let user = match person(&engine, &a.user) {
        Ok(u) => u,
        Err(why) => return refuse(why),
    };
    let open = match own_view(&engine, user.as_str(), &a.view_id) {
        Ok(open) => open,
        Err(why) => return refuse(why),
    };
    let values = match values_of(a.values) {
        Ok(v) => v,
        Err(why) => return refuse(why),
    };
    let kind = a.action["type"].as_str().unwrap_or("");
    let action_id = a.action["action_id"].as_str().unwrap_or("");
    let block_id = a.action["block_id"].as_str().unwrap_or("");
    if !ACTION_TYPES.contains(&kind) || action_id.is_empty() {
        return refuse("an action needs a known type and an action_id");
    }
    let value = a.action["value"].as_str().unwrap_or("");
    if too_long(&[action_id, block_id, value]) {
        return refuse("that action is too long");
    }
    let trigger_id = engine.trigger_for(user.as_str());
    let act = ViewAct {
        user: user.as_str(),
        view: &open.stateful(),
        values: &values,
        action: &a.action,
        trigger_id: &trigger_id,
    };
    match engine.inbound.view_act(&act).await {
        Ok(status) => Json(json!({ "status": status })).into_response(),
        Err(e) => unanswered(e),
    }
}

#[derive(Deserialize)]
pub(super) struct Typed {
    user: String,
    view_id: String,
    block_id: String,
    action_id: String,
    value: String,
}

/// Typing in an `external_select`: `block_suggestion` to jitbot; answers its
/// `options` or `option_groups`.
pub(super) async fn suggest(State(engine): State<Arc<Engine>>, Json(t): Json<Typed>) -> Response {
    let user = match person(&engine, &t.user) {
        Ok(u) => u,
        Err(why) => return refuse(why),
    };
    let open = match own_view(&engine, user.as_str(), &t.view_id) {
        Ok(open) => open,
        Err(why) => return refuse(why),
    };
    if too_long(&[&t.block_id, &t.action_id, &t.value]) {
        return refuse("that is too long");
    }
    let answer = engine
        .inbound
        .suggest(
            user.as_str(),
            &open.stateful(),
            &t.block_id,
            &t.action_id,
            &t.value,
        )
        .await;
    match answer {
        Ok((status, options)) => {
            let options = options.unwrap_or_else(|| json!({ "options": [] }));
            Json(json!({ "status": status, "options": options })).into_response()
        }
        Err(e) => unanswered(e),
    }
}

#[derive(Deserialize)]
pub(super) struct Opened {
    user: String,
}

/// The Home tab opened: `app_home_opened` to jitbot's Events API. The home shows in
/// the page's state once jitbot publishes it.
pub(super) async fn home(State(engine): State<Arc<Engine>>, Json(o): Json<Opened>) -> Response {
    let user = match person(&engine, &o.user) {
        Ok(u) => u,
        Err(why) => return refuse(why),
    };
    match engine.inbound.home_opened(user.as_str()).await {
        Ok(status) => Json(json!({ "status": status })).into_response(),
        Err(e) => unanswered(e),
    }
}
