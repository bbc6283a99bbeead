//! Recording fakes for the ports, for use-case tests that do not need a real cluster
//! or Slack. They record what the app asked and can be told to fail.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use k8s_openapi::api::networking::v1::NetworkPolicy;

use jitbot::app::{App, AppConfig, Decision, ManualClock, Ports, Submission};
use jitbot::core::catalog::{
    AccessConfig, Catalog, PortConfig, RequesterConfig, SourceConfig, TargetConfig,
};
use jitbot::core::command::Reason;
use jitbot::core::ids::{SlackGroupId, SlackUserId};
use jitbot::core::ports::{
    AuditEvent, Directory, EnforceError, Enforcer, Notifier, NotifyError, PolicyRef, Store,
};
use jitbot::core::request::AccessRequest;
use jitbot::core::ttl::Ttl;

/// Keeps applied policies in a map, like a tiny cluster, and counts every call.
#[derive(Default)]
pub struct RecordingEnforcer {
    pub state: Mutex<EnforcerState>,
    /// When set, every revoke waits here first: a barrier of N proves N revokes were
    /// in flight at once.
    pub revoke_barrier: Mutex<Option<Arc<tokio::sync::Barrier>>>,
}

#[derive(Default)]
pub struct EnforcerState {
    pub live: BTreeMap<(String, String), NetworkPolicy>,
    pub applies: usize,
    pub revokes: Vec<PolicyRef>,
    /// The next N apply calls fail with this error.
    pub fail_applies: Vec<EnforceError>,
    /// The next N revoke calls fail with this error.
    pub fail_revokes: Vec<EnforceError>,
}

impl RecordingEnforcer {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
    pub fn lock(&self) -> std::sync::MutexGuard<'_, EnforcerState> {
        self.state.lock().unwrap()
    }
    pub fn live_names(&self) -> Vec<String> {
        self.lock()
            .live
            .keys()
            .map(|(ns, n)| format!("{ns}/{n}"))
            .collect()
    }
    /// Puts a policy in the "cluster" directly, as someone else would.
    pub fn insert(&self, p: NetworkPolicy) {
        let key = (
            p.metadata.namespace.clone().unwrap(),
            p.metadata.name.clone().unwrap(),
        );
        self.lock().live.insert(key, p);
    }
}

#[async_trait]
impl Enforcer for RecordingEnforcer {
    async fn apply(&self, policies: &[NetworkPolicy]) -> Result<(), EnforceError> {
        let mut s = self.lock();
        s.applies += 1;
        if !s.fail_applies.is_empty() {
            return Err(s.fail_applies.remove(0));
        }
        for p in policies {
            let key = (
                p.metadata.namespace.clone().unwrap(),
                p.metadata.name.clone().unwrap(),
            );
            s.live.insert(key, p.clone());
        }
        Ok(())
    }

    async fn revoke(&self, policies: &[PolicyRef]) -> Result<usize, EnforceError> {
        let barrier = self.revoke_barrier.lock().unwrap().clone();
        if let Some(barrier) = barrier {
            barrier.wait().await;
        }
        let mut s = self.lock();
        if !s.fail_revokes.is_empty() {
            return Err(s.fail_revokes.remove(0));
        }
        let mut deleted = 0;
        for p in policies {
            s.revokes.push(p.clone());
            if s.live
                .remove(&(p.namespace.to_string(), p.name.clone()))
                .is_some()
            {
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    async fn list_managed(&self) -> Result<Vec<NetworkPolicy>, EnforceError> {
        let s = self.lock();
        Ok(s.live
            .values()
            .filter(|p| {
                p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("app.kubernetes.io/managed-by"))
                    .map(String::as_str)
                    == Some("jitbot")
            })
            .cloned()
            .collect())
    }
}

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

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 14, 0, 0).unwrap()
}

pub const ALICE: &str = "U0ALICE001";
pub const CAROL: &str = "U0CAROL001";
pub const LEAD1: &str = "U01DBLEAD1";
pub const LEAD2: &str = "U01DBLEAD2";
pub const GROUP_MEMBER: &str = "U02DBA0001";
pub const ADMIN: &str = "U05ONCALL1";

/// A small catalog: `payments-db` (1 approval, users and a group), `ledger` (2
/// approvals), `grafana` (self-approval allowed); Alice by address, Carol by pod.
pub fn catalog() -> Catalog {
    let target = |name: &str, required: i64, self_ok: bool| TargetConfig {
        name: name.to_owned(),
        description: format!("{name} for tests"),
        namespace: "payments".to_owned(),
        pod_selector: BTreeMap::from([("app".to_owned(), name.to_owned())]),
        ports: vec![PortConfig {
            port: 5432,
            end_port: None,
            protocol: "TCP".to_owned(),
        }],
        default_duration: "30m".to_owned(),
        max_duration: "2h".to_owned(),
        approvers: vec![LEAD1.to_owned(), LEAD2.to_owned(), "S02DBAS001".to_owned()],
        approval_channel: "C03DBAPPRV".to_owned(),
        approvals_required: required,
        allow_self_approval: self_ok,
    };
    let alice = RequesterConfig {
        slack_user: ALICE.to_owned(),
        name: "alice".to_owned(),
        source: SourceConfig {
            addresses: vec!["10.8.0.14".to_owned()],
            ..SourceConfig::default()
        },
    };
    let carol = RequesterConfig {
        slack_user: CAROL.to_owned(),
        name: "carol".to_owned(),
        source: SourceConfig {
            pod: Some(jitbot::core::catalog::PodSourceConfig {
                namespace: "bastion".to_owned(),
                labels: BTreeMap::from([("app".to_owned(), "bastion".to_owned())]),
            }),
            ..SourceConfig::default()
        },
    };
    let lead = RequesterConfig {
        slack_user: LEAD1.to_owned(),
        name: "lead".to_owned(),
        source: SourceConfig {
            addresses: vec!["10.8.0.21".to_owned()],
            ..SourceConfig::default()
        },
    };
    let access = AccessConfig {
        admins: vec![ADMIN.to_owned()],
        ..AccessConfig::default()
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

/// A 30-minute grant of `target` for `requester`, approved by `approver` and active.
pub async fn active(app: &App, target: &str, requester: &str, approver: &str) -> AccessRequest {
    let req = app.submit(ask(target, requester)).await.unwrap();
    let t = app
        .decide(&req.id, &user(approver), Decision::Approve)
        .await
        .unwrap();
    assert_eq!(t.request.state, jitbot::core::request::State::Active);
    t.request
}

/// An app over `store` with recording fakes and a manual clock at `t0()`.
pub struct TestApp {
    pub app: App,
    /// The store behind `app`, for checks a use case does not answer.
    pub store: Arc<dyn Store>,
    pub enforcer: Arc<RecordingEnforcer>,
    pub notifier: Arc<RecordingNotifier>,
    pub clock: Arc<ManualClock>,
}

pub fn test_app(store: Arc<dyn Store>) -> TestApp {
    let enforcer = RecordingEnforcer::new();
    let notifier = RecordingNotifier::new();
    let clock = Arc::new(ManualClock::new(t0()));
    let directory = StaticDirectory {
        groups: HashMap::from([("S02DBAS001".parse().unwrap(), vec![user(GROUP_MEMBER)])]),
    };
    let app = App::new(
        Arc::new(catalog()),
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
