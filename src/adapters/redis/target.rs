//! `REDIS_URL` read into where Redis is: one server, a Redis Cluster, or a master
//! found through Redis Sentinel. The scheme chooses:
//!
//! ```text
//! redis://[user:pass@]host[:6379][/db]                      one server
//! rediss://…                                                the same over TLS
//! redis+cluster://[user:pass@]host1:port1,host2:port2        Redis Cluster (seed nodes)
//! rediss+cluster://…                                        the same over TLS
//! redis+sentinel://[user:pass@]host1[:26379],host2/<master>[/db]
//!                                                           Sentinel (sentinels, master name)
//! rediss+sentinel://…                                       TLS to sentinels and to Redis
//! ```
//!
//! redis-rs reads the first two itself; it has no URL for Cluster or Sentinel, so
//! jitbot defines these. The user and password authenticate to Redis (every cluster
//! node; the master Sentinel names), and to the sentinels too when
//! `store.sentinel_auth` is set. Nothing here keeps the URL whole, and no message or
//! `Debug` output shows the password.

use std::fmt;

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};

use super::ConnectError;

/// The port a sentinel listens on when the URL names none.
const SENTINEL_PORT: u16 = 26379;

/// Where Redis is and how to reach it, as `REDIS_URL` says.
#[derive(Clone)]
pub enum RedisTarget {
    /// One server, reconnected by redis-rs's connection manager.
    Single(ConnectionInfo),
    /// Redis Cluster: the seed nodes, each with the URL's credentials. The client
    /// learns the other nodes and the slot map from them.
    Cluster {
        nodes: Vec<ConnectionInfo>,
        tls: bool,
    },
    /// A master found through the sentinels that monitor it.
    Sentinel(SentinelTarget),
}

/// The parts of a `redis+sentinel://` URL.
#[derive(Clone)]
pub struct SentinelTarget {
    /// Where the sentinels listen (TLS or not, as the scheme says).
    pub sentinels: Vec<ConnectionAddr>,
    /// The name the sentinels monitor the master under (`sentinel monitor <name> …`).
    pub master: String,
    /// Database, user and password for the master.
    pub node: RedisConnectionInfo,
    /// `rediss+sentinel://`: TLS to the sentinels and to the master.
    pub tls: bool,
}

impl RedisTarget {
    /// Reads `REDIS_URL` without connecting. Errors say what is wrong, never the URL.
    pub fn parse(url: &str) -> Result<Self, ConnectError> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(bad_scheme());
        };
        match scheme {
            "redis" | "rediss" => single(url).map(RedisTarget::Single),
            "redis+cluster" | "rediss+cluster" => cluster(scheme == "rediss+cluster", rest),
            "redis+sentinel" | "rediss+sentinel" => sentinel(scheme == "rediss+sentinel", rest),
            _ => Err(bad_scheme()),
        }
    }

    /// Which kind of Redis this is, for start-up messages.
    pub fn mode(&self) -> &'static str {
        match self {
            RedisTarget::Single(_) => "single server",
            RedisTarget::Cluster { .. } => "Redis Cluster",
            RedisTarget::Sentinel(_) => "Redis Sentinel",
        }
    }

    /// Where Redis is, as a URL without credentials: `rediss://host:6380/2`,
    /// `redis+cluster://a:7000,b:7001`, `redis+sentinel://a:26379,b:26379/mymaster`.
    pub fn endpoint(&self) -> String {
        match self {
            RedisTarget::Single(info) => single_endpoint(info),
            RedisTarget::Cluster { nodes, tls } => {
                let hosts: Vec<String> = nodes.iter().map(|n| n.addr().to_string()).collect();
                format!("{}+cluster://{}", scheme(*tls), hosts.join(","))
            }
            RedisTarget::Sentinel(s) => {
                let hosts: Vec<String> = s.sentinels.iter().map(ToString::to_string).collect();
                let db = match s.node.db() {
                    0 => String::new(),
                    db => format!("/{db}"),
                };
                format!(
                    "{}+sentinel://{}/{}{db}",
                    scheme(s.tls),
                    hosts.join(","),
                    s.master
                )
            }
        }
    }
}

impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTarget")
            .field("mode", &self.mode())
            .field("endpoint", &self.endpoint())
            .finish_non_exhaustive()
    }
}

fn bad_scheme() -> ConnectError {
    ConnectError::Url(
        "it must start with redis:// or rediss:// (TLS) for one server, \
         redis+sentinel:// or rediss+sentinel:// for Sentinel, \
         redis+cluster:// or rediss+cluster:// for Redis Cluster"
            .to_owned(),
    )
}

fn scheme(tls: bool) -> &'static str {
    if tls { "rediss" } else { "redis" }
}

/// `redis[s]://host:port[/db]`: where one server is, without credentials.
pub(super) fn single_endpoint(info: &ConnectionInfo) -> String {
    let scheme = scheme(matches!(info.addr(), ConnectionAddr::TcpTls { .. }));
    match info.redis_settings().db() {
        0 => format!("{scheme}://{}", info.addr()),
        db => format!("{scheme}://{}/{db}", info.addr()),
    }
}

/// A `redis://` or `rediss://` URL as redis-rs reads it, certificate checks kept on.
fn single(url: &str) -> Result<ConnectionInfo, ConnectError> {
    let info = url
        .into_connection_info()
        .map_err(|e| ConnectError::Url(e.to_string()))?;
    if matches!(info.addr(), ConnectionAddr::TcpTls { insecure: true, .. }) {
        return Err(ConnectError::Url(
            "`#insecure` is not supported: jitbot always verifies the Redis server's certificate"
                .to_owned(),
        ));
    }
    Ok(info)
}

/// A multi-host URL after its scheme: `[userinfo@]host,host[/path]`.
struct Parts<'a> {
    userinfo: Option<&'a str>,
    hosts: Vec<&'a str>,
    path: &'a str,
}

fn split<'a>(what: &str, rest: &'a str) -> Result<Parts<'a>, ConnectError> {
    if rest.contains(['?', '#']) {
        return Err(ConnectError::Url(format!(
            "a {what} URL takes no `?` options or `#` fragment"
        )));
    }
    // A `/` in a password must be written %2F, so the first `/` ends the host list.
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((user, hosts)) => (Some(user), hosts),
        None => (None, authority),
    };
    let hosts: Vec<&str> = hosts.split(',').map(str::trim).collect();
    if hosts.iter().any(|h| h.is_empty()) {
        return Err(ConnectError::Url(format!(
            "a {what} URL needs host:port entries separated by commas, none of them empty"
        )));
    }
    Ok(Parts {
        userinfo,
        hosts,
        path,
    })
}

/// One `host[:port]` of the list, as redis-rs reads `redis[s]://[userinfo@]host`.
fn node(tls: bool, userinfo: Option<&str>, host: &str) -> Result<ConnectionInfo, ConnectError> {
    let auth = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
    let info = format!("{}://{auth}{host}", scheme(tls))
        .into_connection_info()
        .map_err(|e| ConnectError::Url(format!("`{host}` is not a host and port: {e}")))?;
    Ok(info)
}

fn cluster(tls: bool, rest: &str) -> Result<RedisTarget, ConnectError> {
    let parts = split("Redis Cluster", rest)?;
    if !parts.path.is_empty() {
        return Err(ConnectError::Url(
            "Redis Cluster has only database 0: remove the `/…` after the hosts".to_owned(),
        ));
    }
    let nodes = parts
        .hosts
        .iter()
        .map(|host| node(tls, parts.userinfo, host))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RedisTarget::Cluster { nodes, tls })
}

fn sentinel(tls: bool, rest: &str) -> Result<RedisTarget, ConnectError> {
    let parts = split("Sentinel", rest)?;
    let (master, db) = parts.path.split_once('/').unwrap_or((parts.path, ""));
    if master.is_empty() || !master.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ConnectError::Url(
            "a Sentinel URL ends with the master's name: redis+sentinel://host1:26379,host2:26379/mymaster"
                .to_owned(),
        ));
    }
    let db = match db {
        "" => 0,
        db => db
            .parse::<i64>()
            .map_err(|_| ConnectError::Url(format!("`{db}` is not a database number (0, 1, …)")))?,
    };
    let sentinels = parts
        .hosts
        .iter()
        .map(|host| {
            let host = with_port(host, SENTINEL_PORT);
            node(tls, None, &host).map(|info| info.addr().clone())
        })
        .collect::<Result<Vec<_>, _>>()?;
    // The credentials, read the way redis-rs reads them for one server.
    let node = match parts.userinfo {
        Some(_) => node(tls, parts.userinfo, "localhost")?
            .redis_settings()
            .clone(),
        None => RedisConnectionInfo::default(),
    }
    .set_db(db);
    Ok(RedisTarget::Sentinel(SentinelTarget {
        sentinels,
        master: master.to_owned(),
        node,
        tls,
    }))
}

/// `host` with `:port` added when it names none (`[::1]` counts as naming none).
fn with_port(host: &str, port: u16) -> String {
    let tail = host.rfind(']').map_or(host, |i| &host[i..]);
    if tail.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
#[path = "target_tests.rs"]
mod tests;
