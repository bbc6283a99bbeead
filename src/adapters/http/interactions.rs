//! `POST /slack/interactions`: button clicks on approval cards (Approve, Deny) and
//! on expiry warnings (Revoke now). The click is acknowledged at once; the decision
//! runs after, and a refusal ("you are not an approver for payments-db") reaches the
//! clicker alone through the interaction's `response_url`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use slack_morphism::prelude::{SlackInteractionActionInfo, SlackInteractionEvent};
use tracing::{debug, warn};

use super::{HttpState, first_sight, form_urlencoded_pairs, in_background, verified};
use crate::app::{AppError, Decision};
use crate::core::actions::{APPROVE, DENY, REVOKE, parse_decision_value};
use crate::core::command::Reason;
use crate::core::ids::SlackUserId;

pub(super) async fn handle(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signature = match verified(&state, &headers, &body) {
        Ok(signature) => signature,
        Err(refused) => return refused.into_response(),
    };
    let Some(payload) = form_urlencoded_pairs(&body)
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v)
    else {
        warn!("a signed interaction had no payload");
        return StatusCode::BAD_REQUEST.into_response();
    };
    let event: SlackInteractionEvent = match serde_json::from_str(&payload) {
        Ok(e) => e,
        Err(e) => {
            warn!(error = %e, "a signed interaction could not be read");
            return StatusCode::BAD_REQUEST.into_response();
        }
    };
    let SlackInteractionEvent::BlockActions(click) = event else {
        debug!("ignored an interaction that is not a button click");
        return StatusCode::OK.into_response();
    };
    let Some(user) = click
        .user
        .as_ref()
        .and_then(|u| u.id.to_string().parse::<SlackUserId>().ok())
    else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let response_url = click.response_url.as_ref().map(|u| u.0.to_string());
    let actions = click.actions.unwrap_or_default();
    let tracker = state.clone();
    in_background(&tracker, async move {
        // A replayed click (the same signed request again) changes nothing.
        if let Err(refusal) = first_sight(&state, &signature).await {
            answer(&state, response_url.as_deref(), &refusal, false).await;
            return;
        }
        for action in &actions {
            act(&state, &user, action, response_url.as_deref()).await;
        }
    });
    StatusCode::OK.into_response()
}

async fn act(
    state: &HttpState,
    user: &SlackUserId,
    action: &SlackInteractionActionInfo,
    response_url: Option<&str>,
) {
    let Some((id, round)) = action.value.as_deref().and_then(parse_decision_value) else {
        warn!(action = %action.action_id, "a button click carried no request id");
        return;
    };
    let app = &state.app;
    let result: Result<Option<String>, AppError> = match action.action_id.to_string().as_str() {
        APPROVE => app
            .decide(&id, user, Decision::Approve, round)
            .await
            .map(|_| None),
        DENY => app
            .decide(&id, user, Decision::Deny { note: None }, round)
            .await
            .map(|_| None),
        REVOKE => {
            let reason = Reason::new("revoked from the expiry warning", 0).ok();
            app.revoke(&id, user, reason)
                .await
                .map(|revocation| Some(revocation.sentence()))
        }
        other => {
            debug!(action = other, "ignored a click on an unknown action");
            return;
        }
    };
    let (text, done) = match result {
        Ok(None) => return, // the card update says it all
        Ok(Some(text)) => (text, true),
        Err(e) => {
            if let AppError::StoreUnavailable(why) | AppError::Internal(why) = &e {
                warn!(request_id = %id, error = %why, "a button click failed");
            }
            (e.to_string(), false)
        }
    };
    answer(state, response_url, &text, done).await;
}

/// Tells the clicker alone, through the interaction's `response_url`.
async fn answer(state: &HttpState, response_url: Option<&str>, text: &str, done: bool) {
    if let Some(url) = response_url
        && let Err(e) = state.slack.respond(url, text, done).await
    {
        state.app.metrics().slack_error(e.kind());
        warn!(error = %e, "could not answer a button click");
    }
}
