//! `spawn_app()`: the whole of jitbot as `jitbot serve` builds it (startup.rs), on
//! 127.0.0.1:0, with a real redis-server, the real kube-apiserver and the fake Slack.
//! Only the clock is injected; the workers stay off unless asked for, so a test moves
//! time and runs one sweep at a time.

use std::collections::HashMap;
use std::sync::Arc;

use jitbot::app::ManualClock;
use jitbot::core::catalog::fixtures::{address_config, requester_config, target_config};
use jitbot::core::catalog::{RequesterConfig, TargetConfig};
use jitbot::core::ids::Namespace;
use jitbot::core::ports::Clock;
use jitbot::settings::{Secrets, Settings};
use jitbot::startup::{Application, Overrides};

use super::fakes::{ALICE, LEAD1, LEAD2, t0};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::Api;

use super::fake_slack::FakeSlack;
use super::kube::{Cluster, cluster};
use super::redis::{RedisServer, unique_prefix};
use super::slack_world::{APPROVALS, AUDIT, InboundSlack, SECRET, TOKEN};

/// Where a test's jitbot finds its world.
pub struct World<'a> {
    pub redis_url: &'a str,
    pub key_prefix: &'a str,
    pub kube: kube::Client,
    pub namespace: &'a Namespace,
    pub slack_api_url: &'a str,
    pub clock: Arc<ManualClock>,
}

/// Settings as a platform team would write them, for `payments-db` in `namespace`.
pub fn settings(world: &World<'_>) -> Settings {
    let mut s = Settings::default();
    s.server.listen = "127.0.0.1:0".to_owned();
    s.server.metrics_listen = "127.0.0.1:0".to_owned();
    s.slack.api_url = world.slack_api_url.to_owned();
    s.slack.audit_channel = AUDIT.to_owned();
    s.store.key_prefix = world.key_prefix.to_owned();
    s.kubernetes.request_timeout = jitbot::core::ttl::Ttl::from_secs(5);
    s.targets = vec![TargetConfig {
        description: "Payments Postgres replicas".to_owned(),
        namespace: world.namespace.to_string(),
        approvers: vec![LEAD1.to_owned(), LEAD2.to_owned()],
        approval_channel: APPROVALS.to_owned(),
        ..target_config("payments-db")
    }];
    s.requesters = vec![RequesterConfig {
        name: "alice".to_owned(),
        ..requester_config(ALICE, address_config(&["10.8.0.14"]))
    }];
    s
}

/// The `JITBOT_STATE_KEY` of every test replica and store.
pub const STATE_KEY: &str = "test-state-key-0123456789abcdef0123456789";

/// [`STATE_KEY`] as the Redis store takes it.
pub fn state_key() -> jitbot::adapters::redis::StateKey {
    jitbot::adapters::redis::StateKey::new(jitbot::settings::Secret::new(STATE_KEY), None)
        .expect("the test key is long enough")
}

pub fn secrets(world: &World<'_>) -> Secrets {
    Secrets::from_vars(&HashMap::from([
        ("SLACK_BOT_TOKEN".to_owned(), TOKEN.to_owned()),
        ("SLACK_SIGNING_SECRET".to_owned(), SECRET.to_owned()),
        ("REDIS_URL".to_owned(), world.redis_url.to_owned()),
        ("JITBOT_STATE_KEY".to_owned(), STATE_KEY.to_owned()),
    ]))
}

/// Starts one jitbot replica in `world`.
pub async fn spawn_app(world: &World<'_>, workers: bool) -> Application {
    spawn_app_with(world, &settings(world), workers).await
}

/// The same with settings of the caller's (start from [`settings`]).
pub async fn spawn_app_with(world: &World<'_>, settings: &Settings, workers: bool) -> Application {
    let catalog = settings.catalog().expect("the test catalog is valid");
    let clock: Arc<dyn Clock> = world.clock.clone();
    Application::build(
        settings,
        catalog,
        &secrets(world),
        Overrides {
            clock: Some(clock),
            kube_client: Some(world.kube.clone()),
            no_workers: !workers,
            ..Overrides::default()
        },
    )
    .await
    .expect("jitbot starts")
}

/// A manual clock at the fixed test time.
pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(t0()))
}

/// A fresh stack with one replica in it, on a manual clock at `t0()`.
pub async fn one_replica(workers: bool) -> (Stack, Arc<ManualClock>, Application) {
    let stack = Stack::start().await;
    let clock = clock();
    let jitbot = stack.replica(&clock, workers).await;
    (stack, clock, jitbot)
}

/// A fresh stack with two replicas sharing it (and its clock).
pub async fn two_replicas(workers: bool) -> (Stack, Arc<ManualClock>, Application, Application) {
    let (stack, clock, one) = one_replica(workers).await;
    let two = stack.replica(&clock, workers).await;
    (stack, clock, one, two)
}

/// Everything a jitbot replica needs around it for one test: a redis-server with a
/// fresh key prefix, a namespace of its own in the real API server, and a fake Slack.
pub struct Stack {
    /// Stop, restart or freeze it to test outages.
    pub redis: RedisServer,
    pub redis_url: String,
    pub prefix: String,
    pub cluster: Cluster,
    pub slack: FakeSlack,
}

impl Stack {
    pub async fn start() -> Stack {
        Stack::start_with(RedisServer::start()).await
    }

    /// The same around a redis-server of the caller's (e.g. a persistent one that
    /// keeps its data across a restart).
    pub async fn start_with(redis: RedisServer) -> Stack {
        let cluster = cluster().await;
        let slack = FakeSlack::start(TOKEN, &[APPROVALS, AUDIT], &[]).await;
        Stack {
            redis_url: redis.url(),
            redis,
            prefix: unique_prefix(),
            cluster,
            slack,
        }
    }

    /// Starts a replica in this stack on `clock`.
    pub async fn replica(&self, clock: &Arc<ManualClock>, workers: bool) -> Application {
        spawn_app(&self.world(clock), workers).await
    }

    /// The world replicas see, on `clock`.
    pub fn world(&self, clock: &Arc<ManualClock>) -> World<'_> {
        World {
            redis_url: &self.redis_url,
            key_prefix: &self.prefix,
            kube: self.cluster.client.clone(),
            namespace: &self.cluster.namespace,
            slack_api_url: &self.slack.api_url,
            clock: clock.clone(),
        }
    }

    /// A connection of its own to the replicas' Redis store, as an operator with
    /// access to Redis would have (to write what a use case would not).
    pub async fn store(&self) -> jitbot::adapters::redis::RedisStore {
        let settings = jitbot::adapters::redis::RedisSettings {
            key_prefix: self.prefix.clone(),
            state_key: Some(state_key()),
            ..Default::default()
        };
        jitbot::adapters::redis::RedisStore::connect(&self.redis_url, &settings)
            .await
            .expect("a connection to the test Redis")
    }

    /// The NetworkPolicies of the test's namespace.
    pub fn policies(&self) -> Api<NetworkPolicy> {
        Api::namespaced(self.cluster.client.clone(), self.cluster.namespace.as_str())
    }

    /// A jitbot that talks to `app` the way Slack does.
    pub fn inbound(&self, app: &Application, clock: &Arc<ManualClock>) -> InboundSlack {
        InboundSlack::new(format!("http://{}", app.addr), clock.clone(), &self.slack)
    }
}
