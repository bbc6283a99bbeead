//! Retrying API calls: a per-call timeout, capped exponential backoff, and a budget of
//! either a number of attempts (apply, list) or a deadline (revoke). Only retryable
//! failures (`EnforceError::Unavailable`) are retried; a refusal returns at once.
//!
//! Every wait uses tokio's clock, so the tests below run under `tokio::time::pause()`.
//! There is no jitter: few replicas retry against one API server, and predictable waits
//! keep the tests exact.

use std::future::Future;
use std::time::Duration;

use tokio::time::{Instant, sleep, timeout};

use super::KubeSettings;
use crate::core::ports::EnforceError;

/// One failed attempt: what went wrong and how long the server asked us to wait.
#[derive(Debug)]
pub(super) struct Failure {
    pub error: EnforceError,
    /// From the server's `Status.details.retryAfterSeconds`, when it said.
    pub retry_after: Option<Duration>,
}

impl Failure {
    pub fn unavailable(message: impl Into<String>) -> Self {
        Failure {
            error: EnforceError::Unavailable(message.into()),
            retry_after: None,
        }
    }
}

/// How much retrying one call may do.
#[derive(Clone, Copy, Debug)]
pub(super) enum Budget {
    /// At most this many attempts (1 means no retry).
    Attempts(u32),
    /// Retry until this instant; the last attempt's timeout is cut to fit.
    Until(Instant),
}

/// Runs `attempt` until it succeeds, is refused, or the budget is spent. `what` names
/// the call in messages ("delete payments/jit-…").
pub(super) async fn retrying<T, F, Fut>(
    settings: &KubeSettings,
    budget: Budget,
    what: &str,
    mut attempt: F,
) -> Result<T, EnforceError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let mut backoff = settings.initial_backoff;
    let mut attempts: u32 = 0;
    loop {
        attempts += 1;
        let limit = match budget {
            Budget::Attempts(_) => settings.request_timeout,
            Budget::Until(deadline) => settings
                .request_timeout
                .min(deadline.saturating_duration_since(Instant::now())),
        };
        let failure = match timeout(limit, attempt()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(failure)) => failure,
            Err(_) => Failure::unavailable(format!("no answer within {limit:?}")),
        };
        let message = match failure.error {
            EnforceError::Refused(m) => return Err(EnforceError::Refused(format!("{what}: {m}"))),
            EnforceError::Unavailable(m) => m,
        };
        let server_asked = failure.retry_after.unwrap_or_default();
        let wait = backoff.max(server_asked.min(settings.max_backoff));
        let spent = match budget {
            Budget::Attempts(max) => attempts >= max,
            Budget::Until(deadline) => Instant::now() + wait >= deadline,
        };
        if spent {
            return Err(EnforceError::Unavailable(format!(
                "{what}: {message} (gave up after {attempts} attempt(s))"
            )));
        }
        tracing::warn!(call = what, attempts, ?wait, error = %message, "retrying a cluster call");
        sleep(wait).await;
        backoff = (backoff * 2).min(settings.max_backoff);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn settings() -> KubeSettings {
        KubeSettings {
            request_timeout: Duration::from_secs(10),
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            ..KubeSettings::default()
        }
    }

    /// An attempt that fails `failures` times with `error`, then succeeds; it records
    /// when each attempt started, relative to `start`.
    struct Script {
        start: Instant,
        failures: usize,
        error: fn() -> Failure,
        seen: Mutex<Vec<Duration>>,
    }

    impl Script {
        fn new(failures: usize, error: fn() -> Failure) -> Self {
            Script {
                start: Instant::now(),
                failures,
                error,
                seen: Mutex::new(Vec::new()),
            }
        }

        async fn call(&self) -> Result<&'static str, Failure> {
            let mut seen = self.seen.lock().unwrap();
            seen.push(self.start.elapsed());
            if seen.len() > self.failures {
                Ok("done")
            } else {
                Err((self.error)())
            }
        }

        fn starts(&self) -> Vec<u64> {
            let seen = self.seen.lock().unwrap();
            seen.iter().map(|d| d.as_millis() as u64).collect()
        }
    }

    fn unavailable() -> Failure {
        Failure::unavailable("503 ServiceUnavailable")
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_up_to_the_cap() {
        let script = Script::new(6, unavailable);
        let until = Budget::Until(Instant::now() + Duration::from_secs(60));
        let got = retrying(&settings(), until, "delete", || script.call()).await;
        assert_eq!(got, Ok("done"));
        // Waits 200, 400, 800, 1600, 3200, then 5000 (capped) ms.
        assert_eq!(script.starts(), vec![0, 200, 600, 1400, 3000, 6200, 11200]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_is_not_retried() {
        let script = Script::new(5, || Failure {
            error: EnforceError::Refused("422 Invalid".into()),
            retry_after: None,
        });
        let got = retrying(&settings(), Budget::Attempts(3), "apply a/b", || {
            script.call()
        })
        .await;
        assert_eq!(
            got,
            Err(EnforceError::Refused("apply a/b: 422 Invalid".into()))
        );
        assert_eq!(script.starts(), vec![0]);
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_bound_an_apply() {
        let script = Script::new(10, unavailable);
        let got = retrying(&settings(), Budget::Attempts(3), "apply a/b", || {
            script.call()
        })
        .await;
        assert_eq!(
            got,
            Err(EnforceError::Unavailable(
                "apply a/b: 503 ServiceUnavailable (gave up after 3 attempt(s))".into()
            ))
        );
        assert_eq!(script.starts(), vec![0, 200, 600]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_bounds_a_revoke_that_never_succeeds() {
        let start = Instant::now();
        let script = Script::new(usize::MAX, unavailable);
        let until = Budget::Until(start + Duration::from_secs(20));
        let got = retrying(&settings(), until, "delete", || script.call()).await;
        assert!(matches!(got, Err(EnforceError::Unavailable(_))), "{got:?}");
        // 0, 200, 600, 1400, 3000, 6200, 11200, 16200; the next would start at 21200.
        assert_eq!(
            script.starts(),
            vec![0, 200, 600, 1400, 3000, 6200, 11200, 16200]
        );
        assert!(start.elapsed() <= Duration::from_secs(20));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_call_times_out_and_is_retried() {
        let calls = Mutex::new(0);
        let got = retrying(&settings(), Budget::Attempts(2), "list", || async {
            let first = {
                let mut n = calls.lock().unwrap();
                *n += 1;
                *n == 1
            };
            if first {
                std::future::pending::<()>().await;
            }
            Ok::<_, Failure>(7)
        })
        .await;
        assert_eq!(got, Ok(7));
        assert_eq!(*calls.lock().unwrap(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_last_attempt_before_a_deadline_gets_only_the_time_left() {
        let start = Instant::now();
        let until = Budget::Until(start + Duration::from_secs(3));
        let got: Result<(), _> = retrying(&settings(), until, "delete", || {
            std::future::pending::<Result<(), Failure>>()
        })
        .await;
        assert!(matches!(got, Err(EnforceError::Unavailable(_))), "{got:?}");
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_servers_retry_after_is_honoured_up_to_the_cap() {
        let script = Script::new(2, || Failure {
            error: EnforceError::Unavailable("429 TooManyRequests".into()),
            retry_after: Some(Duration::from_secs(2)),
        });
        let got = retrying(&settings(), Budget::Attempts(3), "apply", || script.call()).await;
        assert_eq!(got, Ok("done"));
        assert_eq!(script.starts(), vec![0, 2000, 4000]);

        let capped = Script::new(1, || Failure {
            error: EnforceError::Unavailable("429 TooManyRequests".into()),
            retry_after: Some(Duration::from_secs(600)),
        });
        let got = retrying(&settings(), Budget::Attempts(3), "apply", || capped.call()).await;
        assert_eq!(got, Ok("done"));
        assert_eq!(capped.starts(), vec![0, 5000]);
    }
}
