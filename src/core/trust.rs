//! Whether a stored request may still touch the cluster. The store is not trusted
//! with what a grant opens: before any apply (activation, an extension, the
//! reconciler restoring an edited policy) the request as read back is held against
//! the *current* catalog for its requester and target, and it must ask for the same
//! or less than the catalog would give now. A record that asks for more (a hand edit,
//! a restored backup from before the catalog was narrowed) is never applied; the app
//! deletes its policy, ends the request and raises a `record_rejected` alert.
//!
//! "The same or less": the same namespace; a pod selector with at least the
//! catalog's labels (more labels select fewer pods); ports each inside one of the
//! catalog's (no ports at all opens every port, so only a catalog without ports
//! allows it); a source inside the requester's (their fixed addresses, their range,
//! their pods); a duration within the target's longest grant; at least the approvals
//! the target needs, and self-approval only where the target allows it.

use std::collections::BTreeMap;

use ipnet::IpNet;

use super::catalog::{Catalog, PortSpec, Source, SourceSpec, Target};
use super::request::{AccessRequest, State};

/// Why a stored request may not be applied; `Display` is the audit alert's detail.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the stored request does not match the catalog: {0}")]
pub struct Untrusted(pub String);

/// Checks `req` against `catalog` as it is now (see the module docs).
pub fn vet(req: &AccessRequest, catalog: &Catalog) -> Result<(), Untrusted> {
    let refuse = |why: String| Err(Untrusted(why));
    let Some(target) = catalog.target(req.target.as_str()) else {
        return refuse(format!("target {} is no longer in the catalog", req.target));
    };
    let Some(requester) = catalog.requester(&req.requester) else {
        return refuse(format!("{} is no longer a requester", req.requester));
    };
    let scope = &req.scope;
    if scope.namespace != target.namespace {
        return refuse(format!(
            "namespace {} instead of {}",
            scope.namespace, target.namespace
        ));
    }
    if !narrower_selector(&scope.pod_selector, &target.pod_selector) {
        return refuse("a pod selector wider than the target's".to_owned());
    }
    if !narrower_ports(&scope.ports, &target.ports) {
        return refuse("ports the target does not list".to_owned());
    }
    if !narrower_source(&req.source, &requester.source) {
        return refuse(format!(
            "source {} is not within the requester's",
            req.source
        ));
    }
    if req.duration > target.max_duration || scope.max_duration > target.max_duration {
        return refuse(format!(
            "a duration beyond the target's longest grant ({})",
            target.max_duration
        ));
    }
    if scope.approvals_required < target.approvals_required
        || (scope.allow_self_approval && !target.allow_self_approval)
    {
        return refuse("weaker approval rules than the target's".to_owned());
    }
    let decided = matches!(req.state, State::Approved | State::Active);
    if decided && let Some(why) = not_granted_by_policy(req, target) {
        return refuse(why);
    }
    let by_policy = req.approved_by_rule.is_some() || req.break_glass.is_some();
    if decided
        && !by_policy
        && !approved_enough(req, target.approvals_required, target.allow_self_approval)
    {
        return refuse(format!(
            "{} approval(s) recorded where {} are needed",
            req.approvals.len(),
            target.approvals_required
        ));
    }
    Ok(())
}

/// Every label the catalog selects on, with the same value.
fn narrower_selector(
    stored: &BTreeMap<String, String>,
    catalog: &BTreeMap<String, String>,
) -> bool {
    catalog.iter().all(|(k, v)| stored.get(k) == Some(v))
}

/// Each stored port inside one catalog port of the same protocol; none at all (every
/// port) only where the catalog lists none.
fn narrower_ports(stored: &[PortSpec], catalog: &[PortSpec]) -> bool {
    if stored.is_empty() {
        return catalog.is_empty();
    }
    let span = |p: &PortSpec| (p.port, p.end_port.unwrap_or(p.port));
    stored.iter().all(|s| {
        let (lo, hi) = span(s);
        lo <= hi
            && catalog.iter().any(|c| {
                let (clo, chi) = span(c);
                c.protocol == s.protocol && clo <= lo && hi <= chi
            })
    })
}

/// The stored source inside what the requester's catalog entry resolves to.
fn narrower_source(stored: &Source, spec: &SourceSpec) -> bool {
    match (stored, spec) {
        (Source::Addresses { addresses }, SourceSpec::Addresses(allowed)) => {
            !addresses.is_empty() && addresses.iter().all(|a| within_any(a, allowed))
        }
        (Source::Addresses { addresses }, SourceSpec::Range(range)) => {
            !addresses.is_empty() && addresses.iter().all(|a| range.contains(a))
        }
        (Source::Pod(pod), SourceSpec::Pod(allowed)) => {
            pod.namespace == allowed.namespace && narrower_selector(&pod.labels, &allowed.labels)
        }
        _ => false,
    }
}

fn within_any(a: &IpNet, allowed: &[IpNet]) -> bool {
    allowed.iter().any(|n| n.contains(a))
}

/// Enough distinct approvers, none of them the requester unless self-approval is
/// allowed.
/// A request approved by a rule or taken by break-glass, where the target no longer
/// has that rule or break-glass, or no longer for this long.
fn not_granted_by_policy(req: &AccessRequest, target: &Target) -> Option<String> {
    if let Some(name) = &req.approved_by_rule {
        return match target.auto_approve.iter().find(|r| &r.name == name) {
            None => Some(format!(
                "auto-approval rule `{name}` is no longer in the catalog"
            )),
            Some(rule) if req.duration > rule.max_duration => Some(format!(
                "a duration beyond rule `{name}`'s longest grant ({})",
                rule.max_duration
            )),
            Some(_) => None,
        };
    }
    if req.break_glass.is_some() {
        return match target.break_glass {
            None => Some("the target no longer offers break-glass".to_owned()),
            Some(bg) if req.duration > bg.max_duration => Some(format!(
                "a duration beyond the target's longest break-glass grant ({})",
                bg.max_duration
            )),
            Some(_) => None,
        };
    }
    None
}

fn approved_enough(req: &AccessRequest, required: u32, self_ok: bool) -> bool {
    let mut by: Vec<_> = req.approvals.iter().map(|a| &a.by).collect();
    by.sort();
    by.dedup();
    let self_approved = by.contains(&&req.requester);
    by.len() >= required as usize && (self_ok || !self_approved)
}

#[cfg(test)]
#[path = "trust_tests.rs"]
mod tests;
