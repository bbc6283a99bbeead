//! A `Metrics` with a sample in every family, each fixed label value once.

use chrono::{DateTime, TimeDelta};

use jitbot::adapters::slack::SlackError;
use jitbot::core::request::{AccessRequest, AuditKind, State, Transition};
use jitbot::metrics::{Dependency, Metrics, RevocationPath};

/// What `SignatureError::reason` gives `Metrics::signature_rejected`
/// (`src/adapters/http/signature.rs`).
pub(super) const SIGNATURE_REASONS: &[&str] = &["missing", "bad_timestamp", "stale", "mismatch"];
/// What the Redis store passes to `Metrics::store_error` (`src/adapters/redis/mod.rs`).
pub(super) const STORE_KINDS: &[&str] = &["unavailable", "timeout", "corrupt", "tampered"];

/// What the expiry guard passes to `Metrics::guard_delete` (`src/adapters/kube/guard.rs`).
pub(super) const GUARD_OUTCOMES: &[&str] = &["deleted", "already_handled", "failed"];
/// What jitbot passes to `Metrics::kube_error` (`src/app/mod.rs`, the guard).
pub(super) const KUBE_KINDS: &[&str] = &["unavailable", "refused"];

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
        SlackError::RefusedUrl {
            why: "not Slack's hooks host",
        },
        SlackError::Unsendable {
            method: "views.open",
            detail: "the view does not fit Slack's Block Kit model".to_owned(),
        },
    ];
    for e in &errors {
        match e {
            SlackError::Api { .. }
            | SlackError::RateLimited { .. }
            | SlackError::Transport { .. }
            | SlackError::RefusedUrl { .. }
            | SlackError::Unsendable { .. } => {}
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
    for kind in AuditKind::ALL {
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
    for reason in SIGNATURE_REASONS {
        m.signature_rejected(reason);
    }
    for kind in STORE_KINDS {
        m.store_error(kind);
    }
    for dependency in [Dependency::Store, Dependency::Cluster] {
        m.set_dependency_up(dependency, true);
    }
    m
}
