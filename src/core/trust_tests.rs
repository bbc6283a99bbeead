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

/// payments-db with an on-call rule (1h at most) and break-glass (30m at most), as
/// `with` changes it.
fn policy_catalog(with: impl FnOnce(&mut crate::core::catalog::TargetConfig)) -> Catalog {
    let mut target = target_config("payments-db");
    target.auto_approve = vec![crate::core::catalog::AutoApproveConfig {
        name: "on-call".to_owned(),
        who: vec!["S0ONCALL01".to_owned()],
        max_duration: "1h".to_owned(),
        hours: None,
    }];
    target.break_glass = Some(crate::core::catalog::BreakGlassConfig {
        max_duration: "30m".to_owned(),
        review_within: "24h".to_owned(),
    });
    with(&mut target);
    Catalog::build(
        &AccessConfig::default(),
        &[target],
        &[requester_config(ALICE, address_config(&["10.8.0.14"]))],
    )
    .expect("test catalog is valid")
}

/// Alice's active grant with no human approval, approved by rule `rule`.
fn by_rule(rule: &str, duration: Ttl) -> AccessRequest {
    let mut req = AccessRequest::test()
        .in_catalog(&policy_catalog(|_| {}), "payments-db", ALICE)
        .duration(duration)
        .active()
        .build();
    req.approvals.clear();
    req.approved_by_rule = Some(rule.to_owned());
    req
}

/// Alice's active break-glass grant for `duration`.
fn by_break_glass(duration: Ttl) -> AccessRequest {
    let mut req = by_rule("x", duration);
    req.approved_by_rule = None;
    req.break_glass = Some(crate::core::request::BreakGlassUse {
        used_at: t0(),
        review_within: Ttl::from_hours(24),
        announce_at: Some(t0() + chrono::TimeDelta::hours(24)),
        announced: 0,
        acknowledged_by: None,
        acknowledged_at: None,
    });
    req
}

#[test]
fn a_grant_no_person_approved_is_trusted_only_while_its_rule_or_break_glass_allows_it() {
    let catalog = policy_catalog(|_| {});
    assert_eq!(
        vet(&by_rule("on-call", Ttl::from_mins(30)), &catalog),
        Ok(())
    );
    assert_eq!(vet(&by_break_glass(Ttl::from_mins(30)), &catalog), Ok(()));
    // A record claiming a rule the target does not have, or longer than it gives.
    let made_up = vet(&by_rule("everyone", Ttl::from_mins(30)), &catalog).unwrap_err();
    assert!(
        made_up.to_string().contains("rule `everyone` is no longer"),
        "{made_up}"
    );
    let long = vet(&by_rule("on-call", Ttl::from_mins(90)), &catalog).unwrap_err();
    assert!(
        long.to_string()
            .contains("rule `on-call`'s longest grant (1h)"),
        "{long}"
    );
    let long = vet(&by_break_glass(Ttl::from_mins(45)), &catalog).unwrap_err();
    assert!(
        long.to_string().contains("longest break-glass grant (30m)"),
        "{long}"
    );
    // The catalog narrowed since: the rule or the break-glass path removed.
    let narrowed = policy_catalog(|t| {
        t.auto_approve.clear();
        t.break_glass = None;
    });
    assert!(vet(&by_rule("on-call", Ttl::from_mins(30)), &narrowed).is_err());
    let gone = vet(&by_break_glass(Ttl::from_mins(30)), &narrowed).unwrap_err();
    assert!(
        gone.to_string().contains("no longer offers break-glass"),
        "{gone}"
    );
    // Neither a rule nor break-glass nor approvals: refused as before.
    let mut nobody = by_rule("on-call", Ttl::from_mins(30));
    nobody.approved_by_rule = None;
    assert!(vet(&nobody, &catalog).is_err());
}
