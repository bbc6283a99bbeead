use super::*;
use crate::core::catalog::fixtures::{
    APPROVER, address_config, labels, requester_config, target_config, tcp,
};
use crate::core::catalog::{AccessConfig, PortSpec, Protocol, SourceConfig};
use crate::core::ids::Namespace;
use crate::core::request::fixtures::{ALICE, addresses, t0};
use crate::core::ttl::Ttl;

const BOB: &str = "U0BOB00001";

/// payments-db (postgres pods, 5432/TCP, 2h at most, one approval); Alice at
/// 10.8.0.14, Bob anywhere in 10.8.1.0/28.
fn catalog() -> Catalog {
    let bob = requester_config(
        BOB,
        SourceConfig {
            range: Some("10.8.1.0/28".to_owned()),
            ..SourceConfig::default()
        },
    );
    Catalog::build(
        &AccessConfig::default(),
        &[target_config("payments-db")],
        &[requester_config(ALICE, address_config(&["10.8.0.14"])), bob],
    )
    .expect("test catalog is valid")
}

/// Alice's grant as `submit` would store it, approved and active.
fn stored() -> crate::core::request::fixtures::RequestBuilder {
    AccessRequest::test()
        .in_catalog(&catalog(), "payments-db", ALICE)
        .approved_by(APPROVER, t0())
        .active()
}

fn refused(req: &AccessRequest) -> String {
    vet(req, &catalog())
        .expect_err("must be refused")
        .to_string()
}

#[test]
fn a_request_as_submitted_is_trusted_in_every_state() {
    assert_eq!(vet(&stored().build(), &catalog()), Ok(()));
    let pending = AccessRequest::test().in_catalog(&catalog(), "payments-db", ALICE);
    assert_eq!(vet(&pending.build(), &catalog()), Ok(()));
}

#[test]
fn a_wider_scope_than_the_catalog_gives_is_refused() {
    let other_ns = stored().namespace("kube-system".parse::<Namespace>().unwrap());
    assert!(refused(&other_ns.build()).contains("namespace kube-system"));
    let every_pod = stored().pod_selector(labels(&[]));
    assert!(refused(&every_pod.build()).contains("pod selector"));
    let every_port = stored().ports(vec![]);
    assert!(refused(&every_port.build()).contains("ports"));
    let other_port = stored().ports(vec![tcp(22)]);
    assert!(refused(&other_port.build()).contains("ports"));
    let range = PortSpec {
        protocol: Protocol::Tcp,
        port: 5432,
        end_port: Some(5440),
    };
    assert!(refused(&stored().ports(vec![range]).build()).contains("ports"));
    let udp = PortSpec {
        protocol: Protocol::Udp,
        ..tcp(5432)
    };
    assert!(refused(&stored().ports(vec![udp]).build()).contains("ports"));
}

#[test]
fn a_narrower_scope_is_trusted() {
    let fewer_pods = stored().pod_selector(labels(&[("app", "postgres"), ("role", "replica")]));
    assert_eq!(vet(&fewer_pods.build(), &catalog()), Ok(()));
}

#[test]
fn a_source_outside_the_requesters_is_refused() {
    let anywhere = stored().source(addresses(&["0.0.0.0/0"]));
    assert!(refused(&anywhere.build()).contains("source 0.0.0.0/0"));
    let neighbour = stored().source(addresses(&["10.8.0.15/32"]));
    assert!(refused(&neighbour.build()).contains("source"));
    let none = stored().source(Source::Addresses { addresses: vec![] });
    assert!(refused(&none.build()).contains("source"));
    // Bob's range: one address in it is his to pick; the whole range is not a grant.
    let bob = AccessRequest::test()
        .in_catalog(&catalog(), "payments-db", ALICE)
        .requester(BOB)
        .approved_by(APPROVER, t0())
        .active();
    let picked = bob.clone().source(addresses(&["10.8.1.3/32"]));
    assert_eq!(vet(&picked.build(), &catalog()), Ok(()));
    let outside = bob.source(addresses(&["10.8.2.3/32"]));
    assert!(refused(&outside.build()).contains("source"));
}

#[test]
fn weaker_rules_or_missing_approvals_are_refused() {
    let long = stored().duration(Ttl::from_mins(300));
    assert!(refused(&long.build()).contains("longest grant"));
    let fewer = stored().approvals_required(0);
    assert!(refused(&fewer.build()).contains("approval rules"));
    let self_ok = stored().allow_self_approval(true);
    assert!(refused(&self_ok.build()).contains("approval rules"));
    let mut unapproved = stored().build();
    unapproved.approvals.clear();
    assert!(refused(&unapproved).contains("0 approval(s) recorded where 1 are needed"));
    let mut self_approved = stored().build();
    self_approved.approvals[0].by = ALICE.parse().unwrap();
    assert!(refused(&self_approved).contains("approval"));
}

#[test]
fn a_target_or_requester_gone_from_the_catalog_is_refused() {
    let mut gone = stored().build();
    gone.target = "ledger-db".parse().unwrap();
    assert!(refused(&gone).contains("target ledger-db is no longer in the catalog"));
    let stranger = stored().requester("U0NOBODY01");
    assert!(refused(&stranger.build()).contains("U0NOBODY01 is no longer a requester"));
}
