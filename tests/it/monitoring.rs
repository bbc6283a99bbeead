//! The monitoring kustomization (`manifests/monitoring`) names only what jitbot
//! exports: every metric in the alerts' `expr` and the dashboard's queries is one that
//! `Metrics::encode()` lists, every label they match, group by or print is one that
//! metric carries (or one Prometheus adds to every scraped series), and every fixed
//! label value they match is one jitbot emits. The alerts are complete (for, severity,
//! summary, description) and their thresholds follow `config/default.toml`; the
//! dashboard is valid JSON with unique panel ids.
//!
//! Families without samples print nothing, not even `# TYPE`, so [`sampled`] records a
//! sample of each, with every value of its fixed labels, through the public methods.
//! The shape of the alerts, the dashboard and the kustomization is in [`shape`].

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

mod promql;
mod samples;
mod shape;

use promql::{Exported, printed_labels, used};
use samples::{GUARD_OUTCOMES, KUBE_KINDS, SIGNATURE_REASONS, STORE_KINDS, sampled};

const RULES: &str = "manifests/monitoring/prometheusrule.yaml";
const DASHBOARD: &str = "manifests/monitoring/grafana-dashboard.json";

/// Labels Prometheus adds to every series a PodMonitor scrapes: not jitbot's, any value.
const TARGET_LABELS: &[&str] = &[
    "namespace",
    "pod",
    "container",
    "job",
    "instance",
    "endpoint",
    "service",
];

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(path: &str) -> Yaml {
    serde_yaml::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn dashboard() -> Json {
    serde_json::from_str(&read(DASHBOARD)).unwrap_or_else(|e| panic!("{DASHBOARD}: {e}"))
}

struct Rule {
    alert: String,
    expr: String,
    rule: Yaml,
}

fn rules() -> Vec<Rule> {
    let doc = yaml(RULES);
    assert_eq!(doc["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(doc["kind"], "PrometheusRule");
    doc["spec"]["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap().clone())
        .map(|rule| Rule {
            alert: rule["alert"]
                .as_str()
                .expect("every rule is an alert")
                .to_owned(),
            expr: rule["expr"].as_str().unwrap().to_owned(),
            rule,
        })
        .collect()
}

/// Every query the dashboard runs, with the legend it prints, by panel title.
fn dashboard_queries(d: &Json) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for p in panels(d) {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                p["title"].as_str().unwrap_or("").to_owned(),
                t["expr"].as_str().unwrap().to_owned(),
                t["legendFormat"].as_str().unwrap_or("").to_owned(),
            ));
        }
    }
    for v in d["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["definition"].as_str() {
            out.push((
                format!("variable {}", v["name"]),
                q.to_owned(),
                String::new(),
            ));
        }
    }
    out
}

/// The dashboard's panels, those inside collapsed rows too.
fn panels(d: &Json) -> Vec<&Json> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        out.push(p);
        out.extend(p["panels"].as_array().into_iter().flatten());
    }
    out
}

/// Every expression of the rules and the dashboard, with where it is and what it prints.
fn every_query() -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = rules()
        .into_iter()
        .map(|r| {
            let annotations = serde_yaml::to_string(&r.rule["annotations"]).unwrap();
            (format!("alert {}", r.alert), r.expr, annotations)
        })
        .collect();
    out.extend(dashboard_queries(&dashboard()));
    out
}

/// Checks `where_`'s expression against `exported`.
fn check_query(where_: &str, expr: &str, prints: &str, exported: &Exported) -> Vec<String> {
    let mut problems = Vec::new();
    let u = used(expr);
    let mut labels_here: BTreeSet<String> = TARGET_LABELS.iter().map(|l| l.to_string()).collect();
    labels_here.insert("le".to_owned());
    for metric in &u.metrics {
        if let Some(labels) = exported.series.get(metric) {
            labels_here.extend(labels.keys().cloned());
        } else {
            problems.push(format!("{where_}: jitbot exports no {metric}"));
        }
    }
    if u.metrics.is_empty() {
        problems.push(format!("{where_}: uses no jitbot metric: {expr}"));
    }
    for (metric, label, value) in &u.matchers {
        if TARGET_LABELS.contains(&label.as_str()) {
            continue;
        }
        let fixed: Option<Vec<String>> = match exported.series.get(metric) {
            Some(labels) => match labels.get(label) {
                Some(values) => Some(values.iter().cloned().collect()),
                None => {
                    problems.push(format!("{where_}: {metric} has no label {label}"));
                    continue;
                }
            },
            // Already reported as not exported.
            None => continue,
        };
        if let Some(fixed) = fixed
            && !fixed.contains(value)
        {
            problems.push(format!(
                "{where_}: {metric}{{{label}=\"{value}\"}} matches nothing: jitbot emits {fixed:?}"
            ));
        }
    }
    for label in u.grouping.iter().chain(printed_labels(prints).iter()) {
        if !labels_here.contains(label) {
            problems.push(format!(
                "{where_}: no series of {:?} carries the label {label}",
                u.metrics
            ));
        }
    }
    problems
}

#[test]
fn the_alerts_and_the_dashboard_use_only_what_jitbot_exports() {
    let exported = Exported::parse(&sampled().encode());
    // The parser itself: the families as jitbot lists them.
    assert!(exported.series["jitbot_requests_total"]["outcome"].contains("expired"));
    assert!(exported.series["jitbot_revocation_lag_seconds"]["path"].contains("guard"));
    assert!(exported.series.contains_key("jitbot_active_grants"));
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for (where_, expr, prints) in every_query() {
        seen.extend(used(&expr).metrics);
        problems.extend(check_query(&where_, &expr, &prints, &exported));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The dashboard and the alerts between them show every metric jitbot has.
    let missing: Vec<&String> = exported
        .series
        .keys()
        .filter(|m| !seen.contains(*m))
        .collect();
    assert!(
        missing.is_empty(),
        "neither alerted on nor shown: {missing:?}"
    );
}

#[test]
fn the_check_catches_a_metric_or_label_jitbot_does_not_have() {
    let exported = Exported::parse(&sampled().encode());
    let found = |expr: &str| check_query("test", expr, "", &exported);
    assert!(found("rate(jitbot_requests_total[5m])").is_empty());
    assert_eq!(found("jitbot_grants_active").len(), 1);
    assert_eq!(
        found(r#"jitbot_expiry_guard_deletes_total{outcome="error"}"#).len(),
        1
    );
    assert_eq!(found(r#"jitbot_active_grants{outcome="x"}"#).len(), 1);
    assert_eq!(found("sum by (reason) (jitbot_requests_total)").len(), 1);
    assert!(found(r#"histogram_quantile(0.9, sum by (le, path) (rate(jitbot_revocation_lag_seconds_bucket{namespace=~"$namespace"}[5m])))"#).is_empty());
    assert_eq!(
        check_query(
            "test",
            "jitbot_active_grants",
            "{{ $labels.kind }}",
            &exported
        )
        .len(),
        1
    );
}

#[test]
fn the_string_labels_are_the_ones_the_code_passes() {
    // These are strings at the call sites, not a type the test
    // can enumerate: each must be a literal where it is passed.
    for (file, values) in [
        ("src/adapters/kube/guard.rs", GUARD_OUTCOMES),
        ("src/adapters/kube/guard.rs", KUBE_KINDS),
        ("src/app/mod.rs", KUBE_KINDS),
        ("src/adapters/http/signature.rs", SIGNATURE_REASONS),
        ("src/adapters/redis/mod.rs", STORE_KINDS),
    ] {
        let code = read(file);
        for v in values {
            assert!(
                code.contains(&format!("\"{v}\"")),
                "{file} passes no \"{v}\""
            );
        }
    }
}
