//! Clocks: the system's, and a manual one that tests and the playground move by hand.
//! Both can be waited on ([`Clock::sleep_until`]), so the workers sleep until a
//! deadline on either.

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;

use crate::core::ports::Clock;

/// The real time.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

/// The longest single sleep of [`SystemClock::sleep_until`]: the wall clock can be
/// stepped (NTP, a VM resumed) while a monotonic sleep runs, so a long wait looks at
/// the wall clock again at least this often.
const WALL_CLOCK_RECHECK: std::time::Duration = std::time::Duration::from_secs(60);

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn sleep_until(&self, at: DateTime<Utc>) {
        loop {
            let left = at - Utc::now();
            if left <= TimeDelta::zero() {
                return;
            }
            let left = left.to_std().unwrap_or_default();
            tokio::time::sleep(left.min(WALL_CLOCK_RECHECK)).await;
        }
    }
}

/// A clock that only moves when told to. Whoever waits on it wakes when it is moved
/// past their deadline.
#[derive(Debug)]
pub struct ManualClock {
    now: watch::Sender<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock {
            now: watch::Sender::new(start),
        }
    }

    pub fn advance(&self, by: TimeDelta) {
        self.now.send_modify(|now| *now += by);
    }

    pub fn set(&self, to: DateTime<Utc>) {
        self.now.send_replace(to);
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.borrow()
    }

    async fn sleep_until(&self, at: DateTime<Utc>) {
        let mut moved = self.now.subscribe();
        // The sender lives as long as `self`, so `wait_for` only ends when the clock
        // reaches `at`.
        let _ = moved.wait_for(|now| *now >= at).await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_manual_clock_wakes_its_sleepers_when_moved_past_their_deadline() {
        let start = DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
            .unwrap()
            .to_utc();
        let clock = std::sync::Arc::new(ManualClock::new(start));
        let sleeper = {
            let clock = clock.clone();
            tokio::spawn(async move { clock.sleep_until(start + TimeDelta::seconds(30)).await })
        };
        clock.advance(TimeDelta::seconds(29));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "woke a second early");
        clock.advance(TimeDelta::seconds(1));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("the sleeper wakes when the clock reaches its deadline")
            .unwrap();
        // A deadline already passed returns at once.
        clock.sleep_until(start).await;
    }

    #[tokio::test]
    async fn the_system_clock_returns_at_once_for_a_past_deadline() {
        let past = Utc::now() - TimeDelta::seconds(1);
        tokio::time::timeout(Duration::from_secs(5), SystemClock.sleep_until(past))
            .await
            .expect("no wait for a deadline that has passed");
    }
}
