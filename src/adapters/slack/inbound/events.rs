//! Events API events: `app_home_opened` publishes the person's App Home.

use std::sync::Arc;

use slack_morphism::prelude::SlackPushEventCallback;

use super::Inbound;

/// What the transport answers for an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventReply {
    /// Acted on (or ignored on purpose): 200.
    Done,
    /// Not acted on and worth Slack's retry (the store could not tell whether it is
    /// a repeat): 503 over HTTP, no ack over Socket Mode.
    Retry,
}

/// An event, acked at once; its work runs after the ack.
pub(super) async fn received(
    inbound: &Arc<Inbound>,
    event: SlackPushEventCallback,
    proof: String,
) -> EventReply {
    let _ = (inbound, event, proof);
    EventReply::Done
}
