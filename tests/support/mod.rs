//! Test support: recording fakes for the ports, a fake Slack Web API, jitbot's HTTP
//! surface wired to them, a fault-injecting proxy, and launchers for the real servers
//! the tests talk to.
#![allow(dead_code)] // each test module uses a different part of the support

pub mod config_file;
pub mod fake_slack;
pub mod fakes;
pub mod fault_proxy;
pub mod kube;
pub mod redis;
pub mod slack_world;
pub mod spawn;
