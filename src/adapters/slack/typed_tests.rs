//! jitbot's messages survive slack-morphism's typed Block Kit model unchanged: the
//! typed Web API calls send the typed value, so a field the model dropped would be
//! lost on the way to Slack.

use chrono::TimeDelta;
use serde_json::Value;
use slack_morphism::prelude::SlackBlock;

use super::blocks::{self, Message};
use crate::core::ports::AuditEvent;
use crate::core::request::fixtures::t0;
use crate::core::request::{self, AccessRequest, Actor, Event};
use crate::core::ttl::Ttl;

fn approver(u: &str) -> Actor {
    Actor {
        user: u.parse().unwrap(),
        is_approver: true,
        is_admin: false,
    }
}

/// Every card and DM of one request's life.
fn messages() -> Vec<Message> {
    let mut req = AccessRequest::test()
        .seed(5)
        .approvals_required(1)
        .reason("INC-4411 *bold* <@U123> replica lag")
        .expiry_warning(Ttl::from_mins(5))
        .build();
    let mut out = vec![blocks::card(
        &req,
        &blocks::policy_yaml(&req),
        Some("preview"),
    )];
    let events = [
        Event::Approve {
            by: approver("U01DBLEAD1"),
        },
        Event::Applied {
            expires_at: t0() + TimeDelta::minutes(30),
        },
        Event::WarnExpiry,
        Event::Extend {
            by: approver("U0ALICE001"),
            duration: Ttl::from_mins(30),
        },
        Event::Revoke {
            by: approver("U01DBLEAD1"),
            reason: Some("done".into()),
        },
    ];
    for (i, e) in events.iter().enumerate() {
        let at = t0() + TimeDelta::minutes(if i >= 2 { 25 } else { 0 });
        let t = request::apply(&req, e, at).unwrap();
        let event = AuditEvent::of(&t, None, at, "detail");
        out.push(blocks::card(
            &t.request,
            &blocks::policy_yaml(&t.request),
            None,
        ));
        out.extend(blocks::direct_message(&t.request, &event));
        req = t.request;
    }
    out
}

#[test]
fn every_message_converts_to_typed_blocks_and_back_unchanged() {
    for m in messages() {
        let typed: Vec<SlackBlock> =
            serde_json::from_value(m.blocks.clone()).expect("blocks fit the typed model");
        let back: Value = serde_json::to_value(&typed).unwrap();
        assert_eq!(back, m.blocks, "{}", m.text);
    }
}
