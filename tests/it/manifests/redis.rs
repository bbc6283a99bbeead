//! The shipped Redis: a password from its own Secret, never on a command line; an ACL
//! user with exactly the rights the README and the ACL test give jitbot; probes that
//! log in; and set-up commands that put one password in both Secrets.

use serde_yaml::Value;

use jitbot::settings::Settings;

use super::{docs, read, strings};
use crate::redis_ha::JITBOT_COMMANDS;

fn container() -> Value {
    let set = &docs("manifests/redis/statefulset.yaml")[0];
    set["spec"]["template"]["spec"]["containers"][0].clone()
}

/// The env var `name` of the container must come from Secret jitbot-redis.
fn from_secret(c: &Value, name: &str) {
    let var = c["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no {name}"));
    let key = &var["valueFrom"]["secretKeyRef"];
    assert_eq!(key["name"], "jitbot-redis", "{name}");
    assert_eq!(key["key"], "REDIS_PASSWORD", "{name}");
    assert!(var.get("value").is_none(), "{name}");
}

#[test]
fn the_password_comes_from_the_secret_and_the_acl_names_jitbots_prefix() {
    let c = container();
    from_secret(&c, "REDIS_PASSWORD");
    from_secret(&c, "REDISCLI_AUTH");
    let command = strings(&c["command"]);
    assert_eq!(command[..2], ["sh", "-c"]);
    let script = command[2];
    let prefix = Settings::default().store.key_prefix;
    let jitbot_line = script
        .lines()
        .find(|l| l.contains("user jitbot on"))
        .expect("the ACL line of user jitbot");
    assert!(
        jitbot_line.contains(&format!(
            ">$REDIS_PASSWORD resetchannels ~{prefix}:* {JITBOT_COMMANDS}\""
        )),
        "{jitbot_line}"
    );
    assert!(script.contains("'user default off resetpass"), "{script}");
    // The password reaches Redis through the ACL file only.
    let exec = script
        .lines()
        .find(|l| l.trim_start().starts_with("exec "))
        .unwrap();
    assert_eq!(
        exec.trim(),
        "exec redis-server --aclfile /run/redis/users.acl \"$@\""
    );
    let args = strings(&c["args"]);
    assert!(
        !args.iter().any(|a| a.contains("pass") || a.contains('$')),
        "{args:?}"
    );
    // Persistence as the README's Redis section asks for it.
    assert!(
        args.windows(2).any(|w| w == ["--appendfsync", "everysec"]),
        "{args:?}"
    );
    assert!(
        args.windows(2).any(|w| w == ["--appendonly", "yes"]),
        "{args:?}"
    );
    let set = &docs("manifests/redis/statefulset.yaml")[0];
    let acl = set["spec"]["template"]["spec"]["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "acl")
        .unwrap();
    assert_eq!(
        acl["emptyDir"]["medium"], "Memory",
        "the ACL file stays off the disk"
    );

    // The README gives the same rights to the same user.
    let readme = read("README.md");
    let documented = format!("ACL SETUSER jitbot on >… ~{prefix}:* {JITBOT_COMMANDS}`");
    assert!(readme.contains(&documented), "README lacks {documented}");
}

#[test]
fn every_probe_logs_in_as_jitbot() {
    let c = container();
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        let command: Vec<&str> = c[probe]["exec"]["command"]
            .as_sequence()
            .unwrap_or_else(|| panic!("no {probe}"))
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(
            command,
            ["sh", "-c", "redis-cli --user jitbot ping | grep -qx PONG"],
            "{probe}"
        );
    }
}

#[test]
fn the_service_is_headless_and_governs_the_statefulset() {
    let service = &docs("manifests/redis/service.yaml")[0];
    let set = &docs("manifests/redis/statefulset.yaml")[0];
    assert_eq!(service["spec"]["clusterIP"], "None");
    assert_eq!(set["spec"]["serviceName"], service["metadata"]["name"]);
    assert_eq!(service["spec"]["ports"][0]["port"], 6379);
}

#[test]
fn the_set_up_commands_put_one_password_in_both_secrets() {
    let url = "--from-literal=REDIS_URL=\"redis://jitbot:$REDIS_PASSWORD@jitbot-redis:6379\"";
    for (path, text) in [
        ("README.md", read("README.md")),
        (
            "manifests/kustomization.yaml",
            read("manifests/kustomization.yaml"),
        ),
    ] {
        assert!(
            text.contains("REDIS_PASSWORD=$(openssl rand -hex 32)"),
            "{path}"
        );
        assert!(
            text.contains("create secret generic jitbot-redis"),
            "{path}"
        );
        assert!(
            text.contains("--from-literal=REDIS_PASSWORD=\"$REDIS_PASSWORD\""),
            "{path}"
        );
        assert!(text.contains(url), "{path}");
    }
    let secrets = docs("manifests/secret.example.yaml");
    assert_eq!(
        secrets[0]["stringData"]["REDIS_URL"],
        "redis://jitbot:<password>@jitbot-redis:6379"
    );
    assert_eq!(secrets[1]["metadata"]["name"], "jitbot-redis");
    assert_eq!(secrets[1]["stringData"]["REDIS_PASSWORD"], "");
}
