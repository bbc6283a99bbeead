//! Adapters: the ports in [`crate::core::ports`] implemented on real systems, each
//! around one of them. Only `startup` knows which ones are in use; the core and the
//! app see traits.

pub mod http;
pub mod kube;
pub mod memory;
pub mod redis;
pub mod slack;
