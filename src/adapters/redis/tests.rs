//! Unit tests that need no server: one-server URLs, error mapping, key layout, time
//! rounding (Cluster and Sentinel URLs: `target_tests.rs`). The store itself is
//! tested against a real redis-server in tests/it/redis_store.rs and redis_ha.rs.

use chrono::{TimeDelta, TimeZone, Utc};
use redis::{ConnectionAddr, ConnectionInfo};

use super::*;

const PASSWORD: &str = "s3cr3t-Pa55";

fn parse_url(url: &str) -> Result<ConnectionInfo, ConnectError> {
    match RedisTarget::parse(url)? {
        RedisTarget::Single(info) => Ok(info),
        other => panic!("{url} is not one server: {other:?}"),
    }
}

fn endpoint(info: &ConnectionInfo) -> String {
    RedisTarget::Single(info.clone()).endpoint()
}

#[test]
fn parses_tls_urls_with_user_and_password() {
    let info = parse_url(&format!(
        "rediss://jitbot:{PASSWORD}@redis.internal.example:6380/2"
    ))
    .unwrap();
    match info.addr() {
        ConnectionAddr::TcpTls {
            host,
            port,
            insecure,
            ..
        } => {
            assert_eq!(
                (host.as_str(), *port, *insecure),
                ("redis.internal.example", 6380, false)
            );
        }
        other => panic!("expected TLS, got {other:?}"),
    }
    let redis = info.redis_settings();
    assert_eq!(redis.username(), Some("jitbot"));
    assert_eq!(redis.password(), Some(PASSWORD));
    assert_eq!(redis.db(), 2);
    assert_eq!(endpoint(&info), "rediss://redis.internal.example:6380/2");
}

#[test]
fn parses_plain_urls_with_a_password_only() {
    let info = parse_url(&format!("redis://:{PASSWORD}@127.0.0.1")).unwrap();
    assert!(matches!(info.addr(), ConnectionAddr::Tcp(host, 6379) if host == "127.0.0.1"));
    assert_eq!(info.redis_settings().username(), None);
    assert_eq!(info.redis_settings().password(), Some(PASSWORD));
    assert_eq!(endpoint(&info), "redis://127.0.0.1:6379");
}

#[test]
fn bad_urls_are_refused_without_printing_the_password() {
    for url in [
        format!("http://jitbot:{PASSWORD}@redis:6379"),
        format!("redis://jitbot:{PASSWORD}@"),
        format!("rediss://jitbot:{PASSWORD}@redis:6380/not-a-db"),
        format!("redis://jitbot:{PASSWORD}@redis:99999"),
        format!("jitbot:{PASSWORD}@redis:6379"),
        format!("rediss://jitbot:{PASSWORD}@redis:6380#insecure"),
    ] {
        let err = parse_url(&url).expect_err(&url);
        let shown = format!("{err} {err:?}");
        assert!(shown.starts_with("REDIS_URL is not usable"), "{shown}");
        assert!(!shown.contains(PASSWORD), "{shown}");
    }
}

#[tokio::test]
async fn connect_errors_and_debug_never_print_the_password() {
    // Nothing listens on port 1; the connection is refused at once.
    let settings = RedisSettings {
        connect_timeout: Duration::from_millis(300),
        response_timeout: Duration::from_millis(300),
        ..RedisSettings::default()
    };
    let err = RedisStore::connect(&format!("redis://jitbot:{PASSWORD}@127.0.0.1:1"), &settings)
        .await
        .unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(
        matches!(err, ConnectError::Unavailable(StoreError::Unavailable(_))),
        "{shown}"
    );
    assert!(shown.contains("redis://127.0.0.1:1"), "{shown}");
    assert!(!shown.contains(PASSWORD), "{shown}");
}

/// A reply as Redis sends it, read back as the error a call returns.
fn server_error(reply: &str) -> RedisError {
    let value = redis::parse_redis_value(reply.as_bytes()).unwrap();
    value.extract_error().unwrap_err()
}

#[test]
fn failover_answers_are_unavailable_so_callers_retry() {
    for reply in [
        "-READONLY You can't write against a read only replica.\r\n",
        "-MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.\r\n",
        "-CLUSTERDOWN The cluster is down\r\n",
        "-TRYAGAIN Multiple keys request during rehashing of slot\r\n",
        "-LOADING Redis is loading the dataset in memory\r\n",
    ] {
        let err = store_error("redis://127.0.0.1:6379", "create", &server_error(reply));
        assert!(
            matches!(err, StoreError::Unavailable(_)),
            "{reply}: {err:?}"
        );
    }
    let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
    let err = store_error("redis://127.0.0.1:6379", "load", &refused);
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let wrong =
        server_error("-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
    let err = store_error("redis://127.0.0.1:6379", "load", &wrong);
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
}

#[test]
fn the_key_prefix_needs_a_hash_tag() {
    assert_eq!(hash_tag("{jitbot}"), Some("jitbot"));
    assert_eq!(hash_tag("prod:{jitbot-eu}:v1"), Some("jitbot-eu"));
    assert_eq!(hash_tag("jitbot"), None);
    assert_eq!(hash_tag("{}jitbot"), None);
    assert_eq!(hash_tag("{jitbot"), None);
    assert!(Keys::new("{jitbot}").is_ok());
    let err = Keys::new("jitbot").unwrap_err();
    assert!(err.to_string().contains("hash tag"), "{err}");
}

#[test]
fn every_key_carries_the_prefix_hash_tag() {
    let keys = Keys::new("{jitbot}").unwrap();
    let id = RequestId::from_random([7; 10]);
    let user: SlackUserId = "U0ALICE001".parse().unwrap();
    for key in [
        keys.request(&id),
        keys.due(),
        keys.claims(),
        keys.state(State::Active),
        keys.requester(&user),
        keys.audit(),
        keys.history(&id),
    ] {
        assert!(key.starts_with("{jitbot}:"), "{key}");
        assert_eq!(hash_tag(&key), Some("jitbot"), "{key}");
    }
}

#[test]
fn timers_round_up_and_now_rounds_down() {
    let t = Utc.with_ymd_and_hms(2026, 11, 26, 14, 0, 0).unwrap();
    assert_eq!(ms_ceil(t), ms_floor(t));
    let later = t + TimeDelta::microseconds(1);
    assert_eq!(ms_ceil(later), ms_floor(t) + 1);
    assert_eq!(ms_floor(later), ms_floor(t));
    assert_eq!(timer_arg(None), "");
    assert_eq!(timer_arg(Some(t)), ms_floor(t).to_string());
}

#[test]
fn defaults_are_documented_values() {
    let d = RedisSettings::default();
    assert_eq!(d.key_prefix, "{jitbot}");
    assert_eq!(d.audit_maxlen, 100_000);
    assert_eq!(d.connect_timeout, Duration::from_secs(5));
    assert_eq!(d.response_timeout, Duration::from_secs(2));
    assert!(!d.sentinel_auth);
    assert_eq!(d.retention, Some(Duration::from_secs(90 * 24 * 3600)));
}
