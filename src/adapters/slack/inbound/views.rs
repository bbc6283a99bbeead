//! Modals: the request form (`/jit`, `/jit request`), the reason asked for by Deny,
//! and how much longer asked for by Extend in the App Home. Each opens with the
//! `trigger_id` of the command or click (`views.open`), and its submission
//! (`view_submission`) is checked field by field: errors show under the fields and
//! the modal stays open; a valid one does what the typed command would.
//!
//! A submission is read without I/O first (the same readers as `/jit request`, then
//! the catalog's own admission check), so most mistakes are answered at once. What
//! needs the store (the replay check and the use case) runs under the ack budget;
//! when it is late the modal closes and the answer comes by DM, since a
//! `view_submission` has no `response_url`. What needs Slack (the requester's
//! acknowledgement) runs after the ack.

use std::sync::Arc;

use serde_json::{Value, json};
use slack_morphism::prelude::{
    SlackInteractionBlockSuggestionEvent, SlackInteractionViewSubmissionEvent, SlackView,
};
use tracing::{debug, warn};

use super::commands::{acknowledgement, extension_asked, plain};
use super::{Inbound, ViewReply, sentence};
use crate::adapters::slack::blocks::Message;
use crate::adapters::slack::forms::{
    self, ADDRESS_ACTION, ADDRESS_BLOCK, DEFAULT_DURATION, DENY_FORM, DURATION_ACTION,
    DURATION_BLOCK, EXTEND_FORM, NOTE_ACTION, NOTE_BLOCK, REASON_ACTION, REASON_BLOCK,
    REQUEST_FORM, TARGET_ACTION, TARGET_BLOCK,
};
use crate::app::{AppError, Decision, Submission};
use crate::core::catalog::{Catalog, SourceError, SourceSpec, Target};
use crate::core::command::{self, Reason, check_duration, sanitise};
use crate::core::ids::{RequestId, SlackUserId};
use crate::core::policy;
use crate::core::request::Round;
use crate::core::submission::Refusal;
use crate::core::ttl::Ttl;

/// Field errors, by `block_id`.
type Errors = Vec<(String, String)>;

/// A submission's store-bound part: done within the ack budget, or still running.
enum Outcome<T> {
    Done(Result<T, String>),
    Late,
}

/// Opens the request form for `user`; a failure is told through `response_url`.
pub(super) async fn open_request_form(
    inbound: &Arc<Inbound>,
    trigger: &str,
    user: &SlackUserId,
    response_url: Option<&str>,
) {
    let catalog = inbound.app.catalog();
    let Some(requester) = catalog.requester(user) else {
        let refusal = Refusal::NotARequester(user.clone()).to_string();
        tell(inbound, user, response_url, refusal).await;
        return;
    };
    if catalog.targets().is_empty() {
        let text =
            "There are no targets yet; ask your platform team to add some to jitbot's catalog.";
        tell(inbound, user, response_url, text.to_owned()).await;
        return;
    }
    let view = forms::request_form(catalog, requester);
    let fallback = format!(
        "Slack did not open the request form; type `{}` instead.",
        "/jit request <target> <duration> [from <address>] <reason…>"
    );
    open(inbound, trigger, &view, user, response_url, fallback).await;
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
    let view = forms::deny_form(id, round);
    let fallback = format!("Slack did not open the Deny form for `{id}`; please click Deny again.");
    open(inbound, trigger, &view, user, response_url, fallback).await;
}

/// Opens the Extend form (how much longer) for grant `id`.
pub(super) async fn open_extend_form(
    inbound: &Arc<Inbound>,
    trigger: &str,
    user: &SlackUserId,
    id: &RequestId,
    response_url: Option<&str>,
) {
    let req = match inbound.app.load(id).await {
        Ok(req) => req,
        Err(e) => return tell(inbound, user, response_url, sentence(&e)).await,
    };
    let catalog = inbound.app.catalog();
    let Some(target) = catalog.target(req.target.as_str()) else {
        let text = format!(
            "`{}` is no longer a target, so `{id}` cannot be extended.",
            req.target
        );
        return tell(inbound, user, response_url, text).await;
    };
    let view = forms::extend_form(id, target, &catalog.limits);
    let fallback =
        format!("Slack did not open the Extend form; type `/jit extend {id} <duration>` instead.");
    open(inbound, trigger, &view, user, response_url, fallback).await;
}

/// Opens `view`; if Slack will not, tells `user` `fallback`.
async fn open(
    inbound: &Inbound,
    trigger: &str,
    view: &Value,
    user: &SlackUserId,
    response_url: Option<&str>,
    fallback: String,
) {
    if let Err(why) = forms::check_view(view) {
        warn!(%why, "a modal is over Slack's limits; not opening it");
        return tell(inbound, user, response_url, fallback).await;
    }
    if let Err(e) = inbound.slack.views_open(trigger, view).await {
        inbound.app.metrics().slack_error(e.kind());
        warn!(error = %e, "could not open a modal");
        tell(inbound, user, response_url, fallback).await;
    }
}

/// Tells `user` alone: through the `response_url` when there is one, else by DM (an
/// App Home click and a modal's submission have none).
async fn tell(inbound: &Inbound, user: &SlackUserId, response_url: Option<&str>, text: String) {
    match response_url {
        Some(_) => inbound.respond(response_url, &plain(text), false).await,
        None => dm(inbound, user, &plain(text)).await,
    }
}

/// Sends `user` a DM; a failure is logged and counted.
async fn dm(inbound: &Inbound, user: &SlackUserId, message: &Message) {
    let sent = async {
        let channel = inbound.slack.open_dm(user.as_str()).await?;
        inbound
            .slack
            .post_message(&channel, &message.text, Some(&message.blocks), None)
            .await
    };
    if let Err(e) = sent.await {
        inbound.app.metrics().slack_error(e.kind());
        warn!(error = %e, user = %user, "could not send a DM");
    }
}

/// A modal's submission.
pub(super) async fn submitted(
    inbound: &Arc<Inbound>,
    submission: SlackInteractionViewSubmissionEvent,
    proof: String,
) -> ViewReply {
    let Ok(user) = submission.user.id.to_string().parse::<SlackUserId>() else {
        warn!("a modal's submission named no user jitbot can read");
        return ViewReply::Nothing;
    };
    let SlackView::Modal(modal) = &submission.view.view else {
        debug!("ignored the submission of a view that is not a modal");
        return ViewReply::Nothing;
    };
    let callback = modal
        .callback_id
        .as_ref()
        .map(|c| c.to_string())
        .unwrap_or_default();
    let metadata = modal.private_metadata.clone().unwrap_or_default();
    let values = submission
        .view
        .state_params
        .state
        .as_ref()
        .and_then(|s| serde_json::to_value(&s.values).ok())
        .unwrap_or_else(|| json!({}));
    match callback.as_str() {
        REQUEST_FORM => request_submitted(inbound, user, &metadata, &values, proof).await,
        DENY_FORM => deny_submitted(inbound, user, &metadata, &values, proof).await,
        EXTEND_FORM => extend_submitted(inbound, user, &metadata, &values, proof).await,
        other => {
            debug!(
                callback = other,
                "ignored the submission of an unknown modal"
            );
            ViewReply::Nothing
        }
    }
}

/// One field's error.
fn error(block: &str, why: impl AsRef<str>) -> Errors {
    vec![(block.to_owned(), sanitise(why.as_ref()))]
}

/// Runs `work` (the replay check, then `act` as `user`) under the ack budget; an error becomes
/// its sentence, and a late answer goes to `user` by DM, an error as that sentence
/// and a success as `done` words it.
async fn stored<T, A, AF>(
    inbound: &Arc<Inbound>,
    user: &SlackUserId,
    proof: String,
    act: A,
    done: fn(&Inbound, &T) -> Message,
) -> Outcome<T>
where
    T: Send + 'static,
    A: FnOnce(Arc<Inbound>, SlackUserId) -> AF + Send + 'static,
    AF: Future<Output = Result<T, AppError>> + Send + 'static,
{
    let worker = inbound.clone();
    let actor = user.clone();
    let work = async move {
        if let Err(refusal) = worker.first_sight(&proof).await {
            return Outcome::Done(Err(refusal));
        }
        Outcome::Done(act(worker, actor).await.map_err(|e| sentence(&e)))
    };
    let late = inbound.clone();
    let user = user.clone();
    inbound
        .guarded(work, Outcome::Late, move |outcome| async move {
            let message = match outcome {
                Outcome::Done(Ok(answer)) => done(&late, &answer),
                Outcome::Done(Err(why)) => plain(why),
                Outcome::Late => return,
            };
            dm(&late, &user, &message).await;
        })
        .await
}

/// The answer to a submission whose store-bound part ended with `outcome`: an error
/// in time shows under `block` and keeps the modal open; otherwise it closes, after
/// `then` is given a success in time.
fn closed_or_error<T>(outcome: Outcome<T>, block: &str, then: impl FnOnce(T)) -> ViewReply {
    match outcome {
        Outcome::Done(Ok(done)) => {
            then(done);
            ViewReply::Nothing
        }
        Outcome::Done(Err(why)) => ViewReply::Errors(error(block, why)),
        Outcome::Late => ViewReply::Nothing,
    }
}

/// `message` to `user` by DM, after the ack.
fn dm_later(inbound: &Arc<Inbound>, user: SlackUserId, message: Message) {
    let worker = inbound.clone();
    inbound.later(async move { dm(&worker, &user, &message).await });
}

/// The answer to a form whose `private_metadata` no longer names its request: an
/// error under `block` asking to open the form again with its `button`.
fn lost_track(block: &str, what: &str, button: &str) -> ViewReply {
    warn!(form = button, "a form named no request");
    ViewReply::Errors(error(
        block,
        format!("This form lost track of its {what}; please close it and click {button} again."),
    ))
}

/// The request form submitted: checked, then filed as `/jit request` files it.
async fn request_submitted(
    inbound: &Arc<Inbound>,
    user: SlackUserId,
    metadata: &str,
    values: &Value,
    proof: String,
) -> ViewReply {
    let submission = match read_request(inbound.app.catalog(), &user, metadata, values) {
        Ok(s) => s,
        Err(errors) => return ViewReply::Errors(errors),
    };
    let outcome = stored(
        inbound,
        &user,
        proof,
        |worker, _| async move { worker.app.submit(submission).await },
        acknowledgement,
    )
    .await;
    closed_or_error(outcome, TARGET_BLOCK, |req| {
        dm_later(inbound, user, acknowledgement(inbound, &req));
    })
}

/// What the request form asks for, or the errors to show under its fields. The
/// fields are read as the command reads them, and the result passes the same
/// admission check `App::submit` makes, so an error a submission would meet is shown
/// on its field.
pub(super) fn read_request(
    catalog: &Catalog,
    user: &SlackUserId,
    metadata: &str,
    values: &Value,
) -> Result<Submission, Errors> {
    let Some(requester) = catalog.requester(user) else {
        return Err(error(
            TARGET_BLOCK,
            Refusal::NotARequester(user.clone()).to_string(),
        ));
    };
    let mut errors = Errors::new();
    let target: Option<&Target> = match forms::entered(values, TARGET_BLOCK, TARGET_ACTION) {
        None => {
            errors.extend(error(TARGET_BLOCK, "Please pick a target."));
            None
        }
        Some(name) => match command::request_target(&name, catalog) {
            Ok(t) => Some(t),
            Err(why) => {
                errors.extend(error(TARGET_BLOCK, why));
                None
            }
        },
    };
    let duration = match (
        forms::entered(values, DURATION_BLOCK, DURATION_ACTION),
        target,
    ) {
        (_, None) => None,
        (None, Some(t)) => Some(t.default_duration),
        (Some(word), Some(t)) if word == DEFAULT_DURATION => Some(t.default_duration),
        (Some(word), Some(t)) => match command::request_duration(&word, t, catalog) {
            Ok(d) => Some(d),
            Err(why) => {
                errors.extend(error(DURATION_BLOCK, why));
                None
            }
        },
    };
    let typed = forms::entered(values, REASON_BLOCK, REASON_ACTION).unwrap_or_default();
    let reason = match target {
        // The target's reason rule too, so its hint shows on the reason field.
        Some(t) => command::request_reason(&typed, t, catalog)
            .and_then(|r| policy::check_reason(t, &r).map(|()| r)),
        None if sanitise(&typed).is_empty() => {
            Err("Please say why you need access (an incident or ticket id helps).".to_owned())
        }
        None => Reason::new(&typed, catalog.limits.reason_min_chars),
    };
    let reason = reason
        .map_err(|why| errors.extend(error(REASON_BLOCK, why)))
        .ok();
    let from = match &requester.source {
        SourceSpec::Range(range) if !forms::asked_address(metadata) => {
            errors.extend(error(
                TARGET_BLOCK,
                format!("Your source is now a range ({range}); please close this form and type /jit again to pick your address."),
            ));
            None
        }
        SourceSpec::Range(range) => match forms::entered(values, ADDRESS_BLOCK, ADDRESS_ACTION) {
            None => {
                errors.extend(error(
                    ADDRESS_BLOCK,
                    format!("Please give the address you connect from, inside your range {range}."),
                ));
                None
            }
            Some(raw) => match command::request_address(&raw) {
                Ok(address) if range.contains(&address) => Some(address),
                Ok(address) => {
                    let outside = SourceError::OutsideRange {
                        address,
                        range: *range,
                    };
                    errors.extend(error(ADDRESS_BLOCK, outside.to_string()));
                    None
                }
                Err(why) => {
                    errors.extend(error(ADDRESS_BLOCK, why));
                    None
                }
            },
        },
        _ => None,
    };
    let (Some(target), Some(duration), Some(reason), true) =
        (target, duration, reason, errors.is_empty())
    else {
        return Err(errors);
    };
    let submission = Submission {
        requester: user.clone(),
        target: target.name.clone(),
        duration,
        from,
        reason,
    };
    // The admission check is pure; its id and time are placeholders.
    let probe = RequestId::from_random([0; 10]);
    match submission.admit(catalog, probe, chrono::DateTime::UNIX_EPOCH) {
        Ok(_) => Ok(submission),
        Err(Refusal::Duration(why)) => Err(error(DURATION_BLOCK, why)),
        Err(refusal @ Refusal::Source(_)) if matches!(requester.source, SourceSpec::Range(_)) => {
            Err(error(ADDRESS_BLOCK, refusal.to_string()))
        }
        Err(refusal) => Err(error(TARGET_BLOCK, refusal.to_string())),
    }
}

/// The Deny form submitted: denies the card's round, with the note if one was given.
async fn deny_submitted(
    inbound: &Arc<Inbound>,
    user: SlackUserId,
    metadata: &str,
    values: &Value,
    proof: String,
) -> ViewReply {
    let Some((id, round)) = forms::denied_round(metadata) else {
        return lost_track(NOTE_BLOCK, "request", "Deny");
    };
    let note = match forms::entered(values, NOTE_BLOCK, NOTE_ACTION)
        .map(|raw| Reason::new(&raw, 0))
        .transpose()
    {
        Ok(note) => note.map(|n| n.to_string()).filter(|n| !n.is_empty()),
        Err(why) => return ViewReply::Errors(error(NOTE_BLOCK, why)),
    };
    let outcome = stored(
        inbound,
        &user,
        proof,
        move |worker, decider| async move {
            worker
                .app
                .decide(&id, &decider, Decision::Deny { note }, round)
                .await
                .map(|t| t.request.id)
        },
        |_, id| plain(format!("Denied `{id}`.")),
    )
    .await;
    // The card's update and the requester's DM say it.
    closed_or_error(outcome, NOTE_BLOCK, |_| {})
}

/// The Extend form submitted: asks for more time as `/jit extend` does.
async fn extend_submitted(
    inbound: &Arc<Inbound>,
    user: SlackUserId,
    metadata: &str,
    values: &Value,
    proof: String,
) -> ViewReply {
    let Ok(id) = metadata.parse::<RequestId>() else {
        return lost_track(DURATION_BLOCK, "grant", "Extend");
    };
    let Some(word) = forms::entered(values, DURATION_BLOCK, DURATION_ACTION) else {
        return ViewReply::Errors(error(DURATION_BLOCK, "Please pick how much longer."));
    };
    // As `/jit extend` reads it: the global bounds here, the target's in the app.
    let limits = &inbound.app.catalog().limits;
    let duration = match word
        .parse::<Ttl>()
        .and_then(|d| check_duration(d, limits.min_duration, limits.max_duration, "jitbot"))
    {
        Ok(d) => d,
        Err(why) => return ViewReply::Errors(error(DURATION_BLOCK, why)),
    };
    let outcome = stored(
        inbound,
        &user,
        proof,
        move |worker, asker| async move {
            worker
                .app
                .extend(&id, &asker, duration)
                .await
                .map(|t| (t.request.id, duration))
        },
        |_, (id, duration)| plain(extension_asked(id, *duration)),
    )
    .await;
    closed_or_error(outcome, DURATION_BLOCK, |(id, duration)| {
        dm_later(inbound, user, plain(extension_asked(&id, duration)));
    })
}

/// The targets matching what the person typed in the form's target picker (an
/// `external_select`, used once the catalog has more targets than a static select
/// holds).
pub(super) async fn suggest(
    inbound: &Arc<Inbound>,
    typed: SlackInteractionBlockSuggestionEvent,
) -> ViewReply {
    if typed.action_id.to_string() != TARGET_ACTION {
        debug!(action = %typed.action_id, "a block_suggestion for a select jitbot did not make");
        return ViewReply::Options(json!({ "options": [] }));
    }
    ViewReply::Options(forms::target_choices(inbound.app.catalog(), &typed.value))
}
