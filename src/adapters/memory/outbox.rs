//! The memory store's outbox: the same contract as the Redis one (the contract tests
//! run on both), kept beside the requests under the store's one lock. It starts
//! keeping events at `open_outbox`, as the Redis group does, and holds at most
//! [`MEMORY_OUTBOX_MAX`] undelivered events: beyond that the oldest are dropped, as
//! the Redis stream's trim drops them.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::core::ports::{AuditEvent, OutboxClaim, Outgoing, OutgoingId};

/// Undelivered events kept at most (the Redis store's `audit_maxlen` default).
pub const MEMORY_OUTBOX_MAX: usize = 100_000;

/// A claimed event's lease.
struct Lease {
    worker: String,
    until: DateTime<Utc>,
}

#[derive(Default)]
pub(super) struct MemoryOutbox {
    open: bool,
    next: u64,
    /// Undelivered events by sequence number, claimed or not.
    events: BTreeMap<u64, AuditEvent>,
    /// Events before this one have been handed out at least once.
    unread_from: u64,
    leases: BTreeMap<u64, Lease>,
    done: BTreeMap<u64, BTreeSet<String>>,
    /// Claimed events dropped by the bound before their next claim.
    lost: u64,
}

fn id(seq: u64) -> OutgoingId {
    OutgoingId::new(seq, 0)
}

impl MemoryOutbox {
    pub fn open(&mut self) {
        self.open = true;
    }

    /// Keeps an event the store just recorded, when the outbox is open.
    pub fn push(&mut self, event: &AuditEvent) {
        if !self.open {
            return;
        }
        self.next += 1;
        self.events.insert(self.next, event.clone());
        while self.events.len() > MEMORY_OUTBOX_MAX {
            let Some((oldest, _)) = self.events.pop_first() else {
                break;
            };
            if self.leases.remove(&oldest).is_some() {
                self.lost += 1;
            }
            self.done.remove(&oldest);
        }
    }

    pub fn claim(
        &mut self,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> OutboxClaim {
        let expired: Vec<u64> = self
            .leases
            .iter()
            .filter(|(_, l)| l.until <= now)
            .map(|(seq, _)| *seq)
            .take(limit)
            .collect();
        let fresh: Vec<u64> = self
            .events
            .range(self.unread_from..)
            .map(|(seq, _)| *seq)
            .take(limit - expired.len())
            .collect();
        if let Some(last) = fresh.last() {
            self.unread_from = last + 1;
        }
        let mut events = Vec::with_capacity(expired.len() + fresh.len());
        for seq in expired.into_iter().chain(fresh) {
            let Some(event) = self.events.get(&seq) else {
                continue;
            };
            events.push(Outgoing {
                id: id(seq),
                event: event.clone(),
                done: self.done.get(&seq).cloned().unwrap_or_default(),
            });
            let lease = Lease {
                worker: worker.to_owned(),
                until: lease_until,
            };
            self.leases.insert(seq, lease);
        }
        OutboxClaim {
            events,
            lost: std::mem::take(&mut self.lost),
        }
    }

    pub fn mark(
        &mut self,
        at: &OutgoingId,
        worker: &str,
        step: Option<&str>,
        lease_until: DateTime<Utc>,
    ) -> bool {
        let seq = sequence(at);
        match self.leases.get_mut(&seq) {
            Some(lease) if lease.worker == worker => lease.until = lease_until,
            _ => return false,
        }
        if let Some(step) = step {
            self.done.entry(seq).or_default().insert(step.to_owned());
        }
        true
    }

    pub fn ack(&mut self, at: &OutgoingId) {
        let seq = sequence(at);
        self.events.remove(&seq);
        self.leases.remove(&seq);
        self.done.remove(&seq);
    }

    pub fn backlog(&self) -> u64 {
        self.events.len() as u64
    }
}

/// The sequence number behind an id this outbox gave out.
fn sequence(id: &OutgoingId) -> u64 {
    id.as_str()
        .split_once('-')
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or(0)
}
