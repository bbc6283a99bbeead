//! Slack's inbound half, played by the playground: a slash command, a button click
//! (on a message, in a modal or in the App Home), a modal's submission or closing, a
//! `block_suggestion` and the `app_home_opened` event, encoded as Slack encodes them
//! ([`crate::adapters::http::slack_request`]), signed with the signing secret at the
//! app clock's time ([`SignedHeaders`]) and POSTed over loopback HTTP to the app's own
//! `/slack/commands`, `/slack/interactions` and `/slack/events`, so the real
//! signature check and the real handlers run. The clock is the app's: after a
//! fast-forward a request signed at the wall clock's time would look five minutes
//! stale and be refused.

use std::sync::Arc;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use crate::adapters::http::signature::SignedHeaders;
use crate::adapters::http::slack_request::{
    BlockSuggestion, ButtonClick, FORM_CONTENT_TYPE, SlashCommand, ViewClick, ViewSubmission,
    interaction, interaction_form,
};
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
    /// From [`InboundSlack::trigger_id`], so a modal the click opens is the clicker's.
    pub trigger_id: &'a str,
    /// On a message only the clicker sees (a command's answer), not in the channel.
    pub ephemeral: bool,
}

/// A person's act inside a view (a modal or the App Home): a button clicked, or a
/// select or radio button changed in a block that dispatches its actions.
#[derive(Clone, Debug)]
pub struct ViewAct<'a> {
    pub user: &'a str,
    /// The view as Slack has it ([`super::slack_standin::OpenView::stateful`]).
    pub view: &'a Value,
    /// What is entered in the view's inputs now, as `state.values`.
    pub values: &'a Value,
    /// The action as Slack reports it: `type`, `action_id`, `block_id` and `value`
    /// or `selected_option`.
    pub action: &'a Value,
    pub trigger_id: &'a str,
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
pub const GENERAL: &str = "C0GENERAL1";
const APP: &str = "A0PLAYGRND";

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

    /// A new `trigger_id`, unique as Slack's are.
    pub fn trigger_id(&self) -> String {
        let n = self
            .triggers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("1.{n}.playground")
    }

    /// `/jit <text>` typed by `user`, with `trigger_id` (from [`Self::trigger_id`]):
    /// returns the HTTP status, the ephemeral text (empty for an empty ack) and its
    /// blocks (`null` if none).
    pub async fn command(
        &self,
        user: &str,
        text: &str,
        response_url: &str,
        trigger_id: &str,
    ) -> Result<(u16, String, Value), Unanswered> {
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
            trigger_id,
        }
        .form();
        let (status, answer) = self.post_signed("/slack/commands", body).await?;
        let json = serde_json::from_slice::<Value>(&answer).ok();
        let text = json
            .as_ref()
            .and_then(|v| v["text"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&answer).into_owned());
        let blocks = json.map(|v| v["blocks"].clone()).unwrap_or(Value::Null);
        Ok((status, text, blocks))
    }

    /// A `block_actions` click: returns the HTTP status.
    pub async fn click(&self, click: &Click<'_>) -> Result<u16, Unanswered> {
        let action_ts = self.action_ts();
        let mut payload = ButtonClick {
            team_id: TEAM,
            team_domain: "playground",
            user_id: click.user,
            user_name: click.user,
            api_app_id: APP,
            channel_id: click.channel,
            channel_name: click.channel,
            message_ts: click.message_ts,
            trigger_id: click.trigger_id,
            response_url: click.response_url,
            action_id: click.action_id,
            block_id: click.block_id,
            value: click.value,
            action_ts: &action_ts,
        }
        .payload();
        if click.ephemeral {
            payload["container"]["is_ephemeral"] = json!(true);
        }
        Ok(self.post_payload(&payload).await?.0)
    }

    /// A `block_actions` in a view (`container.type` is `view`): returns the HTTP
    /// status.
    pub async fn view_act(&self, act: &ViewAct<'_>) -> Result<u16, Unanswered> {
        let action_ts = self.action_ts();
        let mut view = act.view.clone();
        view["state"] = json!({ "values": act.values });
        let mut payload = ViewClick {
            team_id: TEAM,
            user_id: act.user,
            user_name: act.user,
            api_app_id: APP,
            trigger_id: act.trigger_id,
            view: &view,
            action_id: "",
            block_id: "",
            value: "",
            action_ts: &action_ts,
        }
        .payload();
        let mut action = act.action.clone();
        action["action_ts"] = json!(action_ts);
        payload["actions"] = json!([action]);
        Ok(self.post_payload(&payload).await?.0)
    }

    /// A modal submitted by `user` with `values` as `state.values`: the HTTP status
    /// and jitbot's answer (`None` for an empty ack, which closes the modal).
    pub async fn submit(
        &self,
        user: &str,
        view: &Value,
        values: &Value,
    ) -> Result<(u16, Option<Value>), Unanswered> {
        let trigger_id = self.trigger_id();
        let payload = ViewSubmission {
            team_id: TEAM,
            user_id: user,
            user_name: user,
            api_app_id: APP,
            trigger_id: &trigger_id,
            view,
            values,
        }
        .payload();
        let (status, body) = self.post_payload(&payload).await?;
        Ok((status, answer_of(&body)))
    }

    /// A modal closed with its Close button (`view_closed`, sent when the view asks
    /// for it with `notify_on_close`): returns the HTTP status.
    pub async fn closed(&self, user: &str, view: &Value) -> Result<u16, Unanswered> {
        Ok(self.post_payload(&view_closed(user, view)).await?.0)
    }

    /// What `user` typed in an `external_select` of a modal (`block_suggestion`):
    /// the HTTP status and jitbot's `options` or `option_groups`.
    pub async fn suggest(
        &self,
        user: &str,
        view: &Value,
        block_id: &str,
        action_id: &str,
        typed: &str,
    ) -> Result<(u16, Option<Value>), Unanswered> {
        let payload = block_suggestion(user, view, block_id, action_id, typed);
        let (status, body) = self.post_payload(&payload).await?;
        Ok((status, answer_of(&body)))
    }

    /// `user` opened the app's Home tab: an `app_home_opened` event through the
    /// Events API. Returns the HTTP status.
    pub async fn home_opened(&self, user: &str) -> Result<u16, Unanswered> {
        let n = self
            .triggers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let body = home_opened(user, &format!("Ev0PLAYGRND{n}"), self.clock.now());
        let (status, _) = self
            .post_signed_as("/slack/events", "application/json", body.to_string())
            .await?;
        Ok(status)
    }

    fn action_ts(&self) -> String {
        format!("{}.000000", self.clock.now().timestamp())
    }

    /// An interaction `payload`, form-encoded as Slack sends it.
    async fn post_payload(&self, payload: &Value) -> Result<(u16, Bytes), Unanswered> {
        self.post_signed("/slack/interactions", interaction_form(payload))
            .await
    }

    async fn post_signed(
        &self,
        path: &'static str,
        body: String,
    ) -> Result<(u16, Bytes), Unanswered> {
        self.post_signed_as(path, FORM_CONTENT_TYPE, body).await
    }

    async fn post_signed_as(
        &self,
        path: &'static str,
        content_type: &str,
        body: String,
    ) -> Result<(u16, Bytes), Unanswered> {
        let fail = |detail: String| Unanswered { path, detail };
        let signed = SignedHeaders::sign(self.secret.expose(), self.clock.now(), body.as_bytes());
        let mut request = hyper::Request::post(format!("{}{path}", self.app_base))
            .header("content-type", content_type);
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

/// The `view_closed` interaction of `user` closing `view`.
fn view_closed(user: &str, view: &Value) -> Value {
    let rest = json!({ "view": view, "is_cleared": false });
    interaction("view_closed", (TEAM, "playground"), (user, user), APP, rest)
}

/// The `block_suggestion` interaction of `user` typing `typed` in an
/// `external_select` of `view`.
fn block_suggestion(
    user: &str,
    view: &Value,
    block_id: &str,
    action_id: &str,
    typed: &str,
) -> Value {
    BlockSuggestion {
        team_id: TEAM,
        user_id: user,
        user_name: user,
        api_app_id: APP,
        view,
        action_id,
        block_id,
        value: typed,
    }
    .payload()
}

/// The Events API's `app_home_opened` for `user`, as Slack POSTs it.
fn home_opened(user: &str, event_id: &str, at: chrono::DateTime<chrono::Utc>) -> Value {
    json!({
        "token": "deprecated-verification-token",
        "team_id": TEAM,
        "api_app_id": APP,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": at.timestamp(),
        "authed_users": [],
        "event": {
            "type": "app_home_opened",
            "user": user,
            // The app's DM with the person, as the stand-in names it.
            "channel": format!("D{}", user.trim_start_matches(['U', 'W'])),
            "tab": "home",
            "event_ts": format!("{}.000000", at.timestamp()),
        },
    })
}

/// An interaction's answer: its JSON, or `None` for an empty ack.
fn answer_of(body: &[u8]) -> Option<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    serde_json::from_slice(body).ok()
}

#[cfg(test)]
mod tests {
    use slack_morphism::prelude::{
        SlackEventCallbackBody, SlackInteractionEvent, SlackPushEventCallback,
    };

    use super::*;

    /// A modal as the stand-in hands it out: with an id, a hash and a state.
    fn modal() -> Value {
        json!({
            "type": "modal",
            "id": "V00000001",
            "team_id": TEAM,
            "hash": "1.1",
            "state": { "values": {} },
            "callback_id": "jit_deny",
            "private_metadata": "{\"id\":\"r1\"}",
            "notify_on_close": true,
            "title": { "type": "plain_text", "text": "Deny" },
            "submit": { "type": "plain_text", "text": "Deny" },
            "blocks": [{
                "type": "input",
                "block_id": "reason",
                "optional": true,
                "label": { "type": "plain_text", "text": "Reason" },
                "element": { "type": "plain_text_input", "action_id": "reason", "multiline": true },
            }],
        })
    }

    #[test]
    fn app_home_opened_reads_as_slack_morphism_reads_slacks() {
        let body = home_opened("U0ALICE001", "Ev1", chrono::Utc::now());
        let event: SlackPushEventCallback = serde_json::from_value(body).expect("reads");
        match event.event {
            SlackEventCallbackBody::AppHomeOpened(opened) => {
                assert_eq!(opened.user.to_string(), "U0ALICE001");
                assert_eq!(opened.tab.as_deref(), Some("home"));
            }
            other => panic!("not app_home_opened: {other:?}"),
        }
        assert_eq!(event.event_id.to_string(), "Ev1");
    }

    #[test]
    fn view_closed_and_block_suggestion_read_as_slack_morphism_reads_slacks() {
        let closed: SlackInteractionEvent =
            serde_json::from_value(view_closed("U0ALICE001", &modal())).expect("reads");
        assert!(
            matches!(closed, SlackInteractionEvent::ViewClosed(_)),
            "{closed:?}"
        );
        let typed = block_suggestion("U0ALICE001", &modal(), "target", "target", "pay");
        let typed: SlackInteractionEvent = serde_json::from_value(typed).expect("reads");
        match typed {
            SlackInteractionEvent::BlockSuggestion(s) => {
                assert_eq!(s.value, "pay");
                assert_eq!(s.action_id.to_string(), "target");
            }
            other => panic!("not block_suggestion: {other:?}"),
        }
    }

    #[test]
    fn an_empty_ack_is_no_answer() {
        assert_eq!(answer_of(b""), None);
        assert_eq!(answer_of(b" \n"), None);
        assert_eq!(
            answer_of(br#"{"response_action":"errors"}"#),
            Some(json!({ "response_action": "errors" }))
        );
    }
}
