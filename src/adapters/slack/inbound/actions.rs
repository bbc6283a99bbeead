//! Button clicks (`block_actions`): Approve and Deny on approval cards, "Revoke now"
//! on expiry warnings, "Cancel request" on the requester's acknowledgement, and the
//! same buttons in the App Home. The click is acknowledged at once and acted on
//! after; a refusal ("you are not an approver for payments-db") reaches the clicker
//! alone, through the interaction's `response_url`. Deny opens a small form for the
//! reason (see [`super::views`]), which decides when it is submitted.

use std::sync::Arc;

use slack_morphism::prelude::{SlackInteractionActionInfo, SlackInteractionBlockActionsEvent};
use tracing::{debug, warn};

use super::commands::{cancelled, plain};
use super::{Inbound, sentence, views};
use crate::app::{AppError, Decision};
use crate::core::actions::{APPROVE, CANCEL, DENY, EXTEND, REVOKE, parse_decision_value};
use crate::core::command::Reason;
use crate::core::ids::SlackUserId;

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
    let response_url = click.response_url.as_ref().map(|u| u.0.to_string());
    let trigger = click.trigger_id.to_string();
    let actions = click.actions.unwrap_or_default();
    let worker = inbound.clone();
    inbound.later(async move {
        // A repeated delivery of the same click changes nothing.
        if let Err(refusal) = worker.first_sight(&proof).await {
            worker
                .respond(response_url.as_deref(), &plain(refusal), false)
                .await;
            return;
        }
        for action in &actions {
            act(&worker, &user, action, response_url.as_deref(), &trigger).await;
        }
    });
}

async fn act(
    inbound: &Arc<Inbound>,
    user: &SlackUserId,
    action: &SlackInteractionActionInfo,
    response_url: Option<&str>,
    trigger: &str,
) {
    let Some((id, round)) = action.value.as_deref().and_then(parse_decision_value) else {
        warn!(action = %action.action_id, "a button click carried no request id");
        return;
    };
    let app = &inbound.app;
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
    inbound.respond(response_url, &plain(text), replace).await;
}
