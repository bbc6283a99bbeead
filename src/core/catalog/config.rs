//! The catalog as written in the configuration file: loosely typed, so that one bad
//! value does not hide the next; [`super::Catalog::build`] checks it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::core::ttl::Ttl;

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
    /// Most requests of one person that may wait for approval at once; 0: no cap.
    pub max_pending_per_requester: u32,
    /// Most requests one person may make in an hour, whatever becomes of them; 0: no cap.
    pub max_requests_per_hour: u32,
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
            max_pending_per_requester: 3,
            max_requests_per_hour: 20,
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
