//! What a person asks for (`/jit request`, or `jitbot render` on an operator's
//! terminal) and the checks it must pass against the catalog before it becomes a
//! Pending [`AccessRequest`]: the target exists, the person is a requester, the
//! duration is within the target's bounds, and their source resolves (with the
//! address they picked, if their source is a range). `App::submit` and `render` both
//! call [`Submission::admit`], so what the CLI previews is what Slack would accept.
//!
//! The refusals are typed: each edge words them for its reader (a Slack user is told
//! to ask their platform team; an operator is told which catalog entry is missing).
//!
//! `App::submit` then checks the caps on how much one person may ask for
//! ([`limits`]), which need the store's count and so are not part of `admit`.

pub mod limits;

use std::net::IpAddr;

use chrono::{DateTime, Utc};

use crate::core::catalog::{Catalog, SourceError, Target};
use crate::core::command::{Reason, check_duration};
use crate::core::ids::{RequestId, SlackUserId, TargetName};
use crate::core::policy::{self, BreakGlassRefusal, CapReached, Membership, NotAllowed};
use crate::core::request::{AccessRequest, NewRequest, Scope};
use crate::core::ttl::Ttl;

/// What a person asked for in `/jit request`.
#[derive(Clone, Debug)]
pub struct Submission {
    pub requester: SlackUserId,
    pub target: TargetName,
    pub duration: Ttl,
    /// The address picked from a range source.
    pub from: Option<IpAddr>,
    pub reason: Reason,
}

/// Why a submission cannot become a request. `Display` is the sentence for the person
/// who typed `/jit request`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("`{0}` is not a target; `/jit targets` lists them")]
    UnknownTarget(TargetName),
    #[error(
        "you are not set up to request access yet: ask your platform team to add your Slack id {0} to jitbot's requesters"
    )]
    NotARequester(SlackUserId),
    /// Outside the target's bounds; says which and what to pick instead.
    #[error("{0}")]
    Duration(String),
    #[error("{0}")]
    Source(#[from] SourceError),
    /// `access.max_pending_per_requester` of their requests already wait for approval.
    #[error("{}", limits::too_many_pending(*limit, waiting, *lapses_at))]
    TooManyPending {
        limit: u32,
        /// The requests that wait, oldest first.
        waiting: Vec<RequestId>,
        /// When the oldest of them lapses if nobody decides.
        lapses_at: DateTime<Utc>,
    },
    /// They made `access.max_requests_per_hour` requests in the last hour.
    #[error("{}", limits::too_many_recent(*limit, *made, *retry_after))]
    TooManyRecent {
        limit: u32,
        made: usize,
        /// When one more fits.
        retry_after: DateTime<Utc>,
    },
    /// The target's `requesters` do not include them.
    #[error("{0}")]
    NotAllowed(#[from] NotAllowed),
    /// The reason does not match the target's `reason_pattern`; the hint says what to write.
    #[error("that reason does not fit {target}'s rule: {hint}")]
    Reason { target: TargetName, hint: String },
    /// One more grant would go over a cap on active grants.
    #[error("{0}")]
    Cap(#[from] CapReached),
    #[error("{0}")]
    BreakGlass(#[from] BreakGlassRefusal),
}

/// The catalog target `name`, or the refusal `admit` would give.
pub fn target<'c>(catalog: &'c Catalog, name: &TargetName) -> Result<&'c Target, Refusal> {
    catalog
        .target(name.as_str())
        .ok_or_else(|| Refusal::UnknownTarget(name.clone()))
}

impl Submission {
    /// The target's own rules for who may ask and what a reason must say, for a
    /// person in the user groups `who` names.
    pub fn check_policy(&self, target: &Target, who: &Membership) -> Result<(), Refusal> {
        policy::may_request(target, who)?;
        policy::check_reason(target, &self.reason).map_err(|hint| Refusal::Reason {
            target: target.name.clone(),
            hint,
        })
    }

    /// The Pending request this submission makes at `now`, with id `id`, or why the
    /// catalog refuses it. Scope and source come from the catalog, never from what
    /// was typed.
    pub fn admit(
        &self,
        catalog: &Catalog,
        id: RequestId,
        now: DateTime<Utc>,
    ) -> Result<AccessRequest, Refusal> {
        let target = target(catalog, &self.target)?;
        let requester = catalog
            .requester(&self.requester)
            .ok_or_else(|| Refusal::NotARequester(self.requester.clone()))?;
        check_duration(
            self.duration,
            catalog.limits.min_duration,
            target.max_duration,
            target.name.as_str(),
        )
        .map_err(Refusal::Duration)?;
        let source = requester.resolve_source(self.from)?;
        Ok(AccessRequest::new(
            NewRequest {
                id,
                requester: self.requester.clone(),
                target: target.name.clone(),
                scope: Scope::of(target),
                source,
                duration: self.duration,
                reason: self.reason.clone(),
                approval_timeout: catalog.limits.approval_timeout,
                expiry_warning: catalog.limits.expiry_warning,
            },
            now,
        ))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::core::catalog::fixtures::{address_config, requester_config, target_config};
    use crate::core::catalog::{AccessConfig, SourceConfig};
    use crate::core::request::State;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 14, 0, 0).unwrap()
    }

    /// payments-db (max 2h); Alice has a fixed address, Bob a range.
    fn catalog() -> Catalog {
        let alice = requester_config("U0ALICE001", address_config(&["10.8.0.14"]));
        let bob = requester_config(
            "U0BOB00001",
            SourceConfig {
                range: Some("10.8.1.0/28".to_owned()),
                ..SourceConfig::default()
            },
        );
        Catalog::build(
            &AccessConfig::default(),
            &[target_config("payments-db")],
            &[alice, bob],
        )
        .expect("test catalog is valid")
    }

    fn ask(requester: &str, target: &str, duration: Ttl) -> Submission {
        Submission {
            requester: requester.parse().unwrap(),
            target: target.parse().unwrap(),
            duration,
            from: None,
            reason: Reason::new("INC-4411 replica lag", 0).unwrap(),
        }
    }

    fn admit(s: &Submission) -> Result<AccessRequest, Refusal> {
        s.admit(&catalog(), RequestId::from_random([7; 10]), t0())
    }

    #[test]
    fn an_admitted_submission_is_pending_with_the_catalog_scope() {
        let req = admit(&ask("U0ALICE001", "payments-db", Ttl::from_mins(30))).unwrap();
        assert_eq!(req.state, State::Pending);
        assert_eq!(req.scope.namespace.as_str(), "payments");
        assert_eq!(req.created_at, t0());
        assert_eq!(req.source.to_string(), "10.8.0.14/32");
    }

    #[test]
    fn each_check_has_its_refusal() {
        let thirty = Ttl::from_mins(30);
        let refused = |s: Submission| admit(&s).unwrap_err();
        assert!(matches!(
            refused(ask("U0ALICE001", "paymnts-db", thirty)),
            Refusal::UnknownTarget(_)
        ));
        assert!(matches!(
            refused(ask("U0NOBODY01", "payments-db", thirty)),
            Refusal::NotARequester(_)
        ));
        let long = refused(ask("U0ALICE001", "payments-db", Ttl::from_mins(180)));
        assert!(
            long.to_string().contains("pick between 5m and 2h"),
            "{long}"
        );
        assert_eq!(
            refused(ask("U0BOB00001", "payments-db", thirty)),
            Refusal::Source(SourceError::AddressRequired("10.8.1.0/28".parse().unwrap()))
        );
        let mut picked = ask("U0BOB00001", "payments-db", thirty);
        picked.from = Some("10.8.1.3".parse().unwrap());
        assert_eq!(admit(&picked).unwrap().source.to_string(), "10.8.1.3/32");
    }
}
