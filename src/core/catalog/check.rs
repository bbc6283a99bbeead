//! Checking the configuration: every problem found, each with its key path and the fix.
//! A target's checks are in [`target`].

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::{
    AccessConfig, Limits, PodSource, Problem, REASON_MAX_CHARS, Requester, RequesterConfig,
    SourceSpec,
};
use crate::core::ids::{Namespace, SlackUserId, check_label_key, check_label_value};

mod policy;
mod target;

pub(super) use target::check_target;

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
        max_pending_per_requester: a.max_pending_per_requester,
        max_requests_per_hour: a.max_requests_per_hour,
        max_active_per_requester: a.max_active_per_requester,
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
