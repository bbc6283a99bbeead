//! The Kubernetes permissions a catalog needs, as namespaced Roles: what `jitbot rbac`
//! prints and `manifests/base/rbac.yaml` ships. One Role and RoleBinding named
//! `jitbot` in every namespace the catalog names ([`Catalog::namespaces`]: each
//! target's, where the grant's ingress policy goes, and each pod source's, where its
//! `jit-<id>-egress` companion goes), granting exactly what jitbot calls there:
//!
//! - NetworkPolicies: `create` and `patch` (server-side apply creates a missing policy
//!   with a patch, which the API server authorises as both), `delete` (revoke, the
//!   expiry guard, the reconciler), `list` and `watch` (the reconciler's pass, the
//!   expiry guard's watch, readiness, and the previews' search for a default-deny).
//!   No `get` and no `update`: jitbot never reads one policy by name or replaces one.
//! - Pods: `list` (the preview counts the pods a grant reaches, on both sides).
//!
//! Namespaces themselves are never read: jitbot needs no cluster-scoped permission
//! with `kubernetes.scope = "catalog"`. Nothing here does I/O; the output is sorted by
//! namespace and stable, so a shipped copy can be compared with a fresh one.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::core::catalog::{Catalog, SourceSpec};
use crate::core::ids::Namespace;
use crate::core::yaml;

/// The name of every Role and RoleBinding, and the `app.kubernetes.io/name` label.
pub const ROLE_NAME: &str = "jitbot";

/// Verbs on NetworkPolicies in a catalog namespace.
pub const POLICY_VERBS: [&str; 5] = ["create", "delete", "list", "patch", "watch"];

/// Verbs on pods in a catalog namespace.
pub const POD_VERBS: [&str; 1] = ["list"];

/// Who the Roles are bound to: the ServiceAccount jitbot runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub namespace: Namespace,
    pub name: String,
}

/// Why jitbot touches one namespace: the catalog entries that name it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Uses {
    /// Targets whose pods are there (ingress policies, previews of the target side).
    pub targets: Vec<String>,
    /// Requesters whose bastion pods are there (egress companions, previews of the
    /// source side).
    pub pod_sources: Vec<String>,
}

impl Uses {
    /// `targets payments-db, ledger-debug; pod source of carol`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.targets.is_empty() {
            parts.push(format!("targets {}", self.targets.join(", ")));
        }
        if !self.pod_sources.is_empty() {
            parts.push(format!("pod source of {}", self.pod_sources.join(", ")));
        }
        parts.join("; ")
    }
}

/// Every namespace the catalog names, sorted, with why.
pub fn namespaces(catalog: &Catalog) -> BTreeMap<Namespace, Uses> {
    let mut out: BTreeMap<Namespace, Uses> = BTreeMap::new();
    for t in catalog.targets() {
        out.entry(t.namespace.clone())
            .or_default()
            .targets
            .push(t.name.to_string());
    }
    for r in catalog.requesters() {
        if let SourceSpec::Pod(pod) = &r.source {
            out.entry(pod.namespace.clone())
                .or_default()
                .pod_sources
                .push(r.name.clone());
        }
    }
    for uses in out.values_mut() {
        uses.targets.sort();
        uses.pod_sources.sort();
    }
    out
}

fn meta(name: &str, namespace: &Namespace) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(namespace.to_string()),
        labels: Some(BTreeMap::from([(
            "app.kubernetes.io/name".to_owned(),
            ROLE_NAME.to_owned(),
        )])),
        ..ObjectMeta::default()
    }
}

fn rule(group: &str, resource: &str, verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.to_owned()]),
        resources: Some(vec![resource.to_owned()]),
        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
        ..PolicyRule::default()
    }
}

/// The Role jitbot needs in `namespace`.
pub fn role(namespace: &Namespace) -> Role {
    Role {
        metadata: meta(ROLE_NAME, namespace),
        rules: Some(vec![
            rule("networking.k8s.io", "networkpolicies", &POLICY_VERBS),
            rule("", "pods", &POD_VERBS),
        ]),
    }
}

/// Binds [`role`] in `namespace` to `account`.
pub fn role_binding(namespace: &Namespace, account: &Account) -> RoleBinding {
    RoleBinding {
        metadata: meta(ROLE_NAME, namespace),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "Role".to_owned(),
            name: ROLE_NAME.to_owned(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name: account.name.clone(),
            namespace: Some(account.namespace.to_string()),
            ..Subject::default()
        }]),
    }
}

/// The ServiceAccount the Roles are bound to.
pub fn service_account(account: &Account) -> ServiceAccount {
    ServiceAccount {
        metadata: ObjectMeta {
            name: Some(account.name.clone()),
            namespace: Some(account.namespace.to_string()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/name".to_owned(),
                ROLE_NAME.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    }
}

/// The whole YAML stream: `header` (each line becomes a comment), the ServiceAccount,
/// then per catalog namespace, in name order, a comment saying why and its Role and
/// RoleBinding.
pub fn to_yaml(
    catalog: &Catalog,
    account: &Account,
    header: &[String],
) -> Result<String, serde_json::Error> {
    let mut out = String::new();
    for line in header {
        out.push_str(format!("# {line}").trim_end());
        out.push('\n');
    }
    out.push_str("---\n");
    out.push_str(&yaml::to_string(&service_account(account))?);
    for (namespace, uses) in namespaces(catalog) {
        out.push_str(&format!("---\n# {namespace}: {}\n", uses.describe()));
        out.push_str(&yaml::to_string(&role(&namespace))?);
        out.push_str("---\n");
        out.push_str(&yaml::to_string(&role_binding(&namespace, account))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::catalog::fixtures::{address_config, requester_config, target_config};
    use crate::core::catalog::{
        AccessConfig, PodSourceConfig, RequesterConfig, SourceConfig, TargetConfig,
    };

    fn catalog() -> Catalog {
        let target = |name: &str, namespace: &str| TargetConfig {
            namespace: namespace.to_owned(),
            ..target_config(name)
        };
        let carol = RequesterConfig {
            name: "carol".to_owned(),
            ..requester_config(
                "U0CAROL001",
                SourceConfig {
                    pod: Some(PodSourceConfig {
                        namespace: "bastion".to_owned(),
                        labels: BTreeMap::from([("app".to_owned(), "bastion".to_owned())]),
                    }),
                    ..SourceConfig::default()
                },
            )
        };
        let alice = RequesterConfig {
            name: "alice".to_owned(),
            ..requester_config("U0ALICE001", address_config(&["10.8.0.14"]))
        };
        Catalog::build(
            &AccessConfig::default(),
            &[
                target("payments-db", "payments"),
                target("kafka", "streaming"),
                target("ledger", "payments"),
            ],
            &[alice, carol],
        )
        .expect("a valid catalog")
    }

    fn account() -> Account {
        Account {
            namespace: "jitbot".parse().unwrap(),
            name: "jitbot".to_owned(),
        }
    }

    #[test]
    fn every_namespace_the_catalog_names_gets_one_role_saying_why() {
        let found = namespaces(&catalog());
        let names: Vec<&str> = found.keys().map(Namespace::as_str).collect();
        assert_eq!(names, ["bastion", "payments", "streaming"]);
        assert_eq!(
            found[&"payments".parse::<Namespace>().unwrap()].describe(),
            "targets ledger, payments-db"
        );
        assert_eq!(
            found[&"bastion".parse::<Namespace>().unwrap()].describe(),
            "pod source of carol"
        );
        let yaml = to_yaml(&catalog(), &account(), &["made by a test".to_owned()]).unwrap();
        assert_eq!(yaml.matches("\nkind: Role\n").count(), 3, "{yaml}");
        assert_eq!(yaml.matches("\nkind: RoleBinding\n").count(), 3, "{yaml}");
        assert!(yaml.starts_with("# made by a test\n---\n"), "{yaml}");
        let order: Vec<usize> = ["# bastion:", "# payments:", "# streaming:"]
            .iter()
            .map(|c| yaml.find(c).unwrap())
            .collect();
        assert!(order.is_sorted(), "{yaml}");
    }

    #[test]
    fn a_role_grants_policy_writes_and_pod_counts_and_nothing_cluster_wide() {
        let role = role(&"payments".parse().unwrap());
        let rules = role.rules.unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].resources, Some(vec!["networkpolicies".to_owned()]));
        assert_eq!(rules[0].verbs, POLICY_VERBS);
        assert!(!rules[0].verbs.iter().any(|v| v == "update" || v == "*"));
        assert_eq!(rules[1].resources, Some(vec!["pods".to_owned()]));
        assert_eq!(rules[1].verbs, ["list"]);
        let binding = role_binding(&"payments".parse().unwrap(), &account());
        let subject = &binding.subjects.unwrap()[0];
        assert_eq!(
            (subject.kind.as_str(), subject.name.as_str()),
            ("ServiceAccount", "jitbot")
        );
        assert_eq!(subject.namespace.as_deref(), Some("jitbot"));
        assert_eq!(binding.role_ref.kind, "Role");
    }

    #[test]
    fn the_same_catalog_gives_the_same_bytes() {
        let a = to_yaml(&catalog(), &account(), &[]).unwrap();
        let b = to_yaml(&catalog(), &account(), &[]).unwrap();
        assert_eq!(a, b);
    }
}
