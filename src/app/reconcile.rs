//! `reconcile_once`: the second, independent path that keeps the cluster honest. It
//! lists every policy labelled as jitbot's and
//! - deletes any past its `jitbot.dev/expires-at` (or without a readable one), even
//!   when the store knows nothing about it;
//! - deletes any whose request the store knows and is not Active (or Approved, which
//!   is being applied right now);
//! - keeps a policy it cannot explain (unknown request) only until its expires-at;
//! - re-applies an Active grant whose policy is missing or was edited by someone else.
//!
//! Policies without jitbot's label are never touched, whatever their name.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use tracing::{info, instrument, warn};

use super::{App, AppError};
use crate::core::ids::{Namespace, RequestId};
use crate::core::netpol;
use crate::core::ports::{AuditEvent, PolicyRef};
use crate::core::request::{AccessRequest, AuditKind, State};

/// What one reconcile pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    pub seen: usize,
    pub removed: usize,
    pub reapplied: usize,
    /// Unknown to the store but not yet expired: kept until their expires-at.
    pub kept_unexplained: usize,
    pub errors: usize,
}

impl App {
    #[instrument(skip(self))]
    pub async fn reconcile_once(&self, now: DateTime<Utc>) -> Result<ReconcileReport, AppError> {
        let live = self.ports.enforcer.list_managed().await.map_err(|e| {
            self.count_kube_error(&e);
            AppError::Internal(format!("cannot list jitbot's policies: {e}"))
        })?;
        let mut report = ReconcileReport {
            seen: live.len(),
            ..ReconcileReport::default()
        };
        let mut present: HashSet<(String, String)> = HashSet::new();
        for policy in &live {
            let (Some(name), Some(namespace)) = (&policy.metadata.name, &policy.metadata.namespace)
            else {
                continue;
            };
            present.insert((namespace.clone(), name.clone()));
            let id = netpol::request_id(policy);
            let req = match &id {
                Some(id) => self.ports.store.load(id).await?,
                None => None,
            };
            let expired = netpol::expires_at(policy).is_none_or(|at| at <= now);
            let verdict = match (&req, expired) {
                (_, true) => Some("its expires-at has passed"),
                (Some(r), false) if !matches!(r.state, State::Active | State::Approved) => {
                    Some("its request is no longer active")
                }
                (None, false) => {
                    report.kept_unexplained += 1;
                    None
                }
                (Some(_), false) => None,
            };
            if let Some(why) = verdict {
                let target = PolicyRef {
                    namespace: match namespace.parse::<Namespace>() {
                        Ok(ns) => ns,
                        Err(_) => continue,
                    },
                    name: name.clone(),
                };
                match self
                    .ports
                    .enforcer
                    .revoke(std::slice::from_ref(&target))
                    .await
                {
                    Ok(()) => {
                        report.removed += 1;
                        info!(request_id = ?id, policy = %name, %namespace, why, "reconciler removed a policy");
                        let detail =
                            format!("reconciler deleted NetworkPolicy {namespace}/{name}: {why}");
                        self.record(
                            id.as_ref(),
                            req.as_ref(),
                            AuditKind::PolicyRemoved,
                            now,
                            detail,
                        )
                        .await;
                    }
                    Err(e) => {
                        report.errors += 1;
                        warn!(request_id = ?id, policy = %name, error = %e, "reconciler could not delete a policy");
                    }
                }
            } else if let Some(r) = req.as_ref().filter(|r| r.state == State::Active)
                && edited(policy, r)
            {
                if self.reapply(r).await {
                    report.reapplied += 1;
                    let detail = format!(
                        "reconciler restored NetworkPolicy {namespace}/{name}, which had been edited"
                    );
                    self.record(
                        Some(&r.id),
                        Some(r),
                        AuditKind::PolicyReapplied,
                        now,
                        detail,
                    )
                    .await;
                } else {
                    report.errors += 1;
                }
            }
        }
        let active = self.ports.store.list_by_state(State::Active).await?;
        self.metrics.set_active(active.len());
        for r in active {
            if r.expires_at.is_none_or(|at| at <= now) {
                continue; // the sweep expires it
            }
            let missing: Vec<PolicyRef> = netpol::policy_refs(&r)
                .into_iter()
                .filter(|p| !present.contains(&(p.namespace.to_string(), p.name.clone())))
                .collect();
            if missing.is_empty() {
                continue;
            }
            if self.reapply(&r).await {
                report.reapplied += 1;
                let names: Vec<String> = missing
                    .iter()
                    .map(|p| format!("{}/{}", p.namespace, p.name))
                    .collect();
                let detail = format!(
                    "reconciler re-applied missing NetworkPolicy {}",
                    names.join(", ")
                );
                self.record(
                    Some(&r.id),
                    Some(&r),
                    AuditKind::PolicyReapplied,
                    now,
                    detail,
                )
                .await;
            } else {
                report.errors += 1;
            }
        }
        Ok(report)
    }

    /// Audits a reconciler action (and tells Slack when the request is known).
    async fn record(
        &self,
        id: Option<&RequestId>,
        req: Option<&AccessRequest>,
        kind: AuditKind,
        now: DateTime<Utc>,
        detail: String,
    ) {
        let Some(id) = id else {
            return;
        };
        let event = AuditEvent {
            request_id: id.clone(),
            kind,
            at: now,
            actor: None,
            from: req.map(|r| r.state),
            to: req.map(|r| r.state),
            detail,
        };
        if let Err(e) = self.ports.store.append_audit(&event).await {
            warn!(request_id = %id, error = %e, "cannot record a reconciler action in the audit stream");
        }
        if let Some(r) = req {
            self.publish(r, &event).await;
        }
    }
}

/// Whether a live policy differs from what the store says it should be: its spec, or
/// any of jitbot's labels and annotations. Fields the server or other tools add are
/// not differences.
fn edited(live: &NetworkPolicy, req: &AccessRequest) -> bool {
    let Some(expires_at) = req.expires_at else {
        return false;
    };
    let Some(want) = netpol::render(req, expires_at)
        .into_iter()
        .find(|p| p.metadata.name == live.metadata.name)
    else {
        return true;
    };
    let subset = |want: &Option<BTreeMap<String, String>>,
                  have: &Option<BTreeMap<String, String>>| {
        let empty = BTreeMap::new();
        let have = have.as_ref().unwrap_or(&empty);
        want.as_ref()
            .unwrap_or(&empty)
            .iter()
            .all(|(k, v)| have.get(k) == Some(v))
    };
    want.spec != live.spec
        || !subset(&want.metadata.labels, &live.metadata.labels)
        || !subset(&want.metadata.annotations, &live.metadata.annotations)
}
