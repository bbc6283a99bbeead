//! The fake Slack Web API the tests talk to: the playground's Slack stand-in
//! (`jitbot::playground::slack_standin`), so what the tests prove about jitbot's Slack
//! traffic is what the playground shows. This wrapper only adds waits that fail the
//! test after 20 s (which only a bug reaches) instead of returning "not yet".

use std::ops::Deref;
use std::time::Duration;

use serde_json::Value;

#[allow(unused_imports)] // the Slack tests script answers; the benches do not
pub use jitbot::playground::slack_standin::Scripted;
use jitbot::playground::slack_standin::{SlackStandin, StandinConfig};

const PATIENCE: Duration = Duration::from_secs(20);

/// A handle on the fake; clones share it.
#[derive(Clone)]
pub struct FakeSlack(SlackStandin);

impl Deref for FakeSlack {
    type Target = SlackStandin;
    fn deref(&self) -> &SlackStandin {
        &self.0
    }
}

impl FakeSlack {
    /// Serves a workspace with `token` as the bot token, these channels and user groups.
    pub async fn start(token: &str, channels: &[&str], groups: &[(&str, &[&str])]) -> FakeSlack {
        let standin = SlackStandin::start(StandinConfig::new(token, channels, groups))
            .await
            .expect("the Slack stand-in starts on loopback");
        FakeSlack(standin)
    }

    /// The `ts` of the only top-level message in `channel` (e.g. a request's audit
    /// thread opening), as Slack gave it out.
    pub fn opening_ts(&self, channel: &str) -> String {
        let openings: Vec<String> = self
            .messages(channel)
            .into_iter()
            .filter(|m| m.thread_ts.is_none())
            .map(|m| m.ts)
            .collect();
        assert_eq!(
            openings.len(),
            1,
            "top-level messages in {channel}: {openings:?}"
        );
        openings[0].clone()
    }

    /// Waits until `pred` holds for the calls recorded so far.
    pub async fn wait_until(&self, pred: impl Fn(&FakeSlack) -> bool) {
        if !self.0.wait_until(PATIENCE, |_| pred(self)).await {
            panic!(
                "the expected calls never arrived; calls so far: {:#?}",
                self.all_calls()
            );
        }
    }

    /// Waits until a call of `method` matching `pred` has arrived and returns its body.
    pub async fn wait_for(&self, method: &str, pred: impl Fn(&Value) -> bool) -> Value {
        match self.0.wait_for(PATIENCE, method, pred).await {
            Some(body) => body,
            None => panic!(
                "no {method} call arrived; calls so far: {:#?}",
                self.all_calls()
            ),
        }
    }

    /// Waits for a message posted to `channel` and returns its body.
    pub async fn posted_to(&self, channel: &str) -> Value {
        self.wait_for("chat.postMessage", |b| b["channel"] == channel)
            .await
    }

    /// Waits for a card update whose blocks contain `text` and returns its body.
    pub async fn card_update(&self, text: &str) -> Value {
        self.wait_for("chat.update", |b| b["blocks"].to_string().contains(text))
            .await
    }
}
