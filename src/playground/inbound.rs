//! Slack's inbound half, played by the playground: a slash command or a button click
//! encoded as Slack encodes it ([`crate::adapters::http::slack_request`]), signed
//! with the signing secret at the app clock's time ([`SignedHeaders`]) and POSTed over
//! loopback HTTP to the app's own `/slack/commands` and `/slack/interactions`, so the
//! real signature check and the real handlers run. The clock is the app's: after a
//! fast-forward a request signed at the wall clock's time would look five minutes
//! stale and be refused.

use std::sync::Arc;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::adapters::http::signature::SignedHeaders;
use crate::adapters::http::slack_request::{ButtonClick, FORM_CONTENT_TYPE, SlashCommand};
use crate::core::ports::Clock;
use crate::core::secret::Secret;

/// The app did not answer a forwarded request.
#[derive(Debug, thiserror::Error)]
#[error("jitbot did not answer {path}: {detail}")]
pub struct Unanswered {
    path: &'static str,
    detail: String,
}

/// A button click on a message, as the page reports it.
#[derive(Clone, Debug)]
pub struct Click<'a> {
    pub user: &'a str,
    pub channel: &'a str,
    pub message_ts: &'a str,
    pub block_id: &'a str,
    pub action_id: &'a str,
    pub value: &'a str,
    pub response_url: &'a str,
}

/// Sends signed requests to one jitbot.
#[derive(Clone)]
pub struct InboundSlack {
    app_base: String,
    secret: Secret,
    clock: Arc<dyn Clock>,
    http: Client<HttpConnector, Full<Bytes>>,
    /// Numbers each request's `trigger_id`, unique as Slack's are, so that two
    /// commands alike are two requests and not a replay of one.
    triggers: Arc<std::sync::atomic::AtomicU64>,
}

/// The team and channel the playground's commands are typed in.
const TEAM: &str = "T0PLAYGRND";
const GENERAL: &str = "C0GENERAL1";

impl InboundSlack {
    /// `app_base` is like `http://127.0.0.1:4000`.
    pub fn new(app_base: String, secret: Secret, clock: Arc<dyn Clock>) -> Self {
        InboundSlack {
            app_base,
            secret,
            clock,
            http: Client::builder(TokioExecutor::new()).build_http(),
            triggers: Arc::default(),
        }
    }

    fn trigger_id(&self) -> String {
        let n = self
            .triggers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("1.{n}.playground")
    }

    /// `/jit <text>` typed by `user`: returns the HTTP status and the ephemeral text.
    pub async fn command(
        &self,
        user: &str,
        text: &str,
        response_url: &str,
    ) -> Result<(u16, String), Unanswered> {
        let trigger_id = self.trigger_id();
        let body = SlashCommand {
            token: "deprecated-verification-token",
            team_id: TEAM,
            team_domain: "playground",
            channel_id: GENERAL,
            channel_name: "general",
            user_id: user,
            user_name: user,
            command: "/jit",
            text,
            response_url,
            trigger_id: &trigger_id,
        }
        .form();
        let (status, answer) = self.post_signed("/slack/commands", body).await?;
        let text = serde_json::from_slice::<Value>(&answer)
            .ok()
            .and_then(|v| v["text"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&answer).into_owned());
        Ok((status, text))
    }

    /// A `block_actions` click: returns the HTTP status.
    pub async fn click(&self, click: &Click<'_>) -> Result<u16, Unanswered> {
        let action_ts = format!("{}.000000", self.clock.now().timestamp());
        let trigger_id = self.trigger_id();
        let body = ButtonClick {
            team_id: TEAM,
            team_domain: "playground",
            user_id: click.user,
            user_name: click.user,
            api_app_id: "A0PLAYGRND",
            channel_id: click.channel,
            channel_name: click.channel,
            message_ts: click.message_ts,
            trigger_id: &trigger_id,
            response_url: click.response_url,
            action_id: click.action_id,
            block_id: click.block_id,
            value: click.value,
            action_ts: &action_ts,
        }
        .form();
        Ok(self.post_signed("/slack/interactions", body).await?.0)
    }

    async fn post_signed(
        &self,
        path: &'static str,
        body: String,
    ) -> Result<(u16, Bytes), Unanswered> {
        let fail = |detail: String| Unanswered { path, detail };
        let signed = SignedHeaders::sign(self.secret.expose(), self.clock.now(), body.as_bytes());
        let mut request = hyper::Request::post(format!("{}{path}", self.app_base))
            .header("content-type", FORM_CONTENT_TYPE);
        for (name, value) in signed.pairs() {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| fail(e.to_string()))?;
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| fail(e.to_string()))?
            .to_bytes();
        Ok((status, bytes))
    }
}
