//! Socket Mode's manifests: the Slack app of `manifests/slack-app-socket.yaml` is the
//! one of `slack-app.yaml` with no URLs and `socket_mode_enabled`, and the
//! `socket-mode` overlay runs jitbot with `slack.mode = "socket"`, its app token from
//! the Secret, and nothing Slack-facing in the cluster.

use std::collections::HashMap;

use serde_yaml::Value;

use jitbot::settings::{Settings, SlackMode};

use super::docs;

/// The keys under which a Slack app manifest names jitbot's URLs.
const URL_KEYS: [&str; 3] = ["url", "request_url", "message_menu_options_url"];

/// `manifest` without any of its URLs.
fn without_urls(manifest: &Value) -> Value {
    match manifest {
        Value::Mapping(m) => Value::Mapping(
            m.iter()
                .filter(|(k, _)| !k.as_str().is_some_and(|k| URL_KEYS.contains(&k)))
                .map(|(k, v)| (k.clone(), without_urls(v)))
                .collect(),
        ),
        Value::Sequence(items) => Value::Sequence(items.iter().map(without_urls).collect()),
        other => other.clone(),
    }
}

fn strings_in(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Mapping(m) => m.values().for_each(|v| strings_in(v, out)),
        Value::Sequence(items) => items.iter().for_each(|v| strings_in(v, out)),
        _ => {}
    }
}

#[test]
fn the_socket_mode_app_is_the_http_app_without_its_urls() {
    let http = &docs("manifests/slack-app.yaml")[0];
    let socket = &docs("manifests/slack-app-socket.yaml")[0];
    assert_eq!(http["settings"]["socket_mode_enabled"], false);
    assert_eq!(socket["settings"]["socket_mode_enabled"], true);
    let mut texts = Vec::new();
    strings_in(socket, &mut texts);
    assert!(
        !texts.iter().any(|t| t.contains("://")),
        "Socket Mode names no URL: {texts:?}"
    );

    // Scopes, bot events, the slash command and shortcuts, interactivity, the App
    // Home and the bot user: all as in the HTTP app.
    let mut expected = without_urls(http);
    expected["settings"]["socket_mode_enabled"] = Value::Bool(true);
    assert_eq!(
        socket,
        &expected,
        "manifests/slack-app-socket.yaml should read (comments aside):\n{}",
        serde_yaml::to_string(&expected).unwrap()
    );
    assert!(
        socket["oauth_config"]["scopes"]["bot"]
            .as_sequence()
            .is_some_and(|s| s.contains(&Value::from("commands")))
    );
    assert_eq!(socket["settings"]["interactivity"]["is_enabled"], true);
}

/// Applies a kustomize JSON 6902 patch (`add`, `remove`, `test`) to `doc`.
fn apply(doc: &mut Value, patch: &str) {
    let ops: Vec<Value> = serde_yaml::from_str(patch).unwrap();
    for op in ops {
        let path: Vec<String> = op["path"]
            .as_str()
            .unwrap()
            .split('/')
            .skip(1)
            .map(|p| p.replace("~1", "/").replace("~0", "~"))
            .collect();
        let (last, parents) = path.split_last().unwrap();
        let mut at = &mut *doc;
        for p in parents {
            at = match at {
                Value::Sequence(items) => &mut items[p.parse::<usize>().unwrap()],
                other => &mut other[p.as_str()],
            };
        }
        match op["op"].as_str().unwrap() {
            "add" => match at {
                Value::Sequence(items) if last == "-" => items.push(op["value"].clone()),
                Value::Sequence(items) => {
                    items.insert(last.parse().unwrap(), op["value"].clone());
                }
                other => other[last.as_str()] = op["value"].clone(),
            },
            "remove" => match at {
                Value::Sequence(items) => {
                    items.remove(last.parse::<usize>().unwrap());
                }
                Value::Mapping(m) => {
                    m.remove(last.as_str()).unwrap();
                }
                other => panic!("cannot remove {last} from {other:?}"),
            },
            "test" => {
                let found = match at {
                    Value::Sequence(items) => &items[last.parse::<usize>().unwrap()],
                    other => &other[last.as_str()],
                };
                assert_eq!(found, &op["value"], "patch test at {:?}", op["path"]);
            }
            other => panic!("unexpected patch op {other}"),
        }
    }
}

/// `base` with the overlay's patches for `kind` applied.
fn patched(overlay: &Value, kind: &str, mut base: Value) -> Value {
    for patch in overlay["patches"].as_sequence().unwrap() {
        if patch["target"]["kind"] == kind {
            apply(&mut base, patch["patch"].as_str().unwrap());
        }
    }
    base
}

#[test]
fn the_socket_mode_overlay_runs_socket_mode_with_nothing_slack_facing() {
    let overlay = &docs("manifests/overlays/socket-mode/kustomization.yaml")[0];
    let resources: Vec<&str> = overlay["resources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(resources, ["../../base", "../../redis"]);

    // slack.mode = "socket", and the app token from the Secret's SLACK_APP_TOKEN.
    let deployment = patched(
        overlay,
        "Deployment",
        docs("manifests/base/deployment.yaml")[0].clone(),
    );
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let env = container["env"].as_sequence().unwrap();
    let value_of = |name: &str| env.iter().find(|e| e["name"] == name).cloned();
    let mode = value_of("JITBOT__SLACK__MODE").expect("the overlay sets slack.mode");
    let vars = HashMap::from([(
        "JITBOT__SLACK__MODE".to_owned(),
        mode["value"].as_str().unwrap().to_owned(),
    )]);
    let (settings, _) = Settings::load_checked(None, &vars).unwrap();
    assert_eq!(settings.slack.mode, SlackMode::Socket);
    let token = value_of("SLACK_APP_TOKEN").expect("the overlay names SLACK_APP_TOKEN");
    let from = &token["valueFrom"]["secretKeyRef"];
    assert_eq!(
        (from["name"].as_str(), from["key"].as_str()),
        (Some("jitbot-secrets"), Some("SLACK_APP_TOKEN"))
    );
    assert!(
        from.get("optional")
            .is_none_or(|o| o == &Value::Bool(false)),
        "a pod without the token must not start"
    );
    let secret = &docs("manifests/secret.example.yaml")[0];
    assert_eq!(secret["stringData"]["SLACK_APP_TOKEN"], "");
    // The probes stay on server.listen, which Socket Mode still serves (the probes
    // alone: tests/it/socket_mode.rs).
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "http");

    // No Slack-facing port on the Service, no way in on it through the NetworkPolicy.
    let service = patched(
        overlay,
        "Service",
        docs("manifests/base/service.yaml")[0].clone(),
    );
    let ports = service["spec"]["ports"].as_sequence().unwrap();
    assert!(ports.iter().all(|p| p["targetPort"] != "http"), "{ports:?}");
    assert!(ports.iter().any(|p| p["targetPort"] == "metrics"));
    let policy = patched(
        overlay,
        "NetworkPolicy",
        docs("manifests/base/networkpolicy.yaml")[0].clone(),
    );
    let ingress = policy["spec"]["ingress"].as_sequence().unwrap();
    assert!(
        ingress.iter().all(|rule| rule["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .all(|p| p["port"] != 8080)),
        "{ingress:?}"
    );
    assert_eq!(ingress.len(), 1, "only Prometheus comes in: {ingress:?}");
}
