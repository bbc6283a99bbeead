//! Test support: recording fakes for the ports that face people (Slack) and a
//! programmable enforcer, plus launchers for the real servers the tests talk to.
#![allow(dead_code)] // each test module uses a different part of the support

pub mod fakes;
pub mod redis;
