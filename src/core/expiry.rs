//! When a policy's access ends, read from the policy alone. The cluster-side expiry
//! guard and the reconciler both decide from a policy's `jitbot.dev/expires-at`
//! annotation without asking the store, so a store outage, loss or rollback never
//! keeps access open. Pure: the guard's watch and deletes live in the Kubernetes
//! adapter; the queue of deadlines it keeps is here.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::hash::Hash;

use chrono::{DateTime, TimeDelta, Utc};

use super::ids::RequestId;
use super::netpol::EXPIRES_AT_ANNOTATION;
use super::ports::PolicyRef;
use super::ttl::Ttl;

/// How far past `now + access.max_duration` an expiry may be before it counts as
/// impossible: room for clocks of two replicas that disagree a little, never room
/// for a grant longer than the cap in any way that matters.
pub const CLOCK_SKEW_ALLOWANCE: TimeDelta = TimeDelta::seconds(60);

/// Why a policy's expiry cannot be trusted; such a policy is deleted at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// No `jitbot.dev/expires-at` annotation.
    Missing,
    /// The annotation is not an RFC 3339 time.
    Unreadable(String),
    /// Further in the future than any grant may last.
    BeyondCap { expires_at: DateTime<Utc>, cap: Ttl },
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::Missing => write!(f, "it has no {EXPIRES_AT_ANNOTATION} annotation"),
            Invalid::Unreadable(raw) => {
                write!(f, "its {EXPIRES_AT_ANNOTATION} `{raw}` is not a time")
            }
            Invalid::BeyondCap { expires_at, cap } => write!(
                f,
                "its {EXPIRES_AT_ANNOTATION} {} is more than access.max_duration ({cap}) away",
                expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        }
    }
}

/// Why a policy's access ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Its time is up.
    Expired { expires_at: DateTime<Utc> },
    /// Its expiry cannot be trusted.
    Invalid(Invalid),
}

impl Ending {
    /// When access ends: the expiry, or `now` for an untrustworthy one.
    pub fn due(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Ending::Expired { expires_at } => *expires_at,
            Ending::Invalid(_) => now,
        }
    }
}

/// Reads when a policy's access ends from its annotations, as seen at `now` with the
/// global cap `max_duration` (`access.max_duration`).
pub fn ending(
    annotations: Option<&BTreeMap<String, String>>,
    now: DateTime<Utc>,
    max_duration: Ttl,
) -> Ending {
    let Some(raw) = annotations.and_then(|a| a.get(EXPIRES_AT_ANNOTATION)) else {
        return Ending::Invalid(Invalid::Missing);
    };
    let Ok(expires_at) = DateTime::parse_from_rfc3339(raw).map(|t| t.to_utc()) else {
        return Ending::Invalid(Invalid::Unreadable(raw.clone()));
    };
    if expires_at > now + max_duration.as_delta() + CLOCK_SKEW_ALLOWANCE {
        return Ending::Invalid(Invalid::BeyondCap {
            expires_at,
            cap: max_duration,
        });
    }
    Ending::Expired { expires_at }
}

/// A policy the expiry guard deleted, for the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Removal {
    pub policy: PolicyRef,
    /// The request its label names, if it has a readable one.
    pub request_id: Option<RequestId>,
    pub ending: Ending,
    pub at: DateTime<Utc>,
}

/// Deadlines by key, earliest first: what the expiry guard holds for each policy it
/// watches. Each key has at most one deadline; setting it again moves it.
#[derive(Debug)]
pub struct DeadlineQueue<K, V> {
    order: BTreeSet<(DateTime<Utc>, K)>,
    entries: HashMap<K, (DateTime<Utc>, V)>,
}

impl<K, V> Default for DeadlineQueue<K, V> {
    fn default() -> Self {
        DeadlineQueue {
            order: BTreeSet::new(),
            entries: HashMap::new(),
        }
    }
}

impl<K: Clone + Ord + Hash, V> DeadlineQueue<K, V> {
    /// Sets `key`'s deadline (and what goes with it), replacing any earlier one.
    pub fn set(&mut self, key: K, due: DateTime<Utc>, value: V) {
        if let Some((old, _)) = self.entries.insert(key.clone(), (due, value)) {
            self.order.remove(&(old, key.clone()));
        }
        self.order.insert((due, key));
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        let (due, value) = self.entries.remove(key)?;
        self.order.remove(&(due, key.clone()));
        Some(value)
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|(_, v)| v)
    }

    /// The earliest deadline.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.order.first().map(|(at, _)| *at)
    }

    /// Takes out up to `limit` entries due at or before `now`, earliest first.
    pub fn pop_due(&mut self, now: DateTime<Utc>, limit: usize) -> Vec<(K, V)> {
        let mut out = Vec::new();
        while out.len() < limit {
            match self.order.first() {
                Some((at, _)) if *at <= now => {}
                _ => break,
            }
            let Some((_, key)) = self.order.pop_first() else {
                break;
            };
            if let Some((_, value)) = self.entries.remove(&key) {
                out.push((key, value));
            }
        }
        out
    }

    /// Keeps only the entries `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(&K) -> bool) {
        let gone: Vec<K> = self.entries.keys().filter(|k| !keep(k)).cloned().collect();
        for key in gone {
            self.remove(&key);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
#[path = "expiry_tests.rs"]
mod tests;
