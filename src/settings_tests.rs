//! Unit tests of the settings: secrets never print, the layers override in order,
//! unknown keys and missing files are reported.

use super::*;

#[test]
fn secrets_never_print() {
    let vars = HashMap::from([
        ("SLACK_BOT_TOKEN".to_owned(), "xoxb-very-secret".to_owned()),
        ("REDIS_URL".to_owned(), "redis://:pw@localhost".to_owned()),
        ("SLACK_APP_TOKEN".to_owned(), "  ".to_owned()),
    ]);
    let s = Secrets::from_vars(&vars);
    let shown = format!("{s:?} {}", s.slack_bot_token.as_ref().unwrap());
    assert!(!shown.contains("xoxb"), "{shown}");
    assert!(!shown.contains("pw"), "{shown}");
    assert!(shown.contains("[redacted]"));
    assert_eq!(s.slack_bot_token.unwrap().expose(), "xoxb-very-secret");
    assert!(s.slack_app_token.is_none(), "blank counts as unset");
    assert!(s.slack_signing_secret.is_none());
}

#[test]
fn environment_overrides_defaults() {
    let env = HashMap::from([
        ("JITBOT__ACCESS__MIN_DURATION".to_owned(), "10m".to_owned()),
        (
            "JITBOT__SERVER__LISTEN".to_owned(),
            "127.0.0.1:9000".to_owned(),
        ),
        ("JITBOT_CONFIG".to_owned(), "ignored.toml".to_owned()),
    ]);
    let s = Settings::load(None, &env).unwrap();
    assert_eq!(s.access.min_duration.to_string(), "10m");
    assert_eq!(s.server.listen, "127.0.0.1:9000");
}

#[test]
fn unknown_environment_keys_are_reported() {
    let env = HashMap::from([("JITBOT__ACCESS__MIN_DURATON".to_owned(), "10m".to_owned())]);
    let err = Settings::load(None, &env).unwrap_err();
    assert_eq!(err.problems().len(), 1, "{err}");
    assert_eq!(err.problems()[0].path, "access.min_duraton");
}

#[test]
fn missing_file_is_a_clear_error() {
    let err =
        Settings::load(Some(Path::new("/nonexistent/jitbot.toml")), &HashMap::new()).unwrap_err();
    assert!(
        err.to_string()
            .contains("/nonexistent/jitbot.toml does not exist"),
        "{err}"
    );
}

#[test]
fn the_caps_and_retention_are_settings_with_documented_defaults() {
    let d = Settings::default();
    assert_eq!(d.access.max_pending_per_requester, 3);
    assert_eq!(d.access.max_requests_per_hour, 20);
    assert_eq!(d.store.retention.to_string(), "90d");
    let env = HashMap::from([
        (
            "JITBOT__ACCESS__MAX_PENDING_PER_REQUESTER".to_owned(),
            "0".to_owned(),
        ),
        (
            "JITBOT__ACCESS__MAX_REQUESTS_PER_HOUR".to_owned(),
            "5".to_owned(),
        ),
        ("JITBOT__STORE__RETENTION".to_owned(), "7d".to_owned()),
    ]);
    let (s, catalog) = Settings::load_checked(None, &env).unwrap();
    assert_eq!(catalog.limits.max_pending_per_requester, 0);
    assert_eq!(catalog.limits.max_requests_per_hour, 5);
    assert_eq!(s.store.retention, Ttl::from_hours(7 * 24));
}

#[test]
fn a_plain_http_api_url_is_refused_unless_it_is_loopback() {
    let with = |url: &str| HashMap::from([("JITBOT__SLACK__API_URL".to_owned(), url.to_owned())]);
    let err = Settings::load_checked(None, &with("http://slack.example.corp/api/")).unwrap_err();
    assert_eq!(err.problems().len(), 1, "{err}");
    assert_eq!(err.problems()[0].path, "slack.api_url");
    assert!(err.problems()[0].message.contains("in clear"), "{err}");
    for fine in [
        "https://slack.com/api/",
        "https://slack-gov.com/api/",
        "http://127.0.0.1:41234/api/",
        "http://localhost:41234/api/",
    ] {
        assert!(Settings::load_checked(None, &with(fine)).is_ok(), "{fine}");
    }
    assert!(
        Settings::load_checked(None, &HashMap::new()).is_ok(),
        "the default is https"
    );
}
