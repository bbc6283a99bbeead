//! Events API events: `app_home_opened` (on the Home tab) publishes the person's App
//! Home. Each event is acted on once, by its `event_id`, however often Slack delivers
//! it: the ack says only whether it was taken, and the Home is published after it.

use std::sync::Arc;

use slack_morphism::prelude::{SlackEventCallbackBody, SlackPushEventCallback};
use tracing::{debug, warn};

use super::{Inbound, REPLAY_WINDOW, home};
use crate::core::ids::SlackUserId;

/// What the transport answers for an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventReply {
    /// Acted on (or ignored on purpose): 200.
    Done,
    /// Not acted on and worth Slack's retry (the store could not tell whether it is
    /// a repeat): 503 over HTTP, no ack over Socket Mode.
    Retry,
}

/// An event, acked within the ack budget; its work runs after the ack.
///
/// Whether the event is new is the store's to say. If it cannot say in time, the ack
/// is [`EventReply::Retry`] and the check goes on: Slack's retry then finds the event
/// taken (and is answered `Done`) or, when the store failed, takes it itself.
pub(super) async fn received(
    inbound: &Arc<Inbound>,
    event: SlackPushEventCallback,
    proof: String,
) -> EventReply {
    let user = match event.event {
        SlackEventCallbackBody::AppHomeOpened(opened) => {
            if opened.tab.as_deref().is_some_and(|t| t != "home") {
                debug!("the Messages tab was opened; nothing to publish");
                return EventReply::Done;
            }
            match opened.user.to_string().parse::<SlackUserId>() {
                Ok(user) => user,
                Err(_) => {
                    warn!("an app_home_opened event named no user jitbot can read");
                    return EventReply::Done;
                }
            }
        }
        _ => {
            debug!("ignored an event jitbot does not subscribe to");
            return EventReply::Done;
        }
    };
    let worker = inbound.clone();
    let work = async move {
        match worker.app.first_sight(&proof, REPLAY_WINDOW).await {
            Ok(true) => {
                worker.saw_home(&user);
                let publisher = worker.clone();
                worker.later(home::publish_logged(publisher, user));
                EventReply::Done
            }
            Ok(false) => {
                debug!("a retried event was acted on already");
                EventReply::Done
            }
            Err(e) => {
                warn!(error = %e, "cannot tell whether an event is new; Slack will retry it");
                EventReply::Retry
            }
        }
    };
    inbound.guarded(work, EventReply::Retry, |_| async {}).await
}
