//! Modals: the request form (`/jit`, `/jit request`), the reason asked for by Deny,
//! and how much longer asked for by Extend in the App Home. Each opens with the
//! `trigger_id` of the command or click (`views.open`), and its submission
//! (`view_submission`) is checked field by field: errors show under the fields and
//! the modal stays open; a valid one does what the typed command would.

use std::sync::Arc;

use slack_morphism::prelude::{
    SlackInteractionBlockSuggestionEvent, SlackInteractionViewSubmissionEvent,
};
use tracing::warn;

use super::{Inbound, ViewReply};
use crate::core::ids::{RequestId, SlackUserId};
use crate::core::request::Round;

/// Opens the request form for `user`; a failure is told through `response_url`.
pub(super) async fn open_request_form(
    inbound: &Arc<Inbound>,
    trigger: &str,
    user: &SlackUserId,
    response_url: Option<&str>,
) {
    let _ = (inbound, trigger, user, response_url);
    warn!("the request form is not built yet");
}

/// Opens the Deny form (an optional reason) for `round` of request `id`.
pub(super) async fn open_deny_form(
    inbound: &Arc<Inbound>,
    trigger: &str,
    user: &SlackUserId,
    id: &RequestId,
    round: Round,
    response_url: Option<&str>,
) {
    let _ = (inbound, trigger, user, id, round, response_url);
    warn!("the deny form is not built yet");
}

/// Opens the Extend form (how much longer) for grant `id`.
pub(super) async fn open_extend_form(
    inbound: &Arc<Inbound>,
    trigger: &str,
    user: &SlackUserId,
    id: &RequestId,
    response_url: Option<&str>,
) {
    let _ = (inbound, trigger, user, id, response_url);
    warn!("the extend form is not built yet");
}

/// A modal's submission.
pub(super) async fn submitted(
    inbound: &Arc<Inbound>,
    submission: SlackInteractionViewSubmissionEvent,
    proof: String,
) -> ViewReply {
    let _ = (inbound, submission, proof);
    ViewReply::Nothing
}

/// The targets matching what the person typed in the form's target picker (an
/// `external_select`, used once the catalog has more targets than a static select
/// holds).
pub(super) async fn suggest(
    inbound: &Arc<Inbound>,
    typed: SlackInteractionBlockSuggestionEvent,
) -> ViewReply {
    let _ = (inbound, typed);
    ViewReply::Options(serde_json::json!({ "options": [] }))
}
