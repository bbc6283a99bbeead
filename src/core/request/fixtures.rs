//! Test data for requests, shared by the unit tests in `src`, the integration tests
//! under `tests/` and the benches (which is why it is not `#[cfg(test)]`). Pure data:
//! nothing here does I/O, and no production code may use it (it is hidden from the
//! docs for that reason).
//!
//! [`AccessRequest::test()`] starts from Alice's 30-minute request for `payments-db`
//! (the postgres pods in `payments`, 5432/TCP, from 10.8.0.14, one approval needed)
//! made at [`t0()`], Pending, and each step changes one thing:
//! `AccessRequest::test().requester(CAROL).expiring_in(TimeDelta::minutes(5)).build()`
//! is Carol's grant, active since `t0()` and ending five minutes later.
//!
//! States are set field by field, not by running the lifecycle, so that the lifecycle's
//! own tests do not build their inputs with the function they test. The fields are the
//! ones the lifecycle would have set on the way there.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

use super::{AccessRequest, Approval, AuditKind, NewRequest, Scope, State, whole_second};
use crate::core::catalog::fixtures::{labels, tcp};
use crate::core::catalog::{Catalog, PortSpec, Source, Target};
use crate::core::command::Reason;
use crate::core::ids::{Namespace, RequestId};
use crate::core::ports::AuditEvent;
use crate::core::ttl::Ttl;

/// Who asks, unless a test says otherwise.
pub const ALICE: &str = "U0ALICE001";
/// An approver of `payments-db`.
pub const LEAD1: &str = "U01DBLEAD1";

/// The instant test requests are made at: 2026-11-26 14:00:00 UTC.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 14, 0, 0).unwrap()
}

/// A source of fixed host `addresses` (each `10.8.0.14/32` or `fd00::14/128`).
pub fn addresses(addresses: &[&str]) -> Source {
    Source::Addresses {
        addresses: addresses.iter().map(|a| parse(a, "an address")).collect(),
    }
}

/// The `Requested` event that `submit` stores with a new request.
pub fn requested(req: &AccessRequest, detail: &str) -> AuditEvent {
    AuditEvent {
        request_id: req.id.clone(),
        kind: AuditKind::Requested,
        at: req.created_at,
        actor: Some(req.requester.clone()),
        from: None,
        to: Some(State::Pending),
        detail: detail.to_owned(),
    }
}

fn parse<T: std::str::FromStr>(text: &str, what: &str) -> T {
    text.parse()
        .unwrap_or_else(|_| panic!("test data: `{text}` is not {what}"))
}

impl AccessRequest {
    /// Test data, one change at a time: see [`fixtures`](crate::core::request::fixtures).
    #[doc(hidden)]
    pub fn test() -> RequestBuilder {
        RequestBuilder::default()
    }
}

/// Builds one [`AccessRequest`] (or the [`NewRequest`] that creates it), one change at
/// a time; [`AccessRequest::test()`] starts one.
#[derive(Clone, Debug)]
pub struct RequestBuilder {
    new: NewRequest,
    made_at: DateTime<Utc>,
    state: State,
    approvals: Vec<Approval>,
    /// How long after `made_at` an active grant's policy expires; its duration when
    /// `None`.
    expires_in: Option<TimeDelta>,
}

impl Default for RequestBuilder {
    fn default() -> Self {
        RequestBuilder {
            new: NewRequest {
                id: RequestId::from_random([7; 10]),
                requester: parse(ALICE, "a Slack user id"),
                target: parse("payments-db", "a target name"),
                scope: Scope {
                    namespace: parse("payments", "a namespace"),
                    pod_selector: labels(&[("app", "postgres")]),
                    ports: vec![tcp(5432)],
                    approvals_required: 1,
                    allow_self_approval: false,
                    max_duration: Ttl::from_hours(2),
                },
                source: addresses(&["10.8.0.14/32"]),
                duration: Ttl::from_mins(30),
                reason: reason("INC-4411 replica lag"),
                approval_timeout: Ttl::from_hours(1),
                expiry_warning: Ttl::from_secs(0),
            },
            made_at: t0(),
            state: State::Pending,
            approvals: Vec::new(),
            expires_in: None,
        }
    }
}

fn reason(text: &str) -> Reason {
    Reason::new(text, 0).unwrap_or_else(|e| panic!("test data: `{text}`: {e}"))
}

impl RequestBuilder {
    pub fn id(mut self, id: RequestId) -> Self {
        self.new.id = id;
        self
    }

    /// A fixed id made of `seed`: the same seed, the same id.
    pub fn seed(self, seed: u8) -> Self {
        self.id(RequestId::from_random([seed; 10]))
    }

    pub fn requester(mut self, user: &str) -> Self {
        self.new.requester = parse(user, "a Slack user id");
        self
    }

    /// A request for a catalog target: its name and its scope as the catalog says.
    pub fn target(mut self, target: &Target) -> Self {
        self.new.target = target.name.clone();
        self.new.scope = Scope::of(target);
        self
    }

    /// What `submit` makes of `requester`'s request for `target` in `catalog`: the
    /// target's name and scope and the requester's own source.
    pub fn in_catalog(self, catalog: &Catalog, target: &str, requester: &str) -> Self {
        let user = parse(requester, "a Slack user id");
        let source = catalog
            .requester(&user)
            .and_then(|r| r.resolve_source(None).ok())
            .unwrap_or_else(|| panic!("test data: {requester} has no source in the catalog"));
        let target = catalog
            .target(target)
            .unwrap_or_else(|| panic!("test data: the catalog has no target {target}"));
        let mut built = self.target(target).source(source);
        built.new.requester = user;
        built
    }

    pub fn namespace(mut self, namespace: Namespace) -> Self {
        self.new.scope.namespace = namespace;
        self
    }

    pub fn pod_selector(mut self, selector: std::collections::BTreeMap<String, String>) -> Self {
        self.new.scope.pod_selector = selector;
        self
    }

    pub fn ports(mut self, ports: Vec<PortSpec>) -> Self {
        self.new.scope.ports = ports;
        self
    }

    pub fn source(mut self, source: Source) -> Self {
        self.new.source = source;
        self
    }

    pub fn reason(mut self, text: &str) -> Self {
        self.new.reason = reason(text);
        self
    }

    pub fn duration(mut self, duration: Ttl) -> Self {
        self.new.duration = duration;
        self
    }

    pub fn approvals_required(mut self, approvals: u32) -> Self {
        self.new.scope.approvals_required = approvals;
        self
    }

    pub fn allow_self_approval(mut self, allowed: bool) -> Self {
        self.new.scope.allow_self_approval = allowed;
        self
    }

    /// When it was submitted; an active grant was activated at the same instant.
    pub fn made_at(mut self, at: DateTime<Utc>) -> Self {
        self.made_at = at;
        self
    }

    pub fn approval_timeout(mut self, timeout: Ttl) -> Self {
        self.new.approval_timeout = timeout;
        self
    }

    pub fn expiry_warning(mut self, warning: Ttl) -> Self {
        self.new.expiry_warning = warning;
        self
    }

    /// Waiting for approvals (the default).
    pub fn pending(self) -> Self {
        self.in_state(State::Pending)
    }

    /// `user` approved it at `at`. Once the approvals meet the quorum a Pending request
    /// is Approved, as the lifecycle would have it.
    pub fn approved_by(mut self, user: &str, at: DateTime<Utc>) -> Self {
        self.approvals.push(Approval {
            by: parse(user, "a Slack user id"),
            at,
        });
        self
    }

    /// Active since it was made, for its whole duration.
    pub fn active(self) -> Self {
        self.in_state(State::Active)
    }

    /// Active since it was made, its policy expiring `left` later.
    pub fn expiring_in(mut self, left: TimeDelta) -> Self {
        self.expires_in = Some(left);
        self.active()
    }

    /// In `state`, with the timestamps a request there carries: an active grant (or one
    /// that expired or was revoked) was activated when it was made and expires after
    /// its duration; an ended request ended at its expiry, or else when it was made.
    pub fn in_state(mut self, state: State) -> Self {
        self.state = state;
        self
    }

    /// What `submit` passes to [`AccessRequest::new`].
    pub fn new_request(self) -> NewRequest {
        self.new
    }

    pub fn build(self) -> AccessRequest {
        let expires_in = self.expires_in.unwrap_or(self.new.duration.as_delta());
        let mut req = AccessRequest::new(self.new, self.made_at);
        req.approvals = self.approvals;
        let quorum = !req.approvals.is_empty()
            && req.approvals.len() >= req.scope.approvals_required as usize;
        req.state = match self.state {
            State::Pending if quorum => State::Approved,
            state => state,
        };
        if matches!(req.state, State::Active | State::Expired | State::Revoked) {
            let expires_at = whole_second(self.made_at + expires_in);
            req.activated_at = Some(self.made_at);
            req.expires_at = Some(expires_at);
            if req.state == State::Active {
                req.warn_at = req.warning_for(expires_at, self.made_at);
            }
        }
        if !matches!(req.state, State::Pending | State::Approved | State::Active) {
            req.ended_at = Some(req.expires_at.unwrap_or(self.made_at));
        }
        req
    }
}
