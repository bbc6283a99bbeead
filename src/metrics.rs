//! Prometheus metrics. Every label value comes from a fixed set of `&'static str`
//! (audit kinds, error kinds), never from error text or user input, so cardinality
//! stays bounded.

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::core::request::{AuditKind, Transition};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorKind {
    kind: &'static str,
}

/// jitbot's metrics and the registry `/metrics` encodes.
pub struct Metrics {
    registry: Registry,
    requests: Family<Outcome, Counter>,
    active: Gauge,
    decision_latency: Histogram,
    revocation_lag: Histogram,
    slack_errors: Family<ErrorKind, Counter>,
    kube_errors: Family<ErrorKind, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("jitbot");
        let requests = Family::<Outcome, Counter>::default();
        registry.register(
            "requests",
            "Requests by lifecycle outcome (requested, approved, denied, lapsed, cancelled, failed, expired, revoked, extended)",
            requests.clone(),
        );
        let active = Gauge::default();
        registry.register(
            "active_grants",
            "Grants active now, as of the last reconcile",
            active.clone(),
        );
        let decision_latency =
            Histogram::new([5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 1800.0, 3600.0]);
        registry.register(
            "decision_latency_seconds",
            "Seconds from a request to its approval or denial",
            decision_latency.clone(),
        );
        let revocation_lag = Histogram::new([0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0]);
        registry.register(
            "revocation_lag_seconds",
            "Seconds from a grant's expires_at to the deletion of its policy",
            revocation_lag.clone(),
        );
        let slack_errors = Family::<ErrorKind, Counter>::default();
        registry.register(
            "slack_api_errors",
            "Slack Web API errors by kind",
            slack_errors.clone(),
        );
        let kube_errors = Family::<ErrorKind, Counter>::default();
        registry.register(
            "kubernetes_api_errors",
            "Kubernetes API errors by kind",
            kube_errors.clone(),
        );
        Metrics {
            registry,
            requests,
            active,
            decision_latency,
            revocation_lag,
            slack_errors,
            kube_errors,
        }
    }

    /// Counts a transition and, for decisions, how long the decision took.
    pub fn transition(&self, t: &Transition, now: DateTime<Utc>) {
        let outcome = match t.kind {
            AuditKind::Approved => "approved",
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

    /// Records how late a policy was deleted after its expiry.
    pub fn revoked_after_expiry(&self, expires_at: DateTime<Utc>, deleted_at: DateTime<Utc>) {
        let secs = (deleted_at - expires_at).num_milliseconds().max(0) as f64 / 1000.0;
        self.revocation_lag.observe(secs);
    }

    pub fn set_active(&self, n: usize) {
        self.active.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn slack_error(&self, kind: &'static str) {
        self.slack_errors.get_or_create(&ErrorKind { kind }).inc();
    }

    pub fn kube_error(&self, kind: &'static str) {
        self.kube_errors.get_or_create(&ErrorKind { kind }).inc();
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
        m.revoked_after_expiry(
            DateTime::UNIX_EPOCH,
            DateTime::UNIX_EPOCH + chrono::TimeDelta::seconds(2),
        );
        let text = m.encode();
        for line in [
            "jitbot_requests_total{outcome=\"requested\"} 1",
            "jitbot_slack_api_errors_total{kind=\"rate_limited\"} 1",
            "jitbot_kubernetes_api_errors_total{kind=\"unavailable\"} 1",
            "jitbot_active_grants 3",
            "jitbot_revocation_lag_seconds_count 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
