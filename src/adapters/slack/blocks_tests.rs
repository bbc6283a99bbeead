use chrono::TimeDelta;

use super::*;
use crate::core::catalog::fixtures::tcp;
use crate::core::request::fixtures::t0;
use crate::core::request::{self, Actor, Event};
use crate::core::ttl::Ttl;

fn approver(u: &str) -> Actor {
    Actor {
        user: u.parse().unwrap(),
        is_approver: true,
        is_admin: false,
    }
}

/// A request with the longest reason, many ports and many addresses: the biggest
/// card jitbot can build.
fn big_request() -> AccessRequest {
    let addresses: Vec<String> = (0..50).map(|i| format!("fd00::{i:x}/128")).collect();
    let addresses: Vec<&str> = addresses.iter().map(String::as_str).collect();
    AccessRequest::test()
        .seed(3)
        .pod_selector(
            (0..20)
                .map(|i| (format!("label-{i}.example.com/key-{i}"), "x".repeat(60)))
                .collect(),
        )
        .ports((1..=40).map(tcp).collect())
        .approvals_required(2)
        .source(request::fixtures::addresses(&addresses))
        .reason(&"<@U123> & <!here> ".repeat(22))
        .expiry_warning(Ttl::from_mins(5))
        .build()
}

/// The request in each state it can reach, with the event that got it there.
fn journey() -> Vec<(AccessRequest, AuditEvent)> {
    let mut out = Vec::new();
    let mut req = big_request();
    let mut push = |req: &AccessRequest, t: &request::Transition| {
        out.push((t.request.clone(), AuditEvent::of(t, None, t0(), "detail")));
        let _ = req;
    };
    let events = [
        Event::Approve {
            by: approver("U01DBLEAD1"),
        },
        Event::Approve {
            by: approver("U01DBLEAD2"),
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
        let at = t0() + TimeDelta::minutes(if i >= 3 { 25 } else { 0 });
        let t = request::apply(&req, e, at).unwrap();
        push(&req, &t);
        req = t.request;
    }
    out
}

#[test]
fn every_message_stays_inside_slacks_limits() {
    let yaml = policy_yaml(&big_request());
    assert!(
        yaml.chars().count() > 3000,
        "the test needs a policy too big for one section"
    );
    let mut checked = 0;
    let pending = big_request();
    let opening = card(&pending, &yaml, Some("default-deny present, 4 pods"));
    check_limits(&opening).unwrap();
    for (req, event) in journey() {
        check_limits(&card(&req, &policy_yaml(&req), Some(&"x".repeat(5000)))).unwrap();
        if let Some(dm) = direct_message(&req, &event) {
            check_limits(&dm).unwrap();
            checked += 1;
        }
        assert!(audit_reply(&event).chars().count() < 40_000);
    }
    assert!(
        checked >= 3,
        "DMs for activation, warning and revoke were built"
    );
}

#[test]
fn the_limits_check_catches_what_slack_refuses() {
    let too_long = Message {
        text: "x".into(),
        blocks: json!([section("y".repeat(3001))]),
    };
    assert!(check_limits(&too_long).is_err());
    let too_many = Message {
        text: "x".into(),
        blocks: Value::Array(vec![context("a".into()); 51]),
    };
    assert!(check_limits(&too_many).is_err());
    let long_value = Message {
        text: "x".into(),
        blocks: json!([{ "type": "actions", "elements": [button("ok", "a", &"v".repeat(2001), None)] }]),
    };
    assert!(check_limits(&long_value).is_err());
}

#[test]
fn a_pending_card_has_buttons_with_a_confirm_and_no_mentions_from_the_reason() {
    let req = big_request();
    let m = card(&req, "yaml", None);
    let text = m.blocks.to_string();
    assert!(
        !text.contains("<!here>"),
        "the reason cannot ping the channel"
    );
    assert!(!text.contains("<@U123>"));
    let actions = m.blocks.as_array().unwrap().last().unwrap();
    assert_eq!(actions["type"], "actions");
    assert_eq!(actions["elements"][0]["action_id"], APPROVE);
    assert_eq!(actions["elements"][0]["value"], req.id.as_str());
    assert_eq!(
        actions["elements"][0]["confirm"]["confirm"]["text"],
        "Approve"
    );
    assert_eq!(actions["elements"][1]["action_id"], DENY);
    assert!(text.contains("0 of 2 approvals"));
}

#[test]
fn a_decided_card_has_no_buttons_and_says_the_outcome() {
    let states = journey();
    let (one_of_two, _) = &states[0];
    assert!(
        card(one_of_two, "", None)
            .blocks
            .to_string()
            .contains("1 of 2 approvals")
    );
    let (active, _) = &states[2];
    let m = card(active, "", None);
    let last = m.blocks.as_array().unwrap().last().unwrap().to_string();
    assert!(
        last.contains("Approved by <@U01DBLEAD1>, <@U01DBLEAD2> at 14:00 UTC · expires 14:30 UTC"),
        "{last}"
    );
    assert!(!m.blocks.to_string().contains(APPROVE), "no stale buttons");
    let (extension, _) = &states[4];
    assert!(
        card(extension, "", None)
            .blocks
            .to_string()
            .contains(APPROVE),
        "an extension asks again"
    );
    let (revoked, _) = &states[5];
    let m = card(revoked, "", None).blocks.to_string();
    assert!(
        m.contains("revoked by <@U01DBLEAD1>") && !m.contains(APPROVE),
        "{m}"
    );
}

#[test]
fn the_expiry_warning_offers_revoke_now() {
    let (req, event) = &journey()[3];
    let dm = direct_message(req, event).unwrap();
    assert!(dm.text.contains("ends at 14:30 UTC"), "{}", dm.text);
    assert_eq!(dm.blocks[1]["elements"][0]["action_id"], REVOKE);
}

#[test]
fn an_extension_card_asks_about_that_extension_and_its_buttons_carry_its_round() {
    let active = AccessRequest::test().seed(4).active().build();
    let asked = request::apply(
        &active,
        &Event::Extend {
            by: approver("U01DBLEAD2"),
            duration: Ttl::from_hours(1),
        },
        t0(),
    )
    .unwrap()
    .request;
    let m = card(&asked, "yaml", None);
    let actions = m.blocks.as_array().unwrap().last().unwrap();
    let round = format!("{}@{}", asked.id, asked.version);
    assert_eq!(actions["elements"][0]["value"], round.as_str());
    assert_eq!(actions["elements"][1]["value"], round.as_str());
    let confirm = &actions["elements"][0]["confirm"];
    assert_eq!(confirm["title"]["text"], "Approve this extension?");
    let said = confirm["text"]["text"].as_str().unwrap();
    assert!(said.contains("for 1h more"), "{said}");
    assert!(!said.contains("30m"), "the original duration: {said}");
}

/// A reason that would close the policy's code block, fake a bold endorsement, make a
/// link and ping the channel, were it shown as mrkdwn.
const FORMATTING: &str =
    "``` *✅ pre-approved by security* <https://evil|click> <!here> <!channel> _x_ ~y~ `z` & co";

/// What [`sanitise`](crate::core::command::sanitise) keeps of it: `<`/`>` are already
/// look-alikes, the marks are still there.
const CLEANED: &str =
    "``` *✅ pre-approved by security* ‹https://evil|click› ‹!here› ‹!channel› _x_ ~y~ `z` & co";

/// The same in a mrkdwn field: escaped, with look-alike marks.
const INERT: &str = "ˋˋˋ ∗✅ pre-approved by security∗ ‹https://evil|click› ‹!here› ‹!channel› ˍxˍ ∼y∼ ˋzˋ &amp; co";

fn formatting_request() -> AccessRequest {
    AccessRequest::test().seed(7).reason(FORMATTING).build()
}

/// Every mrkdwn text object in `blocks`.
fn mrkdwn_texts(blocks: &Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if o.get("type").and_then(Value::as_str) == Some("mrkdwn") {
                    out.push(o["text"].as_str().unwrap_or("").to_owned());
                }
                o.values().for_each(|v| walk(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    walk(blocks, &mut out);
    out
}

#[test]
fn the_cards_reason_is_plain_text() {
    let req = formatting_request();
    assert_eq!(req.reason.as_str(), CLEANED);
    let m = card(&req, &policy_yaml(&req), None);
    assert_eq!(
        m.blocks[2],
        json!({ "type": "section", "text": { "type": "plain_text", "text": CLEANED, "emoji": false } })
    );
    assert_eq!(
        m.blocks[1]["text"]["text"],
        format!(
            "<@{}> asks for *30m* of access to *payments-db*:",
            req.requester
        )
    );
    // Outside the policy's code block (where Slack formats nothing: see below).
    let texts = mrkdwn_texts(&m.blocks);
    let outside = texts.iter().filter(|t| !t.starts_with("*Policy to apply*"));
    for text in outside {
        for raw in [
            "*✅",
            "<https://evil",
            "<!here>",
            "<!channel>",
            "_x_",
            "~y~",
            "`z`",
        ] {
            assert!(!text.contains(raw), "{raw:?} reached mrkdwn: {text}");
        }
    }
    check_limits(&m).unwrap();
}

#[test]
fn the_reason_cannot_end_the_policys_code_block() {
    let req = formatting_request();
    let yaml = policy_yaml(&req);
    assert!(
        yaml.contains("```"),
        "the reason is in the annotation: {yaml}"
    );
    let m = card(&req, &yaml, None);
    let policy = m.blocks[5]["text"]["text"].as_str().unwrap();
    assert!(policy.starts_with("*Policy to apply*\n```"), "{policy}");
    assert!(policy.ends_with("```"), "{policy}");
    assert_eq!(policy.matches("```").count(), 2, "one code block: {policy}");
    assert!(policy.contains("jitbot.dev/reason"), "{policy}");
    assert!(
        policy.contains("ˋˋˋ *✅ pre-approved by security*"),
        "{policy}"
    );
    assert_eq!(fenced("a ``` b & <c>"), "a ˋˋˋ b &amp; &lt;c&gt;");
}

#[test]
fn audit_lines_and_dms_show_typed_text_inert() {
    let req = formatting_request();
    assert_eq!(
        audit_opening(&req),
        format!(
            "<@{}> requested *30m* of *payments-db* from 10.8.0.14/32 · `{}`\n>{INERT}",
            req.requester, req.id
        )
    );
    let event = request::fixtures::requested(&req, &format!("30m for payments-db: {CLEANED}"));
    assert_eq!(
        audit_reply(&event),
        format!(
            "<@{}> · *requested*: 30m for payments-db: {INERT}",
            req.requester
        )
    );
    let active = AccessRequest::test().seed(8).active().build();
    let revoked = request::apply(
        &active,
        &Event::Revoke {
            by: approver("U01DBLEAD1"),
            reason: Some(CLEANED.to_owned()),
        },
        t0(),
    )
    .unwrap();
    let event = AuditEvent::of(&revoked, None, t0(), "revoked");
    let dm = direct_message(&revoked.request, &event).unwrap();
    assert!(dm.text.contains(&format!(": {INERT} (`")), "{}", dm.text);
    let footer = card(&revoked.request, "", None).blocks;
    let last = footer.as_array().unwrap().last().unwrap();
    assert!(
        last["elements"][0]["text"]
            .as_str()
            .unwrap()
            .ends_with(INERT),
        "{last}"
    );
}

#[test]
fn inert_text_keeps_plain_words_as_they_are() {
    assert_eq!(inert("INC-4411 replica lag"), "INC-4411 replica lag");
    assert_eq!(inert("a*b_c~d`e"), "a∗bˍc∼dˋe");
    assert_eq!(inert("<@U1> & <!here>"), "&lt;@U1&gt; &amp; &lt;!here&gt;");
}
