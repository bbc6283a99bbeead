//! `jitbot grants list|revoke` against the same Redis and cluster a running jitbot
//! uses, as an operator would run them.

use std::process::{Command, Output};

use chrono::TimeDelta;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::Api;

use jitbot::core::ports::Clock;

use crate::support::fakes::{ADMIN, ALICE, LEAD1, approve, request_id_in};
use crate::support::kube::server;
use crate::support::spawn::{STATE_KEY, one_replica, settings};

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
        cmd.env("REDIS_URL", url).env("JITBOT_STATE_KEY", STATE_KEY);
    }
    cmd.output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_lists_and_revokes_a_grant_from_the_command_line() {
    let (stack, clock, app) = one_replica(false).await;
    let inbound = stack.inbound(&app, &clock);
    let (_, answer) = inbound
        .command(ALICE, "request payments-db 30m INC-4411 replica lag")
        .await;
    let id = request_id_in(&answer);
    approve(&app.app, &id.parse().unwrap(), LEAD1).await;

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("jitbot.toml");
    let mut s = settings(&stack.world(&clock));
    s.access.admins = vec![ADMIN.to_owned()];
    std::fs::write(&config, toml::to_string(&s).unwrap()).unwrap();

    let out = jitbot(&["grants", "list"], &config, None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("set REDIS_URL"));

    let out = jitbot(&["grants", "list"], &config, Some(&stack.redis_url));
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
        Some(&stack.redis_url),
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
        Some(&stack.redis_url),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let policies: Api<NetworkPolicy> = Api::namespaced(
        stack.cluster.client.clone(),
        stack.cluster.namespace.as_str(),
    );
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
