//! `REDIS_URL` for Redis Cluster and Sentinel: what is read, what is refused, and that
//! no message shows the password.

use redis::ConnectionAddr;

use super::*;

const PASSWORD: &str = "s3cr3t-Pa55";

fn sentinel_of(url: &str) -> SentinelTarget {
    match RedisTarget::parse(url).unwrap() {
        RedisTarget::Sentinel(s) => s,
        other => panic!("{url}: expected Sentinel, got {other:?}"),
    }
}

fn tcp(addr: &ConnectionAddr) -> (String, u16, bool) {
    match addr {
        ConnectionAddr::Tcp(host, port) => (host.clone(), *port, false),
        ConnectionAddr::TcpTls {
            host,
            port,
            insecure,
            ..
        } => {
            assert!(!insecure, "certificates are always checked");
            (host.clone(), *port, true)
        }
        other => panic!("not TCP: {other:?}"),
    }
}

#[test]
fn a_sentinel_url_names_the_sentinels_the_master_and_the_database() {
    let s = sentinel_of(&format!(
        "redis+sentinel://jitbot:{PASSWORD}@10.0.0.1:26380,sentinel-b/prod-master/3"
    ));
    let addrs: Vec<_> = s.sentinels.iter().map(tcp).collect();
    assert_eq!(
        addrs,
        [
            ("10.0.0.1".to_owned(), 26380, false),
            ("sentinel-b".to_owned(), 26379, false)
        ]
    );
    assert_eq!(s.master, "prod-master");
    assert_eq!(
        (s.node.db(), s.node.username(), s.node.password()),
        (3, Some("jitbot"), Some(PASSWORD))
    );
    assert!(!s.tls);
}

#[test]
fn rediss_sentinel_is_tls_to_sentinels_and_master() {
    let url = "rediss+sentinel://[::1],sentinel.example:26390/jitbot";
    let s = sentinel_of(url);
    let addrs: Vec<_> = s.sentinels.iter().map(tcp).collect();
    assert_eq!(
        addrs,
        [
            ("::1".to_owned(), 26379, true),
            ("sentinel.example".to_owned(), 26390, true)
        ]
    );
    assert!(s.tls);
    assert_eq!((s.node.username(), s.node.password()), (None, None));
    let target = RedisTarget::parse(url).unwrap();
    assert_eq!(target.mode(), "Redis Sentinel");
    assert_eq!(
        target.endpoint(),
        "rediss+sentinel://::1:26379,sentinel.example:26390/jitbot"
    );
}

#[test]
fn a_cluster_url_lists_seed_nodes_that_share_the_credentials() {
    let url = format!("rediss+cluster://:{PASSWORD}@node-a:7000, node-b:7001");
    let target = RedisTarget::parse(&url).unwrap();
    let RedisTarget::Cluster { nodes, tls } = &target else {
        panic!("expected a cluster: {target:?}");
    };
    assert!(*tls);
    let addrs: Vec<_> = nodes.iter().map(|n| tcp(n.addr())).collect();
    assert_eq!(
        addrs,
        [
            ("node-a".to_owned(), 7000, true),
            ("node-b".to_owned(), 7001, true)
        ]
    );
    for node in nodes {
        assert_eq!(node.redis_settings().password(), Some(PASSWORD));
    }
    assert_eq!(target.mode(), "Redis Cluster");
    assert_eq!(
        target.endpoint(),
        "rediss+cluster://node-a:7000,node-b:7001"
    );
    let shown = format!("{target:?} {}", target.endpoint());
    assert!(!shown.contains(PASSWORD), "{shown}");
}

#[test]
fn a_percent_encoded_password_is_decoded() {
    let s = sentinel_of("redis+sentinel://jitbot:p%40ss%2Fw0rd@127.0.0.1/mymaster");
    assert_eq!(s.node.password(), Some("p@ss/w0rd"));
}

#[test]
fn bad_ha_urls_say_what_is_wrong_without_the_password() {
    for (url, says) in [
        (
            format!("redis+sentinel://jitbot:{PASSWORD}@127.0.0.1:26379"),
            "ends with the master's name",
        ),
        (
            format!("redis+sentinel://jitbot:{PASSWORD}@127.0.0.1:26379/"),
            "ends with the master's name",
        ),
        (
            format!("redis+sentinel://jitbot:{PASSWORD}@127.0.0.1/mymaster/first"),
            "`first` is not a database number",
        ),
        (
            format!("redis+sentinel://jitbot:{PASSWORD}@127.0.0.1,,b/mymaster"),
            "none of them empty",
        ),
        (
            format!("redis+sentinel://jitbot:{PASSWORD}@127.0.0.1:99999/mymaster"),
            "is not a host and port",
        ),
        (
            format!("redis+cluster://jitbot:{PASSWORD}@a:7000,b:7001/2"),
            "only database 0",
        ),
        (
            format!("redis+cluster://jitbot:{PASSWORD}@a:7000?protocol=resp3"),
            "no `?` options",
        ),
        (
            format!("rediss+cluster://jitbot:{PASSWORD}@a:7000#insecure"),
            "no `?` options or `#` fragment",
        ),
        (
            format!("redis-sentinel://jitbot:{PASSWORD}@a:26379/mymaster"),
            "redis+sentinel://",
        ),
    ] {
        let err = RedisTarget::parse(&url).expect_err(&url);
        let shown = format!("{err} {err:?}");
        assert!(shown.starts_with("REDIS_URL is not usable"), "{shown}");
        assert!(shown.contains(says), "{url}: {shown}");
        assert!(!shown.contains(PASSWORD), "{shown}");
    }
}
