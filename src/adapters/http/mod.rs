//! The HTTP surface: Slack's slash commands and interactions (signature checked
//! before anything reads the body), health, readiness and metrics.
//!
//! Slack wants an answer within 3 seconds, so handlers answer at once and do slow
//! work (the cluster, Slack's Web API) in the background, reporting back through the
//! request's `response_url` or the approval card.

mod commands;
mod interactions;
pub mod signature;
pub mod slack_request;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio_util::task::TaskTracker;
use tracing::warn;

use crate::adapters::slack::SlackApi;
use crate::app::{App, Readiness};
use crate::core::secret::Secret;
use crate::core::ttl::Ttl;

/// Largest body accepted from Slack; larger ones get 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// What the handlers need.
pub struct HttpState {
    pub app: App,
    pub signing_secret: Secret,
    /// For answers that come after the ack (`response_url`).
    pub slack: SlackApi,
    /// Work that runs after the ack; shutdown waits for it.
    pub background: TaskTracker,
}

/// The whole router, so tests can serve it on port 0.
pub fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/slack/commands", post(commands::handle))
        .route("/slack/interactions", post(interactions::handle))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Ready when the store and the cluster both answer; otherwise 503 saying which not.
async fn readyz(State(state): State<Arc<HttpState>>) -> (StatusCode, String) {
    let Readiness { store, cluster } = state.app.readiness().await;
    let mut down = Vec::new();
    if let Err(e) = store {
        warn!(error = %e, "not ready: the store does not answer");
        down.push("store unreachable");
    }
    if let Err(e) = cluster {
        warn!(error = %e, "not ready: the cluster does not answer");
        down.push("cluster unreachable");
    }
    if down.is_empty() {
        (StatusCode::OK, "ready".to_owned())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, down.join(", "))
    }
}

async fn metrics(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.app.metrics().encode(),
    )
}

/// Checks Slack's signature on a raw body; `Err` is the status to answer (401, no
/// detail), and the reason is logged.
/// Checks Slack's signature; on success, the signature itself, which names this exact
/// request (its timestamp and body) for [`first_sight`].
fn verified(state: &HttpState, headers: &HeaderMap, body: &Bytes) -> Result<String, StatusCode> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signature = header(signature::SIGNATURE_HEADER);
    signature::verify(
        state.signing_secret.expose(),
        header(signature::TIMESTAMP_HEADER),
        signature,
        body,
        state.app.now(),
    )
    .map_err(|e| {
        warn!(error = %e, "refused a request that is not signed by Slack");
        StatusCode::UNAUTHORIZED
    })?;
    Ok(signature.unwrap_or_default().trim().to_owned())
}

/// How long a signed request is remembered: as long as its timestamp would pass the
/// signature check, either side of now.
const REPLAY_WINDOW: Ttl = Ttl::from_secs(2 * signature::MAX_SKEW_SECS as u64);

/// Whether a verified request is seen for the first time. A replay (the same
/// timestamp and signature, so the same body) is refused; so is any request while
/// the store cannot say, since acting on it could act twice.
async fn first_sight(state: &HttpState, signature: &str) -> Result<(), String> {
    match state.app.first_sight(signature, REPLAY_WINDOW).await {
        Ok(true) => Ok(()),
        Ok(false) => {
            warn!("refused a replay of a signed Slack request");
            Err("jitbot already acted on this exact request, so it did nothing this time; send it again to make a new one".to_owned())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Slack's `ssl_check=1` probe asks only whether the endpoint answers.
fn is_ssl_check(body: &Bytes) -> bool {
    form_urlencoded_pairs(body).any(|(k, v)| k == "ssl_check" && v == "1")
}

fn form_urlencoded_pairs(body: &Bytes) -> impl Iterator<Item = (String, String)> + '_ {
    body.split(|b| *b == b'&').filter_map(|pair| {
        let text = std::str::from_utf8(pair).ok()?;
        let (k, v) = text.split_once('=').unwrap_or((text, ""));
        let decode = |s: &str| {
            urlencoding::decode(&s.replace('+', " "))
                .ok()
                .map(|c| c.into_owned())
        };
        Some((decode(k)?, decode(v)?))
    })
}

/// Runs slow work after the ack; a graceful shutdown waits for it.
fn in_background<F>(state: &HttpState, work: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    state.background.spawn(work);
}
