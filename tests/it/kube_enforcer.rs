//! The Kubernetes adapter against a real kube-apiserver: applying rendered grants,
//! revoking them, listing what is ours. Failures through the fault proxy, previews and
//! the RBAC `jitbot rbac` generates live in the submodules.

mod faults;
mod preview;
mod rbac;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use jitbot::adapters::kube::{KubeEnforcer, KubeSettings, ListScope};
use jitbot::core::catalog::fixtures::labels;
use jitbot::core::catalog::{PodSource, Source};
use jitbot::core::ids::{Namespace, RequestId};
use jitbot::core::netpol::{self, MANAGED_BY_KEY, MANAGED_BY_VALUE};
use jitbot::core::ports::{EnforceError, Enforcer, PolicyRef};
use jitbot::core::request::AccessRequest;
use jitbot::core::request::fixtures::addresses;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Client;
use kube::api::{Api, PostParams};

use crate::support::fakes::LEAD1;
use crate::support::kube::{Cluster, cluster};

fn expiry() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 15, 0, 0).unwrap()
}

fn postgres() -> BTreeMap<String, String> {
    labels(&[("app", "postgres"), ("role", "replica")])
}

/// An approved request for the postgres replicas in `namespace`, from `source`.
fn request(namespace: &Namespace, source: Source) -> AccessRequest {
    AccessRequest::test()
        .id(RequestId::from_random(rand::random()))
        .namespace(namespace.clone())
        .pod_selector(postgres())
        .source(source)
        .made_at(expiry() - chrono::TimeDelta::minutes(30))
        .approved_by(LEAD1, expiry() - chrono::TimeDelta::minutes(29))
        .build()
}

fn address_source() -> Source {
    addresses(&["10.8.0.14/32"])
}

fn pod_source(namespace: &Namespace) -> Source {
    Source::Pod(PodSource {
        namespace: namespace.clone(),
        labels: labels(&[("app", "bastion")]),
    })
}

/// The policies of a grant from 10.8.0.14 to the postgres replicas in `namespace`.
fn grant(namespace: &Namespace) -> Vec<NetworkPolicy> {
    netpol::render(&request(namespace, address_source()), expiry())
}

/// Short waits, so retry tests take milliseconds rather than seconds.
fn fast() -> KubeSettings {
    KubeSettings {
        request_timeout: Duration::from_secs(5),
        apply_attempts: 3,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
        revoke_deadline: Duration::from_secs(10),
        scope: ListScope::Catalog,
    }
}

fn enforcer(client: Client, namespaces: &[&Namespace]) -> KubeEnforcer {
    let namespaces = namespaces.iter().map(|n| (*n).clone()).collect();
    KubeEnforcer::new(client, fast(), namespaces)
}

fn refs(policies: &[NetworkPolicy]) -> Vec<PolicyRef> {
    policies
        .iter()
        .map(|p| PolicyRef {
            namespace: p.metadata.namespace.as_deref().unwrap().parse().unwrap(),
            name: p.metadata.name.clone().unwrap(),
        })
        .collect()
}

fn name_of(policy: &NetworkPolicy) -> &str {
    policy.metadata.name.as_deref().unwrap()
}

/// `policy` as the API server has it now (found by its namespace and name), if at all.
async fn stored(c: &Cluster, policy: &NetworkPolicy) -> Option<NetworkPolicy> {
    let namespace = policy.metadata.namespace.as_deref().unwrap();
    let api: Api<NetworkPolicy> = Api::namespaced(c.client.clone(), namespace);
    api.get_opt(name_of(policy)).await.unwrap()
}

/// A namespace of its own with a grant applied in it by jitbot's enforcer for it.
async fn applied_grant() -> (Cluster, KubeEnforcer, Vec<NetworkPolicy>) {
    let c = cluster().await;
    let jitbot = enforcer(c.client.clone(), &[&c.namespace]);
    let policies = grant(&c.namespace);
    jitbot.apply(&policies).await.unwrap();
    (c, jitbot, policies)
}

/// Creates a policy as someone else would (kubectl, another controller).
async fn create_foreign(client: &Client, namespace: &Namespace, mut policy: NetworkPolicy) {
    policy.metadata.namespace = Some(namespace.to_string());
    let api: Api<NetworkPolicy> = Api::namespaced(client.clone(), namespace.as_str());
    api.create(&PostParams::default(), &policy).await.unwrap();
}

#[tokio::test]
async fn a_rendered_grant_is_stored_with_the_contract_labels_and_annotations() {
    let (c, _, policies) = applied_grant().await;

    let want = &policies[0];
    let got = stored(&c, want).await.expect("the policy exists");
    assert_eq!(got.metadata.labels, want.metadata.labels);
    assert_eq!(got.metadata.annotations, want.metadata.annotations);
    assert_eq!(got.spec, want.spec);
    let labels = got.metadata.labels.unwrap();
    assert_eq!(labels[MANAGED_BY_KEY], MANAGED_BY_VALUE);
    assert_eq!(netpol::expires_at(&policies[0]), Some(expiry()));
}

#[tokio::test]
async fn applying_the_same_grant_twice_leaves_the_resource_version_unchanged() {
    let (c, jitbot, policies) = applied_grant().await;
    let first = stored(&c, &policies[0]).await;
    jitbot.apply(&policies).await.unwrap();
    let second = stored(&c, &policies[0]).await;
    let version = |p: Option<NetworkPolicy>| p.and_then(|p| p.metadata.resource_version);
    let first = version(first);
    assert!(first.is_some());
    assert_eq!(first, version(second));
}

#[tokio::test]
async fn a_pod_source_grant_also_opens_egress_in_the_source_namespace() {
    let c = cluster().await;
    let bastion = c.another_namespace("bastion").await;
    let policies = netpol::render(&request(&c.namespace, pod_source(&bastion)), expiry());
    enforcer(c.client.clone(), &[&c.namespace, &bastion])
        .apply(&policies)
        .await
        .unwrap();
    assert!(stored(&c, &policies[0]).await.is_some());
    let egress = stored(&c, &policies[1]).await;
    let types = egress.and_then(|p| p.spec).and_then(|s| s.policy_types);
    assert_eq!(types, Some(vec!["Egress".to_owned()]));
}

#[tokio::test]
async fn revoke_deletes_the_policy_and_a_second_revoke_still_succeeds() {
    let (c, jitbot, policies) = applied_grant().await;
    assert_eq!(
        jitbot.revoke(&refs(&policies)).await.unwrap(),
        policies.len(),
        "this call deleted them"
    );
    assert!(stored(&c, &policies[0]).await.is_none());
    assert_eq!(
        jitbot.revoke(&refs(&policies)).await.unwrap(),
        0,
        "already gone: done, and nothing deleted by this call"
    );
}

#[tokio::test]
async fn revoking_a_policy_that_never_existed_or_whose_namespace_is_gone_succeeds() {
    let c = cluster().await;
    let jitbot = enforcer(c.client.clone(), &[&c.namespace]);
    let missing = PolicyRef {
        namespace: c.namespace.clone(),
        name: "jit-neverappliedxxxx".to_owned(),
    };
    let no_namespace = PolicyRef {
        namespace: "no-such-namespace".parse().unwrap(),
        name: "jit-neverappliedxxxx".to_owned(),
    };
    jitbot.revoke(&[missing, no_namespace]).await.unwrap();
}

#[tokio::test]
async fn applying_into_a_missing_namespace_is_refused() {
    let c = cluster().await;
    let nowhere: Namespace = "no-such-namespace".parse().unwrap();
    let got = enforcer(c.client.clone(), &[&nowhere])
        .apply(&grant(&nowhere))
        .await;
    match got {
        Err(EnforceError::Refused(why)) => assert!(why.contains("404"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn list_managed_finds_ours_and_never_a_policy_without_our_label() {
    let (c, jitbot, ours) = applied_grant().await;
    // Named like ours but not labelled as ours, and labelled by another manager.
    let mut impostor = grant(&c.namespace).remove(0);
    impostor.metadata.name = Some("jit-impostor".to_owned());
    impostor.metadata.labels = None;
    create_foreign(&c.client, &c.namespace, impostor).await;
    let mut other = grant(&c.namespace).remove(0);
    other.metadata.name = Some("jit-other-manager".to_owned());
    other.metadata.labels = Some(labels(&[(MANAGED_BY_KEY, "helm")]));
    create_foreign(&c.client, &c.namespace, other).await;

    let found = jitbot.list_managed().await.unwrap();
    let names: Vec<&str> = found.iter().map(name_of).collect();
    assert_eq!(names, vec![name_of(&ours[0])]);

    let cluster_wide = KubeEnforcer::new(
        c.client.clone(),
        KubeSettings {
            scope: ListScope::Cluster,
            ..fast()
        },
        Vec::new(),
    );
    let found = cluster_wide.list_managed().await.unwrap();
    assert!(found.iter().any(|p| name_of(p) == name_of(&ours[0])));
    for policy in &found {
        let label = policy
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(MANAGED_BY_KEY));
        assert_eq!(
            label.map(String::as_str),
            Some(MANAGED_BY_VALUE),
            "{policy:?}"
        );
    }
}

#[tokio::test]
async fn list_managed_in_catalog_scope_looks_only_in_catalog_namespaces() {
    let c = cluster().await;
    let elsewhere = c.another_namespace("elsewhere").await;
    enforcer(c.client.clone(), &[&elsewhere])
        .apply(&grant(&elsewhere))
        .await
        .unwrap();
    let found = enforcer(c.client.clone(), &[&c.namespace])
        .list_managed()
        .await
        .unwrap();
    assert!(found.is_empty(), "{found:?}");
}
