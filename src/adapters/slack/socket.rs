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
//! [`Inbound::ack_within`](super::inbound) bounds well inside Slack's 3 seconds; the
//! ack carries the answer (a command's ephemeral reply, a submission's
//! `response_action`, a suggestion's options). A repeated delivery is acted on once:
//! the proof of a command or interaction is its `trigger_id`, of an event its
//! `event_id` (the same proof the HTTP Events endpoint uses). An event whose replay
//! check could not be made is not acked, so Slack delivers it again.

use std::sync::Arc;

use slack_morphism::prelude::*;
use tracing::{info, warn};

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
        let environment = Arc::new(
            SlackClientEventsListenerEnvironment::new(client)
                .with_error_handler(on_error)
                .with_user_state(inbound),
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

/// The [`Inbound`] the listener was started with.
async fn inbound_of(state: &SlackClientEventsUserState) -> Arc<Inbound> {
    let storage = state.read().await;
    storage
        .get_user_state::<Arc<Inbound>>()
        .cloned()
        .expect("the Socket Mode listener is started with its Inbound")
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
    let inbound = inbound_of(&state).await;
    let proof = format!("trigger:{}", event.trigger_id);
    let reply = inbound.command(event, proof).await;
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
    let inbound = inbound_of(&state).await;
    let proof = interaction_proof(&event);
    let reply = inbound.interaction(event, proof).await;
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
    let inbound = inbound_of(&state).await;
    let proof = format!("event:{}", event.event_id);
    match inbound.event(event, proof).await {
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
