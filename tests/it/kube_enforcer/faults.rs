//! The adapter when the API server misbehaves: the fault proxy sits between them and
//! answers 5xx or 429, drops connections or stalls; every count below is of requests
//! that reached the proxy, so each is one attempt of the adapter's.

use std::time::{Duration, Instant};

use jitbot::adapters::kube::{KubeEnforcer, KubeSettings};
use jitbot::core::ports::{EnforceError, Enforcer};
use k8s_openapi::api::networking::v1::IPBlock;

use super::{enforcer, fast, grant, refs, stored};
use crate::support::fault_proxy::FaultProxy;
use crate::support::kube::{Cluster, cluster, server};

/// A fresh namespace, a proxy, and an admin client that goes through it.
async fn behind_proxy() -> (Cluster, FaultProxy, kube::Client) {
    let c = cluster().await;
    let proxy = FaultProxy::start(server()).await;
    let client = proxy.client(&server().admin_token);
    (c, proxy, client)
}

#[tokio::test]
async fn revoke_succeeds_through_five_503s() {
    let (c, proxy, client) = behind_proxy().await;
    let policies = grant(&c.namespace);
    enforcer(c.client.clone(), &[&c.namespace])
        .apply(&policies)
        .await
        .unwrap();

    proxy.fail_next(5, 503);
    let before = proxy.requests();
    enforcer(client, &[&c.namespace])
        .revoke(&refs(&policies))
        .await
        .unwrap();
    assert_eq!(proxy.requests() - before, 6);
    assert!(stored(&c, &policies[0]).await.is_none());
}

#[tokio::test]
async fn apply_waits_out_a_429_with_retry_after() {
    let (c, proxy, client) = behind_proxy().await;
    // Retry-After 1 s is capped by max_backoff (300 ms here); the ordinary first
    // backoff would be 5 ms, so the elapsed time shows the server's word was followed.
    let settings = KubeSettings {
        max_backoff: Duration::from_millis(300),
        ..fast()
    };
    let jitbot = KubeEnforcer::new(client, settings, vec![c.namespace.clone()]);
    proxy.throttle_next(1, 1);
    let started = Instant::now();
    jitbot.apply(&grant(&c.namespace)).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(proxy.requests(), 2);
}

#[tokio::test]
async fn a_dropped_connection_is_retried() {
    let (c, proxy, client) = behind_proxy().await;
    let policies = grant(&c.namespace);
    proxy.drop_next(1);
    enforcer(client, &[&c.namespace])
        .apply(&policies)
        .await
        .unwrap();
    assert_eq!(proxy.requests(), 2);
    assert!(stored(&c, &policies[0]).await.is_some());
}

#[tokio::test]
async fn apply_gives_up_after_its_attempts_when_the_server_keeps_failing() {
    let (c, proxy, client) = behind_proxy().await;
    proxy.fail_next(100, 500);
    let got = enforcer(client, &[&c.namespace])
        .apply(&grant(&c.namespace))
        .await;
    assert!(matches!(got, Err(EnforceError::Unavailable(_))), "{got:?}");
    assert_eq!(proxy.requests(), 3);
}

#[tokio::test]
async fn an_invalid_policy_is_refused_and_not_retried() {
    let (c, proxy, client) = behind_proxy().await;
    let mut policies = grant(&c.namespace);
    let spec = policies[0].spec.as_mut().unwrap();
    let peer = &mut spec.ingress.as_mut().unwrap()[0].from.as_mut().unwrap()[0];
    peer.ip_block = Some(IPBlock {
        cidr: "300.1.2.0/24".to_owned(),
        except: None,
    });
    let got = enforcer(client, &[&c.namespace]).apply(&policies).await;
    match got {
        Err(EnforceError::Refused(why)) => assert!(why.contains("422"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(proxy.requests(), 1);
}

#[tokio::test]
async fn a_forbidden_apply_is_refused_and_not_retried() {
    let (c, proxy, _) = behind_proxy().await;
    let nobody = proxy.client(&server().nobody_token);
    let got = enforcer(nobody, &[&c.namespace])
        .apply(&grant(&c.namespace))
        .await;
    match got {
        Err(EnforceError::Refused(why)) => assert!(why.contains("403"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(proxy.requests(), 1);
}

/// Longest a call that should give up on its own may take before the test calls it
/// hung: far above its settings, far below what ignoring them would take.
const HANG_GUARD: Duration = Duration::from_secs(25);

#[tokio::test]
async fn revoke_gives_up_at_its_deadline_when_the_server_never_recovers() {
    let (c, proxy, client) = behind_proxy().await;
    let policies = grant(&c.namespace);
    proxy.fail_next(100_000, 503);
    let settings = KubeSettings {
        revoke_deadline: Duration::from_millis(400),
        ..fast()
    };
    let jitbot = KubeEnforcer::new(client, settings, vec![c.namespace.clone()]);
    // A revoke that ignored its deadline would retry the 503s for ever: the guard
    // fails it, with room to spare for a busy machine.
    let got = tokio::time::timeout(HANG_GUARD, jitbot.revoke(&refs(&policies)))
        .await
        .expect("the revoke gives up at its deadline");
    assert!(matches!(got, Err(EnforceError::Unavailable(_))), "{got:?}");
    assert!(proxy.requests() >= 3, "only {} attempts", proxy.requests());
}

#[tokio::test]
async fn a_stalled_server_times_out_and_counts_as_unavailable() {
    let (c, proxy, client) = behind_proxy().await;
    proxy.set_latency(Duration::from_secs(30));
    let settings = KubeSettings {
        request_timeout: Duration::from_millis(200),
        apply_attempts: 2,
        ..fast()
    };
    let jitbot = KubeEnforcer::new(client, settings, vec![c.namespace.clone()]);
    // Without its request timeout each attempt would wait out the 30 s stall: two of
    // them overrun the guard.
    let got = tokio::time::timeout(HANG_GUARD, jitbot.apply(&grant(&c.namespace)))
        .await
        .expect("each attempt times out");
    match got {
        Err(EnforceError::Unavailable(why)) => assert!(why.contains("no answer"), "{why}"),
        other => panic!("expected unavailable, got {other:?}"),
    }
    assert_eq!(proxy.requests(), 2);
}
