//! Which requests the playground's page answers: a `Host` it knows (loopback names,
//! its own address, `--allow-host` names) on any listen address, so no web page
//! elsewhere can reach it by DNS rebinding; and, on a POST that names its page
//! (`Origin`), that page must be one of those names.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The names the page answers to (`Host`) and the pages it takes actions from
/// (`Origin`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Allowed {
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
    pub(crate) fn for_listener(addr: SocketAddr, extra: &[String]) -> Allowed {
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

pub(super) async fn only_allowed(allowed: &Allowed, req: Request, next: Next) -> Response {
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
