//! What `GET /playground/state` answers: the whole playground as the page draws it.
//! Messages, open modals and App Homes come from the Slack stand-in as jitbot sent
//! them (Block Kit JSON and all), policies from the cluster port, requests from the
//! store.

use serde_json::{Value, json};
use tracing::warn;

use super::Engine;
use super::slack_standin::Posted;
use crate::core::netpol;
use crate::core::request::State;

/// Most requests and ephemeral answers the page gets; older ones are left out.
const RECENT: usize = 100;

/// A channel the page shows.
#[derive(Clone, Debug)]
pub struct ChannelInfo {
    pub id: String,
    /// `approvals` or `audit`.
    pub kind: &'static str,
    /// What it is for, in words.
    pub purpose: String,
}

fn message(m: &Posted) -> Value {
    json!({
        "ts": m.ts,
        "text": m.body["text"],
        "blocks": m.body["blocks"],
        "posted_at": m.posted_at,
        "edited_at": m.edited_at,
    })
}

/// A channel's messages, oldest first, each with its thread replies.
fn threaded(messages: &[Posted]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for m in messages {
        let parent = m.thread_ts.as_deref().filter(|t| *t != m.ts);
        match parent.and_then(|p| out.iter_mut().find(|o| o["ts"] == p)) {
            Some(parent) => {
                if let Some(replies) = parent["replies"].as_array_mut() {
                    replies.push(message(m));
                }
            }
            None => {
                let mut top = message(m);
                top["replies"] = json!([]);
                out.push(top);
            }
        }
    }
    out
}

impl Engine {
    pub async fn view(&self) -> Value {
        let slack = &self.slack;
        let channels: Vec<Value> = self
            .channels
            .iter()
            .map(|c| {
                json!({
                    "id": c.id,
                    "kind": c.kind,
                    "purpose": c.purpose,
                    "messages": threaded(&slack.messages(&c.id)),
                })
            })
            .collect();
        let dms: Vec<Value> = slack
            .dm_channels()
            .into_iter()
            .map(|(user, channel)| {
                json!({
                    "user": user,
                    "channel": channel,
                    "messages": threaded(&slack.messages(&channel)),
                })
            })
            .collect();
        // Modals open now, each shown to its person, and each person's App Home,
        // as Slack's payloads carry them.
        let views: Vec<Value> = slack
            .open_views()
            .iter()
            .map(|v| json!({ "id": v.id, "user": v.user, "hash": v.hash, "view": v.stateful() }))
            .collect();
        let homes: serde_json::Map<String, Value> = slack
            .homes()
            .into_keys()
            .filter_map(|user| {
                let home = slack.home_view(&user)?;
                Some((user, home.stateful()))
            })
            .collect();
        let ephemerals = slack.ephemerals();
        let skip = ephemerals.len().saturating_sub(RECENT);
        json!({
            "now": self.app.now(),
            "facts": self.facts,
            "clock_jumps": self.clock_jumps,
            "users": self.workspace.people,
            "channels": channels,
            "dms": dms,
            "ephemeral": ephemerals[skip..]
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    let mut shown = json!(e);
                    shown["n"] = json!(skip + i);
                    shown
                })
                .collect::<Vec<_>>(),
            "views": views,
            "homes": homes,
            "cluster": self.policies().await,
            "requests": self.requests().await,
        })
    }

    /// Live policies as YAML, with what the countdown needs; or why they are unknown.
    async fn policies(&self) -> Value {
        match self.app.live_policies().await {
            Ok(mut live) => {
                live.sort_by(|a, b| {
                    (&a.metadata.namespace, &a.metadata.name)
                        .cmp(&(&b.metadata.namespace, &b.metadata.name))
                });
                let policies: Vec<Value> = live
                    .iter()
                    .map(|p| {
                        json!({
                            "namespace": p.metadata.namespace,
                            "name": p.metadata.name,
                            "request_id": netpol::request_id(p).map(|id| id.to_string()),
                            "expires_at": netpol::expires_at(p),
                            "yaml": netpol::to_yaml(std::slice::from_ref(p))
                                .unwrap_or_else(|e| format!("(cannot render: {e})")),
                        })
                    })
                    .collect();
                json!({ "policies": policies })
            }
            Err(e) => {
                warn!(error = %e, "the playground cannot list the cluster's policies");
                json!({ "policies": [], "error": "the cluster does not answer; see the log" })
            }
        }
    }

    /// The most recent requests, newest first.
    async fn requests(&self) -> Value {
        let mut all = Vec::new();
        for state in State::ALL {
            match self.app.list_in(state).await {
                Ok(found) => all.extend(found),
                Err(e) => {
                    warn!(error = %e, "the playground cannot read the store");
                    return json!([]);
                }
            }
        }
        all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        all.truncate(RECENT);
        let rows: Vec<Value> = all
            .iter()
            .map(|r| {
                json!({
                    "id": r.id.to_string(),
                    "target": r.target.to_string(),
                    "requester": r.requester.to_string(),
                    "state": r.state.as_str(),
                    "duration": r.duration.to_string(),
                    "approvals": r.approvals.len(),
                    "required": r.scope.approvals_required,
                    "expires_at": r.expires_at,
                })
            })
            .collect();
        json!(rows)
    }
}
