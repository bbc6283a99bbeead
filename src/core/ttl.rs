//! `Ttl`: a length of time as people write it (`15m`, `2h`, `1h30m`, `45s`), used for
//! access durations in `/jit` commands and for every duration in the configuration.

use std::fmt;
use std::str::FromStr;

use chrono::TimeDelta;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ids::clip;

/// A whole number of seconds, written and read as `1h30m`-style text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ttl(u64);

/// The largest duration jitbot will represent (a year), so sums never overflow.
const MAX_SECS: u64 = 366 * 24 * 3600;

impl Ttl {
    pub const fn from_secs(secs: u64) -> Self {
        Ttl(secs)
    }
    pub const fn from_mins(mins: u64) -> Self {
        Ttl(mins * 60)
    }
    pub const fn from_hours(hours: u64) -> Self {
        Ttl(hours * 3600)
    }
    pub const fn as_secs(self) -> u64 {
        self.0
    }
    pub fn as_delta(self) -> TimeDelta {
        // MAX_SECS keeps this well inside i64.
        TimeDelta::seconds(self.0 as i64)
    }
    pub fn as_std(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.0)
    }
}

impl fmt::Display for Ttl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        let mut rest = self.0;
        for (unit, secs) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
            if rest >= secs {
                write!(f, "{}{unit}", rest / secs)?;
                rest %= secs;
            }
        }
        Ok(())
    }
}

impl FromStr for Ttl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{}` is not a duration; try `30m`, `2h` or `1h30m`",
                clip(s, 30)
            )
        };
        let text = s.trim();
        if text.is_empty() {
            return Err(bad());
        }
        let mut total: u64 = 0;
        let mut digits = String::new();
        // Units must come in decreasing order and at most once each: `1h30m`, not `30m1h`.
        let mut last_unit = u64::MAX;
        for c in text.chars() {
            if c.is_ascii_digit() {
                if digits.len() >= 6 {
                    return Err(bad());
                }
                digits.push(c);
                continue;
            }
            let unit = match c.to_ascii_lowercase() {
                'd' => 86_400,
                'h' => 3600,
                'm' => 60,
                's' => 1,
                _ => return Err(bad()),
            };
            if digits.is_empty() || unit >= last_unit {
                return Err(bad());
            }
            last_unit = unit;
            let n: u64 = digits.parse().map_err(|_| bad())?;
            digits.clear();
            total = total.saturating_add(n.saturating_mul(unit));
        }
        if !digits.is_empty() || total > MAX_SECS {
            return Err(bad());
        }
        Ok(Ttl(total))
    }
}

impl Serialize for Ttl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ttl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!("15m".parse::<Ttl>(), Ok(Ttl::from_mins(15)));
        assert_eq!("2h".parse::<Ttl>(), Ok(Ttl::from_hours(2)));
        assert_eq!("1h30m".parse::<Ttl>(), Ok(Ttl::from_mins(90)));
        assert_eq!("45s".parse::<Ttl>(), Ok(Ttl::from_secs(45)));
        assert_eq!("1d".parse::<Ttl>(), Ok(Ttl::from_hours(24)));
        assert_eq!("2H".parse::<Ttl>(), Ok(Ttl::from_hours(2)));
    }

    #[test]
    fn refuses_everything_else_with_a_hint() {
        for bad in [
            "", "30", "m", "1h1h", "30m1h", "1.5h", "-5m", "90x", "1h 30m", "9999999h",
        ] {
            let err = bad.parse::<Ttl>().unwrap_err();
            assert!(err.contains("try `30m`"), "{bad}: {err}");
        }
    }

    #[test]
    fn displays_in_canonical_form() {
        assert_eq!(Ttl::from_mins(90).to_string(), "1h30m");
        assert_eq!(Ttl::from_mins(120).to_string(), "2h");
        assert_eq!(Ttl::from_secs(3725).to_string(), "1h2m5s");
        assert_eq!(Ttl::from_secs(0).to_string(), "0s");
        assert_eq!("90m".parse::<Ttl>().unwrap().to_string(), "1h30m");
    }
}
