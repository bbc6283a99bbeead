//! The binary as an operator runs it against a cluster: a config file, secrets in the
//! environment, the cluster from KUBECONFIG. `jitbot serve` serves health, readiness
//! and metrics and on SIGTERM stops accepting, finishes and exits 0; `jitbot render
//! --check` says whether a grant would change anything.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::config_file::target_table;
use crate::support::fake_slack::FakeSlack;
use crate::support::kube::{cluster, server};
use crate::support::slack_world::{APPROVALS, AUDIT, SECRET, TOKEN};

#[test]
fn serve_with_redis_but_no_state_key_stops_before_it_binds_and_says_how_to_make_one() {
    let out = Command::new(env!("CARGO_BIN_EXE_jitbot"))
        .arg("serve")
        .env("SLACK_BOT_TOKEN", TOKEN)
        .env("SLACK_SIGNING_SECRET", SECRET)
        .env("REDIS_URL", "redis://127.0.0.1:1")
        .env_remove("JITBOT_STATE_KEY")
        .env_remove("JITBOT_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("JITBOT_STATE_KEY is not set"), "{said}");
    assert!(said.contains("openssl rand -hex 32"), "{said}");

    let short = Command::new(env!("CARGO_BIN_EXE_jitbot"))
        .args(["grants", "list"])
        .env("REDIS_URL", "redis://127.0.0.1:1")
        .env("JITBOT_STATE_KEY", "too-short")
        .env_remove("JITBOT_CONFIG")
        .output()
        .unwrap();
    assert!(!short.status.success());
    let said = String::from_utf8_lossy(&short.stderr);
    assert!(said.contains("at least 32 characters"), "{said}");
    assert!(!said.contains("too-short"), "the key leaked: {said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_health_readiness_and_metrics_and_exits_0_on_sigterm() {
    let c = cluster().await;
    let slack = FakeSlack::start(TOKEN, &[APPROVALS, AUDIT], &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("jitbot.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
listen = "127.0.0.1:0"
metrics_listen = "127.0.0.1:0"
drain_delay = "3s"
[slack]
api_url = "{api}"
[log]
format = "json"
{target}"#,
            api = slack.api_url,
            target = target_table("payments-db", c.namespace.as_str(), "postgres"),
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_jitbot"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("KUBECONFIG", &server().kubeconfig)
        .env("SLACK_BOT_TOKEN", TOKEN)
        .env("SLACK_SIGNING_SECRET", SECRET)
        .env_remove("REDIS_URL")
        .env_remove("JITBOT_CONFIG")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The log says where it listens; every line is JSON.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut addrs = None;
    let mut seen = Vec::new();
    while addrs.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no listening line in {seen:#?}"));
        let json: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if json["message"] == "jitbot is listening" {
            let at = |field: &str| format!("http://{}", json[field].as_str().unwrap());
            addrs = Some((at("addr"), at("metrics_addr")));
        }
        seen.push(line);
    }
    let (base, metrics_base) = addrs.unwrap();
    assert_ne!(base, metrics_base, "metrics listen apart from Slack's port");
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{base}{path}")).send();
    let healthz = get("/healthz").await.unwrap();
    assert_eq!(healthz.status(), 200);
    let loops = healthz.text().await.unwrap();
    for running in [
        "sweep: running",
        "reconcile: running",
        "expiry guard: running",
    ] {
        assert!(loops.contains(running), "{loops}");
    }
    let ready = get("/readyz").await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.text().await.unwrap(),
        "ready\nstore: ok\ncluster: ok\n",
        "memory store and the API server answer"
    );
    assert_eq!(
        get("/metrics").await.unwrap().status(),
        404,
        "no metrics on the port Slack reaches"
    );
    let metrics = http
        .get(format!("{metrics_base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("jitbot_active_grants"), "{metrics}");
    assert!(
        metrics.contains("jitbot_dependency_up{dependency=\"store\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("jitbot_build_info{version="), "{metrics}");
    assert!(
        seen.iter().any(|l| l.contains("state lives in memory")),
        "the memory store warns at start"
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Unready at once, while it still answers for the drain delay.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let stopping = loop {
        let r = get("/readyz")
            .await
            .expect("it still answers while draining");
        if r.status() == 503 {
            break r.text().await.unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "/readyz still 200 after SIGTERM"
        );
        tokio::task::yield_now().await;
    };
    assert!(stopping.starts_with("stopping"), "{stopping}");
    assert_eq!(get("/healthz").await.unwrap().status(), 200, "still alive");
    let exited = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exited.code(), Some(0), "a SIGTERM is a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn render_check_says_whether_the_grant_matters_in_the_cluster() {
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    use kube::api::{Api, PostParams};

    let c = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("jitbot.toml");
    std::fs::write(
        &config,
        format!(
            r#"{target}
[[requesters]]
slack_user = "U0ALICE001"
source.addresses = ["10.8.0.14"]
"#,
            target = target_table("payments-db", c.namespace.as_str(), "postgres"),
        ),
    )
    .unwrap();
    let check = || {
        let out = Command::new(env!("CARGO_BIN_EXE_jitbot"))
            .args([
                "render",
                "--check",
                "--target",
                "payments-db",
                "--requester",
                "U0ALICE001",
                "--config",
            ])
            .arg(&config)
            .env("KUBECONFIG", &server().kubeconfig)
            .env_remove("JITBOT_CONFIG")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let first = check();
    assert!(
        first.starts_with("# does it matter? no default-deny: this grant changes nothing\n"),
        "{first}"
    );
    assert!(first.contains("kind: NetworkPolicy"));

    c.create_pod(&c.namespace, "postgres-0", &[("app", "postgres")])
        .await;
    let deny: NetworkPolicy = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "default-deny" },
        "spec": { "podSelector": {}, "policyTypes": ["Ingress"] }
    }))
    .unwrap();
    Api::<NetworkPolicy>::namespaced(c.client.clone(), c.namespace.as_str())
        .create(&PostParams::default(), &deny)
        .await
        .unwrap();
    let second = check();
    assert!(
        second.starts_with("# does it matter? default-deny present, 1 pod\n"),
        "{second}"
    );
}
