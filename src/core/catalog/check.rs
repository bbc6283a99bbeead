//! Checking the configuration: every problem found, each with its key path and the fix.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::{
    AccessConfig, Approvers, Limits, PodSource, PortConfig, PortSpec, Problem, Protocol,
    REASON_MAX_CHARS, Requester, RequesterConfig, SourceSpec, Target, TargetConfig,
};
use crate::core::ids::{
    Namespace, SlackChannelId, SlackGroupId, SlackUserId, TargetName, check_label_key,
    check_label_value,
};
use crate::core::ttl::Ttl;

/// Collects problems; `check` runs a parser and records its error under a path.
#[derive(Default)]
pub(super) struct Problems(pub(super) Vec<Problem>);

impl Problems {
    pub(super) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    fn check<T>(&mut self, path: impl Into<String>, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.add(path, e);
                None
            }
        }
    }
}

pub(super) fn check_access(a: &AccessConfig, p: &mut Problems) -> Limits {
    if a.min_duration > a.max_duration {
        p.add(
            "access.min_duration",
            format!(
                "{} is longer than access.max_duration ({}); lower it",
                a.min_duration, a.max_duration
            ),
        );
    }
    if a.min_duration.as_secs() == 0 {
        p.add("access.min_duration", "must be more than 0s; try `5m`");
    }
    if a.approval_timeout.as_secs() == 0 {
        p.add("access.approval_timeout", "must be more than 0s; try `1h`");
    }
    if a.reason_min_chars > REASON_MAX_CHARS {
        p.add(
            "access.reason_min_chars",
            format!(
                "{} is more than the {REASON_MAX_CHARS}-character maximum reason",
                a.reason_min_chars
            ),
        );
    }
    if !(1..=32).contains(&a.widest_ipv4_prefix) {
        p.add(
            "access.widest_ipv4_prefix",
            format!(
                "{} is not a usable prefix length; use 1 to 32 (default 24)",
                a.widest_ipv4_prefix
            ),
        );
    }
    if !(1..=128).contains(&a.widest_ipv6_prefix) {
        p.add(
            "access.widest_ipv6_prefix",
            format!(
                "{} is not a usable prefix length; use 1 to 128 (default 64)",
                a.widest_ipv6_prefix
            ),
        );
    }
    let admins = a
        .admins
        .iter()
        .enumerate()
        .filter_map(|(i, u)| p.check(format!("access.admins[{i}]"), u.parse()))
        .collect();
    Limits {
        min_duration: a.min_duration,
        max_duration: a.max_duration,
        approval_timeout: a.approval_timeout,
        expiry_warning: a.expiry_warning,
        reason_min_chars: a.reason_min_chars,
        admins,
    }
}

fn check_labels(path: &str, labels: &BTreeMap<String, String>, p: &mut Problems) {
    if labels.is_empty() {
        p.add(
            path,
            "is empty, which would select every pod in the namespace; name at least one label (e.g. `{ app = \"postgres\" }`)",
        );
    }
    for (k, v) in labels {
        p.check(format!("{path}.\"{k}\""), check_label_key(k));
        p.check(format!("{path}.\"{k}\""), check_label_value(v));
    }
}

fn check_port(path: &str, port: &PortConfig, p: &mut Problems) -> Option<PortSpec> {
    let as_port = |n: i64| u16::try_from(n).ok().filter(|n| *n >= 1);
    let start = as_port(port.port);
    if start.is_none() {
        p.add(
            format!("{path}.port"),
            format!("{} is not a port (1-65535)", port.port),
        );
    }
    let end = match port.end_port {
        None => Some(None),
        Some(e) => {
            match as_port(e) {
                Some(e) if start.is_some_and(|s| e > s) => Some(Some(e)),
                Some(_) => {
                    p.add(
                    format!("{path}.end_port"),
                    format!("{e} must be greater than port ({}); leave end_port out for a single port", port.port),
                );
                    None
                }
                None => {
                    p.add(
                        format!("{path}.end_port"),
                        format!("{e} is not a port (1-65535)"),
                    );
                    None
                }
            }
        }
    };
    let protocol = match port.protocol.as_str() {
        "TCP" => Some(Protocol::Tcp),
        "UDP" => Some(Protocol::Udp),
        "SCTP" => Some(Protocol::Sctp),
        other => {
            p.add(
                format!("{path}.protocol"),
                format!("`{other}` is not a protocol; use TCP, UDP or SCTP"),
            );
            None
        }
    };
    Some(PortSpec {
        protocol: protocol?,
        port: start?,
        end_port: end?,
    })
}

pub(super) fn check_target(
    path: &str,
    t: &TargetConfig,
    limits: &Limits,
    p: &mut Problems,
) -> Option<Target> {
    let name = p.check(format!("{path}.name"), t.name.parse::<TargetName>());
    let namespace = p.check(
        format!("{path}.namespace"),
        t.namespace.parse::<Namespace>(),
    );
    check_labels(&format!("{path}.pod_selector"), &t.pod_selector, p);
    if t.ports.is_empty() {
        p.add(
            format!("{path}.ports"),
            "is empty; list at least one port, e.g. `[{ port = 5432 }]`",
        );
    }
    let ports: Vec<Option<PortSpec>> = t
        .ports
        .iter()
        .enumerate()
        .map(|(i, port)| check_port(&format!("{path}.ports[{i}]"), port, p))
        .collect();
    let default_duration = p.check(
        format!("{path}.default_duration"),
        t.default_duration.parse::<Ttl>(),
    );
    let max_duration = p.check(
        format!("{path}.max_duration"),
        t.max_duration.parse::<Ttl>(),
    );
    if let (Some(d), Some(m)) = (default_duration, max_duration) {
        if d > m {
            p.add(
                format!("{path}.default_duration"),
                format!("{d} is longer than max_duration ({m}); lower it or raise max_duration"),
            );
        }
        if d < limits.min_duration {
            p.add(
                format!("{path}.default_duration"),
                format!(
                    "{d} is shorter than access.min_duration ({})",
                    limits.min_duration
                ),
            );
        }
        if m > limits.max_duration {
            p.add(
                format!("{path}.max_duration"),
                format!(
                    "{m} is longer than the global cap access.max_duration ({}); lower it or raise the cap",
                    limits.max_duration
                ),
            );
        }
    }
    let mut approvers = Approvers::default();
    if t.approvers.is_empty() {
        p.add(
            format!("{path}.approvers"),
            "is empty; list Slack user ids (`U…`) or user-group ids (`S…`) who may approve",
        );
    }
    for (i, a) in t.approvers.iter().enumerate() {
        let at = format!("{path}.approvers[{i}]");
        if a.starts_with('S') {
            approvers
                .groups
                .extend(p.check(at, a.parse::<SlackGroupId>()));
        } else {
            let user = a
                .parse::<SlackUserId>()
                .map_err(|e| format!("{e}; user groups look like `S0614TZR7`"));
            approvers.users.extend(p.check(at, user));
        }
    }
    let channel = p.check(
        format!("{path}.approval_channel"),
        t.approval_channel.parse::<SlackChannelId>(),
    );
    let required = u32::try_from(t.approvals_required).ok().filter(|n| *n >= 1);
    match required {
        None => p.add(
            format!("{path}.approvals_required"),
            format!("{} is not a quorum; use 1 or more", t.approvals_required),
        ),
        // With only named users the quorum is checkable now; a group's size is not.
        Some(n)
            if approvers.groups.is_empty()
                && !approvers.users.is_empty()
                && n as usize > approvers.users.len() =>
        {
            p.add(
                format!("{path}.approvals_required"),
                format!(
                    "{n} approvals can never be met by {} approver(s); add approvers or lower it",
                    approvers.users.len()
                ),
            )
        }
        Some(_) => {}
    }
    let ports: Option<Vec<PortSpec>> = ports.into_iter().collect();
    Some(Target {
        name: name?,
        description: t.description.trim().to_owned(),
        namespace: namespace?,
        pod_selector: t.pod_selector.clone(),
        ports: ports?,
        default_duration: default_duration?,
        max_duration: max_duration?,
        approvers,
        approval_channel: channel?,
        approvals_required: required?,
        allow_self_approval: t.allow_self_approval,
    })
}

/// Parses a CIDR or bare address, refusing anything wider than the configured limit.
fn check_cidr(text: &str, access: &AccessConfig) -> Result<IpNet, String> {
    let net: IpNet = match text.parse::<IpNet>() {
        Ok(n) => n,
        Err(_) => match text.parse::<IpAddr>() {
            Ok(a) => IpNet::from(a),
            Err(_) => {
                return Err(format!(
                    "`{text}` is not an IP address or CIDR; write e.g. `10.8.0.14` or `10.8.1.0/28`"
                ));
            }
        },
    };
    if net.trunc() != net {
        return Err(format!(
            "`{text}` has host bits set; did you mean `{}`?",
            net.trunc()
        ));
    }
    let widest = match net {
        IpNet::V4(_) => access.widest_ipv4_prefix,
        IpNet::V6(_) => access.widest_ipv6_prefix,
    };
    if net.prefix_len() == 0 {
        return Err(format!(
            "`{text}` is the whole internet; jitbot never opens it. Name the person's own address or a small range"
        ));
    }
    if net.prefix_len() < widest {
        return Err(format!(
            "`{text}` is wider than /{widest}, the widest allowed (access.widest_ipv{}_prefix); use a narrower range",
            if net.addr().is_ipv4() { 4 } else { 6 }
        ));
    }
    Ok(net)
}

pub(super) fn check_requester(
    path: &str,
    r: &RequesterConfig,
    access: &AccessConfig,
    p: &mut Problems,
) -> Option<Requester> {
    let user = p.check(
        format!("{path}.slack_user"),
        r.slack_user.parse::<SlackUserId>(),
    );
    let s = &r.source;
    let kinds = usize::from(!s.addresses.is_empty())
        + usize::from(s.range.is_some())
        + usize::from(s.pod.is_some());
    let spath = format!("{path}.source");
    if kinds != 1 {
        p.add(
            spath,
            "set exactly one of `addresses` (fixed hosts), `range` (pick one per request) or `pod` (a bastion pod)",
        );
        return None;
    }
    let source = if let Some(range) = &s.range {
        SourceSpec::Range(p.check(format!("{spath}.range"), check_cidr(range, access))?)
    } else if let Some(pod) = &s.pod {
        let namespace = p.check(
            format!("{spath}.pod.namespace"),
            pod.namespace.parse::<Namespace>(),
        );
        check_labels(&format!("{spath}.pod.labels"), &pod.labels, p);
        SourceSpec::Pod(PodSource {
            namespace: namespace?,
            labels: pod.labels.clone(),
        })
    } else {
        let mut list = Vec::new();
        for (i, a) in s.addresses.iter().enumerate() {
            let at = format!("{spath}.addresses[{i}]");
            let host = check_cidr(a, access).and_then(|net| {
                if net.prefix_len() == net.max_prefix_len() {
                    Ok(net)
                } else {
                    Err(format!(
                        "`{a}` is a range; `addresses` holds single hosts (/32 or /128). Use `range` to let the person pick one address"
                    ))
                }
            });
            list.extend(p.check(at, host));
        }
        if list.len() != s.addresses.len() {
            return None;
        }
        SourceSpec::Addresses(list)
    };
    Some(Requester {
        user: user?,
        name: r.name.trim().to_owned(),
        source,
    })
}
