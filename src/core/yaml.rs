//! A small, strict YAML writer for Kubernetes objects. Every string that a YAML 1.1
//! reader could take for something else (a timestamp, a number, `yes`, an IP address)
//! is double-quoted, so `kubectl`, Python tools and people all read back exactly the
//! strings jitbot wrote. Output is deterministic: keys keep the order serde gives them.

use serde::Serialize;
use serde_json::Value;

/// Writes `value` as one YAML document (without the leading `---`).
pub fn to_string<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    let value = serde_json::to_value(value)?;
    let mut out = String::new();
    match &value {
        Value::Object(map) if !map.is_empty() => write_map(map, 0, &mut out),
        Value::Array(items) if !items.is_empty() => write_seq(items, 0, &mut out),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    Ok(out)
}

fn write_map(map: &serde_json::Map<String, Value>, indent: usize, out: &mut String) {
    for (key, value) in map {
        out.push_str(&" ".repeat(indent));
        write_entry(key, value, indent, out);
    }
}

/// Writes `key: value` whose key is already indented.
fn write_entry(key: &str, value: &Value, indent: usize, out: &mut String) {
    out.push_str(&string(key));
    out.push(':');
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            write_map(map, indent + 2, out);
        }
        // Kubernetes style: a list under a key sits at the key's own indent.
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            write_seq(items, indent, out);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

fn write_seq(items: &[Value], indent: usize, out: &mut String) {
    for item in items {
        out.push_str(&" ".repeat(indent));
        out.push_str("- ");
        match item {
            Value::Object(map) if !map.is_empty() => {
                let mut entries = map.iter();
                if let Some((k, v)) = entries.next() {
                    write_entry(k, v, indent + 2, out);
                }
                for (k, v) in entries {
                    out.push_str(&" ".repeat(indent + 2));
                    write_entry(k, v, indent + 2, out);
                }
            }
            Value::Array(inner) if !inner.is_empty() => {
                out.push('\n');
                write_seq(inner, indent + 2, out);
            }
            other => {
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s),
        Value::Object(_) => "{}".to_owned(),
        Value::Array(_) => "[]".to_owned(),
    }
}

/// A string plain when nothing could misread it, double-quoted otherwise.
fn string(s: &str) -> String {
    const WORDS: [&str; 11] = [
        "y", "n", "yes", "no", "true", "false", "on", "off", "null", "nan", "inf",
    ];
    let plain = s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        && !WORDS.contains(&s.to_ascii_lowercase().as_str());
    if plain {
        s.to_owned()
    } else {
        // A JSON string is a valid YAML double-quoted scalar.
        Value::String(s.to_owned()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ambiguous_strings_are_quoted() {
        let doc = json!({
            "a": "2026-11-26T14:30:00Z", "b": "yes", "c": "10.8.0.14/32", "d": "5432",
            "e": "plain-word", "f": "with space", "g": "", "h": "Null", "i": "line\nbreak",
        });
        let out = to_string(&doc).unwrap();
        assert_eq!(
            out,
            "a: \"2026-11-26T14:30:00Z\"\nb: \"yes\"\nc: \"10.8.0.14/32\"\nd: \"5432\"\ne: plain-word\n\
             f: \"with space\"\ng: \"\"\nh: \"Null\"\ni: \"line\\nbreak\"\n"
        );
    }

    #[test]
    fn nesting_follows_kubernetes_style() {
        let doc = json!({"spec": {"ingress": [{"from": [{"ipBlock": {"cidr": "x"}}], "ports": [{"port": 1}]}], "types": ["Ingress"], "empty": {}}});
        let out = to_string(&doc).unwrap();
        assert_eq!(
            out,
            "spec:\n  empty: {}\n  ingress:\n  - from:\n    - ipBlock:\n        cidr: x\n    ports:\n    - port: 1\n  types:\n  - Ingress\n"
        );
    }
}
