//! The Lua scripts behind every write. Redis runs a script in isolation, so each
//! compare-and-set, its timer, its indexes and its audit event land together or not
//! at all. Every key a script touches is passed in `KEYS` (never built inside the
//! script) and shares the prefix's hash tag, so the scripts also run on Redis Cluster.
//!
//! Redis does not roll a script back when a command inside it fails, so each script
//! does all its reads and checks first and writes only once they passed. A write can
//! then fail only if someone changed a key's type by hand (reported as `Corrupt`), or
//! for lack of memory, which Redis reports at the first write, before anything changed.
//!
//! Scripts answer a status word (`OK`, `EXISTS`, `NOT_FOUND`, `CONFLICT`,
//! `STATE_MISMATCH`) rather than raising errors, so the adapter can map each to the
//! right `StoreError` without parsing error text.

use redis::Script;

/// Stores a new request with its timer, indexes and `requested` event.
///
/// KEYS: request hash, due, state index, requester index, audit stream, history.
/// ARGV: id, version, state, created ms, request JSON, due ms (`""`: no timer),
/// event JSON, audit MAXLEN.
const CREATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 'EXISTS' end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'state', ARGV[3], 'json', ARGV[5])
if ARGV[6] ~= '' then redis.call('ZADD', KEYS[2], ARGV[6], ARGV[1]) end
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[8], '*', 'event', ARGV[7])
redis.call('RPUSH', KEYS[6], ARGV[7])
return 'OK'
";

/// One lifecycle arrow: writes the new request only if the stored version is the one
/// it was computed from, moves it between state indexes, re-arms or disarms its timer
/// (Rust computes `due_at()`), drops any claim on it and appends the event.
///
/// KEYS: request hash, due, claims, from-state index, to-state index, audit stream,
/// history; then notes, requester index, and the pending, approved and active state
/// indexes, for [`RETAIN_ENDED`].
/// ARGV: id, stored version expected, new version, from state, new state,
/// created ms, request JSON, due ms (`""`: no timer), event JSON, audit MAXLEN;
/// then retention ms (`""`: the request goes on, or retention is off) and the
/// retention cutoff in unix ms.
///
/// The script ends with [`RETAIN_ENDED`] (see `Scripts::new`).
const TRANSITION: &str = r"
local stored = redis.call('HMGET', KEYS[1], 'version', 'state')
if not stored[1] then return 'NOT_FOUND' end
if stored[1] ~= ARGV[2] then return 'CONFLICT' end
if stored[2] ~= ARGV[4] then return 'STATE_MISMATCH' end
redis.call('HSET', KEYS[1], 'version', ARGV[3], 'state', ARGV[5], 'json', ARGV[7])
if KEYS[4] ~= KEYS[5] then
  redis.call('ZREM', KEYS[4], ARGV[1])
  redis.call('ZADD', KEYS[5], ARGV[6], ARGV[1])
end
redis.call('ZREM', KEYS[3], ARGV[1])
if ARGV[8] == '' then
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  redis.call('ZADD', KEYS[2], ARGV[8], ARGV[1])
end
redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[10], '*', 'event', ARGV[9])
redis.call('RPUSH', KEYS[7], ARGV[9])
";

/// The end of `TRANSITION`: retention, when the transition ends the request. Its hash,
/// history and notes expire `retention` from now, by Redis's clock (`PEXPIRE`). The
/// indexes lose the finished requests made before the cutoff (the transition's
/// `now` minus retention, in the created-at ms the indexes are scored by): the
/// new state's index all of them, the requester's index those in none of the live
/// states' indexes (64 per write, oldest first). The audit stream loses the events
/// from before the same cutoff (its ids are unix ms too; `XTRIM MINID ~`, whole nodes
/// at a time, at most 10,000 entries per write: far more than one write adds). The
/// cutoff comes from the transition's `now`, not Redis's `TIME`, so the script needs
/// no rights beyond reading and writing jitbot's keys.
///
/// A finished request made more than `retention` before it ended (a grant extended
/// for months) leaves the listings before its hash expires; `load` still finds it.
const RETAIN_ENDED: &str = r"
if ARGV[11] ~= '' then
  local keep = tonumber(ARGV[11])
  redis.call('PEXPIRE', KEYS[1], keep)
  redis.call('PEXPIRE', KEYS[7], keep)
  redis.call('PEXPIRE', KEYS[8], keep)
  local before = '(' .. ARGV[12]
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', before)
  local old = redis.call('ZRANGEBYSCORE', KEYS[9], '-inf', before, 'LIMIT', 0, 64)
  for _, id in ipairs(old) do
    if not redis.call('ZSCORE', KEYS[10], id) and not redis.call('ZSCORE', KEYS[11], id)
        and not redis.call('ZSCORE', KEYS[12], id) then
      redis.call('ZREM', KEYS[9], id)
    end
  end
  if tonumber(ARGV[12]) > 0 then
    redis.call('XTRIM', KEYS[6], 'MINID', '~', ARGV[12])
  end
end
return 'OK'
";

/// Hands out due timers. Claims whose lease ran out go back to `due` first, scored
/// by when their lease ended (so they are due at once); then up to `limit` due
/// timers move to `claims`, scored by the new lease. Both steps read only entries at
/// or before `now` from the sorted sets, so the cost follows the due work, never the
/// number of live requests.
///
/// KEYS: due, claims. ARGV: now ms, lease-until ms, limit. Answers the claimed ids.
const CLAIM_DUE: &str = r"
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[3])
for i = 1, #expired, 2 do
  redis.call('ZADD', KEYS[1], expired[i + 1], expired[i])
  redis.call('ZREM', KEYS[2], expired[i])
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZADD', KEYS[2], ARGV[2], id)
end
return due
";

/// Gives a claim back. The timer is re-armed only if the stored version is the one
/// released (a newer version armed its own timer); the claim always goes.
///
/// KEYS: request hash, due, claims. ARGV: id, version, due ms (`""`: no timer).
const RELEASE: &str = r"
local version = redis.call('HMGET', KEYS[1], 'version')[1]
if not version then return 'NOT_FOUND' end
redis.call('ZREM', KEYS[3], ARGV[1])
if version == ARGV[2] then
  if ARGV[3] == '' then
    redis.call('ZREM', KEYS[2], ARGV[1])
  else
    redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
  end
end
return 'OK'
";

/// Appends an event that is not a transition to the stream and the request's history.
/// The history then expires with its request (see [`RETAIN_ENDED`]), or, for a request
/// that is not stored (gone, or never known), `retention` from now.
///
/// KEYS: audit stream, history, request hash. ARGV: event JSON, audit MAXLEN,
/// retention ms (`""`: off).
const APPEND_AUDIT: &str = r"
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'event', ARGV[1])
redis.call('RPUSH', KEYS[2], ARGV[1])
local left = redis.call('PTTL', KEYS[3])
if left > 0 then
  redis.call('PEXPIRE', KEYS[2], left)
elseif left == -2 and ARGV[3] ~= '' then
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return 'OK'
";

/// Remembers a note about an existing request (KEYS: request, notes; ARGV: key, value).
/// The notes of a finished request expire with it (see [`RETAIN_ENDED`]).
const ANNOTATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 'NOT_FOUND' end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local left = redis.call('PTTL', KEYS[1])
if left > 0 then redis.call('PEXPIRE', KEYS[2], left) end
return 'OK'
";

/// The scripts, each with its SHA1 computed once; `invoke` sends EVALSHA and loads
/// the script only when the server does not know it yet (e.g. after a restart).
pub(super) struct Scripts {
    pub create: Script,
    pub transition: Script,
    pub claim_due: Script,
    pub release: Script,
    pub append_audit: Script,
    pub annotate: Script,
}

impl Scripts {
    pub fn new() -> Self {
        Scripts {
            create: Script::new(CREATE),
            transition: Script::new(&format!("{TRANSITION}{RETAIN_ENDED}")),
            claim_due: Script::new(CLAIM_DUE),
            release: Script::new(RELEASE),
            append_audit: Script::new(APPEND_AUDIT),
            annotate: Script::new(ANNOTATE),
        }
    }
}
