//! The fetching half of "does this grant matter?": reads the NetworkPolicies and counts
//! the pods on each side of a grant, then leaves the judgement to
//! [`crate::core::preview`].
//!
//! A preview is advice on an approval card, so each read gets one attempt (bounded by
//! the request timeout) and no retries: a slow cluster must not hold the card back.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, ListParams};

use super::KubeEnforcer;
use super::errors::classify;
use super::retry::{Budget, retrying};
use crate::core::catalog::Source;
use crate::core::ids::Namespace;
use crate::core::ports::{EnforceError, Previewer};
use crate::core::preview::{Direction, Isolation, Preview};
use crate::core::request::AccessRequest;

#[async_trait::async_trait]
impl Previewer for KubeEnforcer {
    async fn preview(&self, req: &AccessRequest) -> String {
        self.preview_grant(&req.scope.namespace, &req.scope.pod_selector, &req.source)
            .await
            .to_string()
    }
}

impl KubeEnforcer {
    /// Whether a grant to the pods `pod_selector` selects in `namespace`, from `source`,
    /// would change anything, and how many pods it touches. Never fails: an unreachable
    /// or forbidding cluster gives a preview that says it does not know.
    pub async fn preview_grant(
        &self,
        namespace: &Namespace,
        pod_selector: &BTreeMap<String, String>,
        source: &Source,
    ) -> Preview {
        let target = self.isolation(namespace, Direction::Ingress, pod_selector);
        let judged = match source {
            Source::Addresses { .. } => target.await.map(|t| (t, None)),
            Source::Pod(pod) => {
                let source = self.isolation(&pod.namespace, Direction::Egress, &pod.labels);
                tokio::try_join!(target, source).map(|(t, s)| (t, Some(s)))
            }
        };
        match judged {
            Ok((target, source)) => Preview::Known { target, source },
            Err(EnforceError::Unavailable(error)) => {
                tracing::warn!(%error, "preview: cluster unreachable");
                Preview::Unreachable
            }
            Err(EnforceError::Refused(error)) => {
                tracing::warn!(%error, "preview: cluster refused to show policies or pods");
                Preview::Forbidden
            }
        }
    }

    async fn isolation(
        &self,
        namespace: &Namespace,
        direction: Direction,
        labels: &BTreeMap<String, String>,
    ) -> Result<Isolation, EnforceError> {
        let policies: Api<NetworkPolicy> = Api::namespaced(self.client.clone(), namespace.as_str());
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace.as_str());
        let (policies, pods) = (&policies, &pods);
        let all = &ListParams::default();
        let selected = &ListParams::default().labels(&selector_string(labels));
        let once = Budget::Attempts(1);
        let read_policies = retrying(&self.settings, once, "list policies", || async move {
            policies.list(all).await.map_err(classify)
        });
        // Metadata only: the count is all we need, and pod specs are large.
        let count_pods = retrying(&self.settings, once, "list pods", || async move {
            pods.list_metadata(selected).await.map_err(classify)
        });
        let (policies, pods) = tokio::try_join!(read_policies, count_pods)?;
        Ok(Isolation::judge(
            namespace.clone(),
            direction,
            labels,
            &policies.items,
            pods.items.len(),
        ))
    }
}

/// `app=postgres,role=replica`: the catalog has checked keys and values already.
fn selector_string(labels: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(",")
}
