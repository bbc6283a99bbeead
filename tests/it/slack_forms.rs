//! The modals over Slack's HTTP protocol: `/jit` opens the request form in the
//! stand-in, its submissions are answered with inline errors or filed as the typed
//! command files them; Deny asks for a note that reaches the requester and the audit
//! thread; the App Home's Extend asks how much longer.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};

use jitbot::adapters::memory::MemoryStore;
use jitbot::adapters::slack::forms::{
    ADDRESS_ACTION, ADDRESS_BLOCK, DEFAULT_DURATION, DENY_FORM, DURATION_ACTION, DURATION_BLOCK,
    EXTEND_FORM, NOTE_ACTION, NOTE_BLOCK, REASON_ACTION, REASON_BLOCK, REQUEST_FORM, TARGET_ACTION,
    TARGET_BLOCK,
};
use jitbot::core::actions::{CANCEL, DENY, EXTEND};
use jitbot::core::catalog::fixtures::{address_config, requester_config, target_config};
use jitbot::core::catalog::{AccessConfig, Catalog, SourceConfig, TargetConfig};
use jitbot::core::request::{AccessRequest, State};
use jitbot::playground::slack_standin::OpenView;

use crate::support::fakes::{ALICE, CAROL, LEAD1, LEAD2, active, request_id_in, user};
use crate::support::slack_world::{AUDIT, SlackWorld};

const RANGER: &str = "U0RANGE001";
const REASON: &str = "INC-4411 replica lag";

/// `state.values` as Slack sends them: `(block, action, entry)`.
fn values(fields: &[(&str, &str, Value)]) -> Value {
    let mut out = json!({});
    for (block, action, entry) in fields {
        out[*block] = json!({ *action: entry });
    }
    out
}

fn picked(value: &str) -> Value {
    json!({
        "type": "static_select",
        "selected_option": { "text": { "type": "plain_text", "text": value }, "value": value },
    })
}

fn typed(value: &str) -> Value {
    json!({ "type": "plain_text_input", "value": value })
}

/// A request form's values.
fn request(target: &str, duration: &str, reason: &str) -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (TARGET_BLOCK, TARGET_ACTION, picked(target)),
        (DURATION_BLOCK, DURATION_ACTION, picked(duration)),
        (REASON_BLOCK, REASON_ACTION, typed(reason)),
    ]
}

fn block<'v>(open: &'v OpenView, id: &str) -> Option<&'v Value> {
    open.view["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["block_id"] == id)
}

/// The inline errors of an ack, by block.
fn errors(ack: &Value) -> Value {
    assert_eq!(ack["response_action"], "errors", "{ack}");
    ack["errors"].clone()
}

/// Asserts that the error shown under `block` says `words`.
#[track_caller]
fn shows(errors: &Value, block: &str, words: &str) {
    let shown = errors[block].as_str().unwrap_or_default();
    assert!(shown.contains(words), "{words:?} under {block}: {errors}");
}

/// The acknowledgement DM a request gets once filed: the one with its Cancel button.
async fn acknowledgement_dm(w: &SlackWorld) -> Value {
    w.slack
        .wait_for("chat.postMessage", |b| {
            b["channel"].as_str().unwrap().starts_with('D')
                && b["blocks"].to_string().contains(CANCEL)
        })
        .await
}

async fn requests_of(w: &SlackWorld, who: &str) -> Vec<AccessRequest> {
    w.app.list_for(&user(who)).await.unwrap()
}

/// Opens the request form as `who` with `/jit <text>`.
async fn open_form(w: &SlackWorld, who: &str, text: &str) -> OpenView {
    let (status, body) = w.command_raw(who, text).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body, "",
        "the command's ack is empty: the form opens instead"
    );
    w.modal_of(who, REQUEST_FORM).await
}

/// Two requests are the same ask when everything but their id and times match.
fn same_ask(a: &AccessRequest, b: &AccessRequest) {
    assert_eq!(a.state, State::Pending);
    assert_eq!(b.state, State::Pending);
    assert_eq!(a.requester, b.requester);
    assert_eq!(a.target, b.target);
    assert_eq!(a.duration, b.duration);
    assert_eq!(a.source, b.source);
    assert_eq!(a.reason, b.reason);
    assert_eq!(a.scope, b.scope);
    assert_eq!(a.approval_deadline, b.approval_deadline);
}

/// The tests' catalog (`payments-db` and `ledger` in `payments`, `grafana` in
/// `observability`) plus `extra` targets, with Alice by address and a requester by
/// range.
fn catalog_with(extra: usize) -> Catalog {
    let approvers = vec![LEAD1.to_owned(), LEAD2.to_owned()];
    let target = |name: &str| TargetConfig {
        approvers: approvers.clone(),
        ..target_config(name)
    };
    let mut targets = vec![
        target("payments-db"),
        target("ledger"),
        TargetConfig {
            namespace: "observability".to_owned(),
            default_duration: "1h".to_owned(),
            max_duration: "4h".to_owned(),
            ..target("grafana")
        },
    ];
    targets.extend((0..extra).map(|i| TargetConfig {
        namespace: format!("team-{}", i % 5),
        ..target(&format!("svc-{i:03}"))
    }));
    let ranger = requester_config(
        RANGER,
        SourceConfig {
            range: Some("10.9.0.0/24".to_owned()),
            ..SourceConfig::default()
        },
    );
    Catalog::build(
        &AccessConfig::default(),
        &targets,
        &[
            requester_config(ALICE, address_config(&["10.8.0.14"])),
            ranger,
        ],
    )
    .unwrap()
}

async fn world_with(extra: usize) -> SlackWorld {
    SlackWorld::start_with(Arc::new(MemoryStore::new()), catalog_with(extra)).await
}

#[tokio::test]
async fn jit_alone_opens_the_request_form_grouped_with_the_default_duration() {
    let w = world_with(0).await;
    for text in ["", "request"] {
        let form = open_form(&w, ALICE, text).await;
        let picker = &block(&form, TARGET_BLOCK).expect("a target picker")["element"];
        assert_eq!(picker["type"], "static_select");
        let groups: Vec<(String, Vec<String>)> = picker["option_groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                let names = g["options"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|o| o["value"].as_str().unwrap().to_owned())
                    .collect();
                (g["label"]["text"].as_str().unwrap().to_owned(), names)
            })
            .collect();
        assert_eq!(
            groups,
            [
                (
                    "namespace payments".to_owned(),
                    vec!["payments-db".to_owned(), "ledger".to_owned()]
                ),
                (
                    "namespace observability".to_owned(),
                    vec!["grafana".to_owned()]
                ),
            ]
        );
        let duration = &block(&form, DURATION_BLOCK).expect("a duration")["element"];
        assert_eq!(duration["initial_option"]["value"], DEFAULT_DURATION);
        assert!(block(&form, REASON_BLOCK).is_some());
        assert!(block(&form, ADDRESS_BLOCK).is_none());
        w.slack.close_view(&form.id);
    }
    assert!(w.slack.calls("views.open").len() >= 2);
}

#[tokio::test]
async fn a_form_with_mistakes_stays_open_and_names_the_fields() {
    let w = world_with(0).await;
    let form = open_form(&w, ALICE, "").await;

    let (status, ack) = w
        .submit(ALICE, &form, &values(&request("payments-db", "8h", "")))
        .await;
    assert_eq!(status, StatusCode::OK);
    let errs = errors(&ack);
    shows(&errs, DURATION_BLOCK, "longer than payments-db allows");
    shows(&errs, REASON_BLOCK, "Please say why");
    assert!(errs.get(TARGET_BLOCK).is_none(), "{errs}");

    let (_, ack) = w
        .submit(ALICE, &form, &values(&request("paymnts-db", "30m", REASON)))
        .await;
    let errs = errors(&ack);
    shows(&errs, TARGET_BLOCK, "Did you mean `payments-db`?");

    let (_, ack) = w
        .submit(
            ALICE,
            &form,
            &values(&request("ledger", "30m", "too short")),
        )
        .await;
    shows(&errors(&ack), REASON_BLOCK, "at least 10 characters");

    let mut bad = request("ledger", "30m", REASON);
    bad.remove(0);
    let (_, ack) = w.submit(ALICE, &form, &values(&bad)).await;
    assert_eq!(errors(&ack)[TARGET_BLOCK], "Please pick a target.");

    assert!(requests_of(&w, ALICE).await.is_empty(), "nothing was filed");
}

#[tokio::test]
async fn a_valid_form_files_what_the_typed_command_files_and_acknowledges_by_dm() {
    let w = world_with(0).await;
    let form = open_form(&w, ALICE, "").await;
    let (status, ack) = w
        .submit(
            ALICE,
            &form,
            &values(&request("payments-db", DEFAULT_DURATION, REASON)),
        )
        .await;
    assert_eq!(
        (status, ack),
        (StatusCode::OK, Value::Null),
        "the modal closes"
    );
    let filed = requests_of(&w, ALICE).await;
    assert_eq!(filed.len(), 1);
    let from_form = filed[0].clone();

    let dm = acknowledgement_dm(&w).await;
    assert!(
        dm["text"].as_str().unwrap().contains(&format!(
            "Request `{}` for *payments-db* (30m)",
            from_form.id
        )),
        "{dm}"
    );

    let (_, answer) = w
        .command(ALICE, &format!("request payments-db 30m {REASON}"))
        .await;
    let typed_id = request_id_in(&answer);
    let from_command = w.app.load(&typed_id.parse().unwrap()).await.unwrap();
    same_ask(&from_form, &from_command);

    // A duration picked from the list is the one asked for.
    let form = open_form(&w, ALICE, "").await;
    let (_, ack) = w
        .submit(ALICE, &form, &values(&request("grafana", "4h", REASON)))
        .await;
    assert_eq!(ack, Value::Null);
    let newest = requests_of(&w, ALICE).await;
    assert_eq!(newest.len(), 3);
    assert!(
        newest
            .iter()
            .any(|r| r.target.as_str() == "grafana" && r.duration.to_string() == "4h"),
        "{newest:?}"
    );
}

#[tokio::test]
async fn only_a_requester_with_a_range_gives_an_address_and_it_must_be_inside() {
    let w = world_with(0).await;
    let form = open_form(&w, RANGER, "").await;
    let address = block(&form, ADDRESS_BLOCK).expect("an address field");
    assert!(
        address["hint"]["text"]
            .as_str()
            .unwrap()
            .contains("10.9.0.0/24")
    );
    let with = |a: &str| {
        let mut fields = request("payments-db", "30m", REASON);
        fields.push((ADDRESS_BLOCK, ADDRESS_ACTION, typed(a)));
        values(&fields)
    };
    let (_, ack) = w.submit(RANGER, &form, &with("10.10.0.1")).await;
    shows(
        &errors(&ack),
        ADDRESS_BLOCK,
        "not inside your range 10.9.0.0/24",
    );
    let (_, ack) = w.submit(RANGER, &form, &with("banana")).await;
    shows(&errors(&ack), ADDRESS_BLOCK, "not an IP address");
    let (_, ack) = w
        .submit(
            RANGER,
            &form,
            &values(&request("payments-db", "30m", REASON)),
        )
        .await;
    shows(&errors(&ack), ADDRESS_BLOCK, "Please give the address");
    assert!(requests_of(&w, RANGER).await.is_empty());

    let (_, ack) = w.submit(RANGER, &form, &with("10.9.0.7")).await;
    assert_eq!(ack, Value::Null);
    let from_form = requests_of(&w, RANGER).await.remove(0);
    let (_, answer) = w
        .command(
            RANGER,
            &format!("request payments-db 30m from 10.9.0.7 {REASON}"),
        )
        .await;
    let from_command = w
        .app
        .load(&request_id_in(&answer).parse().unwrap())
        .await
        .unwrap();
    same_ask(&from_form, &from_command);
    assert_eq!(from_form.source.to_string(), "10.9.0.7/32");

    let others = open_form(&w, ALICE, "").await;
    assert!(block(&others, ADDRESS_BLOCK).is_none());
}

#[tokio::test]
async fn over_a_hundred_targets_are_found_by_typing() {
    let w = world_with(120).await;
    let form = open_form(&w, ALICE, "").await;
    let picker = &block(&form, TARGET_BLOCK).unwrap()["element"];
    assert_eq!(picker["type"], "external_select");
    assert!(picker.get("option_groups").is_none());

    let offered = w
        .suggest(ALICE, &form, TARGET_BLOCK, TARGET_ACTION, "svc-11")
        .await;
    let mut names: Vec<String> = offered["option_groups"]
        .as_array()
        .expect("option groups")
        .iter()
        .flat_map(|g| g["options"].as_array().unwrap().clone())
        .map(|o| o["value"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    let expected: Vec<String> = (110..120).map(|i| format!("svc-{i}")).collect();
    assert_eq!(names, expected);

    let (_, ack) = w
        .submit(ALICE, &form, &values(&request("svc-117", "1h", REASON)))
        .await;
    assert_eq!(ack, Value::Null);
    assert_eq!(requests_of(&w, ALICE).await[0].target.as_str(), "svc-117");
}

#[tokio::test]
async fn deny_asks_for_a_reason_that_reaches_the_requester_and_the_audit_thread() {
    let w = world_with(0).await;
    let (_, answer) = w
        .command(ALICE, &format!("request payments-db 30m {REASON}"))
        .await;
    let id = request_id_in(&answer);
    // The audit thread is open before anyone decides.
    w.slack.posted_to(AUDIT).await;

    assert_eq!(w.click_triggered(LEAD1, DENY, &id).await, StatusCode::OK);
    let form = w.modal_of(LEAD1, DENY_FORM).await;
    assert_eq!(form.view["private_metadata"], id.as_str());
    let note = "not during the <!here> freeze";
    let (status, ack) = w
        .submit(
            LEAD1,
            &form,
            &values(&[(NOTE_BLOCK, NOTE_ACTION, typed(note))]),
        )
        .await;
    assert_eq!((status, ack), (StatusCode::OK, Value::Null));
    let denied = w.app.load(&id.parse().unwrap()).await.unwrap();
    assert_eq!(denied.state, State::Denied);
    assert_eq!(
        denied.end_reason.as_deref(),
        Some("not during the ‹!here› freeze")
    );

    let dm = w
        .slack
        .wait_for("chat.postMessage", |b| {
            b["channel"].as_str().unwrap().starts_with('D')
                && b["text"].as_str().unwrap().contains("was denied")
        })
        .await;
    assert!(
        dm["text"].as_str().unwrap().contains("freeze"),
        "the requester sees why: {dm}"
    );
    let thread = w.slack.opening_ts(AUDIT);
    let reply = w
        .slack
        .wait_for("chat.postMessage", |b| {
            b["thread_ts"] == thread.as_str() && b["text"].as_str().unwrap().contains("denied")
        })
        .await;
    assert!(
        reply["text"].as_str().unwrap().contains("freeze"),
        "the audit thread says why: {reply}"
    );
}

#[tokio::test]
async fn a_refused_denial_shows_in_the_form() {
    let w = world_with(0).await;
    let (_, answer) = w
        .command(ALICE, &format!("request payments-db 30m {REASON}"))
        .await;
    let id = request_id_in(&answer);

    // Carol approves nothing.
    w.click_triggered(CAROL, DENY, &id).await;
    let form = w.modal_of(CAROL, DENY_FORM).await;
    let (_, ack) = w.submit(CAROL, &form, &json!({})).await;
    shows(
        &errors(&ack),
        NOTE_BLOCK,
        "you are not an approver for payments-db",
    );
    assert_eq!(
        w.app.load(&id.parse().unwrap()).await.unwrap().state,
        State::Pending
    );

    // The first decision wins; a denial opened before it is refused on submit.
    w.click_triggered(LEAD2, DENY, &id).await;
    let late = w.modal_of(LEAD2, DENY_FORM).await;
    crate::support::fakes::approve(&w.app, &id.parse().unwrap(), LEAD1).await;
    let (_, ack) = w.submit(LEAD2, &late, &json!({})).await;
    shows(&errors(&ack), NOTE_BLOCK, "so it cannot be denied");
    assert_eq!(
        w.app.load(&id.parse().unwrap()).await.unwrap().state,
        State::Active
    );
}

#[tokio::test]
async fn a_replayed_submission_acts_once() {
    let w = world_with(0).await;
    let form = open_form(&w, ALICE, "").await;
    let body = w.submission_body(
        ALICE,
        &form,
        &values(&request("payments-db", "30m", REASON)),
    );
    let (status, first) = w.post_signed("/slack/interactions", body.clone()).await;
    assert_eq!((status, first.as_str()), (StatusCode::OK, ""));
    let (status, again) = w.post_signed("/slack/interactions", body).await;
    assert_eq!(status, StatusCode::OK);
    assert!(again.contains("already acted"), "{again}");
    assert_eq!(requests_of(&w, ALICE).await.len(), 1);
}

#[tokio::test]
async fn extend_from_the_home_asks_how_much_longer_within_the_targets_maximum() {
    let w = world_with(0).await;
    let grant = active(&w.app, "grafana", ALICE, LEAD1).await;
    let home = json!({ "id": "VHOME", "type": "home", "blocks": [] });
    assert_eq!(
        w.click_in_view(ALICE, &home, EXTEND, grant.id.as_str())
            .await,
        StatusCode::OK
    );
    let form = w.modal_of(ALICE, EXTEND_FORM).await;
    let offered: Vec<String> = block(&form, DURATION_BLOCK).unwrap()["element"]["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["value"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(offered.last().map(String::as_str), Some("4h"));

    let pick = |d: &str| values(&[(DURATION_BLOCK, DURATION_ACTION, picked(d))]);
    let (_, ack) = w.submit(ALICE, &form, &pick("13h")).await;
    shows(&errors(&ack), DURATION_BLOCK, "longer than jitbot allows");
    let (_, ack) = w.submit(ALICE, &form, &pick("30m")).await;
    assert_eq!(ack, Value::Null);
    let extended = w.app.load(&grant.id).await.unwrap();
    assert_eq!(
        extended.extension.as_ref().map(|e| e.duration.to_string()),
        Some("30m".to_owned())
    );
    w.slack
        .wait_for("chat.postMessage", |b| {
            b["text"]
                .as_str()
                .unwrap()
                .contains(&format!("Asked for *30m* more on `{}`", grant.id))
        })
        .await;
}

#[tokio::test]
async fn a_form_submitted_while_the_store_is_frozen_closes_and_is_answered_by_dm() {
    // Store calls wait for a frozen server longer than the ack budget (2 s), so only
    // the hang guard answers Slack in time.
    let server = crate::redis_store::redis().await.server;
    let mut patient = crate::redis_store::Redis::on(server.clone());
    patient.settings.response_timeout = std::time::Duration::from_secs(30);
    let w = SlackWorld::start_with_store(Arc::new(patient.store().await)).await;
    let form = open_form(&w, ALICE, "").await;
    server.pause();
    let (status, ack) = w
        .submit(
            ALICE,
            &form,
            &values(&request("payments-db", "30m", REASON)),
        )
        .await;
    assert_eq!(
        (status, ack),
        (StatusCode::OK, Value::Null),
        "the modal closes at once"
    );
    assert!(
        w.slack.calls("chat.postMessage").is_empty(),
        "nothing is answered while the store is frozen"
    );
    server.resume();
    let dm = acknowledgement_dm(&w).await;
    let id = request_id_in(dm["text"].as_str().unwrap());
    let stored = w.app.load(&id.parse().unwrap()).await.unwrap();
    assert_eq!(stored.state, State::Pending);
}
