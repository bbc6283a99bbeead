//! Button clicks (`block_actions`): Approve and Deny on approval cards, "Revoke now"
//! on expiry warnings, "Cancel request" on the requester's acknowledgement, and the
//! same buttons in the App Home. The click is acknowledged at once and acted on
//! after; a refusal ("you are not an approver for payments-db") reaches the clicker
//! alone: through the interaction's `response_url` for a click on a message, by DM
//! for a click in a view (the App Home), which has none. A click in the Home that
//! works needs no answer: the Home is refreshed with the change. Deny opens a small
//! form for the reason (see [`super::views`]), which decides when it is submitted.

use std::sync::Arc;

use slack_morphism::prelude::{
    SlackInteractionActionContainer, SlackInteractionActionInfo, SlackInteractionBlockActionsEvent,
};
use tracing::{debug, warn};

use super::commands::{cancelled, plain};
use super::{Inbound, sentence, views};
use crate::adapters::slack::blocks::Message;
use crate::app::{AppError, Decision};
use crate::core::actions::{
    ACKNOWLEDGE, APPROVE, CANCEL, DENY, EXTEND, REVOKE, REVOKE_GRANT, parse_decision_value,
};
use crate::core::command::Reason;
use crate::core::ids::SlackUserId;

/// Who clicked, and how to answer them.
struct Clicker {
    user: SlackUserId,
    response_url: Option<String>,
    /// The click was in a view (the App Home or a modal), not on a message.
    in_view: bool,
}

impl Clicker {
    /// Tells the clicker `message`: through the `response_url` (replacing the
    /// clicked message when `replace`), or, for a click in a view, by DM when it is a
    /// refusal (`!replace`); a view's success shows in the view itself.
    async fn tell(&self, inbound: &Inbound, message: &Message, replace: bool) {
        if self.response_url.is_some() {
            inbound
                .respond(self.response_url.as_deref(), message, replace)
                .await;
        } else if self.in_view && !replace {
            dm(inbound, &self.user, message).await;
        } else {
            debug!("nothing to answer a click through");
        }
    }
}

/// Sends `user` a DM; a failure is logged and counted.
async fn dm(inbound: &Inbound, user: &SlackUserId, message: &Message) {
    let slack = inbound.slack();
    let sent = match slack.open_dm(user.as_str()).await {
        Ok(channel) => {
            let blocks = message
                .blocks
                .as_array()
                .is_some_and(|b| !b.is_empty())
                .then_some(&message.blocks);
            slack
                .post_message(&channel, &message.text, blocks, None)
                .await
                .map(|_| ())
        }
        Err(e) => Err(e),
    };
    if let Err(e) = sent {
        inbound.app().metrics().slack_error(e.kind());
        warn!(error = %e, %user, "could not tell the clicker by DM");
    }
}

/// Acts on a click after the ack.
pub(super) fn clicked(
    inbound: &Arc<Inbound>,
    click: SlackInteractionBlockActionsEvent,
    proof: String,
) {
    let Some(user) = click
        .user
        .as_ref()
        .and_then(|u| u.id.to_string().parse::<SlackUserId>().ok())
    else {
        warn!("a button click named no user jitbot can read");
        return;
    };
    let clicker = Clicker {
        user,
        response_url: click.response_url.as_ref().map(|u| u.0.to_string()),
        in_view: matches!(click.container, SlackInteractionActionContainer::View(_)),
    };
    if clicker.in_view {
        inbound.saw_home(&clicker.user);
    }
    let trigger = click.trigger_id.to_string();
    let actions = click.actions.unwrap_or_default();
    let worker = inbound.clone();
    inbound.later(async move {
        // A repeated delivery of the same click changes nothing.
        if let Err(refusal) = worker.first_sight(&proof).await {
            clicker.tell(&worker, &plain(refusal), false).await;
            return;
        }
        for action in &actions {
            act(&worker, &clicker, action, &trigger).await;
        }
    });
}

async fn act(
    inbound: &Arc<Inbound>,
    clicker: &Clicker,
    action: &SlackInteractionActionInfo,
    trigger: &str,
) {
    let Some((id, round)) = action.value.as_deref().and_then(parse_decision_value) else {
        warn!(action = %action.action_id, "a button click carried no request id");
        return;
    };
    let app = &inbound.app;
    let user = &clicker.user;
    let response_url = clicker.response_url.as_deref();
    let result: Result<Option<(String, bool)>, AppError> =
        match action.action_id.to_string().as_str() {
            APPROVE => app
                .decide(&id, user, Decision::Approve, round)
                .await
                .map(|_| None),
            DENY => {
                views::open_deny_form(inbound, trigger, user, &id, round, response_url).await;
                return;
            }
            EXTEND => {
                views::open_extend_form(inbound, trigger, user, &id, response_url).await;
                return;
            }
            REVOKE => {
                let reason = Reason::new("revoked from Slack", 0).ok();
                app.revoke(&id, user, reason)
                    .await
                    .map(|revocation| Some((revocation.sentence(), true)))
            }
            REVOKE_GRANT => {
                let reason = Reason::new("revoked from the approval card", 0).ok();
                app.revoke(&id, user, reason)
                    .await
                    .map(|revocation| Some((revocation.sentence(), false)))
            }
            ACKNOWLEDGE => app
                .acknowledge(&id, user)
                .await
                .map(|_| Some((format!("Acknowledged the break-glass use `{id}`."), false))),
            CANCEL => app
                .cancel(&id, user)
                .await
                .map(|_| Some((cancelled(&id.to_string()), true))),
            other => {
                debug!(action = other, "ignored a click on an unknown action");
                return;
            }
        };
    let (text, replace) = match result {
        Ok(None) => return, // the card update says it all
        Ok(Some(answer)) => answer,
        Err(e) => (sentence(&e), false),
    };
    clicker.tell(inbound, &plain(text), replace).await;
}
