//! Checking one catalog target: its name, namespace and pods, its ports, durations,
//! approvers and quorum. Each check records every problem it finds and goes on, so
//! one pass reports them all, in the order the target's keys are written.

use super::policy::{check_auto_approve, check_break_glass, check_people, check_reason_rule};
use super::{Problems, check_labels};
use crate::core::catalog::{
    Approvers, Limits, PortConfig, PortSpec, Protocol, Target, TargetConfig,
};
use crate::core::ids::{Namespace, SlackChannelId, TargetName};
use crate::core::ttl::Ttl;

/// Checks one target; `None` when any of its keys has a problem (all are in `p`).
pub(in crate::core::catalog) fn check_target(
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
    let ports = check_ports(path, &t.ports, p);
    let (default_duration, max_duration) = check_durations(path, t, limits, p);
    let approvers = check_approvers(path, &t.approvers, p);
    let channel = p.check(
        format!("{path}.approval_channel"),
        t.approval_channel.parse::<SlackChannelId>(),
    );
    let required = check_quorum(path, t.approvals_required, &approvers, p);
    let requesters = check_people(&format!("{path}.requesters"), &t.requesters, p);
    let reason_rule = check_reason_rule(path, t, p);
    let auto_approve = check_auto_approve(path, t, max_duration, p);
    let break_glass = check_break_glass(path, t, max_duration, p);
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
        requesters,
        reason_rule: reason_rule?,
        auto_approve: auto_approve?,
        break_glass: break_glass?,
        max_active_grants: t.max_active_grants,
    })
}

/// A target's ports: at least one, and every one checked (not only up to the first
/// bad one), so all their problems are reported at once.
fn check_ports(path: &str, ports: &[PortConfig], p: &mut Problems) -> Option<Vec<PortSpec>> {
    if ports.is_empty() {
        p.add(
            format!("{path}.ports"),
            "is empty; list at least one port, e.g. `[{ port = 5432 }]`",
        );
    }
    let checked: Vec<Option<PortSpec>> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| check_port(&format!("{path}.ports[{i}]"), port, p))
        .collect();
    checked.into_iter().collect()
}

/// One port (or range) and its protocol.
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
        Some(e) => match as_port(e) {
            Some(e) if start.is_some_and(|s| e > s) => Some(Some(e)),
            Some(_) => {
                p.add(
                    format!("{path}.end_port"),
                    format!(
                        "{e} must be greater than port ({}); leave end_port out for a single port",
                        port.port
                    ),
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
        },
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

/// A target's default and longest grant, against each other and the global limits.
fn check_durations(
    path: &str,
    t: &TargetConfig,
    limits: &Limits,
    p: &mut Problems,
) -> (Option<Ttl>, Option<Ttl>) {
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
    (default_duration, max_duration)
}

/// A target's approvers: user ids (`U…`) and user-group ids (`S…`). The ones that
/// parse are kept even when others do not, so the quorum can be checked against them.
fn check_approvers(path: &str, approvers: &[String], p: &mut Problems) -> Approvers {
    if approvers.is_empty() {
        p.add(
            format!("{path}.approvers"),
            "is empty; list Slack user ids (`U…`) or user-group ids (`S…`) who may approve",
        );
    }
    check_people(&format!("{path}.approvers"), approvers, p)
}

/// How many approvals a target needs: at least one, and no more than its named
/// approvers can give.
fn check_quorum(
    path: &str,
    approvals_required: i64,
    approvers: &Approvers,
    p: &mut Problems,
) -> Option<u32> {
    let required = u32::try_from(approvals_required).ok().filter(|n| *n >= 1);
    match required {
        None => p.add(
            format!("{path}.approvals_required"),
            format!("{approvals_required} is not a quorum; use 1 or more"),
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
    required
}
