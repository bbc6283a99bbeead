//! `SlackNotifier`: the `Notifier` port on Slack, delivering from the store's outbox.
//!
//! Every event is in the outbox once the store has recorded it, so `publish` and
//! `announce` only ring the [`DeliveryBell`]: the lifecycle (and Slack's 3-second
//! acks) never wait on Slack, and nothing is queued in memory that a crash or a full
//! queue could lose. The delivery worker ([`crate::app::Courier`]) claims events from
//! the outbox and calls [`Notifier::deliver`] with each event's request as the store
//! has it then, so a card always shows the latest state.
//!
//! One event's delivery is a few steps, each done once and recorded as it is done:
//! for a new request, the audit thread's opening message and then the approval card
//! (with the preview the app noted); for later events, the card update, the
//! requester's DM and the audit thread reply. A retry after a crash or a Slack failure
//! skips the recorded steps, and a new request's card and thread are posted only if no
//! note says where they already are: a card is updated, never re-posted. Where things
//! were posted is kept through the [`Notes`] port (the store's annotations, never the
//! store itself), so any replica can update them later.
//!
//! A Slack failure worth retrying (unreachable, 5xx, 429 after the client's own
//! retries) stops the event and is handed back as [`DeliveryError::Retry`], with a
//! 429's Retry-After; the worker backs off and tries again. A failure that would recur
//! (a missing channel, a bad token) is logged and counted, and the step is skipped.
//!
//! After every change of a request (requested, approved, denied, lapsed, cancelled,
//! activated, extended, expired, revoked, …) the last step republishes the App Home
//! of the requester and of the person who acted (who approved, denied, revoked, …),
//! if they have it in front of them: opened it, or clicked in it, through this
//! replica lately ([`HOME_WATCHED_FOR`](super::inbound::HOME_WATCHED_FOR)). Anyone
//! else's Home is published afresh when they open it, as Slack says each time the
//! tab is shown. The step only asks for the publishes, which run apart from the
//! delivery, so cards never wait for a Home; per person they coalesce, at most one a
//! second (a burst of changes costs one publish at once and one after the gap; see
//! [`coalesce`]). One lost to a restart or a failure is made good by the next change
//! or the next opening of the Home. The Home is published through the [`Inbound`]
//! bound with [`SlackNotifier::bind_home`] (held weakly: the inbound side holds the
//! app, which holds this notifier).
//!
//! A new request's card waits for its preview: until the app's `ready` resolves in
//! this replica, its event answers [`DeliveryError::NotReady`]. Another replica that
//! claims the event meanwhile posts the card without it; the card's next update shows
//! it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use async_trait::async_trait;
use tracing::warn;

mod coalesce;

use coalesce::Refreshes;

use super::blocks::{self, Message};
use super::inbound::Inbound;
use super::inbound::home as home_view;
use super::{SlackApi, SlackError};
use crate::app::DeliveryBell;
use crate::core::catalog::Catalog;
use crate::core::ids::RequestId;
use crate::core::ports::{
    AuditEvent, DeliveryError, Directory, Notes, Notifier, NotifyError, PREVIEW_NOTE, Progress,
    Ready, StoreError,
};
use crate::core::request::{AccessRequest, AuditKind};
use crate::metrics::Metrics;

/// Notes: where a request's approval card and audit thread are (`channel ts`).
const CARD: &str = "slack.card";
const AUDIT: &str = "slack.audit";

/// Delivery steps, as the outbox records them.
const STEP_OPENING: &str = "opening";
const STEP_CARD: &str = "card";
const STEP_DM: &str = "dm";
const STEP_AUDIT: &str = "audit";
/// One per approver told of a break-glass use: `approver:<user id>`.
const STEP_APPROVER: &str = "approver:";
const STEP_REMINDER: &str = "reminder";

#[derive(Clone, Debug, Default)]
pub struct SlackNotifierConfig {
    /// Channel that gets one thread per request; none: no audit channel.
    pub audit_channel: Option<String>,
}

/// Tells people in Slack. Cheap to clone: clones share one state.
#[derive(Clone)]
pub struct SlackNotifier {
    inner: Arc<Inner>,
}

struct Inner {
    api: SlackApi,
    notes: Arc<dyn Notes>,
    catalog: Arc<Catalog>,
    /// Members of the approvers' user groups, for the break-glass DMs.
    directory: Arc<dyn Directory>,
    config: SlackNotifierConfig,
    metrics: Arc<Metrics>,
    bell: Arc<DeliveryBell>,
    /// DM channel of each requester, so each DM costs one call, not two.
    dms: Mutex<HashMap<String, String>>,
    /// New requests whose preview this replica is still preparing.
    preparing: Mutex<HashSet<RequestId>>,
    /// Where App Homes are published from, once bound.
    home: OnceLock<Weak<Inbound>>,
    /// Each person's Home refreshes, for coalescing.
    homes: Refreshes,
}

/// Why a step did not go through.
enum StepError {
    Slack(SlackError),
    Store(StoreError),
}

impl From<SlackError> for StepError {
    fn from(e: SlackError) -> Self {
        StepError::Slack(e)
    }
}

impl From<StoreError> for StepError {
    fn from(e: StoreError) -> Self {
        StepError::Store(e)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data; a panic elsewhere cannot leave it inconsistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SlackNotifier {
    /// A notifier that rings `bell` for the delivery worker.
    pub fn new(
        api: SlackApi,
        notes: Arc<dyn Notes>,
        catalog: Arc<Catalog>,
        directory: Arc<dyn Directory>,
        config: SlackNotifierConfig,
        metrics: Arc<Metrics>,
        bell: Arc<DeliveryBell>,
    ) -> Self {
        SlackNotifier {
            inner: Arc::new(Inner {
                api,
                notes,
                catalog,
                directory,
                config,
                metrics,
                bell,
                dms: Mutex::new(HashMap::new()),
                preparing: Mutex::new(HashSet::new()),
                home: OnceLock::new(),
                homes: Refreshes::default(),
            }),
        }
    }

    /// Publishes App Homes through `inbound` after each change (see the module docs);
    /// until bound, no Home is refreshed. The first binding stays.
    pub fn bind_home(&self, inbound: &Arc<Inbound>) {
        if self.inner.home.set(Arc::downgrade(inbound)).is_err() {
            warn!("the notifier is bound to an inbound side already; kept the first");
        }
    }

    /// The bell this notifier rings.
    pub fn bell(&self) -> &Arc<DeliveryBell> {
        &self.inner.bell
    }

    /// Waits until the outbox is drained: every event written before this call (by
    /// any replica) has been delivered. It waits as long as Slack is down; bound it.
    pub async fn flush(&self) {
        self.inner.bell.drained().await;
    }
}

#[async_trait]
impl Notifier for SlackNotifier {
    async fn publish(&self, _req: &AccessRequest, _event: &AuditEvent) -> Result<(), NotifyError> {
        self.inner.bell.ring();
        Ok(())
    }

    /// Awaits `ready` in the background and rings the bell once it resolved: a new
    /// request's preview, which the card shows, never holds up the requester.
    async fn announce(&self, event: &AuditEvent, ready: Ready) -> Result<(), NotifyError> {
        let id = event.request_id.clone();
        lock(&self.inner.preparing).insert(id.clone());
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let _ = ready.await;
            lock(&inner.preparing).remove(&id);
            inner.bell.ring();
        });
        Ok(())
    }

    async fn deliver(
        &self,
        req: &AccessRequest,
        event: &AuditEvent,
        progress: &mut dyn Progress,
    ) -> Result<(), DeliveryError> {
        let inner = &self.inner;
        if event.kind == AuditKind::Requested && lock(&inner.preparing).contains(&req.id) {
            return Err(DeliveryError::NotReady);
        }
        let notes = inner.notes.notes(&req.id).await?;
        if event.kind == AuditKind::Requested {
            inner.open(req, &notes, progress).await?;
        } else {
            inner.follow(req, event, &notes, progress).await?;
        }
        inner.refresh_homes(req, event);
        Ok(())
    }
}

/// The approval card as `req` stands, with the preview the app noted for it.
fn card_of(req: &AccessRequest, notes: &BTreeMap<String, String>) -> blocks::Message {
    blocks::card(
        req,
        &blocks::policy_yaml(req),
        notes.get(PREVIEW_NOTE).map(String::as_str),
    )
}

/// Whether an event changes what the approval card shows.
fn changes_card(kind: AuditKind) -> bool {
    !matches!(
        kind,
        AuditKind::Requested
            | AuditKind::ExpiryWarned
            | AuditKind::PolicyRemoved
            | AuditKind::PolicyReapplied
            | AuditKind::RevokeFailing
            | AuditKind::RecordRejected
    )
}

/// Whether an event changes what a Home shows: every change of state, approvals
/// and extensions included.
fn changes_home(kind: AuditKind) -> bool {
    kind == AuditKind::Requested || changes_card(kind)
}

/// `channel ts` of a note, split.
fn place<'a>(notes: &'a BTreeMap<String, String>, key: &str) -> Option<(&'a str, &'a str)> {
    notes.get(key).and_then(|v| v.split_once(' '))
}

impl Inner {
    /// A new request: open its audit thread, then post the card, with the app's
    /// preview, to the approvers. The thread is opened and noted before the card goes
    /// out: nobody can decide before the card exists, so whichever replica delivers
    /// the decision finds the thread to reply in.
    async fn open(
        &self,
        req: &AccessRequest,
        notes: &BTreeMap<String, String>,
        progress: &mut dyn Progress,
    ) -> Result<(), DeliveryError> {
        if let Some(audit) = &self.config.audit_channel
            && !notes.contains_key(AUDIT)
        {
            self.step(
                req,
                progress,
                STEP_OPENING,
                "opening the audit thread",
                async || {
                    let (channel, ts) = self
                        .api
                        .post_message(audit, &blocks::audit_opening(req), None, None)
                        .await?;
                    Ok(self
                        .notes
                        .note(&req.id, AUDIT, &format!("{channel} {ts}"))
                        .await?)
                },
            )
            .await?;
        }
        if notes.contains_key(CARD) {
            return Ok(());
        }
        let Some(target) = self.catalog.target(req.target.as_str()) else {
            warn!(request_id = %req.id, target = %req.target, "target left the catalog; no approval card posted");
            return Ok(());
        };
        let channel = target.approval_channel.to_string();
        let card = card_of(req, notes);
        self.step(
            req,
            progress,
            STEP_CARD,
            "posting the approval card",
            async || {
                let (channel, ts) = self
                    .api
                    .post_message(&channel, &card.text, Some(&card.blocks), None)
                    .await?;
                Ok(self
                    .notes
                    .note(&req.id, CARD, &format!("{channel} {ts}"))
                    .await?)
            },
        )
        .await
    }

    /// A later event: update the card, DM the requester, reply in the audit thread.
    async fn follow(
        &self,
        req: &AccessRequest,
        event: &AuditEvent,
        notes: &BTreeMap<String, String>,
        progress: &mut dyn Progress,
    ) -> Result<(), DeliveryError> {
        // Without a card yet (its request's first event is still on its way), there is
        // nothing to update: the card is rendered from the request when it is posted.
        if changes_card(event.kind)
            && let Some((channel, ts)) = place(notes, CARD)
        {
            let card = card_of(req, notes);
            self.step(
                req,
                progress,
                STEP_CARD,
                "updating the approval card",
                async || {
                    Ok(self
                        .api
                        .update_message(channel, ts, &card.text, &card.blocks)
                        .await?)
                },
            )
            .await?;
        }
        if let Some(dm) = blocks::direct_message(req, event) {
            self.step(
                req,
                progress,
                STEP_DM,
                "sending the requester a DM",
                async || Ok(self.send_dm(req.requester.as_str(), &dm).await?),
            )
            .await?;
        }
        if event.kind == AuditKind::BreakGlassUsed {
            self.tell_approvers(req, progress).await?;
        }
        if event.kind == AuditKind::BreakGlassUnacknowledged
            && let Some(channel) = &self.config.audit_channel
        {
            let reminder = blocks::break_glass_reminder(req);
            self.step(
                req,
                progress,
                STEP_REMINDER,
                "reminding the audit channel of a break-glass use",
                async || {
                    self.api
                        .post_message(channel, &reminder, None, None)
                        .await?;
                    Ok(())
                },
            )
            .await?;
        }
        if let Some(channel) = &self.config.audit_channel {
            let thread = place(notes, AUDIT).map(|(_, ts)| ts);
            self.step(
                req,
                progress,
                STEP_AUDIT,
                "posting to the audit thread",
                async || {
                    self.api
                        .post_message(channel, &blocks::audit_reply(event), None, thread)
                        .await?;
                    Ok(())
                },
            )
            .await?;
        }
        Ok(())
    }

    /// A break-glass use: a DM to every approver of the target (the members of its
    /// approver groups too), each one a step of its own so a retry sends none twice.
    /// A group Slack cannot give now holds the delivery for a retry.
    async fn tell_approvers(
        &self,
        req: &AccessRequest,
        progress: &mut dyn Progress,
    ) -> Result<(), DeliveryError> {
        let Some(target) = self.catalog.target(req.target.as_str()) else {
            return Ok(());
        };
        let mut people = target.approvers.users.clone();
        for group in &target.approvers.groups {
            match self.directory.group_members(group).await {
                Ok(members) => people.extend(members),
                Err(e) => {
                    return Err(DeliveryError::Retry {
                        why: format!("reading user group {group} for the break-glass DMs: {e}"),
                        after: None,
                    });
                }
            }
        }
        people.sort();
        people.dedup();
        people.retain(|p| p != &req.requester);
        let dm = blocks::break_glass_dm(req);
        for person in people {
            let step = format!("{STEP_APPROVER}{person}");
            self.step(
                req,
                progress,
                &step,
                "telling an approver of a break-glass use",
                async || Ok(self.send_dm(person.as_str(), &dm).await?),
            )
            .await?;
        }
        Ok(())
    }

    /// Does `call` unless `step` is done already, then records it. A failure worth
    /// retrying stops the delivery; one that would recur is logged and the step
    /// skipped.
    async fn step(
        &self,
        req: &AccessRequest,
        progress: &mut dyn Progress,
        step: &str,
        what: &str,
        call: impl AsyncFnOnce() -> Result<(), StepError>,
    ) -> Result<(), DeliveryError> {
        if progress.done(step) {
            return Ok(());
        }
        match call().await {
            Ok(()) => {}
            Err(StepError::Store(e)) => {
                warn!(request_id = %req.id, error = %e, "{what}: cannot remember where it was posted");
                return Err(DeliveryError::Store(e));
            }
            Err(StepError::Slack(e)) => {
                self.retry_if_transient(what, &e)?;
                warn!(request_id = %req.id, error = %e, kind = e.kind(), "{what} failed and would fail again; skipping it");
            }
        }
        progress.mark(step).await
    }

    /// Counts Slack's failure `e` of `what`; one worth retrying stops the delivery as
    /// a [`DeliveryError::Retry`], after the `Retry-After` Slack gave if it gave one.
    fn retry_if_transient(&self, what: &str, e: &SlackError) -> Result<(), DeliveryError> {
        self.metrics.slack_error(e.kind());
        if !e.is_transient() {
            return Ok(());
        }
        let after = match e {
            SlackError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        };
        Err(DeliveryError::Retry {
            why: format!("{what}: {e}"),
            after,
        })
    }

    /// The last step: has the requester's and the actor's Homes republished. The
    /// publishes run apart from the delivery and coalesce per person (see
    /// [`coalesce`]), so a burst of changes neither waits for them nor costs one
    /// each; one that fails is logged and counted, and the next change or opening of
    /// the Home publishes it again. Asking twice costs nothing more, so the step is
    /// not recorded in the outbox (a write per event saved): a delivery done again
    /// asks again.
    fn refresh_homes(&self, req: &AccessRequest, event: &AuditEvent) {
        if !changes_home(event.kind) {
            return;
        }
        let Some(inbound) = self.home.get().cloned() else {
            return;
        };
        let mut people = vec![req.requester.clone()];
        if let Some(actor) = &event.actor
            && actor != &req.requester
        {
            people.push(actor.clone());
        }
        let watching = inbound.upgrade();
        for user in people {
            if !watching.as_ref().is_some_and(|i| i.watches_home(&user)) {
                continue;
            }
            let inbound = inbound.clone();
            let person = user.to_string();
            self.homes.ask(&person, move || {
                let (inbound, user) = (inbound.upgrade(), user.clone());
                async move {
                    if let Some(inbound) = inbound {
                        home_view::publish_logged(inbound, user).await;
                    }
                }
            });
        }
    }

    async fn send_dm(&self, user: &str, m: &Message) -> Result<(), SlackError> {
        let known = lock(&self.dms).get(user).cloned();
        let channel = match known {
            Some(c) => c,
            None => {
                let c = self.api.open_dm(user).await?;
                lock(&self.dms).insert(user.to_owned(), c.clone());
                c
            }
        };
        self.api
            .post_message(&channel, &m.text, Some(&m.blocks), None)
            .await
            .map(|_| ())
    }
}
