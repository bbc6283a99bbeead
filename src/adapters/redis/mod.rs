//! The `Store` on Redis: durable state shared by any number of replicas.
//!
//! Key layout (`{jitbot}` is the configurable prefix; its `{hash tag}` puts every key
//! in one cluster slot, so each Lua script touches one slot and runs on Redis Cluster):
//!
//! ```text
//! {jitbot}:req:<id>           hash    version, state, json (the AccessRequest as JSON,
//!                                     behind its seal: `v1:<hmac>:<json>`, see [`seal`])
//! {jitbot}:due                zset    armed timers: id -> unix ms of due_at()
//! {jitbot}:claims             zset    claimed timers: id -> unix ms the lease ends
//! {jitbot}:state:<state>      zset    ids in that state -> created_at (unix ms)
//! {jitbot}:requester:<user>   zset    that person's ids -> created_at (unix ms)
//! {jitbot}:audit              stream  every event (field `event`, JSON), MAXLEN ~ N
//! {jitbot}:history:<id>       list    one request's events (JSON), oldest first
//! {jitbot}:notes:<id>         hash    facts outside the lifecycle (where its card is)
//! {jitbot}:once:<key>         string  a signed Slack request already acted on, until
//!                                     its signature could no longer verify (`SET NX PX`)
//! {jitbot}:outbox:leases      zset    Slack deliveries claimed: entry id -> lease end (ms)
//! {jitbot}:outbox:owners      hash    Slack deliveries claimed: entry id -> worker
//! {jitbot}:outbox:done        hash    Slack deliveries claimed: entry id -> steps done
//! ```
//!
//! The audit stream is also the Slack outbox: its consumer group `slack` hands each
//! event to one delivery worker (see the `outbox` module).
//!
//! Retention: the transition that ends a request (Denied, Lapsed, Cancelled, Failed,
//! Expired, Revoked) sets its `req:`, `history:` and `notes:` keys to expire
//! `retention` later, by Redis's own clock, and trims the indexes and the audit
//! stream of what is older (see [`scripts`]). Listings skip an index entry whose
//! request is gone. Pending, Approved and Active requests never expire.
//!
//! The `json` field is what `load` reads; `version` and `state` are copies the scripts
//! compare without decoding JSON. A request has a timer in exactly one of `due` and
//! `claims` while it can still move, and in neither once it has ended. Every write is
//! one script (see [`scripts`]); reads are plain commands.
//!
//! Times are stored as unix milliseconds: timers and leases rounded up and `now`
//! rounded down, so nothing fires or runs out early (at most 1 ms late).
//!
//! `REDIS_URL` chooses one server, Redis Cluster or Sentinel ([`target`]); the store
//! talks to each through one connection type ([`connection`]), so the scripts, the
//! timeouts and the error mapping are the same in every mode. TLS (`rediss…://`)
//! verifies the server's certificate against the system's roots; a private CA is
//! trusted by pointing `SSL_CERT_FILE` at it.
//!
//! Failures: connection errors and timeouts are `Unavailable`, and so are the answers
//! of a Redis in the middle of a failover (READONLY from a demoted master, MASTERDOWN,
//! CLUSTERDOWN, TRYAGAIN), so that callers retry; a lost compare-and-set is
//! `Conflict`; data that does not decode is `Corrupt`. MOVED and ASK never reach the
//! store: the cluster client follows them. Each call is bounded by
//! `connect_timeout + response_timeout`. The connection reconnects (and, with
//! Sentinel, finds the master again) on the next call once Redis answers again. A
//! call that timed out after its command was sent may still have been applied; the
//! version check makes retrying it safe.

mod connection;
mod outbox;
mod retention;
mod scripts;
mod seal;
mod sentinel;
mod store;
mod target;
#[cfg(test)]
mod tests;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::{ErrorKind, RedisError};

use crate::core::ids::{RequestId, SlackUserId};
use crate::core::ports::{DEFAULT_RETENTION, StoreError};
use crate::core::request::State;

use connection::RedisConnection;
use scripts::Scripts;
pub use seal::{MIN_KEY_BYTES, ShortKey, StateKey};
pub use target::RedisTarget;

/// How jitbot uses Redis. The connection itself (`REDIS_URL`) is a secret and comes
/// from the environment only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisSettings {
    /// Prefix of every key. It must contain a hash tag (`{…}`) so that all of
    /// jitbot's keys live in one cluster slot; give each jitbot installation sharing
    /// a Redis its own. Default `{jitbot}`.
    pub key_prefix: String,
    /// Roughly how many events the shared audit stream keeps (`XADD MAXLEN ~`); each
    /// request's own history is kept whole. Default 100000.
    pub audit_maxlen: u64,
    /// Longest wait to open a connection. Default 5 s.
    pub connect_timeout: Duration,
    /// Longest wait for Redis to answer a command. Default 2 s.
    pub response_timeout: Duration,
    /// Seals every stored request and refuses those whose seal does not verify (see
    /// [`seal`]). `jitbot serve` and the operator commands always set it (from
    /// `JITBOT_STATE_KEY`); `None`, for tests and benches only, stores and reads
    /// requests unsealed.
    pub state_key: Option<StateKey>,
    /// With Sentinel: send `REDIS_URL`'s user and password to the sentinels too (for
    /// sentinels with `requirepass` or ACL users), not only to Redis. Default false.
    pub sentinel_auth: bool,
    /// How long a finished request, its history and its notes are kept after it
    /// ended; `None`: for ever. Default 90 days.
    pub retention: Option<Duration>,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            key_prefix: "{jitbot}".to_owned(),
            audit_maxlen: 100_000,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(2),
            state_key: None,
            sentinel_auth: false,
            retention: Some(DEFAULT_RETENTION.as_std()),
        }
    }
}

/// Why a `RedisStore` could not be built. Messages never contain the password.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error("REDIS_URL is not usable: {0}")]
    Url(String),
    #[error(
        "redis key prefix `{0}` has no hash tag; use one like `{{jitbot}}` so all keys share one cluster slot"
    )]
    KeyPrefix(String),
    #[error(transparent)]
    Unavailable(StoreError),
}

/// jitbot's state in Redis. Cheap to clone: clones share one connection.
#[derive(Clone)]
pub struct RedisStore {
    conn: RedisConnection,
    keys: Keys,
    scripts: Arc<Scripts>,
    audit_maxlen: u64,
    state_key: Option<StateKey>,
    /// `RedisSettings::retention` in ms; `None`: finished requests are kept.
    retention_ms: Option<u64>,
    /// Bound on one call, reconnecting included.
    call_timeout: Duration,
    /// Where Redis is, without credentials, for messages.
    endpoint: String,
    /// One server, Redis Cluster or Redis Sentinel, for messages.
    mode: &'static str,
    /// Where failed calls are counted (`jitbot_store_errors_total`), once shared.
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("mode", &self.mode)
            .field("endpoint", &self.endpoint)
            .field("key_prefix", &self.keys.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to `url` (see [`target`] for the schemes: one server, Redis Cluster,
    /// Sentinel) and checks that Redis answers.
    pub async fn connect(url: &str, settings: &RedisSettings) -> Result<Self, ConnectError> {
        let target = RedisTarget::parse(url)?;
        let keys = Keys::new(&settings.key_prefix)?;
        let (endpoint, mode) = (target.endpoint(), target.mode());
        let call_timeout = settings.connect_timeout + settings.response_timeout;
        let unavailable = |why: String| {
            ConnectError::Unavailable(StoreError::Unavailable(format!(
                "cannot connect to Redis ({mode}) at {endpoint}: {why}"
            )))
        };
        let conn = tokio::time::timeout(call_timeout, RedisConnection::open(&target, settings))
            .await
            .map_err(|_| unavailable(format!("no answer within {call_timeout:?}")))?
            .map_err(|e| unavailable(e.to_string()))?;
        Ok(RedisStore {
            conn,
            keys,
            scripts: Arc::new(Scripts::new()),
            audit_maxlen: settings.audit_maxlen,
            state_key: settings.state_key.clone(),
            retention_ms: settings
                .retention
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .filter(|ms| *ms > 0),
            call_timeout,
            endpoint,
            mode,
            metrics: None,
        })
    }

    /// Counts failed calls, by kind, in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Counts `e` by kind and hands it back.
    fn counted(&self, e: StoreError) -> StoreError {
        self.count(match &e {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Tampered { .. } => "tampered",
            _ => "corrupt",
        });
        e
    }

    /// Counts one failed call of `kind` (a fixed set: see `jitbot_store_errors_total`).
    fn count(&self, kind: &'static str) {
        if let Some(m) = &self.metrics {
            m.store_error(kind);
        }
    }

    /// One server, Redis Cluster or Redis Sentinel.
    pub fn mode(&self) -> &'static str {
        self.mode
    }

    /// Where Redis is, as a URL without credentials.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Runs one Redis call within the call timeout. A refused connection means the
    /// command was never sent, so it is tried once more: the connection manager
    /// reports the old failure once before it reconnects.
    async fn call<T, F, Fut>(&self, what: &'static str, op: F) -> Result<T, StoreError>
    where
        F: Fn(RedisConnection) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let attempts = async {
            let mut result = op(self.conn.clone()).await;
            if matches!(&result, Err(e) if e.is_connection_refusal()) {
                result = op(self.conn.clone()).await;
            }
            result
        };
        match tokio::time::timeout(self.call_timeout, attempts).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.counted(self.error(what, &e))),
            Err(_) => {
                self.count("timeout");
                Err(StoreError::Unavailable(format!(
                    "Redis at {} did not answer {what} within {:?}",
                    self.endpoint, self.call_timeout
                )))
            }
        }
    }

    fn error(&self, what: &str, e: &RedisError) -> StoreError {
        store_error(&self.endpoint, what, e)
    }
}

/// What a Redis error means to callers. Only an answer that does not fit is
/// `Corrupt`; everything else, failover answers included (READONLY, MASTERDOWN,
/// CLUSTERDOWN, TRYAGAIN, LOADING), is `Unavailable`: it passes, and callers retry.
fn store_error(endpoint: &str, what: &str, e: &RedisError) -> StoreError {
    match e.kind() {
        ErrorKind::Parse | ErrorKind::UnexpectedReturnType => {
            StoreError::Corrupt(format!("{what}: unexpected answer from Redis: {e}"))
        }
        _ if e.code() == Some("WRONGTYPE") => {
            StoreError::Corrupt(format!("{what}: a key has the wrong type: {e}"))
        }
        _ => StoreError::Unavailable(format!("{what} on Redis at {endpoint}: {e}")),
    }
}

/// Key names, all under one prefix with a hash tag.
#[derive(Clone, Debug)]
struct Keys {
    prefix: String,
}

impl Keys {
    fn new(prefix: &str) -> Result<Self, ConnectError> {
        if hash_tag(prefix).is_none() {
            return Err(ConnectError::KeyPrefix(prefix.to_owned()));
        }
        Ok(Keys {
            prefix: prefix.to_owned(),
        })
    }
    fn request(&self, id: &RequestId) -> String {
        format!("{}:req:{id}", self.prefix)
    }
    fn due(&self) -> String {
        format!("{}:due", self.prefix)
    }
    fn claims(&self) -> String {
        format!("{}:claims", self.prefix)
    }
    fn state(&self, state: State) -> String {
        format!("{}:state:{state}", self.prefix)
    }
    fn requester(&self, user: &SlackUserId) -> String {
        format!("{}:requester:{user}", self.prefix)
    }
    fn audit(&self) -> String {
        format!("{}:audit", self.prefix)
    }
    fn history(&self, id: &RequestId) -> String {
        format!("{}:history:{id}", self.prefix)
    }
    fn notes(&self, id: &RequestId) -> String {
        format!("{}:notes:{id}", self.prefix)
    }
    fn once(&self, key: &str) -> String {
        format!("{}:once:{key}", self.prefix)
    }
}

/// The part of a key Redis Cluster hashes: between the first `{` and the next `}`,
/// if that is not empty.
fn hash_tag(key: &str) -> Option<&str> {
    let open = key.find('{')?;
    let rest = &key[open + 1..];
    let close = rest.find('}')?;
    (close > 0).then(|| &rest[..close])
}

/// Unix milliseconds rounded up, for timers and leases: never early.
fn ms_ceil(t: DateTime<Utc>) -> i64 {
    let floor = t.timestamp_millis();
    if t.timestamp_subsec_nanos().is_multiple_of(1_000_000) {
        floor
    } else {
        floor + 1
    }
}

/// Unix milliseconds rounded down, for `now`.
fn ms_floor(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// A timer as a script argument: its unix ms, or empty for "no timer".
fn timer_arg(due: Option<DateTime<Utc>>) -> String {
    due.map(|t| ms_ceil(t).to_string()).unwrap_or_default()
}
