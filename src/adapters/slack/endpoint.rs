//! Where jitbot's Slack traffic may go. The bot token travels only to the configured
//! Web API URL, and that URL must be `https://` unless it is on this machine (a test
//! or the playground's stand-in). A `response_url` comes inside the request, so it is
//! checked before anything is posted to it: only Slack's hooks hosts over https, or
//! the loopback host the Web API URL already names, and never with the token.
//!
//! Pure URL checks: no I/O here.

use std::net::{Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// The hosts Slack's `response_url`s point at: commercial Slack and GovSlack (which
/// runs on `slack-gov.com`).
pub const SLACK_HOOK_HOSTS: [&str; 2] = ["hooks.slack.com", "hooks.slack-gov.com"];

/// Whether `host` is this machine: `localhost`, `127.0.0.0/8` or `::1`.
pub fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => Ipv4Addr::is_loopback(ip),
        Host::Ipv6(ip) => Ipv6Addr::is_loopback(ip),
    }
}

/// Why `slack.api_url` cannot be used, if it cannot: a sentence for `check-config`.
pub fn api_url_problem(api_url: &str) -> Option<String> {
    let url = match Url::parse(api_url) {
        Ok(url) => url,
        Err(e) => {
            return Some(format!(
                "`{api_url}` is not a URL ({e}); use Slack's `https://slack.com/api/`"
            ));
        }
    };
    let Some(host) = url.host() else {
        return Some(format!(
            "`{api_url}` has no host; use `https://slack.com/api/`"
        ));
    };
    match url.scheme() {
        "https" => None,
        "http" if is_loopback(&host) => None,
        "http" => Some(format!(
            "`{api_url}` is plain http to {host}, which is not this machine: every Web API \
             call carries the bot token, which would travel in clear; use https (http is \
             accepted only for localhost, 127.0.0.1 or ::1)"
        )),
        other => Some(format!(
            "`{api_url}` uses `{other}:`; Slack's Web API is `https://slack.com/api/`"
        )),
    }
}

/// The `response_url`s jitbot answers through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseUrls {
    /// The Web API URL's host when it is loopback: a stand-in for Slack on this machine
    /// (tests, the playground) hands out `response_url`s there.
    loopback_api_host: Option<String>,
}

impl ResponseUrls {
    /// The `response_url`s acceptable next to the Web API at `api_url`.
    pub fn for_api_url(api_url: &str) -> Self {
        let loopback_api_host = Url::parse(api_url)
            .ok()
            .and_then(|url| url.host().filter(is_loopback).map(|host| host.to_string()));
        ResponseUrls { loopback_api_host }
    }

    /// The URL to post to, or why it must not be posted to (a sentence for the log).
    pub fn accept(&self, raw: &str) -> Result<Url, &'static str> {
        let url = Url::parse(raw).map_err(|_| "it is not a URL")?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("it carries a user name or password, which Slack's never do");
        }
        let Some(host) = url.host() else {
            return Err("it has no host");
        };
        if self.loopback_api_host.as_deref() == Some(host.to_string().as_str())
            && matches!(url.scheme(), "http" | "https")
        {
            return Ok(url);
        }
        if url.scheme() != "https" {
            return Err("it is not https");
        }
        let on_slack = matches!(host, Host::Domain(name) if SLACK_HOOK_HOSTS.contains(&name));
        if !on_slack {
            return Err("its host is not hooks.slack.com or hooks.slack-gov.com");
        }
        if url.port().is_some() {
            return Err("it names a port other than https's");
        }
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOOK: &str =
        "https://hooks.slack.com/commands/T1DC2JH3J/397700885554/96rGlfmibIGlgcZRskXaIFfN";

    fn slack() -> ResponseUrls {
        ResponseUrls::for_api_url("https://slack.com/api/")
    }

    #[test]
    fn slacks_hooks_over_https_are_accepted() {
        for url in [
            HOOK,
            "https://hooks.slack.com/actions/T1/2/abc",
            "https://hooks.slack-gov.com/commands/T1/2/abc",
            "https://HOOKS.SLACK.COM/actions/T1/2/abc",
            "https://hooks.slack.com:443/actions/T1/2/abc",
        ] {
            assert!(slack().accept(url).is_ok(), "{url}");
        }
        assert_eq!(slack().accept(HOOK).unwrap().as_str(), HOOK);
    }

    #[test]
    fn anything_else_is_refused_with_a_reason() {
        let cases = [
            ("https://evil.example/commands/T1/2/abc", "its host is not"),
            ("http://hooks.slack.com/commands/T1/2/abc", "not https"),
            ("https://hooks.slack.com.evil.example/x", "its host is not"),
            ("https://evil.example/hooks.slack.com/x", "its host is not"),
            ("https://hooks.slack.com@evil.example/x", "user name"),
            ("https://me:pw@hooks.slack.com/x", "user name or password"),
            ("https://hooks.slack.com:8443/x", "port"),
            ("https://hooks.slack.com./x", "its host is not"),
            ("https://slack.com/api/chat.postMessage", "its host is not"),
            ("https://127.0.0.1/x", "its host is not"),
            ("http://localhost:8080/x", "not https"),
            ("ftp://hooks.slack.com/x", "not https"),
            ("file:///etc/passwd", "no host"),
            ("hooks.slack.com/commands", "not a URL"),
            ("", "not a URL"),
        ];
        for (url, why) in cases {
            let refused = slack().accept(url).expect_err(url);
            assert!(refused.contains(why), "{url}: {refused}");
        }
    }

    #[test]
    fn a_loopback_api_host_also_takes_response_urls_on_that_host_only() {
        let standin = ResponseUrls::for_api_url("http://127.0.0.1:41234/api/");
        assert!(
            standin
                .accept("http://127.0.0.1:41234/respond/alice")
                .is_ok()
        );
        assert!(standin.accept("http://127.0.0.1:9/respond/alice").is_ok());
        assert!(standin.accept(HOOK).is_ok(), "Slack's own stay accepted");
        for url in [
            "http://127.0.0.2:41234/respond/alice",
            "http://localhost:41234/respond/alice",
            "http://[::1]:41234/respond/alice",
            "http://10.0.0.1:41234/respond/alice",
            "https://evil.example/respond/alice",
        ] {
            assert!(standin.accept(url).is_err(), "{url}");
        }
        let named = ResponseUrls::for_api_url("http://localhost:3000/api/");
        assert!(named.accept("http://localhost:3001/respond/x").is_ok());
        assert!(named.accept("http://127.0.0.1:3001/respond/x").is_err());
        let v6 = ResponseUrls::for_api_url("http://[::1]:3000/api/");
        assert!(v6.accept("http://[::1]:3001/respond/x").is_ok());
    }

    #[test]
    fn a_non_loopback_api_host_grants_nothing_extra() {
        for api in [
            "https://slack.example.corp/api/",
            "http://10.0.0.5/api/",
            "not a url",
        ] {
            let urls = ResponseUrls::for_api_url(api);
            assert!(urls.accept("https://slack.example.corp/respond/x").is_err());
            assert!(urls.accept("http://10.0.0.5/respond/x").is_err());
            assert!(urls.accept(HOOK).is_ok());
        }
    }

    #[test]
    fn api_url_must_be_https_unless_loopback() {
        for ok in [
            "https://slack.com/api/",
            "https://slack-gov.com/api/",
            "http://127.0.0.1:8080/api/",
            "http://127.1.2.3/api/",
            "http://localhost:8080/api/",
            "http://[::1]:8080/api/",
        ] {
            assert_eq!(api_url_problem(ok), None, "{ok}");
        }
        let clear = api_url_problem("http://slack.example.corp/api/").unwrap();
        assert!(clear.contains("bot token"), "{clear}");
        assert!(clear.contains("in clear"), "{clear}");
        for bad in [
            "http://10.0.0.5/api/",
            "http://0.0.0.0:8080/api/",
            "http://[::]:8080/api/",
            "ftp://slack.com/api/",
            "slack.com/api",
            "",
        ] {
            assert!(api_url_problem(bad).is_some(), "{bad}");
        }
    }
}
