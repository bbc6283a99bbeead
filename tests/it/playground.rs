//! `jitbot playground`'s server side: the Slack stand-in records what the real Slack
//! client sends, a command typed in the page reaches jitbot through its signed
//! endpoint, a button click decides, and "+10 min" expires a grant and removes its
//! policy. The browser drives the same endpoints in tests/browser.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use jitbot::adapters::slack::{SlackApi, SlackError};
use jitbot::core::ports::Clock;
use jitbot::playground::slack_standin::{SlackStandin, StandinConfig};
use jitbot::playground::{DRY_RUN_PREVIEW, EXAMPLE_CONFIG, Options, Playground};
use jitbot::settings::Settings;

use crate::support::fakes::{request_id_in, t0};
use crate::support::kube::server;

mod views;

const ALICE: &str = "U0ALICE001";
const CAROL: &str = "U0CAROL001";
const LEAD1: &str = "U01DBLEAD1";
const LEAD2: &str = "U01DBLEAD2";
const DB_APPROVALS: &str = "C03DBAPPRV";
const AUDIT: &str = "C0JITAUDIT";
const PATIENCE: Duration = Duration::from_secs(20);
/// What Alice types after `/jit`.
const REQUEST: &str = "request payments-db 30m INC-4411 replica lag";

/// A playground on the built-in example catalog, its clock still at `t0()`.
async fn playground() -> Playground {
    playground_on("127.0.0.1:0", &[]).await
}

/// The same, listening on `listen` and answering to the `allow_hosts` names too.
async fn playground_on(listen: &str, allow_hosts: &[&str]) -> Playground {
    let (settings, catalog) = Settings::load_checked_toml(EXAMPLE_CONFIG, &HashMap::new())
        .expect("the example catalog is valid");
    let options = Options {
        listen: listen.to_owned(),
        kube: false,
        allow_hosts: allow_hosts.iter().map(|h| h.to_string()).collect(),
        running_clock: false,
        start: t0(),
        redis_url: None,
        state_key: None,
    };
    Playground::start(settings, catalog, options)
        .await
        .expect("the playground starts")
}

/// POSTs the form `body` to `url` with `headers`; the status of the answer.
async fn post_form(url: &str, headers: &[(&str, String)], body: &'static str) -> StatusCode {
    let mut post = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded");
    for (name, value) in headers {
        post = post.header(*name, value);
    }
    post.body(body).send().await.unwrap().status()
}

/// A playground and the page that drives it.
async fn opened() -> (Playground, Page) {
    let pg = playground().await;
    let page = Page::of(&pg);
    (pg, page)
}

/// What the page does: JSON to the playground's own endpoints.
struct Page {
    base: String,
    http: reqwest::Client,
}

impl Page {
    fn of(pg: &Playground) -> Page {
        Page {
            base: format!("http://{}", pg.addr),
            http: reqwest::Client::new(),
        }
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn state(&self) -> Value {
        let res = self.http.get(format!("{}/playground/state", self.base));
        res.send().await.unwrap().json().await.unwrap()
    }

    /// Types `/jit <text>` as `user`; returns the request id from the answer.
    async fn request(&self, user: &str, text: &str) -> String {
        let (status, answer) = self
            .post("/playground/command", json!({ "user": user, "text": text }))
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        request_id_in(answer["text"].as_str().unwrap_or_default())
    }

    /// Clicks Approve on `id`'s card as `user`.
    async fn approve(&self, pg: &Playground, user: &str, id: &str) {
        let ts = card_ts(pg, id).await;
        let (status, answer) = self
            .post(
                "/playground/click",
                json!({ "user": user, "channel": DB_APPROVALS, "ts": ts,
                        "block_id": format!("decision:{id}"), "action_id": "jit_approve", "value": id }),
            )
            .await;
        assert_eq!(
            (status, answer["status"].as_u64()),
            (StatusCode::OK, Some(200))
        );
    }
}

/// The `ts` of `id`'s approval card, once it is posted.
async fn card_ts(pg: &Playground, id: &str) -> String {
    let find = |s: &SlackStandin| {
        s.messages(DB_APPROVALS)
            .into_iter()
            .find(|m| m.body["blocks"].to_string().contains(id))
            .map(|m| m.ts)
    };
    assert!(pg.slack().wait_until(PATIENCE, |s| find(s).is_some()).await);
    find(pg.slack()).unwrap()
}

async fn card_says(pg: &Playground, id: &str, words: &str) {
    let says = |s: &SlackStandin| {
        s.messages(DB_APPROVALS).iter().any(|m| {
            let blocks = m.body["blocks"].to_string();
            blocks.contains(id) && blocks.contains(words)
        })
    };
    assert!(
        pg.slack().wait_until(PATIENCE, says).await,
        "the card never said {words:?}: {:#?}",
        pg.slack().messages(DB_APPROVALS)
    );
}

#[tokio::test]
async fn the_standin_records_cards_updates_threads_dms_and_private_answers() {
    let standin = SlackStandin::start(StandinConfig::new("xoxb-t", &["C0CARDS01"], &[]))
        .await
        .unwrap();
    let api = SlackApi::new(&standin.api_url, "xoxb-t", 0).unwrap();
    let blocks = json!([{ "type": "section", "text": { "type": "mrkdwn", "text": "*v1*" } }]);
    let (channel, ts) = api
        .post_message("C0CARDS01", "v1", Some(&blocks), None)
        .await
        .unwrap();
    let v2 = json!([{ "type": "section", "text": { "type": "mrkdwn", "text": "*v2*" } }]);
    api.update_message(&channel, &ts, "v2", &v2).await.unwrap();
    api.post_message(&channel, "a reply", None, Some(&ts))
        .await
        .unwrap();
    let dm = api.open_dm(ALICE).await.unwrap();
    api.post_message(&dm, "hello alice", None, None)
        .await
        .unwrap();

    let posted = standin.messages("C0CARDS01");
    assert_eq!(posted.len(), 2, "the update replaced the card: {posted:#?}");
    assert_eq!(posted[0].body["blocks"], v2);
    assert!(posted[0].edited_at.is_some());
    assert_eq!(posted[1].thread_ts.as_deref(), Some(ts.as_str()));
    assert_eq!(standin.dm_channels()[ALICE], dm);
    assert_eq!(standin.messages(&dm)[0].body["text"], "hello alice");

    let only_alice = standin.response_url_for(ALICE, Some((&channel, &ts)));
    api.respond(&only_alice, "just for you", false)
        .await
        .unwrap();
    let private = standin.ephemerals();
    assert_eq!(
        (
            private[0].user.as_str(),
            private[0].text.as_str(),
            private[0].via
        ),
        (ALICE, "just for you", "response_url")
    );
    api.respond(&only_alice, "replaced", true).await.unwrap();
    assert_eq!(standin.message(&channel, &ts).unwrap()["text"], "replaced");

    let unknown = api.post_message("C0NOWHERE1", "x", None, None).await;
    assert!(
        matches!(unknown, Err(SlackError::Api { ref code, .. }) if code == "channel_not_found")
    );
    let stranger = SlackApi::new(&standin.api_url, "xoxb-wrong", 0).unwrap();
    let refused = stranger.post_message("C0CARDS01", "x", None, None).await;
    assert!(matches!(refused, Err(SlackError::Api { ref code, .. }) if code == "invalid_auth"));
}

#[tokio::test]
async fn a_command_typed_in_the_page_goes_through_the_signed_endpoint() {
    let (pg, page) = opened().await;
    let id = page.request(ALICE, &format!("/jit {REQUEST}")).await;
    card_says(&pg, &id, "0 of 2 approvals").await;
    card_says(&pg, &id, DRY_RUN_PREVIEW).await;

    let state = page.state().await;
    let mine = &state["ephemeral"][0];
    assert_eq!(mine["user"], ALICE);
    assert_eq!(
        mine["command"],
        "/jit request payments-db 30m INC-4411 replica lag"
    );
    assert!(
        mine["text"]
            .as_str()
            .unwrap()
            .contains("sent to <#C03DBAPPRV>")
    );
    let channel = &state["channels"][0];
    assert_eq!(channel["id"], DB_APPROVALS);
    assert_eq!(channel["messages"][0]["blocks"][0]["type"], "header");
    assert_eq!(state["requests"][0]["state"], "pending");
    let names: Vec<&str> = state["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["name"].as_str())
        .collect();
    assert!(
        names.contains(&"alice") && names.contains(&LEAD1),
        "{names:?}"
    );

    // jitbot's own endpoint still refuses what the playground did not sign.
    let url = format!("http://{}/slack/commands", pg.jitbot_addr());
    let unsigned = [
        ("x-slack-request-timestamp", t0().timestamp().to_string()),
        ("x-slack-signature", "v0=00".to_owned()),
    ];
    let forged = post_form(
        &url,
        &unsigned,
        "user_id=U0ALICE001&command=%2Fjit&text=help",
    )
    .await;
    assert_eq!(forged, StatusCode::UNAUTHORIZED);

    // A click by someone who may not approve reaches them alone.
    let ts = card_ts(&pg, &id).await;
    page.post(
        "/playground/click",
        json!({ "user": CAROL, "channel": DB_APPROVALS, "ts": ts,
                "block_id": format!("decision:{id}"), "action_id": "jit_approve", "value": id }),
    )
    .await;
    let told = |s: &SlackStandin| {
        s.ephemerals()
            .iter()
            .any(|e| e.user == CAROL && e.text.contains("not an approver"))
    };
    assert!(pg.slack().wait_until(PATIENCE, told).await);
    pg.stop().await;
}

#[tokio::test]
async fn ten_minutes_forward_three_times_expires_the_grant_and_removes_its_policy() {
    let (pg, page) = opened().await;
    let id = page.request(ALICE, REQUEST).await;
    page.approve(&pg, LEAD1, &id).await;
    card_says(&pg, &id, "1 of 2 approvals").await;
    page.approve(&pg, LEAD2, &id).await;
    card_says(&pg, &id, "expires 14:30 UTC").await;

    let policies = page.state().await["cluster"]["policies"].clone();
    assert_eq!(policies[0]["name"], format!("jit-{id}"), "{policies}");
    assert_eq!(policies[0]["expires_at"], "2026-11-26T14:30:00Z");
    assert!(
        policies[0]["yaml"]
            .as_str()
            .unwrap()
            .contains("10.8.0.14/32")
    );

    for minutes in [10, 10] {
        let (status, done) = page
            .post("/playground/advance", json!({ "minutes": minutes }))
            .await;
        assert_eq!((status, &done["expired"]), (StatusCode::OK, &json!(0)));
    }
    let (_, done) = page
        .post("/playground/advance", json!({ "minutes": 10 }))
        .await;
    assert_eq!(done["expired"], 1, "{done}");
    assert_eq!(done["now"], "2026-11-26T14:30:00Z");

    let state = page.state().await;
    assert_eq!(state["cluster"]["policies"], json!([]));
    assert_eq!(state["requests"][0]["state"], "expired");
    card_says(&pg, &id, "the policy is gone").await;
    let dm = &state["dms"][0];
    assert_eq!(dm["user"], ALICE);
    let dms = dm["messages"].to_string();
    assert!(dms.contains("is on") && dms.contains("has ended"), "{dms}");
    let audit = state["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == AUDIT)
        .unwrap();
    let thread = audit["messages"][0]["replies"].to_string();
    for step in ["*approved*", "*activated*", "*expired*"] {
        assert!(thread.contains(step), "the thread lacks {step}: {thread}");
    }
    let (status, _) = page
        .post("/playground/advance", json!({ "minutes": 0 }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    pg.stop().await;
}

#[tokio::test]
async fn the_page_is_self_contained_and_answers_only_its_own_address() {
    let pg = playground().await;
    let base = format!("http://{}", pg.addr);
    let http = reqwest::Client::new();
    let index = http.get(&base).send().await.unwrap().text().await.unwrap();
    assert!(index.contains("jitbot playground"));
    for asset in ["page.css", "mrkdwn.js", "blocks.js", "app.js"] {
        assert!(index.contains(&format!("/assets/{asset}")));
        let res = http
            .get(format!("{base}/assets/{asset}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{asset}");
        let text = res.text().await.unwrap();
        assert!(
            !text.contains("//cdn") && !text.contains("googleapis"),
            "{asset}"
        );
    }
    assert!(!index.contains("http://") && !index.contains("https://"));

    let rebound = http
        .get(format!("{base}/playground/state"))
        .header("host", "attacker.example")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), StatusCode::MISDIRECTED_REQUEST);
    let url = format!("{base}/playground/command");
    let form = post_form(&url, &[], "user=U0ALICE001&text=help").await;
    assert_eq!(form, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, _) = Page::of(&pg)
        .post(
            "/playground/command",
            json!({ "user": "U0NOBODY01", "text": "help" }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "only people of the catalog"
    );
    pg.stop().await;
}

/// GETs the page's state with `host` in the Host header.
async fn state_as(pg: &Playground, host: &str) -> StatusCode {
    let url = format!("http://127.0.0.1:{}/playground/state", pg.addr.port());
    let res = reqwest::Client::new().get(url).header("host", host);
    res.send().await.unwrap().status()
}

#[tokio::test]
async fn on_every_interface_the_page_answers_only_loopback_and_allowed_names() {
    let pg = playground_on("0.0.0.0:0", &["jitbot-play.example"]).await;
    let port = pg.addr.port();
    for foreign in [
        "attacker.example".to_owned(),
        format!("attacker.example:{port}"),
        format!("0.0.0.0:{port}"),
        format!("jitbot-play.example:{}", port.wrapping_add(1)),
    ] {
        assert_eq!(
            state_as(&pg, &foreign).await,
            StatusCode::MISDIRECTED_REQUEST,
            "{foreign}"
        );
    }
    for known in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "jitbot-play.example".to_owned(),
        format!("JITBOT-PLAY.example:{port}"),
    ] {
        assert_eq!(state_as(&pg, &known).await, StatusCode::OK, "{known}");
    }
    pg.stop().await;
}

#[tokio::test]
async fn a_post_from_another_sites_page_is_refused() {
    let pg = playground().await;
    let url = format!("http://{}/playground/command", pg.addr);
    let typed = json!({ "user": ALICE, "text": REQUEST });
    let from = |origin: String| {
        reqwest::Client::new()
            .post(&url)
            .header("origin", origin)
            .json(&typed)
    };
    for foreign in [
        "https://attacker.example".to_owned(),
        "null".to_owned(),
        format!("http://{}.attacker.example", pg.addr),
    ] {
        let res = from(foreign.clone()).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{foreign}");
    }
    let advance = reqwest::Client::new()
        .post(format!("http://{}/playground/advance", pg.addr))
        .header("origin", "https://attacker.example")
        .json(&json!({ "minutes": 10 }))
        .send()
        .await
        .unwrap();
    assert_eq!(advance.status(), StatusCode::FORBIDDEN);
    assert!(pg.slack().ephemerals().is_empty(), "nothing was typed");
    assert_eq!(pg.clock().now(), t0(), "the clock did not move");
    let own = from(format!("http://{}", pg.addr)).send().await.unwrap();
    assert_eq!(own.status(), StatusCode::OK, "the page's own origin");
    pg.stop().await;
}

/// Stops the playground process however the test ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `jitbot playground <args>` with `env` and returns it with the URL it printed.
fn spawn_playground(args: &[&str], env: &[(&str, &std::path::Path)]) -> (Running, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jitbot"));
    cmd.arg("playground")
        .args(args)
        .env_remove("JITBOT_CONFIG")
        .env_remove("REDIS_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (name, value) in env {
        cmd.env(name, value);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    let url = first
        .strip_prefix("jitbot playground: open ")
        .unwrap_or_else(|| panic!("no URL in {first:?}"))
        .to_owned();
    (running, url)
}

#[tokio::test]
async fn the_binary_starts_with_the_built_in_catalog_and_prints_its_url() {
    let (_running, url) = spawn_playground(&["--listen", "127.0.0.1:0"], &[]);
    let state: Value = reqwest::get(format!("{url}playground/state"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["users"][0]["id"], ALICE);
    assert_eq!(state["channels"][0]["id"], DB_APPROVALS);
    assert_eq!(state["clock_jumps"], true);
}

/// What the page reads of the playground at `url`.
async fn page_state(http: &reqwest::Client, url: &str) -> Value {
    let res = http.get(format!("{url}playground/state")).send().await;
    res.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_kube_the_clock_does_not_jump() {
    let kubeconfig = &server().kubeconfig;
    let (_running, url) = spawn_playground(
        &["--listen", "127.0.0.1:0", "--kube"],
        &[("KUBECONFIG", kubeconfig)],
    );
    let http = reqwest::Client::new();
    let state = page_state(&http, &url).await;
    assert_eq!(state["clock_jumps"], false, "the page hides +10 min");
    let before = state["now"].clone();
    let refused = http
        .post(format!("{url}playground/advance"))
        .json(&json!({ "minutes": 10 }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let said: Value = refused.json().await.unwrap();
    assert!(
        said["error"]
            .as_str()
            .unwrap()
            .contains("with --kube the clock cannot jump"),
        "{said}"
    );
    let state = page_state(&http, &url).await;
    let (before, after) = (
        before
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap(),
        state["now"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap(),
    );
    assert!(
        after - before < chrono::TimeDelta::minutes(5),
        "the clock did not jump: {before} then {after}"
    );
}

#[test]
fn a_bad_allow_host_is_refused_before_anything_starts() {
    let out = Command::new(env!("CARGO_BIN_EXE_jitbot"))
        .args(["playground", "--allow-host", "http://play.example.com"])
        .env_remove("JITBOT_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("is not HOST or HOST:PORT"), "{said}");
}
