//! Test support: recording fakes for the ports, a fake Slack Web API, jitbot's HTTP
//! surface wired to them, a fault-injecting proxy, launchers for the real servers the
//! tests talk to, and jitbot's config file as an operator writes it. Each item has a
//! user in the tests: what none of them needs is deleted, not allowed.

pub mod config_file;
pub mod fake_slack;
pub mod fakes;
pub mod fault_proxy;
pub mod kube;
pub mod redis;
pub mod redis_ha;
pub mod slack_world;
pub mod spawn;
