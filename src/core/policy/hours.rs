//! Weekly windows in a time zone, for auto-approval rules: "Mon-Fri 09:00-18:00
//! Europe/Berlin". A window is read on the wall clock of its zone, so it follows
//! daylight saving: 09:00 Berlin is 08:00 UTC in winter and 07:00 UTC in summer. A
//! window whose end is not after its start runs past midnight, and belongs to the
//! day it starts on ("Fri 22:00-06:00" covers Saturday morning, not Friday's).

use std::fmt;

use chrono::{DateTime, Datelike, Timelike, Utc, Weekday};
use chrono_tz::Tz;

const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// A set of weekdays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Days(u8);

impl Days {
    pub const ALL: Days = Days(0x7f);

    pub fn contains(self, day: Weekday) -> bool {
        self.0 & (1 << day.num_days_from_monday()) != 0
    }

    /// Parses `Mon-Fri`, `Sat,Sun`, `Mon-Wed,Fri` or `Fri-Mon` (a range may wrap
    /// round the weekend). Names are English three-letter abbreviations, any case.
    pub fn parse(text: &str) -> Result<Days, String> {
        let day = |s: &str| {
            DAY_NAMES
                .iter()
                .position(|d| d.eq_ignore_ascii_case(s.trim()))
                .ok_or_else(|| {
                    format!("`{}` is not a day; write Mon, Tue, Wed, Thu, Fri, Sat or Sun, and ranges like `Mon-Fri`", s.trim())
                })
        };
        let mut bits = 0u8;
        for part in text.split(',') {
            if part.trim().is_empty() {
                return Err(format!(
                    "`{text}` has an empty part; write e.g. `Mon-Fri` or `Sat,Sun`"
                ));
            }
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (day(a)?, day(b)?);
                    let mut d = a;
                    loop {
                        bits |= 1 << d;
                        if d == b {
                            break;
                        }
                        d = (d + 1) % 7;
                    }
                }
                None => bits |= 1 << day(part)?,
            }
        }
        Ok(Days(bits))
    }
}

impl fmt::Display for Days {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Days::ALL {
            return f.write_str("every day");
        }
        let names: Vec<&str> = (0..7)
            .filter(|d| self.0 & (1 << d) != 0)
            .map(|d| DAY_NAMES[d])
            .collect();
        f.write_str(&names.join(","))
    }
}

/// A wall-clock time, in minutes after midnight; `24:00` (1440) ends a day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LocalTime(u16);

impl LocalTime {
    pub const MIDNIGHT: LocalTime = LocalTime(0);
    pub const END_OF_DAY: LocalTime = LocalTime(1440);

    pub fn minutes(self) -> u16 {
        self.0
    }

    /// Parses `HH:MM` (24-hour clock); `24:00` only where `end_of_day` allows it.
    pub fn parse(text: &str, end_of_day: bool) -> Result<LocalTime, String> {
        let bad = || {
            format!(
                "`{text}` is not a time; write it as HH:MM on a 24-hour clock, e.g. `09:00` or `18:30`"
            )
        };
        let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
        if h.len() != 2 || m.len() != 2 {
            return Err(bad());
        }
        let h: u16 = h.parse().map_err(|_| bad())?;
        let m: u16 = m.parse().map_err(|_| bad())?;
        match (h, m) {
            (24, 0) if end_of_day => Ok(LocalTime::END_OF_DAY),
            (24, 0) => Err(format!(
                "`{text}` ends a day; a window starts at 00:00 at the earliest"
            )),
            (0..=23, 0..=59) => Ok(LocalTime(h * 60 + m)),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

/// A checked weekly window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hours {
    pub days: Days,
    pub from: LocalTime,
    pub to: LocalTime,
    pub tz: Tz,
}

impl Hours {
    /// Whether the instant `at` falls inside the window, on its zone's wall clock.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.tz);
        let day = local.weekday();
        let minute = LocalTime((local.hour() * 60 + local.minute()) as u16);
        if self.from < self.to {
            self.days.contains(day) && self.from <= minute && minute < self.to
        } else {
            // Past midnight: the evening of a listed day, or the morning after one.
            (self.days.contains(day) && minute >= self.from)
                || (self.days.contains(day.pred()) && minute < self.to)
        }
    }

    /// `at` on this window's wall clock, as explanations show it: `Sat 10:15 Europe/Berlin`.
    pub fn local(&self, at: DateTime<Utc>) -> String {
        at.with_timezone(&self.tz)
            .format(&format!("%a %H:%M {}", self.tz.name()))
            .to_string()
    }
}

impl fmt::Display for Hours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}-{} {}",
            self.days,
            self.from,
            self.to,
            self.tz.name()
        )
    }
}

/// Parses an IANA time zone name (`Europe/Berlin`, `UTC`).
pub fn parse_tz(text: &str) -> Result<Tz, String> {
    text.trim().parse::<Tz>().map_err(|_| {
        format!("`{text}` is not a time zone; use an IANA name such as `Europe/Berlin`, `America/New_York` or `UTC`")
    })
}
