//! The knobs of the Kubernetes adapter, with the defaults a production cluster wants.

use std::time::Duration;

pub use crate::core::netpol::ListScope;

/// How the adapter talks to the API server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubeSettings {
    /// Longest one API call may take. A call that takes longer counts as the cluster
    /// being unavailable (and is retried like a 503), so a hung connection cannot hold
    /// a worker.
    pub request_timeout: Duration,
    /// Attempts an apply (and each page of a list) makes before it gives up with
    /// `Unavailable`. Kept small: a person is waiting for the answer, and nothing above
    /// this adapter retries: a grant whose apply gives up ends Failed.
    pub apply_attempts: u32,
    /// Wait before the first retry; it doubles after each retry.
    pub initial_backoff: Duration,
    /// Longest wait between two retries. Also caps a server's `retryAfterSeconds`, so
    /// one answer cannot park a call for minutes.
    pub max_backoff: Duration,
    /// How long one revoke keeps retrying before it returns `Unavailable`. Revoking is
    /// what ends access, so it retries much longer than apply, but it must return: the
    /// expiry worker then raises an alert and tries again on its next sweep.
    pub revoke_deadline: Duration,
    /// Where `list_managed` looks for jitbot's policies.
    pub scope: ListScope,
}

impl Default for KubeSettings {
    fn default() -> Self {
        KubeSettings {
            request_timeout: Duration::from_secs(10),
            apply_attempts: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            revoke_deadline: Duration::from_secs(60),
            scope: ListScope::Catalog,
        }
    }
}
