//! jitbot's integration tests: one test binary (fewer link steps), one module per area.

#[path = "../support/mod.rs"]
mod support;

mod config_files;
mod lifecycle_contract;
mod redis_store;
mod store_contract;
