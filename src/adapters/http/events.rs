//! `POST /slack/events`: the Events API over HTTP. Slack's `url_verification` is
//! answered with its challenge; an `event_callback` goes to [`Inbound::event`], keyed
//! by its `event_id`, so a retry (`X-Slack-Retry-Num`, after a slow or failed ack)
//! is acted on once. An event the store cannot check in time is answered 503, so
//! Slack retries it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use slack_morphism::prelude::SlackPushEventCallback;
use tracing::{debug, warn};

use super::{HttpState, verified};
use crate::adapters::slack::inbound::EventReply;

/// The envelope's `type`, read before the rest.
#[derive(Deserialize)]
struct Kind {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    challenge: Option<String>,
}

pub(super) async fn handle(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refused) = verified(&state, &headers, &body) {
        return refused.into_response();
    }
    let kind: Kind = match serde_json::from_slice(&body) {
        Ok(k) => k,
        Err(e) => {
            warn!(error = %e, "a signed event could not be read");
            return StatusCode::BAD_REQUEST.into_response();
        }
    };
    match kind.kind.as_str() {
        "url_verification" => {
            let challenge = kind.challenge.unwrap_or_default();
            ([("content-type", "text/plain")], challenge).into_response()
        }
        "event_callback" => {
            let event: SlackPushEventCallback = match serde_json::from_slice(&body) {
                Ok(e) => e,
                Err(e) => {
                    // An event type jitbot does not subscribe to, most likely.
                    debug!(error = %e, "ignored an event jitbot cannot read");
                    return StatusCode::OK.into_response();
                }
            };
            // A retry (`X-Slack-Retry-Num` 1, 2, 3 after a slow or failed ack) carries
            // the same `event_id`, which is what the inbound side acts on once.
            if let Some(retry) = headers.get("x-slack-retry-num") {
                debug!(
                    event_id = %event.event_id,
                    retry = retry.to_str().unwrap_or("?"),
                    reason = headers
                        .get("x-slack-retry-reason")
                        .and_then(|r| r.to_str().ok())
                        .unwrap_or(""),
                    "Slack retried an event"
                );
            }
            let proof = format!("event:{}", event.event_id);
            match state.inbound.event(event, proof).await {
                EventReply::Done => StatusCode::OK.into_response(),
                EventReply::Retry => StatusCode::SERVICE_UNAVAILABLE.into_response(),
            }
        }
        other => {
            debug!(
                kind = other,
                "ignored an Events API envelope jitbot does not use"
            );
            StatusCode::OK.into_response()
        }
    }
}
