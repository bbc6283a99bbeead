//! The ports in process memory, side by side: a [`MemoryStore`] (jitbot's embedded
//! default when no `REDIS_URL` is set) and a [`MemoryCluster`] (the playground's dry
//! run, and the tests' cluster when they need none). Both keep the semantics of the
//! real adapters they stand for; neither survives a restart nor reaches outside the
//! process.

mod cluster;
mod outbox;
mod store;

pub use cluster::{DRY_RUN_PREVIEW, MemoryCluster};
pub use outbox::MEMORY_OUTBOX_MAX;
pub use store::MemoryStore;
