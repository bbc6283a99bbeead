//! A fake Slack Web API on loopback that behaves like the real one where jitbot
//! relies on it: `{ok, error, ...}` envelopes with HTTP 200, `invalid_auth` for a wrong
//! token, `channel_not_found`, `message_not_found`, and 429 with `Retry-After` when a
//! test scripts it. It records every call, keeps posted messages (so a test can read
//! a card as it stands after `chat.update`) and receives `response_url` posts.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::Notify;

/// A scripted answer for the next call of a method.
#[derive(Clone, Debug)]
pub enum Scripted {
    RateLimited { retry_after_secs: u64 },
    Error(&'static str),
}

#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub body: Value,
    /// When the call arrived.
    pub at: Instant,
}

#[derive(Default)]
struct FakeState {
    token: String,
    channels: HashSet<String>,
    groups: HashMap<String, Vec<String>>,
    calls: Vec<Call>,
    scripted: HashMap<String, VecDeque<Scripted>>,
    messages: HashMap<(String, String), Value>,
    next_ts: u64,
}

type Shared = Arc<(Mutex<FakeState>, Notify)>;

/// A handle on the fake; clones share it.
#[derive(Clone)]
pub struct FakeSlack {
    /// Base URL to configure as `slack.api_url`.
    pub api_url: String,
    base: String,
    shared: Shared,
}

impl FakeSlack {
    /// Serves a workspace with `token` as the bot token, these channels and user groups.
    pub async fn start(token: &str, channels: &[&str], groups: &[(&str, &[&str])]) -> FakeSlack {
        let state = FakeState {
            token: token.to_owned(),
            channels: channels.iter().map(|c| c.to_string()).collect(),
            groups: groups
                .iter()
                .map(|(g, users)| (g.to_string(), users.iter().map(|u| u.to_string()).collect()))
                .collect(),
            next_ts: 100,
            ..FakeState::default()
        };
        let shared: Shared = Arc::new((Mutex::new(state), Notify::new()));
        let app = Router::new()
            .route("/api/{method}", post(api).get(api_get))
            .route("/respond/{name}", post(respond))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeSlack {
            api_url: format!("{base}/api/"),
            base,
            shared,
        }
    }

    /// A `response_url` that records what is posted to it as method `respond:<name>`.
    pub fn response_url(&self, name: &str) -> String {
        format!("{}/respond/{name}", self.base)
    }

    /// The next call of `method` gets `answer` instead of the usual one.
    pub fn script(&self, method: &str, answer: Scripted) {
        let mut s = self.shared.0.lock().unwrap();
        s.scripted
            .entry(method.to_owned())
            .or_default()
            .push_back(answer);
    }

    pub fn calls(&self, method: &str) -> Vec<Value> {
        let s = self.shared.0.lock().unwrap();
        s.calls
            .iter()
            .filter(|c| c.method == method)
            .map(|c| c.body.clone())
            .collect()
    }

    pub fn all_calls(&self) -> Vec<Call> {
        self.shared.0.lock().unwrap().calls.clone()
    }

    /// The calls recorded after the first `start`, in order: lets a reader that keeps
    /// a cursor follow a long run without copying everything each time.
    pub fn calls_from(&self, start: usize) -> Vec<Call> {
        let s = self.shared.0.lock().unwrap();
        s.calls.get(start..).unwrap_or_default().to_vec()
    }

    /// A posted message as it stands now.
    pub fn message(&self, channel: &str, ts: &str) -> Option<Value> {
        let s = self.shared.0.lock().unwrap();
        s.messages
            .get(&(channel.to_owned(), ts.to_owned()))
            .cloned()
    }

    /// Waits until `pred` holds for the calls recorded so far (failing the test after
    /// 20 s, which only a bug reaches).
    pub async fn wait_until(&self, pred: impl Fn(&FakeSlack) -> bool) {
        let done = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let notified = self.shared.1.notified();
                if pred(self) {
                    return;
                }
                notified.await;
            }
        })
        .await;
        done.unwrap_or_else(|_| {
            panic!(
                "the expected calls never arrived; calls so far: {:#?}",
                self.all_calls()
            )
        })
    }

    /// Waits until a call of `method` matching `pred` has arrived (failing the test
    /// after 20 s, which only a bug reaches) and returns its body.
    pub async fn wait_for(&self, method: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let found = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let notified = self.shared.1.notified();
                if let Some(body) = self.calls(method).into_iter().find(|b| pred(b)) {
                    return body;
                }
                notified.await;
            }
        })
        .await;
        found.unwrap_or_else(|_| {
            panic!(
                "no {method} call arrived; calls so far: {:#?}",
                self.all_calls()
            )
        })
    }
}

fn record(shared: &Shared, method: &str, body: Value) -> Option<Scripted> {
    let mut s = shared.0.lock().unwrap();
    s.calls.push(Call {
        method: method.to_owned(),
        body,
        at: Instant::now(),
    });
    let scripted = s.scripted.get_mut(method).and_then(|q| q.pop_front());
    drop(s);
    shared.1.notify_waiters();
    scripted
}

fn envelope(v: Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

fn error(code: &str) -> Response {
    envelope(json!({ "ok": false, "error": code }))
}

async fn api_get(
    state: State<Shared>,
    Path(method): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let body: Value = serde_urlencoded::from_str::<HashMap<String, String>>(&q.unwrap_or_default())
        .map(|m| json!(m))
        .unwrap_or(Value::Null);
    answer(state, method, headers, body)
}

async fn api(
    state: State<Shared>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let is_json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    let body: Value = if is_json {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    } else {
        serde_urlencoded::from_bytes::<HashMap<String, String>>(&body)
            .map(|m| json!(m))
            .unwrap_or(Value::Null)
    };
    answer(state, method, headers, body)
}

fn answer(
    State(shared): State<Shared>,
    method: String,
    headers: HeaderMap,
    body: Value,
) -> Response {
    let scripted = record(&shared, &method, body.clone());
    match scripted {
        Some(Scripted::RateLimited { retry_after_secs }) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [
                    ("retry-after", retry_after_secs.to_string()),
                    ("content-type", "application/json".into()),
                ],
                json!({ "ok": false, "error": "ratelimited" }).to_string(),
            )
                .into_response();
        }
        Some(Scripted::Error(code)) => return error(code),
        None => {}
    }
    let mut s = shared.0.lock().unwrap();
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if bearer != format!("Bearer {}", s.token) {
        return error(if bearer.is_empty() {
            "not_authed"
        } else {
            "invalid_auth"
        });
    }
    let channel = body["channel"].as_str().unwrap_or("").to_owned();
    match method.as_str() {
        "chat.postMessage" => {
            if !s.channels.contains(&channel) {
                return error("channel_not_found");
            }
            s.next_ts += 1;
            let ts = format!("1700000000.{:06}", s.next_ts);
            s.messages
                .insert((channel.clone(), ts.clone()), body.clone());
            envelope(json!({ "ok": true, "channel": channel, "ts": ts, "message": body }))
        }
        "chat.update" => {
            let key = (
                channel.clone(),
                body["ts"].as_str().unwrap_or("").to_owned(),
            );
            if !s.messages.contains_key(&key) {
                return error("message_not_found");
            }
            s.messages.insert(key.clone(), body.clone());
            envelope(json!({ "ok": true, "channel": key.0, "ts": key.1 }))
        }
        "chat.postEphemeral" => {
            if !s.channels.contains(&channel) {
                return error("channel_not_found");
            }
            envelope(json!({ "ok": true, "message_ts": "1700000000.000001" }))
        }
        "conversations.open" => {
            let user = body["users"].as_str().unwrap_or("");
            let dm = format!("D{}", user.trim_start_matches(['U', 'W']));
            s.channels.insert(dm.clone());
            envelope(json!({ "ok": true, "channel": { "id": dm } }))
        }
        "usergroups.users.list" => match s.groups.get(body["usergroup"].as_str().unwrap_or("")) {
            Some(users) => envelope(json!({ "ok": true, "users": users })),
            None => error("no_such_subteam"),
        },
        _ => error("unknown_method"),
    }
}

async fn respond(State(shared): State<Shared>, Path(name): Path<String>, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    record(&shared, &format!("respond:{name}"), body);
    envelope(json!({ "ok": true }))
}
