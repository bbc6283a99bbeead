//! One connection type for the three ways jitbot reaches Redis, so that every store
//! call, script and timeout works the same on each:
//!
//! - one server: redis-rs's `ConnectionManager`, which reconnects on its own;
//! - Redis Cluster: redis-rs's cluster client, which follows MOVED and ASK, refreshes
//!   the slot map after a failover and reconnects to each node;
//! - Sentinel: [`SentinelConnection`], a multiplexed connection to the master the
//!   sentinels name. redis-rs asks the sentinels (and checks with `ROLE` that the
//!   server it names is a master) but keeps no connection across a failover, so this
//!   module drops the connection when the master is lost (the connection fails, or
//!   the server answers READONLY or MASTERDOWN because it was demoted) and asks the
//!   sentinels again on the next call.
//!
//! Every clone shares one connection; nothing here retries a command (the store does,
//! where that is safe) or knows about jitbot's keys.

use std::sync::{Arc, Mutex, MutexGuard};

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, Pipeline, RedisError, RedisFuture, RedisResult, ServerErrorKind,
    TlsMode, Value,
};

use super::RedisSettings;
use super::target::{RedisTarget, SentinelTarget};

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
                let conn = SentinelConnection::new(target, settings)?;
                conn.master().await?;
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
            RedisConnection::Sentinel(c) => c.shared.db,
        }
    }
}

/// The master of a Sentinel-monitored Redis, found again after each failover.
#[derive(Clone)]
pub(super) struct SentinelConnection {
    shared: Arc<SentinelShared>,
}

struct SentinelShared {
    /// Asks the sentinels; one call at a time (it caches its sentinel connections).
    sentinels: tokio::sync::Mutex<SentinelClient>,
    /// The master's connection, if one is open, and a count of masters connected so
    /// far, so that a call that saw an old connection fail cannot drop a newer one.
    master: Mutex<(u64, Option<MultiplexedConnection>)>,
    /// Timeouts of the connection to the master.
    config: AsyncConnectionConfig,
    db: i64,
}

impl SentinelConnection {
    fn new(target: &SentinelTarget, settings: &RedisSettings) -> RedisResult<Self> {
        let node = &target.node;
        let mut builder = SentinelClientBuilder::new(
            target.sentinels.clone(),
            &target.master,
            SentinelServerType::Master,
        )?
        .set_client_to_redis_db(node.db());
        if let Some(user) = node.username() {
            builder = builder.set_client_to_redis_username(user);
        }
        if let Some(password) = node.password() {
            builder = builder.set_client_to_redis_password(password);
        }
        if settings.sentinel_auth {
            if let Some(user) = node.username() {
                builder = builder.set_client_to_sentinel_username(user);
            }
            if let Some(password) = node.password() {
                builder = builder.set_client_to_sentinel_password(password);
            }
        }
        if target.tls {
            // The sentinels' addresses already say TLS; this is for the master.
            builder = builder.set_client_to_redis_tls_mode(TlsMode::Secure);
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.response_timeout));
        Ok(SentinelConnection {
            shared: Arc::new(SentinelShared {
                sentinels: tokio::sync::Mutex::new(builder.build()?),
                master: Mutex::new((0, None)),
                config,
                db: node.db(),
            }),
        })
    }

    fn slot(&self) -> MutexGuard<'_, (u64, Option<MultiplexedConnection>)> {
        self.shared.master.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn current(&self) -> Option<(u64, MultiplexedConnection)> {
        let slot = self.slot();
        slot.1.clone().map(|c| (slot.0, c))
    }

    /// The open connection to the master, or a new one to the master the sentinels
    /// name now.
    async fn master(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        if let Some(open) = self.current() {
            return Ok(open);
        }
        let mut sentinels = self.shared.sentinels.lock().await;
        // Another call may have connected while this one waited for the sentinels.
        if let Some(open) = self.current() {
            return Ok(open);
        }
        let client = sentinels.async_get_client().await?;
        let conn = client
            .get_multiplexed_async_connection_with_config(&self.shared.config)
            .await?;
        let mut slot = self.slot();
        slot.0 += 1;
        slot.1 = Some(conn.clone());
        tracing::info!(master = %client.get_connection_info().addr(), "connected to the Redis master the sentinels name");
        Ok((slot.0, conn))
    }

    /// Drops connection `generation` if the master behind it is gone or demoted.
    fn check<T>(&self, generation: u64, result: &RedisResult<T>, replies: &[Value]) {
        let lost = match result {
            Err(e) => master_lost(e),
            Ok(_) => replies.iter().any(|v| {
                matches!(v, Value::ServerError(e)
                    if matches!(e.kind(), Some(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)))
            }),
        };
        if lost {
            let mut slot = self.slot();
            if slot.0 == generation && slot.1.take().is_some() {
                tracing::warn!(
                    "lost the Redis master; asking the sentinels again on the next call"
                );
            }
        }
    }

    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let (generation, mut conn) = self.master().await?;
            let result = conn.req_packed_command(cmd).await;
            let replies = result.as_ref().map(std::slice::from_ref).unwrap_or(&[]);
            self.check(generation, &result, replies);
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let (generation, mut conn) = self.master().await?;
            let result = conn.req_packed_commands(pipeline, offset, count).await;
            let replies = result.as_deref().unwrap_or(&[]);
            self.check(generation, &result, replies);
            result
        })
    }
}

/// Whether an error means the connection no longer reaches a master: it broke, or
/// the server says it is a replica now or has lost its master.
fn master_lost(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
        || matches!(
            e.kind(),
            redis::ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
        )
}
