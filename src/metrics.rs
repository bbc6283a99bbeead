//! Prometheus metrics. Every label value comes from a fixed set of `&'static str`
//! (audit kinds, error kinds), never from error text or user input, so cardinality
//! stays bounded.

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};

use crate::core::request::{AuditKind, Transition};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorKind {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DependencyLabel {
    dependency: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

/// A dependency whose health `/readyz` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dependency {
    /// Redis (or the memory store, which always answers).
    Store,
    /// The Kubernetes API server.
    Cluster,
}

impl Dependency {
    pub fn as_str(self) -> &'static str {
        match self {
            Dependency::Store => "store",
            Dependency::Cluster => "cluster",
        }
    }
}

/// Which path ended a grant's access in the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevocationPath {
    /// The store's timers (`sweep_once`).
    Sweep,
    /// The cluster-side expiry guard, which needs only the API server.
    Guard,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PathLabel {
    path: &'static str,
}

/// Revocation lag buckets, in seconds: fine below a second, where the deadline-driven
/// paths work, coarse above, where only a failure puts a grant.
const REVOCATION_BUCKETS: [f64; 14] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
];

fn revocation_histogram() -> Histogram {
    Histogram::new(REVOCATION_BUCKETS)
}

/// Registers `metric` under `name` (after the `jitbot_` prefix) and hands back the
/// handle that records into it: both share one value.
fn registered<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

/// jitbot's metrics and the registry `/metrics` encodes.
pub struct Metrics {
    registry: Registry,
    requests: Family<Outcome, Counter>,
    active: Gauge,
    decision_latency: Histogram,
    revocation_lag: Family<PathLabel, Histogram, fn() -> Histogram>,
    guard_tracked: Gauge,
    guard_deletes: Family<Outcome, Counter>,
    guard_watching: Gauge,
    last_sweep: Gauge,
    last_reconcile: Gauge,
    slack_errors: Family<ErrorKind, Counter>,
    outbox_backlog: Gauge,
    outbox_lost: Counter,
    kube_errors: Family<ErrorKind, Counter>,
    break_glass: Family<Outcome, Counter>,
    operations: Operations,
}

/// The metrics that say how this replica itself fares, apart from the grants.
struct Operations {
    signature_rejections: Family<ReasonLabel, Counter>,
    store_errors: Family<ErrorKind, Counter>,
    dependency_up: Family<DependencyLabel, Gauge>,
}

impl Operations {
    fn register(r: &mut Registry) -> Self {
        let build_info: Family<VersionLabel, Gauge> = registered(
            r,
            "build_info",
            "Always 1; its label is the version of jitbot running",
            Family::default(),
        );
        build_info
            .get_or_create(&VersionLabel {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        Operations {
            signature_rejections: registered(
                r,
                "signature_rejections",
                "Requests to the Slack endpoints refused for their signature, by reason (missing, bad_timestamp, stale, mismatch)",
                Family::default(),
            ),
            store_errors: registered(
                r,
                "store_errors",
                "Calls to the store (Redis) that failed, by kind (unavailable, timeout, corrupt, tampered)",
                Family::default(),
            ),
            dependency_up: registered(
                r,
                "dependency_up",
                "1 when the dependency (store, cluster) answered this replica's last readiness check, 0 when not",
                Family::default(),
            ),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric, in the order `/metrics` lists them.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("jitbot");
        Metrics {
            requests: registered(
                &mut r,
                "requests",
                "Requests by lifecycle outcome (requested, approved, auto_approved, break_glass, denied, lapsed, cancelled, failed, expired, revoked, extended)",
                Family::default(),
            ),
            active: registered(
                &mut r,
                "active_grants",
                "Grants active now, as of the last reconcile",
                Gauge::default(),
            ),
            decision_latency: registered(
                &mut r,
                "decision_latency_seconds",
                "Seconds from a request to its approval or denial",
                Histogram::new([5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 1800.0, 3600.0]),
            ),
            revocation_lag: registered(
                &mut r,
                "revocation_lag_seconds",
                "Seconds from a grant's expires_at to the deletion of its policy, by the path that deleted it (guard, sweep)",
                Family::<PathLabel, Histogram, fn() -> Histogram>::new_with_constructor(
                    revocation_histogram,
                ),
            ),
            guard_tracked: registered(
                &mut r,
                "expiry_guard_tracked",
                "jitbot's NetworkPolicies the expiry guard holds a deadline for",
                Gauge::default(),
            ),
            guard_deletes: registered(
                &mut r,
                "expiry_guard_deletes",
                "The expiry guard's deletes by outcome (deleted, already_handled by another replica or path, failed)",
                Family::default(),
            ),
            guard_watching: registered(
                &mut r,
                "expiry_guard_watching",
                "1 while the expiry guard's watch of the cluster is established and listed, 0 while it reconnects",
                Gauge::default(),
            ),
            last_sweep: registered(
                &mut r,
                "sweep_last_success_timestamp_seconds",
                "Unix time of the last sweep of the store's timers that finished",
                Gauge::default(),
            ),
            last_reconcile: registered(
                &mut r,
                "reconcile_last_success_timestamp_seconds",
                "Unix time of the last reconcile pass that finished",
                Gauge::default(),
            ),
            slack_errors: registered(
                &mut r,
                "slack_api_errors",
                "Slack Web API errors by kind",
                Family::default(),
            ),
            outbox_backlog: registered(
                &mut r,
                "slack_outbox_backlog",
                "Events in the Slack outbox not delivered yet (all replicas), as of this replica's last delivery round",
                Gauge::default(),
            ),
            outbox_lost: registered(
                &mut r,
                "slack_outbox_lost",
                "Outbox events trimmed from the audit stream before Slack was told",
                Counter::default(),
            ),
            kube_errors: registered(
                &mut r,
                "kubernetes_api_errors",
                "Kubernetes API errors by kind",
                Family::default(),
            ),
            break_glass: registered(
                &mut r,
                "break_glass",
                "Break-glass events: used, acknowledged, and unacknowledged (each time a use is announced again because no approver acknowledged it within its review window)",
                Family::default(),
            ),
            operations: Operations::register(&mut r),
            registry: r,
        }
    }

    /// Counts a transition and, for decisions, how long the decision took.
    pub fn transition(&self, t: &Transition, now: DateTime<Utc>) {
        let glass = match t.kind {
            AuditKind::BreakGlassUsed => Some("used"),
            AuditKind::BreakGlassAcknowledged => Some("acknowledged"),
            AuditKind::BreakGlassUnacknowledged => Some("unacknowledged"),
            _ => None,
        };
        if let Some(outcome) = glass {
            self.break_glass.get_or_create(&Outcome { outcome }).inc();
        }
        let outcome = match t.kind {
            AuditKind::Approved => "approved",
            AuditKind::AutoApproved => "auto_approved",
            AuditKind::BreakGlassUsed => "break_glass",
            AuditKind::Denied => "denied",
            AuditKind::Lapsed => "lapsed",
            AuditKind::Cancelled => "cancelled",
            AuditKind::Failed => "failed",
            AuditKind::Expired => "expired",
            AuditKind::Revoked => "revoked",
            AuditKind::Extended => "extended",
            _ => return,
        };
        self.requests.get_or_create(&Outcome { outcome }).inc();
        if matches!(t.kind, AuditKind::Approved | AuditKind::Denied) {
            let secs = (now - t.request.created_at).num_milliseconds().max(0) as f64 / 1000.0;
            self.decision_latency.observe(secs);
        }
    }

    pub fn requested(&self) {
        self.requests
            .get_or_create(&Outcome {
                outcome: "requested",
            })
            .inc();
    }

    /// Records how late `path` deleted a policy after its expiry.
    pub fn revoked_after_expiry(
        &self,
        path: RevocationPath,
        expires_at: DateTime<Utc>,
        deleted_at: DateTime<Utc>,
    ) {
        let path = match path {
            RevocationPath::Sweep => "sweep",
            RevocationPath::Guard => "guard",
        };
        let secs = (deleted_at - expires_at).num_milliseconds().max(0) as f64 / 1000.0;
        self.revocation_lag
            .get_or_create(&PathLabel { path })
            .observe(secs);
    }

    pub fn set_guard_tracked(&self, n: usize) {
        self.guard_tracked.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// One delete of the expiry guard ended with `outcome`.
    pub fn guard_delete(&self, outcome: &'static str) {
        self.guard_deletes.get_or_create(&Outcome { outcome }).inc();
    }

    pub fn set_guard_watching(&self, watching: bool) {
        self.guard_watching.set(i64::from(watching));
    }

    /// A sweep finished at `at`.
    pub fn swept(&self, at: DateTime<Utc>) {
        self.last_sweep.set(at.timestamp());
    }

    /// A reconcile pass finished at `at`.
    pub fn reconciled(&self, at: DateTime<Utc>) {
        self.last_reconcile.set(at.timestamp());
    }

    pub fn set_active(&self, n: usize) {
        self.active.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn slack_error(&self, kind: &'static str) {
        self.slack_errors.get_or_create(&ErrorKind { kind }).inc();
    }

    pub fn set_outbox_backlog(&self, n: u64) {
        self.outbox_backlog
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn outbox_lost(&self, n: u64) {
        self.outbox_lost.inc_by(n);
    }

    pub fn kube_error(&self, kind: &'static str) {
        self.kube_errors.get_or_create(&ErrorKind { kind }).inc();
    }

    /// A request to a Slack endpoint was refused for its signature (`reason`: one of
    /// a fixed set).
    pub fn signature_rejected(&self, reason: &'static str) {
        self.operations
            .signature_rejections
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// A store call failed with `kind` (one of a fixed set).
    pub fn store_error(&self, kind: &'static str) {
        self.operations
            .store_errors
            .get_or_create(&ErrorKind { kind })
            .inc();
    }

    /// Whether `dependency` answered the last readiness check.
    pub fn set_dependency_up(&self, dependency: Dependency, up: bool) {
        self.operations
            .dependency_up
            .get_or_create(&DependencyLabel {
                dependency: dependency.as_str(),
            })
            .set(i64::from(up));
    }

    /// The Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_with_fixed_labels() {
        let m = Metrics::new();
        m.requested();
        m.slack_error("rate_limited");
        m.kube_error("unavailable");
        m.set_active(3);
        m.signature_rejected("stale");
        m.store_error("unavailable");
        m.set_dependency_up(Dependency::Store, false);
        m.set_dependency_up(Dependency::Cluster, true);
        m.revoked_after_expiry(
            RevocationPath::Guard,
            DateTime::UNIX_EPOCH,
            DateTime::UNIX_EPOCH + chrono::TimeDelta::seconds(2),
        );
        let text = m.encode();
        for line in [
            "jitbot_requests_total{outcome=\"requested\"} 1",
            "jitbot_slack_api_errors_total{kind=\"rate_limited\"} 1",
            "jitbot_kubernetes_api_errors_total{kind=\"unavailable\"} 1",
            "jitbot_active_grants 3",
            "jitbot_revocation_lag_seconds_count{path=\"guard\"} 1",
            "jitbot_signature_rejections_total{reason=\"stale\"} 1",
            "jitbot_store_errors_total{kind=\"unavailable\"} 1",
            "jitbot_dependency_up{dependency=\"store\"} 0",
            "jitbot_dependency_up{dependency=\"cluster\"} 1",
            concat!(
                "jitbot_build_info{version=\"",
                env!("CARGO_PKG_VERSION"),
                "\"} 1"
            ),
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
