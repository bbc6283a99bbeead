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
    /// Most grants one person may hold at once, over every target; 0: no cap.
    pub max_active_per_requester: u32,
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
            max_active_per_requester: 0,
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
    /// Who may request this target: Slack user ids and user-group ids. Empty: every
    /// catalog requester.
    #[serde(default)]
    pub requesters: Vec<String>,
    /// A regular expression every reason must match (e.g. a ticket id); empty: none.
    #[serde(default)]
    pub reason_pattern: String,
    /// What a requester is told when their reason does not match `reason_pattern`.
    #[serde(default)]
    pub reason_hint: String,
    /// Rules under which a request is approved at once, without a click.
    #[serde(default)]
    pub auto_approve: Vec<AutoApproveConfig>,
    /// Self-service access in an emergency (`/jit breakglass`), reviewed afterwards.
    #[serde(default)]
    pub break_glass: Option<BreakGlassConfig>,
    /// Most grants of this target active at once; 0: no cap.
    #[serde(default)]
    pub max_active_grants: u32,
}

/// One auto-approval rule of a target: who, for how long at most, and when.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct AutoApproveConfig {
    /// Named in the audit log and on the card: "approved by rule <name>".
    pub name: String,
    /// Slack user ids and user-group ids (an on-call rotation synced to a group).
    pub who: Vec<String>,
    /// Longest grant the rule approves; at most the target's `max_duration`.
    pub max_duration: String,
    /// When the rule applies; absent: at any time.
    #[serde(default)]
    pub hours: Option<HoursConfig>,
}

/// A weekly window in one time zone: `days = "Mon-Fri"`, `from = "09:00"`,
/// `to = "18:00"`, `tz = "Europe/Berlin"`. A window whose `to` is not after its
/// `from` runs past midnight into the next day.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct HoursConfig {
    #[serde(default = "every_day")]
    pub days: String,
    pub from: String,
    pub to: String,
    pub tz: String,
}

fn every_day() -> String {
    "Mon-Sun".to_owned()
}

/// `break_glass = { max_duration = "1h", review_within = "24h" }`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct BreakGlassConfig {
    /// Longest break-glass grant; at most the target's `max_duration`.
    pub max_duration: String,
    /// An approver should acknowledge a use within this; each time it passes
    /// unacknowledged, the use is announced again in the audit channel.
    #[serde(default = "one_day")]
    pub review_within: String,
}

fn one_day() -> String {
    "24h".to_owned()
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
