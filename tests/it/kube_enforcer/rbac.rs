//! The RBAC `jitbot rbac` generates, for real: for a catalog with a target in the
//! test's namespace and a pod source in another, its ServiceAccount, Roles and
//! RoleBindings applied with kubectl, a token issued for that ServiceAccount by the API
//! server (TokenRequest), and jitbot built as `serve` builds it on that token. It
//! grants, previews, reconciles, watches and revokes with nothing more, reads no
//! Namespace (the token cannot), and gets 403 everywhere else.

use chrono::TimeDelta;
use jitbot::core::catalog::fixtures::labels;
use jitbot::core::catalog::{PodSourceConfig, RequesterConfig, SourceConfig};
use jitbot::core::ids::{Namespace, RequestId};
use jitbot::core::netpol;
use jitbot::core::ports::{Clock, EnforceError, Enforcer};
use jitbot::core::preview::Preview;
use jitbot::core::rbac::{self, Account};
use jitbot::core::request::{AccessRequest, State};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace as KubeNamespace, Pod, Secret, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, PostParams, WatchParams};
use kube::{Client, Error};

use jitbot::adapters::kube::{KubeEnforcer, KubeSettings, ListScope};

use super::{fast, grant, pod_source};
use crate::support::fakes::{CAROL, LEAD1, active, user};
use crate::support::kube::server;
use crate::support::spawn::{Stack, clock, settings, spawn_app_with};

/// Applies `yaml` with kubectl, as an operator would apply `jitbot rbac`'s output.
fn kubectl_apply(yaml: &str) {
    let file = tempfile::NamedTempFile::new().expect("a temporary file");
    std::fs::write(file.path(), yaml).expect("the RBAC is written");
    let path = file.path().to_str().expect("a UTF-8 path");
    server().kubectl(&["apply", "-f", path]);
}

/// A client that authenticates as ServiceAccount `name` in `namespace`.
async fn as_account(admin: &Client, namespace: &str, name: &str) -> Client {
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(600),
            bound_object_ref: None,
        },
        ..TokenRequest::default()
    };
    let issued = accounts
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .unwrap_or_else(|err| panic!("cannot get a token for {name}: {err}"));
    let token = issued.status.map(|s| s.token).unwrap_or_default();
    assert!(!token.is_empty(), "the API server issued an empty token");
    server().client_with_token(&token).await
}

/// Creates `name` unless it is there already (several tests share `jitbot`).
async fn ensure_namespace(admin: &Client, name: &str) {
    let namespaces: Api<KubeNamespace> = Api::all(admin.clone());
    let ns = KubeNamespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        ..KubeNamespace::default()
    };
    match namespaces.create(&PostParams::default(), &ns).await {
        Ok(_) => {}
        Err(Error::Api(s)) if s.code == 409 => {}
        Err(err) => panic!("cannot create namespace {name}: {err}"),
    }
}

fn status_code<T>(result: Result<T, Error>) -> Result<(), u16> {
    match result {
        Ok(_) => Ok(()),
        Err(Error::Api(status)) => Err(status.code),
        Err(other) => panic!("expected an API error, got {other}"),
    }
}

fn unmanaged_pod() -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("not-allowed".to_owned()),
            ..ObjectMeta::default()
        },
        ..Pod::default()
    }
}

fn policy_in(namespace: &Namespace) -> NetworkPolicy {
    grant(namespace).remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_roles_run_every_flow_and_nothing_outside_the_catalog() {
    let stack = Stack::start().await;
    let admin = stack.cluster.client.clone();
    let target_ns = stack.cluster.namespace.clone();
    let bastion = stack.cluster.another_namespace("bastion").await;
    let elsewhere = stack.cluster.another_namespace("elsewhere").await;
    stack
        .cluster
        .create_pod(&bastion, "bastion-0", &[("app", "bastion")])
        .await;

    // The catalog: payments-db in the test's namespace, carol through a bastion pod.
    let clock = clock();
    let world = stack.world(&clock);
    let mut config = settings(&world);
    config.requesters.push(RequesterConfig {
        slack_user: CAROL.to_owned(),
        name: "carol".to_owned(),
        source: SourceConfig {
            pod: Some(PodSourceConfig {
                namespace: bastion.to_string(),
                labels: labels(&[("app", "bastion")]),
            }),
            ..SourceConfig::default()
        },
    });
    let catalog = config.catalog().expect("a valid catalog");
    let account = Account {
        namespace: "jitbot".parse().unwrap(),
        name: "jitbot".to_owned(),
    };
    let yaml = rbac::to_yaml(&catalog, &account, &[]).unwrap();
    assert_eq!(yaml.matches("\nkind: Role\n").count(), 2, "{yaml}");
    ensure_namespace(&admin, "jitbot").await;
    kubectl_apply(&yaml);
    let sa = as_account(&admin, "jitbot", "jitbot").await;

    // jitbot as `serve` builds it, on the ServiceAccount's token.
    let world = crate::support::spawn::World {
        kube: sa.clone(),
        ..stack.world(&clock)
    };
    let jitbot = spawn_app_with(&world, &config, false).await;
    let app = &jitbot.app;

    // Grant: the ingress policy in the target's namespace, its egress companion in
    // the bastion's.
    let req: AccessRequest = active(app, "payments-db", CAROL, LEAD1).await;
    let egress: Api<NetworkPolicy> = Api::namespaced(admin.clone(), bastion.as_str());
    let ingress: Api<NetworkPolicy> = Api::namespaced(admin.clone(), target_ns.as_str());
    let name = netpol::policy_name(&req.id);
    assert!(ingress.get_opt(&name).await.unwrap().is_some());
    let egress_name = netpol::egress_policy_name(&req.id);
    assert!(egress.get_opt(&egress_name).await.unwrap().is_some());

    // Preview: both sides read, with pods counted.
    let enforcer = KubeEnforcer::new(sa.clone(), fast(), vec![target_ns.clone(), bastion.clone()]);
    let preview = enforcer
        .preview_grant(&target_ns, &req.scope.pod_selector, &pod_source(&bastion))
        .await;
    match &preview {
        Preview::Known {
            source: Some(source),
            ..
        } => assert_eq!(source.pods, 1, "{preview:?}"),
        other => panic!("the preview should know both sides: {other:?}"),
    }

    // The expiry guard's watch, in each catalog namespace.
    for ns in [&target_ns, &bastion] {
        let api: Api<NetworkPolicy> = Api::namespaced(sa.clone(), ns.as_str());
        let params = WatchParams::default()
            .labels(netpol::MANAGED_SELECTOR)
            .timeout(1);
        assert!(
            api.watch_metadata(&params, "0").await.is_ok(),
            "watch in {ns}"
        );
    }

    // Reconcile: a leftover jitbot policy past its expiry goes; the grant stays.
    let leftover = AccessRequest::test()
        .id(RequestId::from_random(rand::random()))
        .namespace(bastion.clone())
        .reason("left over")
        .build();
    let leftover_policy = netpol::render(&leftover, clock.now() - TimeDelta::minutes(1)).remove(0);
    egress
        .create(&PostParams::default(), &leftover_policy)
        .await
        .unwrap();
    let report = app.reconcile_once(clock.now()).await.unwrap();
    assert_eq!((report.removed, report.errors), (1, 0), "{report:?}");
    let leftover_name = netpol::policy_name(&leftover.id);
    assert!(egress.get_opt(&leftover_name).await.unwrap().is_none());
    assert!(ingress.get_opt(&name).await.unwrap().is_some());

    // Revoke: both policies gone.
    let revoked = app.revoke(&req.id, &user(LEAD1), None).await.unwrap();
    assert_eq!(revoked.transition.request.state, State::Revoked);
    assert_eq!(
        revoked.policy,
        Ok(()),
        "the Role lets jitbot delete its policy"
    );
    assert!(ingress.get_opt(&name).await.unwrap().is_none());
    assert!(egress.get_opt(&egress_name).await.unwrap().is_none());

    // Outside the catalog's namespaces: nothing, not even a list.
    let there: Api<NetworkPolicy> = Api::namespaced(sa.clone(), elsewhere.as_str());
    assert_eq!(
        status_code(there.list(&ListParams::default()).await),
        Err(403)
    );
    let params = WatchParams::default()
        .labels(netpol::MANAGED_SELECTOR)
        .timeout(1);
    assert_eq!(
        status_code(there.watch_metadata(&params, "0").await),
        Err(403)
    );
    let created = there
        .create(&PostParams::default(), &policy_in(&elsewhere))
        .await;
    assert_eq!(status_code(created), Err(403));
    let pods_there: Api<Pod> = Api::namespaced(sa.clone(), elsewhere.as_str());
    assert_eq!(
        status_code(pods_there.list(&ListParams::default()).await),
        Err(403)
    );
    let everywhere: Api<NetworkPolicy> = Api::all(sa.clone());
    assert_eq!(
        status_code(everywhere.list(&ListParams::default()).await),
        Err(403)
    );
    let cluster_wide = KubeEnforcer::new(
        sa.clone(),
        KubeSettings {
            scope: ListScope::Cluster,
            ..fast()
        },
        Vec::new(),
    );
    match cluster_wide.list_managed().await {
        Err(EnforceError::Refused(why)) => assert!(why.contains("403"), "{why}"),
        other => panic!("a cluster-wide list should be refused, got {other:?}"),
    }
    // Namespaces are cluster-scoped: no Role grants reading them, and jitbot never
    // needed to above.
    let namespaces: Api<KubeNamespace> = Api::all(sa.clone());
    assert_eq!(
        status_code(namespaces.list(&ListParams::default()).await),
        Err(403)
    );
    // In the catalog's namespaces: policies and pod counts only.
    let secrets: Api<Secret> = Api::namespaced(sa.clone(), target_ns.as_str());
    assert_eq!(
        status_code(secrets.list(&ListParams::default()).await),
        Err(403)
    );
    let pods: Api<Pod> = Api::namespaced(sa.clone(), target_ns.as_str());
    let pod = pods.create(&PostParams::default(), &unmanaged_pod()).await;
    assert_eq!(status_code(pod), Err(403));
    let one_policy: Api<NetworkPolicy> = Api::namespaced(sa, target_ns.as_str());
    assert_eq!(status_code(one_policy.get("anything").await), Err(403));
}

/// `manifests/overlays/cluster-scope/clusterrole.yaml` bound to ServiceAccount `name`
/// (a test's own, so that the cluster-wide rights do not reach the test above).
fn cluster_role_for(name: &str) -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/manifests/overlays/cluster-scope/clusterrole.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let mut docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    assert_eq!(docs[1]["kind"], "ClusterRoleBinding");
    docs[1]["metadata"]["name"] = name.into();
    docs[1]["subjects"][0]["name"] = name.into();
    docs.iter()
        .map(|d| serde_yaml::to_string(d).unwrap())
        .collect::<Vec<_>>()
        .join("---\n")
}

#[tokio::test]
async fn the_cluster_scope_overlay_lets_jitbot_find_and_delete_its_policies_anywhere() {
    let c = super::cluster().await;
    let stale = c.another_namespace("stale").await;
    let name = format!("jitbot-cluster-{}", &c.namespace.as_str()[2..]);
    let config = jitbot::core::catalog::TargetConfig {
        namespace: c.namespace.to_string(),
        ..jitbot::core::catalog::fixtures::target_config("payments-db")
    };
    let catalog =
        jitbot::core::catalog::Catalog::build(&Default::default(), &[config], &[]).unwrap();
    let account = Account {
        namespace: "jitbot".parse().unwrap(),
        name: name.clone(),
    };
    ensure_namespace(&c.client, "jitbot").await;
    kubectl_apply(&rbac::to_yaml(&catalog, &account, &[]).unwrap());
    kubectl_apply(&cluster_role_for(&name));
    let sa = as_account(&c.client, "jitbot", &name).await;

    // A jitbot policy left in a namespace the catalog no longer names.
    let left = policy_in(&stale);
    let admin: Api<NetworkPolicy> = Api::namespaced(c.client.clone(), stale.as_str());
    admin.create(&PostParams::default(), &left).await.unwrap();

    let settings = KubeSettings {
        scope: ListScope::Cluster,
        ..fast()
    };
    let jitbot = KubeEnforcer::new(sa.clone(), settings, catalog.namespaces());
    let found = jitbot.list_managed().await.unwrap();
    assert!(found.iter().any(|p| p.metadata.name == left.metadata.name));
    let everywhere: Api<NetworkPolicy> = Api::all(sa.clone());
    let params = WatchParams::default()
        .labels(netpol::MANAGED_SELECTOR)
        .timeout(1);
    assert!(everywhere.watch_metadata(&params, "0").await.is_ok());
    assert_eq!(
        jitbot
            .revoke(&super::refs(std::slice::from_ref(&left)))
            .await
            .unwrap(),
        1
    );
    assert!(
        admin
            .get_opt(left.metadata.name.as_deref().unwrap())
            .await
            .unwrap()
            .is_none()
    );

    // Applying stays where the catalog's Roles allow it.
    jitbot.apply(&grant(&c.namespace)).await.unwrap();
    match jitbot.apply(&grant(&stale)).await {
        Err(EnforceError::Refused(why)) => assert!(why.contains("403"), "{why}"),
        other => panic!("applying outside the catalog should be refused, got {other:?}"),
    }
    let namespaces: Api<KubeNamespace> = Api::all(sa);
    assert_eq!(
        status_code(namespaces.list(&ListParams::default()).await),
        Err(403)
    );
}
