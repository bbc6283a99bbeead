use chrono::{TimeDelta, TimeZone};
use k8s_openapi::api::networking::v1::NetworkPolicyPort;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::*;
use crate::core::catalog::{PodSource, PortSpec, Protocol, Source};
use crate::core::command::Reason;
use crate::core::expiry::Invalid;
use crate::core::ids::RequestId;
use crate::core::netpol::EXPIRES_AT_ANNOTATION;
use crate::core::request::{Approval, NewRequest, Scope};

const CAP: Ttl = Ttl::from_hours(2);

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 14, 10, 0).unwrap()
}

/// When the grants below end: twenty minutes after `now()`.
fn expiry() -> DateTime<Utc> {
    now() + TimeDelta::minutes(20)
}

fn mk_request(source: Source) -> AccessRequest {
    let mut r = AccessRequest::new(
        NewRequest {
            id: RequestId::from_random([9; 10]),
            requester: "U0ALICE001".parse().unwrap(),
            target: "payments-db".parse().unwrap(),
            scope: Scope {
                namespace: "payments".parse().unwrap(),
                pod_selector: BTreeMap::from([("app".to_owned(), "postgres".to_owned())]),
                ports: vec![PortSpec {
                    protocol: Protocol::Tcp,
                    port: 5432,
                    end_port: None,
                }],
                approvals_required: 1,
                allow_self_approval: false,
                max_duration: CAP,
            },
            source,
            duration: Ttl::from_mins(30),
            reason: Reason::new("INC-4411 replica lag", 0).unwrap(),
            approval_timeout: Ttl::from_hours(1),
            expiry_warning: Ttl::from_secs(0),
        },
        now() - TimeDelta::minutes(10),
    );
    r.approvals.push(Approval {
        by: "U01DBLEAD1".parse().unwrap(),
        at: now() - TimeDelta::minutes(10),
    });
    r
}

fn ip_source() -> Source {
    Source::Addresses {
        addresses: vec!["10.8.0.14/32".parse().unwrap()],
    }
}

fn pod_source() -> Source {
    Source::Pod(PodSource {
        namespace: "bastion".parse().unwrap(),
        labels: BTreeMap::from([("app".to_owned(), "bastion".to_owned())]),
    })
}

/// A grant in `state`; the ones that reached Active carry `expiry()`.
fn mk_grant(state: State) -> AccessRequest {
    let mut r = mk_request(ip_source());
    r.state = state;
    if matches!(state, State::Active | State::Expired | State::Revoked) {
        r.activated_at = Some(now() - TimeDelta::minutes(10));
        r.expires_at = Some(expiry());
    }
    r
}

/// The ingress policy jitbot applies for `req`, expiring at `expires_at`.
fn mk_policy(req: &AccessRequest, expires_at: DateTime<Utc>) -> NetworkPolicy {
    netpol::render(req, expires_at).remove(0)
}

fn with_annotation(mut policy: NetworkPolicy, key: &str, value: Option<&str>) -> NetworkPolicy {
    let annotations = policy.metadata.annotations.get_or_insert_default();
    match value {
        Some(v) => annotations.insert(key.to_owned(), v.to_owned()),
        None => annotations.remove(key),
    };
    policy
}

fn removed_because(why: &str) -> Verdict {
    Verdict::Remove(why.to_owned())
}

#[test]
fn a_policy_past_its_expiry_goes_whatever_the_store_says() {
    let grant = mk_grant(State::Active);
    let policy = mk_policy(&grant, now() - TimeDelta::seconds(1));
    let why = "its expires-at has passed";
    assert_eq!(overdue(&policy, now(), CAP).as_deref(), Some(why));
    assert_eq!(
        verdict(&policy, Some(&grant), now(), CAP),
        removed_because(why)
    );
    assert_eq!(verdict(&policy, None, now(), CAP), removed_because(why));
}

#[test]
fn a_policy_due_this_very_instant_is_past_its_expiry() {
    let policy = mk_policy(&mk_grant(State::Active), now());
    assert_eq!(
        overdue(&policy, now(), CAP).as_deref(),
        Some("its expires-at has passed")
    );
}

#[test]
fn a_policy_with_an_expiry_it_cannot_trust_goes_at_once() {
    let grant = mk_grant(State::Active);
    let beyond = now() + CAP.as_delta() + TimeDelta::hours(1);
    for (policy, invalid) in [
        (
            with_annotation(mk_policy(&grant, expiry()), EXPIRES_AT_ANNOTATION, None),
            Invalid::Missing,
        ),
        (
            with_annotation(
                mk_policy(&grant, expiry()),
                EXPIRES_AT_ANNOTATION,
                Some("soon"),
            ),
            Invalid::Unreadable("soon".to_owned()),
        ),
        (
            mk_policy(&grant, beyond),
            Invalid::BeyondCap {
                expires_at: beyond,
                cap: CAP,
            },
        ),
    ] {
        assert_eq!(overdue(&policy, now(), CAP), Some(invalid.to_string()));
        assert_eq!(
            verdict(&policy, Some(&grant), now(), CAP),
            Verdict::Remove(invalid.to_string())
        );
    }
}

#[test]
fn a_current_policy_is_not_overdue() {
    let policy = mk_policy(&mk_grant(State::Active), expiry());
    assert_eq!(overdue(&policy, now(), CAP), None);
}

#[test]
fn a_current_policy_no_request_explains_is_kept_until_its_expiry() {
    let policy = mk_policy(&mk_grant(State::Active), expiry());
    assert_eq!(verdict(&policy, None, now(), CAP), Verdict::KeepUnexplained);
}

#[test]
fn a_current_policy_of_a_request_that_is_not_active_goes() {
    // Every state but the two whose policy belongs in the cluster: a new state is
    // covered without touching this test.
    for state in State::ALL
        .into_iter()
        .filter(|s| !matches!(s, State::Active | State::Approved))
    {
        let grant = mk_grant(state);
        let policy = mk_policy(&grant, expiry());
        assert_eq!(
            verdict(&policy, Some(&grant), now(), CAP),
            removed_because("its request is no longer active"),
            "{state:?}"
        );
    }
}

#[test]
fn an_approved_request_s_policy_is_kept_while_it_is_applied() {
    let grant = mk_grant(State::Approved);
    let policy = mk_policy(&grant, expiry());
    assert_eq!(verdict(&policy, Some(&grant), now(), CAP), Verdict::Keep);
}

#[test]
fn an_active_grant_s_policy_as_approved_is_kept() {
    let grant = mk_grant(State::Active);
    let policy = mk_policy(&grant, expiry());
    assert_eq!(verdict(&policy, Some(&grant), now(), CAP), Verdict::Keep);
}

#[test]
fn what_the_server_or_other_tools_add_is_not_an_edit() {
    let grant = mk_grant(State::Active);
    let mut policy = with_annotation(
        mk_policy(&grant, expiry()),
        "kubectl.kubernetes.io/last-applied-configuration",
        Some("{}"),
    );
    policy
        .metadata
        .labels
        .get_or_insert_default()
        .insert("team".to_owned(), "payments".to_owned());
    policy.metadata.resource_version = Some("4711".to_owned());
    assert_eq!(verdict(&policy, Some(&grant), now(), CAP), Verdict::Keep);
}

#[test]
fn an_edited_spec_label_or_annotation_of_an_active_grant_is_restored() {
    let grant = mk_grant(State::Active);
    let mut wider = mk_policy(&grant, expiry());
    if let Some(spec) = wider.spec.as_mut() {
        for rule in spec.ingress.iter_mut().flatten() {
            rule.ports = Some(vec![NetworkPolicyPort {
                port: Some(IntOrString::Int(22)),
                ..NetworkPolicyPort::default()
            }]);
        }
    }
    let mut relabelled = mk_policy(&grant, expiry());
    relabelled
        .metadata
        .labels
        .get_or_insert_default()
        .insert(netpol::TARGET_LABEL.to_owned(), "orders-db".to_owned());
    let reannotated = with_annotation(
        mk_policy(&grant, expiry()),
        netpol::REASON_ANNOTATION,
        Some("something else"),
    );
    for policy in [wider, relabelled, reannotated] {
        assert_eq!(
            verdict(&policy, Some(&grant), now(), CAP),
            Verdict::Restore,
            "{policy:?}"
        );
    }
}

#[test]
fn an_active_grant_with_all_its_policies_listed_misses_none() {
    let grant = mk_grant(State::Active);
    let refs = netpol::policy_refs(&grant);
    let present: HashSet<PolicyRef> = refs.iter().cloned().collect();
    assert_eq!(missing(&grant, &present, now()), Vec::<PolicyRef>::new());
}

#[test]
fn an_active_grant_misses_each_policy_the_cluster_did_not_list() {
    let mut grant = mk_request(pod_source());
    grant.state = State::Active;
    grant.activated_at = Some(now() - TimeDelta::minutes(10));
    grant.expires_at = Some(expiry());
    let refs = netpol::policy_refs(&grant);
    assert_eq!(refs.len(), 2, "a pod source has an egress companion");
    assert_eq!(missing(&grant, &HashSet::new(), now()), refs);
    let present: HashSet<PolicyRef> = HashSet::from([refs[0].clone()]);
    assert_eq!(missing(&grant, &present, now()), vec![refs[1].clone()]);
}

#[test]
fn a_grant_already_due_misses_nothing_the_sweep_ends_it() {
    let mut grant = mk_grant(State::Active);
    for expires_at in [None, Some(now()), Some(now() - TimeDelta::minutes(1))] {
        grant.expires_at = expires_at;
        assert_eq!(
            missing(&grant, &HashSet::new(), now()),
            Vec::<PolicyRef>::new()
        );
    }
}

#[test]
fn a_grant_activated_moments_before_the_listing_misses_nothing_yet() {
    let mut grant = mk_grant(State::Active);
    for ago in [TimeDelta::zero(), TimeDelta::seconds(119)] {
        grant.activated_at = Some(now() - ago);
        assert_eq!(
            missing(&grant, &HashSet::new(), now()),
            Vec::<PolicyRef>::new(),
            "activated {ago} before the listing"
        );
    }
    grant.activated_at = Some(now() - TimeDelta::seconds(120));
    assert_eq!(missing(&grant, &HashSet::new(), now()).len(), 1);
}
