//! Just enough of the Prometheus text format and of PromQL to say which metrics and
//! labels an expression uses and which ones `/metrics` lists: names are found by their
//! `jitbot_` prefix (Prometheus's own functions have none), matchers inside `{…}` after
//! them, and grouping labels inside `by (…)` and `without (…)`.

use std::collections::{BTreeMap, BTreeSet, HashSet};

/// What `/metrics` lists: each series name Prometheus stores (counters with `_total`,
/// histograms by their base name), with the labels and values its samples carry.
#[derive(Debug, Default)]
pub struct Exported {
    pub series: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
}

impl Exported {
    pub fn parse(text: &str) -> Self {
        let mut out = Exported::default();
        let mut histograms = HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut words = rest.split_whitespace();
                let (name, kind) = (words.next().unwrap(), words.next().unwrap());
                let series = match kind {
                    "counter" => format!("{name}_total"),
                    "info" => format!("{name}_info"),
                    _ => name.to_owned(),
                };
                if kind == "histogram" {
                    histograms.insert(name.to_owned());
                }
                out.series.entry(series).or_default();
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let end = line.find(['{', ' ']).unwrap();
            let mut name = &line[..end];
            if let Some(base) = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|b| histograms.contains(*b)))
            {
                name = base;
            }
            let labels = out
                .series
                .get_mut(name)
                .unwrap_or_else(|| panic!("sample {name} without a # TYPE line"));
            if line[end..].starts_with('{') {
                let close = line.find('}').unwrap();
                for (label, value) in matchers(&line[end + 1..close]) {
                    if label != "le" {
                        labels.entry(label).or_default().insert(value);
                    }
                }
            }
        }
        out
    }
}

/// `a="x",b=~"y|z"` → (label, value) pairs, each alternative of a regex on its own.
pub fn matchers(inside: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = inside.trim();
    while !rest.is_empty() {
        let op = rest.find(['=', '!']).unwrap();
        let label = rest[..op].trim().to_owned();
        let open = rest.find('"').unwrap();
        let close = open + 1 + rest[open + 1..].find('"').unwrap();
        let is_regex = rest[op..open].contains('~');
        let value = &rest[open + 1..close];
        if is_regex {
            out.extend(value.split('|').map(|v| (label.clone(), v.to_owned())));
        } else {
            out.push((label.clone(), value.to_owned()));
        }
        rest = rest[close + 1..].trim_start_matches([',', ' ']);
    }
    out
}

/// What one PromQL expression uses: its jitbot metrics (`_bucket`, `_count`, `_sum`
/// stripped), the label matchers on them, and the labels it groups by.
#[derive(Debug, Default)]
pub struct Used {
    pub metrics: BTreeSet<String>,
    pub matchers: Vec<(String, String, String)>,
    pub grouping: BTreeSet<String>,
}

pub fn used(expr: &str) -> Used {
    let mut out = Used::default();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut i = 0;
    while let Some(at) = expr[i..].find("jitbot_") {
        let start = i + at;
        if start > 0 && expr[..start].ends_with(ident) {
            i = start + 1;
            continue;
        }
        let end = expr[start..]
            .find(|c| !ident(c))
            .map_or(expr.len(), |n| start + n);
        let raw = &expr[start..end];
        let name = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| raw.strip_suffix(s))
            .unwrap_or(raw)
            .to_owned();
        if expr[end..].starts_with('{') {
            let close = end + expr[end..].find('}').unwrap();
            for (label, value) in matchers(&expr[end + 1..close]) {
                out.matchers.push((name.clone(), label, value));
            }
        }
        out.metrics.insert(name);
        i = end;
    }
    for word in ["by", "without"] {
        let mut rest = expr;
        while let Some(at) = rest.find(&format!("{word} (")) {
            let open = at + word.len() + 2;
            let close = open + rest[open..].find(')').unwrap();
            out.grouping.extend(
                rest[open..close]
                    .split(',')
                    .map(|l| l.trim().to_owned())
                    .filter(|l| !l.is_empty()),
            );
            rest = &rest[close..];
        }
    }
    out
}

/// The labels `{{name}}` (Grafana legends) or `{{ $labels.name }}` (alert annotations)
/// print.
pub fn printed_labels(template: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = template;
    while let Some(at) = rest.find("{{") {
        let close = at + rest[at..].find("}}").unwrap();
        let inside = rest[at + 2..close].trim();
        let inside = inside.strip_prefix("$labels.").unwrap_or(inside);
        if !inside.starts_with('$')
            && inside
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            out.insert(inside.to_owned());
        }
        rest = &rest[close + 2..];
    }
    out
}
