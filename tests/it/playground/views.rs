//! The page's views: a modal jitbot opens with a person's `trigger_id` shows to that
//! person, and what they do in it reaches jitbot as Slack sends it (`view_submission`,
//! `view_closed`, `block_actions` in a view, `block_suggestion`); the Home tab sends
//! `app_home_opened` and shows the published App Home, whose buttons reach jitbot
//! too. The modals here are opened through the stand-in's Web API as jitbot opens
//! them, so these hold whatever forms jitbot itself builds.

use reqwest::StatusCode;
use serde_json::{Value, json};

use jitbot::adapters::slack::SlackApi;
use jitbot::playground::Playground;

use super::{ALICE, LEAD1, PATIENCE, Page, opened};

/// Calls the playground's stand-in as jitbot does.
fn as_jitbot(pg: &Playground) -> SlackApi {
    SlackApi::new(&pg.slack().api_url, &pg.slack().bot_token(), 0).unwrap()
}

/// A modal with an input of each kind the page draws.
fn modal(notify_on_close: bool) -> Value {
    json!({
        "type": "modal",
        "callback_id": "playground_probe",
        "private_metadata": "probe-1",
        "notify_on_close": notify_on_close,
        "title": { "type": "plain_text", "text": "Probe" },
        "submit": { "type": "plain_text", "text": "Send" },
        "close": { "type": "plain_text", "text": "Cancel" },
        "blocks": [
            { "type": "section", "text": { "type": "mrkdwn", "text": "*Pick*" } },
            {
                "type": "input",
                "block_id": "target",
                "label": { "type": "plain_text", "text": "Target" },
                "element": {
                    "type": "static_select",
                    "action_id": "target",
                    "option_groups": [{
                        "label": { "type": "plain_text", "text": "payments" },
                        "options": [{ "text": { "type": "plain_text", "text": "payments-db" }, "value": "payments-db" }],
                    }],
                },
            },
            {
                "type": "input",
                "block_id": "reason",
                "optional": true,
                "label": { "type": "plain_text", "text": "Reason" },
                "element": { "type": "plain_text_input", "action_id": "reason", "multiline": true },
            },
            {
                "type": "actions",
                "block_id": "more",
                "elements": [{
                    "type": "button",
                    "action_id": "playground_probe_button",
                    "text": { "type": "plain_text", "text": "More" },
                    "value": "more",
                }],
            },
        ],
    })
}

/// What Alice entered, as the page sends it.
fn entered() -> Value {
    json!({
        "target": { "target": { "type": "static_select", "selected_option": {
            "text": { "type": "plain_text", "text": "payments-db" }, "value": "payments-db" } } },
        "reason": { "reason": { "type": "plain_text_input", "value": "replica lag" } },
    })
}

/// Opens `view` for `user` as jitbot does, with a trigger of theirs.
async fn open_for(pg: &Playground, user: &str, view: &Value) -> String {
    let trigger = format!("t.{user}.{}", rand::random::<u32>());
    pg.slack().trigger_from(&trigger, user);
    as_jitbot(pg).views_open(&trigger, view).await.unwrap()
}

async fn answered(page: &Page, path: &str, body: Value) -> Value {
    let (status, answer) = page.post(path, body).await;
    assert_eq!(status, StatusCode::OK, "{path}: {answer}");
    answer
}

#[tokio::test]
async fn a_modal_shows_to_its_person_and_an_empty_ack_to_its_submission_closes_it() {
    let (pg, page) = opened().await;
    let id = open_for(&pg, ALICE, &modal(false)).await;

    let state = page.state().await;
    let shown = &state["views"][0];
    assert_eq!(
        (shown["id"].as_str(), shown["user"].as_str()),
        (Some(id.as_str()), Some(ALICE))
    );
    assert_eq!(shown["view"]["callback_id"], "playground_probe");
    assert!(shown["view"]["hash"].is_string(), "{shown}");

    let (status, refused) = page
        .post(
            "/playground/view/submit",
            json!({ "user": LEAD1, "view_id": id, "values": entered() }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("someone else's")
    );
    let (status, _) = page
        .post(
            "/playground/view/submit",
            json!({ "user": ALICE, "view_id": id, "values": [1] }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // jitbot reads the submission (a payload it could not read would be a 400) and,
    // knowing no such form, acks it empty: the modal closes, as in Slack.
    let done = answered(
        &page,
        "/playground/view/submit",
        json!({ "user": ALICE, "view_id": id, "values": entered() }),
    )
    .await;
    assert_eq!(
        (done["status"].as_u64(), done["outcome"].as_str()),
        (Some(200), Some("closed")),
        "{done}"
    );
    assert!(pg.slack().open_views().is_empty());
    assert_eq!(page.state().await["views"], json!([]));
    pg.stop().await;
}

#[tokio::test]
async fn cancel_closes_the_modal_and_tells_jitbot_only_when_the_view_asks() {
    let (pg, page) = opened().await;
    let quiet = open_for(&pg, ALICE, &modal(false)).await;
    let told = open_for(&pg, ALICE, &modal(true)).await;

    let answer = answered(
        &page,
        "/playground/view/close",
        json!({ "user": ALICE, "view_id": quiet }),
    )
    .await;
    assert_eq!(answer, json!({ "notified": false }));
    let answer = answered(
        &page,
        "/playground/view/close",
        json!({ "user": ALICE, "view_id": told }),
    )
    .await;
    assert_eq!(answer, json!({ "notified": true, "status": 200 }));
    assert!(pg.slack().open_views().is_empty());

    let (status, _) = page
        .post(
            "/playground/view/close",
            json!({ "user": ALICE, "view_id": told }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a closed modal is gone");
    pg.stop().await;
}

#[tokio::test]
async fn clicks_and_typing_in_a_modal_reach_jitbot_as_slack_sends_them() {
    let (pg, page) = opened().await;
    let id = open_for(&pg, ALICE, &modal(false)).await;

    let click = json!({ "type": "button", "action_id": "playground_probe_button",
                        "block_id": "more", "value": "more" });
    let answer = answered(
        &page,
        "/playground/view/act",
        json!({ "user": ALICE, "view_id": id, "values": entered(), "action": click }),
    )
    .await;
    assert_eq!(
        answer["status"], 200,
        "jitbot read the block_actions: {answer}"
    );

    let odd = json!({ "type": "datepicker", "action_id": "x", "block_id": "y" });
    let (status, _) = page
        .post(
            "/playground/view/act",
            json!({ "user": ALICE, "view_id": id, "action": odd }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let answer = answered(
        &page,
        "/playground/view/suggest",
        json!({ "user": ALICE, "view_id": id, "block_id": "target", "action_id": "target", "value": "pay" }),
    )
    .await;
    assert_eq!(answer["status"], 200, "{answer}");
    assert!(answer["options"].is_object(), "{answer}");
    pg.stop().await;
}

#[tokio::test]
async fn the_home_tab_sends_app_home_opened_and_shows_the_home_with_its_buttons() {
    let (pg, page) = opened().await;
    let answer = answered(&page, "/playground/home", json!({ "user": ALICE })).await;
    assert_eq!(answer["status"], 200, "jitbot took the event: {answer}");
    let published = pg
        .slack()
        .wait_until(PATIENCE, |s| s.home(ALICE).is_some())
        .await;
    assert!(
        published,
        "jitbot published alice's home on app_home_opened"
    );
    assert_eq!(page.state().await["homes"][ALICE]["type"], "home");
    let (status, _) = page
        .post("/playground/home", json!({ "user": "U0NOBODY01" }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A home with a button of the probe's own, to click.
    let home = json!({
        "type": "home",
        "blocks": [{
            "type": "section",
            "block_id": "grant:probe",
            "text": { "type": "mrkdwn", "text": "*payments-db*" },
            "accessory": { "type": "button", "action_id": "playground_probe_button",
                           "text": { "type": "plain_text", "text": "Revoke" }, "value": "probe" },
        }],
    });
    as_jitbot(&pg).views_publish(ALICE, &home).await.unwrap();
    let state = page.state().await;
    let drawn = &state["homes"][ALICE];
    assert_eq!(drawn["blocks"][0]["block_id"], "grant:probe");
    let home_id = drawn["id"].as_str().unwrap().to_owned();

    let click = json!({ "type": "button", "action_id": "playground_probe_button",
                        "block_id": "grant:probe", "value": "probe" });
    let answer = answered(
        &page,
        "/playground/view/act",
        json!({ "user": ALICE, "view_id": home_id, "action": click }),
    )
    .await;
    assert_eq!(answer["status"], 200, "{answer}");
    let (status, _) = page
        .post(
            "/playground/view/act",
            json!({ "user": LEAD1, "view_id": home_id, "action": click }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a home is its person's alone"
    );
    pg.stop().await;
}

#[tokio::test]
async fn an_update_answer_replaces_the_modal_with_a_new_hash_as_slack_does() {
    let (pg, _page) = opened().await;
    let id = open_for(&pg, ALICE, &modal(false)).await;
    let before = pg.slack().open_view(&id).unwrap();

    let mut next = modal(false);
    next["title"]["text"] = json!("Probe, again");
    let after = pg.slack().replace_view(&id, &next).unwrap();
    assert_eq!(after.view["title"]["text"], "Probe, again");
    assert_ne!(after.hash, before.hash);

    let mut untitled = modal(false);
    untitled["title"]["text"] = json!("");
    assert_eq!(
        pg.slack().replace_view(&id, &untitled).unwrap_err(),
        "invalid_arguments"
    );
    pg.slack().close_view(&id);
    assert_eq!(
        pg.slack().replace_view(&id, &next).unwrap_err(),
        "not_found"
    );
    pg.stop().await;
}

#[tokio::test]
async fn cancel_on_the_requesters_private_answer_withdraws_the_request_and_replaces_the_answer() {
    let (pg, page) = opened().await;
    let id = page.request(ALICE, super::REQUEST).await;
    let state = page.state().await;
    let answer = &state["ephemeral"][0];
    let button = &answer["blocks"][1]["elements"][0];
    assert_eq!(button["action_id"], "jit_cancel", "{answer}");
    let n = answer["n"].clone();

    let click = |user: &str| {
        json!({ "user": user, "n": n, "block_id": answer["blocks"][1]["block_id"],
                "action_id": "jit_cancel", "value": button["value"] })
    };
    let (status, _) = page.post("/playground/click-private", click(LEAD1)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "it is alice's alone");
    let done = answered(&page, "/playground/click-private", click(ALICE)).await;
    assert_eq!(done["status"], 200, "{done}");

    let replaced = |s: &jitbot::playground::SlackStandin| {
        s.ephemerals()
            .first()
            .is_some_and(|e| e.text.contains("cancelled") && e.user == ALICE)
    };
    assert!(
        pg.slack().wait_until(PATIENCE, replaced).await,
        "{:#?}",
        pg.slack().ephemerals()
    );
    assert_eq!(
        pg.slack().ephemerals().len(),
        1,
        "the answer was replaced, not added to"
    );
    let state = page.state().await;
    let row = state["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id.as_str());
    assert_eq!(row.unwrap()["state"], "cancelled");
    pg.stop().await;
}

/// The request form's field `block`/`action` entered as `value` (text) or as the
/// option `choice`.
fn field(block: &str, action: &str, kind: &str, entered: Value) -> (String, Value) {
    let value = match kind {
        "plain_text_input" => json!({ "type": kind, "value": entered }),
        _ => json!({ "type": kind, "selected_option": {
            "text": { "type": "plain_text", "text": entered }, "value": entered } }),
    };
    (block.to_owned(), json!({ action: value }))
}

#[tokio::test]
async fn jit_alone_opens_the_form_for_its_person_whose_errors_show_and_whose_submission_files_the_request()
 {
    use jitbot::adapters::slack::forms::{
        DURATION_ACTION, DURATION_BLOCK, REASON_ACTION, REASON_BLOCK, REQUEST_FORM, TARGET_ACTION,
        TARGET_BLOCK,
    };
    let (pg, page) = opened().await;
    let answer = answered(
        &page,
        "/playground/command",
        json!({ "user": ALICE, "text": "/jit" }),
    )
    .await;
    assert_eq!(answer["status"], 200, "{answer}");
    let opened = |s: &jitbot::playground::SlackStandin| {
        s.open_views()
            .iter()
            .any(|v| v.user == ALICE && v.view["callback_id"] == REQUEST_FORM)
    };
    assert!(
        pg.slack().wait_until(PATIENCE, opened).await,
        "the trigger was alice's"
    );
    let form = pg.slack().open_views().remove(0);
    assert!(
        page.state().await["ephemeral"]
            .as_array()
            .unwrap()
            .is_empty(),
        "an empty ack shows nothing"
    );

    let values = |reason: &str| -> Value {
        let fields = [
            field(
                TARGET_BLOCK,
                TARGET_ACTION,
                "static_select",
                json!("payments-db"),
            ),
            field(
                DURATION_BLOCK,
                DURATION_ACTION,
                "static_select",
                json!("default"),
            ),
            field(
                REASON_BLOCK,
                REASON_ACTION,
                "plain_text_input",
                json!(reason),
            ),
        ];
        Value::Object(fields.into_iter().collect())
    };
    let refused = answered(
        &page,
        "/playground/view/submit",
        json!({ "user": ALICE, "view_id": form.id, "values": values("            ") }),
    )
    .await;
    assert_eq!(refused["outcome"], "errors", "{refused}");
    assert!(
        refused["errors"][REASON_BLOCK]
            .as_str()
            .unwrap()
            .contains("say why"),
        "{refused}"
    );
    assert_eq!(pg.slack().open_views().len(), 1, "the form stays open");

    let done = answered(
        &page,
        "/playground/view/submit",
        json!({ "user": ALICE, "view_id": form.id, "values": values("INC-4412 failover drill") }),
    )
    .await;
    assert_eq!(done["outcome"], "closed", "{done}");
    assert!(pg.slack().open_views().is_empty());
    let state = page.state().await;
    let filed = &state["requests"][0];
    assert_eq!(
        (filed["target"].as_str(), filed["state"].as_str()),
        (Some("payments-db"), Some("pending"))
    );
    assert_eq!(filed["requester"], ALICE);
    pg.stop().await;
}

#[tokio::test]
async fn deny_on_a_card_opens_the_reason_form_for_the_approver_and_the_requester_is_told_why() {
    use jitbot::adapters::slack::forms::{DENY_FORM, NOTE_ACTION, NOTE_BLOCK};
    let (pg, page) = opened().await;
    let id = page.request(ALICE, super::REQUEST).await;
    let ts = super::card_ts(&pg, &id).await;
    let card = pg.slack().message(super::DB_APPROVALS, &ts).unwrap();
    let deny = card["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| {
            b["elements"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |e| (b["block_id"].clone(), e))
        })
        .find(|(_, e)| e["action_id"] == "jit_deny")
        .expect("the card has Deny");
    let answer = answered(
        &page,
        "/playground/click",
        json!({ "user": LEAD1, "channel": super::DB_APPROVALS, "ts": ts,
                "block_id": deny.0, "action_id": "jit_deny", "value": deny.1["value"] }),
    )
    .await;
    assert_eq!(answer["status"], 200);
    let opened = |s: &jitbot::playground::SlackStandin| {
        s.open_views()
            .iter()
            .any(|v| v.user == LEAD1 && v.view["callback_id"] == DENY_FORM)
    };
    assert!(
        pg.slack().wait_until(PATIENCE, opened).await,
        "the trigger was the lead's"
    );
    let form = pg.slack().open_views().remove(0);

    let note = json!({ NOTE_BLOCK: { NOTE_ACTION: { "type": "plain_text_input", "value": "not during the freeze" } } });
    let done = answered(
        &page,
        "/playground/view/submit",
        json!({ "user": LEAD1, "view_id": form.id, "values": note }),
    )
    .await;
    assert_eq!(done["outcome"], "closed", "{done}");
    let told = |s: &jitbot::playground::SlackStandin| {
        s.dm_channels().get(ALICE).is_some_and(|dm| {
            s.messages(dm)
                .iter()
                .any(|m| m.body.to_string().contains("not during the freeze"))
        })
    };
    assert!(
        pg.slack().wait_until(PATIENCE, told).await,
        "alice was told why"
    );
    pg.stop().await;
}
