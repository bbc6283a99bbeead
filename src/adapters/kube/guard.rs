//! The expiry guard: ends access at each policy's `jitbot.dev/expires-at` with nothing
//! but the API server. Every replica runs one. It follows jitbot's own NetworkPolicies
//! with a metadata-only watch (kube-rs's `watcher`, which lists, watches and relists
//! by itself), keeps one deadline per policy, and at each deadline deletes that policy
//! with a precondition on the `resourceVersion` it saw: a policy changed since (an
//! extension writes a new expiry) is never deleted by the stale deadline, and the new
//! version's annotation moves the deadline instead. "Not found" and "conflict" both
//! mean another replica or path got there first.
//!
//! It never asks the store. A policy whose expiry is missing, unreadable or further
//! away than `access.max_duration` is deleted at once, and a [`Removal`] goes to the
//! app to audit it when the store answers. Marking a grant Expired stays with the
//! store's sweep, so that happens once whichever path deleted the policy. The guard
//! only ever deletes: nothing is created or widened from here.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream, SelectAll};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::{Deleted, KubeEnforcer, ListScope};
use crate::core::expiry::{DeadlineQueue, Ending, Removal, ending};
use crate::core::ids::{Namespace, RequestId};
use crate::core::netpol::{self, MANAGED_SELECTOR};
use crate::core::ports::{Clock, EnforceError, PolicyRef};
use crate::core::ttl::Ttl;
use crate::metrics::{Metrics, RevocationPath};

/// Deletes in flight at once. A delete is an etcd write; on the test API server a plain
/// client deletes 1,000 policies fastest at 16-32 in flight, and during a cohort the
/// sweep keeps as many again in flight from the other end.
pub const GUARD_CONCURRENCY: usize = 32;

/// How soon a delete that failed (timeout, 5xx, 429) is tried again; it doubles up to
/// [`MAX_RETRY`] while the cluster keeps failing.
const FIRST_RETRY: Duration = Duration::from_millis(250);
const MAX_RETRY: Duration = Duration::from_secs(5);

/// A policy, by where it lives.
type Key = (String, String);

/// What the guard holds for one policy.
#[derive(Clone, Debug)]
struct Tracked {
    /// The version whose annotation set the deadline; the delete is conditional on it.
    resource_version: String,
    request_id: Option<RequestId>,
    ending: Ending,
    /// Failed deletes so far, for the back-off.
    failures: u32,
}

/// Everything the guard needs; see the module doc.
pub struct ExpiryGuard {
    /// Its client, scope and namespaces say what to watch; it does the deletes.
    pub(super) cluster: KubeEnforcer,
    /// `access.max_duration`: an expiry further away than this is not believed.
    pub max_duration: Ttl,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    /// Where removals of untrustworthy policies go, to be audited. Never awaited: a
    /// full channel drops the message (and says so in the log) rather than stall.
    pub removals: mpsc::Sender<Removal>,
}

/// One watch stream's events, tagged with the stream they came from so that each
/// relist can forget what that stream no longer lists.
type Tagged = (
    usize,
    Result<Event<PartialObjectMeta<NetworkPolicy>>, watcher::Error>,
);

/// What the guard is doing between events.
struct Run {
    queue: DeadlineQueue<Key, Tracked>,
    /// Per stream: the keys listed since its relist began.
    relisting: HashMap<usize, HashSet<Key>>,
    /// Per stream: the namespace it watches (`None`: all).
    watched: Vec<Option<String>>,
    /// Streams that have finished a list and watch now.
    synced: HashSet<usize>,
    deleting: JoinSet<(Key, Tracked, Result<Deleted, EnforceError>)>,
}

impl ExpiryGuard {
    /// Runs until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut events = self.watch_streams();
        let mut run = Run {
            queue: DeadlineQueue::default(),
            relisting: HashMap::new(),
            watched: self.watched(),
            synced: HashSet::new(),
            deleting: JoinSet::new(),
        };
        self.metrics.set_guard_watching(false);
        info!(scope = ?self.cluster.settings.scope, "expiry guard watching jitbot's NetworkPolicies");
        loop {
            let room = run.deleting.len() < GUARD_CONCURRENCY;
            let next = run.queue.next_due().filter(|_| room);
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                Some(event) = events.next() => self.on_event(&mut run, event),
                Some(done) = run.deleting.join_next(), if !run.deleting.is_empty() => {
                    if let Ok((key, tracked, outcome)) = done {
                        self.on_deleted(&mut run, key, tracked, outcome);
                    }
                }
                _ = sleep_until(self.clock.as_ref(), next), if next.is_some() => {
                    self.start_deletes(&mut run);
                }
            }
            self.metrics.set_guard_tracked(run.queue.len());
        }
        // Deletes in flight finish: each ends access that is due.
        while let Some(done) = run.deleting.join_next().await {
            if let Ok((key, tracked, outcome)) = done {
                self.on_deleted(&mut run, key, tracked, outcome);
            }
        }
        self.metrics.set_guard_watching(false);
    }

    fn watched(&self) -> Vec<Option<String>> {
        match self.cluster.settings.scope {
            ListScope::Cluster => vec![None],
            ListScope::Catalog => self
                .cluster
                .namespaces
                .iter()
                .map(|ns| Some(ns.as_str().to_owned()))
                .collect(),
        }
    }

    /// One metadata watch per namespace (or one for the cluster), merged. Each backs
    /// off by itself after errors and relists when its watch cannot resume.
    fn watch_streams(&self) -> SelectAll<BoxStream<'static, Tagged>> {
        let config = watcher::Config::default().labels(MANAGED_SELECTOR);
        let mut all = SelectAll::new();
        for (tag, namespace) in self.watched().into_iter().enumerate() {
            // An Api of PartialObjectMeta asks for metadata only: the guard needs no
            // spec, which keeps what the watch decodes and holds small.
            let api: Api<PartialObjectMeta<NetworkPolicy>> = match &namespace {
                Some(ns) => Api::namespaced(self.cluster.client.clone(), ns),
                None => Api::all(self.cluster.client.clone()),
            };
            let events = watcher(api, config.clone())
                .default_backoff()
                .map(move |event| (tag, event));
            all.push(events.boxed());
        }
        if all.is_empty() {
            // No namespace to watch: a stream that never ends keeps the loop simple.
            all.push(stream::pending().boxed());
        }
        all
    }

    fn on_event(&self, run: &mut Run, (tag, event): Tagged) {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                if run.synced.remove(&tag) {
                    self.metrics.set_guard_watching(false);
                }
                self.metrics.kube_error("unavailable");
                warn!(error = %e, "expiry guard's watch failed; it reconnects by itself");
                return;
            }
        };
        match event {
            Event::Init => {
                run.relisting.insert(tag, HashSet::new());
            }
            Event::InitApply(meta) => {
                if let Some(key) = self.track(run, &meta) {
                    run.relisting.entry(tag).or_default().insert(key);
                }
            }
            Event::InitDone => {
                // What this stream no longer lists was deleted while it was away.
                let listed = run.relisting.remove(&tag).unwrap_or_default();
                let namespace = run.watched.get(tag).cloned().flatten();
                run.queue.retain(|key| {
                    listed.contains(key) || namespace.as_ref().is_some_and(|ns| ns != &key.0)
                });
                run.synced.insert(tag);
                if run.synced.len() == run.watched.len() {
                    self.metrics.set_guard_watching(true);
                }
                debug!(
                    tracked = run.queue.len(),
                    "expiry guard listed jitbot's policies"
                );
            }
            Event::Apply(meta) => {
                self.track(run, &meta);
            }
            Event::Delete(meta) => {
                if let Some(key) = key_of(&meta) {
                    run.queue.remove(&key);
                }
            }
        }
    }

    /// Sets (or moves) a policy's deadline from its annotations.
    fn track(&self, run: &mut Run, meta: &PartialObjectMeta<NetworkPolicy>) -> Option<Key> {
        let key = key_of(meta)?;
        let now = self.clock.now();
        let ending = ending(meta.metadata.annotations.as_ref(), now, self.max_duration);
        let tracked = Tracked {
            resource_version: meta.metadata.resource_version.clone().unwrap_or_default(),
            request_id: request_id_of(meta),
            failures: 0,
            ending,
        };
        run.queue.set(key.clone(), tracked.ending.due(now), tracked);
        Some(key)
    }

    /// Starts a delete for every policy that is due, as far as there is room.
    fn start_deletes(&self, run: &mut Run) {
        let room = GUARD_CONCURRENCY.saturating_sub(run.deleting.len());
        for (key, tracked) in run.queue.pop_due(self.clock.now(), room) {
            let cluster = self.cluster.clone();
            run.deleting.spawn(async move {
                let outcome = match key.0.parse::<Namespace>() {
                    Ok(namespace) => {
                        let at = PolicyRef {
                            namespace,
                            name: key.1.clone(),
                        };
                        cluster
                            .delete_at_version(&at, &tracked.resource_version)
                            .await
                    }
                    Err(e) => Err(EnforceError::Refused(e.to_string())),
                };
                (key, tracked, outcome)
            });
        }
    }

    fn on_deleted(
        &self,
        run: &mut Run,
        key: Key,
        mut tracked: Tracked,
        outcome: Result<Deleted, EnforceError>,
    ) {
        let now = self.clock.now();
        self.metrics.guard_delete(match &outcome {
            Ok(Deleted::Now) => "deleted",
            Ok(Deleted::Already | Deleted::NotChanged) => "already_handled",
            Err(_) => "failed",
        });
        match outcome {
            Ok(Deleted::Now) => self.deleted(&key, tracked, now),
            Ok(handled) => {
                // Gone, or changed since: another replica or path was first, and a
                // new version brings its own deadline through the watch.
                debug!(namespace = %key.0, policy = %key.1, ?handled, "expiry guard: already handled");
            }
            Err(error) => {
                self.metrics.kube_error(match error {
                    EnforceError::Unavailable(_) => "unavailable",
                    EnforceError::Refused(_) => "refused",
                });
                warn!(namespace = %key.0, policy = %key.1, request_id = ?tracked.request_id, %error, "expiry guard could not delete a due policy; retrying");
                // A newer version seen meanwhile has its own deadline; keep that one.
                if run.queue.get(&key).is_none() {
                    let wait = FIRST_RETRY
                        .saturating_mul(2u32.saturating_pow(tracked.failures))
                        .min(MAX_RETRY);
                    tracked.failures = tracked.failures.saturating_add(1);
                    let retry_at = now + TimeDelta::from_std(wait).unwrap_or(TimeDelta::MAX);
                    run.queue.set(key, retry_at, tracked);
                }
            }
        }
    }

    fn deleted(&self, key: &Key, tracked: Tracked, now: DateTime<Utc>) {
        let (namespace, name) = key;
        match &tracked.ending {
            Ending::Expired { expires_at } => {
                self.metrics
                    .revoked_after_expiry(RevocationPath::Guard, *expires_at, now);
                info!(request_id = ?tracked.request_id, %namespace, policy = %name, "expiry guard deleted a policy at its expiry");
            }
            Ending::Invalid(why) => {
                warn!(request_id = ?tracked.request_id, %namespace, policy = %name, %why, "expiry guard deleted a policy whose expiry cannot be trusted");
                let Ok(ns) = namespace.parse::<Namespace>() else {
                    return;
                };
                let removal = Removal {
                    policy: PolicyRef {
                        namespace: ns,
                        name: name.clone(),
                    },
                    request_id: tracked.request_id,
                    ending: tracked.ending,
                    at: now,
                };
                if let Err(e) = self.removals.try_send(removal) {
                    warn!(error = %e, %namespace, policy = %name, "expiry guard cannot hand a removal to the audit; it is in this log only");
                }
            }
        }
    }
}

/// Waits on the clock until `at` (forever for `None`, which the caller guards).
async fn sleep_until(clock: &dyn Clock, at: Option<DateTime<Utc>>) {
    match at {
        Some(at) => clock.sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn key_of(meta: &PartialObjectMeta<NetworkPolicy>) -> Option<Key> {
    Some((
        meta.metadata.namespace.clone()?,
        meta.metadata.name.clone()?,
    ))
}

fn request_id_of(meta: &PartialObjectMeta<NetworkPolicy>) -> Option<RequestId> {
    let labels = meta.metadata.labels.as_ref()?;
    labels.get(netpol::REQUEST_ID_LABEL)?.parse().ok()
}
