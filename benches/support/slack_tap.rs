//! What the fake Slack saw, read while it happens: approval cards by request id and
//! when they were posted, and every call counted by method.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::fake_slack::FakeSlack;

/// Approval cards by request id with when they were posted; calls by method.
#[derive(Default)]
pub struct Tap {
    pub cards: HashMap<String, Instant>,
    pub calls: HashMap<String, usize>,
}

impl Tap {
    /// Follows the fake's calls every `every` for the rest of the run; cards are the
    /// messages posted to `channel`.
    pub fn start(slack: &FakeSlack, channel: &str, every: Duration) -> Arc<Mutex<Tap>> {
        let tap = Arc::new(Mutex::new(Tap::default()));
        let (shared, slack, channel) = (tap.clone(), slack.clone(), channel.to_owned());
        tokio::spawn(async move {
            let mut cursor = 0;
            loop {
                let calls = slack.calls_from(cursor);
                cursor += calls.len();
                {
                    let mut tap = shared.lock().unwrap();
                    for call in calls {
                        *tap.calls.entry(call.method.clone()).or_default() += 1;
                        if call.method == "chat.postMessage"
                            && call.body["channel"] == channel.as_str()
                            && let Some(id) = card_id(&call.body)
                        {
                            tap.cards.entry(id).or_insert(call.at);
                        }
                    }
                }
                tokio::time::sleep(every).await;
            }
        });
        tap
    }
}

/// The request id of an approval card: its decision block is `decision:<id>`.
fn card_id(body: &serde_json::Value) -> Option<String> {
    body["blocks"].as_array()?.iter().find_map(|b| {
        b["block_id"]
            .as_str()?
            .strip_prefix("decision:")
            .map(str::to_owned)
    })
}
