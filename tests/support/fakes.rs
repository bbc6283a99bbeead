//! Recording fakes for the ports, for use-case tests that do not need a real cluster
//! or Slack. They record what the app asked and can be told to fail.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use jitbot::adapters::memory::MemoryCluster;
use jitbot::app::{
    App, AppConfig, AppError, Decision, ManualClock, Ports, Submission, SweepReport,
};
use jitbot::core::catalog::fixtures::{address_config, labels, requester_config, target_config};
use jitbot::core::catalog::{AccessConfig, Catalog, RequesterConfig, SourceConfig, TargetConfig};
use jitbot::core::command::Reason;
use jitbot::core::ids::{RequestId, SlackGroupId, SlackUserId};
use jitbot::core::ports::{AuditEvent, Directory, Notifier, NotifyError, Store};
use jitbot::core::request::{AccessRequest, AuditKind, Round, State, Transition};
use jitbot::core::ttl::Ttl;

/// Records every published event.
#[derive(Default)]
pub struct RecordingNotifier {
    pub events: Mutex<Vec<AuditEvent>>,
    pub fail: Mutex<bool>,
}

impl RecordingNotifier {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
    pub fn kinds(&self) -> Vec<&'static str> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.kind.as_str())
            .collect()
    }
}

#[async_trait]
impl Notifier for RecordingNotifier {
    async fn publish(&self, _req: &AccessRequest, event: &AuditEvent) -> Result<(), NotifyError> {
        self.events.lock().unwrap().push(event.clone());
        if *self.fail.lock().unwrap() {
            return Err(NotifyError("slack is down".to_owned()));
        }
        Ok(())
    }
}

/// User groups from a fixed map.
#[derive(Default)]
pub struct StaticDirectory {
    pub groups: HashMap<SlackGroupId, Vec<SlackUserId>>,
}

#[async_trait]
impl Directory for StaticDirectory {
    async fn group_members(&self, group: &SlackGroupId) -> Result<Vec<SlackUserId>, NotifyError> {
        self.groups
            .get(group)
            .cloned()
            .ok_or_else(|| NotifyError(format!("no such group {group}")))
    }
}

pub fn user(s: &str) -> SlackUserId {
    s.parse().unwrap()
}

/// The people of the catalog below; Alice, the first approver and the test instant
/// are the request builder's own.
pub use jitbot::core::request::fixtures::{ALICE, LEAD1, t0};
pub const CAROL: &str = "U0CAROL001";
pub const LEAD2: &str = "U01DBLEAD2";
pub const GROUP_MEMBER: &str = "U02DBA0001";
pub const ADMIN: &str = "U05ONCALL1";

/// A small catalog: `payments-db` (1 approval, users and a group), `ledger` (2
/// approvals), `grafana` (self-approval allowed); Alice by address, Carol by pod; the
/// default caps on one person's requests.
pub fn catalog() -> Catalog {
    catalog_with(AccessConfig::default())
}

/// The same catalog without the caps on one person's requests, for loads that come
/// from one person (the benches).
pub fn uncapped_catalog() -> Catalog {
    catalog_with(AccessConfig {
        max_pending_per_requester: 0,
        max_requests_per_hour: 0,
        ..AccessConfig::default()
    })
}

/// The catalog above with `access` (and its admin) as the `[access]` settings.
fn catalog_with(access: AccessConfig) -> Catalog {
    let target = |name: &str, required: i64, self_ok: bool| TargetConfig {
        description: format!("{name} for tests"),
        pod_selector: labels(&[("app", name)]),
        approvers: vec![LEAD1.to_owned(), LEAD2.to_owned(), "S02DBAS001".to_owned()],
        approvals_required: required,
        allow_self_approval: self_ok,
        ..target_config(name)
    };
    let by_address = |user: &str, name: &str, address: &str| RequesterConfig {
        name: name.to_owned(),
        ..requester_config(user, address_config(&[address]))
    };
    let alice = by_address(ALICE, "alice", "10.8.0.14");
    let carol = RequesterConfig {
        slack_user: CAROL.to_owned(),
        name: "carol".to_owned(),
        source: SourceConfig {
            pod: Some(jitbot::core::catalog::PodSourceConfig {
                namespace: "bastion".to_owned(),
                labels: labels(&[("app", "bastion")]),
            }),
            ..SourceConfig::default()
        },
    };
    let lead = by_address(LEAD1, "lead", "10.8.0.21");
    let access = AccessConfig {
        admins: vec![ADMIN.to_owned()],
        ..access
    };
    Catalog::build(
        &access,
        &[
            target("payments-db", 1, false),
            target("ledger", 2, false),
            target("grafana", 1, true),
        ],
        &[alice, carol, lead],
    )
    .unwrap()
}

/// What `/jit request <target> 30m INC-4411 replica lag` asks for, by `requester`.
pub fn ask(target: &str, requester: &str) -> Submission {
    Submission {
        requester: user(requester),
        target: target.parse().unwrap(),
        duration: Ttl::from_mins(30),
        from: None,
        reason: Reason::new("INC-4411 replica lag", 0).unwrap(),
    }
}

/// The id in jitbot's answer to `/jit request` ("Request `<id>` for …").
pub fn request_id_in(answer: &str) -> String {
    answer
        .strip_prefix("Request `")
        .and_then(|rest| rest.split('`').next())
        .unwrap_or_else(|| panic!("no request id in: {answer}"))
        .to_owned()
}

/// A 30-minute grant of `target` for `requester`, approved by `approver` and active.
pub async fn active(app: &App, target: &str, requester: &str, approver: &str) -> AccessRequest {
    let req = app.submit(ask(target, requester)).await.unwrap();
    let t = approve(app, &req.id, approver).await;
    assert_eq!(t.request.state, State::Active);
    t.request
}

/// The round a card for request `id` shows now, which its buttons carry.
pub async fn card_round(app: &App, id: &RequestId) -> Round {
    Round::of(&app.load(id).await.expect("the request is stored"))
}

/// `approver`'s yes to request `id`, as their click on its current card makes it; it
/// must be accepted.
pub async fn approve(app: &App, id: &RequestId, approver: &str) -> Transition {
    let round = card_round(app, id).await;
    app.decide(id, &user(approver), Decision::Approve, round)
        .await
        .unwrap_or_else(|e| panic!("{approver} approving {id}: {e}"))
}

/// The kinds of request `id`'s audit events, oldest first.
pub async fn audit_kinds(store: &dyn Store, id: &RequestId) -> Vec<AuditKind> {
    let history = store.audit_of(id).await.unwrap();
    history.iter().map(|e| e.kind).collect()
}

/// An app over `store` with recording fakes and a manual clock at `t0()`.
pub struct TestApp {
    pub app: App,
    /// The store behind `app`, for checks a use case does not answer.
    pub store: Arc<dyn Store>,
    /// The cluster behind `app`, which records applies and revokes.
    pub enforcer: Arc<MemoryCluster>,
    pub notifier: Arc<RecordingNotifier>,
    pub clock: Arc<ManualClock>,
}

impl TestApp {
    /// `approver`'s click on Approve: the transition, or why it was refused.
    pub async fn try_approve(
        &self,
        id: &RequestId,
        approver: &str,
    ) -> Result<Transition, AppError> {
        // The card the approver sees; a store that cannot say gets the request's own.
        let round = self
            .app
            .load(id)
            .await
            .map_or(Round::Request, |r| Round::of(&r));
        self.app
            .decide(id, &user(approver), Decision::Approve, round)
            .await
    }

    /// The same, where the click must be accepted.
    pub async fn approve(&self, id: &RequestId, approver: &str) -> Transition {
        approve(&self.app, id, approver).await
    }

    /// One expiry sweep at `now`; it must not fail.
    pub async fn sweep(&self, now: DateTime<Utc>) -> SweepReport {
        self.app.sweep_once(now).await.unwrap()
    }

    pub async fn state_of(&self, id: &RequestId) -> State {
        self.app.load(id).await.unwrap().state
    }

    pub async fn audit_kinds(&self, id: &RequestId) -> Vec<AuditKind> {
        audit_kinds(self.store.as_ref(), id).await
    }
}

pub fn test_app(store: Arc<dyn Store>) -> TestApp {
    test_app_with(store, catalog())
}

/// The same over another catalog.
pub fn test_app_with(store: Arc<dyn Store>, catalog: Catalog) -> TestApp {
    let enforcer = Arc::new(MemoryCluster::new());
    let notifier = RecordingNotifier::new();
    let clock = Arc::new(ManualClock::new(t0()));
    let directory = StaticDirectory {
        groups: HashMap::from([("S02DBAS001".parse().unwrap(), vec![user(GROUP_MEMBER)])]),
    };
    let app = App::new(
        Arc::new(catalog),
        Ports {
            store: store.clone(),
            enforcer: enforcer.clone(),
            notifier: notifier.clone(),
            directory: Arc::new(directory),
            clock: clock.clone(),
        },
        AppConfig::default(),
    );
    TestApp {
        app,
        store,
        enforcer,
        notifier,
        clock,
    }
}
