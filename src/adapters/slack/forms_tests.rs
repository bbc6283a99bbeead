use serde_json::{Value, json};

use super::*;
use crate::adapters::slack::typed_view;
use crate::core::catalog::fixtures::{address_config, requester_config, target_config};
use crate::core::catalog::{AccessConfig, SourceConfig, TargetConfig};

const ALICE: &str = "U0ALICE001";
const RANGER: &str = "U0RANGE001";

fn catalog_of(targets: &[TargetConfig]) -> Catalog {
    let alice = requester_config(ALICE, address_config(&["10.8.0.14"]));
    let ranger = requester_config(
        RANGER,
        SourceConfig {
            range: Some("10.9.0.0/24".to_owned()),
            ..SourceConfig::default()
        },
    );
    Catalog::build(&AccessConfig::default(), targets, &[alice, ranger]).unwrap()
}

fn catalog() -> Catalog {
    catalog_of(&[
        target_config("payments-db"),
        TargetConfig {
            namespace: "observability".to_owned(),
            default_duration: "1h".to_owned(),
            max_duration: "4h".to_owned(),
            ..target_config("grafana")
        },
        target_config("ledger"),
    ])
}

fn many(n: usize) -> Catalog {
    let targets: Vec<TargetConfig> = (0..n)
        .map(|i| TargetConfig {
            namespace: format!("team-{}", i % 7),
            ..target_config(&format!("svc-{i:03}"))
        })
        .collect();
    catalog_of(&targets)
}

fn requester<'c>(catalog: &'c Catalog, user: &str) -> &'c Requester {
    catalog.requester(&user.parse().unwrap()).unwrap()
}

fn block<'v>(view: &'v Value, id: &str) -> Option<&'v Value> {
    view["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["block_id"] == id)
}

fn values(options: &Value) -> Vec<String> {
    options
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["value"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_request_form_groups_targets_by_namespace_and_preselects_the_default() {
    let catalog = catalog();
    let view = request_form(&catalog, requester(&catalog, ALICE));
    assert_eq!(view["callback_id"], REQUEST_FORM);
    let picker = &block(&view, TARGET_BLOCK).unwrap()["element"];
    assert_eq!(picker["type"], "static_select");
    let groups = picker["option_groups"].as_array().unwrap();
    let labels: Vec<&str> = groups
        .iter()
        .map(|g| g["label"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["namespace payments", "namespace observability"]);
    assert_eq!(values(&groups[0]["options"]), ["payments-db", "ledger"]);
    assert_eq!(
        groups[1]["options"][0]["text"]["text"],
        "grafana (up to 4h)"
    );
    let duration = &block(&view, DURATION_BLOCK).unwrap()["element"];
    assert_eq!(duration["initial_option"]["value"], DEFAULT_DURATION);
    let offered = values(&duration["options"]);
    assert_eq!(offered[0], DEFAULT_DURATION);
    assert!(offered.contains(&"4h".to_owned()), "{offered:?}");
    assert!(!offered.contains(&"8h".to_owned()), "{offered:?}");
    let reason = &block(&view, REASON_BLOCK).unwrap()["element"];
    assert_eq!(reason["type"], "plain_text_input");
    assert_eq!(reason["multiline"], true);
    check_view(&view).unwrap();
    typed_view("views.open", &view).unwrap();
}

#[test]
fn only_a_requester_with_a_range_is_asked_for_an_address() {
    let catalog = catalog();
    let fixed = request_form(&catalog, requester(&catalog, ALICE));
    assert!(block(&fixed, ADDRESS_BLOCK).is_none());
    assert!(!asked_address(fixed["private_metadata"].as_str().unwrap()));
    let ranged = request_form(&catalog, requester(&catalog, RANGER));
    let address = block(&ranged, ADDRESS_BLOCK).expect("an address field");
    assert!(
        address["hint"]["text"]
            .as_str()
            .unwrap()
            .contains("10.9.0.0/24")
    );
    assert!(asked_address(ranged["private_metadata"].as_str().unwrap()));
    check_view(&ranged).unwrap();
    typed_view("views.open", &ranged).unwrap();
}

#[test]
fn a_single_target_is_picked_already() {
    let catalog = catalog_of(&[target_config("payments-db")]);
    let view = request_form(&catalog, requester(&catalog, ALICE));
    let picker = &block(&view, TARGET_BLOCK).unwrap()["element"];
    assert_eq!(picker["initial_option"]["value"], "payments-db");
    typed_view("views.open", &view).unwrap();
}

#[test]
fn over_a_hundred_targets_are_picked_by_typing() {
    let catalog = many(STATIC_SELECT_MAX);
    let view = request_form(&catalog, requester(&catalog, ALICE));
    assert_eq!(
        block(&view, TARGET_BLOCK).unwrap()["element"]["type"],
        "static_select"
    );
    check_view(&view).unwrap();

    let catalog = many(STATIC_SELECT_MAX + 30);
    let view = request_form(&catalog, requester(&catalog, ALICE));
    let picker = &block(&view, TARGET_BLOCK).unwrap()["element"];
    assert_eq!(picker["type"], "external_select");
    assert_eq!(picker["min_query_length"], MIN_QUERY_LENGTH);
    assert!(picker.get("option_groups").is_none());
    check_view(&view).unwrap();
    typed_view("views.open", &view).unwrap();

    let all = target_choices(&catalog, "");
    let total: usize = all["option_groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["options"].as_array().unwrap().len())
        .sum();
    assert_eq!(total, STATIC_SELECT_MAX);
    let some = target_choices(&catalog, "SVC-12");
    let names: Vec<String> = some["option_groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| values(&g["options"]))
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "svc-120", "svc-121", "svc-122", "svc-123", "svc-124", "svc-125", "svc-126", "svc-127",
            "svc-128", "svc-129"
        ]
    );
    assert!(check_options(&some).is_ok());
}

#[test]
fn duration_choices_stay_inside_their_bounds() {
    let choices = duration_choices(
        Ttl::from_mins(15),
        Ttl::from_hours(2),
        &[Ttl::from_mins(20), Ttl::from_hours(9)],
    );
    let shown: Vec<String> = choices.iter().map(|d| d.to_string()).collect();
    assert_eq!(shown, ["15m", "20m", "30m", "45m", "1h", "1h30m", "2h"]);
}

#[test]
fn the_deny_form_keeps_the_cards_round() {
    let id = RequestId::from_random([3; 10]);
    for round in [Round::Request, Round::Extension(2)] {
        let view = deny_form(&id, round);
        assert_eq!(view["callback_id"], DENY_FORM);
        let note = block(&view, NOTE_BLOCK).unwrap();
        assert_eq!(note["optional"], true);
        assert_eq!(
            denied_round(view["private_metadata"].as_str().unwrap()),
            Some((id.clone(), round))
        );
        check_view(&view).unwrap();
        typed_view("views.open", &view).unwrap();
    }
}

#[test]
fn the_extend_form_offers_up_to_the_targets_maximum() {
    let catalog = catalog();
    let target = catalog.target("grafana").unwrap();
    let id = RequestId::from_random([4; 10]);
    let view = extend_form(&id, target, &catalog.limits);
    assert_eq!(view["callback_id"], EXTEND_FORM);
    assert_eq!(view["private_metadata"], id.as_str());
    let select = &block(&view, DURATION_BLOCK).unwrap()["element"];
    let offered = values(&select["options"]);
    assert_eq!(offered.last().unwrap(), "4h");
    assert_eq!(select["initial_option"]["value"], "1h");
    check_view(&view).unwrap();
    typed_view("views.open", &view).unwrap();
}

#[test]
fn what_was_entered_is_read_from_text_and_selects() {
    let values = json!({
        "target": { "jit_target": { "type": "static_select", "selected_option": { "text": { "type": "plain_text", "text": "x" }, "value": "ledger" } } },
        "reason": { "jit_reason": { "type": "plain_text_input", "value": "INC-1 lag" } },
        "address": { "jit_address": { "type": "plain_text_input", "value": "  " } },
        "note": { "jit_note": { "type": "plain_text_input", "value": null } },
    });
    assert_eq!(
        entered(&values, TARGET_BLOCK, TARGET_ACTION).as_deref(),
        Some("ledger")
    );
    assert_eq!(
        entered(&values, REASON_BLOCK, REASON_ACTION).as_deref(),
        Some("INC-1 lag")
    );
    assert_eq!(entered(&values, ADDRESS_BLOCK, ADDRESS_ACTION), None);
    assert_eq!(entered(&values, NOTE_BLOCK, NOTE_ACTION), None);
    assert_eq!(entered(&values, "missing", TARGET_ACTION), None);
}

#[test]
fn a_view_over_slacks_limits_is_caught() {
    let id = RequestId::from_random([5; 10]);
    let mut view = deny_form(&id, Round::Request);
    check_view(&view).unwrap();
    view["title"]["text"] = json!("a title far longer than Slack allows");
    assert!(check_view(&view).is_err());

    let mut view = deny_form(&id, Round::Request);
    view["private_metadata"] = json!("x".repeat(3001));
    assert!(check_view(&view).is_err());

    let too_many: Vec<Value> = (0..101).map(|i| option("x", &i.to_string())).collect();
    assert!(check_options(&json!({ "options": too_many })).is_err());
    let long = option(&"x".repeat(200), "v");
    assert!(long["text"]["text"].as_str().unwrap().chars().count() <= 75);
    assert!(
        check_options(&json!({ "options": [{ "text": plain("x"), "value": "v".repeat(151) }] }))
            .is_err()
    );
}
