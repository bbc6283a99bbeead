//! One connection type for the three ways jitbot reaches Redis, so that every store
//! call, script and timeout works the same on each:
//!
//! - one server: redis-rs's `ConnectionManager`, which reconnects on its own;
//! - Redis Cluster: redis-rs's cluster client, which follows MOVED and ASK, refreshes
//!   the slot map after a failover and reconnects to each node;
//! - Sentinel: [`SentinelConnection`], a connection to the master the sentinels name,
//!   found again after a failover.
//!
//! Every clone shares one connection; nothing here retries a command (the store does,
//! where that is safe) or knows about jitbot's keys.

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

use super::RedisSettings;
use super::sentinel::SentinelConnection;
use super::target::RedisTarget;

/// Connection attempts per reconnect before a call gives up; the next call starts
/// again, so the store recovers whenever Redis is back.
const RECONNECT_ATTEMPTS: usize = 2;

/// A connection to Redis in whichever mode `REDIS_URL` chose. Cheap to clone: clones
/// share the underlying connections.
#[derive(Clone)]
pub(super) enum RedisConnection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(SentinelConnection),
}

impl RedisConnection {
    /// Connects (for Sentinel: finds the master and connects to it). Not bounded in
    /// time here; the store bounds it.
    pub async fn open(target: &RedisTarget, settings: &RedisSettings) -> RedisResult<Self> {
        match target {
            RedisTarget::Single(info) => {
                let client = redis::Client::open(info.clone())?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(settings.connect_timeout))
                    .set_response_timeout(Some(settings.response_timeout))
                    .set_number_of_retries(RECONNECT_ATTEMPTS)
                    .set_min_delay(std::time::Duration::from_millis(50))
                    .set_max_delay(std::time::Duration::from_millis(500));
                let manager = ConnectionManager::new_with_config(client, config).await?;
                Ok(RedisConnection::Single(manager))
            }
            RedisTarget::Cluster { nodes, .. } => {
                // TLS, user and password come from the nodes' URLs.
                let client = ClusterClient::builder(nodes.clone())
                    .connection_timeout(settings.connect_timeout)
                    .response_timeout(settings.response_timeout)
                    .build()?;
                Ok(RedisConnection::Cluster(
                    client.get_async_connection().await?,
                ))
            }
            RedisTarget::Sentinel(target) => {
                let conn = SentinelConnection::open(target, settings).await?;
                Ok(RedisConnection::Sentinel(conn))
            }
        }
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConnection::Single(c) => c.req_packed_command(cmd),
            RedisConnection::Cluster(c) => c.req_packed_command(cmd),
            RedisConnection::Sentinel(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConnection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConnection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConnection::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConnection::Single(c) => c.get_db(),
            RedisConnection::Cluster(c) => c.get_db(),
            RedisConnection::Sentinel(c) => c.get_db(),
        }
    }
}
