//! A Slack stand-in: a real HTTP server on loopback that speaks the part of Slack's
//! Web API jitbot uses, so the real `SlackApi` and `SlackNotifier` talk to it exactly
//! as they talk to Slack. The playground shows what it recorded; the integration tests
//! read it to check what jitbot sent. One implementation serves both, so what the
//! tests prove is what the playground shows.
//!
//! It answers like Slack: HTTP 200 with `{ok, error, …}` envelopes, `not_authed` /
//! `invalid_auth` for a missing or wrong bot token, `channel_not_found`,
//! `message_not_found`, `no_such_subteam`, a scripted 429 with `Retry-After` or 503,
//! and an outage ([`SlackStandin::set_down`]: 503 to every call until it ends). It
//! keeps channel messages with their Block Kit JSON (an update replaces the message,
//! a `thread_ts` makes a thread reply), DMs, and what only one person sees: ephemeral
//! messages and answers posted to a `response_url`. It opens and updates modals
//! (`views.open`, `views.update`) and keeps each person's App Home
//! (`views.publish`), refusing views Slack would refuse. It speaks Socket Mode too
//! ([`socket`]): `apps.connections.open` with the app-level token, and a real
//! WebSocket on loopback that delivers envelopes and takes their acks.
//!
//! Nothing here trusts its input more than Slack would: bodies that do not parse are
//! recorded as `null` and answered with an error envelope, never a panic.

pub mod socket;
mod views;
mod web_api;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::app::SystemClock;
use crate::core::ports::Clock;

/// A scripted answer for the next call of a method (tests use it to play an outage).
#[derive(Clone, Debug)]
pub enum Scripted {
    /// HTTP 429 with this `Retry-After`.
    RateLimited { retry_after_secs: u64 },
    /// `{ok: false, error: code}`.
    Error(&'static str),
    /// HTTP 503, as Slack answers while it is down.
    Unavailable,
    /// The usual answer (so that a later call in the script is the one that fails).
    AsUsual,
}

/// One call as it arrived: the Web API method (or `respond:<name>` for a post to a
/// `response_url`) and its body as JSON.
#[derive(Clone, Debug, Serialize)]
pub struct Call {
    pub method: String,
    pub body: Value,
    /// When the call arrived (for benchmarks timing Slack traffic).
    #[serde(skip)]
    pub at: std::time::Instant,
    /// The `Authorization` header it carried, if any: the bot token on a Web API call,
    /// nothing on a `response_url` post. Never shown on the page.
    #[serde(skip)]
    pub authorization: Option<String>,
}

/// What the stand-in starts with.
#[derive(Clone)]
pub struct StandinConfig {
    /// The bot token every call must carry.
    pub token: String,
    /// Channels that exist (DMs are made on `conversations.open`).
    pub channels: Vec<String>,
    /// User groups and their members, for `usergroups.users.list`.
    pub groups: Vec<(String, Vec<String>)>,
    /// Stamps messages with a time; the playground passes its own (movable) clock.
    pub clock: Arc<dyn Clock>,
    /// The app-level token (xapp-…) `apps.connections.open` takes, for Socket Mode.
    pub app_token: String,
}

impl StandinConfig {
    pub fn new(token: &str, channels: &[&str], groups: &[(&str, &[&str])]) -> Self {
        StandinConfig {
            token: token.to_owned(),
            channels: channels.iter().map(|c| c.to_string()).collect(),
            groups: groups
                .iter()
                .map(|(g, users)| (g.to_string(), users.iter().map(|u| u.to_string()).collect()))
                .collect(),
            clock: Arc::new(SystemClock),
            app_token: socket::STANDIN_APP_TOKEN.to_owned(),
        }
    }
}

/// A message as a channel shows it now.
#[derive(Clone, Debug, Serialize)]
pub struct Posted {
    pub channel: String,
    pub ts: String,
    /// The parent's `ts` for a thread reply.
    pub thread_ts: Option<String>,
    /// The last body jitbot sent for it (`chat.postMessage`, then each `chat.update`).
    pub body: Value,
    pub posted_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
}

/// Something only `user` sees: a slash command's answer, a `response_url` post or a
/// `chat.postEphemeral`.
#[derive(Clone, Debug, Serialize)]
pub struct Ephemeral {
    pub user: String,
    pub at: DateTime<Utc>,
    pub text: String,
    /// The `/jit …` it answers, when it is a slash command's immediate answer.
    pub command: Option<String>,
    /// `command`, `response_url` or `chat.postEphemeral`.
    pub via: &'static str,
    /// Its Block Kit blocks, when it has some (`null` when it is text alone).
    pub blocks: Value,
}

/// Who a `response_url` answers, and the message whose button made it (which
/// `replace_original` replaces): one in a channel, or one only they see (by its
/// place in [`SlackStandin::ephemerals`]).
#[derive(Clone, Debug)]
struct Origin {
    user: String,
    message: Option<(String, String)>,
    ephemeral: Option<usize>,
}

struct World {
    token: String,
    channels: BTreeSet<String>,
    groups: HashMap<String, Vec<String>>,
    calls: Vec<Call>,
    scripted: HashMap<String, VecDeque<Scripted>>,
    /// Keyed by `(channel, ts)`; `ts` sorts in posting order.
    messages: BTreeMap<(String, String), Posted>,
    next_ts: u64,
    /// DM channel of each user.
    dms: BTreeMap<String, String>,
    ephemerals: Vec<Ephemeral>,
    origins: HashMap<String, Origin>,
    next_origin: u64,
    /// Bumped on every change, so a viewer can tell whether to redraw.
    version: u64,
    /// Slack is down: every Web API call is answered 503 and not recorded.
    down: bool,
    /// Web API calls answered 503 because Slack was down.
    refused: u64,
    /// Modals opened (and not closed), by view id.
    views: BTreeMap<String, OpenView>,
    next_view: u64,
    /// Each person's App Home as last published.
    homes: BTreeMap<String, Value>,
}

/// A modal as Slack shows it: to whom, and its view as jitbot last sent it.
#[derive(Clone, Debug, Serialize)]
pub struct OpenView {
    pub id: String,
    /// The person whose `trigger_id` opened it.
    pub user: String,
    /// The view (`type: modal`, title, blocks, `private_metadata`, …).
    pub view: Value,
    /// Bumped on every update, as Slack's `hash`.
    pub hash: String,
}

struct Shared {
    world: Mutex<World>,
    changed: Notify,
    clock: Arc<dyn Clock>,
    /// The Socket Mode side.
    socket: socket::Hub,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, World> {
        // The world is plain data; a panic elsewhere leaves it readable.
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `change` on the world, then wakes everyone waiting for a change.
    fn change<T>(&self, change: impl FnOnce(&mut World) -> T) -> T {
        let out = {
            let mut w = self.lock();
            w.version += 1;
            change(&mut w)
        };
        self.changed.notify_waiters();
        out
    }
}

/// A running stand-in. Cloning shares it; the server stops with the last clone.
#[derive(Clone)]
pub struct SlackStandin {
    /// Base URL to configure as `slack.api_url`.
    pub api_url: String,
    base: String,
    shared: Arc<Shared>,
    _server: Arc<ServerTask>,
}

/// Aborts the server when the last handle goes.
struct ServerTask(JoinHandle<()>);

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl SlackStandin {
    /// Serves a workspace on `127.0.0.1` on a free port.
    pub async fn start(config: StandinConfig) -> std::io::Result<SlackStandin> {
        let world = World {
            token: config.token,
            channels: config.channels.into_iter().collect(),
            groups: config.groups.into_iter().collect(),
            calls: Vec::new(),
            scripted: HashMap::new(),
            messages: BTreeMap::new(),
            // Message timestamps count up from 1700000000.000101, in posting order.
            next_ts: 100,
            dms: BTreeMap::new(),
            ephemerals: Vec::new(),
            origins: HashMap::new(),
            next_origin: 0,
            version: 0,
            down: false,
            refused: 0,
            views: BTreeMap::new(),
            next_view: 0,
            homes: BTreeMap::new(),
        };
        let (hub, sockets) = socket::Hub::bind(config.app_token).await?;
        let shared = Arc::new(Shared {
            world: Mutex::new(world),
            changed: Notify::new(),
            clock: config.clock,
            socket: hub,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        let app = web_api::router(shared.clone());
        let weak = Arc::downgrade(&shared);
        let server = tokio::spawn(async move {
            tokio::select! {
                served = axum::serve(listener, app) => if let Err(e) = served {
                    tracing::warn!(error = %e, "the Slack stand-in stopped");
                },
                () = socket::serve(sockets, weak) => {}
            }
        });
        let base = format!("http://{addr}");
        Ok(SlackStandin {
            api_url: format!("{base}/api/"),
            base,
            shared,
            _server: Arc::new(ServerTask(server)),
        })
    }

    /// The bot token it accepts, for a test that calls the Web API as jitbot does.
    pub fn bot_token(&self) -> String {
        self.shared.lock().token.clone()
    }

    /// A `response_url` that records what is posted to it as method `respond:<name>`.
    pub fn response_url(&self, name: &str) -> String {
        format!("{}/respond/{name}", self.base)
    }

    /// A `response_url` whose answers only `user` sees; with `message` (`(channel,
    /// ts)`), an answer with `replace_original` replaces that message, as in Slack.
    pub fn response_url_for(&self, user: &str, message: Option<(&str, &str)>) -> String {
        let name = self.shared.change(|w| {
            w.next_origin += 1;
            let name = format!("r{}", w.next_origin);
            let origin = Origin {
                user: user.to_owned(),
                message: message.map(|(c, ts)| (c.to_owned(), ts.to_owned())),
                ephemeral: None,
            };
            w.origins.insert(name.clone(), origin);
            name
        });
        self.response_url(&name)
    }

    /// A `response_url` for a click on `user`'s ephemeral message number `n` (its
    /// place in [`Self::ephemerals`]): answers show to them, and one with
    /// `replace_original` replaces that message, as in Slack.
    pub fn response_url_for_ephemeral(&self, user: &str, n: usize) -> String {
        let name = self.shared.change(|w| {
            w.next_origin += 1;
            let name = format!("r{}", w.next_origin);
            let origin = Origin {
                user: user.to_owned(),
                message: None,
                ephemeral: Some(n),
            };
            w.origins.insert(name.clone(), origin);
            name
        });
        self.response_url(&name)
    }

    /// Shows `text` to `user` alone, as Slack shows a slash command's answer.
    pub fn show_ephemeral(&self, user: &str, command: Option<&str>, text: &str) {
        self.show_ephemeral_blocks(user, command, text, Value::Null);
    }

    /// The same with Block Kit `blocks` (a slash command's answer with buttons).
    pub fn show_ephemeral_blocks(
        &self,
        user: &str,
        command: Option<&str>,
        text: &str,
        blocks: Value,
    ) {
        let at = self.shared.clock.now();
        self.shared.change(|w| {
            w.ephemerals.push(Ephemeral {
                user: user.to_owned(),
                at,
                text: text.to_owned(),
                command: command.map(str::to_owned),
                via: "command",
                blocks,
            })
        });
    }

    /// The next call of `method` gets `answer` instead of the usual one.
    pub fn script(&self, method: &str, answer: Scripted) {
        self.shared.change(|w| {
            w.scripted
                .entry(method.to_owned())
                .or_default()
                .push_back(answer)
        });
    }

    /// Takes Slack down (every Web API call answered 503 until it is back) or back up.
    pub fn set_down(&self, down: bool) {
        self.shared.change(|w| w.down = down);
    }

    /// Web API calls answered 503 because Slack was down.
    pub fn refused(&self) -> u64 {
        self.shared.lock().refused
    }

    /// Bodies of every call of `method`, in order.
    pub fn calls(&self, method: &str) -> Vec<Value> {
        let w = self.shared.lock();
        w.calls
            .iter()
            .filter(|c| c.method == method)
            .map(|c| c.body.clone())
            .collect()
    }

    pub fn all_calls(&self) -> Vec<Call> {
        self.shared.lock().calls.clone()
    }

    /// The calls recorded after the first `start`, in order: lets a reader that keeps
    /// a cursor follow a long run without copying everything each time.
    pub fn calls_from(&self, start: usize) -> Vec<Call> {
        let w = self.shared.lock();
        w.calls.get(start..).unwrap_or_default().to_vec()
    }

    /// A posted message's last body, as it stands now.
    pub fn message(&self, channel: &str, ts: &str) -> Option<Value> {
        let w = self.shared.lock();
        w.messages
            .get(&(channel.to_owned(), ts.to_owned()))
            .map(|m| m.body.clone())
    }

    /// Every message of `channel` (thread replies included), oldest first.
    pub fn messages(&self, channel: &str) -> Vec<Posted> {
        let w = self.shared.lock();
        w.messages
            .values()
            .filter(|m| m.channel == channel)
            .cloned()
            .collect()
    }

    /// The DM channel jitbot opened with each user.
    pub fn dm_channels(&self) -> BTreeMap<String, String> {
        self.shared.lock().dms.clone()
    }

    /// What only one person sees, oldest first.
    pub fn ephemerals(&self) -> Vec<Ephemeral> {
        self.shared.lock().ephemerals.clone()
    }

    /// Says that `trigger_id` comes from `user`'s command or click, so a modal it
    /// opens is that person's. Slack knows this; the stand-in is told by whoever plays
    /// Slack's inbound half. A trigger nobody was told of opens a modal for nobody.
    pub fn trigger_from(&self, trigger_id: &str, user: &str) {
        self.shared.change(|w| {
            w.origins.insert(
                format!("trigger:{trigger_id}"),
                Origin {
                    user: user.to_owned(),
                    message: None,
                    ephemeral: None,
                },
            )
        });
    }

    /// The modals open now, oldest first.
    pub fn open_views(&self) -> Vec<OpenView> {
        self.shared.lock().views.values().cloned().collect()
    }

    /// Closes a modal, as its person pressing Cancel or submitting it does.
    pub fn close_view(&self, id: &str) {
        self.shared.change(|w| w.views.remove(id));
    }

    /// `user`'s App Home as last published.
    pub fn home(&self, user: &str) -> Option<Value> {
        self.shared.lock().homes.get(user).cloned()
    }

    /// Every App Home published, by person.
    pub fn homes(&self) -> BTreeMap<String, Value> {
        self.shared.lock().homes.clone()
    }

    /// `user`'s App Home as Slack's payloads carry it (with its `id` and `hash`), if
    /// one was published.
    pub fn home_view(&self, user: &str) -> Option<OpenView> {
        let view = self.home(user)?;
        Some(OpenView {
            id: views::home_id(user),
            user: user.to_owned(),
            view,
            hash: "1.1".to_owned(),
        })
    }

    /// The open modal `id`, if it is open.
    pub fn open_view(&self, id: &str) -> Option<OpenView> {
        self.shared.lock().views.get(id).cloned()
    }

    /// Shows `view` in the open modal `id` instead, as Slack does on a submission
    /// answered with `response_action: update`. Refused as Slack refuses such an
    /// answer: the error code, e.g. `not_found` for a modal no longer open.
    pub fn replace_view(&self, id: &str, view: &Value) -> Result<OpenView, &'static str> {
        let view = views::update_problem(view)?;
        self.shared.change(|w| {
            let open = w.views.get_mut(id).ok_or("not_found")?;
            open.replace(view);
            Ok(open.clone())
        })
    }

    /// Counts changes: equal numbers mean nothing changed in between.
    pub fn version(&self) -> u64 {
        self.shared.lock().version
    }

    /// Waits up to `timeout` until `pred` holds; says whether it did.
    pub async fn wait_until(&self, timeout: Duration, pred: impl Fn(&Self) -> bool) -> bool {
        tokio::time::timeout(timeout, async {
            loop {
                let changed = self.shared.changed.notified();
                if pred(self) {
                    return;
                }
                changed.await;
            }
        })
        .await
        .is_ok()
    }

    /// Waits up to `timeout` for a call of `method` matching `pred` and returns its body.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        method: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let found = |s: &Self| s.calls(method).into_iter().find(|b| pred(b));
        if self.wait_until(timeout, |s| found(s).is_some()).await {
            found(self)
        } else {
            None
        }
    }
}
