//! What the driving sides (HTTP, Slack, the playground, the operator commands) may
//! read, as use cases: they never reach the store or the cluster themselves.

use std::time::Duration;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use tracing::warn;

use super::{App, AppError};
use crate::core::ids::{RequestId, SlackUserId};
use crate::core::ports::AuditEvent;
use crate::core::preview::Preview;
use crate::core::request::{AccessRequest, State};

/// Longest [`App::preview`] waits for the cluster. The preview is advice, so a slow
/// cluster gets an "unknown" rather than holding the approval card back.
const PREVIEW_BUDGET: Duration = Duration::from_secs(2);

/// Previews asking the cluster at once, per replica.
pub const PREVIEW_CONCURRENCY: usize = 4;

/// What does not answer, for readiness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readiness {
    pub store: Result<(), String>,
    pub cluster: Result<(), String>,
}

impl App {
    /// `user`'s requests, newest first.
    pub async fn list_for(&self, user: &SlackUserId) -> Result<Vec<AccessRequest>, AppError> {
        Ok(self.ports.store.list_by_requester(user).await?)
    }

    /// The requests in `state`, oldest first.
    pub async fn list_in(&self, state: State) -> Result<Vec<AccessRequest>, AppError> {
        Ok(self.ports.store.list_by_state(state).await?)
    }

    /// One request's audit history, oldest first.
    pub async fn history(&self, id: &RequestId) -> Result<Vec<AuditEvent>, AppError> {
        Ok(self.ports.store.audit_of(id).await?)
    }

    /// What the cluster says about `req`'s grant, for its approval card: one plain line
    /// such as "default-deny present, 4 pods". `None` when this app has no previewer.
    /// At most [`PREVIEW_CONCURRENCY`] previews ask the cluster at a time, so a burst
    /// of requests queues its previews instead of flooding the API server; the
    /// budget counts from when a preview's turn comes.
    pub async fn preview(&self, req: &AccessRequest) -> Option<String> {
        let previewer = self.previewer.as_ref()?;
        let _turn = self.previews.acquire().await.ok()?;
        match tokio::time::timeout(PREVIEW_BUDGET, previewer.preview(req)).await {
            Ok(line) => Some(line),
            Err(_) => {
                warn!(request_id = %req.id, budget = ?PREVIEW_BUDGET, "the cluster did not answer the preview in time");
                Some(Preview::Unreachable.to_string())
            }
        }
    }

    /// jitbot's policies as the cluster has them now.
    pub async fn live_policies(&self) -> Result<Vec<NetworkPolicy>, AppError> {
        self.ports.enforcer.list_managed().await.map_err(|e| {
            self.count_kube_error(&e);
            AppError::Internal(format!("cannot list jitbot's policies: {e}"))
        })
    }

    /// Whether the store and the cluster answer, asked at once.
    pub async fn readiness(&self) -> Readiness {
        let (store, cluster) = tokio::join!(self.ports.store.ping(), self.ports.enforcer.ping());
        Readiness {
            store: store.map_err(|e| e.to_string()),
            cluster: cluster.map_err(|e| e.to_string()),
        }
    }
}
