//! Slack delivery from the store's outbox: [`Courier::deliver_once`] is one round of
//! the delivery worker. It claims events (with a lease, so each is one worker's at a
//! time and a dead worker's are taken over), loads each event's request as the store
//! has it now, has the notifier tell people, recording each step as it is done, and
//! acknowledges the event. Events of one request are told in the order they happened;
//! different requests are told [`DELIVERY_CONCURRENCY`] at a time.
//!
//! When Slack fails, the round stops starting new events and keeps the unfinished ones
//! for the next round, which the loop runs after a backoff (or Slack's Retry-After):
//! nothing is dropped, and nothing done is done again. The [`DeliveryBell`] wakes the
//! loop when this replica writes an event, and tells waiters when the outbox is
//! drained.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use futures_util::StreamExt;
use futures_util::stream;
use tokio::sync::{Notify, watch};
use tracing::{instrument, warn};

use super::{App, AppError};
use crate::core::ids::RequestId;
use crate::core::ports::{DeliveryError, Outgoing, OutgoingId, Progress, StoreError};

/// Requests told at once in one round. Slack's rate limits, not jitbot, bound the
/// pace; a few in flight keep one slow call from holding up the rest.
pub const DELIVERY_CONCURRENCY: usize = 8;

/// Who delivers, and how.
#[derive(Clone, Debug)]
pub struct CourierConfig {
    /// This worker's name in the outbox; unique per replica.
    pub worker: String,
    /// How long a claimed event stays this worker's without a word from it (each
    /// recorded step renews it); then another replica takes it over.
    pub lease: TimeDelta,
    /// Most events one round holds.
    pub batch: usize,
}

/// What one round did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Events newly claimed from the outbox (held ones from earlier rounds not counted).
    pub claimed: usize,
    pub delivered: usize,
    /// Events kept for the next round: Slack failed or they were not ready.
    pub held: usize,
    /// Events another worker took over mid-way.
    pub taken: usize,
    /// Events the outbox lost before they could be delivered (trimmed away).
    pub lost: u64,
    /// Slack failed this round: retry after a backoff, and not before the duration
    /// Slack asked for, when it did.
    pub slack_failing: Option<Option<Duration>>,
    /// The store failed this round.
    pub store_failing: bool,
}

/// One round of delivery at a time, over the app's ports.
pub struct Courier {
    app: App,
    config: CourierConfig,
    /// Claimed events not finished yet, oldest first: retried before new claims.
    held: tokio::sync::Mutex<Vec<Outgoing>>,
}

/// How one event's delivery ended.
enum Outcome {
    Delivered,
    Held(Outgoing),
    Taken,
    SlackFailing(Option<Duration>, Outgoing),
    StoreFailing(Outgoing),
}

impl Courier {
    pub fn new(app: App, config: CourierConfig) -> Self {
        Courier {
            app,
            config,
            held: tokio::sync::Mutex::new(Vec::new()),
        }
    }

    pub fn app(&self) -> &App {
        &self.app
    }

    pub fn config(&self) -> &CourierConfig {
        &self.config
    }

    /// Undelivered events in the outbox, for the backlog gauge.
    pub async fn backlog(&self) -> Result<u64, AppError> {
        Ok(self.app.ports.store.outbox_backlog().await?)
    }

    /// Claims what fits beside the held events and delivers them, oldest first.
    #[instrument(skip(self), fields(worker = %self.config.worker))]
    pub async fn deliver_once(&self, now: DateTime<Utc>) -> Result<DeliveryReport, AppError> {
        let mut held = self.held.lock().await;
        let mut report = DeliveryReport::default();
        let room = self.config.batch.saturating_sub(held.len());
        let lease_until = now + self.config.lease;
        let mut work: Vec<(Outgoing, bool)> = held.drain(..).map(|o| (o, true)).collect();
        if room > 0 {
            match self
                .app
                .ports
                .store
                .claim_outgoing(&self.config.worker, now, lease_until, room)
                .await
            {
                Ok(claim) => {
                    report.claimed = claim.events.len();
                    report.lost = claim.lost;
                    work.extend(claim.events.into_iter().map(|o| (o, false)));
                }
                Err(e) if work.is_empty() => return Err(e.into()),
                Err(e) => {
                    warn!(error = %e, "cannot claim from the outbox; retrying the held events");
                    report.store_failing = true;
                }
            }
        }
        if report.lost > 0 {
            warn!(
                lost = report.lost,
                "outbox events were trimmed before Slack was told; the audit history keeps them"
            );
            self.app.metrics.outbox_lost(report.lost);
        }
        work.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        let failing = Mutex::new(None::<Option<Duration>>);
        let mut rounds = stream::iter(by_request(work))
            .map(|events| self.deliver_request(events, &failing))
            .buffer_unordered(DELIVERY_CONCURRENCY);
        while let Some(outcomes) = rounds.next().await {
            for outcome in outcomes {
                match outcome {
                    Outcome::Delivered => report.delivered += 1,
                    Outcome::Taken => report.taken += 1,
                    Outcome::Held(o) => held.push(o),
                    Outcome::SlackFailing(after, o) => {
                        report.slack_failing = Some(after.max(report.slack_failing.flatten()));
                        held.push(o);
                    }
                    Outcome::StoreFailing(o) => {
                        report.store_failing = true;
                        held.push(o);
                    }
                }
            }
        }
        drop(rounds);
        held.sort_by(|a, b| a.id.cmp(&b.id));
        report.held = held.len();
        Ok(report)
    }

    /// One request's events in order; once one stops, the later ones wait with it.
    /// Once Slack failed anywhere this round, nothing new is tried.
    async fn deliver_request(
        &self,
        events: Vec<(Outgoing, bool)>,
        failing: &Mutex<Option<Option<Duration>>>,
    ) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(events.len());
        let mut stopped = false;
        for (event, renew) in events {
            let slack_down = failing.lock().unwrap_or_else(|p| p.into_inner()).is_some();
            if stopped || slack_down {
                outcomes.push(Outcome::Held(event));
                continue;
            }
            let outcome = self.deliver_event(event, renew).await;
            match &outcome {
                Outcome::Delivered => {}
                Outcome::Taken => {}
                Outcome::SlackFailing(after, _) => {
                    *failing.lock().unwrap_or_else(|p| p.into_inner()) = Some(*after);
                    stopped = true;
                }
                Outcome::Held(_) | Outcome::StoreFailing(_) => stopped = true,
            }
            outcomes.push(outcome);
        }
        outcomes
    }

    async fn deliver_event(&self, mut out: Outgoing, renew: bool) -> Outcome {
        let store = &self.app.ports.store;
        if renew {
            let lease_until = self.app.now() + self.config.lease;
            match store
                .mark_outgoing(&out.id, &self.config.worker, None, lease_until)
                .await
            {
                Ok(true) => {}
                Ok(false) => return Outcome::Taken,
                Err(e) => return self.store_failed(out, &e),
            }
        }
        let req = match store.load(&out.event.request_id).await {
            Ok(req) => req,
            Err(e @ StoreError::Unavailable(_)) => return self.store_failed(out, &e),
            // A request that cannot be read back or does not verify cannot be shown;
            // its event stays in the audit stream, and retrying would not change it.
            Err(e) => {
                warn!(request_id = %out.event.request_id, event = %out.id, error = %e, "not telling Slack about an event whose request cannot be trusted");
                None
            }
        };
        // An event of a request the store does not know (a policy nobody asked for),
        // or cannot trust, has nobody to tell.
        if let Some(req) = req {
            let mut progress = StoreProgress {
                courier: self,
                id: &out.id,
                done: std::mem::take(&mut out.done),
            };
            let told = self
                .app
                .ports
                .notifier
                .deliver(&req, &out.event, &mut progress)
                .await;
            out.done = progress.done;
            match told {
                Ok(()) => {}
                Err(DeliveryError::NotReady) => return Outcome::Held(out),
                Err(DeliveryError::Taken) => return Outcome::Taken,
                Err(DeliveryError::Retry { why, after }) => {
                    warn!(request_id = %req.id, event = %out.id, error = %why, "Slack delivery failed; retrying after a backoff");
                    return Outcome::SlackFailing(after, out);
                }
                Err(DeliveryError::Store(e)) => return self.store_failed(out, &e),
            }
        }
        match store.ack_outgoing(&out.id).await {
            Ok(()) => Outcome::Delivered,
            Err(e) => self.store_failed(out, &e),
        }
    }

    fn store_failed(&self, out: Outgoing, e: &StoreError) -> Outcome {
        warn!(request_id = %out.event.request_id, event = %out.id, error = %e, "the outbox cannot be updated; retrying");
        Outcome::StoreFailing(out)
    }
}

/// Groups events by request, keeping their order within each request and the order
/// of each request's first event.
fn by_request(work: Vec<(Outgoing, bool)>) -> Vec<Vec<(Outgoing, bool)>> {
    let mut groups: Vec<(RequestId, Vec<(Outgoing, bool)>)> = Vec::new();
    let mut index = std::collections::HashMap::new();
    for item in work {
        let id = item.0.event.request_id.clone();
        let at = *index.entry(id.clone()).or_insert_with(|| {
            groups.push((id, Vec::new()));
            groups.len() - 1
        });
        groups[at].1.push(item);
    }
    groups.into_iter().map(|(_, events)| events).collect()
}

/// Progress recorded in the outbox as each step is done.
struct StoreProgress<'a> {
    courier: &'a Courier,
    id: &'a OutgoingId,
    done: BTreeSet<String>,
}

#[async_trait]
impl Progress for StoreProgress<'_> {
    fn done(&self, step: &str) -> bool {
        self.done.contains(step)
    }

    async fn mark(&mut self, step: &str) -> Result<(), DeliveryError> {
        let c = self.courier;
        let lease_until = c.app.now() + c.config.lease;
        let ours = c
            .app
            .ports
            .store
            .mark_outgoing(self.id, &c.config.worker, Some(step), lease_until)
            .await?;
        if !ours {
            return Err(DeliveryError::Taken);
        }
        self.done.insert(step.to_owned());
        Ok(())
    }
}

/// Where the delivery loop and this replica meet: a use case that wrote an event
/// rings it, and the loop tells how each round ended, so that a caller can wait until
/// the outbox is drained.
#[derive(Debug)]
pub struct DeliveryBell {
    rung: Notify,
    rounds: watch::Sender<RoundStatus>,
}

/// How the delivery loop's last round ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoundStatus {
    /// Rounds finished so far.
    pub finished: u64,
    /// Undelivered events after the last round; `None` when the store did not say.
    pub backlog: Option<u64>,
    /// When the loop tries again after Slack failed; `None` when it is not waiting.
    pub retry_at: Option<DateTime<Utc>>,
}

impl Default for DeliveryBell {
    fn default() -> Self {
        DeliveryBell {
            rung: Notify::new(),
            rounds: watch::Sender::new(RoundStatus::default()),
        }
    }
}

impl DeliveryBell {
    /// Something was written to the outbox: the loop runs a round soon (at once,
    /// unless it is backing off from a Slack failure).
    pub fn ring(&self) {
        self.rung.notify_one();
    }

    /// Resolves once rung since the last time it resolved.
    pub async fn rung(&self) {
        self.rung.notified().await;
    }

    /// The loop finished a round.
    pub fn round_done(&self, backlog: Option<u64>, retry_at: Option<DateTime<Utc>>) {
        self.rounds.send_modify(|s| {
            s.finished += 1;
            s.backlog = backlog;
            s.retry_at = retry_at;
        });
    }

    pub fn status(&self) -> RoundStatus {
        self.rounds.borrow().clone()
    }

    /// Waits until a round that ended after this call found the outbox empty.
    pub async fn drained(&self) {
        let mut rounds = self.rounds.subscribe();
        let since = rounds.borrow().finished;
        self.ring();
        let _ = rounds
            .wait_for(|s| s.finished > since && s.backlog == Some(0))
            .await;
    }

    /// Waits until the loop plans a retry (Slack failed) and answers when.
    pub async fn retry_planned(&self) -> DateTime<Utc> {
        let mut rounds = self.rounds.subscribe();
        let mut at = None;
        let _ = rounds
            .wait_for(|s| {
                at = s.retry_at;
                at.is_some()
            })
            .await;
        at.unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}
