//! The shipped manifests agree with the code: the config they mount passes
//! check-config, the ports, probes and paths they name are the ones jitbot serves, and
//! the Slack app manifest asks for exactly the scopes and URLs jitbot uses
//! ([`slack_app`]). The other submodules hold the security-facing parts: RBAC, Pod
//! Security and the network peers, and the Redis password and ACL.

use std::path::Path;

use serde_yaml::Value;

use jitbot::settings::Settings;

mod rbac;
mod redis;
mod security;
mod slack_app;
mod slack_app_socket;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// A YAML list of strings (a container's command or args).
fn strings(list: &Value) -> Vec<&str> {
    list.as_sequence()
        .unwrap_or_else(|| panic!("not a list: {list:?}"))
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect()
}

fn docs(path: &str) -> Vec<Value> {
    let text = read(path);
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

#[test]
fn the_cluster_catalog_passes_check_config() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/base/jitbot.toml");
    let (settings, catalog) = Settings::load_checked(Some(&path), &Default::default()).unwrap();
    assert!(!catalog.targets().is_empty());
    assert!(
        !settings.slack.audit_channel.is_empty(),
        "the cluster config names an audit channel"
    );
}

#[test]
fn the_deployment_matches_what_jitbot_serves() {
    let deployment = &docs("manifests/base/deployment.yaml")[0];
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(deployment["spec"]["replicas"], 2);
    // SIGTERM: unready for the drain delay, then a bounded stop, all before SIGKILL.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/base/jitbot.toml");
    let (shipped, _) = Settings::load_checked(Some(&path), &Default::default()).unwrap();
    let needs = shipped.server.drain_delay.as_std() + jitbot::startup::STOP_BOUND;
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        std::time::Duration::from_secs(grace) > needs,
        "terminationGracePeriodSeconds {grace} s leaves no room for a {needs:?} stop"
    );
    let port = container["ports"][0]["containerPort"].as_u64().unwrap();
    let listen = Settings::default().server.listen;
    assert!(listen.ends_with(&format!(":{port}")), "{listen} vs {port}");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["args"][0], "serve");
    let config_path = container["env"][0]["value"].as_str().unwrap();
    let mount = container["volumeMounts"][0]["mountPath"].as_str().unwrap();
    assert_eq!(config_path, format!("{mount}/jitbot.toml"));
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(pod["serviceAccountName"], "jitbot");
}

#[test]
fn the_secret_template_holds_no_real_values_and_every_secret_jitbot_reads() {
    let secret = &docs("manifests/secret.example.yaml")[0];
    let data = secret["stringData"].as_mapping().unwrap();
    for key in [
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SLACK_APP_TOKEN",
        "REDIS_URL",
        "JITBOT_STATE_KEY",
    ] {
        assert!(data.contains_key(key), "{key}");
    }
    assert_eq!(secret["stringData"]["JITBOT_STATE_KEY"], "");
    assert_eq!(secret["stringData"]["SLACK_BOT_TOKEN"], "");
    assert_eq!(secret["stringData"]["SLACK_SIGNING_SECRET"], "");
}
