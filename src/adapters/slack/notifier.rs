//! `SlackNotifier`: the `Notifier` port on Slack. `publish` only queues the event, so
//! the lifecycle (and Slack's 3-second acks) never wait on Slack; one worker delivers
//! the queue in order: the approval card and the audit thread's opening message when
//! a request arrives, then card updates, DMs and thread replies. It renders and sends,
//! nothing more: the card's preview is the one the app noted when the request was
//! submitted, and where things were posted is kept through the [`Notes`] port (the
//! store's annotations, but never the store itself), so any replica can update them
//! later. The durable audit stream stays the source of truth when Slack is down.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use super::blocks::{self, Message};
use super::{SlackApi, SlackError};
use crate::core::catalog::Catalog;
use crate::core::ports::{AuditEvent, Notes, Notifier, NotifyError, PREVIEW_NOTE, Ready};
use crate::core::request::{AccessRequest, AuditKind};
use crate::metrics::Metrics;

const CARD: &str = "slack.card";
const AUDIT: &str = "slack.audit";
/// Events queued for Slack at most; beyond that they are logged and dropped (the
/// audit stream keeps them).
const QUEUE: usize = 10_000;

#[derive(Clone, Debug, Default)]
pub struct SlackNotifierConfig {
    /// Channel that gets one thread per request; none: no audit channel.
    pub audit_channel: Option<String>,
}

enum Job {
    Deliver(Box<(AccessRequest, AuditEvent)>),
    /// The request comes from `Ready`, once the app has noted what the card shows.
    Announce(Box<AuditEvent>, Ready),
    Flush(oneshot::Sender<()>),
}

/// Queues events for the Slack worker.
#[derive(Clone)]
pub struct SlackNotifier {
    queue: mpsc::Sender<Job>,
}

struct Worker {
    api: SlackApi,
    notes: Arc<dyn Notes>,
    catalog: Arc<Catalog>,
    config: SlackNotifierConfig,
    metrics: Arc<Metrics>,
    dms: HashMap<String, String>,
}

impl SlackNotifier {
    /// Starts the delivery worker; it ends when every `SlackNotifier` is dropped.
    pub fn start(
        api: SlackApi,
        notes: Arc<dyn Notes>,
        catalog: Arc<Catalog>,
        config: SlackNotifierConfig,
        metrics: Arc<Metrics>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel(QUEUE);
        let mut worker = Worker {
            api,
            notes,
            catalog,
            config,
            metrics,
            dms: HashMap::new(),
        };
        let handle = tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                match job {
                    Job::Deliver(job) => worker.deliver(&job.0, &job.1).await,
                    Job::Announce(event, ready) => worker.deliver(&ready.await, &event).await,
                    Job::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
        (SlackNotifier { queue: tx }, handle)
    }

    /// Waits until everything queued before this call has been delivered (or failed).
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.queue.send(Job::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

#[async_trait]
impl Notifier for SlackNotifier {
    async fn publish(&self, req: &AccessRequest, event: &AuditEvent) -> Result<(), NotifyError> {
        self.queue
            .try_send(Job::Deliver(Box::new((req.clone(), event.clone()))))
            .map_err(|e| NotifyError(format!("Slack queue: {e}")))
    }

    /// Queues the event with `ready`, which the worker awaits just before it renders:
    /// a new request's preview, which the card shows, never holds up the requester.
    async fn announce(&self, event: &AuditEvent, ready: Ready) -> Result<(), NotifyError> {
        self.queue
            .try_send(Job::Announce(Box::new(event.clone()), ready))
            .map_err(|e| NotifyError(format!("Slack queue: {e}")))
    }
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
    )
}

impl Worker {
    async fn deliver(&mut self, req: &AccessRequest, event: &AuditEvent) {
        let notes = match self.notes.notes(&req.id).await {
            Ok(n) => n,
            Err(e) => {
                warn!(request_id = %req.id, error = %e, "cannot read where this request's Slack messages are");
                Default::default()
            }
        };
        let preview = notes.get(PREVIEW_NOTE).map(String::as_str);
        if event.kind == AuditKind::Requested {
            self.open(req, preview).await;
            return;
        }
        if changes_card(event.kind) {
            let card = blocks::card(req, &blocks::policy_yaml(req), preview);
            if let Some((channel, ts)) = notes.get(CARD).and_then(|v| v.split_once(' ')) {
                let result = self
                    .api
                    .update_message(channel, ts, &card.text, &card.blocks)
                    .await;
                self.log(req, "updating the approval card", result);
            }
        }
        if let Some(dm) = blocks::direct_message(req, event) {
            let result = self.send_dm(req.requester.as_str(), &dm).await;
            self.log(req, "sending the requester a DM", result);
        }
        if let Some(channel) = self.config.audit_channel.clone() {
            let thread = notes
                .get(AUDIT)
                .and_then(|v| v.split_once(' '))
                .map(|(_, ts)| ts);
            let result = self
                .api
                .post_message(&channel, &blocks::audit_reply(event), None, thread)
                .await;
            self.log(req, "posting to the audit thread", result.map(|_| ()));
        }
    }

    /// A new request: open its audit thread and post the card, with the app's
    /// `preview`, to the approvers.
    async fn open(&mut self, req: &AccessRequest, preview: Option<&str>) {
        // The audit thread is opened and remembered before the card goes out: nobody
        // can decide before the card exists, so whichever replica handles the
        // decision finds the thread to reply in.
        if let Some(audit) = self.config.audit_channel.clone() {
            match self
                .api
                .post_message(&audit, &blocks::audit_opening(req), None, None)
                .await
            {
                Ok((channel, ts)) => self.remember(req, AUDIT, &format!("{channel} {ts}")).await,
                Err(e) => self.log(req, "opening the audit thread", Err(e)),
            }
        }
        let channel = match self.catalog.target(req.target.as_str()) {
            Some(t) => t.approval_channel.to_string(),
            None => {
                warn!(request_id = %req.id, target = %req.target, "target left the catalog; no approval card posted");
                return;
            }
        };
        let card = blocks::card(req, &blocks::policy_yaml(req), preview);
        match self
            .api
            .post_message(&channel, &card.text, Some(&card.blocks), None)
            .await
        {
            Ok((channel, ts)) => self.remember(req, CARD, &format!("{channel} {ts}")).await,
            Err(e) => self.log(req, "posting the approval card", Err(e)),
        }
    }

    async fn send_dm(&mut self, user: &str, m: &Message) -> Result<(), SlackError> {
        let channel = match self.dms.get(user) {
            Some(c) => c.clone(),
            None => {
                let c = self.api.open_dm(user).await?;
                self.dms.insert(user.to_owned(), c.clone());
                c
            }
        };
        self.api
            .post_message(&channel, &m.text, Some(&m.blocks), None)
            .await
            .map(|_| ())
    }

    async fn remember(&self, req: &AccessRequest, key: &str, value: &str) {
        if let Err(e) = self.notes.note(&req.id, key, value).await {
            warn!(request_id = %req.id, key, error = %e, "cannot remember a Slack message reference");
        }
    }

    fn log(&self, req: &AccessRequest, what: &str, result: Result<(), SlackError>) {
        if let Err(e) = result {
            self.metrics.slack_error(e.kind());
            warn!(request_id = %req.id, error = %e, kind = e.kind(), "{what} failed");
        }
    }
}
