//! Socket Mode: jitbot opens WebSockets to Slack (with the app-level token,
//! `SLACK_APP_TOKEN`) and Slack sends its slash commands, interactions and events
//! down them, so no public ingress is needed. The connections are slack-morphism's
//! [`SlackClientSocketModeListener`]: it calls `apps.connections.open` through the
//! same connector as every Web API call (so a loopback `http://` stand-in works),
//! holds [`SlackClientSocketModeConfig::DEFAULT_CONNECTIONS_COUNT`] connections, and
//! replaces one on a `disconnect` envelope (`refresh_requested`, `warning`), when it
//! closes or breaks (a read error, a failed ping) and when Slack stops answering pings.
//! Several replicas may each hold connections: Slack delivers each envelope to one of
//! them.
//!
//! This adapter only decodes and acks: the answers are [`Inbound`]'s, the same as
//! over HTTP. An envelope is acked when its answer is ready, which
//! [`Inbound::ack_within`] bounds well inside Slack's 3 seconds; the ack carries the
//! answer (a command's ephemeral reply, a submission's `response_action`, a
//! suggestion's options).
//!
//! slack-morphism reads a connection's envelopes one at a time: it reads the next
//! frame only once the callback for the one before has returned, while Slack sends
//! them without waiting for acks. So an envelope may have waited for its turn before
//! jitbot sees it, and the budget is counted from when it may have come, not from when
//! it is read: see [`Turns`]. A repeated delivery is acted on once:
//! the proof of a command or interaction is its `trigger_id`, of an event its
//! `event_id` (the same proof the HTTP Events endpoint uses). An event whose replay
//! check could not be made is not acked, so Slack delivers it again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use slack_morphism::prelude::*;
use tokio::task;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::inbound::{EventReply, Inbound, Reply, ViewReply};
use super::{Connector, SlackError};

/// How the callbacks end when the ack must carry no payload, or must not be sent.
#[derive(Debug, thiserror::Error)]
enum Ack {
    /// A bare ack: the envelope was handled and has nothing to show.
    #[error("acknowledged without a payload")]
    Bare,
    /// No ack, so that Slack delivers the envelope again.
    #[error("not acknowledged, for Slack to deliver it again")]
    Withheld,
}

/// Open Socket Mode connections; [`SocketMode::stop`] closes them.
pub struct SocketMode {
    listener: SlackClientSocketModeListener<Connector>,
}

impl SocketMode {
    /// Opens the connections with `app_token` (xapp-…) and answers what arrives on
    /// them through `inbound`. Returns once the connections are being opened; each
    /// keeps reconnecting on its own until [`SocketMode::stop`].
    pub async fn start(inbound: Arc<Inbound>, app_token: &str) -> Result<SocketMode, SlackError> {
        let client = inbound.slack().client();
        let token = SlackApiToken::new(SlackApiTokenValue::new(app_token.to_owned()));
        check_token(&client, &token).await?;
        let answering = Arc::new(Answering {
            turns: Turns::new(inbound.ack_within()),
            inbound,
        });
        let environment = Arc::new(
            SlackClientEventsListenerEnvironment::new(client)
                .with_error_handler(on_error)
                .with_user_state(answering),
        );
        let callbacks = SlackSocketModeListenerCallbacks::new()
            .with_hello_events(on_hello)
            .with_command_events(on_command)
            .with_interaction_events(on_interaction)
            .with_push_events(on_event);
        let listener = SlackClientSocketModeListener::new(
            &SlackClientSocketModeConfig::new(),
            environment,
            callbacks,
        );
        listener
            .listen_for(&token)
            .await
            .map_err(|e| SlackError::from_client("apps.connections.open", e))?;
        listener.start().await;
        info!("Socket Mode: connecting to Slack");
        Ok(SocketMode { listener })
    }

    /// Closes every connection; envelopes not acked yet are delivered again by Slack
    /// (to another replica's connection, if any).
    pub async fn stop(&self) {
        self.listener.shutdown().await;
        info!("Socket Mode: connections closed");
    }
}

/// Asks Slack for a connection URL once, so that a token Slack refuses stops the
/// start with Slack's reason instead of a listener retrying it every 30 s. Slack
/// being unreachable is no reason not to start: the connections keep trying.
async fn check_token(
    client: &SlackClient<Connector>,
    token: &SlackApiToken,
) -> Result<(), SlackError> {
    const METHOD: &str = "apps.connections.open";
    let opened = client
        .open_session(token)
        .apps_connections_open(&SlackApiAppsConnectionOpenRequest::new())
        .await
        .map_err(|e| SlackError::from_client(METHOD, e));
    match opened {
        Ok(_) => Ok(()),
        Err(e) if e.is_transient() => {
            warn!(error = %e, "Socket Mode: Slack is not reachable yet; connecting in the background");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// What the callbacks answer with.
struct Answering {
    inbound: Arc<Inbound>,
    /// How long each envelope may have waited for its turn on its connection.
    turns: Turns,
}

/// What the listener was started with.
async fn answering(state: &SlackClientEventsUserState) -> Arc<Answering> {
    let storage = state.read().await;
    storage
        .get_user_state::<Arc<Answering>>()
        .cloned()
        .expect("the Socket Mode listener is started with its Inbound")
}

/// How soon after a connection's last callback ended the next may begin and still be
/// for an envelope that waited for its turn. The reader goes from one ack straight to
/// the next frame, in microseconds; this is generous for a loaded machine, and all it
/// costs is that an envelope that does come this soon after a long wait is given less
/// of the budget than it could have had.
const BACK_TO_BACK: Duration = Duration::from_millis(250);

/// The least budget an envelope gets, however long its connection has been busy:
/// with the store answering in a millisecond or two, a connection that is busy all
/// the time (a steady stream of envelopes) still answers each in its ack, and with
/// the store hanging, each envelope queued behind the first costs this much, so about
/// twenty can queue on one connection before an ack would pass Slack's 3 seconds.
const LEAST_BUDGET: Duration = Duration::from_millis(50);

/// The part of the ack budget each envelope has left. slack-morphism runs a
/// connection's callbacks one after another in the task that reads its frames, so
/// that task names the connection. While a connection's callbacks follow one another
/// back to back, any envelope read may have been waiting since the first of them
/// began (when the reader last found nothing waiting, so envelopes come no earlier);
/// giving each what is left of [`Inbound::ack_within`] from then acks every envelope
/// within the budget of its arrival. (Were callbacks ever run in tasks of their own,
/// each would look like a connection of its own, which is right: none would queue.)
struct Turns {
    ack_within: Duration,
    /// The connections that are busy, or were a moment ago.
    busy: Mutex<HashMap<Option<task::Id>, Busy>>,
}

/// A connection whose callbacks follow one another.
#[derive(Clone, Copy, Debug)]
struct Busy {
    /// When the first of them began.
    since: Instant,
    /// When the last one ended; `None` while one runs.
    ended: Option<Instant>,
}

impl Turns {
    fn new(ack_within: Duration) -> Self {
        Turns {
            ack_within,
            busy: Mutex::default(),
        }
    }

    /// The envelope whose callback begins now, on the connection of the current task.
    fn take(&self) -> Turn<'_> {
        let connection = task::try_id();
        let budget = self.begin(connection, Instant::now());
        if budget < self.ack_within {
            debug!(
                ?budget,
                "Socket Mode: an envelope may have waited for its turn on its connection"
            );
        }
        Turn {
            turns: self,
            connection,
            budget,
        }
    }

    /// A callback begins on `connection` at `now`: the budget its envelope has left.
    fn begin(&self, connection: Option<task::Id>, now: Instant) -> Duration {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        // A connection idle for longer than back to back starts afresh (or is gone).
        busy.retain(|_, b| {
            b.ended
                .is_none_or(|ended| now.saturating_duration_since(ended) < BACK_TO_BACK)
        });
        let since = busy.get(&connection).map_or(now, |b| b.since);
        busy.insert(connection, Busy { since, ended: None });
        self.ack_within
            .saturating_sub(now.saturating_duration_since(since))
            .max(LEAST_BUDGET.min(self.ack_within))
    }

    /// The callback on `connection` ended at `now`.
    fn end(&self, connection: Option<task::Id>, now: Instant) {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = busy.get_mut(&connection) {
            b.ended = Some(now);
        }
    }
}

/// One envelope's callback; its end is noted when it is dropped, however it ends.
struct Turn<'a> {
    turns: &'a Turns,
    connection: Option<task::Id>,
    /// What is left of the ack budget for its answer.
    budget: Duration,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.turns.end(self.connection, Instant::now());
    }
}

/// Slack's `hello` on a new connection. (slack-morphism does not export the hello
/// event's type by name, hence the type parameter.)
async fn on_hello<Hello: std::fmt::Debug + Send>(
    hello: Hello,
    _client: Arc<SlackClient<Connector>>,
    _state: SlackClientEventsUserState,
) {
    info!(hello = ?hello, "Socket Mode: connected to Slack");
}

async fn on_command(
    event: SlackCommandEvent,
    _client: Arc<SlackClient<Connector>>,
    state: SlackClientEventsUserState,
) -> UserCallbackResult<SlackCommandEventResponse> {
    let answering = answering(&state).await;
    let turn = answering.turns.take();
    let proof = format!("trigger:{}", event.trigger_id);
    let reply = answering
        .inbound
        .command_within(event, proof, turn.budget)
        .await;
    command_ack(&reply)
}

/// A command's answer as the ack's payload (a bare ack for [`Reply::Nothing`]).
fn command_ack(reply: &Reply) -> UserCallbackResult<SlackCommandEventResponse> {
    let Some(body) = reply.to_json() else {
        return Err(Box::new(Ack::Bare));
    };
    match serde_json::from_value::<SlackCommandEventResponse>(body) {
        Ok(payload) => Ok(payload),
        Err(e) => {
            // A bug (the blocks are Block Kit checked): the text still reaches them.
            warn!(error = %e, "a command's answer did not fit Slack's model; sending its text alone");
            Ok(SlackCommandEventResponse::new(
                SlackMessageContent::new().with_text(reply.shown().to_owned()),
            )
            .with_response_type(SlackMessageResponseType::Ephemeral))
        }
    }
}

async fn on_interaction(
    event: SlackInteractionEvent,
    _client: Arc<SlackClient<Connector>>,
    state: SlackClientEventsUserState,
) -> UserCallbackResult<SlackInteractionResponse> {
    let answering = answering(&state).await;
    let turn = answering.turns.take();
    let proof = interaction_proof(&event);
    let reply = answering
        .inbound
        .interaction_within(event, proof, turn.budget)
        .await;
    Ok(interaction_ack(&reply))
}

/// What names one delivery of an interaction: its `trigger_id` (Slack makes one per
/// click or submission), or for a submission without one the view's id and hash.
fn interaction_proof(event: &SlackInteractionEvent) -> String {
    let trigger = match event {
        SlackInteractionEvent::BlockActions(e) => Some(&e.trigger_id),
        SlackInteractionEvent::ViewSubmission(e) => e.trigger_id.as_ref(),
        SlackInteractionEvent::ViewClosed(e) => e.trigger_id.as_ref(),
        SlackInteractionEvent::Shortcut(e) => Some(&e.trigger_id),
        SlackInteractionEvent::MessageAction(e) => Some(&e.trigger_id),
        _ => None,
    };
    match (trigger, event) {
        (Some(t), _) => format!("trigger:{t}"),
        (None, SlackInteractionEvent::ViewSubmission(e)) => format!(
            "view:{}:{}",
            e.view.state_params.id, e.view.state_params.hash
        ),
        // Nothing jitbot acts on once arrives without a trigger.
        (None, _) => String::new(),
    }
}

/// An interaction's answer as the ack's payload.
fn interaction_ack(reply: &ViewReply) -> SlackInteractionResponse {
    let Some(body) = reply.to_json() else {
        return SlackInteractionResponse::Empty;
    };
    match serde_json::from_value::<SlackInteractionResponse>(body) {
        Ok(payload) => payload,
        Err(e) => {
            warn!(error = %e, "an interaction's answer did not fit Slack's model; acking without it");
            SlackInteractionResponse::Empty
        }
    }
}

async fn on_event(
    event: SlackPushEventCallback,
    _client: Arc<SlackClient<Connector>>,
    state: SlackClientEventsUserState,
) -> UserCallbackResult<()> {
    let answering = answering(&state).await;
    let turn = answering.turns.take();
    let proof = format!("event:{}", event.event_id);
    match answering
        .inbound
        .event_within(event, proof, turn.budget)
        .await
    {
        EventReply::Done => Ok(()),
        EventReply::Retry => Err(Box::new(Ack::Withheld)),
    }
}

/// Says whether an envelope whose callback ended in `err` is acked (a success
/// status) or left for Slack to deliver again; also gets the listener's own errors
/// (an unreadable frame, a broken connection), which are logged.
fn on_error(
    err: Box<dyn std::error::Error + Send + Sync>,
    _client: Arc<SlackClient<Connector>>,
    _state: SlackClientEventsUserState,
) -> HttpStatusCode {
    match err.downcast_ref::<Ack>() {
        Some(Ack::Bare) => HttpStatusCode::OK,
        Some(Ack::Withheld) => HttpStatusCode::SERVICE_UNAVAILABLE,
        None => {
            warn!(error = %err, "Socket Mode: {err}");
            HttpStatusCode::OK
        }
    }
}

/// The ack payload jitbot sends for `reply` (for the tests of this module).
#[cfg(test)]
fn command_payload(reply: &Reply) -> Option<serde_json::Value> {
    command_ack(reply)
        .ok()
        .map(|p| serde_json::to_value(p).unwrap())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_command_ack_carries_the_ephemeral_reply_as_slack_reads_it() {
        let reply = Reply::text("Request J-1 is waiting for approval");
        assert_eq!(
            command_payload(&reply),
            Some(
                json!({ "response_type": "ephemeral", "text": "Request J-1 is waiting for approval" })
            )
        );
        assert_eq!(command_payload(&Reply::Nothing), None, "a bare ack");
    }

    #[test]
    fn an_interaction_ack_carries_the_response_action() {
        let errors = ViewReply::Errors(vec![("reason".to_owned(), "too short".to_owned())]);
        assert_eq!(
            serde_json::to_value(interaction_ack(&errors)).unwrap(),
            json!({ "response_action": "errors", "errors": { "reason": "too short" } })
        );
        assert!(matches!(
            interaction_ack(&ViewReply::Nothing),
            SlackInteractionResponse::Empty
        ));
    }

    #[tokio::test]
    async fn an_envelope_read_right_after_another_gets_what_is_left_of_the_first_ones_budget() {
        let turns = Turns::new(Duration::from_secs(2));
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Two connections' reader tasks.
        let (one, other) = (tokio::spawn(async {}), tokio::spawn(async {}));
        let (one, other) = (Some(one.id()), Some(other.id()));

        assert_eq!(turns.begin(one, at(0)), Duration::from_secs(2));
        // Another connection is busy on its own.
        assert_eq!(turns.begin(other, at(500)), Duration::from_secs(2));
        turns.end(one, at(1_800));
        // Read at once: it may have come while the first was answered.
        assert_eq!(turns.begin(one, at(1_801)), Duration::from_millis(199));
        turns.end(one, at(2_000));
        assert_eq!(turns.begin(one, at(2_001)), LEAST_BUDGET, "the least");
        turns.end(one, at(2_002));
        // After an idle moment the reader had found nothing waiting.
        let idle = 2_002 + BACK_TO_BACK.as_millis() as u64;
        assert_eq!(turns.begin(one, at(idle)), Duration::from_secs(2));
        turns.end(other, at(2_400));
        assert_eq!(turns.begin(other, at(2_450)), Duration::from_millis(50));
        turns.end(other, at(2_499));
        assert_eq!(turns.begin(other, at(2_500)), LEAST_BUDGET, "never less");
    }

    #[test]
    fn an_event_left_for_a_retry_is_not_acked_and_a_bare_ack_is() {
        let client = || -> Arc<SlackClient<Connector>> {
            crate::adapters::slack::SlackApi::new("http://127.0.0.1:9/api/", "xoxb-x", 0)
                .unwrap()
                .client()
        };
        let state = || SlackClientEventsUserState::new(SlackClientEventsUserStateStorage::new());
        assert!(!on_error(Box::new(Ack::Withheld), client(), state()).is_success());
        assert!(on_error(Box::new(Ack::Bare), client(), state()).is_success());
    }
}
