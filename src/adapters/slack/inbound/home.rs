//! Publishing one person's App Home ([`crate::adapters::slack::home`]) from what the
//! store says now: on `app_home_opened` (see [`super::events`]) and, from the
//! notifier's outbox step, after each change of a request the person is part of.

use std::sync::Arc;

use tracing::warn;

use super::Inbound;
use crate::adapters::slack::SlackError;
use crate::adapters::slack::home::{self, HomeData};
use crate::app::AppError;
use crate::core::ids::SlackUserId;
use crate::core::request::{AccessRequest, Round, State};

/// Why a Home was not published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The store could not say what to show.
    #[error("cannot read the Home's requests: {0}")]
    Store(AppError),
    /// Slack refused or could not be reached.
    #[error(transparent)]
    Slack(SlackError),
}

/// Publishes `user`'s Home as the store has it now.
pub async fn publish(inbound: &Inbound, user: &SlackUserId) -> Result<(), PublishError> {
    let app = inbound.app();
    let mine = app.list_for(user).await.map_err(PublishError::Store)?;
    let (waiting, approver) = waiting_for(inbound, user).await?;
    let view = home::view(&HomeData {
        now: app.now(),
        mine: &mine,
        waiting: &waiting,
        approver,
    });
    inbound
        .slack()
        .views_publish(user.as_str(), &view)
        .await
        .map_err(PublishError::Slack)
}

/// [`publish`] after an ack: a failure is logged and counted (the next opening of
/// the Home, or the next change, publishes it again).
pub async fn publish_logged(inbound: Arc<Inbound>, user: SlackUserId) {
    match publish(&inbound, &user).await {
        Ok(()) => {}
        Err(PublishError::Slack(e)) => {
            inbound.app().metrics().slack_error(e.kind());
            warn!(error = %e, %user, "could not publish an App Home");
        }
        Err(e) => warn!(error = %e, %user, "could not publish an App Home"),
    }
}

/// The requests and extensions waiting for `user`'s decision, newest first, and
/// whether `user` approves anything (named in the catalog, or an approver of one of
/// those requests through a user group).
async fn waiting_for(
    inbound: &Inbound,
    user: &SlackUserId,
) -> Result<(Vec<AccessRequest>, bool), PublishError> {
    let app = inbound.app();
    let named = app
        .catalog()
        .targets()
        .iter()
        .any(|t| t.approvers.users.contains(user));
    let mut open = app
        .list_in(State::Pending)
        .await
        .map_err(PublishError::Store)?;
    let extending = app
        .list_in(State::Active)
        .await
        .map_err(PublishError::Store)?;
    open.extend(
        extending
            .into_iter()
            .filter(|r| r.extension.is_some() || unreviewed(r)),
    );
    let mut waiting = Vec::new();
    for req in open {
        let own_glass = unreviewed(&req) && &req.requester == user;
        if !app.actor(user, &req).await.is_approver
            || own_glass
            || (!unreviewed(&req) && !undecided_by(&req, user))
        {
            continue;
        }
        waiting.push(req);
    }
    waiting.sort_by_key(|r| std::cmp::Reverse(asked_at(r)));
    let approver = named || !waiting.is_empty();
    Ok((waiting, approver))
}

/// A break-glass use nobody has acknowledged yet: an approver's to review.
fn unreviewed(req: &AccessRequest) -> bool {
    req.extension.is_none()
        && req
            .break_glass
            .as_ref()
            .is_some_and(|bg| !bg.acknowledged())
}

/// Whether `user` may still decide `req`'s open round: not the requester (unless the
/// target allows it), and not among its approvals yet.
fn undecided_by(req: &AccessRequest, user: &SlackUserId) -> bool {
    let (asker, approvals) = match (Round::of(req), &req.extension) {
        (Round::Extension(_), Some(ext)) => (&ext.requested_by, &ext.approvals),
        _ => (&req.requester, &req.approvals),
    };
    let own = asker == user || &req.requester == user;
    (!own || req.scope.allow_self_approval) && !approvals.iter().any(|a| &a.by == user)
}

fn asked_at(req: &AccessRequest) -> chrono::DateTime<chrono::Utc> {
    if let Some(bg) = req.break_glass.as_ref().filter(|_| unreviewed(req)) {
        return bg.used_at;
    }
    match (Round::of(req), &req.extension) {
        (Round::Extension(_), Some(ext)) => ext.requested_at,
        _ => req.created_at,
    }
}
