//! Test support shared by the integration tests: real servers and fakes around them.

pub mod fault_proxy;
pub mod kube;
