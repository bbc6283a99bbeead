//! The `Store` in process memory: jitbot's embedded default when no `REDIS_URL` is set.
//! It has the same semantics as the Redis store (the same contract tests run against
//! both), but nothing survives a restart and only one replica may use it. Its Slack
//! outbox lives beside the requests (see the `outbox` module).
//!
//! Retention: a finished request, its history and its notes are dropped `retention`
//! after the transition that ended it, counted by the store's writes: each write at
//! `now` (create, transition, audit) first drops what ended `retention` before `now`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};

use super::outbox::MemoryOutbox;
use crate::core::ids::{RequestId, SlackUserId};
use crate::core::ports::{
    AuditEvent, Claim, DEFAULT_RETENTION, Outbox, OutboxClaim, OutgoingId, Store, StoreError,
    has_ended,
};
use crate::core::request::{AccessRequest, State, Transition};
use crate::core::submission::limits::Activity;
use crate::core::ttl::Ttl;

#[derive(Default)]
struct Inner {
    requests: HashMap<RequestId, AccessRequest>,
    /// Armed timers, ordered by when they fire.
    due: BTreeSet<(DateTime<Utc>, RequestId)>,
    /// Claimed timers and when their lease runs out.
    claimed: HashMap<RequestId, DateTime<Utc>>,
    /// Where each request's timer sits in `due`, to remove it without a scan.
    due_of: HashMap<RequestId, DateTime<Utc>>,
    history: HashMap<RequestId, Vec<AuditEvent>>,
    annotations: HashMap<RequestId, BTreeMap<String, String>>,
    /// `remember_once` keys and until when, with the same pairs by time to forget
    /// them in order.
    remembered: HashMap<String, DateTime<Utc>>,
    forget: BTreeSet<(DateTime<Utc>, String)>,
    /// Every event recorded since delivery opened, until it is delivered.
    outbox: MemoryOutbox,
    /// Finished requests and when retention drops them, soonest first.
    ending: BTreeSet<(DateTime<Utc>, RequestId)>,
}

impl Inner {
    fn disarm(&mut self, id: &RequestId) {
        if let Some(at) = self.due_of.remove(id) {
            self.due.remove(&(at, id.clone()));
        }
        self.claimed.remove(id);
    }

    fn arm(&mut self, req: &AccessRequest) {
        self.disarm(&req.id);
        if let Some(at) = req.due_at() {
            self.due.insert((at, req.id.clone()));
            self.due_of.insert(req.id.clone(), at);
        }
    }

    /// Drops every finished request whose retention ran out at or before `now`.
    fn forget_ended(&mut self, now: DateTime<Utc>) {
        while let Some((at, id)) = self.ending.first().cloned() {
            if at > now {
                break;
            }
            self.ending.pop_first();
            self.disarm(&id);
            self.requests.remove(&id);
            self.history.remove(&id);
            self.annotations.remove(&id);
        }
    }

    fn record(&mut self, event: &AuditEvent) {
        self.history
            .entry(event.request_id.clone())
            .or_default()
            .push(event.clone());
        self.outbox.push(event);
    }
}

/// Requests, timers and audit in one mutex.
pub struct MemoryStore {
    inner: Mutex<Inner>,
    /// How long a finished request is kept after it ended; `None`: for ever.
    retention: Option<TimeDelta>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::with_retention(DEFAULT_RETENTION)
    }
}

impl MemoryStore {
    /// A store that keeps finished requests for [`DEFAULT_RETENTION`].
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// A store that keeps finished requests for `retention` after they end (`0s`:
    /// for ever).
    pub fn with_retention(retention: Ttl) -> Self {
        MemoryStore {
            inner: Mutex::default(),
            retention: (retention.as_secs() > 0).then(|| retention.as_delta()),
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, StoreError> {
        // A panic while holding the lock leaves state that can't be trusted.
        self.inner.lock().map_err(|_| {
            StoreError::Unavailable("memory store poisoned by an earlier panic".to_owned())
        })
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn create(&self, req: &AccessRequest, event: &AuditEvent) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        s.forget_ended(event.at);
        if s.requests.contains_key(&req.id) {
            return Err(StoreError::Exists(req.id.clone()));
        }
        s.requests.insert(req.id.clone(), req.clone());
        s.arm(req);
        s.record(event);
        Ok(())
    }

    async fn load(&self, id: &RequestId) -> Result<Option<AccessRequest>, StoreError> {
        Ok(self.lock()?.requests.get(id).cloned())
    }

    async fn transition(&self, t: &Transition, event: &AuditEvent) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        let id = &t.request.id;
        match s.requests.get(id) {
            None => return Err(StoreError::NotFound(id.clone())),
            Some(current) if current.version + 1 != t.request.version => {
                return Err(StoreError::Conflict(id.clone()));
            }
            Some(_) => {}
        }
        s.requests.insert(id.clone(), t.request.clone());
        s.arm(&t.request);
        s.record(event);
        if let Some(retention) = self.retention
            && has_ended(t.request.state)
        {
            s.ending.insert((event.at + retention, id.clone()));
        }
        s.forget_ended(event.at);
        Ok(())
    }

    async fn list_by_requester(
        &self,
        user: &SlackUserId,
    ) -> Result<Vec<AccessRequest>, StoreError> {
        let s = self.lock()?;
        let mut out: Vec<AccessRequest> = s
            .requests
            .values()
            .filter(|r| &r.requester == user)
            .cloned()
            .collect();
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    async fn list_by_state(&self, state: State) -> Result<Vec<AccessRequest>, StoreError> {
        let s = self.lock()?;
        let mut out: Vec<AccessRequest> = s
            .requests
            .values()
            .filter(|r| r.state == state)
            .cloned()
            .collect();
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Claim>, StoreError> {
        let mut s = self.lock()?;
        let mut out = Vec::new();
        for (at, id) in s.due.iter() {
            if *at > now || out.len() >= limit {
                break;
            }
            let free = s.claimed.get(id).is_none_or(|lease| *lease <= now);
            if free {
                out.push(Claim {
                    id: id.clone(),
                    lease_until,
                });
            }
        }
        for c in &out {
            s.claimed.insert(c.id.clone(), lease_until);
        }
        Ok(out)
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let s = self.lock()?;
        // A claimed timer stays in `due`; it fires again when its lease runs out.
        let mut earliest: Option<DateTime<Utc>> = None;
        for (at, id) in &s.due {
            if earliest.is_some_and(|e| e <= *at) {
                break;
            }
            let fires = s.claimed.get(id).map_or(*at, |lease| (*at).max(*lease));
            earliest = Some(earliest.map_or(fires, |e| e.min(fires)));
        }
        Ok(earliest)
    }

    async fn release(&self, req: &AccessRequest) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        let current = s.requests.get(&req.id).cloned();
        match current {
            // A newer version armed its own timer; only the claim goes.
            Some(cur) if cur.version != req.version => {
                s.claimed.remove(&req.id);
            }
            Some(cur) => s.arm(&cur),
            None => return Err(StoreError::NotFound(req.id.clone())),
        }
        Ok(())
    }

    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        s.forget_ended(event.at);
        s.record(event);
        Ok(())
    }

    async fn audit_of(&self, id: &RequestId) -> Result<Vec<AuditEvent>, StoreError> {
        Ok(self.lock()?.history.get(id).cloned().unwrap_or_default())
    }

    async fn annotate(&self, id: &RequestId, key: &str, value: &str) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        if !s.requests.contains_key(id) {
            return Err(StoreError::NotFound(id.clone()));
        }
        s.annotations
            .entry(id.clone())
            .or_default()
            .insert(key.to_owned(), value.to_owned());
        Ok(())
    }

    async fn annotations(&self, id: &RequestId) -> Result<BTreeMap<String, String>, StoreError> {
        Ok(self
            .lock()?
            .annotations
            .get(id)
            .cloned()
            .unwrap_or_default())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.lock().map(|_| ())
    }

    async fn remember_once(
        &self,
        key: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut s = self.lock()?;
        while let Some((at, k)) = s.forget.first().cloned()
            && at <= now
        {
            s.forget.pop_first();
            s.remembered.remove(&k);
        }
        if s.remembered.contains_key(key) {
            return Ok(false);
        }
        s.remembered.insert(key.to_owned(), until);
        s.forget.insert((until, key.to_owned()));
        Ok(true)
    }

    async fn activity_of(
        &self,
        user: &SlackUserId,
        since: DateTime<Utc>,
    ) -> Result<Activity, StoreError> {
        let s = self.lock()?;
        let mut mine: Vec<&AccessRequest> = s
            .requests
            .values()
            .filter(|r| &r.requester == user)
            .collect();
        mine.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(Activity::of(mine, since))
    }
}

#[async_trait]
impl Outbox for MemoryStore {
    async fn open_outbox(&self) -> Result<(), StoreError> {
        self.lock()?.outbox.open();
        Ok(())
    }

    async fn claim_outgoing(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<OutboxClaim, StoreError> {
        Ok(self.lock()?.outbox.claim(worker, now, lease_until, limit))
    }

    async fn mark_outgoing(
        &self,
        id: &OutgoingId,
        worker: &str,
        step: Option<&str>,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        Ok(self.lock()?.outbox.mark(id, worker, step, lease_until))
    }

    async fn ack_outgoing(&self, id: &OutgoingId) -> Result<(), StoreError> {
        self.lock()?.outbox.ack(id);
        Ok(())
    }

    async fn outbox_backlog(&self) -> Result<u64, StoreError> {
        Ok(self.lock()?.outbox.backlog())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::core::request::fixtures::t0;

    #[tokio::test]
    async fn a_remembered_key_is_forgotten_once_its_time_is_up() {
        let store = MemoryStore::new();
        let until = t0() + TimeDelta::minutes(10);
        assert!(store.remember_once("k", t0(), until).await.unwrap());
        let just_before = until - TimeDelta::milliseconds(1);
        assert!(!store.remember_once("k", just_before, until).await.unwrap());
        let later = until + TimeDelta::minutes(10);
        assert!(store.remember_once("k", until, later).await.unwrap());
        assert_eq!(
            store.lock().unwrap().forget.len(),
            1,
            "the old entry is gone"
        );
    }
}
