//! Coalescing Home refreshes. Publishing a Home reads the person's requests and what
//! waits for them, so a burst of changes (hundreds of requests a second from one
//! person) must not cost a publish each, nor hold up the cards behind it. A refresh
//! is asked for and returns at once; per person at most one publish runs, and
//! refreshes asked for while it runs, or within [`MIN_GAP`] after it, are served by
//! one more publish once the gap has passed. So a Home is published at most once per
//! gap per person, and always after the last change it was asked for.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The least time between two publishes of one person's Home.
pub(super) const MIN_GAP: Duration = Duration::from_secs(1);

/// The people whose Home is being published, each with whether it was asked for again
/// meanwhile.
#[derive(Clone, Default)]
pub(super) struct Refreshes {
    running: Arc<Mutex<HashMap<String, bool>>>,
}

impl Refreshes {
    /// Has `person`'s Home published: by a new publisher task running `publish` unless
    /// one is running for them, which then publishes once more after its gap.
    pub(super) fn ask<F, Fut>(&self, person: &str, publish: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        {
            let mut running = lock(&self.running);
            if let Some(again) = running.get_mut(person) {
                *again = true;
                return;
            }
            running.insert(person.to_owned(), false);
        }
        let running = self.running.clone();
        let person = person.to_owned();
        tokio::spawn(async move {
            loop {
                publish().await;
                tokio::time::sleep(MIN_GAP).await;
                let mut running = lock(&running);
                match running.get_mut(&person) {
                    Some(again) if *again => *again = false,
                    _ => {
                        running.remove(&person);
                        return;
                    }
                }
            }
        });
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain data; a panic elsewhere cannot leave it inconsistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn counter() -> (
        Arc<AtomicUsize>,
        impl Fn() -> std::future::Ready<()> + Send + 'static,
    ) {
        let count = Arc::new(AtomicUsize::new(0));
        let counted = count.clone();
        (count, move || {
            counted.fetch_add(1, Ordering::SeqCst);
            std::future::ready(())
        })
    }

    /// Lets the publisher tasks run up to the next timer.
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_costs_one_publish_now_and_one_after_the_gap() {
        let refreshes = Refreshes::default();
        let (count, publish) = counter();
        let publish = Arc::new(publish);
        for _ in 0..100 {
            let p = publish.clone();
            refreshes.ask("U0ALICE001", move || p());
        }
        settle().await;
        assert_eq!(
            count.load(Ordering::SeqCst),
            1,
            "the first publishes at once"
        );
        tokio::time::sleep(MIN_GAP + Duration::from_millis(1)).await;
        settle().await;
        assert_eq!(count.load(Ordering::SeqCst), 2, "the other 99 share one");
        tokio::time::sleep(MIN_GAP * 3).await;
        settle().await;
        assert_eq!(count.load(Ordering::SeqCst), 2, "nothing more was asked");
        assert!(lock(&refreshes.running).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn people_are_published_independently_and_again_after_an_idle_gap() {
        let refreshes = Refreshes::default();
        let (alice, publish_alice) = counter();
        let (bob, publish_bob) = counter();
        refreshes.ask("U0ALICE001", publish_alice);
        refreshes.ask("U0BOB00001", publish_bob);
        settle().await;
        assert_eq!(
            (alice.load(Ordering::SeqCst), bob.load(Ordering::SeqCst)),
            (1, 1)
        );
        tokio::time::sleep(MIN_GAP * 2).await;
        settle().await;
        let (again, publish_again) = counter();
        refreshes.ask("U0ALICE001", publish_again);
        settle().await;
        assert_eq!(
            again.load(Ordering::SeqCst),
            1,
            "an idle person publishes at once"
        );
    }
}
