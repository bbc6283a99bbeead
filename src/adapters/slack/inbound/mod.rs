//! What jitbot does with what Slack sends it, whichever way it arrives: over HTTP
//! (`/slack/commands`, `/slack/interactions`, `/slack/events`, signature checked by
//! [`crate::adapters::http`]) or over a Socket Mode WebSocket
//! ([`super::socket`]). The transports only authenticate, decode and encode; the
//! answers are made here, the same for both.
//!
//! Slack wants every command, interaction and event acknowledged within 3 seconds.
//! Answers that need the store are given [`Inbound::ack_within`] (2 s):
//! past it the ack says the answer is on its way, and the answer follows through the
//! request's `response_url` (or the modal's own update) when it is ready. Work that
//! needs the cluster or Slack's Web API always runs after the ack. A transport that
//! knows a delivery waited before it reached jitbot (Socket Mode reads one
//! connection's envelopes in turn) gives the answer what is left of the budget
//! instead: the `*_within` entry points.
//!
//! A command or click that changes something is acted on once, however often its
//! delivery is repeated: each entry point takes a `proof` that names this delivery
//! (the signature of an HTTP request, whose timestamp and body it covers; the
//! `trigger_id` of a Socket Mode payload) and refuses one seen before.

mod actions;
mod commands;
mod events;
pub mod home;
mod views;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use slack_morphism::prelude::{SlackCommandEvent, SlackInteractionEvent, SlackPushEventCallback};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::SlackApi;
use super::blocks::Message;
use crate::app::{App, AppError};
use crate::core::ids::SlackUserId;
use crate::core::ttl::Ttl;

pub use events::EventReply;

/// How long a delivery is remembered for refusing its replays: as long as a signed
/// request's timestamp passes the signature check, either side of now.
pub const REPLAY_WINDOW: Ttl =
    Ttl::from_secs(2 * crate::adapters::http::signature::MAX_SKEW_SECS as u64);

/// The default time an answer may take before the ack goes without it.
pub const DEFAULT_ACK_WITHIN: Duration = Duration::from_secs(2);

tokio::task_local! {
    /// When the ack of the delivery being answered must leave, where its transport
    /// said so (the `*_within` entry points); without it the budget starts when
    /// [`Inbound::guarded`] is called. A task-local rather than a parameter because
    /// only `guarded` reads it, and every answer on the way there would otherwise
    /// carry a transport's concern. Work spawned from the answer does not see it, and
    /// needs not: it runs after the ack.
    static ACK_BY: Instant;
}

/// What the ack of a slash command carries.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// An ephemeral message to the person who typed the command.
    Ephemeral(Message),
    /// Nothing to show (a modal opens instead, say).
    Nothing,
}

impl Reply {
    /// An ephemeral text.
    pub fn text(text: impl Into<String>) -> Self {
        let text = text.into();
        Reply::Ephemeral(Message {
            blocks: json!([]),
            text,
        })
    }

    /// The ack's body as Slack reads it, or `None` for an empty ack.
    pub fn to_json(&self) -> Option<Value> {
        match self {
            Reply::Nothing => None,
            Reply::Ephemeral(m) => {
                let mut body = json!({ "response_type": "ephemeral", "text": m.text });
                if m.blocks.as_array().is_some_and(|b| !b.is_empty()) {
                    body["blocks"] = m.blocks.clone();
                }
                Some(body)
            }
        }
    }

    /// The text shown, if any (for the log and the tests).
    pub fn shown(&self) -> &str {
        match self {
            Reply::Ephemeral(m) => &m.text,
            Reply::Nothing => "",
        }
    }
}

/// What the ack of an interaction carries: nothing, or for a modal's submission a
/// `response_action`.
#[derive(Clone, Debug, PartialEq)]
pub enum ViewReply {
    /// A bare ack: for a submission, the modal closes.
    Nothing,
    /// Field errors shown under the fields, by `block_id`; the modal stays open.
    Errors(Vec<(String, String)>),
    /// The modal shows this view instead.
    Update(Value),
    /// The choices of an `external_select` (a `block_suggestion`'s answer): the
    /// body as Slack reads it, `{"options": […]}` or `{"option_groups": […]}`.
    Options(Value),
}

impl ViewReply {
    /// The ack's body as Slack reads it, or `None` for an empty ack.
    pub fn to_json(&self) -> Option<Value> {
        match self {
            ViewReply::Nothing => None,
            ViewReply::Errors(errors) => {
                let errors: serde_json::Map<String, Value> = errors
                    .iter()
                    .map(|(block, why)| (block.clone(), Value::String(why.clone())))
                    .collect();
                Some(json!({ "response_action": "errors", "errors": errors }))
            }
            ViewReply::Update(view) => Some(json!({ "response_action": "update", "view": view })),
            ViewReply::Options(options) => Some(options.clone()),
        }
    }
}

/// Answers Slack's commands, interactions and events.
pub struct Inbound {
    app: App,
    slack: SlackApi,
    /// Work that runs after the ack; a stop waits for it.
    background: TaskTracker,
    ack_within: Duration,
    /// Who opened (or clicked in) their App Home here lately, and when: the Homes
    /// worth republishing after a change (see [`Inbound::watches_home`]).
    home_viewers: std::sync::Mutex<std::collections::HashMap<SlackUserId, std::time::Instant>>,
}

/// How long after opening their Home a person's Home is republished on changes. Slack
/// sends `app_home_opened` each time the tab is shown, and each opening publishes
/// afresh, so this only needs to cover a tab left open.
pub const HOME_WATCHED_FOR: Duration = Duration::from_secs(12 * 3600);

impl Inbound {
    /// Answers through `app`, calling Slack with `slack`; work after the ack runs on
    /// `background`.
    pub fn new(app: App, slack: SlackApi, background: TaskTracker) -> Self {
        Inbound {
            app,
            slack,
            background,
            ack_within: DEFAULT_ACK_WITHIN,
            home_viewers: std::sync::Mutex::default(),
        }
    }

    /// `user` has their App Home in front of them: it is republished on changes for
    /// [`HOME_WATCHED_FOR`].
    pub(crate) fn saw_home(&self, user: &SlackUserId) {
        let now = std::time::Instant::now();
        let mut viewers = self.home_viewers.lock().unwrap_or_else(|p| p.into_inner());
        viewers.retain(|_, at| now.duration_since(*at) < HOME_WATCHED_FOR);
        viewers.insert(user.clone(), now);
    }

    /// Whether `user` opened their App Home through this replica lately. Publishing a
    /// Home reads the person's requests and every open one, so it is done for those
    /// who look at it, not after every change for everyone involved; anyone else's
    /// Home is published fresh when they open it.
    pub fn watches_home(&self, user: &SlackUserId) -> bool {
        let viewers = self.home_viewers.lock().unwrap_or_else(|p| p.into_inner());
        viewers
            .get(user)
            .is_some_and(|at| at.elapsed() < HOME_WATCHED_FOR)
    }

    /// How long an answer may take before the ack goes without it.
    pub fn ack_within(&self) -> Duration {
        self.ack_within
    }

    pub fn app(&self) -> &App {
        &self.app
    }

    pub fn slack(&self) -> &SlackApi {
        &self.slack
    }

    /// A slash command (`/jit …`); `proof` names this delivery.
    pub async fn command(self: &Arc<Self>, event: SlackCommandEvent, proof: String) -> Reply {
        commands::answer(self, event, proof).await
    }

    /// [`Inbound::command`] whose ack leaves within `budget` (a delivery that waited
    /// for its turn gets what is left of [`Inbound::ack_within`]).
    pub async fn command_within(
        self: &Arc<Self>,
        event: SlackCommandEvent,
        proof: String,
        budget: Duration,
    ) -> Reply {
        ACK_BY
            .scope(Instant::now() + budget, self.command(event, proof))
            .await
    }

    /// [`Inbound::interaction`] whose ack leaves within `budget`.
    pub async fn interaction_within(
        self: &Arc<Self>,
        event: SlackInteractionEvent,
        proof: String,
        budget: Duration,
    ) -> ViewReply {
        ACK_BY
            .scope(Instant::now() + budget, self.interaction(event, proof))
            .await
    }

    /// [`Inbound::event`] whose ack leaves within `budget`.
    pub async fn event_within(
        self: &Arc<Self>,
        event: SlackPushEventCallback,
        proof: String,
        budget: Duration,
    ) -> EventReply {
        ACK_BY
            .scope(Instant::now() + budget, self.event(event, proof))
            .await
    }

    /// A click, a modal's submission or closing; `proof` names this delivery.
    pub async fn interaction(
        self: &Arc<Self>,
        event: SlackInteractionEvent,
        proof: String,
    ) -> ViewReply {
        match event {
            SlackInteractionEvent::BlockActions(click) => {
                actions::clicked(self, click, proof);
                ViewReply::Nothing
            }
            SlackInteractionEvent::ViewSubmission(submission) => {
                views::submitted(self, submission, proof).await
            }
            SlackInteractionEvent::BlockSuggestion(typed) => views::suggest(self, typed).await,
            SlackInteractionEvent::ViewClosed(_) => ViewReply::Nothing,
            _ => {
                debug!("ignored an interaction jitbot does not use");
                ViewReply::Nothing
            }
        }
    }

    /// An Events API event (e.g. `app_home_opened`); `proof` names the event
    /// (its `event_id`), so a retried delivery is acted on once.
    pub async fn event(
        self: &Arc<Self>,
        event: SlackPushEventCallback,
        proof: String,
    ) -> EventReply {
        events::received(self, event, proof).await
    }

    /// Runs `work` after the ack; a stop waits for it.
    fn later<F>(&self, work: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.background.spawn(work);
    }

    /// Gives `work` until the ack budget (from now, or to the delivery's `ACK_BY`). If
    /// it is done by then its answer is the ack; if not, the ack is `pending` and
    /// `deliver` gets the answer when it is ready.
    async fn guarded<T, W, D, DF>(&self, work: W, pending: T, deliver: D) -> T
    where
        T: Send + 'static,
        W: Future<Output = T> + Send + 'static,
        D: FnOnce(T) -> DF + Send + 'static,
        DF: Future<Output = ()> + Send + 'static,
    {
        let by = ACK_BY
            .try_with(|by| *by)
            .unwrap_or_else(|_| Instant::now() + self.ack_within);
        let mut running = self.background.spawn(work);
        match tokio::time::timeout_at(by, &mut running).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                warn!(error = %e, "an answer to Slack failed to run");
                pending
            }
            Err(_) => {
                warn!(
                    budget = ?self.ack_within,
                    "an answer took longer than Slack's ack allows; it follows the ack"
                );
                self.later(async move {
                    match running.await {
                        Ok(answer) => deliver(answer).await,
                        Err(e) => warn!(error = %e, "an answer to Slack failed to run"),
                    }
                });
                pending
            }
        }
    }

    /// Whether `proof` is seen for the first time (see the module docs); `Err` is the
    /// sentence to answer instead.
    async fn first_sight(&self, proof: &str) -> Result<(), String> {
        match self.app.first_sight(proof, REPLAY_WINDOW).await {
            Ok(true) => Ok(()),
            Ok(false) => {
                warn!("refused a replay of a Slack request");
                Err("jitbot already acted on this exact request, so it did nothing this time; send it again to make a new one".to_owned())
            }
            Err(e) => Err(sentence(&e)),
        }
    }

    /// Tells the person alone, through a `response_url`; a failure is logged and
    /// counted.
    async fn respond(&self, response_url: Option<&str>, message: &Message, replace: bool) {
        let Some(url) = response_url else {
            debug!("no response_url to answer through");
            return;
        };
        if let Err(e) = self.slack.respond_message(url, message, replace).await {
            self.app.metrics().slack_error(e.kind());
            warn!(error = %e, "could not answer through a response_url");
        }
    }
}

/// The sentence a person sees for an error; the details go to the log.
fn sentence(e: &AppError) -> String {
    if let AppError::StoreUnavailable(why) | AppError::Internal(why) = e {
        warn!(error = %why, "a Slack request failed");
    }
    e.to_string()
}
