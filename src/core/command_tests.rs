use proptest::prelude::*;

use super::*;
use crate::core::catalog::fixtures::{labels, target_config};
use crate::core::catalog::{AccessConfig, PortConfig, TargetConfig};

const ID: &str = "k3x9m2q7v8d4a1b6";

fn mk_target(
    name: &str,
    namespace: &str,
    app: &str,
    port: i64,
    default: &str,
    max: &str,
) -> TargetConfig {
    TargetConfig {
        namespace: namespace.to_owned(),
        pod_selector: labels(&[("app", app)]),
        ports: vec![PortConfig {
            port,
            end_port: None,
            protocol: "TCP".to_owned(),
        }],
        default_duration: default.to_owned(),
        max_duration: max.to_owned(),
        approvers: vec!["U024BE7LH".to_owned()],
        approval_channel: "C0123456789".to_owned(),
        ..target_config(name)
    }
}

/// payments-db: default 30m, max 2h; grafana: default 1h, max 4h. Limits are the
/// defaults: 5m to 12h, reasons of at least 10 characters.
fn catalog() -> Catalog {
    let targets = [
        mk_target("payments-db", "payments", "postgres", 5432, "30m", "2h"),
        mk_target("grafana", "monitoring", "grafana", 3000, "1h", "4h"),
    ];
    Catalog::build(&AccessConfig::default(), &targets, &[]).expect("test catalog is valid")
}

fn ok(text: &str) -> Command {
    match parse(text, &catalog()) {
        Ok(command) => command,
        Err(e) => panic!("{text:?} should parse: {e}"),
    }
}

fn err(text: &str) -> CommandError {
    match parse(text, &catalog()) {
        Ok(command) => panic!("{text:?} should fail, got {command:?}"),
        Err(e) => e,
    }
}

fn assert_err(text: &str, words: &[&str], usage: &str) {
    let e = err(text);
    for word in words {
        assert!(
            e.message.contains(word),
            "{text:?}: {:?} lacks {word:?}",
            e.message
        );
    }
    assert_eq!(e.usage, usage, "{text:?}");
}

fn request(target: &str, mins: u64, from: Option<&str>, reason: &str) -> Command {
    Command::Request {
        target: target.parse().unwrap(),
        duration: Ttl::from_mins(mins),
        from: from.map(|a| a.parse().unwrap()),
        reason: Reason::new(reason, 0).unwrap(),
    }
}

fn id() -> RequestId {
    ID.parse().unwrap()
}

#[test]
fn empty_text_and_a_bare_request_open_the_form() {
    for text in ["", "   ", "\n\t", "request", " REQUEST \n"] {
        assert_eq!(ok(text), Command::Form, "{text:?}");
    }
}

#[test]
fn cancel_takes_exactly_an_id() {
    assert_eq!(ok(&format!("cancel {ID}")), Command::Cancel { id: id() });
    assert_eq!(
        ok(&format!("CANCEL {}", ID.to_uppercase())),
        Command::Cancel { id: id() }
    );
    let missing = parse("cancel", &catalog()).unwrap_err().to_string();
    assert!(missing.contains("id of the request to cancel"), "{missing}");
    assert!(missing.contains("/jit cancel <id>"), "{missing}");
    let extra = parse(&format!("cancel {ID} now please"), &catalog())
        .unwrap_err()
        .to_string();
    assert!(extra.contains("leave out `now please`"), "{extra}");
}

#[test]
fn help_gives_help() {
    for text in ["help", "HELP", "  Help me please  ", "help request"] {
        assert_eq!(ok(text), Command::Help, "{text:?}");
    }
}

#[test]
fn targets_and_list_take_no_arguments() {
    assert_eq!(ok("targets"), Command::Targets);
    assert_eq!(ok(" LIST \n"), Command::List);
    assert_err("list all", &["`list`", "no arguments"], LIST_USAGE);
    assert_err(
        "targets payments-db",
        &["`targets`", "no arguments"],
        TARGETS_USAGE,
    );
}

#[test]
fn request_with_every_part() {
    assert_eq!(
        ok("request payments-db 30m from 10.8.1.7 INC-4411 replica lag"),
        request("payments-db", 30, Some("10.8.1.7"), "INC-4411 replica lag")
    );
    assert_eq!(
        ok("REQUEST Payments-DB 1h30m FROM fd00::14 INC-4411 replica lag"),
        request("payments-db", 90, Some("fd00::14"), "INC-4411 replica lag")
    );
}

#[test]
fn request_splits_on_any_whitespace_and_keeps_the_reason_text() {
    assert_eq!(
        ok("\u{3000}request\tpayments-db\n45m  INC-4411\n\nreplica   lag "),
        request("payments-db", 45, None, "INC-4411 replica lag")
    );
}

#[test]
fn request_without_duration_uses_the_target_default() {
    assert_eq!(
        ok("request payments-db INC-4411 replica lag"),
        request("payments-db", 30, None, "INC-4411 replica lag")
    );
    assert_eq!(
        ok("request grafana from 10.8.1.7 dashboards are down"),
        request("grafana", 60, Some("10.8.1.7"), "dashboards are down")
    );
}

#[test]
fn from_without_an_address_is_part_of_the_reason() {
    assert_eq!(
        ok("request payments-db 30m from home, INC-4411 lag"),
        request("payments-db", 30, None, "from home, INC-4411 lag")
    );
    assert_eq!(
        ok("request payments-db from 10.8.1.300 INC-4411"),
        request("payments-db", 30, None, "from 10.8.1.300 INC-4411")
    );
}

#[test]
fn unknown_targets_get_a_suggestion_when_one_is_close() {
    let u = REQUEST_USAGE;
    assert_err(
        "request paymnts-db 30m INC-4411 lag",
        &[
            "`paymnts-db` is not a target",
            "Did you mean `payments-db`?",
            "/jit targets",
        ],
        u,
    );
    assert_err(
        "request pay 30m INC-4411 lag",
        &["`pay` is not a target", "`payments-db`"],
        u,
    );
    assert_err(
        "request graphana 30m INC-4411 lag",
        &["Did you mean `grafana`?"],
        u,
    );
    let e = err("request redis 30m INC-4411 lag");
    assert!(!e.message.contains("Did you mean"), "{}", e.message);
    assert!(e.message.contains("`/jit targets`"), "{}", e.message);
    let long = "x".repeat(100);
    let e = err(&format!("request {long} 30m INC-4411 lag"));
    assert!(
        e.message.contains(&format!("{}…", "x".repeat(40))),
        "{}",
        e.message
    );
    assert!(!e.message.contains(&"x".repeat(41)), "{}", e.message);
}

#[test]
fn request_needs_a_target_and_a_reason() {
    let u = REQUEST_USAGE;
    for text in [
        "request payments-db",
        "request payments-db 30m",
        "request payments-db 30m from 10.8.1.7",
        "request payments-db 30m \u{7}",
    ] {
        assert_err(text, &["Please say why", "payments-db"], u);
    }
    assert_err(
        "request payments-db 30m too short",
        &["at least 10 characters", "ticket id"],
        u,
    );
}

#[test]
fn request_durations_are_parsed_and_bounded() {
    let u = REQUEST_USAGE;
    assert_err(
        "request payments-db 90x INC-4411 lag",
        &["`90x` is not a duration", "try `30m`"],
        u,
    );
    assert_err(
        "request payments-db 3h INC-4411 lag",
        &["3h is longer than payments-db allows; pick between 5m and 2h."],
        u,
    );
    assert_err(
        "request payments-db 1m INC-4411 lag",
        &["1m is shorter", "between 5m and 2h"],
        u,
    );
    assert_err(
        "request payments-db 0s INC-4411 lag",
        &["shorter", "between 5m and 2h"],
        u,
    );
    assert_eq!(
        ok("request grafana 3h INC-4411 lag"),
        request("grafana", 180, None, "INC-4411 lag")
    );
    assert_eq!(
        ok("request payments-db 2h INC-4411 lag"),
        request("payments-db", 120, None, "INC-4411 lag")
    );
    assert_eq!(
        ok("request payments-db 5m INC-4411 lag"),
        request("payments-db", 5, None, "INC-4411 lag")
    );
}

#[test]
fn revoke_takes_an_id_and_an_optional_reason() {
    assert_eq!(
        ok(&format!("revoke {ID}")),
        Command::Revoke {
            id: id(),
            reason: None
        }
    );
    assert_eq!(
        ok(&format!("Revoke {} \t", ID.to_uppercase())),
        Command::Revoke {
            id: id(),
            reason: None
        }
    );
    assert_eq!(
        ok(&format!("revoke {ID} done, <!here>")),
        Command::Revoke {
            id: id(),
            reason: Some(Reason("done, ‹!here›".to_owned()))
        }
    );
    assert_eq!(
        ok(&format!("revoke {ID} ok")),
        Command::Revoke {
            id: id(),
            reason: Some(Reason("ok".to_owned()))
        }
    );
    assert_err("revoke", &["id", "/jit list"], REVOKE_USAGE);
    assert_err(
        "revoke 1234 done",
        &["`1234` is not a request id"],
        REVOKE_USAGE,
    );
    assert_err(
        &format!("revoke {ID} {}", "x".repeat(501)),
        &["501 characters", "500"],
        REVOKE_USAGE,
    );
}

#[test]
fn extend_takes_an_id_and_a_duration_within_the_global_cap() {
    let u = EXTEND_USAGE;
    assert_eq!(
        ok(&format!("extend {ID} 1h30m")),
        Command::Extend {
            id: id(),
            duration: Ttl::from_mins(90)
        }
    );
    // Longer than payments-db allows, but the target is not known here.
    assert_eq!(
        ok(&format!("EXTEND {} 12h", ID.to_uppercase())),
        Command::Extend {
            id: id(),
            duration: Ttl::from_hours(12)
        }
    );
    assert_err("extend", &["id", "/jit list"], u);
    assert_err("extend nope 1h", &["`nope` is not a request id"], u);
    assert_err(&format!("extend {ID}"), &["how long", "`1h`"], u);
    assert_err(
        &format!("extend {ID} soon"),
        &["`soon` is not a duration"],
        u,
    );
    assert_err(
        &format!("extend {ID} 13h"),
        &["13h is longer than jitbot allows; pick between 5m and 12h."],
        u,
    );
    assert_err(
        &format!("extend {ID} 2m"),
        &["2m is shorter", "between 5m and 12h"],
        u,
    );
    assert_err(
        &format!("extend {ID} 1h please"),
        &["only an id and a duration", "`please`"],
        u,
    );
}

#[test]
fn unknown_commands_list_every_form() {
    let e = err("foo bar");
    assert_eq!(e.message, "`foo` is not a /jit command.");
    assert_eq!(e.usage, USAGE);
    for form in [
        "request", "list", "cancel", "revoke", "extend", "targets", "help",
    ] {
        assert!(USAGE.contains(&format!("/jit {form}")), "{form}");
    }
    assert!(
        e.to_string()
            .starts_with("`foo` is not a /jit command. Usage: `/jit request")
    );
}

#[test]
fn error_messages_never_echo_mentions() {
    for text in [
        "<!channel>",
        "request <@U123> 30m INC-4411 lag",
        "request payments-db 1<!here> INC",
        "revoke <!subteam^S1>",
        "@here",
    ] {
        let e = err(text);
        assert!(!e.message.contains(['<', '>']), "{text:?}: {}", e.message);
        assert!(!e.message.contains("@here"), "{text:?}: {}", e.message);
    }
}

#[test]
fn reasons_lose_control_characters_and_extra_whitespace() {
    let r = Reason::new(
        "  INC-4411\r\n\treplica\u{0}\u{7f} lag\u{202E}  \u{1b}[31m ",
        0,
    )
    .unwrap();
    assert_eq!(r.as_str(), "INC-4411 replica lag [31m");
    assert_eq!(r.to_string(), r.as_str());
}

#[test]
fn reasons_cannot_ping_anyone() {
    let cases = [
        ("cc <@U123> please", "cc ‹@U123› please"),
        ("<!channel> down", "‹!channel› down"),
        ("<!here|here> down", "‹!here|here› down"),
        ("ask <!subteam^S1> in <#C1>", "ask ‹!subteam^S1› in ‹#C1›"),
        (
            "tell @channel and @Here and @everyone",
            "tell @\u{200B}channel and @\u{200B}Here and @\u{200B}everyone",
        ),
        ("@\u{0}here", "@\u{200B}here"),
        ("mail bob@example.com", "mail bob@example.com"),
    ];
    for (raw, want) in cases {
        assert_eq!(Reason::new(raw, 0).unwrap().as_str(), want, "{raw:?}");
    }
}

#[test]
fn reasons_are_bounded_in_length() {
    assert!(Reason::new(&"x".repeat(500), 10).is_ok());
    let e = Reason::new(&"x".repeat(501), 10).unwrap_err();
    assert!(
        e.contains("501 characters") && e.contains("limit is 500"),
        "{e}"
    );
    // Characters, not bytes.
    assert!(Reason::new(&"é".repeat(500), 10).is_ok());
    let e = Reason::new("INC-1", 10).unwrap_err();
    assert!(e.contains("at least 10 characters"), "{e}");
    // Padding does not count towards the minimum.
    assert!(Reason::new("   INC-1\n\n\n   ", 10).is_err());
    assert!(Reason::new("", 0).is_ok());
}

#[test]
fn commands_display_in_canonical_form() {
    let cases = [
        (
            "request payments-db 30m from 10.8.1.7 INC-4411 replica lag",
            "request payments-db 30m from 10.8.1.7 INC-4411 replica lag",
        ),
        (
            "request payments-db INC-4411   replica lag",
            "request payments-db 30m INC-4411 replica lag",
        ),
        (
            "request grafana 90m From fd00::1 dashboards down",
            "request grafana 1h30m from fd00::1 dashboards down",
        ),
        (
            &format!("revoke {ID} all done"),
            &format!("revoke {ID} all done"),
        ),
        (&format!("revoke {ID}"), &format!("revoke {ID}")),
        (&format!("extend {ID} 90m"), &format!("extend {ID} 1h30m")),
        ("LIST", "list"),
        ("targets", "targets"),
        ("", "request"),
        (&format!("Cancel {ID}"), &format!("cancel {ID}")),
    ];
    for (text, want) in cases {
        let command = ok(text);
        assert_eq!(command.to_string(), want);
        assert_eq!(ok(want), command);
    }
}

#[test]
fn edit_distance_counts_characters() {
    assert_eq!(edit_distance("paymnts-db", "payments-db"), 1);
    assert_eq!(edit_distance("grafana", "grafana"), 0);
    assert_eq!(edit_distance("grafan", "grafnaa"), 2);
    assert_eq!(edit_distance("é", "e"), 1);
    assert!(edit_distance(&"x".repeat(1000), "grafana") > 2);
}

/// Words that make the parser take its interesting branches.
fn vocabulary_word() -> impl Strategy<Value = String> {
    const WORDS: &[&str] = &[
        "request",
        "REVOKE",
        "extend",
        "list",
        "targets",
        "help",
        "from",
        "FROM",
        "payments-db",
        "Grafana",
        "paymnts-db",
        "pay",
        "30m",
        "1h30m",
        "0s",
        "3h",
        "13h",
        "99999999h",
        "5",
        "1",
        "10.8.1.7",
        "fd00::1",
        "::",
        "10.8.1.300",
        ID,
        "K3X9M2Q7V8D4A1B6",
        "<@U123>",
        "<!channel>",
        "@here",
        "@",
        "<",
        "é",
        "İ",
        "ß",
        "\u{202E}",
        "\u{200B}",
        "`",
        "INC-4411",
    ];
    prop_oneof![
        4 => proptest::sample::select(WORDS).prop_map(str::to_owned),
        1 => "\\PC{0,8}",
        1 => any::<String>(),
    ]
}

fn vocabulary_text() -> impl Strategy<Value = String> {
    let separator =
        proptest::sample::select(&[" ", "  ", "\n", "\t", "\u{3000}", "\u{85}", ""][..]);
    proptest::collection::vec((vocabulary_word(), separator), 0..12).prop_map(|parts| {
        parts
            .into_iter()
            .flat_map(|(w, s)| [w, s.to_owned()])
            .collect()
    })
}

/// Checks what must hold for every input, valid or not.
fn check_safe(text: &str) {
    match parse(text, &catalog()) {
        Ok(command) => {
            let reason = match &command {
                Command::Request { reason, .. } => Some(reason),
                Command::Revoke { reason, .. } => reason.as_ref(),
                _ => None,
            };
            if let Some(reason) = reason {
                let r = reason.as_str();
                assert!(r.chars().count() <= REASON_MAX_CHARS);
                assert!(
                    !r.contains(['<', '>']) && !r.chars().any(char::is_control),
                    "{r:?}"
                );
            }
        }
        Err(e) => {
            assert!(!e.message.contains(['<', '>']), "{:?}", e.message);
            assert!(!e.message.chars().any(char::is_control), "{:?}", e.message);
        }
    }
}

/// A reason a person might type, sanitised: printable words, 10 to 400 characters.
fn reason() -> impl Strategy<Value = Reason> {
    proptest::collection::vec("[^\\s\\p{C}]{1,12}", 2..40)
        .prop_map(|words| words.join(" "))
        .prop_filter_map("10 to 400 characters", |text| {
            let chars = text.chars().count();
            (10..=400)
                .contains(&chars)
                .then(|| Reason::new(&text, 10).ok())
                .flatten()
        })
}

/// Whether a reason would be read back as `from <address>`; such a request has no
/// text form (see `Display for Command`).
fn starts_like_a_source(reason: &Reason) -> bool {
    let mut words = Words::new(reason.as_str());
    take_source(&mut words).is_some()
}

fn valid_command() -> impl Strategy<Value = Command> {
    let request = proptest::sample::select(&[("payments-db", 120_u64), ("grafana", 240)][..])
        .prop_flat_map(|(name, max_mins)| {
            (
                Just(name),
                5..=max_mins,
                proptest::option::of(any::<IpAddr>()),
                reason(),
            )
        })
        .prop_filter_map("reason reads as a source", |(name, mins, from, reason)| {
            (from.is_some() || !starts_like_a_source(&reason)).then(|| Command::Request {
                target: name.parse().unwrap(),
                duration: Ttl::from_mins(mins),
                from,
                reason,
            })
        });
    let revoke = (any::<[u8; 10]>(), proptest::option::of(reason())).prop_map(|(bytes, reason)| {
        Command::Revoke {
            id: RequestId::from_random(bytes),
            reason,
        }
    });
    let extend = (any::<[u8; 10]>(), 5..=720_u64).prop_map(|(bytes, mins)| Command::Extend {
        id: RequestId::from_random(bytes),
        duration: Ttl::from_mins(mins),
    });
    prop_oneof![
        4 => request,
        2 => revoke,
        2 => extend,
        1 => Just(Command::Help),
        1 => Just(Command::Form),
        1 => (any::<[u8; 10]>()).prop_map(|bytes| Command::Cancel {
            id: RequestId::from_random(bytes),
        }),
        1 => Just(Command::List),
        1 => Just(Command::Targets),
    ]
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_text(text in any::<String>()) {
        check_safe(&text);
    }

    #[test]
    fn never_panics_on_printable_text(text in "\\PC{0,200}") {
        check_safe(&text);
    }

    #[test]
    fn never_panics_on_commands_made_of_real_words(text in vocabulary_text()) {
        check_safe(&text);
    }

    #[test]
    fn sanitising_twice_changes_nothing(text in any::<String>()) {
        let once = sanitise(&text);
        prop_assert_eq!(sanitise(&once), once);
    }

    #[test]
    fn valid_commands_round_trip_through_text(command in valid_command()) {
        prop_assert_eq!(parse(&command.to_string(), &catalog()), Ok(command));
    }
}
