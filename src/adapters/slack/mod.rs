//! The Slack Web API side, on slack-morphism: posting and updating messages, DMs,
//! modals and the App Home, ephemeral answers, and user-group lookups. Every Web API
//! call is slack-morphism's typed one (request and answer), with its method's own
//! rate tier, through slack-morphism's rate control, which waits out a 429's
//! `Retry-After` and tries again. Messages and
//! views are built as Block Kit JSON (where the limit checks apply) and converted;
//! `typed_tests` checks that nothing is lost in the conversion.
//!
//! The API URL is configurable (GovSlack, tests); a loopback `http://` URL works
//! because the connector accepts both schemes (settings refuse `http://` elsewhere:
//! see [`endpoint`]). Answers through a `response_url` go without the bot token, and
//! only to Slack's hooks hosts (or the loopback stand-in the API URL names).

pub mod blocks;
mod directory;
pub mod endpoint;
pub mod forms;
pub mod home;
pub mod inbound;
mod notifier;
pub mod socket;

use std::sync::Arc;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;
use tracing::warn;

pub use directory::SlackDirectory;
use endpoint::ResponseUrls;
pub use notifier::{SlackNotifier, SlackNotifierConfig};

type Connector = SlackClientHyperConnector<HttpsConnector<HttpConnector>>;

/// Every Slack Web API method jitbot calls, each with the bot scope it needs (`None`:
/// no scope, as for `views.*`, which need only the bot token). The Slack app manifest
/// asks for exactly [`bot_scopes`]; a test checks that every call the stand-in sees
/// over a whole flow is listed here. `apps.connections.open` (Socket Mode) is called
/// with the app-level token, whose `connections:write` is no bot scope.
pub const WEB_API_METHODS: &[(&str, Option<&str>)] = &[
    ("chat.postMessage", Some("chat:write")),
    ("chat.update", Some("chat:write")),
    ("conversations.open", Some("im:write")),
    ("usergroups.users.list", Some("usergroups:read")),
    ("views.open", None),
    ("views.update", None),
    ("views.publish", None),
    ("apps.connections.open", None),
];

/// The bot scopes jitbot needs: `commands` for `/jit`, and those of
/// [`WEB_API_METHODS`], each once, in that order.
pub fn bot_scopes() -> Vec<&'static str> {
    let mut scopes = vec!["commands"];
    for scope in WEB_API_METHODS.iter().filter_map(|(_, s)| *s) {
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    scopes
}

/// Why a Slack call failed, in a form the log and the metrics can use.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SlackError {
    /// Slack answered `{ok: false, error}`: e.g. `channel_not_found`, `invalid_auth`.
    #[error("Slack refused {method}: {code}")]
    Api { method: &'static str, code: String },
    /// Rate limited even after the retries; `retry_after` is Slack's last Retry-After.
    #[error("Slack rate-limited {method}")]
    RateLimited {
        method: &'static str,
        retry_after: Option<std::time::Duration>,
    },
    #[error("Slack could not be reached for {method}: {detail}")]
    Transport {
        method: &'static str,
        detail: String,
    },
    /// A `response_url` that is not Slack's: nothing was sent.
    #[error("refused to post to a response_url: {why}")]
    RefusedUrl { why: &'static str },
    /// jitbot built something Slack's typed API cannot carry (a bug): nothing was sent.
    #[error("could not send {method}: {detail}")]
    Unsendable {
        method: &'static str,
        detail: String,
    },
}

impl SlackError {
    /// A fixed label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            SlackError::Api { .. } => "api_error",
            SlackError::RateLimited { .. } => "rate_limited",
            SlackError::Transport { .. } => "transport",
            SlackError::RefusedUrl { .. } => "refused_url",
            SlackError::Unsendable { .. } => "unsendable",
        }
    }

    /// Whether trying again later may work: Slack unreachable, a 5xx, rate limits, or
    /// one of the errors Slack documents as passing. Anything else (a missing channel,
    /// a bad token) fails the same way every time.
    pub fn is_transient(&self) -> bool {
        match self {
            SlackError::Api { code, .. } => matches!(
                code.as_str(),
                "ratelimited"
                    | "internal_error"
                    | "fatal_error"
                    | "service_unavailable"
                    | "request_timeout"
            ),
            SlackError::RateLimited { .. } | SlackError::Transport { .. } => true,
            SlackError::RefusedUrl { .. } | SlackError::Unsendable { .. } => false,
        }
    }

    fn from_client(method: &'static str, e: SlackClientError) -> Self {
        match e {
            SlackClientError::ApiError(api) => SlackError::Api {
                method,
                code: api.code,
            },
            SlackClientError::RateLimitError(limited) => SlackError::RateLimited {
                method,
                retry_after: limited.retry_after,
            },
            other => SlackError::Transport {
                method,
                detail: other.to_string(),
            },
        }
    }
}

/// A Slack Web API client with the bot token.
#[derive(Clone)]
pub struct SlackApi {
    client: Arc<SlackClient<Connector>>,
    token: SlackApiToken,
    /// Which `response_url`s [`SlackApi::respond`] posts to.
    response_urls: ResponseUrls,
}

impl SlackApi {
    /// A client for `api_url` (e.g. `https://slack.com/api/`), retrying a 429 up to
    /// `max_retries` times after its `Retry-After`.
    pub fn new(api_url: &str, bot_token: &str, max_retries: usize) -> std::io::Result<Self> {
        let https_or_http = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()?
            .https_or_http()
            .enable_http1()
            .build();
        let connector = SlackClientHyperConnector::with_connector(https_or_http)
            .with_slack_api_url(api_url.trim_end_matches('/'))
            .with_rate_control(SlackApiRateControlConfig::new().with_max_retries(max_retries));
        Ok(SlackApi {
            client: Arc::new(SlackClient::new(connector)),
            token: SlackApiToken::new(SlackApiTokenValue::new(bot_token.to_owned())),
            response_urls: ResponseUrls::for_api_url(api_url),
        })
    }

    /// The slack-morphism client under this API (its connector takes `http://` on
    /// loopback too), for Socket Mode's connections.
    pub fn client(&self) -> Arc<SlackClient<Connector>> {
        self.client.clone()
    }

    /// Posts a message (optionally in a thread) and returns `(channel, ts)`.
    pub async fn post_message(
        &self,
        channel: &str,
        text: &str,
        blocks: Option<&Value>,
        thread_ts: Option<&str>,
    ) -> Result<(String, String), SlackError> {
        const METHOD: &str = "chat.postMessage";
        let content = content(METHOD, text, blocks)?;
        let req =
            SlackApiChatPostMessageRequest::new(SlackChannelId::new(channel.to_owned()), content)
                .with_unfurl_links(false)
                .opt_thread_ts(thread_ts.map(|ts| SlackTs::new(ts.to_owned())));
        let session = self.client.open_session(&self.token);
        // slack-morphism's own `chat_post_message` holds every post of the app to one
        // per second (Slack's limit is one per second per channel, with bursts), which
        // would queue each approval card behind every audit line; the typed request
        // goes without it, and Slack's 429s are waited out as for every call.
        let posted: SlackApiChatPostMessageResponse = session
            .http_session_api
            .http_post(METHOD, &req, None)
            .await
            .map_err(|e| SlackError::from_client(METHOD, e))?;
        Ok((posted.channel.to_string(), posted.ts.to_string()))
    }

    /// Replaces a message's text and blocks.
    pub async fn update_message(
        &self,
        channel: &str,
        ts: &str,
        text: &str,
        blocks: &Value,
    ) -> Result<(), SlackError> {
        const METHOD: &str = "chat.update";
        let content = content(METHOD, text, Some(blocks))?;
        let req = SlackApiChatUpdateRequest::new(
            SlackChannelId::new(channel.to_owned()),
            content,
            SlackTs::new(ts.to_owned()),
        );
        let session = self.client.open_session(&self.token);
        session
            .chat_update(&req)
            .await
            .map(|_| ())
            .map_err(|e| SlackError::from_client(METHOD, e))
    }

    /// Opens (or finds) the bot's DM with `user` and returns its channel id.
    pub async fn open_dm(&self, user: &str) -> Result<String, SlackError> {
        let req = SlackApiConversationsOpenRequest::new()
            .with_users(vec![SlackUserId::new(user.to_owned())]);
        let session = self.client.open_session(&self.token);
        let opened = session
            .conversations_open(&req)
            .await
            .map_err(|e| SlackError::from_client("conversations.open", e))?;
        Ok(opened.channel.id.to_string())
    }

    /// The members of a user group.
    pub async fn group_members(&self, group: &str) -> Result<Vec<String>, SlackError> {
        let session = self.client.open_session(&self.token);
        let req = SlackApiUserGroupsUsersListRequest::new(SlackUserGroupId::new(group.to_owned()));
        let answer = session
            .usergroups_users_list(&req)
            .await
            .map_err(|e| SlackError::from_client("usergroups.users.list", e))?;
        Ok(answer.users.into_iter().map(|u| u.to_string()).collect())
    }

    /// Opens a modal with the `trigger_id` of a command or click (valid for 3 s);
    /// returns the view's id, for [`SlackApi::views_update`].
    pub async fn views_open(&self, trigger_id: &str, view: &Value) -> Result<String, SlackError> {
        let view = typed_view("views.open", view)?;
        let session = self.client.open_session(&self.token);
        let req = SlackApiViewsOpenRequest::new(SlackTriggerId::new(trigger_id.to_owned()), view);
        let answer = session
            .views_open(&req)
            .await
            .map_err(|e| SlackError::from_client("views.open", e))?;
        Ok(answer.view.state_params.id.to_string())
    }

    /// Replaces an open modal's view.
    pub async fn views_update(&self, view_id: &str, view: &Value) -> Result<(), SlackError> {
        let view = typed_view("views.update", view)?;
        let session = self.client.open_session(&self.token);
        let req = SlackApiViewsUpdateRequest::new(view)
            .with_view_id(SlackViewId::new(view_id.to_owned()));
        session
            .views_update(&req)
            .await
            .map(|_| ())
            .map_err(|e| SlackError::from_client("views.update", e))
    }

    /// Publishes `user`'s App Home.
    pub async fn views_publish(&self, user: &str, view: &Value) -> Result<(), SlackError> {
        let view = typed_view("views.publish", view)?;
        let session = self.client.open_session(&self.token);
        let req = SlackApiViewsPublishRequest::new(SlackUserId::new(user.to_owned()), view);
        session
            .views_publish(&req)
            .await
            .map(|_| ())
            .map_err(|e| SlackError::from_client("views.publish", e))
    }

    /// Answers a slash command or an interaction through its `response_url`, without
    /// the bot token (a `response_url` needs none). One that is not Slack's is refused
    /// without a request: it came inside the request, and a forged one must not make
    /// jitbot post anywhere.
    pub async fn respond(
        &self,
        response_url: &str,
        text: &str,
        replace_original: bool,
    ) -> Result<(), SlackError> {
        let message = blocks::Message {
            text: text.to_owned(),
            blocks: json!([]),
        };
        self.respond_message(response_url, &message, replace_original)
            .await
    }

    /// [`SlackApi::respond`] with blocks (none when `message.blocks` is empty).
    pub async fn respond_message(
        &self,
        response_url: &str,
        message: &blocks::Message,
        replace_original: bool,
    ) -> Result<(), SlackError> {
        let url = self.response_urls.accept(response_url).map_err(|why| {
            warn!(
                why,
                "refused to answer through a response_url that is not Slack's; nothing was sent"
            );
            SlackError::RefusedUrl { why }
        })?;
        let mut body = json!({
            "response_type": "ephemeral",
            "replace_original": replace_original,
            "text": message.text,
        });
        if message.blocks.as_array().is_some_and(|b| !b.is_empty()) {
            body["blocks"] = message.blocks.clone();
        }
        let span = tracing::debug_span!("Slack response_url");
        // The connector's own call with no token: the same TLS, 429 handling and
        // answer parsing as every Web API call, minus the Authorization header.
        let context = SlackClientApiCallContext {
            rate_control_params: None,
            token: None,
            tracing_span: &span,
            is_sensitive_url: true,
        };
        self.client
            .http_api
            .connector
            .http_post_uri::<_, Value>(url, &body, context)
            .await
            .map(|_| ())
            .map_err(|e| SlackError::from_client("response_url", e))
    }
}

/// A message's text and blocks as slack-morphism's typed calls take them (see
/// [`typed_view`] for why a conversion that fails is a bug).
fn content(
    method: &'static str,
    text: &str,
    blocks: Option<&Value>,
) -> Result<SlackMessageContent, SlackError> {
    let blocks: Option<Vec<SlackBlock>> = match blocks {
        Some(b) => Some(
            serde_json::from_value(b.clone()).map_err(|e| SlackError::Unsendable {
                method,
                detail: format!("the blocks do not fit Slack's Block Kit model: {e}"),
            })?,
        ),
        None => None,
    };
    Ok(SlackMessageContent::new()
        .with_text(text.to_owned())
        .opt_blocks(blocks))
}

/// A view as slack-morphism's typed calls take it. jitbot builds its views as Block
/// Kit JSON (where its limit checks apply); one that does not convert is a bug, and
/// nothing is sent.
pub fn typed_view(method: &'static str, view: &Value) -> Result<SlackView, SlackError> {
    serde_json::from_value(view.clone()).map_err(|e| SlackError::Unsendable {
        method,
        detail: format!("the view does not fit Slack's Block Kit model: {e}"),
    })
}
#[cfg(test)]
mod typed_tests;
