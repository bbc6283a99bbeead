use chrono::TimeZone;

use super::*;
use crate::core::catalog::fixtures::{labels, tcp};
use crate::core::catalog::{PortSpec, Protocol};
use crate::core::request::fixtures::{LEAD1, RequestBuilder, addresses};

fn expiry() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 14, 30, 0).unwrap()
}

/// Alice's request for the postgres replicas from `source` on `ports`, made 30 minutes
/// before `expiry()`, not yet approved.
fn pending(source: Source, ports: Vec<PortSpec>) -> RequestBuilder {
    AccessRequest::test()
        .seed(42)
        .pod_selector(labels(&[
            ("app.kubernetes.io/name", "postgres"),
            ("role", "replica"),
        ]))
        .ports(ports)
        .source(source)
        .made_at(expiry() - chrono::TimeDelta::minutes(30))
}

/// The same, approved by `U01DBLEAD1`.
fn request(source: Source, ports: Vec<PortSpec>) -> AccessRequest {
    pending(source, ports).approved_by(LEAD1, expiry()).build()
}

fn ip_source() -> Source {
    addresses(&["10.8.0.14/32", "fd00:8::14/128"])
}

fn pod_source() -> Source {
    Source::Pod(PodSource {
        namespace: "bastion".parse().unwrap(),
        labels: labels(&[("app", "bastion"), ("owner", "carol")]),
    })
}

#[test]
fn an_ip_grant_is_one_ingress_policy_with_the_contract_metadata() {
    let req = request(ip_source(), vec![tcp(5432)]);
    let policies = render(&req, expiry());
    assert_eq!(policies.len(), 1);
    let yaml = to_yaml(&policies).unwrap();
    let id = req.id.to_string();
    // Ids that start with a digit are quoted so no reader takes them for numbers.
    let quoted_id = if id.starts_with(|c: char| c.is_ascii_digit()) {
        format!("\"{id}\"")
    } else {
        id.clone()
    };
    let expected = format!(
        r#"---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  annotations:
    jitbot.dev/approved-by: U01DBLEAD1
    jitbot.dev/expires-at: "2026-11-26T14:30:00Z"
    jitbot.dev/reason: "INC-4411 replica lag"
    jitbot.dev/requested-by: U0ALICE001
  labels:
    app.kubernetes.io/managed-by: jitbot
    jitbot.dev/request-id: {quoted_id}
    jitbot.dev/target: payments-db
  name: jit-{id}
  namespace: payments
spec:
  ingress:
  - from:
    - ipBlock:
        cidr: "10.8.0.14/32"
    - ipBlock:
        cidr: "fd00:8::14/128"
    ports:
    - port: 5432
      protocol: TCP
  podSelector:
    matchLabels:
      app.kubernetes.io/name: postgres
      role: replica
  policyTypes:
  - Ingress
"#
    );
    assert_eq!(yaml, expected);
}

#[test]
fn rendering_is_deterministic() {
    let req = request(pod_source(), vec![tcp(5432), tcp(5433)]);
    let a = to_yaml(&render(&req, expiry())).unwrap();
    let b = to_yaml(&render(&req.clone(), expiry())).unwrap();
    assert_eq!(a, b);
}

#[test]
fn a_pod_grant_adds_an_egress_companion_in_the_source_namespace() {
    let req = request(pod_source(), vec![tcp(5432)]);
    let policies = render(&req, expiry());
    assert_eq!(policies.len(), 2);
    let ingress = &policies[0];
    let peer = &ingress.spec.as_ref().unwrap().ingress.as_ref().unwrap()[0]
        .from
        .as_ref()
        .unwrap()[0];
    assert_eq!(
        peer.namespace_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap()[NAMESPACE_NAME_LABEL],
        "bastion"
    );
    assert_eq!(
        peer.pod_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap()["owner"],
        "carol"
    );

    let egress = &policies[1];
    assert_eq!(
        egress.metadata.name.as_deref(),
        Some(egress_policy_name(&req.id).as_str())
    );
    assert_eq!(egress.metadata.namespace.as_deref(), Some("bastion"));
    assert_eq!(egress.metadata.labels, ingress.metadata.labels);
    let spec = egress.spec.as_ref().unwrap();
    assert_eq!(
        spec.policy_types.as_deref(),
        Some(&["Egress".to_owned()][..])
    );
    assert_eq!(
        spec.pod_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap()["app"],
        "bastion"
    );
    let to = &spec.egress.as_ref().unwrap()[0].to.as_ref().unwrap()[0];
    assert_eq!(
        to.namespace_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap()[NAMESPACE_NAME_LABEL],
        "payments"
    );
    assert_eq!(
        to.pod_selector.as_ref().unwrap().match_labels,
        Some(req.scope.pod_selector.clone())
    );
}

#[test]
fn end_port_only_for_ranges() {
    let single = to_yaml(&render(&request(ip_source(), vec![tcp(5432)]), expiry())).unwrap();
    assert!(!single.contains("endPort"));
    let range = PortSpec {
        protocol: Protocol::Udp,
        port: 9000,
        end_port: Some(9010),
    };
    let ranged = to_yaml(&render(&request(ip_source(), vec![range]), expiry())).unwrap();
    assert!(ranged.contains("endPort: 9010"), "{ranged}");
    assert!(ranged.contains("protocol: UDP"), "{ranged}");
}

#[test]
fn names_fit_kubernetes_limits() {
    let id = RequestId::from_random([0xff; 10]);
    assert!(policy_name(&id).len() <= 63);
    assert!(egress_policy_name(&id).len() <= 63);
}

#[test]
fn pending_requests_say_so_in_approved_by() {
    let req = pending(ip_source(), vec![tcp(5432)]).build();
    let p = &render(&req, expiry())[0];
    assert_eq!(
        p.metadata.annotations.as_ref().unwrap()[APPROVED_BY_ANNOTATION],
        "pending"
    );
}

#[test]
fn contract_fields_read_back() {
    let req = request(ip_source(), vec![tcp(5432)]);
    let p = &render(&req, expiry())[0];
    assert_eq!(expires_at(p), Some(expiry()));
    assert_eq!(request_id(p), Some(req.id.clone()));
    let mut foreign = p.clone();
    foreign
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert(MANAGED_BY_KEY.to_owned(), "someone-else".to_owned());
    assert_eq!(request_id(&foreign), None, "not ours: never touched");
}
