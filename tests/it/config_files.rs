//! The shipped configuration files and the `check-config` / `render` commands, run as
//! a user runs them.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use jitbot::settings::Settings;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn jitbot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jitbot"))
        .args(args)
        .env_remove("JITBOT_CONFIG")
        .output()
        .expect("the jitbot binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every key path of a TOML table, as `section.key`.
fn key_paths(value: &toml::Value, prefix: &str, out: &mut BTreeSet<String>) {
    if let toml::Value::Table(table) = value {
        for (k, v) in table {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            if v.is_table() {
                key_paths(v, &path, out);
            } else {
                out.insert(path);
            }
        }
    }
}

#[test]
fn default_toml_equals_the_built_in_defaults() {
    let loaded = Settings::load(Some(&repo("config/default.toml")), &HashMap::new()).unwrap();
    assert_eq!(loaded, Settings::default());
}

#[test]
fn default_toml_names_and_documents_every_key() {
    let text = std::fs::read_to_string(repo("config/default.toml")).unwrap();
    let file: toml::Value = toml::from_str(&text).unwrap();
    let built_in = toml::Value::try_from(Settings::default()).unwrap();
    let (mut in_file, mut in_code) = (BTreeSet::new(), BTreeSet::new());
    key_paths(&file, "", &mut in_file);
    key_paths(&built_in, "", &mut in_code);
    // The catalog lists are empty by default and documented in comments.
    in_code.retain(|k| k != "targets" && k != "requesters");
    assert_eq!(in_file, in_code);
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let is_key = !line.starts_with('#') && !line.starts_with('[') && line.contains(" = ");
        if is_key {
            assert!(
                lines[i - 1].starts_with('#'),
                "`{line}` has no comment above it"
            );
        }
    }
}

#[test]
fn example_catalog_passes_check_config() {
    let out = jitbot(&[
        "check-config",
        "--config",
        repo("config/example.toml").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("ok — 4 target(s), 4 requester(s)"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn check_config_says_where_state_lives_and_refuses_redis_without_a_state_key() {
    let example = repo("config/example.toml");
    let check = |vars: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_jitbot"));
        cmd.args(["check-config", "--config", example.to_str().unwrap()])
            .env_remove("JITBOT_CONFIG")
            .env_remove("REDIS_URL")
            .env_remove("JITBOT_STATE_KEY");
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let memory = check(&[]);
    assert!(memory.status.success());
    assert!(text(&memory.stdout).contains("store: memory"));
    let unkeyed = check(&[("REDIS_URL", "redis://jitbot-redis:6379")]);
    assert_eq!(unkeyed.status.code(), Some(2));
    assert!(text(&unkeyed.stderr).contains("openssl rand -hex 32"));
    let keyed = check(&[
        ("REDIS_URL", "redis://jitbot-redis:6379"),
        ("JITBOT_STATE_KEY", "0123456789abcdef0123456789abcdef"),
    ]);
    assert!(keyed.status.success(), "{}", text(&keyed.stderr));
    assert!(text(&keyed.stdout).contains("requests sealed with JITBOT_STATE_KEY"));
}

#[test]
fn example_catalog_covers_every_kind_of_entry() {
    let (_, catalog) =
        Settings::load_checked(Some(&repo("config/example.toml")), &HashMap::new()).unwrap();
    assert!(catalog.targets().len() >= 3);
    assert!(catalog.targets().iter().any(|t| t.approvals_required == 2));
    assert!(catalog.targets().iter().any(|t| t.allow_self_approval));
    assert!(
        catalog
            .targets()
            .iter()
            .any(|t| !t.approvers.groups.is_empty())
    );
    use jitbot::core::catalog::SourceSpec;
    let kinds: Vec<&SourceSpec> = catalog.requesters().map(|r| &r.source).collect();
    assert!(kinds.iter().any(|s| matches!(s, SourceSpec::Addresses(_))));
    assert!(kinds.iter().any(|s| matches!(s, SourceSpec::Range(_))));
    assert!(kinds.iter().any(|s| matches!(s, SourceSpec::Pod(_))));
}

#[test]
fn check_config_names_every_problem_and_exits_2() {
    let good = std::fs::read_to_string(repo("config/example.toml")).unwrap();
    let bad = good
        .replace("ports = [{ port = 5432 }]", "ports = [{ port = 70000 }]")
        .replace(
            "source.range = \"10.8.1.0/28\"",
            "source.range = \"0.0.0.0/0\"",
        )
        .replace(
            "approvals_required = 2",
            "approvals_required = 2\napprovers_requried = 3",
        );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, bad).unwrap();
    let out = jitbot(&["check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    for expect in [
        "targets[0].ports[0].port: 70000 is not a port (1-65535)",
        "requesters[1].source.range: `0.0.0.0/0` is the whole internet",
        "targets[0].approvers_requried: is not a known setting",
    ] {
        assert!(err.contains(expect), "missing {expect:?} in:\n{err}");
    }
}

#[test]
fn check_config_refuses_a_plain_http_api_url_off_this_machine() {
    let example = repo("config/example.toml");
    let check = |api_url: &str| {
        Command::new(env!("CARGO_BIN_EXE_jitbot"))
            .args(["check-config", "--config", example.to_str().unwrap()])
            .env_remove("JITBOT_CONFIG")
            .env_remove("REDIS_URL")
            .env("JITBOT__SLACK__API_URL", api_url)
            .output()
            .unwrap()
    };
    let clear = check("http://slack.example.corp/api/");
    assert_eq!(clear.status.code(), Some(2));
    let err = text(&clear.stderr);
    assert!(
        err.contains("slack.api_url: `http://slack.example.corp/api/` is plain http")
            && err.contains("bot token"),
        "{err}"
    );
    let local = check("http://127.0.0.1:3000/api/");
    assert!(local.status.success(), "{}", text(&local.stderr));
}

#[test]
fn render_prints_the_policy_for_every_example_target() {
    let config = repo("config/example.toml");
    for target in [
        "payments-db",
        "kafka-brokers",
        "grafana-admin",
        "ledger-debug",
    ] {
        let out = jitbot(&[
            "render",
            "--config",
            config.to_str().unwrap(),
            "--target",
            target,
            "--requester",
            "U0ALICE001",
        ]);
        assert!(out.status.success(), "{target}: {}", text(&out.stderr));
        let yaml = text(&out.stdout);
        assert!(
            yaml.contains(&format!("jitbot.dev/target: {target}")),
            "{yaml}"
        );
        assert!(yaml.contains("cidr: \"10.8.0.14/32\""), "{yaml}");
    }
}

#[test]
fn render_refuses_bad_input_with_a_clear_message() {
    let config = repo("config/example.toml");
    let c = config.to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &["--target", "paymnts-db", "--requester", "U0ALICE001"],
            "`paymnts-db` is not a target",
        ),
        (
            &["--target", "payments-db", "--requester", "U0NOBODY01"],
            "U0NOBODY01 is not a requester",
        ),
        (
            &[
                "--target",
                "payments-db",
                "--requester",
                "U0ALICE001",
                "--duration",
                "3h",
            ],
            "pick between 5m and 2h",
        ),
        (
            &["--target", "payments-db", "--requester", "U0BOB00001"],
            "add `from <address>`",
        ),
        (
            &["--target", "payments-db", "--requester", "alice"],
            "is not a Slack user id",
        ),
    ];
    for (args, expect) in cases {
        let mut all = vec!["render", "--config", c];
        all.extend_from_slice(args);
        let out = jitbot(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains(expect),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn playground_with_a_missing_config_says_so_before_starting() {
    // Port 1 is not ours: had the playground bound first, the error would say so.
    let out = jitbot(&[
        "playground",
        "--listen",
        "127.0.0.1:1",
        "--config",
        "/nonexistent/jitbot.toml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("/nonexistent/jitbot.toml does not exist"),
        "{err}"
    );
}

#[test]
fn help_and_version_work() {
    let out = jitbot(&["--version"]);
    assert!(text(&out.stdout).starts_with("jitbot "));
    let out = jitbot(&["--help"]);
    for sub in ["check-config", "render", "serve", "grants", "playground"] {
        assert!(text(&out.stdout).contains(sub), "{sub}");
    }
}

#[test]
fn serve_without_slack_credentials_says_what_is_missing_before_binding() {
    let out = Command::new(env!("CARGO_BIN_EXE_jitbot"))
        .args([
            "serve",
            "--config",
            repo("config/example.toml").to_str().unwrap(),
        ])
        .env_remove("JITBOT_CONFIG")
        .env_remove("SLACK_BOT_TOKEN")
        .env_remove("SLACK_SIGNING_SECRET")
        .env_remove("SLACK_APP_TOKEN")
        // A port another process holds: had serve bound first, the error would say so.
        .env("JITBOT__SERVER__LISTEN", "127.0.0.1:1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "SLACK_SIGNING_SECRET is not set: create the Slack app from manifests/slack-app.yaml"
        ),
        "{err}"
    );
    assert!(err.contains("SLACK_BOT_TOKEN is not set"), "{err}");
    assert!(!err.contains("cannot listen"), "{err}");
}

#[test]
fn the_readme_documents_every_setting_with_its_default() {
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let text = std::fs::read_to_string(repo("config/default.toml")).unwrap();
    let file: toml::Value = toml::from_str(&text).unwrap();
    let mut keys = BTreeSet::new();
    key_paths(&file, "", &mut keys);
    for key in keys {
        let (section, name) = key.split_once('.').unwrap();
        let value = &file[section][name];
        let shown = match value {
            toml::Value::String(s) => format!("`{s}`"),
            toml::Value::Array(a) if a.is_empty() => "`[]`".to_owned(),
            other => format!("`{other}`"),
        };
        let shown = if shown == "``" {
            "`\"\"`".to_owned()
        } else {
            shown
        };
        let row = format!("| `{key}` | {shown} |");
        assert!(
            readme.contains(&row),
            "README lacks the row for {key}: {row}"
        );
    }
}
