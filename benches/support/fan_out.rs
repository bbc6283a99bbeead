//! Many writes from a few tasks at once: how the benches fill the store and the
//! cluster with grants before they measure anything.

use std::future::Future;
use std::sync::Arc;

use tokio::task::JoinSet;

/// Runs `item(i)` for every `i` in `0..count` on `tasks` tasks at once, task `t`
/// taking `t`, `t + tasks`, … one after another. Returns each `(i, result)`, the
/// tasks' batches in the order the tasks finished.
pub async fn fan_out<T, F, Fut>(count: usize, tasks: usize, item: F) -> Vec<(usize, T)>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + Send,
{
    let item = Arc::new(item);
    let mut running = JoinSet::new();
    for task in 0..tasks {
        let item = item.clone();
        running.spawn(async move {
            let mut done = Vec::new();
            for i in (task..count).step_by(tasks) {
                done.push((i, item(i).await));
            }
            done
        });
    }
    let mut all = Vec::with_capacity(count);
    while let Some(done) = running.join_next().await {
        all.extend(done.expect("a fan-out task"));
    }
    all
}
