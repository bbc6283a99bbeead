//! Does a grant matter? NetworkPolicies only add allowances: a grant changes something
//! only where an existing policy already isolates the pods it opens (a "default-deny"
//! baseline). This module judges that from objects the adapter fetched; it does no I/O.
//!
//! The target side is isolated for ingress when any policy with policy type `Ingress`
//! selects the target pods; for a pod source, the source side is isolated for egress
//! when any `Egress` policy in the source namespace selects the source pods. jitbot's
//! own policies never count: they are what the grant adds, not the baseline.
//!
//! Which pods a policy selects is judged on the catalog selector's labels, as if a pod
//! carried exactly those labels. Pods with more labels may be selected by policies that
//! this judgement misses (a policy asking for `tier=db` selects a pod labelled
//! `app=postgres, tier=db` although the selector names only `app=postgres`). The pod
//! count, by contrast, is what the selector matches in the cluster now.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use super::ids::Namespace;
use super::netpol;

/// The direction of traffic a policy type governs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    /// The policy type as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "Ingress",
            Direction::Egress => "Egress",
        }
    }
}

/// One side of a grant as the cluster stands now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Isolation {
    pub namespace: Namespace,
    pub direction: Direction,
    /// Names of the existing policies (not jitbot's) of this direction that select the
    /// pods, sorted. Empty means the pods are not isolated: traffic flows already.
    pub policies: Vec<String>,
    /// Pods the selector matches now: the grant's blast radius on this side.
    pub pods: usize,
}

impl Isolation {
    /// Judges whether `policies` (all in `namespace`) isolate, in `direction`, pods
    /// labelled exactly `labels`.
    pub fn judge(
        namespace: Namespace,
        direction: Direction,
        labels: &BTreeMap<String, String>,
        policies: &[NetworkPolicy],
        pods: usize,
    ) -> Isolation {
        let mut names: Vec<String> = policies
            .iter()
            .filter(|p| !netpol::is_managed(p))
            .filter(|p| {
                p.spec.as_ref().is_some_and(|spec| {
                    governs(spec, direction) && selects_pods(spec.pod_selector.as_ref(), labels)
                })
            })
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect();
        names.sort();
        Isolation {
            namespace,
            direction,
            policies: names,
            pods,
        }
    }

    /// Whether some policy already isolates these pods, so a grant changes something.
    pub fn isolated(&self) -> bool {
        !self.policies.is_empty()
    }
}

/// What an approver is told about a grant before deciding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Preview {
    /// The cluster answered. `source` is judged only for pod sources (an address source
    /// needs no egress in the cluster).
    Known {
        target: Isolation,
        source: Option<Isolation>,
    },
    /// The cluster could not be reached: nobody knows.
    Unreachable,
    /// The cluster refused to show the policies or pods (RBAC): nobody knows.
    Forbidden,
}

impl Preview {
    /// Whether the grant would change what traffic flows. `None` when unknown.
    pub fn matters(&self) -> Option<bool> {
        match self {
            Preview::Known { target, source } => {
                Some(target.isolated() || source.as_ref().is_some_and(Isolation::isolated))
            }
            Preview::Unreachable | Preview::Forbidden => None,
        }
    }
}

impl fmt::Display for Preview {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (target, source) = match self {
            Preview::Unreachable => return f.write_str("cluster unreachable: unknown"),
            Preview::Forbidden => return f.write_str("not allowed to read the cluster: unknown"),
            Preview::Known { target, source } => (target, source),
        };
        if self.matters() == Some(false) {
            return f.write_str("no default-deny: this grant changes nothing");
        }
        if target.isolated() {
            write!(f, "default-deny present, {}", pods(target.pods))?;
        } else {
            write!(f, "no default-deny on the target ({})", pods(target.pods))?;
        }
        if let Some(source) = source {
            if source.isolated() {
                write!(
                    f,
                    "; source egress default-deny present, {}",
                    pods(source.pods)
                )?;
            } else {
                write!(f, "; source egress open, {}", pods(source.pods))?;
            }
        }
        Ok(())
    }
}

fn pods(n: usize) -> String {
    if n == 1 {
        "1 pod".to_owned()
    } else {
        format!("{n} pods")
    }
}

/// Whether a policy governs `direction`, with the API server's defaulting: no policy
/// types means `Ingress`, plus `Egress` when the policy has egress rules.
pub fn governs(spec: &NetworkPolicySpec, direction: Direction) -> bool {
    match spec.policy_types.as_deref() {
        Some(types) if !types.is_empty() => types.iter().any(|t| t == direction.as_str()),
        _ => match direction {
            Direction::Ingress => true,
            Direction::Egress => spec.egress.as_ref().is_some_and(|rules| !rules.is_empty()),
        },
    }
}

/// A policy's pod selector: absent or empty selects every pod in the namespace.
fn selects_pods(selector: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    selector.is_none_or(|s| selects(s, labels))
}

/// Whether a label selector matches a set of labels: every `matchLabels` entry and every
/// `matchExpressions` requirement must hold.
pub fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    by_labels
        && selector
            .match_expressions
            .iter()
            .flatten()
            .all(|r| requirement_holds(r, labels))
}

fn requirement_holds(r: &LabelSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let value = labels.get(&r.key);
    let listed = |v: &String| r.values.iter().flatten().any(|x| x == v);
    match r.operator.as_str() {
        "In" => value.is_some_and(listed),
        "NotIn" => !value.is_some_and(listed),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        // The API server rejects other operators, so this is a newer API than ours.
        // Assume the policy selects the pods: wrongly saying "changes nothing" could
        // make an approver wave through a grant that does open something.
        _ => true,
    }
}

#[cfg(test)]
#[path = "preview_tests.rs"]
mod tests;
