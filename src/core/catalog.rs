//! The access catalog: what can be requested (targets), where each person's traffic
//! comes from (requesters and their sources), and the limits that bound every request.
//!
//! Configuration arrives as loosely typed `*Config` structs (so that one bad value does
//! not hide the next), and [`Catalog::build`] turns them into checked types, reporting
//! every problem at once with its key path and the fix. Nothing here reads files.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::ids::{
    Namespace, SlackChannelId, SlackGroupId, SlackUserId, TargetName, check_label_key,
    check_label_value,
};
use super::ttl::Ttl;

/// Longest reason accepted, in characters, whatever the configuration says.
pub const REASON_MAX_CHARS: usize = 500;

/// `[access]`: limits that apply to every target and request.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct AccessConfig {
    /// Shortest duration anyone may request.
    pub min_duration: Ttl,
    /// Global cap: no target's `max_duration` may exceed it.
    pub max_duration: Ttl,
    /// How long a request waits for approval before it lapses.
    pub approval_timeout: Ttl,
    /// How long before expiry the requester is warned (with a "Revoke now" button).
    pub expiry_warning: Ttl,
    /// Fewest characters a reason must have.
    pub reason_min_chars: usize,
    /// Widest IPv4 prefix a source may name (24 means /24 or narrower).
    pub widest_ipv4_prefix: u8,
    /// Widest IPv6 prefix a source may name.
    pub widest_ipv6_prefix: u8,
    /// Slack users who may revoke any grant.
    pub admins: Vec<String>,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            min_duration: Ttl::from_mins(5),
            max_duration: Ttl::from_hours(12),
            approval_timeout: Ttl::from_hours(1),
            expiry_warning: Ttl::from_mins(5),
            reason_min_chars: 10,
            widest_ipv4_prefix: 24,
            widest_ipv6_prefix: 64,
            admins: Vec::new(),
        }
    }
}

/// `[[targets]]`: one requestable destination, as written in the config file.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]

pub struct TargetConfig {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub namespace: String,
    pub pod_selector: BTreeMap<String, String>,
    pub ports: Vec<PortConfig>,
    pub default_duration: String,
    pub max_duration: String,
    pub approvers: Vec<String>,
    pub approval_channel: String,
    #[serde(default = "one")]
    pub approvals_required: i64,
    #[serde(default)]
    pub allow_self_approval: bool,
}

fn one() -> i64 {
    1
}

/// One port (or port range, with `end_port`) of a target.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]

pub struct PortConfig {
    pub port: i64,
    #[serde(default)]
    pub end_port: Option<i64>,
    #[serde(default = "tcp")]
    pub protocol: String,
}

fn tcp() -> String {
    "TCP".to_owned()
}

/// `[[requesters]]`: a person who may request access, and where their traffic comes from.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]

pub struct RequesterConfig {
    pub slack_user: String,
    #[serde(default)]
    pub name: String,
    pub source: SourceConfig,
}

/// Exactly one of the three kinds of source.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]

pub struct SourceConfig {
    /// Fixed host addresses (`10.8.0.14` or `10.8.0.14/32`, `fd00::14/128`).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// A range the person picks one address from, per request (`from <address>`).
    #[serde(default)]
    pub range: Option<String>,
    /// A bastion or debug pod.
    #[serde(default)]
    pub pod: Option<PodSourceConfig>,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]

pub struct PodSourceConfig {
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
}

/// A layer-4 protocol NetworkPolicy knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "SCTP")]
    Sctp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

/// A checked port or port range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortSpec {
    pub protocol: Protocol,
    pub port: u16,
    /// Last port of a range; absent for a single port.
    pub end_port: Option<u16>,
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.end_port {
            Some(end) => write!(f, "{}-{}/{}", self.port, end, self.protocol.as_str()),
            None => write!(f, "{}/{}", self.port, self.protocol.as_str()),
        }
    }
}

/// Who may approve: Slack users directly, and members of Slack user groups.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Approvers {
    pub users: Vec<SlackUserId>,
    pub groups: Vec<SlackGroupId>,
}

/// A checked catalog target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub name: TargetName,
    pub description: String,
    pub namespace: Namespace,
    pub pod_selector: BTreeMap<String, String>,
    pub ports: Vec<PortSpec>,
    pub default_duration: Ttl,
    pub max_duration: Ttl,
    pub approvers: Approvers,
    pub approval_channel: SlackChannelId,
    pub approvals_required: u32,
    pub allow_self_approval: bool,
}

/// Where one requester's traffic comes from, as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSpec {
    /// Fixed host addresses (/32 or /128), all opened by every grant.
    Addresses(Vec<IpNet>),
    /// A range; each request names one address in it.
    Range(IpNet),
    /// Pods selected by labels in a namespace.
    Pod(PodSource),
}

/// Pods that traffic comes from: a bastion or debug pod.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PodSource {
    pub namespace: Namespace,
    pub labels: BTreeMap<String, String>,
}

/// The source of one grant: what the policy lets in.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// Host addresses, each a /32 or /128.
    Addresses {
        addresses: Vec<IpNet>,
    },
    Pod(PodSource),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Addresses { addresses } => {
                let list: Vec<String> = addresses.iter().map(|a| a.to_string()).collect();
                f.write_str(&list.join(", "))
            }
            Source::Pod(pod) => {
                let labels: Vec<String> =
                    pod.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(
                    f,
                    "pods {} in namespace {}",
                    labels.join(","),
                    pod.namespace
                )
            }
        }
    }
}

/// A checked requester.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requester {
    pub user: SlackUserId,
    pub name: String,
    pub source: SourceSpec,
}

/// Why a requester's source could not be resolved for one request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error(
        "your source is a range ({0}): add `from <address>` after the duration to pick your address"
    )]
    AddressRequired(IpNet),
    #[error("`{address}` is not inside your range {range}")]
    OutsideRange { address: IpAddr, range: IpNet },
    #[error("your source is fixed ({0}); leave out `from <address>`")]
    AddressNotAllowed(String),
}

impl Requester {
    /// The source of one grant for this person, given the address they picked (if any).
    pub fn resolve_source(&self, picked: Option<IpAddr>) -> Result<Source, SourceError> {
        match (&self.source, picked) {
            (SourceSpec::Addresses(list), None) => Ok(Source::Addresses {
                addresses: list.clone(),
            }),
            (SourceSpec::Range(range), Some(addr)) if range.contains(&addr) => {
                Ok(Source::Addresses {
                    addresses: vec![IpNet::from(addr)],
                })
            }
            (SourceSpec::Range(range), Some(addr)) => Err(SourceError::OutsideRange {
                address: addr,
                range: *range,
            }),
            (SourceSpec::Range(range), None) => Err(SourceError::AddressRequired(*range)),
            (SourceSpec::Addresses(list), Some(_)) => {
                let shown: Vec<String> = list.iter().map(|a| a.to_string()).collect();
                Err(SourceError::AddressNotAllowed(shown.join(", ")))
            }
            (SourceSpec::Pod(pod), None) => Ok(Source::Pod(pod.clone())),
            (SourceSpec::Pod(pod), Some(_)) => Err(SourceError::AddressNotAllowed(format!(
                "pods in namespace {}",
                pod.namespace
            ))),
        }
    }
}

/// Checked limits from `[access]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    pub min_duration: Ttl,
    pub max_duration: Ttl,
    pub approval_timeout: Ttl,
    pub expiry_warning: Ttl,
    pub reason_min_chars: usize,
    pub admins: Vec<SlackUserId>,
}

/// The checked catalog: the only place namespaces, selectors, ports and sources come
/// from (never from what a person types).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Catalog {
    targets: Vec<Target>,
    requesters: BTreeMap<SlackUserId, Requester>,
    pub limits: Limits,
}

/// One thing wrong in the configuration: where, and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Key path, as in `targets[1].ports[0].port`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl Catalog {
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    pub fn target(&self, name: &str) -> Option<&Target> {
        self.targets.iter().find(|t| t.name.as_str() == name)
    }

    pub fn requester(&self, user: &SlackUserId) -> Option<&Requester> {
        self.requesters.get(user)
    }

    pub fn requesters(&self) -> impl Iterator<Item = &Requester> {
        self.requesters.values()
    }

    pub fn is_admin(&self, user: &SlackUserId) -> bool {
        self.limits.admins.contains(user)
    }

    /// Namespaces the bot writes policies in: every target's, and every pod source's.
    pub fn namespaces(&self) -> Vec<Namespace> {
        let mut out: Vec<Namespace> = self.targets.iter().map(|t| t.namespace.clone()).collect();
        for r in self.requesters.values() {
            if let SourceSpec::Pod(pod) = &r.source {
                out.push(pod.namespace.clone());
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Checks the whole configuration and returns every problem found, not just the first.
    pub fn build(
        access: &AccessConfig,
        targets: &[TargetConfig],
        requesters: &[RequesterConfig],
    ) -> Result<Catalog, Vec<Problem>> {
        let mut p = Problems::default();
        let limits = check_access(access, &mut p);
        let mut checked_targets = Vec::new();
        for (i, t) in targets.iter().enumerate() {
            let path = format!("targets[{i}]");
            if let Some(target) = check_target(&path, t, &limits, &mut p) {
                if checked_targets
                    .iter()
                    .any(|o: &Target| o.name == target.name)
                {
                    p.add(
                        format!("{path}.name"),
                        format!(
                            "`{}` is used by an earlier target; names must be unique",
                            t.name
                        ),
                    );
                }
                checked_targets.push(target);
            }
        }
        let mut checked_requesters = BTreeMap::new();
        for (i, r) in requesters.iter().enumerate() {
            let path = format!("requesters[{i}]");
            if let Some(req) = check_requester(&path, r, access, &mut p) {
                if checked_requesters.contains_key(&req.user) {
                    p.add(
                        format!("{path}.slack_user"),
                        format!(
                            "`{}` appears in an earlier requester; list each person once",
                            req.user
                        ),
                    );
                }
                checked_requesters.insert(req.user.clone(), req);
            }
        }
        if p.0.is_empty() {
            Ok(Catalog {
                targets: checked_targets,
                requesters: checked_requesters,
                limits,
            })
        } else {
            Err(p.0)
        }
    }
}

/// Collects problems; `check` runs a parser and records its error under a path.
#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
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

fn check_access(a: &AccessConfig, p: &mut Problems) -> Limits {
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

fn check_target(path: &str, t: &TargetConfig, limits: &Limits, p: &mut Problems) -> Option<Target> {
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

fn check_requester(
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

#[cfg(test)]
#[path = "catalog_tests.rs"]
mod tests;
