//! Slack request signatures: `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{raw body}`
//! keyed with the app's signing secret. Checked before anything else reads the body,
//! compared in constant time, and refused when the timestamp is more than five minutes
//! away from now (replays).

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How far a request's timestamp may be from now.
pub const MAX_SKEW_SECS: i64 = 5 * 60;

/// The header with the unix time a request was signed at.
pub const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";

/// The header with the signature itself.
pub const SIGNATURE_HEADER: &str = "x-slack-signature";

/// Why a request was refused. Logged, never shown to the caller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-Slack-Request-Timestamp or X-Slack-Signature header")]
    Missing,
    #[error("timestamp `{0}` is not a number")]
    BadTimestamp(String),
    #[error("timestamp is {0} s away from now (more than 5 minutes): a replay or a wrong clock")]
    Stale(i64),
    #[error("signature does not match")]
    Mismatch,
}

impl SignatureError {
    /// A fixed label for metrics: `missing`, `bad_timestamp`, `stale` or `mismatch`.
    pub fn reason(&self) -> &'static str {
        match self {
            SignatureError::Missing => "missing",
            SignatureError::BadTimestamp(_) => "bad_timestamp",
            SignatureError::Stale(_) => "stale",
            SignatureError::Mismatch => "mismatch",
        }
    }
}

/// The expected signature of a request.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// The two headers that sign a request, as Slack sends them: what the playground,
/// the tests and the benches attach to the requests they make in Slack's place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedHeaders {
    /// [`TIMESTAMP_HEADER`]: unix seconds.
    pub timestamp: String,
    /// [`SIGNATURE_HEADER`]: [`sign`] of that timestamp and the body.
    pub signature: String,
}

impl SignedHeaders {
    /// Signs `body` with `secret` as Slack would at `at`. Whoever checks it must
    /// agree on the time within [`MAX_SKEW_SECS`]: sign at the app clock's time.
    pub fn sign(secret: &str, at: DateTime<Utc>, body: &[u8]) -> Self {
        let timestamp = at.timestamp().to_string();
        let signature = sign(secret, &timestamp, body);
        SignedHeaders {
            timestamp,
            signature,
        }
    }

    /// Each header's name and value, for any HTTP client.
    pub fn pairs(&self) -> [(&'static str, &str); 2] {
        [
            (TIMESTAMP_HEADER, &self.timestamp),
            (SIGNATURE_HEADER, &self.signature),
        ]
    }
}

/// Checks one request's headers against its raw body.
pub fn verify(
    secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(SignatureError::Missing);
    };
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp(timestamp.chars().take(20).collect()))?;
    // A timestamp from the far ends of i64 must not overflow the subtraction or the
    // absolute value: saturate, then compare the magnitude unsigned.
    let skew = now.timestamp().saturating_sub(ts);
    if skew.unsigned_abs() > MAX_SKEW_SECS.unsigned_abs() {
        return Err(SignatureError::Stale(skew));
    }
    let expected = sign(secret, timestamp.trim(), body);
    if expected
        .as_bytes()
        .ct_eq(signature.trim().as_bytes())
        .into()
    {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const TS: &str = "1531420618";
    const BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).unwrap()
    }

    #[test]
    fn slacks_documented_example_verifies() {
        assert_eq!(sign(SECRET, TS, BODY.as_bytes()), SIG);
        let now = at(1_531_420_618 + 10);
        assert_eq!(
            verify(SECRET, Some(TS), Some(SIG), BODY.as_bytes(), now),
            Ok(())
        );
    }

    #[test]
    fn signed_headers_are_slacks_and_verify() {
        let signed = SignedHeaders::sign(SECRET, at(1_531_420_618), BODY.as_bytes());
        assert_eq!(signed.timestamp, TS);
        assert_eq!(signed.signature, SIG);
        let [(ts_name, ts), (sig_name, sig)] = signed.pairs();
        assert_eq!((ts_name, sig_name), (TIMESTAMP_HEADER, SIGNATURE_HEADER));
        let now = at(1_531_420_618 + 10);
        assert_eq!(
            verify(SECRET, Some(ts), Some(sig), BODY.as_bytes(), now),
            Ok(())
        );
    }

    #[test]
    fn a_changed_body_secret_or_signature_fails() {
        let now = at(1_531_420_618);
        let tampered = BODY.replace("roadrunner", "wile");
        assert_eq!(
            verify(SECRET, Some(TS), Some(SIG), tampered.as_bytes(), now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("another-secret", Some(TS), Some(SIG), BODY.as_bytes(), now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(SECRET, Some(TS), Some("v0=00"), BODY.as_bytes(), now),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn old_or_future_timestamps_are_refused() {
        let ts = 1_531_420_618;
        assert_eq!(
            verify(SECRET, Some(TS), Some(SIG), BODY.as_bytes(), at(ts + 301)),
            Err(SignatureError::Stale(301))
        );
        assert_eq!(
            verify(SECRET, Some(TS), Some(SIG), BODY.as_bytes(), at(ts - 301)),
            Err(SignatureError::Stale(-301))
        );
        assert!(verify(SECRET, Some(TS), Some(SIG), BODY.as_bytes(), at(ts + 300)).is_ok());
    }

    #[test]
    fn missing_or_garbled_headers_are_refused() {
        let now = at(1_531_420_618);
        assert_eq!(
            verify(SECRET, None, Some(SIG), BODY.as_bytes(), now),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(SECRET, Some(TS), None, BODY.as_bytes(), now),
            Err(SignatureError::Missing)
        );
        assert!(matches!(
            verify(SECRET, Some("soon"), Some(SIG), BODY.as_bytes(), now),
            Err(SignatureError::BadTimestamp(_))
        ));
    }

    #[test]
    fn timestamps_at_the_ends_of_i64_are_stale_not_a_panic() {
        let now = at(1_531_420_618);
        for ts in [i64::MIN, i64::MIN + 1, i64::MAX, i64::MAX - 1] {
            let ts = ts.to_string();
            let err = verify(SECRET, Some(&ts), Some(SIG), BODY.as_bytes(), now)
                .expect_err("a timestamp this far away is refused");
            assert!(matches!(err, SignatureError::Stale(_)), "{ts}: {err:?}");
        }
        assert_eq!(
            verify(
                SECRET,
                Some(&i64::MIN.to_string()),
                Some(SIG),
                BODY.as_bytes(),
                now
            ),
            Err(SignatureError::Stale(i64::MAX))
        );
        assert_eq!(
            verify(
                SECRET,
                Some(&i64::MAX.to_string()),
                Some(SIG),
                BODY.as_bytes(),
                now
            ),
            Err(SignatureError::Stale(1_531_420_618 - i64::MAX))
        );
    }

    #[test]
    fn a_clock_at_the_ends_of_i64_does_not_overflow_either() {
        // chrono cannot hold i64::MIN seconds; its extremes stand in for a clock far off.
        for now in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
            for ts in [i64::MIN, i64::MIN + 1, i64::MAX] {
                let ts = ts.to_string();
                assert!(matches!(
                    verify(SECRET, Some(&ts), Some(SIG), BODY.as_bytes(), now),
                    Err(SignatureError::Stale(_))
                ));
            }
        }
    }

    #[test]
    fn each_refusal_has_a_fixed_reason() {
        let now = at(1_531_420_618);
        let reason = |ts: Option<&str>, sig: Option<&str>, now| {
            verify(SECRET, ts, sig, BODY.as_bytes(), now)
                .expect_err("refused")
                .reason()
        };
        assert_eq!(reason(None, Some(SIG), now), "missing");
        assert_eq!(reason(Some("soon"), Some(SIG), now), "bad_timestamp");
        assert_eq!(
            reason(Some(TS), Some(SIG), at(1_531_420_618 + 301)),
            "stale"
        );
        assert_eq!(reason(Some(TS), Some("v0=00"), now), "mismatch");
    }
}
