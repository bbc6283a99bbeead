//! What the reconciler does with each of jitbot's live policies, decided from the
//! policy, its request as the store has it, the time and the global cap
//! (`access.max_duration`). Pure: the listing, the deletes, the re-applies and the
//! audit live in `app::reconcile`, which also keeps the order that matters (policies
//! whose own annotations say access is over go before the store is asked anything).

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use k8s_openapi::api::networking::v1::NetworkPolicy;

use super::expiry::{self, Ending};
use super::netpol;
use super::ports::PolicyRef;
use super::request::{APPLY_RETRY_AFTER, AccessRequest, State};
use super::ttl::Ttl;

/// What to do with one live policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Delete it, for this reason (which the audit detail and the log carry).
    Remove(String),
    /// It is what an Active (or being-applied) grant should have: leave it.
    Keep,
    /// No request explains it: leave it until its expires-at, when it goes anyway.
    KeepUnexplained,
    /// An Active grant's policy that someone edited: put back what was approved.
    Restore,
}

/// What the policy alone says: `Some(why)` when its access is over or its expiry
/// cannot be trusted. Needs nothing from the store, so a store outage cannot keep
/// such a policy in place.
pub fn overdue(policy: &NetworkPolicy, now: DateTime<Utc>, cap: Ttl) -> Option<String> {
    match expiry::ending(policy.metadata.annotations.as_ref(), now, cap) {
        Ending::Expired { expires_at } if expires_at > now => None,
        Ending::Expired { .. } => Some("its expires-at has passed".to_owned()),
        Ending::Invalid(why) => Some(why.to_string()),
    }
}

/// The decision for one live policy, given the request the store has for it (`None`:
/// no request of that id, or no readable id on the policy). Approved counts as
/// current: its policy is being applied right now.
pub fn verdict(
    policy: &NetworkPolicy,
    request: Option<&AccessRequest>,
    now: DateTime<Utc>,
    cap: Ttl,
) -> Verdict {
    if let Some(why) = overdue(policy, now, cap) {
        return Verdict::Remove(why);
    }
    match request {
        None => Verdict::KeepUnexplained,
        Some(r) if !matches!(r.state, State::Active | State::Approved) => {
            Verdict::Remove("its request is no longer active".to_owned())
        }
        Some(r) if r.state == State::Active && edited(policy, r) => Verdict::Restore,
        Some(_) => Verdict::Keep,
    }
}

/// The policies of an Active grant that are not among `present` (what the cluster
/// listed at `now`): policies removed outside jitbot, whose grant then ends (it is
/// never re-created, so a rolled-back store cannot bring a revoked grant back). None
/// for a grant already due (the sweep expires it), nor for one activated less than
/// [`APPLY_RETRY_AFTER`] before `now`, whose apply may still have been on its way
/// when the listing was made; the next pass looks again.
pub fn missing(
    request: &AccessRequest,
    present: &HashSet<PolicyRef>,
    now: DateTime<Utc>,
) -> Vec<PolicyRef> {
    if request.expires_at.is_none_or(|at| at <= now) {
        return Vec::new();
    }
    if request
        .activated_at
        .is_none_or(|at| at + APPLY_RETRY_AFTER.as_delta() > now)
    {
        return Vec::new();
    }
    netpol::policy_refs(request)
        .into_iter()
        .filter(|p| !present.contains(p))
        .collect()
}

/// Whether a live policy differs from what the store says it should be: its spec, or
/// any of jitbot's labels and annotations. Fields the server or other tools add are
/// not differences.
fn edited(live: &NetworkPolicy, req: &AccessRequest) -> bool {
    let Some(expires_at) = req.expires_at else {
        return false;
    };
    let Some(want) = netpol::render(req, expires_at)
        .into_iter()
        .find(|p| p.metadata.name == live.metadata.name)
    else {
        return true;
    };
    let subset = |want: &Option<BTreeMap<String, String>>,
                  have: &Option<BTreeMap<String, String>>| {
        let empty = BTreeMap::new();
        let have = have.as_ref().unwrap_or(&empty);
        want.as_ref()
            .unwrap_or(&empty)
            .iter()
            .all(|(k, v)| have.get(k) == Some(v))
    };
    want.spec != live.spec
        || !subset(&want.metadata.labels, &live.metadata.labels)
        || !subset(&want.metadata.annotations, &live.metadata.annotations)
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;
