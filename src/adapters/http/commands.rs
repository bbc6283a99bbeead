//! `POST /slack/commands`: the `/jit` slash command over HTTP. The signature is
//! checked, the form read, and the answer made by [`Inbound::command`].

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use slack_morphism::prelude::SlackCommandEvent;
use tracing::warn;

use super::{HttpState, is_ssl_check, verified};

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
    match state.inbound.command(event, signature).await.to_json() {
        Some(body) => Json(body).into_response(),
        None => StatusCode::OK.into_response(),
    }
}
