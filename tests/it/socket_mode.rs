//! Socket Mode end to end: jitbot as `jitbot serve` builds it with `slack.mode =
//! "socket"`, the stand-in Slack's Socket Mode server on loopback (`apps.connections.open`
//! with the app-level token, a real WebSocket, envelopes and acks as Slack documents
//! them), the real redis-server and kube-apiserver. Slack never reaches jitbot over
//! HTTP here: `/slack/*` is not served.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use reqwest::StatusCode;
use serde_json::Value;

use jitbot::adapters::http::slack_request::{ButtonClick, SlashCommand};
use jitbot::adapters::memory::{MemoryCluster, MemoryStore};
use jitbot::app::ManualClock;
use jitbot::core::actions::APPROVE;
use jitbot::core::ports::{Clock, Store};
use jitbot::settings::{Secrets, Settings, SlackMode};
use jitbot::startup::{self, Application, ClusterPorts, Overrides};

use crate::redis_store::{Redis, redis};
use crate::support::fake_slack::FakeSlack;
use crate::support::fakes::{ALICE, CAROL, LEAD1, request_id_in, t0};
use crate::support::slack_world::{APPROVALS, AUDIT, FixedPreview, TOKEN};
use crate::support::spawn::{self, STATE_KEY, Stack};

/// The secrets of a Socket Mode replica: no signing secret.
fn socket_secrets(app_token: Option<&str>, redis_url: Option<&str>) -> Secrets {
    let mut vars = HashMap::from([("SLACK_BOT_TOKEN".to_owned(), TOKEN.to_owned())]);
    if let Some(token) = app_token {
        vars.insert("SLACK_APP_TOKEN".to_owned(), token.to_owned());
    }
    if let Some(url) = redis_url {
        vars.insert("REDIS_URL".to_owned(), url.to_owned());
        vars.insert("JITBOT_STATE_KEY".to_owned(), STATE_KEY.to_owned());
    }
    Secrets::from_vars(&vars)
}

/// A Socket Mode replica in `s`, connected to the stand-in.
async fn socket_replica(s: &Stack, clock: &Arc<ManualClock>) -> Application {
    let world = s.world(clock);
    let mut settings = spawn::settings(&world);
    settings.slack.mode = SlackMode::Socket;
    let catalog = settings.catalog().unwrap();
    let clock: Arc<dyn Clock> = clock.clone();
    let app = Application::build(
        &settings,
        catalog,
        &socket_secrets(Some(&s.slack.app_token()), Some(&s.redis_url)),
        Overrides {
            clock: Some(clock),
            kube_client: Some(world.kube.clone()),
            no_workers: true,
            ..Overrides::default()
        },
    )
    .await
    .expect("jitbot starts in Socket Mode");
    s.slack.wait_until(|f| f.connections() >= 1).await;
    app
}

/// The same over the memory store and cluster, `mode` as given (`auto` picks
/// socket from the app token).
async fn memory_replica(slack: &FakeSlack, mode: SlackMode) -> anyhow::Result<Application> {
    memory_replica_with(slack, mode, &slack.app_token()).await
}

/// The same with an app token of the caller's.
async fn memory_replica_with(
    slack: &FakeSlack,
    mode: SlackMode,
    app_token: &str,
) -> anyhow::Result<Application> {
    replica_over(slack, mode, app_token, Arc::new(MemoryStore::new())).await
}

/// The same over `store`.
async fn replica_over(
    slack: &FakeSlack,
    mode: SlackMode,
    app_token: &str,
    store: Arc<dyn Store>,
) -> anyhow::Result<Application> {
    let mut settings = Settings::default();
    settings.server.listen = "127.0.0.1:0".to_owned();
    settings.server.metrics_listen = "127.0.0.1:0".to_owned();
    settings.slack.api_url = slack.api_url.clone();
    settings.slack.audit_channel = AUDIT.to_owned();
    settings.slack.mode = mode;
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(t0()));
    Application::build(
        &settings,
        crate::support::fakes::catalog(),
        &socket_secrets(Some(app_token), None),
        Overrides {
            clock: Some(clock),
            store: Some(store),
            cluster: Some(ClusterPorts {
                enforcer: Arc::new(MemoryCluster::new()),
                previewer: Arc::new(FixedPreview("default-deny present, 4 pods")),
            }),
            no_workers: true,
            ..Overrides::default()
        },
    )
    .await
}

/// A `trigger_id` of its own for each command or click, as Slack gives.
fn trigger() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("510203040506.47445629121.{n:032x}")
}

/// `/jit <text>` typed by `user`, as a `slash_commands` envelope's payload.
fn command(slack: &FakeSlack, user: &str, text: &str) -> Value {
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
        response_url: &slack.response_url_for(user, None),
        trigger_id: &trigger(),
    }
    .payload()
}

/// `/jit <text>` typed by `user`, answered later through the response_url named
/// `answers` (a stand-in's `respond:<answers>` call).
fn command_answered_at(slack: &FakeSlack, user: &str, text: &str, answers: &str) -> Value {
    let mut payload = command(slack, user, text);
    payload["response_url"] = Value::String(slack.response_url(answers));
    payload
}

/// A click on `action` for request `id` by `user`, as an `interactive` payload.
fn click(slack: &FakeSlack, user: &str, action: &str, id: &str) -> Value {
    ButtonClick {
        team_id: "T1DC2JH3J",
        team_domain: "example",
        user_id: user,
        user_name: "someone",
        api_app_id: "A0JITBOT01",
        channel_id: APPROVALS,
        channel_name: "db-approvals",
        message_ts: "1700000000.000101",
        trigger_id: &trigger(),
        response_url: &slack.response_url_for(user, None),
        action_id: action,
        block_id: &format!("decision:{id}"),
        value: id,
        action_ts: "1700000001.000200",
    }
    .payload()
}

/// The text an ack's payload shows.
fn shown(ack: &Option<Value>) -> String {
    ack.as_ref()
        .and_then(|p| p["text"].as_str())
        .unwrap_or_else(|| panic!("the ack carries a text: {ack:?}"))
        .to_owned()
}

/// `/jit request …` over Socket Mode; returns the request id from the ack.
async fn request(slack: &FakeSlack) -> String {
    let ack = slack
        .send_command(command(
            slack,
            ALICE,
            "request payments-db 30m INC-4411 replica lag",
        ))
        .await
        .expect("the command is acked");
    request_id_in(&shown(&ack))
}

async fn live_policy(s: &Stack, id: &str) -> Option<NetworkPolicy> {
    s.policies().get_opt(&format!("jit-{id}")).await.unwrap()
}

/// Slack's endpoints are not there in Socket Mode; the probes are.
async fn no_slack_endpoint(app: &Application) {
    let http = reqwest::Client::new();
    for path in ["/slack/commands", "/slack/interactions", "/slack/events"] {
        let res = http
            .post(format!("http://{}{path}", app.addr))
            .body("payload=%7B%7D")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path} is not served");
    }
    let ready = http
        .get(format!("http://{}/healthz", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK, "the probes still answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_approve_apply_and_expire_over_socket_mode_alone() {
    let s = Stack::start().await;
    let clock = spawn::clock();
    let app = socket_replica(&s, &clock).await;
    no_slack_endpoint(&app).await;

    let id = request(&s.slack).await;
    let card = s.slack.posted_to(APPROVALS).await;
    assert!(card["blocks"].to_string().contains(APPROVE));
    let ack = s
        .slack
        .send_interaction(click(&s.slack, LEAD1, APPROVE, &id))
        .await
        .expect("the click is acked");
    assert_eq!(ack, None, "a click's ack is bare");
    s.slack.card_update("· expires").await;
    let policy = live_policy(&s, &id)
        .await
        .expect("the NetworkPolicy is in the API server");
    assert_eq!(
        policy.metadata.annotations.unwrap()["jitbot.dev/approved-by"],
        LEAD1
    );

    clock.advance(TimeDelta::minutes(30));
    let report = app.app.sweep_once(clock.now()).await.unwrap();
    assert_eq!(report.expired, 1, "{report:?}");
    assert!(live_policy(&s, &id).await.is_none(), "gone at expiry");
    app.stop().await;
    s.slack.wait_until(|f| f.connections() == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_survives_a_network_loss_and_a_refresh_mid_way() {
    let s = Stack::start().await;
    let clock = spawn::clock();
    let app = socket_replica(&s, &clock).await;
    let id = request(&s.slack).await;
    s.slack.posted_to(APPROVALS).await;

    // The network drops every connection without a word; jitbot opens new ones and
    // the click, delivered on one of them, is acted on.
    let opened = s.slack.calls("apps.connections.open").len();
    s.slack.drop_connections();
    assert_eq!(s.slack.connections(), 0);
    s.slack
        .send_interaction(click(&s.slack, LEAD1, APPROVE, &id))
        .await
        .expect("the click is acked on a new connection");
    assert!(s.slack.calls("apps.connections.open").len() > opened);
    s.slack.card_update("· expires").await;
    assert!(live_policy(&s, &id).await.is_some());

    // Slack asks for a refresh: jitbot replaces its connections and goes on.
    let opened = s.slack.calls("apps.connections.open").len();
    s.slack.disconnect_all();
    s.slack
        .wait_until(|f| f.calls("apps.connections.open").len() > opened && f.connections() >= 1)
        .await;
    let ack = s
        .slack
        .send_command(command(&s.slack, ALICE, "list"))
        .await
        .expect("a command after the refresh is acked");
    assert!(shown(&ack).contains(&id), "{ack:?}");

    clock.advance(TimeDelta::minutes(30));
    assert_eq!(app.app.sweep_once(clock.now()).await.unwrap().expired, 1);
    assert!(live_policy(&s, &id).await.is_none());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_each_hold_connections_and_act_once_between_them() {
    let s = Stack::start().await;
    let clock = spawn::clock();
    let a = socket_replica(&s, &clock).await;
    let before = s.slack.connections();
    let b = socket_replica(&s, &clock).await;
    s.slack.wait_until(|f| f.connections() > before).await;

    // The stand-in hands envelopes to the open connections in turn, whichever
    // replica holds them.
    let id = request(&s.slack).await;
    for _ in 0..3 {
        let ack = s.slack.send_command(command(&s.slack, ALICE, "list")).await;
        assert!(shown(&ack.unwrap()).contains(&id));
    }
    let approve = click(&s.slack, LEAD1, APPROVE, &id);
    s.slack.send_interaction(approve.clone()).await.unwrap();
    s.slack.send_interaction(approve).await.unwrap();
    s.slack.card_update("· expires").await;
    assert!(live_policy(&s, &id).await.is_some());
    a.notifier.flush().await;
    b.notifier.flush().await;
    let cards = s
        .slack
        .calls("chat.postMessage")
        .into_iter()
        .filter(|m| m["channel"] == APPROVALS)
        .count();
    assert_eq!(cards, 1, "one card");
    let approved = s
        .slack
        .calls("chat.postMessage")
        .into_iter()
        .filter(|m| m["text"].as_str().unwrap_or("").contains("*approved*"))
        .count();
    assert_eq!(approved, 1, "approved once, by one replica");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_envelope_acts_once() {
    let slack = FakeSlack::start(TOKEN, &[APPROVALS, AUDIT], &[]).await;
    let app = memory_replica(&slack, SlackMode::Auto).await.unwrap();
    slack.wait_until(|f| f.connections() >= 1).await;

    let typed = command(
        &slack,
        ALICE,
        "request payments-db 30m INC-4411 replica lag",
    );
    let first = slack.send_command(typed.clone()).await.unwrap();
    let id = request_id_in(&shown(&first));
    let again = slack.send_command(typed).await.unwrap();
    assert!(
        shown(&again).contains("already acted on this exact request"),
        "{again:?}"
    );
    slack.posted_to(APPROVALS).await;
    app.notifier.flush().await;
    let cards = slack
        .calls("chat.postMessage")
        .into_iter()
        .filter(|m| m["channel"] == APPROVALS)
        .count();
    assert_eq!(cards, 1, "one request, one card");
    assert_eq!(
        app.app
            .list_for(&ALICE.parse().unwrap())
            .await
            .unwrap()
            .len(),
        1
    );

    // The same click twice: one decision.
    let approve = click(&slack, LEAD1, APPROVE, &id);
    slack.send_interaction(approve.clone()).await.unwrap();
    slack.send_interaction(approve).await.unwrap();
    slack.card_update("· expires").await;
    app.notifier.flush().await;
    let approvals = slack
        .calls("chat.postMessage")
        .into_iter()
        .filter(|m| m["text"].as_str().unwrap_or("").contains("*approved*"))
        .count();
    assert_eq!(approvals, 1, "approved once");

    // An event is acked, bare.
    let event = serde_json::json!({
        "token": "legacy",
        "team_id": "T1DC2JH3J",
        "api_app_id": "A0JITBOT01",
        "type": "event_callback",
        "event_id": "Ev0SOCKET01",
        "event_time": 1_700_000_000,
        "event": { "type": "app_home_opened", "user": ALICE, "channel": "D0ALICE01", "tab": "home" },
    });
    assert_eq!(slack.send_event(event).await, Ok(None));
    app.stop().await;
}

/// Slack sends a connection's envelopes without waiting for the acks of those before
/// them, and jitbot reads one connection's envelopes in turn. With the store frozen
/// each answer waits out its budget, yet every ack still leaves within Slack's 3 s of
/// its envelope (the hang guard: the stand-in times it) saying the answer is on its
/// way, and the answers follow through the response_urls once the store thaws.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelopes_queued_on_one_connection_are_each_acked_in_time_while_the_store_is_frozen() {
    let slack = FakeSlack::start(TOKEN, &[APPROVALS, AUDIT], &[]).await;
    let server = redis().await.server;
    let mut patient = Redis::on(server.clone());
    patient.settings.response_timeout = Duration::from_secs(30);
    let store = Arc::new(patient.store().await);
    let app = replica_over(&slack, SlackMode::Socket, &slack.app_token(), store)
        .await
        .unwrap();
    slack.wait_until(|f| f.connections() >= 1).await;

    server.pause();
    let asks = [
        (ALICE, "payments-db"),
        (ALICE, "ledger"),
        (CAROL, "grafana"),
    ];
    let payloads = asks
        .iter()
        .enumerate()
        .map(|(n, (user, target))| {
            let text = format!("request {target} 30m INC-4411 replica lag");
            command_answered_at(&slack, user, &text, &format!("queued-{n}"))
        })
        .collect();
    let acks = slack.send_commands_together(payloads).await;
    for (n, (ack, after)) in acks.iter().enumerate() {
        let ack = ack.as_ref().unwrap_or_else(|e| panic!("envelope {n}: {e}"));
        assert!(
            shown(ack).contains("still working"),
            "envelope {n}: {ack:?}"
        );
        assert!(
            *after < Duration::from_millis(2900),
            "envelope {n} was acked {after:?} after it went out, past Slack's 3 s"
        );
    }
    assert!(slack.calls("respond:queued-0").is_empty());

    server.resume();
    for n in 0..asks.len() {
        slack
            .wait_for(&format!("respond:queued-{n}"), |b| {
                b["text"].as_str().is_some_and(|t| t.contains("sent to"))
            })
            .await;
    }
    app.stop().await;
}

#[tokio::test]
async fn the_ack_carries_the_ephemeral_reply() {
    let slack = FakeSlack::start(TOKEN, &[APPROVALS, AUDIT], &[]).await;
    let app = memory_replica(&slack, SlackMode::Socket).await.unwrap();
    slack.wait_until(|f| f.connections() >= 1).await;
    let ack = slack
        .send_command(command(&slack, ALICE, "help"))
        .await
        .unwrap()
        .expect("the ack has a payload");
    assert_eq!(ack["response_type"], "ephemeral");
    let text = ack["text"].as_str().unwrap();
    assert!(text.contains("/jit request"), "{text}");
    let shown = slack.ephemerals();
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!(
        (shown[0].user.as_str(), shown[0].via, shown[0].text.as_str()),
        (ALICE, "command", text)
    );
    app.stop().await;
}

#[tokio::test]
async fn socket_mode_without_an_app_token_refuses_to_start_and_says_how_to_get_one() {
    let slack = FakeSlack::start(TOKEN, &[APPROVALS, AUDIT], &[]).await;
    let mut settings = Settings::default();
    settings.slack.mode = SlackMode::Socket;

    let without = socket_secrets(None, None);
    let missing = startup::missing_settings(&settings, &without).join("\n");
    assert!(
        missing.contains("SLACK_APP_TOKEN is not set")
            && missing.contains("connections:write")
            && missing.contains("manifests/slack-app-socket.yaml"),
        "{missing}"
    );
    assert!(
        !missing.contains("SLACK_SIGNING_SECRET"),
        "Socket Mode needs no signing secret: {missing}"
    );
    settings.server.listen = "127.0.0.1:0".to_owned();
    settings.server.metrics_listen = "127.0.0.1:0".to_owned();
    settings.slack.api_url = slack.api_url.clone();
    let refused = Application::build(
        &settings,
        crate::support::fakes::catalog(),
        &without,
        Overrides {
            store: Some(Arc::new(MemoryStore::new())),
            ..Overrides::default()
        },
    )
    .await
    .err()
    .expect("no start without SLACK_APP_TOKEN")
    .to_string();
    assert!(refused.contains("SLACK_APP_TOKEN is not set"), "{refused}");
    assert!(slack.calls("apps.connections.open").is_empty());

    // A bot token where the app token goes is named as such.
    let swapped = socket_secrets(Some(TOKEN), None);
    let missing = startup::missing_settings(&settings, &swapped).join("\n");
    assert!(missing.contains("not an app-level token"), "{missing}");

    // HTTP mode needs the signing secret; auto picks Socket Mode from the app token.
    settings.slack.mode = SlackMode::Http;
    let missing = startup::missing_settings(&settings, &socket_secrets(Some("xapp-1"), None));
    assert!(
        missing
            .join("\n")
            .contains("SLACK_SIGNING_SECRET is not set")
    );
    settings.slack.mode = SlackMode::Auto;
    assert!(startup::missing_settings(&settings, &socket_secrets(Some("xapp-1"), None)).is_empty());
}

#[tokio::test]
async fn an_app_token_slack_refuses_stops_the_start_with_slacks_reason() {
    let slack = FakeSlack::start(TOKEN, &[APPROVALS, AUDIT], &[]).await;
    let refused = memory_replica_with(&slack, SlackMode::Socket, "xapp-1-A0OTHER-revoked")
        .await
        .err()
        .expect("no start with a token Slack refuses");
    let refused = format!("{refused:#}");
    assert!(
        refused.contains("Slack refused SLACK_APP_TOKEN") && refused.contains("invalid_auth"),
        "{refused}"
    );
    assert_eq!(slack.connections(), 0);
}
