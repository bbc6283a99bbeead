//! The HTTP surface: Slack's slash commands, interactions and events (signature
//! checked before anything reads the body) with the probes on one listener, and
//! `/metrics` (with the probes again) on another, so a NetworkPolicy can tell them
//! apart.
//!
//! The handlers authenticate and decode; the answers are
//! [`crate::adapters::slack::inbound`]'s, the same as over Socket Mode, and come
//! within Slack's 3 seconds.

mod commands;
mod events;
mod interactions;
pub mod signature;
pub mod slack_request;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRef, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tracing::warn;

use crate::adapters::slack::inbound::Inbound;
use crate::app::{App, Readiness};
use crate::core::secret::Secret;
use crate::metrics::Dependency;

/// Largest body accepted from Slack; larger ones get 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// What the handlers need.
pub struct HttpState {
    pub inbound: Arc<Inbound>,
    pub signing_secret: Secret,
}

/// Slack's endpoints and the probes: what Slack (through the ingress) and the
/// kubelet reach. Tests serve it on port 0.
pub fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/slack/commands", post(commands::handle))
        .route("/slack/interactions", post(interactions::handle))
        .route("/slack/events", post(events::handle))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// The probes alone: what `server.listen` serves in Socket Mode, where Slack does
/// not reach jitbot over HTTP.
pub fn probes_router(app: App) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(app)
}

/// `/metrics` and the probes, for the monitoring namespace (`server.metrics_listen`).
pub fn metrics_router(app: App) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(app)
}

/// Alive while every background loop runs and comes round (see
/// [`crate::app::Health`]); 503 naming the loops that do not. A dependency outage
/// never fails it: restarting would not bring Redis back.
async fn healthz(State(app): State<App>) -> (StatusCode, String) {
    match app.health().liveness() {
        Ok(loops) => (StatusCode::OK, lines("ok", &loops)),
        Err(dead) => {
            warn!(loops = %dead.join("; "), "not alive: a background loop is stuck or gone");
            (StatusCode::SERVICE_UNAVAILABLE, lines("not alive", &dead))
        }
    }
}

/// Ready while this replica answers Slack, which it does (with a plain "temporarily
/// unavailable" of its own) while Redis or the API server is down; 503 once it is
/// stopping, so traffic leaves before it drains. The body and
/// `jitbot_dependency_up` say which dependency answers.
async fn readyz(State(app): State<App>) -> (StatusCode, String) {
    if app.health().is_stopping() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "stopping: this replica finishes what is in flight and takes no new requests\n"
                .to_owned(),
        );
    }
    let Readiness { store, cluster } = app.readiness().await;
    let mut said = Vec::new();
    for (dependency, answer) in [(Dependency::Store, store), (Dependency::Cluster, cluster)] {
        app.metrics().set_dependency_up(dependency, answer.is_ok());
        let name = dependency.as_str();
        match answer {
            Ok(()) => said.push(format!("{name}: ok")),
            Err(e) => {
                warn!(error = %e, "the {name} does not answer; Slack is told jitbot is temporarily unavailable");
                said.push(format!("{name}: unreachable (see the log)"));
            }
        }
    }
    (StatusCode::OK, lines("ready", &said))
}

fn lines(head: &str, rest: &[String]) -> String {
    let mut text = format!("{head}\n");
    for line in rest {
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// The Slack router's handlers that need only the app (the probes) take it as
/// their state, as the metrics router's do.
impl FromRef<Arc<HttpState>> for App {
    fn from_ref(state: &Arc<HttpState>) -> App {
        state.inbound.app().clone()
    }
}

async fn metrics(State(app): State<App>) -> impl IntoResponse {
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics().encode(),
    )
}

/// Checks Slack's signature on a raw body; `Err` is the status to answer (401, no
/// detail), and the reason is logged and counted. On success, the signature itself,
/// which names this exact request (its timestamp and body): the proof the inbound
/// side refuses replays by.
fn verified(state: &HttpState, headers: &HeaderMap, body: &Bytes) -> Result<String, StatusCode> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signature = header(signature::SIGNATURE_HEADER);
    let app = state.inbound.app();
    signature::verify(
        state.signing_secret.expose(),
        header(signature::TIMESTAMP_HEADER),
        signature,
        body,
        app.now(),
    )
    .map_err(|e| {
        warn!(error = %e, "refused a request that is not signed by Slack");
        app.metrics().signature_rejected(e.reason());
        StatusCode::UNAUTHORIZED
    })?;
    Ok(signature.unwrap_or_default().trim().to_owned())
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
