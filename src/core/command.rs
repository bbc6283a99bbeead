//! The `/jit` grammar: the text after `/jit` becomes a [`Command`], or a
//! [`CommandError`] that is one friendly sentence plus the correct usage.
//!
//! ```text
//! request <target> <duration> [from <address>] <reason…>
//! request              (also: empty text) opens the request form
//! breakglass <target> <duration> [from <address>] <reason…>
//! list
//! cancel <id>
//! revoke <id> [reason…]
//! extend <id> <duration>
//! targets
//! help
//! ```
//!
//! Parsing checks everything that can be checked without I/O: the target exists in the
//! catalog, the duration is inside its limits, the reason is long enough and safe to
//! echo. Who may request what, and the source of a grant, are decided later by the app.
//! Whatever a person types is echoed back only after [`sanitise`] has made it unable to
//! ping anyone, in reasons and in error messages alike.

use std::fmt;
use std::net::IpAddr;

use super::catalog::{Catalog, REASON_MAX_CHARS, Target};
use super::ids::{RequestId, TargetName, clip};
use super::ttl::Ttl;

/// Every form of the command on one line, for `help` and for unknown commands. One
/// line because [`CommandError`]'s `Display` puts the usage in an inline code span.
pub const USAGE: &str = "/jit request <target> <duration> [from <address>] <reason…> | /jit breakglass <target> <duration> <reason…> | /jit list | /jit cancel <id> | /jit revoke <id> [reason…] | /jit extend <id> <duration> | /jit targets | /jit help";
const REQUEST_USAGE: &str = "/jit request <target> <duration> [from <address>] <reason…>";
const BREAKGLASS_USAGE: &str = "/jit breakglass <target> <duration> [from <address>] <reason…>";
const REVOKE_USAGE: &str = "/jit revoke <id> [reason…]";
const CANCEL_USAGE: &str = "/jit cancel <id>";
const EXTEND_USAGE: &str = "/jit extend <id> <duration>";
const LIST_USAGE: &str = "/jit list";
const TARGETS_USAGE: &str = "/jit targets";

/// How much of a person's own text an error message repeats.
const ECHO_CHARS: usize = 40;

/// A parsed `/jit` command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Help,
    /// `/jit` alone or `/jit request` alone: the request form (a Slack modal), which
    /// asks for what the typed command would carry.
    Form,
    Targets,
    List,
    Request {
        target: TargetName,
        duration: Ttl,
        /// The address picked from a range source, if the person named one.
        from: Option<IpAddr>,
        reason: Reason,
    },
    /// Emergency access without approval, where the target offers it; approvers
    /// acknowledge it afterwards.
    BreakGlass {
        target: TargetName,
        duration: Ttl,
        from: Option<IpAddr>,
        reason: Reason,
    },
    Revoke {
        id: RequestId,
        reason: Option<Reason>,
    },
    /// Withdraws one's own pending request.
    Cancel {
        id: RequestId,
    },
    Extend {
        id: RequestId,
        duration: Ttl,
    },
}

/// Why a person wants access, made safe to store and echo: control characters
/// stripped, whitespace collapsed, Slack mention syntax neutralised, at most
/// [`super::catalog::REASON_MAX_CHARS`] characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct Reason(String);

/// Stored reasons go through the same cleaning, so a record edited by hand in the store
/// cannot smuggle a mention into a Slack message.
impl TryFrom<String> for Reason {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        Reason::new(&raw, 0)
    }
}

impl Reason {
    /// Sanitises `raw` (see [`sanitise`]) and checks that the result has at least
    /// `min_chars` and at most [`REASON_MAX_CHARS`] characters. Lengths are counted
    /// after sanitising, because the sanitised text is what gets stored and echoed.
    pub fn new(raw: &str, min_chars: usize) -> Result<Reason, String> {
        Reason::checked(sanitise(raw), min_chars)
    }

    fn checked(text: String, min_chars: usize) -> Result<Reason, String> {
        let chars = text.chars().count();
        if chars < min_chars {
            Err(format!(
                "Please give a reason of at least {min_chars} characters (an incident or ticket id helps)."
            ))
        } else if chars > REASON_MAX_CHARS {
            Err(format!(
                "That reason is {chars} characters; the limit is {REASON_MAX_CHARS}. Please shorten it."
            ))
        } else {
            Ok(Reason(text))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A command that could not be parsed: what was wrong, and how to write it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandError {
    pub message: String,
    pub usage: &'static str,
}

impl CommandError {
    /// Messages repeat the person's own text (a mistyped target, a bad duration), so
    /// they go through the same sanitising as reasons before anyone can echo them.
    fn new(message: impl AsRef<str>, usage: &'static str) -> Self {
        CommandError {
            message: sanitise(message.as_ref()),
            usage,
        }
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} Usage: `{}`", self.message, self.usage)
    }
}

impl std::error::Error for CommandError {}

/// Prints the canonical text of a command; [`parse`] reads it back to the same command.
/// The duration is always written out, so a reason starting with a digit is never
/// mistaken for one. One command has no text form: a request without `from` whose
/// reason starts with `from <address>`; [`parse`] never produces it.
impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Help => f.write_str("help"),
            Command::Form => f.write_str("request"),
            Command::Targets => f.write_str("targets"),
            Command::List => f.write_str("list"),
            Command::Request {
                target,
                duration,
                from,
                reason,
            } => {
                write!(f, "request {target} {duration}")?;
                if let Some(address) = from {
                    write!(f, " from {address}")?;
                }
                write!(f, " {reason}")
            }
            Command::BreakGlass {
                target,
                duration,
                from,
                reason,
            } => {
                write!(f, "breakglass {target} {duration}")?;
                if let Some(address) = from {
                    write!(f, " from {address}")?;
                }
                write!(f, " {reason}")
            }
            Command::Revoke { id, reason } => {
                write!(f, "revoke {id}")?;
                match reason {
                    Some(reason) => write!(f, " {reason}"),
                    None => Ok(()),
                }
            }
            Command::Cancel { id } => write!(f, "cancel {id}"),
            Command::Extend { id, duration } => write!(f, "extend {id} {duration}"),
        }
    }
}

/// Parses the text after `/jit`, checking targets and durations against the catalog.
pub fn parse(text: &str, catalog: &Catalog) -> Result<Command, CommandError> {
    let mut words = Words::new(text);
    let Some(first) = words.next() else {
        return Ok(Command::Form);
    };
    match first.to_lowercase().as_str() {
        // Anything after `help` is ignored: people type `help request` and mean well.
        "help" => Ok(Command::Help),
        "targets" => no_arguments(words, "targets", TARGETS_USAGE, Command::Targets),
        "list" => no_arguments(words, "list", LIST_USAGE, Command::List),
        "request" if words.rest().is_empty() => Ok(Command::Form),
        "request" => parse_request(words, catalog),
        "breakglass" | "break-glass" => parse_break_glass(words, catalog),
        "revoke" => parse_revoke(words),
        "cancel" => parse_cancel(words),
        "extend" => parse_extend(words, catalog),
        _ => Err(CommandError::new(
            format!("`{}` is not a /jit command.", clip(first, ECHO_CHARS)),
            USAGE,
        )),
    }
}

/// Makes user text safe to store and echo in Slack:
/// - control characters go (whitespace ones become a space), and so do the Unicode
///   bidirectional overrides, which can make an echoed reason read differently from
///   what was typed;
/// - runs of whitespace become one space, and the ends are trimmed;
/// - `<` and `>` become `‹` and `›`, which breaks every Slack control sequence
///   (`<@U123>`, `<!channel>`, `<!here>`, `<!subteam^S1>`, `<#C1>`);
/// - a zero-width space after `@` breaks bare `@channel`, `@here` and `@everyone`.
///
/// Sanitising twice gives the same text as sanitising once, so a stored reason
/// survives a round trip through [`Command`]'s `Display` and [`parse`].
pub fn sanitise(raw: &str) -> String {
    let mut spaced = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            c if c.is_whitespace() => spaced.push(' '),
            c if c.is_control() || is_bidi_control(c) => {}
            '<' => spaced.push('‹'),
            '>' => spaced.push('›'),
            c => spaced.push(c),
        }
    }
    let collapsed = spaced
        .split(' ')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    // After the characters are stripped, so `@\u{0}here` cannot slip through.
    defuse_broadcasts(&collapsed)
}

/// Embeddings, overrides and isolates (the "Trojan Source" characters).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Words that notify a whole channel or workspace when they follow `@`.
const BROADCASTS: [&str; 3] = ["channel", "here", "everyone"];

fn defuse_broadcasts(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        out.push(c);
        if c == '@' {
            // `@` is one byte, so `i + 1` is a character boundary.
            let after = text.get(i + 1..).unwrap_or("");
            let broadcast = BROADCASTS.iter().any(|word| {
                after
                    .get(..word.len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(word))
            });
            if broadcast {
                out.push('\u{200B}');
            }
        }
    }
    out
}

/// The words of a command, read left to right, keeping the untouched rest of the text
/// so that a reason is taken as typed rather than re-joined from words.
#[derive(Clone, Copy)]
struct Words<'a> {
    /// What is left to read, with no leading whitespace.
    rest: &'a str,
}

impl<'a> Words<'a> {
    fn new(text: &'a str) -> Self {
        Words {
            rest: text.trim_start(),
        }
    }

    fn peek(&self) -> Option<&'a str> {
        self.rest
            .split(char::is_whitespace)
            .next()
            .filter(|w| !w.is_empty())
    }

    /// Everything not read yet, trimmed.
    fn rest(&self) -> &'a str {
        self.rest.trim_end()
    }
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let word = self.peek()?;
        // `word` is a prefix of `rest`, so its length is a character boundary.
        self.rest = self.rest.get(word.len()..).unwrap_or("").trim_start();
        Some(word)
    }
}

fn no_arguments(
    words: Words<'_>,
    name: &str,
    usage: &'static str,
    command: Command,
) -> Result<Command, CommandError> {
    if words.rest().is_empty() {
        Ok(command)
    } else {
        Err(CommandError::new(
            format!("`{name}` takes no arguments; type just `/jit {name}`."),
            usage,
        ))
    }
}

fn parse_request(mut words: Words<'_>, catalog: &Catalog) -> Result<Command, CommandError> {
    let err = |message: String| CommandError::new(message, REQUEST_USAGE);
    let Some(name) = words.next() else {
        return Err(err(
            "Please name the target you need; `/jit targets` lists them.".to_owned(),
        ));
    };
    let target = find_target(name, catalog).map_err(err)?;
    // A duration always starts with a digit; anything else begins the reason, so
    // `/jit request grafana INC-4411 dashboards down` asks for the default duration.
    let duration = match words.peek() {
        Some(word) if word.starts_with(|c: char| c.is_ascii_digit()) => {
            words.next();
            request_duration(word, target, catalog).map_err(err)?
        }
        _ => target.default_duration,
    };
    let from = take_source(&mut words);
    let reason = request_reason(words.rest(), target, catalog).map_err(err)?;
    Ok(Command::Request {
        target: target.name.clone(),
        duration,
        from,
        reason,
    })
}

/// `breakglass <target> <duration> [from <address>] <reason…>`: like a request, but
/// the duration must be written out (an emergency grant is never a default).
fn parse_break_glass(mut words: Words<'_>, catalog: &Catalog) -> Result<Command, CommandError> {
    let err = |message: String| CommandError::new(message, BREAKGLASS_USAGE);
    let Some(name) = words.next() else {
        return Err(err(
            "Please name the target you need; `/jit targets` lists them.".to_owned(),
        ));
    };
    let target = find_target(name, catalog).map_err(err)?;
    let duration = match words.next() {
        Some(word) if word.starts_with(|c: char| c.is_ascii_digit()) => {
            request_duration(word, target, catalog).map_err(err)?
        }
        _ => {
            return Err(err(format!(
                "Please say how long you need {} for, e.g. `30m`.",
                target.name
            )));
        }
    };
    let from = take_source(&mut words);
    let reason = request_reason(words.rest(), target, catalog).map_err(err)?;
    Ok(Command::BreakGlass {
        target: target.name.clone(),
        duration,
        from,
        reason,
    })
}

/// The target a request names (in any case), or the sentence `/jit request` gives
/// for a name that is not one (with the nearest name, if one is near). The request
/// form reads its picker through this and the three below, so a form says what the
/// command would.
pub fn request_target<'c>(name: &str, catalog: &'c Catalog) -> Result<&'c Target, String> {
    find_target(name, catalog)
}

/// A request's duration as typed (`30m`, `1h30m`), inside the catalog's minimum and
/// `target`'s maximum.
pub fn request_duration(word: &str, target: &Target, catalog: &Catalog) -> Result<Ttl, String> {
    let duration = word.parse::<Ttl>()?;
    check_duration(
        duration,
        catalog.limits.min_duration,
        target.max_duration,
        target.name.as_str(),
    )
}

/// A request's reason as typed: sanitised, and then not empty and within the
/// catalog's length bounds.
pub fn request_reason(raw: &str, target: &Target, catalog: &Catalog) -> Result<Reason, String> {
    let reason = sanitise(raw);
    if reason.is_empty() {
        return Err(format!(
            "Please say why you need access to {} (an incident or ticket id helps).",
            target.name
        ));
    }
    Reason::checked(reason, catalog.limits.reason_min_chars)
}

/// The address a person with a range source picked, as typed after `from`.
pub fn request_address(raw: &str) -> Result<IpAddr, String> {
    let raw = raw.trim();
    raw.parse().map_err(|_| {
        format!(
            "`{}` is not an IP address; write one like 10.8.0.14.",
            clip(&sanitise(raw), ECHO_CHARS)
        )
    })
}

/// Reads `from <address>` if it is there. `from` followed by anything that is not an
/// address is ordinary English ("from home, the VPN is down"), so it stays in the reason.
fn take_source(words: &mut Words<'_>) -> Option<IpAddr> {
    let mut ahead = *words;
    if !ahead.next()?.eq_ignore_ascii_case("from") {
        return None;
    }
    let address = ahead.next()?.parse().ok()?;
    *words = ahead;
    Some(address)
}

fn find_target<'c>(word: &str, catalog: &'c Catalog) -> Result<&'c Target, String> {
    let name = word.to_lowercase();
    if let Some(target) = catalog.target(&name) {
        return Ok(target);
    }
    let shown = clip(word, ECHO_CHARS);
    Err(match closest_target(&name, catalog) {
        Some(guess) => {
            format!("`{shown}` is not a target. Did you mean `{guess}`? See `/jit targets`.")
        }
        None => {
            format!("`{shown}` is not a target. See `/jit targets` for the ones you can request.")
        }
    })
}

/// The catalog name nearest to a mistyped one: within two edits, or a prefix either
/// way (`pay` for `payments-db`). Ties go to the earlier target, so it is deterministic.
fn closest_target<'c>(name: &str, catalog: &'c Catalog) -> Option<&'c str> {
    catalog
        .targets()
        .iter()
        .map(|t| t.name.as_str())
        .filter_map(|candidate| {
            let distance = edit_distance(name, candidate);
            let prefix = candidate.starts_with(name) || name.starts_with(candidate);
            (distance <= 2 || prefix).then_some((distance, candidate))
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance in characters. Strings whose lengths differ by more than two
/// are at least that far apart, so they are not compared letter by letter: a long
/// paste costs nothing.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a_len, b_len) = (a.chars().count(), b.chars().count());
    if a_len.abs_diff(b_len) > 2 {
        return a_len.abs_diff(b_len);
    }
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = Vec::with_capacity(b.len() + 1);
        current.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// Checks `duration` against `[min, max]`; `whose` names the limit in the message.
/// Checks a duration against the allowed range, naming whose limit it broke.
pub fn check_duration(duration: Ttl, min: Ttl, max: Ttl, whose: &str) -> Result<Ttl, String> {
    if duration < min {
        Err(format!(
            "{duration} is shorter than the {min} minimum; pick between {min} and {max}."
        ))
    } else if duration > max {
        Err(format!(
            "{duration} is longer than {whose} allows; pick between {min} and {max}."
        ))
    } else {
        Ok(duration)
    }
}

/// Reads a request id; ids are shown in lowercase, but a person may have typed them
/// from a screenshot in capitals.
fn take_id(words: &mut Words<'_>, verb: &str) -> Result<RequestId, String> {
    let word = words.next().ok_or_else(|| {
        format!("Please give the id of the request to {verb}; `/jit list` shows yours.")
    })?;
    word.to_lowercase().parse()
}

fn parse_revoke(mut words: Words<'_>) -> Result<Command, CommandError> {
    let err = |message: String| CommandError::new(message, REVOKE_USAGE);
    let id = take_id(&mut words, "revoke").map_err(err)?;
    let reason = sanitise(words.rest());
    let reason = if reason.is_empty() {
        None
    } else {
        Some(Reason::checked(reason, 0).map_err(err)?)
    };
    Ok(Command::Revoke { id, reason })
}

fn parse_cancel(mut words: Words<'_>) -> Result<Command, CommandError> {
    let err = |message: String| CommandError::new(message, CANCEL_USAGE);
    let id = take_id(&mut words, "cancel").map_err(err)?;
    if !words.rest().is_empty() {
        return Err(err(format!(
            "`cancel` takes only the request's id; leave out `{}`.",
            clip(words.rest(), ECHO_CHARS)
        )));
    }
    Ok(Command::Cancel { id })
}

fn parse_extend(mut words: Words<'_>, catalog: &Catalog) -> Result<Command, CommandError> {
    let err = |message: String| CommandError::new(message, EXTEND_USAGE);
    let id = take_id(&mut words, "extend").map_err(err)?;
    let Some(word) = words.next() else {
        return Err(err(
            "Please say how long to extend it by, e.g. `1h`.".to_owned()
        ));
    };
    let duration = word.parse::<Ttl>().map_err(err)?;
    // Only the global cap is known here; the app checks the target's own maximum
    // once it has looked the request up.
    let limits = &catalog.limits;
    let duration = check_duration(duration, limits.min_duration, limits.max_duration, "jitbot")
        .map_err(err)?;
    if !words.rest().is_empty() {
        return Err(err(format!(
            "`extend` takes only an id and a duration; leave out `{}`.",
            clip(words.rest(), ECHO_CHARS)
        )));
    }
    Ok(Command::Extend { id, duration })
}

#[cfg(test)]
#[path = "command_tests.rs"]
mod tests;
