//! The shape of the monitoring manifests: every alert complete, thresholds that follow
//! the settings, a dashboard Grafana loads, a kustomization that stays optional, and a
//! PodMonitor that finds jitbot's pods.

use std::collections::HashSet;

use serde_yaml::Value as Yaml;

use jitbot::settings::Settings;

use super::{Rule, dashboard, panels, rules, yaml};

#[test]
fn every_alert_says_how_bad_what_it_means_and_after_how_long() {
    let rules = rules();
    assert!(rules.len() >= 10);
    let mut names = HashSet::new();
    for r in &rules {
        assert!(names.insert(r.alert.clone()), "{} twice", r.alert);
        assert!(r.alert.starts_with("Jitbot"), "{}", r.alert);
        let for_ = r.rule["for"].as_str();
        assert!(for_.is_some_and(|f| !f.is_empty()), "{}: no for", r.alert);
        let severity = r.rule["labels"]["severity"].as_str();
        assert!(
            matches!(severity, Some("critical" | "warning")),
            "{}: severity {severity:?}",
            r.alert
        );
        for key in ["summary", "description"] {
            let text = r.rule["annotations"][key].as_str().unwrap_or("");
            assert!(text.len() > 20, "{}: no {key}", r.alert);
        }
    }
    // The alerts the README promises.
    for expected in [
        "JitbotRevocationFailing",
        "JitbotSweepStale",
        "JitbotReconcileStale",
        "JitbotExpiryGuardNotWatching",
        "JitbotSlackApiErrors",
        "JitbotSlackOutboxGrowing",
        "JitbotSlackEventsLost",
        "JitbotStoreUnreachable",
        "JitbotSignatureRejectionsSurging",
        "JitbotKubernetesApiErrors",
    ] {
        assert!(names.contains(expected), "no {expected}");
    }
}

/// The number after `>` in an alert's expression.
fn threshold(rules: &[Rule], alert: &str) -> (f64, String) {
    let r = rules.iter().find(|r| r.alert == alert).unwrap();
    let after = r.expr.rsplit('>').next().unwrap().trim();
    let value = after.parse().unwrap_or_else(|_| panic!("{alert}: {after}"));
    let description = r.rule["annotations"]["description"]
        .as_str()
        .unwrap()
        .to_owned();
    (value, description)
}

#[test]
fn staleness_thresholds_follow_the_worker_intervals() {
    let rules = rules();
    let worker = Settings::default().worker;
    for (alert, interval, key) in [
        (
            "JitbotSweepStale",
            worker.sweep_interval,
            "worker.sweep_interval",
        ),
        (
            "JitbotReconcileStale",
            worker.reconcile_interval,
            "worker.reconcile_interval",
        ),
    ] {
        let secs = interval.as_std().as_secs_f64();
        let (after, description) = threshold(&rules, alert);
        // A few missed rounds, not one late one; and still soon.
        assert!(
            (4.0 * secs..=20.0 * secs).contains(&after),
            "{alert}: {after} s against {key} = {secs} s"
        );
        let says = format!("every {secs} s, {key}");
        assert!(
            description.replace('\n', " ").contains(&says),
            "{alert} should say \"{says}\": {description}"
        );
    }
    let (near_trim, description) = threshold(&rules, "JitbotSlackOutboxNearTrim");
    let maxlen = Settings::default().store.audit_maxlen;
    assert!(near_trim < maxlen as f64);
    assert!(
        description.contains(&format!("({maxlen})")),
        "{description}"
    );
}

#[test]
fn the_dashboard_is_valid_json_with_unique_panel_ids() {
    let d = dashboard();
    assert!(d["uid"].as_str().is_some_and(|u| !u.is_empty()));
    let mut ids = HashSet::new();
    for p in panels(&d) {
        let id = p["id"].as_u64().expect("every panel has an id");
        assert!(ids.insert(id), "panel id {id} twice");
        assert!(
            p["gridPos"]["w"].as_u64().is_some(),
            "panel {id} has no gridPos"
        );
        if p["type"] == "row" {
            continue;
        }
        assert!(!p["title"].as_str().unwrap_or("").is_empty(), "panel {id}");
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {id} queries nothing");
        let mut refs = HashSet::new();
        for t in targets {
            assert!(refs.insert(t["refId"].as_str().unwrap()), "panel {id}");
            assert_eq!(t["datasource"]["uid"], "${datasource}", "panel {id}");
        }
    }
    // The panels the README lists.
    let titles: Vec<&str> = panels(&d)
        .iter()
        .filter_map(|p| p["title"].as_str())
        .collect();
    for wanted in [
        "Requests by outcome",
        "Active grants",
        "Decision latency",
        "Revocation lag by path",
        "Expiry guard",
        "Sweep and reconcile age",
        "Slack API errors",
        "Kubernetes API errors",
        "Store errors",
        "Slack outbox",
        "Signature rejections",
        "Replicas by version",
    ] {
        assert!(
            titles.iter().any(|t| t.starts_with(wanted)),
            "no panel {wanted}"
        );
    }
}

#[test]
fn the_kustomization_ships_the_dashboard_to_grafana_and_stays_optional() {
    let k = yaml("manifests/monitoring/kustomization.yaml");
    let generator = &k["configMapGenerator"][0];
    assert_eq!(generator["files"][0], "grafana-dashboard.json");
    assert_eq!(generator["options"]["labels"]["grafana_dashboard"], "1");
    let resources: Vec<&str> = k["resources"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    assert!(resources.contains(&"prometheusrule.yaml"));
    assert!(resources.contains(&"podmonitor.yaml"));
    // Its CRDs may not exist: the default install leaves it out.
    let top = yaml("manifests/kustomization.yaml");
    assert!(
        !top["resources"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|r| r.as_str().is_some_and(|r| r.contains("monitoring")))
    );
}

fn pod_monitor() -> Yaml {
    let m = yaml("manifests/monitoring/podmonitor.yaml");
    assert_eq!(m["kind"], "PodMonitor");
    m
}

#[test]
fn the_pod_monitor_selects_jitbots_pods() {
    let m = pod_monitor();
    let deployment = yaml("manifests/base/deployment.yaml");
    assert_eq!(
        m["spec"]["selector"]["matchLabels"],
        deployment["spec"]["template"]["metadata"]["labels"]
    );
    let endpoint = &m["spec"]["podMetricsEndpoints"][0];
    assert_eq!(endpoint["port"], "metrics");
    assert_eq!(endpoint["path"], "/metrics");
}

/// The Deployment names the container port of `server.metrics_listen` `metrics`.
#[test]
fn the_deployment_names_the_port_the_pod_monitor_scrapes() {
    let m = pod_monitor();
    let name = m["spec"]["podMetricsEndpoints"][0]["port"]
        .as_str()
        .unwrap();
    let deployment = yaml("manifests/base/deployment.yaml");
    let ports = deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
        .as_sequence()
        .unwrap();
    let listen = Settings::default().server.metrics_listen;
    let port = ports
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("the Deployment has no container port named {name}: {ports:?}"));
    let number = port["containerPort"].as_u64().unwrap();
    assert!(
        listen.ends_with(&format!(":{number}")),
        "{listen} vs {number}"
    );
}
