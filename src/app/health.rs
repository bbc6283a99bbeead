//! Whether this replica is alive and whether it should get Slack's traffic, apart
//! from whether its dependencies answer.
//!
//! - **Alive** (`/healthz`): every background loop is still running and has come
//!   round within its bound. A loop that ended while jitbot is not stopping, or that
//!   has not come round for far longer than it sleeps, means this process is stuck
//!   and a restart helps. Redis or the API server being down does not: the loops keep
//!   coming round (each failed step is retried), so a dependency outage never restarts
//!   pods.
//! - **Ready** (`/readyz`): the replica answers Slack, with a plain "temporarily
//!   unavailable" of its own when Redis is down, so it stays ready through an outage;
//!   it turns unready once it is told to stop, before it drains.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// The loops this replica runs and whether it is stopping.
#[derive(Debug, Default)]
pub struct Health {
    stopping: AtomicBool,
    loops: Mutex<BTreeMap<&'static str, Loop>>,
}

#[derive(Clone, Copy, Debug)]
struct Loop {
    /// When it last came round.
    beat: Instant,
    /// How long it may go without coming round; `None` for a loop that waits on
    /// events and may rightly be idle for hours (only its ending counts).
    bound: Option<Duration>,
    ended: bool,
}

/// A running loop's hold on its entry: [`Beat::beat`] each time round; dropping it
/// (the loop returned, or panicked) marks the loop ended.
#[derive(Debug)]
pub struct Beat<'a> {
    health: &'a Health,
    name: &'static str,
}

impl Beat<'_> {
    /// The loop came round.
    pub fn beat(&self) {
        if let Some(l) = self.health.lock().get_mut(self.name) {
            l.beat = Instant::now();
        }
    }
}

impl Drop for Beat<'_> {
    fn drop(&mut self) {
        if let Some(l) = self.health.lock().get_mut(self.name) {
            l.ended = true;
        }
    }
}

impl Health {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, Loop>> {
        // A panic while holding this lock leaves a map that is still whole.
        self.loops.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts following the loop `name`, which must come round at least every
    /// `bound` (`None`: it may wait on events for any time).
    pub fn follow(&self, name: &'static str, bound: Option<Duration>) -> Beat<'_> {
        self.lock().insert(
            name,
            Loop {
                beat: Instant::now(),
                bound,
                ended: false,
            },
        );
        Beat { health: self, name }
    }

    /// Runs `work` as the loop `name`, which counts as ended when `work` returns.
    pub async fn run<F: Future<Output = ()>>(&self, name: &'static str, work: F) {
        let _beat = self.follow(name, None);
        work.await;
    }

    /// This replica is stopping: it turns unready, and its loops may end.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Ok with one line per loop, or Err with a line for each loop that is not alive.
    pub fn liveness(&self) -> Result<Vec<String>, Vec<String>> {
        let now = Instant::now();
        let stopping = self.is_stopping();
        let mut alive = Vec::new();
        let mut dead = Vec::new();
        for (name, l) in self.lock().iter() {
            let since = now.saturating_duration_since(l.beat);
            if l.ended && !stopping {
                dead.push(format!("{name}: ended"));
            } else if let Some(bound) = l.bound.filter(|b| since > *b && !stopping) {
                dead.push(format!(
                    "{name}: has not come round for {}s (bound {}s)",
                    since.as_secs(),
                    bound.as_secs()
                ));
            } else {
                alive.push(format!("{name}: running"));
            }
        }
        if dead.is_empty() {
            Ok(alive)
        } else {
            Err(dead)
        }
    }
}

/// How long a loop that sleeps at most `period` between rounds may go without one:
/// three periods and a minute for a round slowed by timeouts against a dependency
/// that does not answer (each call is bounded well below that).
pub fn bound_for(period: Duration) -> Duration {
    period
        .saturating_mul(3)
        .saturating_add(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_loop_that_comes_round_is_alive_and_one_that_stalls_is_not() {
        let health = Health::default();
        let beat = health.follow("sweep", Some(Duration::from_secs(75)));
        assert_eq!(health.liveness(), Ok(vec!["sweep: running".to_owned()]));
        tokio::time::advance(Duration::from_secs(70)).await;
        beat.beat();
        tokio::time::advance(Duration::from_secs(70)).await;
        assert!(health.liveness().is_ok(), "it came round 70 s ago");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(
            health.liveness(),
            Err(vec![
                "sweep: has not come round for 80s (bound 75s)".to_owned()
            ])
        );
        beat.beat();
        assert!(health.liveness().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_loop_may_idle_but_not_end() {
        let health = Health::default();
        let beat = health.follow("expiry guard", None);
        tokio::time::advance(Duration::from_secs(86_400)).await;
        assert!(health.liveness().is_ok());
        drop(beat);
        assert_eq!(
            health.liveness(),
            Err(vec!["expiry guard: ended".to_owned()])
        );
    }

    #[tokio::test]
    async fn a_panicking_loop_counts_as_ended() {
        let health = std::sync::Arc::new(Health::default());
        let h = health.clone();
        let task = tokio::spawn(async move {
            h.run("reconcile", async { panic!("a bug in a loop") })
                .await;
        });
        assert!(task.await.is_err());
        assert_eq!(health.liveness(), Err(vec!["reconcile: ended".to_owned()]));
    }

    #[tokio::test(start_paused = true)]
    async fn loops_ending_or_pausing_while_stopping_are_expected() {
        let health = Health::default();
        let beat = health.follow("sweep", Some(Duration::from_secs(1)));
        health.stop();
        assert!(health.is_stopping());
        tokio::time::advance(Duration::from_secs(5)).await;
        drop(beat);
        assert!(health.liveness().is_ok());
    }

    #[test]
    fn the_bound_leaves_room_for_slow_rounds() {
        assert_eq!(bound_for(Duration::from_secs(5)), Duration::from_secs(75));
        assert_eq!(bound_for(Duration::MAX), Duration::MAX);
    }
}
