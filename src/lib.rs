//! jitbot: just-in-time, time-boxed network access inside Kubernetes, approved in Slack.
//!
//! A developer types `/jit request payments-db 30m INC-4411 replica lag`; approvers see
//! the exact NetworkPolicy that would be applied and click Approve or Deny; jitbot
//! applies a NetworkPolicy that opens exactly that connection and removes it when time
//! is up. Every step is audited.
//!
//! Layout (dependencies point inward):
//!
//! - [`core`]: pure domain code. Identifiers, the catalog, the `/jit` grammar, the
//!   request lifecycle, NetworkPolicy rendering, the expiry and reconcile verdicts,
//!   the admission checks and the ports. No I/O.
//! - [`app`]: the use cases (submit, decide, revoke, extend, sweep, reconcile) over the
//!   ports that [`core::ports`] defines.
//! - [`adapters`]: the ports on real infrastructure (memory, Redis, Kubernetes with its
//!   cluster-side expiry guard, Slack, HTTP).
//! - [`settings`]: layered configuration and secrets.
//! - [`startup`]: the composition root. [`startup::assemble`] builds the ports from
//!   the settings and the app over them, for `serve`, the operator commands, the
//!   playground, the tests and the benches alike; nothing else wires adapters.
//! - [`worker`]: the background loops around the app's `*_once` steps.
//! - [`metrics`]: the Prometheus registry `/metrics` serves.
//! - [`cli`]: the `jitbot` command line.
//! - [`playground`]: `jitbot playground`, the same app with a Slack stand-in, the
//!   in-memory cluster and a movable clock, driven from a web page.
//!
//! The lifecycle (see [`core::request`]):
//!
//! ```text
//!           ┌──── deny ───▶ Denied
//! Pending ──┼──── approval timeout ───▶ Lapsed
//!           ├──── requester cancels ───▶ Cancelled
//!           └──── approve (quorum met) ─▶ Approved ── policy applied ─▶ Active
//!                                             └── apply keeps failing ─▶ Failed
//! Active ── expires_at reached ─▶ Expired
//! Active ── revoke (requester, approver, admin) ─▶ Revoked
//! Active ── extend (approved again) ─▶ Active (new expires_at)
//! ```
#![forbid(unsafe_code)]

pub mod adapters;
pub mod app;
pub mod cli;
pub mod core;
pub mod metrics;
pub mod playground;
pub mod settings;
pub mod startup;
pub mod worker;
