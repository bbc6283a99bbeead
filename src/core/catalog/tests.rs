use super::fixtures::{address_config, requester_config, target_config};
use super::*;

fn range(r: &str) -> SourceConfig {
    SourceConfig {
        range: Some(r.to_owned()),
        ..SourceConfig::default()
    }
}

fn problems(targets: &[TargetConfig], requesters: &[RequesterConfig]) -> Vec<String> {
    Catalog::build(&AccessConfig::default(), targets, requesters)
        .map(|_| Vec::new())
        .unwrap_or_else(|ps| ps.iter().map(Problem::to_string).collect())
}

#[test]
fn a_good_catalog_builds() {
    let c = Catalog::build(
        &AccessConfig::default(),
        &[target_config("payments-db")],
        &[requester_config(
            "U0ALICE001",
            address_config(&["10.8.0.14", "fd00::14/128"]),
        )],
    )
    .unwrap();
    let t = c.target("payments-db").unwrap();
    assert_eq!(t.ports[0].to_string(), "5432/TCP");
    assert_eq!(t.default_duration, Ttl::from_mins(30));
    let alice = c.requester(&"U0ALICE001".parse().unwrap()).unwrap();
    assert_eq!(
        alice.resolve_source(None).unwrap().to_string(),
        "10.8.0.14/32, fd00::14/128"
    );
    assert_eq!(c.namespaces().len(), 1);
}

#[test]
fn every_problem_is_reported_at_once_with_its_path() {
    let mut bad = target_config("Payments_DB");
    bad.namespace = "-payments".to_owned();
    bad.pod_selector = BTreeMap::new();
    bad.ports = vec![
        PortConfig {
            port: 70000,
            end_port: None,
            protocol: "TCP".to_owned(),
        },
        PortConfig {
            port: 80,
            end_port: Some(79),
            protocol: "ICMP".to_owned(),
        },
    ];
    bad.default_duration = "3h".to_owned();
    bad.max_duration = "13h".to_owned();
    bad.approvers = vec![];
    bad.approval_channel = "#db".to_owned();
    bad.approvals_required = 0;
    let found = problems(&[bad], &[]);
    let expect = [
        "targets[0].name: `Payments_DB` is not a valid name",
        "targets[0].namespace: `-payments` is not a valid name",
        "targets[0].pod_selector: is empty",
        "targets[0].ports[0].port: 70000 is not a port (1-65535)",
        "targets[0].ports[1].end_port: 79 must be greater than port",
        "targets[0].ports[1].protocol: `ICMP` is not a protocol",
        "targets[0].max_duration: 13h is longer than the global cap",
        "targets[0].approvers: is empty",
        "targets[0].approval_channel: `#db` is not a Slack channel id",
        "targets[0].approvals_required: 0 is not a quorum",
    ];
    for e in expect {
        assert!(
            found.iter().any(|f| f.starts_with(e)),
            "missing {e:?} in {found:#?}"
        );
    }
    assert_eq!(found.len(), expect.len(), "{found:#?}");
}

#[test]
fn default_longer_than_max_or_shorter_than_min_is_refused() {
    let cases = [
        (
            "3h",
            "2h",
            "targets[0].default_duration: 3h is longer than max_duration (2h)",
        ),
        (
            "1m",
            "2h",
            "targets[0].default_duration: 1m is shorter than access.min_duration (5m)",
        ),
        (
            "30m",
            "soon",
            "targets[0].max_duration: `soon` is not a duration",
        ),
    ];
    for (default_duration, max_duration, expect) in cases {
        let t = TargetConfig {
            default_duration: default_duration.to_owned(),
            max_duration: max_duration.to_owned(),
            ..target_config("a")
        };
        let found = problems(&[t], &[]);
        assert!(found[0].starts_with(expect), "{found:?}");
    }
}

#[test]
fn quorum_must_be_reachable_when_it_can_be_counted() {
    let mut t = target_config("a");
    t.approvals_required = 2;
    let found = problems(&[t.clone()], &[]);
    assert!(
        found[0].contains("2 approvals can never be met by 1 approver"),
        "{found:?}"
    );
    // With a user group the size is unknown here, so it is accepted.
    t.approvers.push("S02DBAS001".to_owned());
    assert!(problems(&[t], &[]).is_empty());
}

#[test]
fn approvers_are_users_or_groups() {
    let mut t = target_config("a");
    t.approvers = vec![
        "U01DBLEAD1".into(),
        "S02DBAS001".into(),
        "alice".into(),
        "Sbad".into(),
    ];
    let found = problems(&[t], &[]);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].starts_with("targets[0].approvers[2]: `alice` is not a Slack user id"));
    assert!(found[1].starts_with("targets[0].approvers[3]: `Sbad` is not a Slack user group id"));
}

#[test]
fn duplicate_names_and_requesters_are_refused() {
    let found = problems(
        &[target_config("a"), target_config("a")],
        &[
            requester_config("U0ALICE001", address_config(&["10.0.0.1"])),
            requester_config("U0ALICE001", address_config(&["10.0.0.2"])),
        ],
    );
    assert!(
        found[0].starts_with("targets[1].name: `a` is used by an earlier target"),
        "{found:?}"
    );
    assert!(
        found[1].starts_with("requesters[1].slack_user"),
        "{found:?}"
    );
}

#[test]
fn labels_follow_kubernetes_rules() {
    let mut t = target_config("a");
    t.pod_selector = BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "postgres".to_owned()),
        ("bad key".to_owned(), "x".to_owned()),
        ("role".to_owned(), "-replica".to_owned()),
    ]);
    let found = problems(&[t], &[]);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0]
            .starts_with("targets[0].pod_selector.\"bad key\": `bad key` is not a valid label key")
    );
    assert!(
        found[1]
            .starts_with("targets[0].pod_selector.\"role\": `-replica` is not a valid label value")
    );
}

#[test]
fn cidrs_are_valid_and_never_too_wide() {
    let cases = [
        (address_config(&["0.0.0.0/0"]), "is the whole internet"),
        (range("::/0"), "is the whole internet"),
        (range("10.0.0.0/16"), "wider than /24"),
        (range("fd00::/48"), "wider than /64"),
        (
            range("10.0.0.1/24"),
            "has host bits set; did you mean `10.0.0.0/24`?",
        ),
        (
            address_config(&["300.1.2.3"]),
            "is not an IP address or CIDR",
        ),
        (
            address_config(&["10.0.0.0/28"]),
            "is a range; `addresses` holds single hosts",
        ),
    ];
    for (source, expect) in cases {
        let found = problems(&[], &[requester_config("U0ALICE001", source.clone())]);
        assert_eq!(found.len(), 1, "{source:?}: {found:?}");
        assert!(found[0].contains(expect), "{source:?}: {found:?}");
    }
    assert!(problems(&[], &[requester_config("U0ALICE001", range("10.8.1.0/24"))]).is_empty());
    assert!(problems(&[], &[requester_config("U0ALICE001", range("fd00:8::/64"))]).is_empty());
}

#[test]
fn the_width_limit_is_configurable() {
    let access = AccessConfig {
        widest_ipv4_prefix: 28,
        ..AccessConfig::default()
    };
    let err = Catalog::build(
        &access,
        &[],
        &[requester_config("U0ALICE001", range("10.8.1.0/24"))],
    )
    .unwrap_err();
    assert!(err[0].message.contains("wider than /28"), "{err:?}");
}

#[test]
fn a_source_has_exactly_one_kind() {
    let mut both = address_config(&["10.0.0.1"]);
    both.range = Some("10.0.1.0/28".to_owned());
    for source in [SourceConfig::default(), both] {
        let found = problems(&[], &[requester_config("U0ALICE001", source)]);
        assert!(
            found[0].starts_with("requesters[0].source: set exactly one of"),
            "{found:?}"
        );
    }
}

#[test]
fn pod_sources_check_namespace_and_labels() {
    let source = SourceConfig {
        pod: Some(PodSourceConfig {
            namespace: "Bastion".to_owned(),
            labels: BTreeMap::new(),
        }),
        ..SourceConfig::default()
    };
    let found = problems(&[], &[requester_config("U0CAROL001", source)]);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].starts_with("requesters[0].source.pod.namespace"));
    assert!(found[1].starts_with("requesters[0].source.pod.labels: is empty"));
}

#[test]
fn sources_resolve_per_request() {
    let c = Catalog::build(
        &AccessConfig::default(),
        &[],
        &[
            requester_config("U0ALICE001", address_config(&["10.8.0.14"])),
            requester_config("U0BOB00001", range("10.8.1.0/28")),
        ],
    )
    .unwrap();
    let alice = c.requester(&"U0ALICE001".parse().unwrap()).unwrap();
    let bob = c.requester(&"U0BOB00001".parse().unwrap()).unwrap();
    let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
    assert_eq!(
        bob.resolve_source(ip("10.8.1.7")).unwrap().to_string(),
        "10.8.1.7/32"
    );
    assert!(matches!(
        bob.resolve_source(None),
        Err(SourceError::AddressRequired(_))
    ));
    assert!(matches!(
        bob.resolve_source(ip("10.8.2.7")),
        Err(SourceError::OutsideRange { .. })
    ));
    assert!(matches!(
        alice.resolve_source(ip("10.8.0.14")),
        Err(SourceError::AddressNotAllowed(_))
    ));
}

#[test]
fn access_limits_are_checked() {
    let access = AccessConfig {
        min_duration: Ttl::from_hours(13),
        widest_ipv4_prefix: 0,
        admins: vec!["nobody".to_owned()],
        ..AccessConfig::default()
    };
    let err = Catalog::build(&access, &[], &[]).unwrap_err();
    let paths: Vec<&str> = err.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "access.min_duration",
            "access.widest_ipv4_prefix",
            "access.admins[0]"
        ]
    );
}
