//! The Slack app manifest agrees with the code: it asks for exactly the scopes of the
//! Web API methods jitbot calls ([`bot_scopes`]), every method a whole flow calls is
//! listed in [`WEB_API_METHODS`], its URLs are routes jitbot serves, it enables the
//! App Home and subscribes to `app_home_opened`, and its usage hint is the grammar's.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_yaml::Value;

use jitbot::adapters::slack::{WEB_API_METHODS, bot_scopes};
use jitbot::core::actions::{APPROVE, REVOKE};
use jitbot::core::command::USAGE;

use super::docs;
use crate::support::fakes::{ALICE, GROUP_MEMBER, LEAD1, request_id_in};
use crate::support::slack_world::SlackWorld;

fn manifest() -> Value {
    docs("manifests/slack-app.yaml").remove(0)
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}"))
}

#[test]
fn the_manifest_asks_for_exactly_the_scopes_jitbot_uses() {
    let app = manifest();
    let scopes: Vec<&str> = app["oauth_config"]["scopes"]["bot"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(text)
        .collect();
    assert_eq!(scopes, bot_scopes());
    assert!(!scopes.contains(&"users:read"), "nothing reads users");
}

#[test]
fn the_manifest_enables_the_home_and_its_events() {
    let app = manifest();
    let home = &app["features"]["app_home"];
    assert_eq!(home["home_tab_enabled"], true);
    assert_eq!(home["messages_tab_enabled"], true);
    assert_eq!(home["messages_tab_read_only_enabled"], true);
    let events = &app["settings"]["event_subscriptions"];
    assert!(text(&events["request_url"]).ends_with("/slack/events"));
    let bot_events: Vec<&str> = events["bot_events"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(text)
        .collect();
    assert_eq!(bot_events, ["app_home_opened"]);
    let interactivity = &app["settings"]["interactivity"];
    assert_eq!(interactivity["is_enabled"], true);
    assert!(text(&interactivity["message_menu_options_url"]).ends_with("/slack/interactions"));
}

#[test]
fn the_slash_command_shows_the_grammar_and_mentions_the_form() {
    let app = manifest();
    let command = &app["features"]["slash_commands"][0];
    assert_eq!(command["command"], "/jit");
    let hint = text(&command["usage_hint"]);
    assert_eq!(hint, USAGE.replace("/jit ", ""));
    assert!(hint.contains("[from <address>]") && hint.contains("cancel <id>"));
    assert!(text(&command["description"]).contains("form"));
    let description = text(&app["display_information"]["description"]);
    assert!(description.contains("form"));
    assert!(description.chars().count() <= 140, "Slack's limit");
}

/// Every URL the manifest names, with what it is for.
fn urls(app: &Value) -> Vec<(&'static str, String)> {
    vec![
        (
            "slash command",
            text(&app["features"]["slash_commands"][0]["url"]).to_owned(),
        ),
        (
            "interactivity",
            text(&app["settings"]["interactivity"]["request_url"]).to_owned(),
        ),
        (
            "select options",
            text(&app["settings"]["interactivity"]["message_menu_options_url"]).to_owned(),
        ),
        (
            "events",
            text(&app["settings"]["event_subscriptions"]["request_url"]).to_owned(),
        ),
    ]
}

#[tokio::test]
async fn the_manifests_urls_are_routes_jitbot_serves() {
    let app = manifest();
    let w = SlackWorld::start().await;
    let hosts: BTreeSet<String> = urls(&app)
        .iter()
        .map(|(_, url)| url.split('/').take(3).collect::<Vec<_>>().join("/"))
        .collect();
    assert_eq!(hosts.len(), 1, "one host for every URL: {hosts:?}");
    for (what, url) in urls(&app) {
        assert!(url.starts_with("https://"), "{what}: {url}");
        let path = format!("/{}", url.splitn(4, '/').nth(3).unwrap_or(""));
        // An unsigned request to a route jitbot serves is refused; elsewhere, 404.
        let (status, _) = w.post_raw(&path, "x=1".to_owned(), None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {path}");
    }
    let (status, _) = w
        .post_raw("/slack/nowhere", "x=1".to_owned(), None, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn every_web_api_method_a_whole_flow_calls_is_listed() {
    let w = SlackWorld::start().await;
    let (_, answer) = w
        .command(ALICE, "request payments-db 30m INC-4411 replica lag")
        .await;
    let id = request_id_in(&answer);
    // An approver through a user group: the group is read.
    assert_eq!(
        w.click(GROUP_MEMBER, APPROVE, &id, "member").await,
        StatusCode::OK
    );
    w.slack.card_update("· expires").await;
    w.command(ALICE, &format!("extend {id} 30m")).await;
    w.command(ALICE, "list").await;
    w.command(ALICE, "").await;
    let body = w.app_home_opened("Ev0FLOW0001", ALICE, "home");
    w.post_event(&body, None).await;
    w.slack
        .wait_until(|s| {
            s.home(ALICE)
                .is_some_and(|h| h.to_string().contains(REVOKE))
        })
        .await;
    let home = w.slack.home(ALICE).unwrap();
    let click = w.home_click_body(ALICE, &home, REVOKE, &id);
    w.post_signed("/slack/interactions", click.clone()).await;
    w.slack
        .wait_until(|s| {
            s.home(ALICE)
                .is_some_and(|h| !h.to_string().contains(REVOKE))
        })
        .await;
    // A refused click in the Home (the grant is gone) is told by DM.
    let again = w.home_click_body(LEAD1, &home, REVOKE, &id);
    w.post_signed("/slack/interactions", again).await;
    w.slack
        .wait_until(|s| s.dm_channels().contains_key(LEAD1))
        .await;
    w.notifier.flush().await;
    w.background.close();
    w.background.wait().await;
    let listed: BTreeSet<&str> = WEB_API_METHODS.iter().map(|(m, _)| *m).collect();
    let called: BTreeSet<String> = w
        .slack
        .all_calls()
        .into_iter()
        .map(|c| c.method)
        .filter(|m| !m.starts_with("respond:"))
        .collect();
    for method in &called {
        assert!(
            listed.contains(method.as_str()),
            "{method} is called but not in WEB_API_METHODS"
        );
    }
    for method in [
        "chat.postMessage",
        "chat.update",
        "conversations.open",
        "usergroups.users.list",
        "views.publish",
    ] {
        assert!(
            called.contains(method),
            "the flow calls {method}: {called:?}"
        );
    }
}
