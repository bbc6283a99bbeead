//! The [`Outbox`] on Redis: the audit stream itself, read by the consumer group
//! [`GROUP`]. Every script that appends an event to `{jitbot}:audit` thereby puts it
//! in the outbox, atomically with its transition, at no extra cost on the write path.
//!
//! ```text
//! {jitbot}:audit              stream  the events; group `slack` reads it (XREADGROUP >)
//! {jitbot}:outbox:leases      zset    claimed entry id -> unix ms its lease ends
//! {jitbot}:outbox:owners      hash    claimed entry id -> the worker holding it
//! {jitbot}:outbox:done        hash    claimed entry id -> its steps done, space-separated
//! ```
//!
//! Leases are kept here rather than read from the group's idle times so that they run
//! on the app's clock, as the timers' leases do (which tests move). A claim moves the entry in the group's pending list to its worker
//! (`XCLAIM … JUSTID`), so `XPENDING` shows who has what; `ack` is `XACK` plus
//! dropping its lease and progress.
//!
//! The stream is trimmed (`MAXLEN ~ store.audit_maxlen`, and `MINID ~` of events older
//! than `store.retention` when a request ends) whatever the group has read: a backlog
//! longer or older than that loses its oldest events. An unread one is skipped
//! silently by the group; a claimed one is found gone at its next claim and counted
//! as lost. Each request's own history keeps every event either way.

use std::sync::LazyLock;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::Script;

use super::{Keys, RedisStore, ms_ceil, ms_floor};
use crate::core::ports::{Outbox, OutboxClaim, Outgoing, OutgoingId, StoreError};

/// The consumer group Slack delivery reads the audit stream with.
pub const GROUP: &str = "slack";

/// Claims: first entries whose lease ran out (re-leased to this worker, or counted
/// lost when the trim took them), then new entries of the group, each leased.
///
/// KEYS: audit stream, leases, owners, done. ARGV: group, worker, now ms, lease-until
/// ms, limit. Answers `{lost, {{id, fields, done}, …}}`.
const CLAIM: &str = r"
local out = {}
local lost = 0
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[3], 'LIMIT', 0, ARGV[5])
for _, id in ipairs(expired) do
  local entry = redis.call('XRANGE', KEYS[1], id, id)
  if #entry == 0 then
    redis.call('XACK', KEYS[1], ARGV[1], id)
    redis.call('ZREM', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
    redis.call('HDEL', KEYS[4], id)
    lost = lost + 1
  else
    redis.call('ZADD', KEYS[2], ARGV[4], id)
    redis.call('HSET', KEYS[3], id, ARGV[2])
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'JUSTID')
    out[#out + 1] = {id, entry[1][2], redis.call('HGET', KEYS[4], id) or ''}
  end
end
local room = tonumber(ARGV[5]) - #out
if room > 0 then
  local read = redis.pcall('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', room, 'STREAMS', KEYS[1], '>')
  if type(read) == 'table' and read['err'] then
    if string.find(read['err'], 'NOGROUP', 1, true) then
      redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[1], '$', 'MKSTREAM')
      read = false
    else
      return redis.error_reply(read['err'])
    end
  end
  if read then
    for _, entry in ipairs(read[1][2]) do
      redis.call('ZADD', KEYS[2], ARGV[4], entry[1])
      redis.call('HSET', KEYS[3], entry[1], ARGV[2])
      out[#out + 1] = {entry[1], entry[2], ''}
    end
  end
end
return {lost, out}
";

/// Records a step (ARGV[3], `''`: none) and renews the lease, if the worker still
/// holds the entry.
///
/// KEYS: leases, owners, done. ARGV: id, worker, step, lease-until ms.
const MARK: &str = r"
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 'TAKEN' end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
if ARGV[3] ~= '' then
  local done = redis.call('HGET', KEYS[3], ARGV[1]) or ''
  redis.call('HSET', KEYS[3], ARGV[1], done .. ' ' .. ARGV[3])
end
return 'OK'
";

/// Acknowledges an entry and forgets its lease and progress.
///
/// KEYS: audit stream, leases, owners, done. ARGV: group, id.
const ACK: &str = r"
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[2])
redis.call('HDEL', KEYS[4], ARGV[2])
return 'OK'
";

/// Undelivered entries: the group's pending ones plus its lag. When Redis cannot
/// tell the lag (after a hand-made `XSETID`), the unread entries are counted, up to
/// ARGV[2].
///
/// KEYS: audit stream. ARGV: group, most to count. Answers the count (0 without group).
const BACKLOG: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
for _, g in ipairs(groups) do
  local info = {}
  for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
  if info['name'] == ARGV[1] then
    local lag = info['lag']
    if not lag then
      lag = #redis.call('XRANGE', KEYS[1], '(' .. info['last-delivered-id'], '+', 'COUNT', ARGV[2])
    end
    return info['pending'] + lag
  end
end
return 0
";

static SCRIPTS: LazyLock<[Script; 4]> = LazyLock::new(|| {
    [
        Script::new(CLAIM),
        Script::new(MARK),
        Script::new(ACK),
        Script::new(BACKLOG),
    ]
});

/// Unread entries counted at most, when Redis cannot say how many there are.
const BACKLOG_COUNT_CAP: usize = 1_000_000;

impl Keys {
    fn outbox_leases(&self) -> String {
        format!("{}:outbox:leases", self.prefix)
    }
    fn outbox_owners(&self) -> String {
        format!("{}:outbox:owners", self.prefix)
    }
    fn outbox_done(&self) -> String {
        format!("{}:outbox:done", self.prefix)
    }
}

/// One claimed entry as the claim script answers it.
type RawEntry = (String, Vec<String>, String);

fn outgoing((id, fields, done): RawEntry) -> Result<Outgoing, StoreError> {
    let id: OutgoingId = id.parse()?;
    let json = fields
        .chunks(2)
        .find(|kv| kv[0] == "event")
        .and_then(|kv| kv.get(1))
        .ok_or_else(|| StoreError::Corrupt(format!("audit entry {id} has no event")))?;
    let event = serde_json::from_str(json)
        .map_err(|e| StoreError::Corrupt(format!("audit entry {id}: {e}")))?;
    Ok(Outgoing {
        id,
        event,
        done: done.split_whitespace().map(str::to_owned).collect(),
    })
}

#[async_trait]
impl Outbox for RedisStore {
    async fn open_outbox(&self) -> Result<(), StoreError> {
        let key = self.keys.audit();
        let created: Result<String, StoreError> = self
            .call("open_outbox", |mut c| {
                let key = &key;
                async move {
                    redis::cmd("XGROUP")
                        .arg("CREATE")
                        .arg(key)
                        .arg(GROUP)
                        .arg("$")
                        .arg("MKSTREAM")
                        .query_async(&mut c)
                        .await
                }
            })
            .await;
        match created {
            Ok(_) => Ok(()),
            // The group exists: another replica (or an earlier start) made it.
            Err(StoreError::Unavailable(why)) if why.contains("BUSYGROUP") => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn claim_outgoing(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<OutboxClaim, StoreError> {
        if limit == 0 {
            return Ok(OutboxClaim::default());
        }
        let mut inv = SCRIPTS[0].prepare_invoke();
        inv.key(self.keys.audit())
            .key(self.keys.outbox_leases())
            .key(self.keys.outbox_owners())
            .key(self.keys.outbox_done())
            .arg(GROUP)
            .arg(worker)
            .arg(ms_floor(now))
            .arg(ms_ceil(lease_until))
            .arg(limit);
        let (lost, raw): (u64, Vec<RawEntry>) = self.run("claim_outgoing", &inv).await?;
        let events = raw.into_iter().map(outgoing).collect::<Result<_, _>>()?;
        Ok(OutboxClaim { events, lost })
    }

    async fn mark_outgoing(
        &self,
        id: &OutgoingId,
        worker: &str,
        step: Option<&str>,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut inv = SCRIPTS[1].prepare_invoke();
        inv.key(self.keys.outbox_leases())
            .key(self.keys.outbox_owners())
            .key(self.keys.outbox_done())
            .arg(id.as_str())
            .arg(worker)
            .arg(step.unwrap_or(""))
            .arg(ms_ceil(lease_until));
        let answer: String = self.run("mark_outgoing", &inv).await?;
        Ok(answer == "OK")
    }

    async fn ack_outgoing(&self, id: &OutgoingId) -> Result<(), StoreError> {
        let mut inv = SCRIPTS[2].prepare_invoke();
        inv.key(self.keys.audit())
            .key(self.keys.outbox_leases())
            .key(self.keys.outbox_owners())
            .key(self.keys.outbox_done())
            .arg(GROUP)
            .arg(id.as_str());
        let _: String = self.run("ack_outgoing", &inv).await?;
        Ok(())
    }

    async fn outbox_backlog(&self) -> Result<u64, StoreError> {
        let mut inv = SCRIPTS[3].prepare_invoke();
        inv.key(self.keys.audit()).arg(GROUP).arg(BACKLOG_COUNT_CAP);
        self.run("outbox_backlog", &inv).await
    }
}
