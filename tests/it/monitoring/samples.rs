//! A `Metrics` with a sample in every family, and the metrics being added alongside
//! the monitoring manifests ([`NEW_METRICS`]).

use chrono::{DateTime, TimeDelta};

use jitbot::adapters::slack::SlackError;
use jitbot::core::request::{AccessRequest, AuditKind, State, Transition};
use jitbot::metrics::{Metrics, RevocationPath};

/// NEW_METRICS: exported once the metrics added alongside these manifests are merged
/// (`jitbot_build_info{version}`, `jitbot_signature_rejections_total{reason}`,
/// `jitbot_store_errors_total{kind}`, `jitbot_dependency_up{dependency}`). Until then
/// `the_new_metrics_are_exported` fails and the other tests leave these names to it.
pub(super) const NEW_METRICS: &[&str] = &[
    "jitbot_build_info",
    "jitbot_signature_rejections_total",
    "jitbot_store_errors_total",
    "jitbot_dependency_up",
];

/// NEW_METRICS: the labels of [`NEW_METRICS`] and their fixed values (`None`: any
/// value, such as a version).
pub(super) const NEW_LABELS: &[(&str, &str, Option<&[&str]>)] = &[
    ("jitbot_build_info", "version", None),
    (
        "jitbot_signature_rejections_total",
        "reason",
        Some(&["missing", "bad_timestamp", "stale", "mismatch"]),
    ),
    (
        "jitbot_store_errors_total",
        "kind",
        Some(&["unavailable", "tampered", "other"]),
    ),
    (
        "jitbot_dependency_up",
        "dependency",
        Some(&["store", "cluster"]),
    ),
];

/// NEW_METRICS: after the merge, record here one sample of each labelled metric of
/// [`NEW_METRICS`] with every fixed value of [`NEW_LABELS`], through its public method,
/// as [`sampled`] does for the others (e.g. each signature rejection reason once).
fn sample_new_metrics(_m: &Metrics) {}

/// What the expiry guard passes to `Metrics::guard_delete` (`src/adapters/kube/guard.rs`).
pub(super) const GUARD_OUTCOMES: &[&str] = &["deleted", "already_handled", "failed"];
/// What jitbot passes to `Metrics::kube_error` (`src/app/mod.rs`, the guard).
pub(super) const KUBE_KINDS: &[&str] = &["unavailable", "refused"];

fn every_audit_kind() -> Vec<AuditKind> {
    use AuditKind::*;
    let kinds = vec![
        Requested,
        ApprovalRecorded,
        Approved,
        Denied,
        Lapsed,
        Cancelled,
        Activated,
        Failed,
        Expired,
        Revoked,
        ExtensionRequested,
        ExtensionApprovalRecorded,
        ExtensionDenied,
        Extended,
        ExpiryWarned,
        PolicyRemoved,
        PolicyReapplied,
        RevokeFailing,
        RecordRejected,
    ];
    // A kind added to jitbot fails to compile here until it is listed above.
    for k in &kinds {
        match k {
            Requested
            | ApprovalRecorded
            | Approved
            | Denied
            | Lapsed
            | Cancelled
            | Activated
            | Failed
            | Expired
            | Revoked
            | ExtensionRequested
            | ExtensionApprovalRecorded
            | ExtensionDenied
            | Extended
            | ExpiryWarned
            | PolicyRemoved
            | PolicyReapplied
            | RevokeFailing
            | RecordRejected => {}
        }
    }
    kinds
}

fn every_slack_error() -> Vec<SlackError> {
    let errors = vec![
        SlackError::Api {
            method: "chat.postMessage",
            code: "channel_not_found".to_owned(),
        },
        SlackError::RateLimited {
            method: "chat.postMessage",
            retry_after: None,
        },
        SlackError::Transport {
            method: "chat.postMessage",
            detail: "connection refused".to_owned(),
        },
    ];
    for e in &errors {
        match e {
            SlackError::Api { .. }
            | SlackError::RateLimited { .. }
            | SlackError::Transport { .. } => {}
        }
    }
    errors
}

/// A `Metrics` with at least one sample in every family, each fixed label value once:
/// derived from jitbot's own types where the value comes from one (outcomes of
/// transitions, revocation paths, Slack error kinds), from the tables above where the
/// code passes a string.
pub(super) fn sampled() -> Metrics {
    let m = Metrics::new();
    let req = AccessRequest::test().build();
    let now = req.created_at + TimeDelta::minutes(1);
    m.requested();
    for kind in every_audit_kind() {
        let t = Transition {
            from: State::Pending,
            kind,
            request: req.clone(),
        };
        m.transition(&t, now);
    }
    for path in [RevocationPath::Guard, RevocationPath::Sweep] {
        m.revoked_after_expiry(path, DateTime::UNIX_EPOCH, DateTime::UNIX_EPOCH);
    }
    for outcome in GUARD_OUTCOMES {
        m.guard_delete(outcome);
    }
    for e in every_slack_error() {
        m.slack_error(e.kind());
    }
    for kind in KUBE_KINDS {
        m.kube_error(kind);
    }
    m.outbox_lost(1);
    sample_new_metrics(&m);
    m
}
