//! The use cases: submit, decide, revoke, extend, cancel, and the `*_once` steps the
//! workers run (`sweep_once`, `reconcile_once`, and the Slack [`Courier`]'s
//! `deliver_once`). They know only the core and the
//! ports; `startup` decides which adapters sit behind them.
//!
//! Rules every use case keeps:
//! - the store transition is written **before** anything is enforced (fail closed);
//! - each transition is one compare-and-set and emits exactly one audit event;
//! - a lost compare-and-set is retried from a fresh read, so concurrent clicks and
//!   replicas resolve to one transition;
//! - notifications never block or undo the lifecycle: failures are logged.

mod alarm;
mod clock;
mod deliver;
mod health;
pub mod lifecycle;
mod limits;
mod notes;
mod policy;
mod queries;
mod reconcile;
mod sweep;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tracing::warn;

pub use alarm::Alarm;
pub use clock::{ManualClock, SystemClock};
pub use deliver::{
    Courier, CourierConfig, DELIVERY_CONCURRENCY, DeliveryBell, DeliveryReport, RoundStatus,
};
pub use health::{Beat, Health, bound_for};
pub use lifecycle::{Decision, Revocation};
pub use notes::StoreNotes;
pub use queries::Readiness;
pub use reconcile::{REMOVED_OUTSIDE, ReconcileReport};
pub use sweep::SweepReport;

/// What a person asks for; its checks against the catalog live in the core, where
/// `jitbot render` shares them.
pub use crate::core::submission::Submission;

use crate::core::catalog::Catalog;
use crate::core::ids::{RequestId, SlackUserId};
use crate::core::ports::{
    AuditEvent, Clock, Directory, EnforceError, Enforcer, Notifier, Previewer, Store, StoreError,
};
use crate::core::request::{AccessRequest, Actor, TransitionError};
use crate::core::ttl::Ttl;
use crate::metrics::Metrics;

/// Tuning for the use cases.
#[derive(Clone, Debug)]
pub struct AppConfig {
    /// How long a claimed timer stays with one worker before another may take it.
    pub claim_lease: Ttl,
    /// Most timers one sweep claims.
    pub sweep_batch: usize,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            claim_lease: Ttl::from_secs(60),
            sweep_batch: 1000,
        }
    }
}

/// The ports the app drives.
#[derive(Clone)]
pub struct Ports {
    pub store: Arc<dyn Store>,
    pub enforcer: Arc<dyn Enforcer>,
    pub notifier: Arc<dyn Notifier>,
    pub directory: Arc<dyn Directory>,
    pub clock: Arc<dyn Clock>,
}

/// jitbot's use cases over its ports. The fields are private: the driving sides
/// (HTTP, Slack, the playground, the operator commands) reach state only through use
/// cases (see `queries`).
#[derive(Clone)]
pub struct App {
    catalog: Arc<Catalog>,
    ports: Ports,
    /// Answers "does this grant matter?" for the approval card; without one (an app
    /// over test fakes) cards show no preview.
    previewer: Option<Arc<dyn Previewer>>,
    config: AppConfig,
    metrics: Arc<Metrics>,
    /// Wakes this replica's sweep when a use case arms a timer before its plan.
    alarm: Arc<Alarm>,
    /// Turns for [`App::preview`] (see [`queries::PREVIEW_CONCURRENCY`]).
    previews: Arc<tokio::sync::Semaphore>,
    /// This replica's loops and whether it is stopping.
    health: Arc<Health>,
}

/// Why a use case did not do what was asked. `Display` is a sentence for the person
/// who asked; details go to the log.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(
        "jitbot cannot reach its state store right now, so nothing was changed and no access was granted; please try again in a minute"
    )]
    StoreUnavailable(String),
    #[error("{0}")]
    Invalid(String),
    #[error("there is no request `{0}`; `/jit list` shows yours")]
    NotFound(RequestId),
    #[error("{0}")]
    Refused(#[from] TransitionError),
    #[error("request {0} is changing under heavy contention; please try again")]
    Contended(RequestId),
    #[error("jitbot hit an internal problem; it is logged with the request id")]
    Internal(String),
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(why) => AppError::StoreUnavailable(why),
            StoreError::NotFound(id) => AppError::NotFound(id),
            StoreError::Conflict(id) => AppError::Contended(id),
            other => AppError::Internal(other.to_string()),
        }
    }
}

/// How often a use case re-reads and retries after losing a compare-and-set.
const CONFLICT_RETRIES: usize = 64;

impl App {
    pub fn new(catalog: Arc<Catalog>, ports: Ports, config: AppConfig) -> Self {
        App {
            catalog,
            ports,
            previewer: None,
            config,
            metrics: Arc::new(Metrics::new()),
            alarm: Arc::new(Alarm::default()),
            previews: Arc::new(tokio::sync::Semaphore::new(queries::PREVIEW_CONCURRENCY)),
            health: Arc::new(Health::default()),
        }
    }

    /// Shares one metrics registry with the adapters.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Previews each new request's grant with `previewer` (see [`App::preview`]).
    pub fn with_previewer(mut self, previewer: Arc<dyn Previewer>) -> Self {
        self.previewer = Some(previewer);
        self
    }

    /// The same app with other tuning.
    pub fn with_config(mut self, config: AppConfig) -> Self {
        self.config = config;
        self
    }

    /// The catalog: what can be requested, by whom, and the limits.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The metrics registry the use cases (and adapters) record into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The app's clock, for the workers that sleep on it.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.ports.clock
    }

    pub fn config(&self) -> &AppConfig {
        &self.config
    }

    /// This replica's loops and whether it is stopping (`/healthz`, `/readyz`).
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// This replica's sweep alarm.
    pub(crate) fn alarm(&self) -> &Alarm {
        &self.alarm
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.ports.clock.now()
    }

    /// The roles `user` has for `req`'s target: approver (directly or through a user
    /// group) and admin. A group lookup that fails counts as "not a member".
    pub async fn actor(&self, user: &SlackUserId, req: &AccessRequest) -> Actor {
        let is_admin = self.catalog.is_admin(user);
        let Some(target) = self.catalog.target(req.target.as_str()) else {
            return Actor {
                user: user.clone(),
                is_approver: false,
                is_admin,
            };
        };
        let mut is_approver = target.approvers.users.contains(user);
        for group in &target.approvers.groups {
            if is_approver {
                break;
            }
            match self.ports.directory.group_members(group).await {
                Ok(members) => is_approver = members.contains(user),
                Err(e) => {
                    warn!(request_id = %req.id, %group, error = %e, "cannot read user group; treating as not a member")
                }
            }
        }
        Actor {
            user: user.clone(),
            is_approver,
            is_admin,
        }
    }

    /// Whether this is the first time any replica sees `proof` (a signed Slack
    /// request's signature) within `window`: a replay of the exact request is then
    /// refused, however often it is sent.
    pub async fn first_sight(&self, proof: &str, window: Ttl) -> Result<bool, AppError> {
        let now = self.now();
        Ok(self
            .ports
            .store
            .remember_once(proof, now, now + window.as_delta())
            .await?)
    }

    /// Loads a request or says it does not exist.
    pub async fn load(&self, id: &RequestId) -> Result<AccessRequest, AppError> {
        self.ports
            .store
            .load(id)
            .await?
            .ok_or_else(|| AppError::NotFound(id.clone()))
    }

    /// When the store's earliest timer is due (see [`Store::next_due`]).
    pub async fn next_due(&self) -> Result<Option<DateTime<Utc>>, AppError> {
        Ok(self.ports.store.next_due().await?)
    }

    /// Tells this replica's sweep about a timer the store now holds for `req`.
    fn armed(&self, req: &AccessRequest) {
        if let Some(at) = req.due_at() {
            self.alarm.armed(at);
        }
    }

    /// Counts a cluster error by kind.
    fn count_kube_error(&self, e: &EnforceError) {
        self.metrics.kube_error(match e {
            EnforceError::Unavailable(_) => "unavailable",
            EnforceError::Refused(_) => "refused",
        });
    }

    /// Tells the notifier about an event the store has just recorded, and so put in its
    /// outbox: a notifier that delivers from the outbox only wakes its worker, so this
    /// never waits on Slack. A failure is logged and never undoes the lifecycle.
    async fn publish(&self, req: &AccessRequest, event: &AuditEvent) {
        if let Err(e) = self.ports.notifier.publish(req, event).await {
            warn!(request_id = %req.id, kind = event.kind.as_str(), error = %e, "notification failed; the audit stream still has the event");
        }
    }
}
