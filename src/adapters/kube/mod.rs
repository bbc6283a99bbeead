//! The [`Enforcer`] on a real cluster, with kube-rs: apply is a server-side apply with
//! one field manager (`jitbot`, forced, so jitbot's copy always wins), revoke is a
//! delete where "not found" means done, and the managed policies are found by the
//! `app.kubernetes.io/managed-by=jitbot` label. It also answers the approval card's
//! question "does this grant matter?" ([`KubeEnforcer::preview`]).
//!
//! Every call has a timeout and a retry budget ([`KubeSettings`]); kube-rs's own retry
//! layer is switched off for clients this module builds, so that the budget here is the
//! only one. Nothing here decides what to apply: policies arrive rendered by
//! [`crate::core::netpol`].

mod errors;
mod guard;
mod preview;
mod retry;
mod settings;

use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::{Client, Config};
use tokio::sync::mpsc;
use tokio::time::Instant;

pub use guard::{ExpiryGuard, GUARD_CONCURRENCY};
pub use settings::{KubeSettings, ListScope};

use self::errors::classify;
use self::retry::{Budget, retrying};
use crate::core::expiry::Removal;
use crate::core::ids::Namespace;
use crate::core::netpol::{self, MANAGED_SELECTOR};
use crate::core::ports::{Clock, EnforceError, Enforcer, ListCursor, PolicyPage, PolicyRef};
use crate::core::ttl::Ttl;
use crate::metrics::Metrics;

/// The field manager of every server-side apply: one owner, so re-applying the same
/// rendering is a no-op and never conflicts with itself.
pub const FIELD_MANAGER: &str = "jitbot";

/// Items per page when listing; bounds the memory one answer can take.
const PAGE_SIZE: u32 = 500;

/// NetworkPolicies in a cluster, through the Kubernetes API.
#[derive(Clone)]
pub struct KubeEnforcer {
    client: Client,
    settings: KubeSettings,
    /// The catalog's namespaces, where `list_managed` looks when the scope is
    /// [`ListScope::Catalog`].
    namespaces: Vec<Namespace>,
}

impl KubeEnforcer {
    /// Uses an existing client as it is (its retry layer included, if it has one).
    pub fn new(client: Client, settings: KubeSettings, namespaces: Vec<Namespace>) -> Self {
        KubeEnforcer {
            client,
            settings,
            namespaces,
        }
    }

    /// Connects the standard way (in-cluster service account, `KUBECONFIG`, or
    /// `~/.kube/config`), as `kube::Client::try_default` does, but without kube-rs's
    /// built-in retries: its default policy retries 429/503 up to 15 times and follows
    /// `Retry-After` for as long as the server says, which would hide the cluster's
    /// state from our own, bounded retries.
    pub async fn try_default(
        settings: KubeSettings,
        namespaces: Vec<Namespace>,
    ) -> Result<Self, kube::Error> {
        let mut config = Config::infer().await.map_err(kube::Error::InferConfig)?;
        config.default_retry = false;
        Ok(KubeEnforcer::new(
            Client::try_from(config)?,
            settings,
            namespaces,
        ))
    }

    /// The cluster-side expiry guard on this client, watching where `list_managed`
    /// looks; `run` it on a task of its own.
    pub fn expiry_guard(
        &self,
        max_duration: Ttl,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        removals: mpsc::Sender<Removal>,
    ) -> ExpiryGuard {
        ExpiryGuard {
            cluster: self.clone(),
            max_duration,
            clock,
            metrics,
            removals,
        }
    }

    /// Deletes one policy only if it is still at `resource_version`, in one attempt
    /// bounded by `request_timeout`: the expiry guard's delete, which must never
    /// remove a version it has not seen (an extension writes a new one).
    pub async fn delete_at_version(
        &self,
        policy: &PolicyRef,
        resource_version: &str,
    ) -> Result<Deleted, EnforceError> {
        let api = self.policies_in(policy.namespace.as_str());
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: Some(resource_version.to_owned()),
                uid: None,
            }),
            ..DeleteParams::default()
        };
        let call = api.delete(&policy.name, &params);
        match tokio::time::timeout(self.settings.request_timeout, call).await {
            Ok(Ok(_)) => Ok(Deleted::Now),
            Ok(Err(kube::Error::Api(status))) if status.code == 404 => Ok(Deleted::Already),
            Ok(Err(kube::Error::Api(status))) if status.code == 409 => Ok(Deleted::NotChanged),
            Ok(Err(e)) => Err(classify(e).error),
            Err(_) => Err(EnforceError::Unavailable(format!(
                "delete {policy}: no answer within {:?}",
                self.settings.request_timeout
            ))),
        }
    }

    fn policies_in(&self, namespace: &str) -> Api<NetworkPolicy> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Where jitbot's policies are looked for: the whole cluster, or each catalog
    /// namespace, as the scope says. A [`ListCursor`]'s place is a position here.
    fn places(&self) -> Vec<(Api<NetworkPolicy>, &str)> {
        match self.settings.scope {
            ListScope::Cluster => vec![(Api::all(self.client.clone()), "all namespaces")],
            ListScope::Catalog => self
                .namespaces
                .iter()
                .map(|ns| (self.policies_in(ns.as_str()), ns.as_str()))
                .collect(),
        }
    }

    /// One page of what `api` lists with the managed-by label (at most `limit`), and
    /// the continue token of the next.
    async fn list_labelled(
        &self,
        api: &Api<NetworkPolicy>,
        place: &str,
        token: Option<String>,
        limit: u32,
    ) -> Result<(Vec<NetworkPolicy>, Option<String>), EnforceError> {
        let mut params = ListParams::default().labels(MANAGED_SELECTOR).limit(limit);
        params.continue_token = token;
        let what = format!("list managed policies in {place}");
        let params = &params;
        let list = retrying(
            &self.settings,
            Budget::Attempts(self.settings.apply_attempts),
            &what,
            || async move { api.list(params).await.map_err(classify) },
        )
        .await?;
        // Server-side apply's managedFields are most of each object and nobody here
        // reads them: dropped page by page, they never pile up. The label is checked
        // again on what came back, so nothing else is ever reported as ours.
        let policies = list
            .items
            .into_iter()
            .map(|mut p| {
                p.metadata.managed_fields = None;
                p
            })
            .filter(netpol::is_managed)
            .collect();
        Ok((policies, list.metadata.continue_.filter(|c| !c.is_empty())))
    }
}

/// What [`KubeEnforcer::delete_at_version`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deleted {
    /// This call deleted it.
    Now,
    /// It was gone already.
    Already,
    /// It has changed since that version, so it was left alone.
    NotChanged,
}

/// Where a rendered policy goes; a policy without both is a bug upstream.
fn placement(policy: &NetworkPolicy) -> Result<(&str, &str), EnforceError> {
    match (&policy.metadata.namespace, &policy.metadata.name) {
        (Some(namespace), Some(name)) => Ok((namespace, name)),
        _ => Err(EnforceError::Refused(
            "a policy without a namespace or name cannot be applied".to_owned(),
        )),
    }
}

#[async_trait]
impl Enforcer for KubeEnforcer {
    /// Applies each policy in order, each with its own attempts. Not atomic: when a
    /// later policy fails, earlier ones stay applied and the error says which failed;
    /// the caller retries the whole apply or revokes, both idempotent.
    #[tracing::instrument(skip_all, fields(policies = policies.len()))]
    async fn apply(&self, policies: &[NetworkPolicy]) -> Result<(), EnforceError> {
        let params = PatchParams::apply(FIELD_MANAGER).force();
        for policy in policies {
            let (namespace, name) = placement(policy)?;
            let api = &self.policies_in(namespace);
            let (params, patch) = (&params, &Patch::Apply(policy));
            retrying(
                &self.settings,
                Budget::Attempts(self.settings.apply_attempts),
                &format!("apply {namespace}/{name}"),
                || async move { api.patch(name, params, patch).await.map_err(classify) },
            )
            .await?;
            tracing::info!(namespace, name, "applied policy");
        }
        Ok(())
    }

    /// Deletes each policy, retrying until all are gone or `revoke_deadline` (for the
    /// whole call) has passed. A policy or namespace already gone counts as deleted.
    #[tracing::instrument(skip_all, fields(policies = policies.len()))]
    async fn revoke(&self, policies: &[PolicyRef]) -> Result<usize, EnforceError> {
        let deadline = Instant::now() + self.settings.revoke_deadline;
        let params = &DeleteParams::default();
        let mut deleted = 0;
        for policy in policies {
            let (namespace, name) = (policy.namespace.as_str(), policy.name.as_str());
            let api = &self.policies_in(namespace);
            let this_call = retrying(
                &self.settings,
                Budget::Until(deadline),
                &format!("delete {namespace}/{name}"),
                || async move {
                    match api.delete(name, params).await {
                        Ok(_) => Ok(true),
                        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
                        Err(err) => Err(classify(err)),
                    }
                },
            )
            .await?;
            if this_call {
                deleted += 1;
                tracing::info!(namespace, name, "deleted policy");
            }
        }
        Ok(deleted)
    }

    /// Every policy labelled as jitbot's in the configured scope.
    async fn list_managed(&self) -> Result<Vec<NetworkPolicy>, EnforceError> {
        let mut all = Vec::new();
        let mut from = Some(ListCursor::default());
        while let Some(cursor) = from {
            let page = self.list_managed_page(cursor).await?;
            all.extend(page.policies);
            from = page.next;
        }
        Ok(all)
    }

    async fn list_managed_page(&self, from: ListCursor) -> Result<PolicyPage, EnforceError> {
        let places = self.places();
        let Some((api, place)) = places.get(from.place) else {
            return Ok(PolicyPage::default());
        };
        let (policies, token) = self
            .list_labelled(api, place, from.token, PAGE_SIZE)
            .await?;
        let next = match token {
            Some(token) => Some(ListCursor {
                place: from.place,
                token: Some(token),
            }),
            None if from.place + 1 < places.len() => Some(ListCursor {
                place: from.place + 1,
                token: None,
            }),
            None => None,
        };
        Ok(PolicyPage { policies, next })
    }

    /// One list call of at most one policy where jitbot looks first: the API server
    /// answers and lets jitbot read its policies. Readiness asks this every few
    /// seconds, so it must not list every grant.
    async fn ping(&self) -> Result<(), EnforceError> {
        match self.places().first() {
            Some((api, place)) => self.list_labelled(api, place, None, 1).await.map(|_| ()),
            None => Ok(()),
        }
    }
}
