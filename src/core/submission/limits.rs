//! The two caps on how much one person may ask for: how many of their requests may
//! wait for approval at once (`access.max_pending_per_requester`) and how many they
//! may make in an hour (`access.max_requests_per_hour`). Counting is the store's job,
//! since every replica shares it ([`Store::activity_of`]); deciding is here, without
//! I/O. A cap of 0 is off.
//!
//! The count is read before the new request is written, not in the same step, so two
//! submissions by one person at the same instant may both pass: a cap can be exceeded
//! by the number of submissions racing (in practice one or two, from double clicks or
//! scripts), never by a flood sent one after another.
//!
//! [`Store::activity_of`]: crate::core::ports::Store::activity_of

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

use super::Refusal;
use crate::core::catalog::Limits;
use crate::core::ids::RequestId;
use crate::core::request::{AccessRequest, State};

/// The span `access.max_requests_per_hour` counts over.
pub fn rate_window() -> TimeDelta {
    TimeDelta::hours(1)
}

/// One of a person's requests that waits for approval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    pub id: RequestId,
    pub made_at: DateTime<Utc>,
}

/// What the caps count for one person: what they have waiting and what they asked
/// for lately. The store answers it from its indexes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Activity {
    /// Their Pending requests, oldest first.
    pub pending: Vec<Waiting>,
    /// When each of their requests made since the instant asked about was made,
    /// whatever became of it (a withdrawn request still counts), oldest first.
    pub recent: Vec<DateTime<Utc>>,
}

impl Activity {
    /// The activity in one person's `requests`, given oldest first, since `since`.
    pub fn of<'a>(
        requests: impl IntoIterator<Item = &'a AccessRequest>,
        since: DateTime<Utc>,
    ) -> Self {
        let mut activity = Activity::default();
        for r in requests {
            if r.state == State::Pending {
                activity.pending.push(Waiting {
                    id: r.id.clone(),
                    made_at: r.created_at,
                });
            }
            if r.created_at >= since {
                activity.recent.push(r.created_at);
            }
        }
        activity
    }
}

/// Whether one more request from a person with `activity` fits the caps at `now`;
/// `activity.recent` must cover [`rate_window`] before `now`. The pending cap is
/// checked first: it is the one a person can do something about.
pub fn check(limits: &Limits, activity: &Activity, now: DateTime<Utc>) -> Result<(), Refusal> {
    let cap = limits.max_pending_per_requester;
    if cap > 0 && activity.pending.len() >= cap as usize {
        let oldest = activity.pending.iter().map(|w| w.made_at).min();
        return Err(Refusal::TooManyPending {
            limit: cap,
            waiting: activity.pending.iter().map(|w| w.id.clone()).collect(),
            lapses_at: oldest.unwrap_or(now) + limits.approval_timeout.as_delta(),
        });
    }
    let cap = limits.max_requests_per_hour;
    let since = now - rate_window();
    let mut recent: Vec<DateTime<Utc>> = activity
        .recent
        .iter()
        .copied()
        .filter(|t| *t >= since)
        .collect();
    recent.sort();
    if cap > 0 && recent.len() >= cap as usize {
        // One more fits once all but `cap - 1` of them have left the window.
        let leaves = recent[recent.len() - cap as usize];
        return Err(Refusal::TooManyRecent {
            limit: cap,
            made: recent.len(),
            retry_after: leaves + rate_window(),
        });
    }
    Ok(())
}

/// `HH:MM`, rounded up to the minute: "after 14:32" must not be early.
fn minute(t: DateTime<Utc>) -> String {
    let up = t.duration_round_up(TimeDelta::minutes(1)).unwrap_or(t);
    up.format("%H:%M").to_string()
}

/// The sentence for [`Refusal::TooManyPending`].
pub(super) fn too_many_pending(
    limit: u32,
    waiting: &[RequestId],
    lapses_at: DateTime<Utc>,
) -> String {
    let ids: Vec<String> = waiting.iter().map(|id| format!("`{id}`")).collect();
    format!(
        "you already have {} requests waiting for approval ({}), and jitbot holds at most {limit} open for one person; wait for a decision on one of them, or until the oldest lapses at {} UTC, then ask again",
        waiting.len(),
        ids.join(", "),
        minute(lapses_at)
    )
}

/// The sentence for [`Refusal::TooManyRecent`].
pub(super) fn too_many_recent(limit: u32, made: usize, retry_after: DateTime<Utc>) -> String {
    format!(
        "you have made {made} requests in the last hour, and jitbot accepts at most {limit} an hour from one person; try again after {} UTC",
        minute(retry_after)
    )
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::core::catalog::{AccessConfig, Catalog};

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 14, 0, 0).unwrap()
    }

    fn limits(pending: u32, per_hour: u32) -> Limits {
        let access = AccessConfig {
            max_pending_per_requester: pending,
            max_requests_per_hour: per_hour,
            ..AccessConfig::default()
        };
        Catalog::build(&access, &[], &[]).unwrap().limits
    }

    fn waiting(n: u8) -> Vec<Waiting> {
        (0..n)
            .map(|i| Waiting {
                id: RequestId::from_random([i; 10]),
                made_at: t0() + TimeDelta::minutes(i64::from(i)),
            })
            .collect()
    }

    fn made_every_minute_from(start: DateTime<Utc>, n: i64) -> Vec<DateTime<Utc>> {
        (0..n).map(|i| start + TimeDelta::minutes(i)).collect()
    }

    #[test]
    fn the_pending_cap_names_the_waiting_requests_and_when_the_oldest_lapses() {
        let activity = Activity {
            pending: waiting(3),
            recent: made_every_minute_from(t0(), 3),
        };
        let now = t0() + TimeDelta::minutes(10);
        assert_eq!(
            check(
                &limits(4, 20),
                &Activity {
                    pending: waiting(3),
                    ..Activity::default()
                },
                now
            ),
            Ok(())
        );
        let refused = check(&limits(3, 20), &activity, now).unwrap_err();
        let text = refused.to_string();
        assert!(
            text.starts_with("you already have 3 requests waiting for approval ("),
            "{text}"
        );
        for w in &activity.pending {
            assert!(text.contains(&format!("`{}`", w.id)), "{text}");
        }
        // The oldest was made at 14:00 and the approval timeout is an hour.
        assert!(text.contains("lapses at 15:00 UTC"), "{text}");
        assert!(text.contains("at most 3 open"), "{text}");
    }

    #[test]
    fn the_hourly_cap_counts_the_last_hour_and_says_when_to_try_again() {
        // 20 made a minute apart from 13:20:30; at 14:10 all are within the hour.
        let start = t0() - TimeDelta::minutes(40) + TimeDelta::seconds(30);
        let activity = Activity {
            pending: Vec::new(),
            recent: made_every_minute_from(start, 20),
        };
        let now = t0() + TimeDelta::minutes(10);
        let refused = check(&limits(3, 20), &activity, now).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "you have made 20 requests in the last hour, and jitbot accepts at most 20 an hour from one person; try again after 14:21 UTC"
        );
        assert!(matches!(refused, Refusal::TooManyRecent { made: 20, .. }));
        // At 14:20:31 the first has left the window: one more fits.
        let later = start + TimeDelta::hours(1) + TimeDelta::seconds(1);
        assert_eq!(check(&limits(3, 20), &activity, later), Ok(()));
        assert_eq!(check(&limits(3, 21), &activity, now), Ok(()));
    }

    #[test]
    fn a_race_past_the_cap_waits_for_enough_to_leave() {
        // 22 in the window (two raced past 20): the third oldest must leave first.
        let activity = Activity {
            pending: Vec::new(),
            recent: made_every_minute_from(t0(), 22),
        };
        let now = t0() + TimeDelta::minutes(30);
        match check(&limits(0, 20), &activity, now) {
            Err(Refusal::TooManyRecent {
                made, retry_after, ..
            }) => {
                assert_eq!(made, 22);
                assert_eq!(retry_after, t0() + TimeDelta::minutes(62));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn zero_turns_a_cap_off() {
        let activity = Activity {
            pending: waiting(50),
            recent: made_every_minute_from(t0(), 50),
        };
        assert_eq!(
            check(&limits(0, 0), &activity, t0() + TimeDelta::minutes(50)),
            Ok(())
        );
    }

    #[test]
    fn the_default_caps_are_three_waiting_and_twenty_an_hour() {
        let d = Catalog::build(&AccessConfig::default(), &[], &[])
            .unwrap()
            .limits;
        assert_eq!(
            (d.max_pending_per_requester, d.max_requests_per_hour),
            (3, 20)
        );
    }
}
