//! A cluster in memory: the [`Enforcer`] and [`Previewer`] ports over a map of
//! NetworkPolicies. Applied policies are kept exactly as jitbot rendered them, so the
//! playground's dry run can show the YAML a real cluster would have received; nothing
//! leaves the process.
//!
//! It also remembers what it was asked (how many applies, which policies revoke was
//! told to delete) and can be told to misbehave the way an API server does: fail the
//! next applies or revokes, or hold each revoke at a barrier until enough are in
//! flight. The use-case tests run on it for that; nothing in jitbot reads any of it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use tokio::sync::Barrier;

use crate::core::netpol;
use crate::core::ports::{EnforceError, Enforcer, ListCursor, PolicyPage, PolicyRef, Previewer};
use crate::core::request::AccessRequest;

/// What the approval card says under "Does it matter?": a dry run has no pods and no
/// default-deny baselines to judge a grant against, and says so instead of guessing.
pub const DRY_RUN_PREVIEW: &str = "dry-run cluster: no pods or default-deny baselines to check against (run the playground with --kube to ask a real cluster)";

/// NetworkPolicies by `(namespace, name)`, and what was done to them.
#[derive(Default)]
pub struct MemoryCluster {
    state: Mutex<Cluster>,
}

#[derive(Default)]
struct Cluster {
    live: BTreeMap<(String, String), NetworkPolicy>,
    /// Calls to `apply`, failed ones included: retries show up here.
    applies: usize,
    /// Every policy `revoke` was asked to delete, present or not, in order.
    revoked: Vec<PolicyRef>,
    /// The next applies fail, one with each error, before touching anything.
    failing_applies: VecDeque<EnforceError>,
    /// The next revokes fail, one with each error, before touching anything.
    failing_revokes: VecDeque<EnforceError>,
    /// Where every revoke waits before it starts, when set.
    revoke_barrier: Option<Arc<Barrier>>,
    /// Managed policies per page of `list_managed_page`; `None`: all in one.
    page_size: Option<usize>,
}

impl Cluster {
    fn managed(&self) -> Vec<NetworkPolicy> {
        self.live
            .values()
            .filter(|p| netpol::is_managed(p))
            .cloned()
            .collect()
    }
}

impl MemoryCluster {
    pub fn new() -> Self {
        MemoryCluster::default()
    }

    fn state(&self) -> MutexGuard<'_, Cluster> {
        // Plain data: a panic elsewhere leaves it consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lists managed policies `n` to a page (at least one), as a real API server pages
    /// a long listing.
    pub fn list_in_pages_of(&self, n: usize) {
        self.state().page_size = Some(n.max(1));
    }

    /// Every policy in the cluster, managed or not, ordered by namespace and name.
    pub fn policies(&self) -> Vec<NetworkPolicy> {
        self.state().live.values().cloned().collect()
    }

    /// Every policy in the cluster as `namespace/name`, in the same order.
    pub fn live_names(&self) -> Vec<String> {
        self.state()
            .live
            .keys()
            .map(|(namespace, name)| format!("{namespace}/{name}"))
            .collect()
    }

    /// Puts a policy in the cluster as someone other than jitbot would: not counted
    /// as an apply and never failed.
    pub fn insert(&self, policy: NetworkPolicy) -> Result<(), EnforceError> {
        let key = placement(&policy)?;
        self.state().live.insert(key, policy);
        Ok(())
    }

    /// Deletes every policy, as someone working behind jitbot's back would.
    pub fn clear(&self) {
        self.state().live.clear();
    }

    /// How many times `apply` was called, failed calls included.
    pub fn applies(&self) -> usize {
        self.state().applies
    }

    /// Every policy `revoke` was asked to delete, present or not, in order. Failed
    /// revokes asked nothing.
    pub fn revoked(&self) -> Vec<PolicyRef> {
        self.state().revoked.clone()
    }

    /// The next applies fail, one with each of `errors` in turn, in place of any
    /// failures still queued.
    pub fn fail_next_applies(&self, errors: impl IntoIterator<Item = EnforceError>) {
        self.state().failing_applies = errors.into_iter().collect();
    }

    /// The next revokes fail, one with each of `errors` in turn, in place of any
    /// failures still queued.
    pub fn fail_next_revokes(&self, errors: impl IntoIterator<Item = EnforceError>) {
        self.state().failing_revokes = errors.into_iter().collect();
    }

    /// Every revoke from now on waits at `barrier` before it starts: with a barrier
    /// of N, revokes that run one after another never get past it.
    pub fn hold_revokes_at(&self, barrier: Arc<Barrier>) {
        self.state().revoke_barrier = Some(barrier);
    }
}

/// Where a policy goes; a policy without both is a bug upstream.
fn placement(policy: &NetworkPolicy) -> Result<(String, String), EnforceError> {
    match (&policy.metadata.namespace, &policy.metadata.name) {
        (Some(namespace), Some(name)) => Ok((namespace.clone(), name.clone())),
        _ => Err(EnforceError::Refused(
            "a policy without a namespace or name cannot be applied".to_owned(),
        )),
    }
}

#[async_trait]
impl Enforcer for MemoryCluster {
    /// Like a server-side apply by one field manager: the new rendering replaces the old.
    async fn apply(&self, policies: &[NetworkPolicy]) -> Result<(), EnforceError> {
        let mut state = self.state();
        state.applies += 1;
        if let Some(error) = state.failing_applies.pop_front() {
            return Err(error);
        }
        let placed = policies
            .iter()
            .map(|p| placement(p).map(|key| (key, p.clone())))
            .collect::<Result<Vec<_>, EnforceError>>()?;
        state.live.extend(placed);
        Ok(())
    }

    /// Already gone counts as deleted, as in the real enforcer.
    async fn revoke(&self, policies: &[PolicyRef]) -> Result<usize, EnforceError> {
        // Cloned out, so the lock is not held while waiting.
        let barrier = self.state().revoke_barrier.clone();
        if let Some(barrier) = barrier {
            barrier.wait().await;
        }
        let mut state = self.state();
        if let Some(error) = state.failing_revokes.pop_front() {
            return Err(error);
        }
        state.revoked.extend_from_slice(policies);
        let deleted = policies
            .iter()
            .filter(|p| {
                state
                    .live
                    .remove(&(p.namespace.to_string(), p.name.clone()))
                    .is_some()
            })
            .count();
        Ok(deleted)
    }

    async fn list_managed(&self) -> Result<Vec<NetworkPolicy>, EnforceError> {
        Ok(self.state().managed())
    }

    /// The continue token is the last `namespace/name` of the page before.
    async fn list_managed_page(&self, from: ListCursor) -> Result<PolicyPage, EnforceError> {
        let state = self.state();
        let Some(size) = state.page_size else {
            return Ok(PolicyPage {
                policies: state.managed(),
                next: None,
            });
        };
        let after = from
            .token
            .as_deref()
            .and_then(|t| t.split_once('/'))
            .map(|(ns, name)| (ns.to_owned(), name.to_owned()));
        let mut rest = state
            .live
            .iter()
            .filter(|(key, _)| after.as_ref().is_none_or(|a| *key > a))
            .filter(|(_, p)| netpol::is_managed(p));
        let page: Vec<(&(String, String), &NetworkPolicy)> = rest.by_ref().take(size).collect();
        let next = match (page.last(), rest.next()) {
            (Some(((ns, name), _)), Some(_)) => Some(ListCursor {
                place: 0,
                token: Some(format!("{ns}/{name}")),
            }),
            _ => None,
        };
        Ok(PolicyPage {
            policies: page.into_iter().map(|(_, p)| p.clone()).collect(),
            next,
        })
    }
}

#[async_trait]
impl Previewer for MemoryCluster {
    async fn preview(&self, _req: &AccessRequest) -> String {
        DRY_RUN_PREVIEW.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn policy(name: &str, managed_by: &str) -> NetworkPolicy {
        NetworkPolicy {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some("payments".to_owned()),
                labels: Some(BTreeMap::from([(
                    netpol::MANAGED_BY_KEY.to_owned(),
                    managed_by.to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            ..NetworkPolicy::default()
        }
    }

    fn reference(name: &str) -> PolicyRef {
        PolicyRef {
            namespace: "payments".parse().expect("a namespace"),
            name: name.to_owned(),
        }
    }

    #[tokio::test]
    async fn only_jitbots_policies_are_listed_as_managed() {
        let cluster = MemoryCluster::new();
        cluster.apply(&[policy("jit-a", "jitbot")]).await.unwrap();
        cluster.insert(policy("other", "helm")).unwrap();
        assert_eq!(cluster.live_names(), ["payments/jit-a", "payments/other"]);
        let managed = cluster.list_managed().await.unwrap();
        assert_eq!(managed.len(), 1);
        assert_eq!(managed[0].metadata.name.as_deref(), Some("jit-a"));
        assert_eq!(cluster.applies(), 1, "an insert is not an apply");
    }

    #[tokio::test]
    async fn a_paged_listing_gives_every_managed_policy_once_in_order() {
        let cluster = MemoryCluster::new();
        cluster.list_in_pages_of(2);
        for name in ["jit-a", "jit-b", "jit-c"] {
            cluster.apply(&[policy(name, "jitbot")]).await.unwrap();
        }
        cluster.insert(policy("jit-bb", "helm")).unwrap();
        let mut pages = Vec::new();
        let mut from = Some(ListCursor::default());
        while let Some(cursor) = from {
            let page = cluster.list_managed_page(cursor).await.unwrap();
            let names: Vec<String> = page
                .policies
                .iter()
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            pages.push(names);
            from = page.next;
        }
        assert_eq!(pages, [vec!["jit-a", "jit-b"], vec!["jit-c"]]);
    }

    #[tokio::test]
    async fn a_policy_without_a_place_is_refused() {
        let cluster = MemoryCluster::new();
        let mut nowhere = policy("jit-a", "jitbot");
        nowhere.metadata.namespace = None;
        let applied = cluster.apply(&[policy("jit-b", "jitbot"), nowhere]).await;
        assert!(matches!(applied, Err(EnforceError::Refused(_))));
        assert!(cluster.live_names().is_empty(), "nothing of it was applied");
    }

    #[tokio::test]
    async fn revoke_counts_what_it_deleted_and_records_what_it_was_asked() {
        let cluster = MemoryCluster::new();
        cluster.apply(&[policy("jit-a", "jitbot")]).await.unwrap();
        let asked = [reference("jit-a"), reference("jit-gone")];
        assert_eq!(cluster.revoke(&asked).await.unwrap(), 1);
        assert!(cluster.live_names().is_empty());
        let revoked: Vec<String> = cluster.revoked().iter().map(PolicyRef::to_string).collect();
        assert_eq!(revoked, ["payments/jit-a", "payments/jit-gone"]);
    }

    #[tokio::test]
    async fn queued_failures_come_one_per_call_then_calls_succeed() {
        let cluster = MemoryCluster::new();
        let unavailable = EnforceError::Unavailable("503".to_owned());
        cluster.fail_next_applies(vec![unavailable.clone(); 2]);
        cluster.fail_next_revokes([unavailable]);
        let grant = [policy("jit-a", "jitbot")];
        assert!(cluster.apply(&grant).await.is_err());
        assert!(cluster.apply(&grant).await.is_err());
        assert!(cluster.live_names().is_empty());
        cluster.apply(&grant).await.unwrap();
        assert_eq!(cluster.applies(), 3);
        assert!(cluster.revoke(&[reference("jit-a")]).await.is_err());
        assert!(
            cluster.revoked().is_empty(),
            "a failed revoke asked nothing"
        );
        assert_eq!(cluster.revoke(&[reference("jit-a")]).await.unwrap(), 1);
    }
}
