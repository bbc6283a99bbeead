//! The seal on every stored request: an HMAC-SHA256 over the request's id and JSON,
//! keyed by `JITBOT_STATE_KEY`, so that whoever can write to Redis but does not hold
//! the key cannot make jitbot act on a record it did not write. The `json` field of
//! a request's hash holds `v1:<hex seal>:<json>`; a record whose seal does not verify
//! (or that has none) is refused as [`StoreError::Tampered`].
//!
//! A second key (`JITBOT_STATE_KEY_PREVIOUS`) is accepted for reading while keys are
//! rotated; every write seals with the current key, so a request is re-sealed at its
//! next transition.
//!
//! The seal does not stop a replay of jitbot's own older records (a Redis restored
//! from a backup): the reconciler ends a grant whose policy is gone instead of
//! re-creating it, and every apply is held against the current catalog.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::core::ids::RequestId;
use crate::core::ports::StoreError;
use crate::core::secret::Secret;

/// Fewest bytes a state key may have.
pub const MIN_KEY_BYTES: usize = 32;

const VERSION: &str = "v1";
const DOMAIN: &[u8] = b"jitbot request seal v1\n";

/// The keys that seal and open stored requests.
#[derive(Clone, PartialEq, Eq)]
pub struct StateKey {
    current: Secret,
    previous: Option<Secret>,
}

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey([redacted])")
    }
}

/// Why a state key cannot be used. Never contains the key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0} is too short: it must have at least {MIN_KEY_BYTES} characters; create one with `openssl rand -hex 32`"
)]
pub struct ShortKey(pub &'static str);

impl StateKey {
    /// The key from `JITBOT_STATE_KEY`, and the one being rotated out, if any.
    pub fn new(current: Secret, previous: Option<Secret>) -> Result<Self, ShortKey> {
        if current.expose().len() < MIN_KEY_BYTES {
            return Err(ShortKey("JITBOT_STATE_KEY"));
        }
        if previous
            .as_ref()
            .is_some_and(|p| p.expose().len() < MIN_KEY_BYTES)
        {
            return Err(ShortKey("JITBOT_STATE_KEY_PREVIOUS"));
        }
        Ok(StateKey { current, previous })
    }

    /// `json`, the request `id` as stored, with its seal in front.
    pub fn seal(&self, id: &RequestId, json: &str) -> String {
        let tag = hex::encode(mac(&self.current, id, json).finalize().into_bytes());
        format!("{VERSION}:{tag}:{json}")
    }

    /// The JSON inside a stored value, once its seal verifies for `id` with either key.
    pub fn open<'a>(&self, id: &RequestId, stored: &'a str) -> Result<&'a str, StoreError> {
        let tampered = |why: &str| StoreError::Tampered {
            id: id.clone(),
            why: why.to_owned(),
        };
        let rest = stored
            .strip_prefix(VERSION)
            .and_then(|r| r.strip_prefix(':'))
            .ok_or_else(|| tampered("it carries no seal"))?;
        let (tag, json) = rest
            .split_once(':')
            .ok_or_else(|| tampered("its seal is malformed"))?;
        let tag = hex::decode(tag).map_err(|_| tampered("its seal is malformed"))?;
        let verifies = |key: &Secret| mac(key, id, json).verify_slice(&tag).is_ok();
        if verifies(&self.current) || self.previous.as_ref().is_some_and(verifies) {
            Ok(json)
        } else {
            Err(tampered("its seal does not verify"))
        }
    }
}

fn mac(key: &Secret, id: &RequestId, json: &str) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key.expose().as_bytes()).expect("HMAC takes any key length");
    mac.update(DOMAIN);
    mac.update(id.as_str().as_bytes());
    mac.update(b"\n");
    mac.update(json.as_bytes());
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> StateKey {
        StateKey::new(Secret::new(k), None).unwrap()
    }

    const A: &str = "0123456789abcdef0123456789abcdef";
    const B: &str = "fedcba9876543210fedcba9876543210";

    #[test]
    fn a_sealed_record_opens_and_any_change_is_refused() {
        let id = RequestId::from_random([1; 10]);
        let other = RequestId::from_random([2; 10]);
        let sealed = key(A).seal(&id, r#"{"state":"active"}"#);
        assert_eq!(key(A).open(&id, &sealed), Ok(r#"{"state":"active"}"#));
        let edited = sealed.replace("active", "pending");
        for (why, id, value) in [
            ("its seal does not verify", &id, edited.as_str()),
            ("its seal does not verify", &other, sealed.as_str()),
            ("it carries no seal", &id, r#"{"state":"active"}"#),
            ("its seal is malformed", &id, "v1:zz:{}"),
        ] {
            assert_eq!(
                key(A).open(id, value),
                Err(StoreError::Tampered {
                    id: id.clone(),
                    why: why.to_owned()
                })
            );
        }
        assert!(key(B).open(&id, &sealed).is_err(), "another key");
    }

    #[test]
    fn the_previous_key_still_opens_while_keys_rotate() {
        let id = RequestId::from_random([1; 10]);
        let old = key(A).seal(&id, "{}");
        let rotating = StateKey::new(Secret::new(B), Some(Secret::new(A))).unwrap();
        assert_eq!(rotating.open(&id, &old), Ok("{}"));
        assert_eq!(key(B).open(&id, &rotating.seal(&id, "{}")), Ok("{}"));
    }

    #[test]
    fn a_short_key_is_refused_with_how_to_make_one() {
        let err = StateKey::new(Secret::new("tiny-key"), None).unwrap_err();
        assert!(err.to_string().contains("openssl rand -hex 32"), "{err}");
        assert!(
            !err.to_string().contains("tiny-key"),
            "the key leaked: {err}"
        );
        let err = StateKey::new(Secret::new(A), Some(Secret::new("x"))).unwrap_err();
        assert_eq!(err, ShortKey("JITBOT_STATE_KEY_PREVIOUS"));
    }
}
