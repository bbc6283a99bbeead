//! `jitbot grants list|revoke` against the same Redis and cluster a running jitbot
//! uses, as an operator would run them.

use std::process::{Command, Output};

use chrono::TimeDelta;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::Api;

use jitbot::core::ports::Clock;

use crate::support::fake_slack::FakeSlack;
use crate::support::fakes::{ADMIN, ALICE, LEAD1};
use crate::support::kube::{cluster, server};
use crate::support::redis::{RedisServer, unique_prefix};
use crate::support::slack_world::{APPROVALS, AUDIT, InboundSlack, TOKEN};
use crate::support::spawn::{World, clock, settings, spawn_app};

fn jitbot(args: &[&str], config: &std::path::Path, redis: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jitbot"));
    cmd.args(args)
        .arg("--config")
        .arg(config)
        .env("KUBECONFIG", &server().kubeconfig)
        .env_remove("JITBOT_CONFIG")
        .env_remove("SLACK_BOT_TOKEN")
        .env_remove("REDIS_URL");
    if let Some(url) = redis {
        cmd.env("REDIS_URL", url);
    }
    cmd.output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_lists_and_revokes_a_grant_from_the_command_line() {
    let redis = RedisServer::start();
    let c = cluster().await;
    let slack = FakeSlack::start(TOKEN, &[APPROVALS, AUDIT], &[]).await;
    let clock = clock();
    let prefix = unique_prefix();
    let world = World {
        redis_url: &redis.url(),
        key_prefix: &prefix,
        kube: c.client.clone(),
        namespace: &c.namespace,
        slack_api_url: &slack.api_url,
        clock: clock.clone(),
    };
    let app = spawn_app(&world, false).await;
    let inbound = InboundSlack::new(format!("http://{}", app.addr), clock.clone(), &slack);
    let (_, answer) = inbound
        .command(ALICE, "request payments-db 30m INC-4411 replica lag")
        .await;
    let id = answer
        .strip_prefix("Request `")
        .and_then(|r| r.split('`').next())
        .unwrap()
        .to_owned();
    app.app
        .decide(
            &id.parse().unwrap(),
            &LEAD1.parse().unwrap(),
            jitbot::app::Decision::Approve,
        )
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("jitbot.toml");
    let mut s = settings(&world);
    s.access.admins = vec![ADMIN.to_owned()];
    std::fs::write(&config, toml::to_string(&s).unwrap()).unwrap();

    let out = jitbot(&["grants", "list"], &config, None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("set REDIS_URL"));

    let out = jitbot(&["grants", "list"], &config, Some(&redis.url()));
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        listed.contains(&id) && listed.contains("payments-db") && listed.contains(LEAD1),
        "{listed}"
    );

    let out = jitbot(
        &["grants", "revoke", &id, "--by", "U0MALLORY1"],
        &config,
        Some(&redis.url()),
    );
    assert_eq!(out.status.code(), Some(2), "a stranger may not revoke");
    let out = jitbot(
        &[
            "grants",
            "revoke",
            &id,
            "--by",
            ADMIN,
            "--reason",
            "incident over",
        ],
        &config,
        Some(&redis.url()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let policies: Api<NetworkPolicy> = Api::namespaced(c.client.clone(), c.namespace.as_str());
    assert!(
        policies
            .get_opt(&format!("jit-{id}"))
            .await
            .unwrap()
            .is_none(),
        "the policy is gone"
    );
    let req = app.app.load(&id.parse().unwrap()).await.unwrap();
    assert_eq!(req.end_reason.as_deref(), Some("incident over"));
    clock.advance(TimeDelta::hours(1));
    assert_eq!(
        app.app.sweep_once(clock.now()).await.unwrap().claimed,
        0,
        "nothing left to expire"
    );
    app.stop().await;
}
