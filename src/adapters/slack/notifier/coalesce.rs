//! Coalescing one person's Home refreshes: a refresh is served once a publish that
//! started after it was asked for has finished. While one publish runs, every refresh
//! asked for meanwhile waits for its turn, and the first to get it publishes for all
//! of them; the others find themselves served and return. A burst of N refreshes
//! costs at most two publishes, and none returns before the Home shows what was
//! stored when it asked.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

/// One person's refreshes: `asked` counts those asked for, `served` the count a
/// finished publish had seen when it started.
#[derive(Default)]
pub(super) struct Coalesced {
    turn: tokio::sync::Mutex<()>,
    asked: AtomicU64,
    served: AtomicU64,
}

impl Coalesced {
    /// Runs `publish` unless a publish that started after this call has finished
    /// meanwhile. A failed publish serves nobody: the next in line tries again.
    pub(super) async fn refresh<E, F, Fut>(&self, publish: F) -> Result<(), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        let ticket = self.asked.fetch_add(1, Ordering::SeqCst) + 1;
        let _turn = self.turn.lock().await;
        if self.served.load(Ordering::SeqCst) >= ticket {
            return Ok(());
        }
        let seen = self.asked.load(Ordering::SeqCst);
        publish().await?;
        self.served.fetch_max(seen, Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use tokio::sync::Notify;

    use super::*;

    #[tokio::test]
    async fn a_burst_while_one_publish_runs_costs_one_more_publish() {
        let slot = Arc::new(Coalesced::default());
        let publishes = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(Notify::new());
        let started = Arc::new(Notify::new());
        // The first refresh publishes and is held mid-way.
        let first = {
            let (slot, publishes, release, started) = (
                slot.clone(),
                publishes.clone(),
                release.clone(),
                started.clone(),
            );
            tokio::spawn(async move {
                slot.refresh(|| async {
                    publishes.fetch_add(1, Ordering::SeqCst);
                    started.notify_one();
                    release.notified().await;
                    Ok::<(), ()>(())
                })
                .await
            })
        };
        started.notified().await;
        // Ten more are asked for while it runs.
        let burst: Vec<_> = (0..10)
            .map(|_| {
                let (slot, publishes) = (slot.clone(), publishes.clone());
                tokio::spawn(async move {
                    slot.refresh(|| async {
                        publishes.fetch_add(1, Ordering::SeqCst);
                        Ok::<(), ()>(())
                    })
                    .await
                })
            })
            .collect();
        // Let every one of them take its ticket before the first finishes.
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        assert_eq!(slot.asked.load(Ordering::SeqCst), 11);
        release.notify_one();
        first.await.unwrap().unwrap();
        for waiter in burst {
            waiter.await.unwrap().unwrap();
        }
        assert_eq!(
            publishes.load(Ordering::SeqCst),
            2,
            "one for the first, one for the burst"
        );
    }

    #[tokio::test]
    async fn a_failed_publish_leaves_the_next_refresh_to_publish() {
        let slot = Coalesced::default();
        let failed: Result<(), &str> = slot.refresh(|| async { Err("slack down") }).await;
        assert_eq!(failed, Err("slack down"));
        let publishes = AtomicUsize::new(0);
        slot.refresh(|| async {
            publishes.fetch_add(1, Ordering::SeqCst);
            Ok::<(), ()>(())
        })
        .await
        .unwrap();
        assert_eq!(publishes.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn refreshes_one_after_another_each_publish() {
        let slot = Coalesced::default();
        let publishes = AtomicUsize::new(0);
        for _ in 0..3 {
            slot.refresh(|| async {
                publishes.fetch_add(1, Ordering::SeqCst);
                Ok::<(), ()>(())
            })
            .await
            .unwrap();
        }
        assert_eq!(publishes.load(Ordering::SeqCst), 3);
    }
}
