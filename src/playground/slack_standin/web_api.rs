//! The stand-in's HTTP side: `POST|GET /api/{method}` for the Web API and
//! `POST /respond/{name}` for `response_url`s.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::{Call, Ephemeral, Posted, Scripted, Shared, World};

type St = State<Arc<Shared>>;

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/{method}", post(api).get(api_get))
        .route("/respond/{name}", post(respond))
        .with_state(shared)
}

/// The `Authorization` header as it arrived.
fn authorization(headers: &HeaderMap) -> Option<String> {
    headers
        .get("authorization")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// Records a call and takes the answer scripted for it, if any.
fn record(shared: &Shared, method: &str, headers: &HeaderMap, body: Value) -> Option<Scripted> {
    shared.change(|w| {
        w.calls.push(Call {
            method: method.to_owned(),
            body,
            at: std::time::Instant::now(),
            authorization: authorization(headers),
        });
        w.scripted.get_mut(method).and_then(|q| q.pop_front())
    })
}

pub(super) fn envelope(v: Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

pub(super) fn error(code: &str) -> Response {
    envelope(json!({ "ok": false, "error": code }))
}

async fn api_get(
    state: St,
    Path(method): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let body: Value = serde_urlencoded::from_str::<HashMap<String, String>>(&q.unwrap_or_default())
        .map(|m| json!(m))
        .unwrap_or(Value::Null);
    answer(state, method, headers, body)
}

async fn api(state: St, Path(method): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let is_json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    let body: Value = if is_json {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    } else {
        serde_urlencoded::from_bytes::<HashMap<String, String>>(&body)
            .map(|m| json!(m))
            .unwrap_or(Value::Null)
    };
    answer(state, method, headers, body)
}

/// While Slack is down, counts the call and answers 503 without recording it.
fn refused(shared: &Shared) -> bool {
    shared.change(|w| {
        w.refused += u64::from(w.down);
        w.down
    })
}

fn answer(State(shared): St, method: String, headers: HeaderMap, body: Value) -> Response {
    if refused(&shared) {
        return (StatusCode::SERVICE_UNAVAILABLE, "Slack is unavailable").into_response();
    }
    match record(&shared, &method, &headers, body.clone()) {
        Some(Scripted::RateLimited { retry_after_secs }) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [
                    ("retry-after", retry_after_secs.to_string()),
                    ("content-type", "application/json".into()),
                ],
                json!({ "ok": false, "error": "ratelimited" }).to_string(),
            )
                .into_response();
        }
        Some(Scripted::Error(code)) => return error(code),
        Some(Scripted::Unavailable) => {
            return (StatusCode::SERVICE_UNAVAILABLE, "Slack is unavailable").into_response();
        }
        Some(Scripted::AsUsual) | None => {}
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if method == "apps.connections.open" {
        // Socket Mode: the app-level token, not the bot token.
        return if bearer == format!("Bearer {}", shared.socket.app_token) {
            envelope(json!({ "ok": true, "url": shared.socket.open() }))
        } else if bearer.is_empty() {
            error("not_authed")
        } else if bearer.starts_with("Bearer xoxb-") {
            error("not_allowed_token_type")
        } else {
            error("invalid_auth")
        };
    }
    let now = shared.clock.now();
    shared.change(|w| {
        if bearer != format!("Bearer {}", w.token) {
            return error(if bearer.is_empty() {
                "not_authed"
            } else {
                "invalid_auth"
            });
        }
        web_method(w, &method, body, now)
    })
}

/// One Web API method on the world; the token has been checked.
fn web_method(
    w: &mut World,
    method: &str,
    body: Value,
    now: chrono::DateTime<chrono::Utc>,
) -> Response {
    let channel = body["channel"].as_str().unwrap_or("").to_owned();
    match method {
        "chat.postMessage" => {
            if !w.channels.contains(&channel) {
                return error("channel_not_found");
            }
            w.next_ts += 1;
            let ts = format!("1700000000.{:06}", w.next_ts);
            let thread_ts = body["thread_ts"].as_str().map(str::to_owned);
            let posted = Posted {
                channel: channel.clone(),
                ts: ts.clone(),
                thread_ts,
                body: body.clone(),
                posted_at: now,
                edited_at: None,
            };
            w.messages.insert((channel.clone(), ts.clone()), posted);
            let message = as_posted(&body, &ts);
            envelope(json!({ "ok": true, "channel": channel, "ts": ts, "message": message }))
        }
        "chat.update" => {
            let ts = body["ts"].as_str().unwrap_or("").to_owned();
            let Some(m) = w.messages.get_mut(&(channel.clone(), ts.clone())) else {
                return error("message_not_found");
            };
            let message = as_posted(&body, &ts);
            m.body = body;
            m.edited_at = Some(now);
            envelope(json!({
                "ok": true,
                "channel": channel,
                "ts": ts,
                "text": message["text"],
                "message": message,
            }))
        }
        "chat.postEphemeral" => {
            if !w.channels.contains(&channel) {
                return error("channel_not_found");
            }
            w.ephemerals.push(Ephemeral {
                user: body["user"].as_str().unwrap_or("").to_owned(),
                at: now,
                text: body["text"].as_str().unwrap_or("").to_owned(),
                command: None,
                via: "chat.postEphemeral",
                blocks: body["blocks"].clone(),
            });
            envelope(json!({ "ok": true, "message_ts": "1700000000.000001" }))
        }
        "conversations.open" => {
            // A form-encoded call sends `users` comma-separated; a JSON one may send
            // an array.
            let users = match &body["users"] {
                Value::Array(users) => users
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.as_str().unwrap_or("").to_owned(),
            };
            let user = users.as_str();
            if user.is_empty() || user.contains(',') {
                // jitbot only opens one-to-one DMs.
                return error("users_list_not_supplied");
            }
            let dm = format!("D{}", user.trim_start_matches(['U', 'W']));
            w.channels.insert(dm.clone());
            w.dms.insert(user.to_owned(), dm.clone());
            envelope(json!({ "ok": true, "channel": { "id": dm } }))
        }
        "views.open" | "views.update" | "views.publish" => super::views::method(w, method, body),
        "usergroups.users.list" => match w.groups.get(body["usergroup"].as_str().unwrap_or("")) {
            Some(users) => envelope(json!({ "ok": true, "users": users })),
            None => error("no_such_subteam"),
        },
        _ => error("unknown_method"),
    }
}

/// The bot user the stand-in posts as.
const BOT_ID: &str = "B0JITBOT01";
const BOT_USER: &str = "U0JITBOT01";

/// A message as Slack's answers describe it: what was sent, stamped with its `ts` and
/// the bot that posted it.
fn as_posted(body: &Value, ts: &str) -> Value {
    let mut message = json!({
        "type": "message",
        "ts": ts,
        "user": BOT_USER,
        "bot_id": BOT_ID,
        "text": body["text"],
    });
    if body["blocks"].is_array() {
        message["blocks"] = body["blocks"].clone();
    }
    if let Some(thread) = body["thread_ts"].as_str() {
        message["thread_ts"] = json!(thread);
    }
    message
}

/// A post to a `response_url`. One the stand-in handed out for a person shows to that
/// person alone, or replaces the clicked message when `replace_original` is set.
async fn respond(
    State(shared): St,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    record(&shared, &format!("respond:{name}"), &headers, body.clone());
    let now = shared.clock.now();
    let text = body["text"].as_str().unwrap_or("").to_owned();
    shared.change(|w| {
        let Some(origin) = w.origins.get(&name).cloned() else {
            return;
        };
        let blocks = body["blocks"].clone();
        if body["replace_original"] == true {
            if let Some(m) = origin.message.and_then(|key| w.messages.get_mut(&key)) {
                m.body = json!({ "channel": m.channel, "ts": m.ts, "text": text });
                m.edited_at = Some(now);
                return;
            }
            if let Some(e) = origin.ephemeral.and_then(|n| w.ephemerals.get_mut(n)) {
                e.text = text;
                e.blocks = blocks;
                e.at = now;
                return;
            }
        }
        w.ephemerals.push(Ephemeral {
            user: origin.user,
            at: now,
            text,
            command: None,
            via: "response_url",
            blocks,
        });
    });
    envelope(json!({ "ok": true }))
}
