//! Which kube-rs errors are worth retrying. The rule: anything that says the cluster
//! is busy, broken or out of reach is `Unavailable` (retry later); anything that says
//! the request itself is wrong or not allowed is `Refused` (retrying the same request
//! cannot help).

use std::time::Duration;

use kube::core::Status;

use super::retry::Failure;
use crate::core::ports::EnforceError;

/// Sorts a kube-rs error into retryable or not, keeping the server's words for the log.
pub(super) fn classify(err: kube::Error) -> Failure {
    match err {
        kube::Error::Api(status) => classify_status(&status),
        // Connection refused or reset, TLS failures, timeouts inside the client, a
        // response that ended early: the network or the server, not the request.
        kube::Error::HyperError(_)
        | kube::Error::Service(_)
        | kube::Error::ReadEvents(_)
        // A 2xx body that is not what the API promises: a proxy in the way, most likely.
        | kube::Error::SerdeError(_)
        | kube::Error::FromUtf8(_)
        // Credentials that could not be refreshed (exec plugin, token file): often
        // passing, and the call never reached the server.
        | kube::Error::Auth(_) => Failure::unavailable(err.to_string()),
        // The request could not be built or the client is misconfigured: a bug or a
        // configuration problem that a retry would only repeat.
        other => Failure {
            error: EnforceError::Refused(other.to_string()),
            retry_after: None,
        },
    }
}

fn classify_status(status: &Status) -> Failure {
    let words = describe(status);
    let retryable = match status.code {
        // 408 timeout, 409 conflict (someone wrote meanwhile), 429 throttled, 5xx.
        408 | 409 | 429 | 500..=599 => true,
        // 0: a Status without a code, so nothing says the request was wrong.
        0 => true,
        // 401, 403 forbidden, 404 namespace missing, 422 invalid, other 4xx.
        _ => false,
    };
    if !retryable {
        return Failure {
            error: EnforceError::Refused(words),
            retry_after: None,
        };
    }
    let retry_after = status
        .details
        .as_ref()
        .map(|d| d.retry_after_seconds)
        .filter(|secs| *secs > 0)
        .map(|secs| Duration::from_secs(u64::from(secs)));
    Failure {
        error: EnforceError::Unavailable(words),
        retry_after,
    }
}

/// `403 Forbidden: networkpolicies.networking.k8s.io "jit-…" is forbidden: …`
fn describe(status: &Status) -> String {
    let message = status.message.trim();
    match (status.reason.is_empty(), message.is_empty()) {
        (false, false) => format!("{} {}: {}", status.code, status.reason, message),
        (false, true) => format!("{} {}", status.code, status.reason),
        (true, false) => format!("{}: {}", status.code, message),
        (true, true) => format!("{} (no message)", status.code),
    }
}

#[cfg(test)]
mod tests {
    use kube::core::response::StatusDetails;

    use super::*;

    fn status(code: u16, reason: &str) -> kube::Error {
        kube::Error::Api(Box::new(Status {
            code,
            reason: reason.to_owned(),
            message: format!("the server says {code}"),
            ..Status::default()
        }))
    }

    fn is_retryable(err: kube::Error) -> bool {
        matches!(classify(err).error, EnforceError::Unavailable(_))
    }

    #[test]
    fn busy_or_broken_servers_are_retryable() {
        for code in [408, 409, 429, 500, 502, 503, 504] {
            assert!(is_retryable(status(code, "X")), "{code}");
        }
    }

    #[test]
    fn wrong_or_forbidden_requests_are_refused() {
        for code in [400, 401, 403, 404, 405, 415, 422] {
            assert!(!is_retryable(status(code, "X")), "{code}");
        }
    }

    #[test]
    fn the_servers_words_are_kept_for_the_log() {
        let failure = classify(status(422, "Invalid"));
        assert_eq!(
            failure.error,
            EnforceError::Refused("422 Invalid: the server says 422".into())
        );
    }

    #[test]
    fn retry_after_seconds_in_the_status_are_read() {
        let err = kube::Error::Api(Box::new(Status {
            code: 429,
            reason: "TooManyRequests".into(),
            details: Some(StatusDetails {
                name: String::new(),
                group: String::new(),
                kind: String::new(),
                uid: String::new(),
                causes: Vec::new(),
                retry_after_seconds: 3,
            }),
            ..Status::default()
        }));
        assert_eq!(classify(err).retry_after, Some(Duration::from_secs(3)));
        assert_eq!(classify(status(503, "X")).retry_after, None);
    }
}
