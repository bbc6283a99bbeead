use super::*;

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
}

fn annotated(value: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(EXPIRES_AT_ANNOTATION.to_owned(), value.to_owned())])
}

const CAP: Ttl = Ttl::from_hours(12);

#[test]
fn a_readable_expiry_within_the_cap_is_the_deadline() {
    let at = t(1800);
    let a = annotated(&at.to_rfc3339());
    assert_eq!(
        ending(Some(&a), t(0), CAP),
        Ending::Expired { expires_at: at }
    );
    assert_eq!(ending(Some(&a), t(0), CAP).due(t(0)), at);
    // One already past is due at once, as what it is: an expiry.
    assert_eq!(ending(Some(&a), t(7200), CAP).due(t(7200)), at);
}

#[test]
fn a_missing_unreadable_or_impossible_expiry_is_due_now() {
    let now = t(0);
    let beyond = now + CAP.as_delta() + CLOCK_SKEW_ALLOWANCE + TimeDelta::seconds(1);
    for (annotations, want) in [
        (None, Invalid::Missing),
        (Some(BTreeMap::new()), Invalid::Missing),
        (
            Some(annotated("tomorrow")),
            Invalid::Unreadable("tomorrow".to_owned()),
        ),
        (
            Some(annotated(&beyond.to_rfc3339())),
            Invalid::BeyondCap {
                expires_at: beyond,
                cap: CAP,
            },
        ),
    ] {
        let got = ending(annotations.as_ref(), now, CAP);
        assert_eq!(got, Ending::Invalid(want));
        assert_eq!(got.due(now), now);
    }
}

#[test]
fn the_cap_allows_for_a_little_clock_skew_and_no_more() {
    let now = t(0);
    let edge = now + CAP.as_delta() + CLOCK_SKEW_ALLOWANCE;
    let a = annotated(&edge.to_rfc3339());
    assert!(matches!(ending(Some(&a), now, CAP), Ending::Expired { .. }));
}

#[test]
fn the_reasons_read_as_plain_words() {
    let beyond = Invalid::BeyondCap {
        expires_at: t(86_400),
        cap: CAP,
    };
    assert_eq!(
        beyond.to_string(),
        "its jitbot.dev/expires-at 2027-01-16T08:00:00Z is more than access.max_duration (12h) away"
    );
    assert_eq!(
        Invalid::Missing.to_string(),
        "it has no jitbot.dev/expires-at annotation"
    );
}

#[test]
fn the_queue_hands_out_due_entries_earliest_first() {
    let mut q = DeadlineQueue::default();
    q.set("b", t(20), 2);
    q.set("a", t(10), 1);
    q.set("c", t(30), 3);
    assert_eq!(q.next_due(), Some(t(10)));
    assert_eq!(q.pop_due(t(5), 10), vec![]);
    assert_eq!(q.pop_due(t(20), 10), vec![("a", 1), ("b", 2)]);
    assert_eq!(q.len(), 1);
    assert_eq!(q.next_due(), Some(t(30)));
}

#[test]
fn setting_a_key_again_moves_its_deadline() {
    let mut q = DeadlineQueue::default();
    q.set("grant", t(10), "v1");
    // Extended: the new annotation moves the deadline; the old one is gone.
    q.set("grant", t(100), "v2");
    assert_eq!(q.len(), 1);
    assert_eq!(q.pop_due(t(50), 10), vec![]);
    assert_eq!(q.get(&"grant"), Some(&"v2"));
    assert_eq!(q.pop_due(t(100), 10), vec![("grant", "v2")]);
    assert!(q.is_empty());
    assert_eq!(q.next_due(), None);
}

#[test]
fn pop_due_takes_at_most_its_limit() {
    let mut q = DeadlineQueue::default();
    for i in 0..5 {
        q.set(i, t(i64::from(i)), ());
    }
    assert_eq!(q.pop_due(t(100), 2).len(), 2);
    assert_eq!(q.next_due(), Some(t(2)));
    q.retain(|k| *k != 2);
    assert_eq!(q.next_due(), Some(t(3)));
    assert_eq!(q.remove(&3), Some(()));
    assert_eq!(q.remove(&3), None);
    assert_eq!(q.len(), 1);
}
