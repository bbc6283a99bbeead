//! "Does this grant matter?" against real policies and pods: the adapter fetches,
//! `core::preview` judges.

use std::net::TcpListener;

use jitbot::adapters::kube::KubeEnforcer;
use jitbot::core::catalog::Source;
use jitbot::core::ids::Namespace;
use jitbot::core::ports::{EnforceError, Enforcer};
use jitbot::core::preview::Preview;
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::Config;

use super::{address_source, create_foreign, enforcer, fast, grant, labels, pod_source, postgres};
use crate::support::kube::{Cluster, client, cluster, server};

/// A policy of `types` selecting the pods labelled `selects` (all pods when empty),
/// allowing nothing.
fn baseline(name: &str, types: &[&str], selects: &[(&str, &str)]) -> NetworkPolicy {
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: (!selects.is_empty()).then(|| labels(selects)),
                match_expressions: None,
            }),
            policy_types: Some(types.iter().map(|t| (*t).to_owned()).collect()),
            ..NetworkPolicySpec::default()
        }),
    }
}

/// A bastion namespace beside the test's, with one bastion pod in it.
async fn with_bastion(c: &Cluster) -> Namespace {
    let bastion = c.another_namespace("bastion").await;
    c.create_pod(&bastion, "bastion-0", &[("app", "bastion")])
        .await;
    bastion
}

/// What `jitbot` says of a grant from `source` to the postgres replicas in the test's
/// namespace.
async fn preview_for(jitbot: &KubeEnforcer, c: &Cluster, source: &Source) -> Preview {
    jitbot
        .preview_grant(&c.namespace, &postgres(), source)
        .await
}

/// Two postgres replicas and a web pod in the test's namespace.
async fn with_pods(c: &Cluster) {
    let replica = [("app", "postgres"), ("role", "replica")];
    c.create_pod(&c.namespace, "replica-0", &replica).await;
    c.create_pod(&c.namespace, "replica-1", &replica).await;
    c.create_pod(&c.namespace, "web-0", &[("app", "web")]).await;
}

#[tokio::test]
async fn preview_of_a_namespace_without_policies_says_the_grant_changes_nothing() {
    let c = cluster().await;
    with_pods(&c).await;
    let jitbot = enforcer(c.client.clone(), &[&c.namespace]);
    // jitbot's own policies are what grants add, never a baseline.
    jitbot.apply(&grant(&c.namespace)).await.unwrap();
    let preview = preview_for(&jitbot, &c, &address_source()).await;
    assert_eq!(preview.matters(), Some(false));
    assert_eq!(
        preview.to_string(),
        "no default-deny: this grant changes nothing"
    );
}

#[tokio::test]
async fn preview_sees_a_default_deny_baseline_and_counts_the_target_pods() {
    let c = cluster().await;
    with_pods(&c).await;
    create_foreign(
        &c.client,
        &c.namespace,
        baseline("default-deny", &["Ingress"], &[]),
    )
    .await;
    let jitbot = enforcer(c.client.clone(), &[&c.namespace]);
    let preview = preview_for(&jitbot, &c, &address_source()).await;
    match &preview {
        Preview::Known { target, source } => {
            assert_eq!(target.policies, vec!["default-deny".to_owned()]);
            assert_eq!(target.pods, 2);
            assert_eq!(source, &None);
        }
        other => panic!("expected a known preview, got {other:?}"),
    }
    assert_eq!(preview.to_string(), "default-deny present, 2 pods");
}

#[tokio::test]
async fn preview_ignores_a_baseline_that_selects_other_pods_only() {
    let c = cluster().await;
    with_pods(&c).await;
    let web_only = baseline("web-only", &["Ingress"], &[("app", "web")]);
    create_foreign(&c.client, &c.namespace, web_only).await;
    let deny_egress = baseline("deny-egress", &["Egress"], &[]);
    create_foreign(&c.client, &c.namespace, deny_egress).await;
    let jitbot = enforcer(c.client.clone(), &[&c.namespace]);
    let preview = preview_for(&jitbot, &c, &address_source()).await;
    assert_eq!(preview.matters(), Some(false), "{preview:?}");
}

#[tokio::test]
async fn preview_of_a_pod_source_without_default_deny_egress_judges_the_target_only() {
    let c = cluster().await;
    let bastion = with_bastion(&c).await;
    let jitbot = enforcer(c.client.clone(), &[&c.namespace, &bastion]);
    let open = preview_for(&jitbot, &c, &pod_source(&bastion)).await;
    assert_eq!(
        open.to_string(),
        "no default-deny: this grant changes nothing"
    );

    create_foreign(&c.client, &c.namespace, baseline("deny", &["Ingress"], &[])).await;
    let isolated = preview_for(&jitbot, &c, &pod_source(&bastion)).await;
    assert_eq!(
        isolated.to_string(),
        "default-deny present, 0 pods; source egress open, 1 pod"
    );
}

#[tokio::test]
async fn preview_of_a_pod_source_behind_default_deny_egress_says_the_grant_matters() {
    let c = cluster().await;
    let bastion = with_bastion(&c).await;
    // Policy types left out, with an egress rule: the server defaults them to
    // Ingress and Egress, and the preview must read them that way.
    let mut legacy = baseline("legacy-deny", &[], &[]);
    if let Some(spec) = legacy.spec.as_mut() {
        spec.policy_types = None;
        spec.egress = Some(vec![Default::default()]);
    }
    create_foreign(&c.client, &bastion, legacy).await;
    let jitbot = enforcer(c.client.clone(), &[&c.namespace, &bastion]);
    let preview = preview_for(&jitbot, &c, &pod_source(&bastion)).await;
    match &preview {
        Preview::Known {
            target,
            source: Some(source),
        } => {
            assert!(!target.isolated());
            assert_eq!(source.policies, vec!["legacy-deny".to_owned()]);
            assert_eq!(source.pods, 1);
        }
        other => panic!("expected a known preview with a source, got {other:?}"),
    }
    assert_eq!(preview.matters(), Some(true));
}

#[tokio::test]
async fn preview_of_an_unreachable_cluster_is_unknown_and_listing_unavailable() {
    // A port nobody listens on any more: connections are refused at once.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let mut config = Config::new(format!("http://127.0.0.1:{port}").parse().unwrap());
    config.default_retry = false;
    let namespace = "payments".parse().unwrap();
    let jitbot = KubeEnforcer::new(client(config), fast(), vec![namespace]);
    let preview = jitbot
        .preview_grant(&"payments".parse().unwrap(), &postgres(), &address_source())
        .await;
    assert_eq!(preview, Preview::Unreachable);
    assert_eq!(preview.to_string(), "cluster unreachable: unknown");
    let listed = jitbot.list_managed().await;
    assert!(
        matches!(listed, Err(EnforceError::Unavailable(_))),
        "{listed:?}"
    );
}

#[tokio::test]
async fn preview_without_permission_to_read_is_unknown() {
    let c = cluster().await;
    let nobody = server().client_with_token(&server().nobody_token).await;
    let preview = enforcer(nobody, &[&c.namespace])
        .preview_grant(&c.namespace, &postgres(), &address_source())
        .await;
    assert_eq!(preview, Preview::Forbidden);
}
