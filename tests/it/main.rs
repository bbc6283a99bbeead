//! jitbot's integration tests: one test binary (fewer link steps), one module per area.

#[path = "../support/mod.rs"]
mod support;

mod app_home;
mod approval_policy;
mod config_files;
mod e2e;
mod expiry_guard;
mod grants_cli;
mod kube_enforcer;
mod lifecycle_contract;
mod manifests;
mod monitoring;
mod outbox;
mod playground;
mod reconcile;
mod redis_ha;
mod redis_retention;
mod redis_store;
mod retention_contract;
mod serve_binary;
mod slack_ack;
mod slack_egress;
mod slack_events;
mod slack_forms;
mod slack_http;
mod socket_mode;
mod store_contract;
mod submission_limits;
mod tamper_guard;
mod trust;
mod workers;
