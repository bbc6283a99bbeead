use std::collections::HashSet;

use chrono::TimeDelta;

use super::*;
use crate::core::ids::SlackUserId;
use crate::core::request::Extension;
use crate::core::request::fixtures::{LEAD1, t0};
use crate::core::ttl::Ttl;

fn lead() -> SlackUserId {
    LEAD1.parse().unwrap()
}

fn home(mine: &[AccessRequest], waiting: &[AccessRequest], approver: bool) -> Value {
    view(&HomeData {
        now: t0(),
        mine,
        waiting,
        approver,
    })
}

fn blocks(v: &Value) -> &Vec<Value> {
    v["blocks"].as_array().unwrap()
}

/// The actions block with `block_id`.
fn actions<'a>(v: &'a Value, block_id: &str) -> &'a Value {
    blocks(v)
        .iter()
        .find(|b| b["block_id"] == block_id)
        .unwrap_or_else(|| panic!("no block {block_id} in {v:#}"))
}

fn shows(v: &Value, text: &str) -> bool {
    v.to_string().contains(text)
}

#[test]
fn an_empty_home_says_how_to_ask_and_hides_the_approvers_part() {
    let v = home(&[], &[], false);
    assert_eq!(v["type"], "home");
    assert!(shows(
        &v,
        "You have no active grants. Type `/jit` to ask for access."
    ));
    assert!(shows(&v, "Nothing of yours is waiting for approval."));
    assert!(!shows(&v, "Waiting for you"), "{v:#}");
    let approver = home(&[], &[], true);
    assert!(shows(&approver, "*Waiting for you*"));
    assert!(shows(
        &approver,
        "No requests are waiting for your decision."
    ));
}

#[test]
fn an_active_grant_shows_its_time_left_with_revoke_and_extend() {
    let grant = AccessRequest::test()
        .seed(1)
        .expiring_in(TimeDelta::minutes(65))
        .build();
    let v = home(std::slice::from_ref(&grant), &[], false);
    let id = grant.id.as_str();
    assert!(shows(&v, "1 h 5 min left"), "{v:#}");
    assert!(shows(&v, &format!("`{id}`")));
    let buttons = &actions(&v, &format!("home-grant:{id}"))["elements"];
    assert_eq!(buttons[0]["action_id"], REVOKE);
    assert_eq!(buttons[0]["value"], id);
    assert_eq!(buttons[0]["confirm"]["confirm"]["text"], "Revoke");
    assert_eq!(buttons[1]["action_id"], EXTEND);
    assert_eq!(buttons[1]["value"], id);
}

#[test]
fn a_grant_being_applied_has_no_buttons_yet() {
    let applying = AccessRequest::test()
        .seed(9)
        .approved_by(LEAD1, t0())
        .build();
    assert_eq!(applying.state, State::Approved);
    let v = home(std::slice::from_ref(&applying), &[], false);
    assert!(shows(&v, "applying the policy"), "{v:#}");
    assert!(!shows(&v, REVOKE) && !shows(&v, EXTEND));
}

#[test]
fn a_pending_request_has_cancel_and_ended_ones_are_not_shown() {
    let pending = AccessRequest::test().seed(2).build();
    let denied = AccessRequest::test()
        .seed(3)
        .in_state(State::Denied)
        .build();
    let v = home(&[pending.clone(), denied.clone()], &[], false);
    let id = pending.id.as_str();
    let button = &actions(&v, &format!("home-pending:{id}"))["elements"][0];
    assert_eq!(button["action_id"], CANCEL);
    assert_eq!(button["value"], id);
    assert!(shows(&v, "0 of 1 approvals"));
    assert!(!shows(&v, denied.id.as_str()), "{v:#}");
}

#[test]
fn a_waiting_request_has_the_cards_approve_and_deny() {
    let asked = AccessRequest::test().seed(4).requester(LEAD1).build();
    let mut extension = AccessRequest::test().seed(5).active().build();
    extension.extension = Some(Extension {
        duration: Ttl::from_mins(30),
        requested_by: lead(),
        requested_at: t0(),
        approvals: vec![],
        round: 7,
    });
    let v = home(&[], &[asked.clone(), extension.clone()], true);
    let first = &actions(&v, &format!("home-decide:{}", asked.id))["elements"];
    assert_eq!(first[0]["action_id"], APPROVE);
    assert_eq!(first[0]["value"], asked.id.as_str());
    assert_eq!(first[1]["action_id"], DENY);
    let second = &actions(&v, &format!("home-decide:{}", extension.id))["elements"];
    assert_eq!(second[0]["value"], format!("{}@7", extension.id));
    assert_eq!(second[1]["value"], format!("{}@7", extension.id));
    assert!(shows(&v, "asks for *30m* more"), "{v:#}");
    assert!(shows(&v, "INC-4411 replica lag"));
}

#[test]
fn a_reason_is_shown_as_typed_never_as_mrkdwn() {
    let asked = AccessRequest::test()
        .seed(6)
        .requester(LEAD1)
        .reason("<!channel> *now*")
        .build();
    let v = home(&[], &[asked], true);
    let item = blocks(&v).iter().find(|b| b["fields"].is_array()).unwrap();
    assert_eq!(item["fields"][0]["type"], "plain_text");
}

#[test]
fn a_crowded_home_stays_within_slacks_limits_and_says_how_many_more() {
    let many = |state: State, from: u8| -> Vec<AccessRequest> {
        (0..40)
            .map(|i| AccessRequest::test().seed(from + i).in_state(state).build())
            .collect()
    };
    let mut mine = many(State::Active, 0);
    mine.extend(many(State::Pending, 40));
    let waiting = many(State::Pending, 80);
    let v = home(&mine, &waiting, true);
    let all = blocks(&v);
    assert!(all.len() <= VIEW_BLOCKS_MAX, "{} blocks", all.len());
    assert_eq!(
        v.to_string().matches("…and 25 more").count(),
        3,
        "each part says what it leaves out"
    );
    let ids: Vec<&str> = all.iter().filter_map(|b| b["block_id"].as_str()).collect();
    let unique: HashSet<&&str> = ids.iter().collect();
    assert_eq!(ids.len(), unique.len(), "block ids are unique in a view");
    for b in all {
        let text = b["text"]["text"].as_str().unwrap_or("");
        assert!(text.chars().count() <= 3000);
    }
    super::super::typed_view("views.publish", &v).expect("slack-morphism reads the view");
}

#[test]
fn time_left_reads_naturally() {
    let at = |s: i64| t0() + TimeDelta::seconds(s);
    assert_eq!(left(t0(), at(30)), "less than a minute left");
    assert_eq!(left(t0(), at(4 * 60 + 5)), "4 min left");
    assert_eq!(left(t0(), at(2 * 3600)), "2 h left");
    assert_eq!(left(t0(), at(-1)), "ending now");
}
