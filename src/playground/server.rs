//! The playground's own web server: the page (plain HTML, CSS and JS built into the
//! binary, no outside assets) and the JSON endpoints it uses. The page plays Slack's
//! client: what a person types or clicks is turned into the signed request Slack would
//! send ([`super::inbound`]), and what jitbot sent back is read from the Slack
//! stand-in.
//!
//! Anyone who can reach this server can act as any person in the catalog, so it
//! answers only requests addressed to a name it knows: loopback names, its own
//! address, and the names given with `--allow-host` (no DNS rebinding from a web
//! page, whatever address it listens on). A POST that says where it comes from
//! (`Origin`) must come from one of those names, and it takes JSON only (a
//! cross-site form cannot send it without a preflight, which it never grants).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::TimeDelta;
use serde::Deserialize;
use serde_json::json;

use super::Engine;
use super::inbound::Click;
use crate::core::ids::SlackUserId;

const INDEX: &str = include_str!("page/index.html");
const CSS: &str = include_str!("page/page.css");
const MRKDWN_JS: &str = include_str!("page/mrkdwn.js");
const BLOCKS_JS: &str = include_str!("page/blocks.js");
const APP_JS: &str = include_str!("page/app.js");

/// Longest `/jit` text the page forwards; Slack's own limit is far below this.
const MAX_TEXT: usize = 4000;

pub(super) fn router(engine: Arc<Engine>, allowed: Allowed) -> Router {
    let asset = |body: &'static str, kind: &'static str| {
        get(move || async move {
            (
                [
                    (header::CONTENT_TYPE, kind),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                body,
            )
        })
    };
    let allowed = Arc::new(allowed);
    Router::new()
        .route("/", asset(INDEX, "text/html; charset=utf-8"))
        .route("/assets/page.css", asset(CSS, "text/css; charset=utf-8"))
        .route(
            "/assets/mrkdwn.js",
            asset(MRKDWN_JS, "text/javascript; charset=utf-8"),
        )
        .route(
            "/assets/blocks.js",
            asset(BLOCKS_JS, "text/javascript; charset=utf-8"),
        )
        .route(
            "/assets/app.js",
            asset(APP_JS, "text/javascript; charset=utf-8"),
        )
        .route("/playground/state", get(state))
        .route("/playground/command", post(command))
        .route("/playground/click", post(click))
        .route("/playground/advance", post(advance))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            let allowed = allowed.clone();
            async move { only_allowed(&allowed, req, next).await }
        }))
        .with_state(engine)
}

/// The names the page answers to (`Host`) and the pages it takes actions from
/// (`Origin`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Allowed {
    /// `Host` header values, lower case.
    hosts: Vec<String>,
    /// `Origin` header values: each host over http and https.
    origins: Vec<String>,
}

const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

impl Allowed {
    /// For a page listening on `addr`: its own address (unless it is `0.0.0.0` or
    /// `::`, which no browser asks for), the loopback names when it listens on
    /// loopback or everywhere, and `extra` (`--allow-host` values, checked by
    /// [`allowed_host`]). A name without a port stands for the listening port and
    /// for no port at all (a browser leaves the default port out; a proxy in front
    /// may answer on 80 or 443).
    pub(super) fn for_listener(addr: SocketAddr, extra: &[String]) -> Allowed {
        let port = addr.port();
        let ip = addr.ip();
        let mut names: Vec<String> = Vec::new();
        if !ip.is_unspecified() {
            names.push(match addr {
                SocketAddr::V4(a) => a.ip().to_string(),
                SocketAddr::V6(a) => format!("[{}]", a.ip()),
            });
        }
        if ip.is_loopback() || ip.is_unspecified() {
            names.extend(LOOPBACK_NAMES.map(str::to_owned));
        }
        let mut hosts: Vec<String> = names.iter().map(|n| format!("{n}:{port}")).collect();
        // Browsers leave the default port out of the Host header.
        if port == 80 {
            hosts.extend(names);
        }
        for name in extra {
            let name = name.to_ascii_lowercase();
            if has_port(&name) {
                hosts.push(name);
            } else {
                hosts.push(format!("{name}:{port}"));
                hosts.push(name);
            }
        }
        hosts.dedup();
        let origins = hosts
            .iter()
            .flat_map(|h| [format!("http://{h}"), format!("https://{h}")])
            .collect();
        Allowed { hosts, origins }
    }

    fn host(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    fn origin(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }
}

/// Whether `HOST[:PORT]` names a port (an IPv6 address is in brackets).
fn has_port(name: &str) -> bool {
    match name.rsplit_once(']') {
        Some((_, rest)) => rest.starts_with(':'),
        None => name.contains(':'),
    }
}

/// Checks one `--allow-host` value: `HOST` or `HOST:PORT`, a DNS name or an IP
/// address (IPv6 in brackets), as a browser puts it in the `Host` header.
pub fn allowed_host(raw: &str) -> Result<String, String> {
    let bad = |why: &str| Err(format!("`{raw}` is not HOST or HOST:PORT: {why}"));
    let (host, port) = match raw.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((ip, tail)) => {
                if ip.parse::<std::net::Ipv6Addr>().is_err() {
                    return bad("the part in brackets is not an IPv6 address");
                }
                (raw.len() - tail.len(), tail.strip_prefix(':'))
            }
            None => return bad("an IPv6 address needs its closing `]`"),
        },
        None => match raw.split_once(':') {
            Some((host, port)) => (host.len(), Some(port)),
            None => (raw.len(), None),
        },
    };
    let name = &raw[..host];
    if name.is_empty() {
        return bad("it names no host");
    }
    if !name.starts_with('[')
        && !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return bad(
            "a host has only letters, digits, `-` and `.` (write an IPv6 address as `[::1]`)",
        );
    }
    if port.is_some_and(|p| !matches!(p.parse::<u16>(), Ok(1..))) {
        return bad("the port is not a number from 1 to 65535");
    }
    if raw.len() > host && port.is_none() {
        return bad("only `:PORT` may follow the host");
    }
    Ok(raw.to_ascii_lowercase())
}

async fn only_allowed(allowed: &Allowed, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !allowed.host(host) {
        return (
            StatusCode::MISDIRECTED_REQUEST,
            "the playground answers only on the address it printed and the names given with --allow-host",
        )
            .into_response();
    }
    // A browser names the page a POST comes from; only the playground's own may act.
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .map(|o| o.to_str().unwrap_or("?"));
    if req.method() == Method::POST
        && let Some(origin) = origin
        && !allowed.origin(origin)
    {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({ "error": "the playground takes actions only from its own page" })),
        )
            .into_response();
    }
    next.run(req).await
}

fn refuse(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": message.into() })),
    )
        .into_response()
}

/// A person the catalog knows, or why not.
fn person(engine: &Engine, user: &str) -> Result<SlackUserId, String> {
    let id: SlackUserId = user.parse()?;
    if engine.workspace.people.iter().any(|p| p.id == id.as_str()) {
        Ok(id)
    } else {
        Err(format!("{id} is not in this playground's workspace"))
    }
}

async fn state(State(engine): State<Arc<Engine>>) -> Response {
    Json(engine.view().await).into_response()
}

#[derive(Deserialize)]
struct Typed {
    user: String,
    text: String,
}

/// `/jit …` typed as `user`: the immediate answer shows to them alone, as in Slack.
async fn command(State(engine): State<Arc<Engine>>, Json(typed): Json<Typed>) -> Response {
    let user = match person(&engine, &typed.user) {
        Ok(u) => u,
        Err(why) => return refuse(why),
    };
    // The page shows `/jit` before the input; a typed one is taken off too.
    let text = typed.text.trim();
    let text = match text.strip_prefix("/jit") {
        Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => rest.trim(),
        _ => text,
    };
    if text.chars().count() > MAX_TEXT {
        return refuse("that command is too long");
    }
    let response_url = engine.slack.response_url_for(user.as_str(), None);
    match engine
        .inbound
        .command(user.as_str(), text, &response_url)
        .await
    {
        Ok((status, answer)) => {
            let shown = if status == 200 {
                answer
            } else {
                format!("jitbot answered HTTP {status}")
            };
            let typed = format!("/jit {text}");
            engine
                .slack
                .show_ephemeral(user.as_str(), Some(typed.trim_end()), &shown);
            Json(json!({ "status": status, "text": shown })).into_response()
        }
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            Json(json!({ "error": e.to_string() })),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct Clicked {
    user: String,
    channel: String,
    ts: String,
    block_id: String,
    action_id: String,
    value: String,
}

/// A button on a message, clicked as `user`.
async fn click(State(engine): State<Arc<Engine>>, Json(c): Json<Clicked>) -> Response {
    let user = match person(&engine, &c.user) {
        Ok(u) => u,
        Err(why) => return refuse(why),
    };
    if engine.slack.message(&c.channel, &c.ts).is_none() {
        return refuse("there is no such message");
    }
    let response_url = engine
        .slack
        .response_url_for(user.as_str(), Some((&c.channel, &c.ts)));
    let sent = Click {
        user: user.as_str(),
        channel: &c.channel,
        message_ts: &c.ts,
        block_id: &c.block_id,
        action_id: &c.action_id,
        value: &c.value,
        response_url: &response_url,
    };
    match engine.inbound.click(&sent).await {
        Ok(status) => Json(json!({ "status": status })).into_response(),
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            Json(json!({ "error": e.to_string() })),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct Forward {
    minutes: i64,
}

/// Moves the playground's clock forward and runs the sweep and the reconciler at once.
async fn advance(State(engine): State<Arc<Engine>>, Json(f): Json<Forward>) -> Response {
    if let Err(why) = engine.may_jump() {
        return (StatusCode::CONFLICT, Json(json!({ "error": why }))).into_response();
    }
    if !(1..=24 * 60).contains(&f.minutes) {
        return refuse("move the clock by 1 minute to 24 hours");
    }
    match engine.advance(TimeDelta::minutes(f.minutes)).await {
        Ok(done) => Json(done).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": e.to_string() })),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(addr: &str, extra: &[&str]) -> Allowed {
        let extra: Vec<String> = extra.iter().map(|e| e.to_string()).collect();
        Allowed::for_listener(addr.parse().unwrap(), &extra)
    }

    #[test]
    fn every_address_keeps_a_list_of_names() {
        let everywhere = on("0.0.0.0:8080", &[]);
        for ok in [
            "localhost:8080",
            "127.0.0.1:8080",
            "[::1]:8080",
            "LOCALHOST:8080",
        ] {
            assert!(everywhere.host(ok), "{ok}");
        }
        for refused in [
            "attacker.example",
            "attacker.example:8080",
            "0.0.0.0:8080",
            "localhost:9090",
            "",
        ] {
            assert!(!everywhere.host(refused), "{refused}");
        }
        assert!(!on("[::]:8080", &[]).host("evil.example:8080"));
        let lan = on("192.168.1.5:8080", &[]);
        assert!(lan.host("192.168.1.5:8080"));
        assert!(!lan.host("localhost:8080"), "not listening on loopback");
        let web = on("127.0.0.1:80", &[]);
        assert!(web.host("localhost") && web.host("localhost:80"));
    }

    #[test]
    fn allow_host_adds_names_with_or_without_a_port() {
        let allowed = on(
            "0.0.0.0:8080",
            &["play.example.com", "10.0.0.7:9000", "[fd00::7]"],
        );
        for ok in [
            "play.example.com",
            "play.example.com:8080",
            "Play.Example.Com:8080",
            "10.0.0.7:9000",
            "[fd00::7]:8080",
            "localhost:8080",
        ] {
            assert!(allowed.host(ok), "{ok}");
        }
        for refused in [
            "play.example.com:9999",
            "10.0.0.7",
            "10.0.0.7:8080",
            "example.com",
        ] {
            assert!(!allowed.host(refused), "{refused}");
        }
    }

    #[test]
    fn origins_are_the_allowed_hosts_over_http_or_https() {
        let allowed = on("0.0.0.0:8080", &["play.example.com"]);
        for ok in [
            "http://localhost:8080",
            "http://127.0.0.1:8080",
            "https://play.example.com",
            "http://play.example.com:8080",
        ] {
            assert!(allowed.origin(ok), "{ok}");
        }
        for refused in [
            "https://attacker.example",
            "http://localhost:8081",
            "null",
            "http://localhost:8080.attacker.example",
            "localhost:8080",
        ] {
            assert!(!allowed.origin(refused), "{refused}");
        }
    }

    #[test]
    fn allow_host_values_are_checked() {
        for ok in [
            "play.example.com",
            "play.example.com:8443",
            "10.0.0.7",
            "[fd00::7]:80",
            "[::1]",
        ] {
            assert!(allowed_host(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            allowed_host("Play.Example.COM").unwrap(),
            "play.example.com"
        );
        for bad in [
            "",
            ":8080",
            "http://play.example.com",
            "play.example.com/x",
            "play.example.com:0",
            "play.example.com:99999",
            "play.example.com:x",
            "fd00::7",
            "[fd00::7",
            "[nope]:80",
            "[::1]x",
            "a b",
        ] {
            assert!(allowed_host(bad).is_err(), "{bad}");
        }
    }
}
