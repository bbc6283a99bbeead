//! The playground's own web server: the page (plain HTML, CSS and JS built into the
//! binary, no outside assets) and the JSON endpoints it uses. The page plays Slack's
//! client: what a person types or clicks is turned into the signed request Slack would
//! send ([`super::inbound`]), and what jitbot sent back is read from the Slack
//! stand-in.
//!
//! Anyone who can reach this server can act as any person in the catalog, so it
//! answers only requests addressed to a name it knows: loopback names, its own
//! address, and the names given with `--allow-host` (no DNS rebinding from a web
//! page, whatever address it listens on). A POST that says where it comes from
//! (`Origin`) must come from one of those names ([`super::hosts`]), and it takes JSON only (a
//! cross-site form cannot send it without a preflight, which it never grants).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::TimeDelta;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Engine;
use super::hosts::{Allowed, only_allowed};
use super::inbound::{Click, GENERAL};
use super::modals as views;
use crate::core::ids::SlackUserId;

const INDEX: &str = include_str!("page/index.html");
const CSS: &str = include_str!("page/page.css");
const MRKDWN_JS: &str = include_str!("page/mrkdwn.js");
const BLOCKS_JS: &str = include_str!("page/blocks.js");
const APP_JS: &str = include_str!("page/app.js");

/// Longest `/jit` text the page forwards; Slack's own limit is far below this.
const MAX_TEXT: usize = 4000;

pub(super) fn router(engine: Arc<Engine>, allowed: Allowed) -> Router {
    let asset = |body: &'static str, kind: &'static str| {
        get(move || async move {
            (
                [
                    (header::CONTENT_TYPE, kind),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                body,
            )
        })
    };
    let allowed = Arc::new(allowed);
    Router::new()
        .route("/", asset(INDEX, "text/html; charset=utf-8"))
        .route("/assets/page.css", asset(CSS, "text/css; charset=utf-8"))
        .route(
            "/assets/mrkdwn.js",
            asset(MRKDWN_JS, "text/javascript; charset=utf-8"),
        )
        .route(
            "/assets/blocks.js",
            asset(BLOCKS_JS, "text/javascript; charset=utf-8"),
        )
        .route(
            "/assets/app.js",
            asset(APP_JS, "text/javascript; charset=utf-8"),
        )
        .route("/playground/state", get(state))
        .route("/playground/command", post(command))
        .route("/playground/click", post(click))
        .route("/playground/click-private", post(click_private))
        .route("/playground/advance", post(advance))
        .route("/playground/view/submit", post(views::submit))
        .route("/playground/view/close", post(views::close))
        .route("/playground/view/act", post(views::act))
        .route("/playground/view/suggest", post(views::suggest))
        .route("/playground/home", post(views::home))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            let allowed = allowed.clone();
            async move { only_allowed(&allowed, req, next).await }
        }))
        .with_state(engine)
}

pub(super) fn refuse(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": message.into() })),
    )
        .into_response()
}

/// A person the catalog knows, or why not.
pub(super) fn person(engine: &Engine, user: &str) -> Result<SlackUserId, String> {
    let id: SlackUserId = user.parse()?;
    if engine.workspace.people.iter().any(|p| p.id == id.as_str()) {
        Ok(id)
    } else {
        Err(format!("{id} is not in this playground's workspace"))
    }
}

async fn state(State(engine): State<Arc<Engine>>) -> Response {
    Json(engine.view().await).into_response()
}

#[derive(Deserialize)]
struct Typed {
    user: String,
    text: String,
}

/// `/jit …` typed as `user`: the immediate answer shows to them alone, as in Slack.
async fn command(State(engine): State<Arc<Engine>>, Json(typed): Json<Typed>) -> Response {
    let user = match person(&engine, &typed.user) {
        Ok(u) => u,
        Err(why) => return refuse(why),
    };
    // The page shows `/jit` before the input; a typed one is taken off too.
    let text = typed.text.trim();
    let text = match text.strip_prefix("/jit") {
        Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => rest.trim(),
        _ => text,
    };
    if text.chars().count() > MAX_TEXT {
        return refuse("that command is too long");
    }
    let response_url = engine.slack.response_url_for(user.as_str(), None);
    let trigger_id = engine.trigger_for(user.as_str());
    match engine
        .inbound
        .command(user.as_str(), text, &response_url, &trigger_id)
        .await
    {
        Ok((status, answer, blocks)) => {
            let (shown, blocks) = if status == 200 {
                (answer, blocks)
            } else {
                (format!("jitbot answered HTTP {status}"), Value::Null)
            };
            // An empty ack shows nothing, as in Slack (the form opens instead).
            if !shown.is_empty() {
                let typed = format!("/jit {text}");
                engine.slack.show_ephemeral_blocks(
                    user.as_str(),
                    Some(typed.trim_end()),
                    &shown,
                    blocks,
                );
            }
            Json(json!({ "status": status, "text": shown })).into_response()
        }
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            Json(json!({ "error": e.to_string() })),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct Clicked {
    user: String,
    channel: String,
    ts: String,
    block_id: String,
    action_id: String,
    value: String,
}

/// A button on a message, clicked as `user`.
async fn click(State(engine): State<Arc<Engine>>, Json(c): Json<Clicked>) -> Response {
    let user = match person(&engine, &c.user) {
        Ok(u) => u,
        Err(why) => return refuse(why),
    };
    if engine.slack.message(&c.channel, &c.ts).is_none() {
        return refuse("there is no such message");
    }
    let response_url = engine
        .slack
        .response_url_for(user.as_str(), Some((&c.channel, &c.ts)));
    let trigger_id = engine.trigger_for(user.as_str());
    let sent = Click {
        user: user.as_str(),
        channel: &c.channel,
        message_ts: &c.ts,
        block_id: &c.block_id,
        action_id: &c.action_id,
        value: &c.value,
        response_url: &response_url,
        trigger_id: &trigger_id,
        ephemeral: false,
    };
    match engine.inbound.click(&sent).await {
        Ok(status) => Json(json!({ "status": status })).into_response(),
        Err(e) => unanswered(e),
    }
}

#[derive(Deserialize)]
struct PrivateClick {
    user: String,
    /// The message's place in the stand-in's ephemerals.
    n: usize,
    block_id: String,
    action_id: String,
    value: String,
}

/// A button on a message only `user` sees (a command's answer), clicked by them.
async fn click_private(State(engine): State<Arc<Engine>>, Json(c): Json<PrivateClick>) -> Response {
    let user = match person(&engine, &c.user) {
        Ok(u) => u,
        Err(why) => return refuse(why),
    };
    let mine = engine
        .slack
        .ephemerals()
        .get(c.n)
        .is_some_and(|e| e.user == user.as_str() && e.blocks.is_array());
    if !mine {
        return refuse("there is no such message of yours");
    }
    let response_url = engine.slack.response_url_for_ephemeral(user.as_str(), c.n);
    let trigger_id = engine.trigger_for(user.as_str());
    let ts = format!("1700000000.{:06}", c.n);
    let sent = Click {
        user: user.as_str(),
        channel: GENERAL,
        message_ts: &ts,
        block_id: &c.block_id,
        action_id: &c.action_id,
        value: &c.value,
        response_url: &response_url,
        trigger_id: &trigger_id,
        ephemeral: true,
    };
    match engine.inbound.click(&sent).await {
        Ok(status) => Json(json!({ "status": status })).into_response(),
        Err(e) => unanswered(e),
    }
}

/// jitbot did not answer.
pub(super) fn unanswered(e: super::inbound::Unanswered) -> Response {
    (
        StatusCode::BAD_GATEWAY,
        Json(json!({ "error": e.to_string() })),
    )
        .into_response()
}

#[derive(Deserialize)]
struct Forward {
    minutes: i64,
}

/// Moves the playground's clock forward and runs the sweep and the reconciler at once.
async fn advance(State(engine): State<Arc<Engine>>, Json(f): Json<Forward>) -> Response {
    if let Err(why) = engine.may_jump() {
        return (StatusCode::CONFLICT, Json(json!({ "error": why }))).into_response();
    }
    if !(1..=24 * 60).contains(&f.minutes) {
        return refuse("move the clock by 1 minute to 24 hours");
    }
    match engine.advance(TimeDelta::minutes(f.minutes)).await {
        Ok(done) => Json(done).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": e.to_string() })),
        )
            .into_response(),
    }
}
