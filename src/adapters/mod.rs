//! Adapters: the ports implemented on real infrastructure. Only `startup` picks which.

pub mod memory;
pub mod redis;
