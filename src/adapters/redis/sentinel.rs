//! A connection to the master of a Sentinel-monitored Redis that follows failovers.
//!
//! redis-rs asks the sentinels which server is master (and checks with `ROLE` that
//! it is one) but keeps no connection across a failover, so this module does:
//!
//! - the connection is dropped as soon as it shows the master is lost: it fails, or
//!   the server answers READONLY or MASTERDOWN because it was demoted;
//! - a watch asks a sentinel every [`WATCH_INTERVAL`] which server is master, and
//!   drops the connection when it is another one. After `SENTINEL FAILOVER` the old
//!   master keeps taking writes until the sentinels demote it (up to ten seconds
//!   later); the watch bounds how long jitbot keeps writing there;
//! - the next call asks the sentinels again and connects to the master they name.
//!
//! Writes acknowledged by the old master after the switch are lost when it becomes a
//! replica. That is Sentinel's own limit; `min-replicas-to-write` on the master
//! bounds it (see the README).

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, Pipeline, RedisError, RedisFuture, RedisResult,
    ServerErrorKind, TlsMode, Value,
};

use super::RedisSettings;
use super::target::SentinelTarget;

/// How often the watch asks a sentinel which server is master.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// The master of a Sentinel-monitored Redis. Cheap to clone: clones share the
/// connection, and the watch ends when the last clone is dropped.
#[derive(Clone)]
pub(super) struct SentinelConnection {
    shared: Arc<Shared>,
}

struct Shared {
    /// Asks the sentinels; one call at a time (it caches its sentinel connections).
    sentinels: tokio::sync::Mutex<SentinelClient>,
    /// The watch's connection to a sentinel, opened again when it fails.
    watch: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    master: Mutex<Slot>,
    master_name: String,
    /// Timeouts of the connections to the master and the watch's to a sentinel.
    config: AsyncConnectionConfig,
    db: i64,
}

/// The open connection to the master, if any, numbered so that a call that saw an
/// old connection fail cannot drop a newer one.
#[derive(Default)]
struct Slot {
    generation: u64,
    open: Option<(MultiplexedConnection, ConnectionAddr)>,
}

impl SentinelConnection {
    /// Finds the master, connects to it and starts the watch.
    pub async fn open(target: &SentinelTarget, settings: &RedisSettings) -> RedisResult<Self> {
        let conn = SentinelConnection {
            shared: Arc::new(Shared {
                sentinels: tokio::sync::Mutex::new(client(target, settings)?),
                watch: tokio::sync::Mutex::new(None),
                master: Mutex::new(Slot::default()),
                master_name: target.master.clone(),
                config: AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(settings.connect_timeout))
                    .set_response_timeout(Some(settings.response_timeout)),
                db: target.node.db(),
            }),
        };
        conn.master().await?;
        tokio::spawn(watch(Arc::downgrade(&conn.shared)));
        Ok(conn)
    }

    fn slot(&self) -> MutexGuard<'_, Slot> {
        self.shared.slot()
    }

    fn current(&self) -> Option<(u64, MultiplexedConnection)> {
        let slot = self.slot();
        let (conn, _) = slot.open.as_ref()?;
        Some((slot.generation, conn.clone()))
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
        let addr = client.get_connection_info().addr().clone();
        tracing::info!(master = %addr, "connected to the Redis master the sentinels name");
        let mut slot = self.slot();
        slot.generation += 1;
        slot.open = Some((conn.clone(), addr));
        Ok((slot.generation, conn))
    }

    /// Drops connection `generation` if what it answered shows the master is lost.
    fn check<T>(&self, generation: u64, result: &RedisResult<T>, replies: &[Value]) {
        let lost = match result {
            Err(e) => master_lost(e),
            Ok(_) => replies.iter().any(|v| {
                matches!(v, Value::ServerError(e)
                    if matches!(e.kind(), Some(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)))
            }),
        };
        if lost {
            self.shared
                .forget(generation, "the Redis master stopped serving writes");
        }
    }
}

impl ConnectionLike for SentinelConnection {
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

    fn get_db(&self) -> i64 {
        self.shared.db
    }
}

impl Shared {
    fn slot(&self) -> MutexGuard<'_, Slot> {
        self.master.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn forget(&self, generation: u64, why: &str) {
        let mut slot = self.slot();
        if slot.generation == generation && slot.open.take().is_some() {
            tracing::warn!("{why}; asking the sentinels for the master again");
        }
    }

    /// Asks a sentinel which server is master; drops the connection if it is to
    /// another one. Errors only mean the question goes again on the next round.
    async fn check_master(&self) -> RedisResult<()> {
        let (generation, connected) = {
            let slot = self.slot();
            match &slot.open {
                Some((_, addr)) => (slot.generation, host_port(addr)),
                None => return Ok(()),
            }
        };
        let mut watch = self.watch.lock().await;
        if watch.is_none() {
            let client = self
                .sentinels
                .lock()
                .await
                .async_get_sentinel_client()
                .await?;
            *watch = Some(
                client
                    .get_multiplexed_async_connection_with_config(&self.config)
                    .await?,
            );
        }
        let Some(conn) = watch.as_mut() else {
            return Ok(());
        };
        let named: RedisResult<Option<(String, u16)>> = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(&self.master_name)
            .query_async(conn)
            .await;
        match named {
            Ok(Some(named)) if Some(&named) != connected.as_ref() => {
                self.forget(generation, "the sentinels name another Redis master");
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(e) => {
                *watch = None;
                Err(e)
            }
        }
    }
}

/// Runs [`Shared::check_master`] every [`WATCH_INTERVAL`] while the connection lives.
async fn watch(shared: Weak<Shared>) {
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if let Err(e) = shared.check_master().await {
            tracing::debug!(error = %e, "could not ask a sentinel for the Redis master");
        }
    }
}

fn host_port(addr: &ConnectionAddr) -> Option<(String, u16)> {
    match addr {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            Some((host.clone(), *port))
        }
        _ => None,
    }
}

/// redis-rs's Sentinel client for `target`: credentials (and TLS) for the master,
/// and for the sentinels when `sentinel_auth` is set.
fn client(target: &SentinelTarget, settings: &RedisSettings) -> RedisResult<SentinelClient> {
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
    builder.build()
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
