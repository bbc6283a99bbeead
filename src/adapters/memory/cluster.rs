//! A cluster in memory: the [`Enforcer`] and [`Previewer`] ports over a map of
//! NetworkPolicies. Applied policies are kept exactly as jitbot rendered them, so the
//! playground's dry run can show the YAML a real cluster would have received; nothing
//! leaves the process.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use k8s_openapi::api::networking::v1::NetworkPolicy;

use crate::core::netpol;
use crate::core::ports::{EnforceError, Enforcer, PolicyRef, Previewer};
use crate::core::request::AccessRequest;

/// What the approval card says under "Does it matter?": a dry run has no pods and no
/// default-deny baselines to judge a grant against, and says so instead of guessing.
pub const DRY_RUN_PREVIEW: &str = "dry-run cluster: no pods or default-deny baselines to check against (run the playground with --kube to ask a real cluster)";

/// NetworkPolicies by `(namespace, name)`.
#[derive(Default)]
pub struct MemoryCluster {
    live: Mutex<BTreeMap<(String, String), NetworkPolicy>>,
}

impl MemoryCluster {
    pub fn new() -> Self {
        MemoryCluster::default()
    }

    fn live(&self) -> MutexGuard<'_, BTreeMap<(String, String), NetworkPolicy>> {
        // Plain data: a panic elsewhere leaves it consistent.
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every policy in the cluster, managed or not.
    pub fn policies(&self) -> Vec<NetworkPolicy> {
        self.live().values().cloned().collect()
    }
}

#[async_trait]
impl Enforcer for MemoryCluster {
    /// Like a server-side apply by one field manager: the new rendering replaces the old.
    async fn apply(&self, policies: &[NetworkPolicy]) -> Result<(), EnforceError> {
        let mut placed = Vec::with_capacity(policies.len());
        for p in policies {
            match (&p.metadata.namespace, &p.metadata.name) {
                (Some(ns), Some(name)) => placed.push(((ns.clone(), name.clone()), p.clone())),
                _ => {
                    return Err(EnforceError::Refused(
                        "a policy without a namespace or name cannot be applied".to_owned(),
                    ));
                }
            }
        }
        self.live().extend(placed);
        Ok(())
    }

    /// Already gone counts as deleted, as in the real enforcer.
    async fn revoke(&self, policies: &[PolicyRef]) -> Result<usize, EnforceError> {
        let mut live = self.live();
        let deleted = policies
            .iter()
            .filter(|p| {
                live.remove(&(p.namespace.to_string(), p.name.clone()))
                    .is_some()
            })
            .count();
        Ok(deleted)
    }

    async fn list_managed(&self) -> Result<Vec<NetworkPolicy>, EnforceError> {
        Ok(self
            .live()
            .values()
            .filter(|p| netpol::is_managed(p))
            .cloned()
            .collect())
    }
}

#[async_trait]
impl Previewer for MemoryCluster {
    async fn preview(&self, _req: &AccessRequest) -> String {
        DRY_RUN_PREVIEW.to_owned()
    }
}
