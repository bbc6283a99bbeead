//! The shipped RBAC, for real: `manifests/base/rbac.yaml` applied with kubectl, a token
//! issued for the `jitbot` ServiceAccount by the API server (TokenRequest), and the
//! adapter run with it.

use jitbot::adapters::kube::{KubeEnforcer, KubeSettings, ListScope};
use jitbot::core::ports::Enforcer;
use jitbot::core::preview::Preview;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace as KubeNamespace, Pod, Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, Error};

use super::{address_source, fast, grant, name_of, postgres, refs, stored};
use crate::support::kube::{cluster, server};

/// Applies the manifest and returns a client that authenticates as the ServiceAccount.
async fn as_jitbot(admin: &Client) -> Client {
    let namespaces: Api<KubeNamespace> = Api::all(admin.clone());
    let jitbot_ns = KubeNamespace {
        metadata: ObjectMeta {
            name: Some("jitbot".to_owned()),
            ..ObjectMeta::default()
        },
        ..KubeNamespace::default()
    };
    match namespaces.create(&PostParams::default(), &jitbot_ns).await {
        Ok(_) => {}
        Err(Error::Api(s)) if s.code == 409 => {}
        Err(err) => panic!("cannot create namespace jitbot: {err}"),
    }
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/base/rbac.yaml");
    server().kubectl(&["apply", "-f", manifest]);

    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), "jitbot");
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(600),
            bound_object_ref: None,
        },
        ..TokenRequest::default()
    };
    let issued = accounts
        .create_token_request("jitbot", &PostParams::default(), &request)
        .await
        .unwrap_or_else(|err| panic!("cannot get a token for jitbot: {err}"));
    let token = issued.status.map(|s| s.token).unwrap_or_default();
    assert!(!token.is_empty(), "the API server issued an empty token");
    server().client_with_token(&token).await
}

fn status_code(err: Error) -> u16 {
    match err {
        Error::Api(status) => status.code,
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test]
async fn the_shipped_rbac_lets_jitbot_grant_and_revoke_and_nothing_more() {
    let c = cluster().await;
    let client = as_jitbot(&c.client).await;
    let settings = KubeSettings {
        scope: ListScope::Cluster,
        ..fast()
    };
    let jitbot = KubeEnforcer::new(client.clone(), settings, Vec::new());

    let policies = grant(&c.namespace);
    jitbot.apply(&policies).await.unwrap();
    let listed = jitbot.list_managed().await.unwrap();
    assert!(listed.iter().any(|p| name_of(p) == name_of(&policies[0])));
    let preview = jitbot
        .preview_grant(&c.namespace, &postgres(), &address_source())
        .await;
    assert!(matches!(preview, Preview::Known { .. }), "{preview:?}");
    jitbot.revoke(&refs(&policies)).await.unwrap();
    assert!(stored(&c, &policies[0]).await.is_none());

    let secrets: Api<Secret> = Api::namespaced(client.clone(), c.namespace.as_str());
    let read = secrets.list(&ListParams::default()).await;
    assert_eq!(read.map(|_| ()).map_err(status_code), Err(403));
    let pods: Api<Pod> = Api::namespaced(client, c.namespace.as_str());
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some("not-allowed".to_owned()),
            ..ObjectMeta::default()
        },
        ..Pod::default()
    };
    let created = pods.create(&PostParams::default(), &pod).await;
    assert_eq!(created.map(|_| ()).map_err(status_code), Err(403));
}
