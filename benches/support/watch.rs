//! A watch on the NetworkPolicies of one namespace that notes when each policy's
//! ADDED event (as an `Instant`) and DELETED event (as wall-clock time) arrived. It
//! resumes from the last resource version when the server ends a watch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use jitbot::core::ids::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};

/// When each policy's ADDED and DELETED events arrived.
#[derive(Default)]
pub struct Seen {
    pub added: HashMap<String, Instant>,
    pub deleted: HashMap<String, DateTime<Utc>>,
    pub problems: Vec<String>,
}

/// Watches the NetworkPolicies of `namespace` from now on, until dropped.
pub struct Watch {
    pub seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Watch {
    pub async fn start(client: &kube::Client, namespace: &Namespace) -> Watch {
        let api: Api<NetworkPolicy> = Api::namespaced(client.clone(), namespace.as_str());
        let list = api
            .list_metadata(&ListParams::default().limit(1))
            .await
            .expect("list the policies");
        let mut version = list.metadata.resource_version.unwrap_or_default();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let shared = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let params = WatchParams::default().timeout(290);
                let stream = match api.watch_metadata(&params, &version).await {
                    Ok(s) => s,
                    Err(e) => {
                        shared.lock().unwrap().problems.push(e.to_string());
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let mut stream = std::pin::pin!(stream);
                while let Some(event) = stream.next().await {
                    let (at, wall) = (Instant::now(), Utc::now());
                    let mut seen = shared.lock().unwrap();
                    match event {
                        Ok(WatchEvent::Added(p)) => {
                            version = p.metadata.resource_version.unwrap_or(version);
                            seen.added
                                .entry(p.metadata.name.unwrap_or_default())
                                .or_insert(at);
                        }
                        Ok(WatchEvent::Modified(p)) => {
                            version = p.metadata.resource_version.unwrap_or(version);
                        }
                        Ok(WatchEvent::Deleted(p)) => {
                            version = p.metadata.resource_version.unwrap_or(version);
                            seen.deleted
                                .entry(p.metadata.name.unwrap_or_default())
                                .or_insert(wall);
                        }
                        Ok(WatchEvent::Bookmark(b)) => version = b.metadata.resource_version,
                        Ok(WatchEvent::Error(status)) => {
                            seen.problems.push(format!("watch: {status}"));
                            if status.code == 410 {
                                return; // too old to resume; the counts will show it
                            }
                        }
                        Err(e) => seen.problems.push(format!("watch: {e}")),
                    }
                }
            }
        });
        Watch { seen, task }
    }

    /// Waits until `done` holds or `patience` ran out.
    pub async fn until(&self, patience: Duration, done: impl Fn(&Seen) -> bool) -> bool {
        let started = Instant::now();
        while started.elapsed() < patience {
            if done(&self.seen.lock().unwrap()) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}
