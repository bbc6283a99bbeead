//! Whether two auto-approval rules of one target can match the same request: they
//! name the same user or user group, and their hours meet at some instant. Two
//! unions of intervals meet exactly when one of them starts inside the other, so it
//! is enough to test every window start of each rule, over a year (both daylight
//! saving changes of every zone), against the other rule. Members shared by two
//! different groups cannot be known from the configuration; `jitbot explain` shows
//! which rule wins for a given person.

use chrono::{Datelike, Duration, LocalResult, NaiveDate, TimeZone, Utc};

use super::{AutoRule, Hours};

/// Whether rules `a` and `b` can both match one person at one time.
pub fn overlaps(a: &AutoRule, b: &AutoRule) -> bool {
    let shared = a.who.users.iter().any(|u| b.who.users.contains(u))
        || a.who.groups.iter().any(|g| b.who.groups.contains(g));
    if !shared {
        return false;
    }
    match (&a.hours, &b.hours) {
        (None, _) | (_, None) => true,
        (Some(x), Some(y)) => starts_inside(x, y) || starts_inside(y, x),
    }
}

/// Whether some window of `x` starts at an instant inside `y`, in the year from
/// 2027-01-01 (any year has both changes; a year's margin covers the weekdays).
fn starts_inside(x: &Hours, y: &Hours) -> bool {
    let Some(first) = NaiveDate::from_ymd_opt(2027, 1, 1) else {
        return false;
    };
    (0..372).any(|i| {
        let date = first + Duration::days(i);
        if !x.days.contains(date.weekday()) {
            return false;
        }
        let minutes = i64::from(x.from.minutes());
        let Some(wall) = date
            .and_hms_opt(0, 0, 0)
            .map(|m| m + Duration::minutes(minutes))
        else {
            return false;
        };
        // A start that daylight saving skips begins when the clock resumes.
        let start = match x.tz.from_local_datetime(&wall) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
            LocalResult::None => match x.tz.from_local_datetime(&(wall + Duration::hours(1))) {
                LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => {
                    t.with_timezone(&Utc) - Duration::hours(1)
                }
                LocalResult::None => return false,
            },
        };
        y.contains(start)
    })
}
