//! The sweep's alarm: when the sweep loop next wakes, moved earlier when this replica
//! arms a timer before it. Timers armed by other replicas are not seen here; the
//! loop's ceiling (`worker.sweep_interval`) bounds how long those wait.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

/// Where the sweep loop is.
#[derive(Debug, Default)]
enum Plan {
    /// Sweeping or reading the next deadline: every timer armed meanwhile is kept, the
    /// earliest of them taken into the next plan.
    #[default]
    Planning,
    /// Asleep until this instant.
    Asleep(DateTime<Utc>),
}

#[derive(Debug, Default)]
struct State {
    plan: Plan,
    /// The earliest timer armed while planning.
    armed_meanwhile: Option<DateTime<Utc>>,
}

/// Shared by the use cases, which call [`Alarm::armed`], and the sweep loop.
#[derive(Debug, Default)]
pub struct Alarm {
    state: Mutex<State>,
    earlier: Notify,
}

impl Alarm {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is two timestamps; a panic elsewhere cannot leave it inconsistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A timer due at `at` was written to the store. Wakes the loop only when that is
    /// before its plan, so a burst of requests with far deadlines costs no wake-ups.
    pub fn armed(&self, at: DateTime<Utc>) {
        let mut s = self.lock();
        match s.plan {
            Plan::Planning => {
                s.armed_meanwhile = Some(s.armed_meanwhile.map_or(at, |m| m.min(at)));
            }
            Plan::Asleep(until) if at < until => {
                s.plan = Plan::Asleep(at);
                drop(s);
                self.earlier.notify_one();
            }
            Plan::Asleep(_) => {}
        }
    }

    /// The loop wakes: timers armed from now on are kept for the next plan.
    pub fn waking(&self) {
        self.lock().plan = Plan::Planning;
    }

    /// The loop goes to sleep until `at`, or earlier if a timer armed while it was
    /// planning is due earlier. Answers the instant it sleeps until.
    pub fn sleep_until(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        let mut s = self.lock();
        let until = s.armed_meanwhile.take().map_or(at, |m| m.min(at));
        s.plan = Plan::Asleep(until);
        until
    }

    /// The instant the loop sleeps until now (it may have moved earlier).
    pub fn planned(&self) -> Option<DateTime<Utc>> {
        match self.lock().plan {
            Plan::Asleep(until) => Some(until),
            Plan::Planning => None,
        }
    }

    /// Resolves when a timer earlier than the plan was armed.
    pub async fn moved_earlier(&self) {
        self.earlier.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn a_timer_armed_while_planning_is_kept_for_the_plan() {
        let alarm = Alarm::default();
        alarm.armed(t(30));
        alarm.armed(t(10));
        assert_eq!(alarm.sleep_until(t(60)), t(10));
        // Taken once: the next plan starts afresh.
        alarm.waking();
        assert_eq!(alarm.sleep_until(t(60)), t(60));
    }

    #[tokio::test]
    async fn only_an_earlier_timer_moves_a_sleeping_plan() {
        let alarm = Alarm::default();
        alarm.sleep_until(t(60));
        alarm.armed(t(90));
        assert_eq!(
            alarm.planned(),
            Some(t(60)),
            "a later timer changes nothing"
        );
        alarm.armed(t(20));
        assert_eq!(alarm.planned(), Some(t(20)));
        tokio::time::timeout(std::time::Duration::from_secs(5), alarm.moved_earlier())
            .await
            .expect("the loop is told");
        alarm.armed(t(20) + TimeDelta::milliseconds(1));
        assert_eq!(alarm.planned(), Some(t(20)));
    }
}
