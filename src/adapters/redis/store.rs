//! `Store` for `RedisStore`: writes through the scripts, reads with plain commands.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{RedisStore, ms_ceil, ms_floor, timer_arg};
use crate::core::ids::{RequestId, SlackUserId};
use crate::core::ports::{AuditEvent, Claim, Store, StoreError};
use crate::core::request::{AccessRequest, State, Transition};
use crate::core::submission::limits::Activity;

fn encode<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("cannot encode: {e}")))
}

fn decode<T: DeserializeOwned>(what: &str, json: &str) -> Result<T, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// Maps a script's status word to the caller's result.
fn status(answer: &str, id: &RequestId) -> Result<(), StoreError> {
    match answer {
        "OK" => Ok(()),
        "EXISTS" => Err(StoreError::Exists(id.clone())),
        "NOT_FOUND" => Err(StoreError::NotFound(id.clone())),
        "CONFLICT" => Err(StoreError::Conflict(id.clone())),
        "STATE_MISMATCH" => Err(StoreError::Corrupt(format!(
            "request {id}: its stored state does not match its version"
        ))),
        other => Err(StoreError::Corrupt(format!(
            "request {id}: unexpected script answer `{other}`"
        ))),
    }
}

impl RedisStore {
    /// A request's stored form: its JSON, sealed when the store has a key.
    fn sealed(&self, req: &AccessRequest) -> Result<String, StoreError> {
        let json = encode(req)?;
        Ok(match &self.state_key {
            Some(key) => key.seal(&req.id, &json),
            None => json,
        })
    }

    /// The request behind a stored value, once its seal verifies. A request stored
    /// under another id is refused too.
    fn opened(&self, id: &RequestId, stored: &str) -> Result<AccessRequest, StoreError> {
        self.verified(id, stored).map_err(|e| self.counted(e))
    }

    fn verified(&self, id: &RequestId, stored: &str) -> Result<AccessRequest, StoreError> {
        let json = match &self.state_key {
            Some(key) => key.open(id, stored)?,
            None => stored,
        };
        let req: AccessRequest = decode(&format!("request {id}"), json)?;
        if &req.id != id {
            return Err(StoreError::Tampered {
                id: id.clone(),
                why: format!("it is stored under another id ({})", req.id),
            });
        }
        Ok(req)
    }

    /// Runs one of the scripts (loading it first if Redis does not know it yet).
    pub(super) async fn run<T: redis::FromRedisValue>(
        &self,
        what: &'static str,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        self.call(what, |mut c| async move { inv.invoke_async(&mut c).await })
            .await
    }

    /// The request ids in an index set, oldest first.
    async fn index(&self, key: String) -> Result<Vec<String>, StoreError> {
        self.index_range(key, 0, -1).await
    }

    /// Index entries by rank, `start` to `stop` inclusive (`-1`: the last).
    async fn index_range(
        &self,
        key: String,
        start: i64,
        stop: i64,
    ) -> Result<Vec<String>, StoreError> {
        self.call("list", |mut c| {
            let key = &key;
            async move {
                redis::cmd("ZRANGE")
                    .arg(key)
                    .arg(start)
                    .arg(stop)
                    .query_async(&mut c)
                    .await
            }
        })
        .await
    }

    /// Loads the requests behind index entries, [`LOAD_CHUNK`] per round trip, each
    /// chunk decoded before the next is asked for, so the raw JSON of a long listing
    /// never sits in memory at once.
    async fn load_many(&self, ids: Vec<String>) -> Result<Vec<AccessRequest>, StoreError> {
        let ids = ids
            .iter()
            .map(|id| id.parse::<RequestId>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Corrupt(format!("request index: {e}")))?;
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(LOAD_CHUNK) {
            let mut pipe = redis::pipe();
            for id in chunk {
                pipe.cmd("HGET").arg(self.keys.request(id)).arg("json");
            }
            let found: Vec<Option<String>> = self
                .call("list", |mut c| {
                    let pipe = &pipe;
                    async move { pipe.query_async(&mut c).await }
                })
                .await?;
            // An index entry without its request, or a request that does not decode,
            // would be a hand edit: it is left out (and logged), so that one cannot
            // hide all the others from a listing or the reconciler.
            out.extend(chunk.iter().zip(found).filter_map(|(id, stored)| {
                self.opened(id, &stored?)
                    .inspect_err(|e| tracing::warn!(request_id = %id, error = %e, "a stored request cannot be read back; leaving it out of the listing"))
                    .ok()
            }));
        }
        Ok(out)
    }
}

/// Requests per round trip when listing.
const LOAD_CHUNK: usize = 500;

#[async_trait]
impl Store for RedisStore {
    async fn create(&self, req: &AccessRequest, event: &AuditEvent) -> Result<(), StoreError> {
        let (json, event) = (self.sealed(req)?, encode(event)?);
        let mut inv = self.scripts.create.prepare_invoke();
        inv.key(self.keys.request(&req.id))
            .key(self.keys.due())
            .key(self.keys.state(req.state))
            .key(self.keys.requester(&req.requester))
            .key(self.keys.audit())
            .key(self.keys.history(&req.id))
            .arg(req.id.as_str())
            .arg(req.version)
            .arg(req.state.as_str())
            .arg(ms_floor(req.created_at))
            .arg(json)
            .arg(timer_arg(req.due_at()))
            .arg(event)
            .arg(self.audit_maxlen);
        let answer: String = self.run("create", &inv).await?;
        status(&answer, &req.id)
    }

    async fn load(&self, id: &RequestId) -> Result<Option<AccessRequest>, StoreError> {
        let key = self.keys.request(id);
        let json: Option<String> = self
            .call("load", |mut c| {
                let key = &key;
                async move {
                    redis::cmd("HGET")
                        .arg(key)
                        .arg("json")
                        .query_async(&mut c)
                        .await
                }
            })
            .await?;
        json.map(|stored| self.opened(id, &stored)).transpose()
    }

    async fn transition(&self, t: &Transition, event: &AuditEvent) -> Result<(), StoreError> {
        let req = &t.request;
        let Some(previous) = req.version.checked_sub(1) else {
            return Err(StoreError::Conflict(req.id.clone()));
        };
        let (keep, cutoff) = self.retention_args(req.state, event.at);
        let (json, event) = (self.sealed(req)?, encode(event)?);
        let mut inv = self.scripts.transition.prepare_invoke();
        inv.key(self.keys.request(&req.id))
            .key(self.keys.due())
            .key(self.keys.claims())
            .key(self.keys.state(t.from))
            .key(self.keys.state(req.state))
            .key(self.keys.audit())
            .key(self.keys.history(&req.id))
            .key(self.keys.notes(&req.id))
            .key(self.keys.requester(&req.requester))
            .key(self.keys.state(State::Pending))
            .key(self.keys.state(State::Approved))
            .key(self.keys.state(State::Active))
            .arg(req.id.as_str())
            .arg(previous)
            .arg(req.version)
            .arg(t.from.as_str())
            .arg(req.state.as_str())
            .arg(ms_floor(req.created_at))
            .arg(json)
            .arg(timer_arg(req.due_at()))
            .arg(event)
            .arg(self.audit_maxlen);
        inv.arg(keep).arg(cutoff);
        let answer: String = self.run("transition", &inv).await?;
        status(&answer, &req.id)
    }

    async fn list_by_requester(
        &self,
        user: &SlackUserId,
    ) -> Result<Vec<AccessRequest>, StoreError> {
        let ids = self.index(self.keys.requester(user)).await?;
        let mut out: Vec<AccessRequest> = self
            .load_many(ids)
            .await?
            .into_iter()
            .filter(|r| &r.requester == user)
            .collect();
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    async fn list_by_state(&self, state: State) -> Result<Vec<AccessRequest>, StoreError> {
        self.list_by_state_page(state, 0, usize::MAX).await
    }

    async fn list_by_state_page(
        &self,
        state: State,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<AccessRequest>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Ranks in the index; ZRANGE's stop is inclusive, and -1 is the last.
        let start = i64::try_from(skip).unwrap_or(i64::MAX);
        let stop = i64::try_from(limit)
            .ok()
            .and_then(|n| start.checked_add(n - 1))
            .unwrap_or(-1);
        let ids = self
            .index_range(self.keys.state(state), start, stop)
            .await?;
        // The index and the requests are read in two steps; keep only requests that
        // are still in `state` when read.
        let mut out: Vec<AccessRequest> = self
            .load_many(ids)
            .await?
            .into_iter()
            .filter(|r| r.state == state)
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
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut inv = self.scripts.claim_due.prepare_invoke();
        inv.key(self.keys.due())
            .key(self.keys.claims())
            .arg(ms_floor(now))
            .arg(ms_ceil(lease_until))
            .arg(limit);
        let ids: Vec<String> = self.run("claim_due", &inv).await?;
        ids.into_iter()
            .map(|id| {
                let id = id
                    .parse::<RequestId>()
                    .map_err(|e| StoreError::Corrupt(format!("timer index: {e}")))?;
                Ok(Claim { id, lease_until })
            })
            .collect()
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let (due, claims) = (self.keys.due(), self.keys.claims());
        // The first entry of each timer set, in one round trip: ZRANGE 0 0 reads one
        // element however many timers there are.
        let firsts: (Vec<(String, f64)>, Vec<(String, f64)>) = self
            .call("next_due", |mut c| {
                let (due, claims) = (&due, &claims);
                async move {
                    redis::pipe()
                        .cmd("ZRANGE")
                        .arg(due)
                        .arg(0)
                        .arg(0)
                        .arg("WITHSCORES")
                        .cmd("ZRANGE")
                        .arg(claims)
                        .arg(0)
                        .arg(0)
                        .arg("WITHSCORES")
                        .query_async(&mut c)
                        .await
                }
            })
            .await?;
        let earliest = firsts
            .0
            .into_iter()
            .chain(firsts.1)
            .map(|(_, ms)| ms as i64)
            .min();
        earliest
            .map(|ms| {
                DateTime::from_timestamp_millis(ms)
                    .ok_or_else(|| StoreError::Corrupt(format!("timer index: {ms} is not a time")))
            })
            .transpose()
    }

    async fn release(&self, req: &AccessRequest) -> Result<(), StoreError> {
        let mut inv = self.scripts.release.prepare_invoke();
        inv.key(self.keys.request(&req.id))
            .key(self.keys.due())
            .key(self.keys.claims())
            .arg(req.id.as_str())
            .arg(req.version)
            .arg(timer_arg(req.due_at()));
        let answer: String = self.run("release", &inv).await?;
        status(&answer, &req.id)
    }

    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let json = encode(event)?;
        let mut inv = self.scripts.append_audit.prepare_invoke();
        inv.key(self.keys.audit())
            .key(self.keys.history(&event.request_id))
            .key(self.keys.request(&event.request_id))
            .arg(json)
            .arg(self.audit_maxlen)
            .arg(
                self.retention_ms
                    .map(|ms| ms.to_string())
                    .unwrap_or_default(),
            );
        let answer: String = self.run("append_audit", &inv).await?;
        status(&answer, &event.request_id)
    }

    async fn annotate(&self, id: &RequestId, key: &str, value: &str) -> Result<(), StoreError> {
        let mut inv = self.scripts.annotate.prepare_invoke();
        inv.key(self.keys.request(id))
            .key(self.keys.notes(id))
            .arg(key)
            .arg(value);
        let answer: String = self.run("annotate", &inv).await?;
        status(&answer, id)
    }

    async fn annotations(&self, id: &RequestId) -> Result<BTreeMap<String, String>, StoreError> {
        let key = self.keys.notes(id);
        self.call("annotations", |mut c| {
            let key = &key;
            async move { redis::cmd("HGETALL").arg(key).query_async(&mut c).await }
        })
        .await
    }

    async fn audit_of(&self, id: &RequestId) -> Result<Vec<AuditEvent>, StoreError> {
        let key = self.keys.history(id);
        let events: Vec<String> = self
            .call("audit_of", |mut c| {
                let key = &key;
                async move {
                    redis::cmd("LRANGE")
                        .arg(key)
                        .arg(0)
                        .arg(-1)
                        .query_async(&mut c)
                        .await
                }
            })
            .await?;
        events
            .iter()
            .map(|e| decode(&format!("history of {id}"), e))
            .collect()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let _: String = self
            .call("ping", |mut c| async move {
                redis::cmd("PING").query_async(&mut c).await
            })
            .await?;
        Ok(())
    }

    async fn remember_once(
        &self,
        key: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let key = self.keys.once(key);
        let ttl_ms = (until - now).num_milliseconds().max(1);
        let set: Option<String> = self
            .call("remember", |mut c| {
                let key = &key;
                async move {
                    redis::cmd("SET")
                        .arg(key)
                        .arg(1)
                        .arg("NX")
                        .arg("PX")
                        .arg(ttl_ms)
                        .query_async(&mut c)
                        .await
                }
            })
            .await?;
        Ok(set.is_some())
    }

    async fn activity_of(
        &self,
        user: &SlackUserId,
        since: DateTime<Utc>,
    ) -> Result<Activity, StoreError> {
        self.read_activity(user, since).await
    }
}
