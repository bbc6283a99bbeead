//! Newtypes that parse: every identifier jitbot accepts from outside the process is
//! checked here once, so the rest of the code can trust what it holds. Each `FromStr`
//! error is a sentence a person can act on.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Implements `Display`, `Serialize` and `Deserialize` (through `FromStr`) for a
/// newtype over `String`, so config files and stored records go through the same
/// validation as user input.
macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                raw.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Alphabet of request ids: lowercase Crockford base32 (no i, l, o, u), so an id read
/// aloud or copied from a screenshot is not ambiguous, and it is a valid part of a
/// Kubernetes object name and label value.
const ID_ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// 16 base32 characters carry 80 random bits.
const ID_LEN: usize = 16;

/// The id of one access request: 80 random bits, URL-safe, unguessable.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(String);
string_newtype!(RequestId);

impl RequestId {
    /// Builds an id from 10 random bytes. Core does no I/O, so the caller brings the
    /// randomness (the app takes it from the operating system's generator).
    pub fn from_random(bytes: [u8; 10]) -> Self {
        let mut bits: u128 = 0;
        for b in bytes {
            bits = (bits << 8) | u128::from(b);
        }
        let mut out = String::with_capacity(ID_LEN);
        for i in (0..ID_LEN).rev() {
            let idx = ((bits >> (i * 5)) & 0x1f) as usize;
            out.push(char::from(ID_ALPHABET[idx]));
        }
        RequestId(out)
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({})", self.0)
    }
}

impl FromStr for RequestId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim().trim_matches('`');
        if s.len() == ID_LEN && s.bytes().all(|b| ID_ALPHABET.contains(&b)) {
            Ok(RequestId(s.to_owned()))
        } else {
            Err(format!(
                "`{}` is not a request id; ids are 16 characters like `k3x9m2q7v8d4a1b6` (see `/jit list`)",
                clip(s, 40)
            ))
        }
    }
}

/// Checks the shape of a Slack id: a fixed first letter, then 2 to 20 uppercase
/// letters or digits.
fn slack_id(s: &str, first: &[char], what: &str, example: &str) -> Result<String, String> {
    let ok = s.len() >= 3
        && s.len() <= 21
        && s.starts_with(first)
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "`{}` is not a Slack {what} id; they look like `{example}`",
            clip(s, 40)
        ))
    }
}

/// A Slack user (`U…`, or `W…` on Enterprise Grid).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlackUserId(String);
string_newtype!(SlackUserId);

impl FromStr for SlackUserId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        slack_id(s, &['U', 'W'], "user", "U024BE7LH").map(SlackUserId)
    }
}

/// A Slack user group (`S…`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlackGroupId(String);
string_newtype!(SlackGroupId);

impl FromStr for SlackGroupId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        slack_id(s, &['S'], "user group", "S0614TZR7").map(SlackGroupId)
    }
}

/// A Slack conversation: public (`C…`) or private (`G…`) channel.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlackChannelId(String);
string_newtype!(SlackChannelId);

impl FromStr for SlackChannelId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        slack_id(s, &['C', 'G'], "channel", "C0123456789").map(SlackChannelId)
    }
}

/// Checks an RFC 1123 DNS label: at most 63 characters, lowercase letters, digits and
/// `-`, starting and ending with a letter or digit.
pub fn check_dns_label(s: &str) -> Result<(), String> {
    let bytes = s.as_bytes();
    let ok = !s.is_empty()
        && s.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-';
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a valid name: use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit",
            clip(s, 70)
        ))
    }
}

/// A Kubernetes namespace name (an RFC 1123 label).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace(String);
string_newtype!(Namespace);

impl FromStr for Namespace {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        check_dns_label(s).map(|()| Namespace(s.to_owned()))
    }
}

/// The name of a catalog target, as people type it in `/jit request <target>`. It is
/// also a label value on every policy, so it follows RFC 1123 label rules.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetName(String);
string_newtype!(TargetName);

impl FromStr for TargetName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        check_dns_label(s).map(|()| TargetName(s.to_owned()))
    }
}

/// Checks the name part of a label key, or a label value: at most 63 characters,
/// alphanumerics, `-`, `_` and `.`, starting and ending with an alphanumeric.
fn label_word(s: &str) -> bool {
    let b = s.as_bytes();
    !s.is_empty()
        && s.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// Checks a Kubernetes label key: an optional DNS-subdomain prefix and `/`, then a name.
pub fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty() && p.len() <= 253 && p.split('.').all(|part| check_dns_label(part).is_ok())
    });
    if prefix_ok && label_word(name) {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a valid label key: use an optional DNS prefix and '/', then at most 63 letters, digits, '-', '_' or '.' (e.g. `app.kubernetes.io/name`)",
            clip(key, 70)
        ))
    }
}

/// Checks a Kubernetes label value: empty, or a label word.
pub fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || label_word(value) {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a valid label value: use at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
            clip(value, 70)
        ))
    }
}

/// Cuts `s` to at most `max` characters for echoing in an error, marking the cut.
pub fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_16_base32_chars_and_round_trip() {
        let id = RequestId::from_random([0xff; 10]);
        assert_eq!(id.as_str(), "zzzzzzzzzzzzzzzz");
        let id = RequestId::from_random([0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(id.as_str(), "0000000000000001");
        let id = RequestId::from_random([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(id.as_str().parse::<RequestId>().unwrap(), id);
    }

    #[test]
    fn request_id_rejects_other_shapes() {
        for bad in [
            "",
            "short",
            "0000000000000000x",
            "000000000000000i",
            "ABCDEFGHJKMNPQRS",
        ] {
            assert!(bad.parse::<RequestId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn slack_ids_check_their_prefix() {
        assert!("U024BE7LH".parse::<SlackUserId>().is_ok());
        assert!("W024BE7LH".parse::<SlackUserId>().is_ok());
        assert!("S024BE7LH".parse::<SlackUserId>().is_err());
        assert!("u024be7lh".parse::<SlackUserId>().is_err());
        assert!("S0614TZR7".parse::<SlackGroupId>().is_ok());
        assert!("C0123456789".parse::<SlackChannelId>().is_ok());
        assert!("G0123456789".parse::<SlackChannelId>().is_ok());
        assert!("#general".parse::<SlackChannelId>().is_err());
    }

    #[test]
    fn dns_labels_follow_rfc_1123() {
        assert!(check_dns_label("payments-db").is_ok());
        assert!(check_dns_label("a").is_ok());
        assert!(check_dns_label(&"a".repeat(63)).is_ok());
        for bad in ["", "-a", "a-", "Payments", "a_b", "a.b", &"a".repeat(64)] {
            assert!(check_dns_label(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn label_keys_and_values_follow_kubernetes_rules() {
        for ok in [
            "app",
            "app.kubernetes.io/name",
            "jitbot.dev/target",
            "a_b.c-d",
        ] {
            assert!(check_label_key(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/app", "Bad_Prefix/app", "app/", "-app", "a/b/c"] {
            assert!(check_label_key(bad).is_err(), "{bad}");
        }
        for ok in ["", "postgres", "v1.2_3-x"] {
            assert!(check_label_value(ok).is_ok(), "{ok}");
        }
        for bad in ["-x", "x-", "a b", &"x".repeat(64)] {
            assert!(check_label_value(bad).is_err(), "{bad}");
        }
    }
}
