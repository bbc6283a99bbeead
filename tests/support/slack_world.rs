//! jitbot's HTTP surface served on 127.0.0.1:0 with the real Slack adapter pointed at
//! the fake Slack, the memory store, the memory cluster and a manual clock; plus
//! helpers that sign requests exactly as Slack does.

use std::collections::HashMap;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::Value;

use jitbot::adapters::http::signature::{self, SignedHeaders};
use jitbot::adapters::http::slack_request::{
    BlockSuggestion, ButtonClick, FORM_CONTENT_TYPE, SlashCommand, ViewClick, ViewSubmission,
};
use jitbot::adapters::http::{HttpState, router};
use jitbot::adapters::memory::{MemoryCluster, MemoryStore};
use jitbot::adapters::slack::SlackNotifier;
use jitbot::adapters::slack::inbound::Inbound;
use jitbot::app::{App, ManualClock};
use jitbot::core::catalog::Catalog;
use jitbot::core::ports::{Clock, Previewer, Store};
use jitbot::core::request::AccessRequest;
use jitbot::playground::slack_standin::OpenView;
use jitbot::settings::{Secret, Secrets, Settings};
use jitbot::startup::{self, Assembly, ClusterPorts, Overrides, SlackParts};

use super::fake_slack::FakeSlack;
use super::fakes::{self, t0};

pub const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
pub const TOKEN: &str = "xoxb-test-token";
pub const APPROVALS: &str = "C03DBAPPRV";
pub const AUDIT: &str = "C09AUDIT01";

/// Answers every preview with the same line.
pub struct FixedPreview(pub &'static str);

#[async_trait::async_trait]
impl Previewer for FixedPreview {
    async fn preview(&self, _req: &AccessRequest) -> String {
        self.0.to_owned()
    }
}

pub struct SlackWorld {
    pub slack: FakeSlack,
    pub inbound: InboundSlack,
    pub app: App,
    pub store: Arc<dyn Store>,
    pub enforcer: Arc<MemoryCluster>,
    pub clock: Arc<ManualClock>,
    pub notifier: SlackNotifier,
    /// The work jitbot does after an ack (answers through `response_url`s): close it
    /// and wait to know every answer has been sent or refused.
    pub background: tokio_util::task::TaskTracker,
}

impl std::ops::Deref for SlackWorld {
    type Target = InboundSlack;
    fn deref(&self) -> &InboundSlack {
        &self.inbound
    }
}

/// Slack's side of the inbound protocol: slash commands and button clicks, signed as
/// Slack signs them at the app clock's time, sent to a jitbot at `base`.
pub struct InboundSlack {
    pub base: String,
    pub clock: Arc<ManualClock>,
    /// Where the fake Slack receives `response_url` posts.
    pub respond_base: String,
    http: reqwest::Client,
}

impl InboundSlack {
    pub fn new(base: String, clock: Arc<ManualClock>, slack: &FakeSlack) -> Self {
        InboundSlack {
            base,
            clock,
            respond_base: slack.response_url(""),
            http: reqwest::Client::new(),
        }
    }

    fn response_url(&self, name: &str) -> String {
        format!("{}{name}", self.respond_base)
    }

    /// Posts a body to `path` signed as Slack signs it, at the app clock's time.
    pub async fn post_signed(&self, path: &str, body: String) -> (StatusCode, String) {
        let signed = SignedHeaders::sign(SECRET, self.clock.now(), body.as_bytes());
        self.post_raw(path, body, Some(&signed.timestamp), Some(&signed.signature))
            .await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        body: String,
        ts: Option<&str>,
        sig: Option<&str>,
    ) -> (StatusCode, String) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", FORM_CONTENT_TYPE)
            .body(body);
        if let Some(ts) = ts {
            req = req.header(signature::TIMESTAMP_HEADER, ts);
        }
        if let Some(sig) = sig {
            req = req.header(signature::SIGNATURE_HEADER, sig);
        }
        let res = req.send().await.unwrap();
        (res.status(), res.text().await.unwrap())
    }

    pub fn clock_secs(&self) -> i64 {
        self.clock.now().timestamp()
    }

    /// The form body of `/jit <text>` typed by `user`. Like Slack's, each has a
    /// `trigger_id` of its own, so two commands with the same text are two requests
    /// (and one body sent twice is a replay).
    pub fn command_body(&self, user: &str, text: &str) -> String {
        self.command_body_triggered(user, text, &next_trigger_id())
    }

    /// The same with a given `trigger_id`.
    pub fn command_body_triggered(&self, user: &str, text: &str, trigger_id: &str) -> String {
        SlashCommand {
            token: "legacy",
            team_id: "T1DC2JH3J",
            team_domain: "example",
            channel_id: "C01GENERAL",
            channel_name: "general",
            user_id: user,
            user_name: "someone",
            command: "/jit",
            text,
            response_url: &self.response_url(&format!("cmd-{user}")),
            trigger_id,
        }
        .form()
    }

    /// Types `/jit <text>` as `user`; returns the status and the ephemeral text.
    pub async fn command(&self, user: &str, text: &str) -> (StatusCode, String) {
        let (status, body) = self
            .post_signed("/slack/commands", self.command_body(user, text))
            .await;
        let text = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["text"].as_str().map(str::to_owned))
            .unwrap_or(body);
        (status, text)
    }

    /// Clicks a button `action` carrying request `id` as `user`; answers to the click
    /// land on the fake's `respond:<respond_as>`.
    pub async fn click(&self, user: &str, action: &str, id: &str, respond_as: &str) -> StatusCode {
        let body = self.click_body(user, action, id, respond_as);
        self.post_signed("/slack/interactions", body).await.0
    }

    /// The form body of a click on button `action` carrying `id` (a button's value:
    /// the request id, or `<id>@<round>` for an extension), by `user`; each click has
    /// a `trigger_id` of its own.
    pub fn click_body(&self, user: &str, action: &str, id: &str, respond_as: &str) -> String {
        self.click_body_answered_at(user, action, id, &self.response_url(respond_as))
    }

    /// The same click with any `response_url` (one that is not Slack's, say).
    pub fn click_body_answered_at(
        &self,
        user: &str,
        action: &str,
        id: &str,
        response_url: &str,
    ) -> String {
        self.click_body_triggered(user, action, id, response_url, &next_trigger_id())
    }

    /// The same click with a given `trigger_id`.
    pub fn click_body_triggered(
        &self,
        user: &str,
        action: &str,
        id: &str,
        response_url: &str,
        trigger_id: &str,
    ) -> String {
        let request = id.split('@').next().unwrap_or(id);
        ButtonClick {
            team_id: "T1DC2JH3J",
            team_domain: "example",
            user_id: user,
            user_name: "someone",
            api_app_id: "A0JITBOT01",
            channel_id: APPROVALS,
            channel_name: "db-approvals",
            message_ts: "1700000000.000101",
            trigger_id,
            response_url,
            action_id: action,
            block_id: &format!("decision:{request}"),
            value: id,
            action_ts: "1700000001.000200",
        }
        .form()
    }
}

/// Slack's Events API side: `event_callback`s signed as Slack signs them.
impl InboundSlack {
    /// The JSON body of an `app_home_opened` event for `user` on `tab` (`home` or
    /// `messages`), with `event_id`, as Slack sends it to `/slack/events`.
    pub fn app_home_opened(&self, event_id: &str, user: &str, tab: &str) -> String {
        serde_json::json!({
            "token": "legacy",
            "team_id": "T1DC2JH3J",
            "api_app_id": "A0JITBOT01",
            "event": {
                "type": "app_home_opened",
                "user": user,
                "channel": "D0JITBOTDM",
                "tab": tab,
                "event_ts": "1700000002.000300",
            },
            "type": "event_callback",
            "event_id": event_id,
            "event_time": 1_700_000_002,
            "authorizations": [{
                "team_id": "T1DC2JH3J",
                "user_id": "U0JITBOT01",
                "is_bot": true,
                "is_enterprise_install": false,
            }],
            "is_ext_shared_channel": false,
        })
        .to_string()
    }

    /// Posts a JSON body to `/slack/events` signed at the app clock's time, as
    /// delivery number `retry` (`X-Slack-Retry-Num`; `None` for the first).
    pub async fn post_event(&self, body: &str, retry: Option<u32>) -> (StatusCode, String) {
        let signed = SignedHeaders::sign(SECRET, self.clock.now(), body.as_bytes());
        let mut req = self
            .http
            .post(format!("{}/slack/events", self.base))
            .header("content-type", "application/json")
            .header(signature::TIMESTAMP_HEADER, &signed.timestamp)
            .header(signature::SIGNATURE_HEADER, &signed.signature)
            .body(body.to_owned());
        if let Some(n) = retry {
            req = req
                .header("x-slack-retry-num", n.to_string())
                .header("x-slack-retry-reason", "http_timeout");
        }
        let res = req.send().await.unwrap();
        (res.status(), res.text().await.unwrap())
    }

    /// The form body of a click on button `action` (value `value`) in `home`, the
    /// App Home `user` was shown (as the fake keeps it), by `user`.
    pub fn home_click_body(&self, user: &str, home: &Value, action: &str, value: &str) -> String {
        let mut view = home.clone();
        view["id"] = Value::String(format!("VHOME{user}"));
        view["team_id"] = Value::String("T1DC2JH3J".to_owned());
        view["hash"] = Value::String("1.1".to_owned());
        let block_id = home["blocks"]
            .as_array()
            .and_then(|blocks| {
                blocks.iter().find(|b| {
                    b["elements"].as_array().is_some_and(|es| {
                        es.iter()
                            .any(|e| e["action_id"] == action && e["value"] == value)
                    })
                })
            })
            .and_then(|b| b["block_id"].as_str())
            .unwrap_or_else(|| panic!("no {action} button for {value} in {home:#}"))
            .to_owned();
        let trigger_id = next_trigger_id();
        ViewClick {
            team_id: "T1DC2JH3J",
            user_id: user,
            user_name: "someone",
            api_app_id: "A0JITBOT01",
            trigger_id: &trigger_id,
            view: &view,
            action_id: action,
            block_id: &block_id,
            value,
            action_ts: "1700000003.000400",
        }
        .form()
    }
}

/// A `trigger_id` no other request in this process has, shaped like Slack's.
fn next_trigger_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("398738663015.47445629121.{n:032x}")
}

impl SlackWorld {
    pub async fn start() -> SlackWorld {
        Self::start_with_store(Arc::new(MemoryStore::new())).await
    }

    pub async fn start_with_store(store: Arc<dyn Store>) -> SlackWorld {
        Self::start_with(store, fakes::catalog()).await
    }

    /// The same over another catalog (e.g. without the caps on one person's requests).
    pub async fn start_with(store: Arc<dyn Store>, catalog: Catalog) -> SlackWorld {
        Self::start_in(store, catalog, &[("S02DBAS001", &[fakes::GROUP_MEMBER])]).await
    }

    /// The same in a workspace with these user groups (id, members).
    pub async fn start_in(
        store: Arc<dyn Store>,
        catalog: Catalog,
        groups: &[(&str, &[&str])],
    ) -> SlackWorld {
        let slack = FakeSlack::start(TOKEN, &[APPROVALS, AUDIT], groups).await;
        let clock = Arc::new(ManualClock::new(t0()));
        let enforcer = Arc::new(MemoryCluster::new());
        let mut settings = Settings::default();
        settings.slack.api_url = slack.api_url.clone();
        settings.slack.audit_channel = AUDIT.to_owned();
        settings.slack.max_retries = 3;
        let secrets = Secrets::from_vars(&HashMap::from([(
            "SLACK_BOT_TOKEN".to_owned(),
            TOKEN.to_owned(),
        )]));
        let overrides = Overrides {
            clock: Some(clock.clone()),
            store: Some(store.clone()),
            cluster: Some(ClusterPorts {
                enforcer: enforcer.clone(),
                previewer: Arc::new(FixedPreview("default-deny present, 4 pods")),
            }),
            ..Overrides::default()
        };
        let Assembly {
            app, slack: parts, ..
        } = startup::assemble(&settings, catalog, &secrets, overrides)
            .await
            .unwrap();
        let SlackParts { api, notifier, .. } = parts.expect("a bot token is set");
        let background = tokio_util::task::TaskTracker::new();
        let inbound = Arc::new(Inbound::new(app.clone(), api, background.clone()));
        notifier.bind_home(&inbound);
        let state = Arc::new(HttpState {
            inbound,
            signing_secret: Secret::new(SECRET),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router(state)).await.unwrap() });
        let inbound = InboundSlack::new(base, clock.clone(), &slack);
        SlackWorld {
            slack,
            inbound,
            app,
            store,
            enforcer,
            clock,
            notifier,
            background,
        }
    }
}

/// Modals: what Slack does when a person opens, fills in and submits one. Each
/// `trigger_id` is told to the stand-in as the person's own, as Slack knows it, so a
/// modal it opens is theirs.
impl SlackWorld {
    /// A fresh `trigger_id` the stand-in knows as `user`'s.
    pub fn trigger_of(&self, user: &str) -> String {
        let trigger = next_trigger_id();
        self.slack.trigger_from(&trigger, user);
        trigger
    }

    /// Types `/jit <text>` as `user`; returns the status and the ack's body (empty
    /// for an empty ack).
    pub async fn command_raw(&self, user: &str, text: &str) -> (StatusCode, String) {
        let trigger = self.trigger_of(user);
        let body = self.command_body_triggered(user, text, &trigger);
        self.post_signed("/slack/commands", body).await
    }

    /// Clicks button `action` carrying `value` on a message, as `user`.
    pub async fn click_triggered(&self, user: &str, action: &str, value: &str) -> StatusCode {
        let trigger = self.trigger_of(user);
        let url = self.response_url(&format!("click-{user}"));
        let body = self.click_body_triggered(user, action, value, &url, &trigger);
        self.post_signed("/slack/interactions", body).await.0
    }

    /// Clicks button `action` carrying `value` in a view (the App Home, say), as `user`.
    pub async fn click_in_view(
        &self,
        user: &str,
        view: &Value,
        action: &str,
        value: &str,
    ) -> StatusCode {
        let trigger = self.trigger_of(user);
        let body = ViewClick {
            team_id: "T1DC2JH3J",
            user_id: user,
            user_name: "someone",
            api_app_id: "A0JITBOT01",
            trigger_id: &trigger,
            view,
            action_id: action,
            block_id: "home",
            value,
            action_ts: "1700000001.000200",
        }
        .form();
        self.post_signed("/slack/interactions", body).await.0
    }

    /// Waits for the modal with `callback_id` open for `user` and returns it.
    pub async fn modal_of(&self, user: &str, callback_id: &str) -> OpenView {
        let find = |s: &FakeSlack| {
            s.open_views()
                .into_iter()
                .find(|v| v.user == user && v.view["callback_id"] == callback_id)
        };
        self.slack.wait_until(|s| find(s).is_some()).await;
        find(&self.slack).expect("the modal is open")
    }

    /// The modal as Slack's payloads carry it: with its `id` and `hash`.
    pub fn view_of(open: &OpenView) -> Value {
        let mut view = open.view.clone();
        view["id"] = Value::String(open.id.clone());
        view["hash"] = Value::String(open.hash.clone());
        view
    }

    /// The form body of `user` submitting `open` with `values` (Slack's
    /// `state.values`).
    pub fn submission_body(&self, user: &str, open: &OpenView, values: &Value) -> String {
        let trigger = next_trigger_id();
        ViewSubmission {
            team_id: "T1DC2JH3J",
            user_id: user,
            user_name: "someone",
            api_app_id: "A0JITBOT01",
            trigger_id: &trigger,
            view: &Self::view_of(open),
            values,
        }
        .form()
    }

    /// Submits `open` as `user` with `values`; returns the status and the ack's body
    /// as JSON (`null` for an empty ack, which closes the modal).
    pub async fn submit(&self, user: &str, open: &OpenView, values: &Value) -> (StatusCode, Value) {
        let body = self.submission_body(user, open, values);
        let (status, body) = self.post_signed("/slack/interactions", body).await;
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// `user` typing `typed` in the select `action` of block `block` in `open`;
    /// returns the options jitbot offers.
    pub async fn suggest(
        &self,
        user: &str,
        open: &OpenView,
        block: &str,
        action: &str,
        typed: &str,
    ) -> Value {
        let body = BlockSuggestion {
            team_id: "T1DC2JH3J",
            user_id: user,
            user_name: "someone",
            api_app_id: "A0JITBOT01",
            view: &Self::view_of(open),
            action_id: action,
            block_id: block,
            value: typed,
        }
        .form();
        let (status, body) = self.post_signed("/slack/interactions", body).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_str(&body).expect("options as JSON")
    }
}
