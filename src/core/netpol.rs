//! A grant rendered as NetworkPolicy objects: one ingress policy in the target
//! namespace that lets exactly the requester's source reach the target pods on the
//! target ports, plus, for pod sources, an egress companion in the source namespace so
//! that a default-deny egress baseline there does not silently break the grant.
//!
//! Rendering is deterministic (same request and expiry, byte-identical YAML), and the
//! names, labels and annotations are jitbot's external contract: the reconciler finds
//! policies by them, even when the store has lost everything.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::{Deserialize, Serialize};

use super::catalog::{PodSource, Source};
use super::ids::{Namespace, RequestId, SlackUserId};
use super::ports::PolicyRef;
use super::request::AccessRequest;

pub const MANAGED_BY_KEY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "jitbot";
pub const REQUEST_ID_LABEL: &str = "jitbot.dev/request-id";
pub const TARGET_LABEL: &str = "jitbot.dev/target";
pub const EXPIRES_AT_ANNOTATION: &str = "jitbot.dev/expires-at";
pub const REQUESTED_BY_ANNOTATION: &str = "jitbot.dev/requested-by";
pub const APPROVED_BY_ANNOTATION: &str = "jitbot.dev/approved-by";
pub const REASON_ANNOTATION: &str = "jitbot.dev/reason";
/// Every namespace carries this label from Kubernetes 1.21 on; pod sources select
/// their namespace by it.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";
/// The label selector that finds every policy jitbot manages.
pub const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=jitbot";

/// The name of a grant's ingress policy.
pub fn policy_name(id: &RequestId) -> String {
    format!("jit-{id}")
}

/// The name of a pod-source grant's egress companion.
pub fn egress_policy_name(id: &RequestId) -> String {
    format!("jit-{id}-egress")
}

/// Renders the policies for a request that expires at `expires_at`. Before approval
/// the `approved-by` annotation says `pending`.
pub fn render(req: &AccessRequest, expires_at: DateTime<Utc>) -> Vec<NetworkPolicy> {
    let meta = |name: String, namespace: &Namespace| ObjectMeta {
        name: Some(name),
        namespace: Some(namespace.to_string()),
        labels: Some(labels(req)),
        annotations: Some(annotations(req, expires_at)),
        ..ObjectMeta::default()
    };
    let ports: Vec<NetworkPolicyPort> = req
        .scope
        .ports
        .iter()
        .map(|p| NetworkPolicyPort {
            protocol: Some(p.protocol.as_str().to_owned()),
            port: Some(IntOrString::Int(i32::from(p.port))),
            // Only emitted for ranges: older API servers drop the field silently.
            end_port: p.end_port.map(i32::from),
        })
        .collect();
    let target_pods = selector(&req.scope.pod_selector);
    let from = match &req.source {
        Source::Addresses { addresses } => addresses
            .iter()
            .map(|a| NetworkPolicyPeer {
                ip_block: Some(IPBlock {
                    cidr: a.to_string(),
                    except: None,
                }),
                ..NetworkPolicyPeer::default()
            })
            .collect(),
        Source::Pod(pod) => vec![pod_peer(&pod.namespace, &pod.labels)],
    };
    let mut out = vec![NetworkPolicy {
        metadata: meta(policy_name(&req.id), &req.scope.namespace),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(target_pods),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(from),
                ports: Some(ports.clone()),
            }]),
            egress: None,
        }),
    }];
    if let Source::Pod(PodSource { namespace, labels }) = &req.source {
        out.push(NetworkPolicy {
            metadata: meta(egress_policy_name(&req.id), namespace),
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(selector(labels)),
                policy_types: Some(vec!["Egress".to_owned()]),
                egress: Some(vec![NetworkPolicyEgressRule {
                    to: Some(vec![pod_peer(
                        &req.scope.namespace,
                        &req.scope.pod_selector,
                    )]),
                    ports: Some(ports),
                }]),
                ingress: None,
            }),
        });
    }
    out
}

/// Where a request's policies live: the ingress policy, and the egress companion for
/// a pod source.
pub fn policy_refs(req: &AccessRequest) -> Vec<PolicyRef> {
    let mut out = vec![PolicyRef {
        namespace: req.scope.namespace.clone(),
        name: policy_name(&req.id),
    }];
    if let Source::Pod(pod) = &req.source {
        out.push(PolicyRef {
            namespace: pod.namespace.clone(),
            name: egress_policy_name(&req.id),
        });
    }
    out
}

/// Renders the policies as one YAML stream (`---` before each document).
pub fn to_yaml(policies: &[NetworkPolicy]) -> Result<String, serde_json::Error> {
    let mut out = String::new();
    for p in policies {
        out.push_str("---\n");
        out.push_str(&super::yaml::to_string(p)?);
    }
    Ok(out)
}

fn selector(labels: &BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels.clone()),
        match_expressions: None,
    }
}

fn pod_peer(namespace: &Namespace, labels: &BTreeMap<String, String>) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(selector(&BTreeMap::from([(
            NAMESPACE_NAME_LABEL.to_owned(),
            namespace.to_string(),
        )]))),
        pod_selector: Some(selector(labels)),
        ip_block: None,
    }
}

fn labels(req: &AccessRequest) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_KEY.to_owned(), MANAGED_BY_VALUE.to_owned()),
        (REQUEST_ID_LABEL.to_owned(), req.id.to_string()),
        (TARGET_LABEL.to_owned(), req.target.to_string()),
    ])
}

fn annotations(req: &AccessRequest, expires_at: DateTime<Utc>) -> BTreeMap<String, String> {
    let approved: Vec<String> = req
        .approved_by()
        .iter()
        .map(SlackUserId::to_string)
        .collect();
    BTreeMap::from([
        (
            EXPIRES_AT_ANNOTATION.to_owned(),
            expires_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        ),
        (
            REQUESTED_BY_ANNOTATION.to_owned(),
            req.requester.to_string(),
        ),
        (
            APPROVED_BY_ANNOTATION.to_owned(),
            if approved.is_empty() {
                "pending".to_owned()
            } else {
                approved.join(",")
            },
        ),
        (REASON_ANNOTATION.to_owned(), req.reason.as_str().to_owned()),
    ])
}

/// Where jitbot looks for the policies it manages (`kubernetes.scope`): the
/// reconciler lists them there and the expiry guard watches there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ListScope {
    /// Only the namespaces the catalog writes to (its targets' and pod sources'); the
    /// bot then needs to list NetworkPolicies in those namespaces only, which namespaced
    /// Roles can grant.
    #[default]
    Catalog,
    /// Every namespace: also finds policies left in namespaces the catalog no longer
    /// names, but needs cluster-wide list permission.
    Cluster,
}

/// Reads a policy's `jitbot.dev/expires-at`; `None` when absent or unreadable.
pub fn expires_at(policy: &NetworkPolicy) -> Option<DateTime<Utc>> {
    let raw = policy
        .metadata
        .annotations
        .as_ref()?
        .get(EXPIRES_AT_ANNOTATION)?;
    DateTime::parse_from_rfc3339(raw)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Whether a policy carries jitbot's managed-by label. Every enforcer checks what it
/// lists against this, so nothing else is ever reported (or removed) as jitbot's.
pub fn is_managed(policy: &NetworkPolicy) -> bool {
    policy
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY_KEY))
        .is_some_and(|v| v == MANAGED_BY_VALUE)
}

/// Reads a policy's `jitbot.dev/request-id`, if it is one of ours.
pub fn request_id(policy: &NetworkPolicy) -> Option<RequestId> {
    let labels = policy.metadata.labels.as_ref()?;
    if labels.get(MANAGED_BY_KEY).map(String::as_str) != Some(MANAGED_BY_VALUE) {
        return None;
    }
    labels.get(REQUEST_ID_LABEL)?.parse().ok()
}

#[cfg(test)]
#[path = "netpol_tests.rs"]
mod tests;
