//! User groups through `usergroups.users.list`, cached for a while so a burst of
//! clicks does not become a burst of API calls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::SlackApi;
use crate::core::ids::{SlackGroupId, SlackUserId};
use crate::core::ports::{Clock, Directory, NotifyError};
use crate::core::ttl::Ttl;
use crate::metrics::Metrics;

/// Resolves user groups, caching each answer for `ttl`.
pub struct SlackDirectory {
    api: SlackApi,
    clock: Arc<dyn Clock>,
    ttl: Ttl,
    metrics: Arc<Metrics>,
    cache: Mutex<HashMap<SlackGroupId, Cached>>,
}

/// Members of one group and when they were read.
type Cached = (DateTime<Utc>, Vec<SlackUserId>);

impl SlackDirectory {
    /// Failed lookups are counted in `metrics` by kind.
    pub fn new(api: SlackApi, clock: Arc<dyn Clock>, ttl: Ttl, metrics: Arc<Metrics>) -> Self {
        SlackDirectory {
            api,
            clock,
            ttl,
            metrics,
            cache: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl Directory for SlackDirectory {
    async fn group_members(&self, group: &SlackGroupId) -> Result<Vec<SlackUserId>, NotifyError> {
        let now = self.clock.now();
        if let Some((at, members)) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(group)
            && now < *at + self.ttl.as_delta()
        {
            return Ok(members.clone());
        }
        let raw = self.api.group_members(group.as_str()).await.map_err(|e| {
            self.metrics.slack_error(e.kind());
            NotifyError(e.to_string())
        })?;
        // Ids Slack returns that do not parse cannot approve anything.
        let members: Vec<SlackUserId> = raw.iter().filter_map(|u| u.parse().ok()).collect();
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(group.clone(), (now, members.clone()));
        Ok(members)
    }
}
