use k8s_openapi::api::networking::v1::{NetworkPolicyEgressRule, NetworkPolicyIngressRule};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;
use crate::core::netpol::{MANAGED_BY_KEY, MANAGED_BY_VALUE};

fn ns() -> Namespace {
    "payments".parse().unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn postgres() -> BTreeMap<String, String> {
    labels(&[("app", "postgres"), ("role", "replica")])
}

fn mk_selector(match_labels: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels(match_labels)),
        match_expressions: None,
    }
}

fn mk_expr(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
    LabelSelectorRequirement {
        key: key.to_owned(),
        operator: operator.to_owned(),
        values: if values.is_empty() {
            None
        } else {
            Some(values.iter().map(|v| (*v).to_owned()).collect())
        },
    }
}

fn mk_policy(name: &str, selector: LabelSelector, types: Option<&[&str]>) -> NetworkPolicy {
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some("payments".to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector),
            policy_types: types.map(|t| t.iter().map(|s| (*s).to_owned()).collect()),
            ..NetworkPolicySpec::default()
        }),
    }
}

fn deny_all(name: &str, types: &[&str]) -> NetworkPolicy {
    mk_policy(name, LabelSelector::default(), Some(types))
}

fn judge(direction: Direction, policies: &[NetworkPolicy], pods: usize) -> Isolation {
    Isolation::judge(ns(), direction, &postgres(), policies, pods)
}

fn known(target: Isolation, source: Option<Isolation>) -> Preview {
    Preview::Known { target, source }
}

#[test]
fn a_namespace_without_policies_is_open_and_the_grant_changes_nothing() {
    let target = judge(Direction::Ingress, &[], 3);
    assert!(!target.isolated());
    let preview = known(target, None);
    assert_eq!(preview.matters(), Some(false));
    assert_eq!(
        preview.to_string(),
        "no default-deny: this grant changes nothing"
    );
}

#[test]
fn a_default_deny_baseline_isolates_the_target() {
    let target = judge(
        Direction::Ingress,
        &[deny_all("default-deny", &["Ingress"])],
        4,
    );
    assert_eq!(target.policies, vec!["default-deny".to_owned()]);
    let preview = known(target, None);
    assert_eq!(preview.matters(), Some(true));
    assert_eq!(preview.to_string(), "default-deny present, 4 pods");
}

#[test]
fn one_pod_is_counted_in_the_singular() {
    let target = judge(Direction::Ingress, &[deny_all("deny", &["Ingress"])], 1);
    assert_eq!(
        known(target, None).to_string(),
        "default-deny present, 1 pod"
    );
}

#[test]
fn a_policy_selecting_other_pods_does_not_isolate_the_target() {
    let web = mk_policy(
        "web-only",
        mk_selector(&[("app", "web")]),
        Some(&["Ingress"]),
    );
    assert!(!judge(Direction::Ingress, &[web], 2).isolated());
}

#[test]
fn match_labels_must_all_be_present_and_equal() {
    let subset = mk_policy("subset", mk_selector(&[("app", "postgres")]), None);
    let wider = mk_policy(
        "wider",
        mk_selector(&[("app", "postgres"), ("tier", "db")]),
        None,
    );
    let other_value = mk_policy("other", mk_selector(&[("role", "primary")]), None);
    assert!(judge(Direction::Ingress, &[subset], 0).isolated());
    assert!(!judge(Direction::Ingress, &[wider], 0).isolated());
    assert!(!judge(Direction::Ingress, &[other_value], 0).isolated());
}

#[test]
fn match_expressions_follow_the_label_selector_operators() {
    let cases = [
        (mk_expr("role", "In", &["replica", "primary"]), true),
        (mk_expr("role", "In", &["primary"]), false),
        (mk_expr("tier", "In", &["db"]), false),
        (mk_expr("role", "NotIn", &["primary"]), true),
        (mk_expr("role", "NotIn", &["replica"]), false),
        (mk_expr("tier", "NotIn", &["db"]), true),
        (mk_expr("app", "Exists", &[]), true),
        (mk_expr("tier", "Exists", &[]), false),
        (mk_expr("tier", "DoesNotExist", &[]), true),
        (mk_expr("app", "DoesNotExist", &[]), false),
        // An operator from a newer API: assume it selects, so the preview errs
        // towards "this grant matters".
        (mk_expr("app", "Gt", &["1"]), true),
    ];
    for (expr, expected) in cases {
        let selector = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![expr.clone()]),
        };
        assert_eq!(selects(&selector, &postgres()), expected, "{expr:?}");
    }
}

#[test]
fn match_labels_and_expressions_must_both_hold() {
    let selector = LabelSelector {
        match_labels: Some(labels(&[("app", "postgres")])),
        match_expressions: Some(vec![mk_expr("role", "In", &["primary"])]),
    };
    assert!(!selects(&selector, &postgres()));
}

#[test]
fn policy_types_absent_mean_ingress_plus_egress_when_egress_rules_exist() {
    let mut no_types = mk_policy("legacy", LabelSelector::default(), None);
    assert!(judge(Direction::Ingress, std::slice::from_ref(&no_types), 0).isolated());
    assert!(!judge(Direction::Egress, std::slice::from_ref(&no_types), 0).isolated());

    if let Some(spec) = no_types.spec.as_mut() {
        spec.egress = Some(vec![NetworkPolicyEgressRule::default()]);
        spec.ingress = Some(vec![NetworkPolicyIngressRule::default()]);
    }
    assert!(judge(Direction::Ingress, std::slice::from_ref(&no_types), 0).isolated());
    assert!(judge(Direction::Egress, &[no_types], 0).isolated());
}

#[test]
fn empty_policy_types_default_like_absent_ones() {
    let empty = mk_policy("empty-types", LabelSelector::default(), Some(&[]));
    assert!(judge(Direction::Ingress, std::slice::from_ref(&empty), 0).isolated());
    assert!(!judge(Direction::Egress, &[empty], 0).isolated());
}

#[test]
fn an_egress_only_policy_does_not_isolate_ingress() {
    let egress = deny_all("deny-egress", &["Egress"]);
    assert!(!judge(Direction::Ingress, std::slice::from_ref(&egress), 0).isolated());
    assert!(judge(Direction::Egress, &[egress], 0).isolated());
}

#[test]
fn an_absent_pod_selector_selects_every_pod() {
    let mut policy = deny_all("all", &["Ingress"]);
    if let Some(spec) = policy.spec.as_mut() {
        spec.pod_selector = None;
    }
    assert!(judge(Direction::Ingress, &[policy], 0).isolated());
}

#[test]
fn jitbots_own_policies_are_not_a_baseline() {
    let mut ours = deny_all("jit-0123456789abcdef", &["Ingress"]);
    ours.metadata.labels = Some(labels(&[(MANAGED_BY_KEY, MANAGED_BY_VALUE)]));
    assert!(!judge(Direction::Ingress, &[ours], 2).isolated());
}

#[test]
fn isolating_policies_are_listed_by_name_in_order() {
    let policies = [
        deny_all("zeta", &["Ingress"]),
        mk_policy("web", mk_selector(&[("app", "web")]), Some(&["Ingress"])),
        deny_all("alpha", &["Ingress", "Egress"]),
    ];
    assert_eq!(
        judge(Direction::Ingress, &policies, 0).policies,
        vec!["alpha".to_owned(), "zeta".to_owned()]
    );
}

#[test]
fn a_pod_source_behind_default_deny_egress_makes_the_grant_matter() {
    let target = judge(Direction::Ingress, &[], 2);
    let source = judge(
        Direction::Egress,
        &[deny_all("deny-egress", &["Egress"])],
        1,
    );
    let preview = known(target, Some(source));
    assert_eq!(preview.matters(), Some(true));
    assert_eq!(
        preview.to_string(),
        "no default-deny on the target (2 pods); source egress default-deny present, 1 pod"
    );
}

#[test]
fn a_pod_source_is_described_with_the_target() {
    let target = judge(Direction::Ingress, &[deny_all("deny", &["Ingress"])], 4);
    let open = judge(Direction::Egress, &[], 1);
    assert_eq!(
        known(target.clone(), Some(open.clone())).to_string(),
        "default-deny present, 4 pods; source egress open, 1 pod"
    );
    let nothing = known(judge(Direction::Ingress, &[], 4), Some(open));
    assert_eq!(
        nothing.to_string(),
        "no default-deny: this grant changes nothing"
    );
}

#[test]
fn an_unknown_cluster_says_so() {
    assert_eq!(Preview::Unreachable.matters(), None);
    assert_eq!(
        Preview::Unreachable.to_string(),
        "cluster unreachable: unknown"
    );
    assert_eq!(
        Preview::Forbidden.to_string(),
        "not allowed to read the cluster: unknown"
    );
}
