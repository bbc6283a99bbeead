//! `POST /slack/interactions`: button clicks and modal submissions over HTTP. The
//! signature is checked, the payload read, and the answer made by
//! [`Inbound::interaction`]: a bare 200 for a click (the work runs after it), or a
//! modal's `response_action`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use slack_morphism::prelude::SlackInteractionEvent;
use tracing::warn;

use super::{HttpState, form_urlencoded_pairs, verified};

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
    match state.inbound.interaction(event, signature).await.to_json() {
        Some(body) => Json(body).into_response(),
        None => StatusCode::OK.into_response(),
    }
}
