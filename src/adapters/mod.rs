//! Adapters: the concrete implementations of the ports in [`crate::core::ports`], each
//! around one external system. Only `startup` knows which ones are in use; the core and
//! the app see traits.

pub mod kube;
