//! The access catalog: what can be requested (targets), where each person's traffic
//! comes from (requesters and their sources), and the limits that bound every request.
//!
//! Configuration arrives as loosely typed `*Config` structs (so that one bad value does
//! not hide the next), and [`Catalog::build`] turns them into checked types, reporting
//! every problem at once with its key path and the fix. Nothing here reads files.

mod check;
mod config;
#[doc(hidden)] // test data for tests and benches, not an API
pub mod fixtures;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::core::ids::{Namespace, SlackChannelId, SlackUserId, TargetName};
use crate::core::policy::{AutoRule, BreakGlass, People, ReasonRule};
use crate::core::ttl::Ttl;
use check::{Problems, check_access, check_requester, check_target};
pub use config::{
    AccessConfig, AutoApproveConfig, BreakGlassConfig, HoursConfig, PodSourceConfig, PortConfig,
    RequesterConfig, SourceConfig, TargetConfig,
};

/// Longest reason accepted, in characters, whatever the configuration says.
pub const REASON_MAX_CHARS: usize = 500;

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
pub type Approvers = People;

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
    /// Who may request it; empty: every catalog requester.
    pub requesters: People,
    /// What every reason must match, if anything.
    pub reason_rule: Option<ReasonRule>,
    /// Rules that approve a request at once, first match wins.
    pub auto_approve: Vec<AutoRule>,
    pub break_glass: Option<BreakGlass>,
    /// Most grants active at once; 0: no cap.
    pub max_active_grants: u32,
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
    /// Most of one person's requests waiting for approval at once; 0: no cap.
    pub max_pending_per_requester: u32,
    /// Most requests one person may make in an hour; 0: no cap.
    pub max_requests_per_hour: u32,
    /// Most grants one person may hold at once; 0: no cap.
    pub max_active_per_requester: u32,
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

#[cfg(test)]
mod tests;
