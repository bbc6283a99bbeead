//! `POST /slack/commands`: the `/jit` slash command. Every answer is ephemeral (only
//! the person who typed sees it) and comes at once; a revoke, which talks to the
//! cluster, reports its result through `response_url`.

use std::fmt::Write;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use slack_morphism::prelude::SlackCommandEvent;
use tracing::{info, warn};

use super::{HttpState, first_sight, in_background, is_ssl_check, verified};
use crate::app::{AppError, Submission};
use crate::core::command::{self, Command, USAGE};
use crate::core::ids::SlackUserId;
use crate::core::request::State as RequestState;

pub(super) async fn handle(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signature = match verified(&state, &headers, &body) {
        Ok(signature) => signature,
        Err(refused) => return refused.into_response(),
    };
    if is_ssl_check(&body) {
        return StatusCode::OK.into_response();
    }
    let event: SlackCommandEvent = match serde_urlencoded::from_bytes(&body) {
        Ok(e) => e,
        Err(e) => {
            warn!(error = %e, "a signed slash command could not be read");
            return StatusCode::BAD_REQUEST.into_response();
        }
    };
    let text = answer(&state, &event, &signature).await;
    Json(json!({ "response_type": "ephemeral", "text": text })).into_response()
}

async fn answer(state: &Arc<HttpState>, event: &SlackCommandEvent, signature: &str) -> String {
    let user: SlackUserId = match event.user_id.to_string().parse() {
        Ok(u) => u,
        Err(e) => return format!("jitbot cannot read your Slack id: {e}"),
    };
    let app = &state.app;
    let text = event.text.as_deref().unwrap_or("");
    let cmd = match command::parse(text, app.catalog()) {
        Ok(c) => c,
        Err(e) => return e.to_string(),
    };
    // A command that changes something is acted on once, however often its signed
    // request is replayed; reading commands need no such check.
    let changes = matches!(
        cmd,
        Command::Request { .. } | Command::Extend { .. } | Command::Revoke { .. }
    );
    if changes && let Err(refusal) = first_sight(state, signature).await {
        return refusal;
    }
    match cmd {
        Command::Help => help(),
        Command::Targets => targets(state),
        Command::List => list(state, &user).await,
        Command::Request {
            target,
            duration,
            from,
            reason,
        } => {
            let submission = Submission {
                requester: user,
                target,
                duration,
                from,
                reason,
            };
            match app.submit(submission).await {
                Ok(req) => {
                    let channel = app
                        .catalog()
                        .target(req.target.as_str())
                        .map(|t| format!("<#{}>", t.approval_channel))
                        .unwrap_or_default();
                    format!(
                        "Request `{}` for *{}* ({}) sent to {channel} for approval.",
                        req.id, req.target, req.duration
                    )
                }
                Err(e) => sentence(&e),
            }
        }
        Command::Extend { id, duration } => match app.extend(&id, &user, duration).await {
            Ok(_) => {
                format!("Asked for *{duration}* more on `{id}`; the approvers were asked again.")
            }
            Err(e) => sentence(&e),
        },
        Command::Revoke { id, reason } => {
            let url = event.response_url.0.to_string();
            let shown = id.clone();
            let worker = state.clone();
            in_background(state, async move {
                let state = worker;
                let text = match state.app.revoke(&id, &user, reason).await {
                    Ok(revocation) => revocation.sentence(),
                    Err(e) => sentence(&e),
                };
                if let Err(e) = state.slack.respond(&url, &text, false).await {
                    state.app.metrics().slack_error(e.kind());
                    warn!(request_id = %id, error = %e, "could not report the revoke back to Slack");
                }
            });
            format!("Revoking `{shown}`…")
        }
    }
}

/// The sentence a person sees for an error; the details go to the log.
fn sentence(e: &AppError) -> String {
    if let AppError::StoreUnavailable(why) | AppError::Internal(why) = e {
        warn!(error = %why, "a /jit command failed");
    }
    e.to_string()
}

fn help() -> String {
    format!(
        "*jitbot* opens a network path for a limited time, once an approver agrees.\n\
         • `/jit request <target> <duration> [from <address>] <reason…>`: ask for access, e.g. `/jit request payments-db 30m INC-4411 replica lag`\n\
         • `/jit list`: your requests and grants\n\
         • `/jit revoke <id> [reason…]`: end a grant now\n\
         • `/jit extend <id> <duration>`: ask for more time (approved again)\n\
         • `/jit targets`: what you can ask for\n\
         Durations look like `15m`, `2h` or `1h30m`.\nUsage: `{USAGE}`"
    )
}

fn targets(state: &HttpState) -> String {
    let catalog = state.app.catalog();
    if catalog.targets().is_empty() {
        return "There are no targets yet; ask your platform team to add some to jitbot's catalog."
            .to_owned();
    }
    let mut out = String::from("*Targets*\n");
    for t in catalog.targets() {
        let ports: Vec<String> = t.ports.iter().map(|p| p.to_string()).collect();
        let _ = writeln!(
            out,
            "• `{}`: {} ({} in {}; default {}, up to {}; {} approval(s) in <#{}>)",
            t.name,
            if t.description.is_empty() {
                "no description"
            } else {
                &t.description
            },
            ports.join(", "),
            t.namespace,
            t.default_duration,
            t.max_duration,
            t.approvals_required,
            t.approval_channel
        );
    }
    out
}

async fn list(state: &HttpState, user: &SlackUserId) -> String {
    let requests = match state.app.list_for(user).await {
        Ok(r) => r,
        Err(e) => return sentence(&e),
    };
    if requests.is_empty() {
        return "You have no requests yet. Try `/jit targets`.".to_owned();
    }
    let mut out = String::from("*Your requests* (newest first)\n");
    for r in requests.iter().take(15) {
        let when = match r.state {
            RequestState::Active => r
                .expires_at
                .map(|t| format!(" until {}", t.format("%H:%M UTC")))
                .unwrap_or_default(),
            RequestState::Pending => format!(
                " ({} of {} approvals)",
                r.approvals.len(),
                r.scope.approvals_required
            ),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "• `{}` {} {}: *{}*{when}",
            r.id, r.target, r.duration, r.state
        );
    }
    info!(user = %user, count = requests.len(), "listed requests");
    out
}
