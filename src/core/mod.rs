//! The pure core: identifiers, the catalog, the `/jit` grammar and the checks a request
//! must pass against the catalog, the request lifecycle (with test-data builders), the
//! NetworkPolicy rendering and the cluster preview's verdict, the RBAC a catalog needs, what a policy's own
//! expiry says and what the reconciler decides about it, the Slack buttons' action ids
//! and the ports (traits) the app drives, the Slack outbox's among them. Nothing in here does I/O or imports an I/O
//! crate (tokio, redis, kube, axum, slack-morphism); CI checks it.

pub mod actions;
pub mod catalog;
pub mod command;
pub mod expiry;
pub mod ids;
pub mod netpol;
pub mod outbox;
pub mod policy;
pub mod ports;
pub mod preview;
pub mod rbac;
pub mod reconcile;
pub mod request;
pub mod secret;
pub mod submission;
pub mod trust;
pub mod ttl;
pub mod yaml;
