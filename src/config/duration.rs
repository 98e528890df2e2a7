//! Durations written in the config file: `48h`, `30m`, `2d`, `90s` and combinations such as
//! `1d12h` or `1h 30m`. A tiny parser of our own (whole seconds are all a sync schedule needs).

use std::time::Duration;

/// Seconds per unit letter, largest first (the order [`format_duration`] writes them in).
const UNITS: [(char, u64); 4] = [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];

/// A duration string that is not `<number><unit>…` with units d, h, m, s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason}")]
pub struct DurationError {
    pub input: String,
    pub reason: String,
}

fn unit_seconds(unit: char) -> Option<u64> {
    UNITS.iter().find(|(c, _)| *c == unit).map(|(_, secs)| *secs)
}

/// Parses `48h`, `2d`, `1d12h`, `1h 30m`, `0s`. Every number needs a unit.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let fail = |reason: String| DurationError { input: text.to_owned(), reason };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(fail("empty (write e.g. \"48h\" or \"1d12h\")".into()));
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(fail(format!("expected a number at {rest:?}")));
        }
        let number: u64 = rest[..digits].parse().map_err(|_| fail("number too large".into()))?;
        rest = &rest[digits..];
        let unit =
            rest.chars().next().ok_or_else(|| fail(format!("missing unit after {number} (use d, h, m or s)")))?;
        let secs = unit_seconds(unit).ok_or_else(|| fail(format!("unknown unit {unit:?} (use d, h, m or s)")))?;
        total = number
            .checked_mul(secs)
            .and_then(|part| total.checked_add(part))
            .ok_or_else(|| fail("too large".into()))?;
        rest = rest[unit.len_utf8()..].trim_start();
    }
    Ok(Duration::from_secs(total))
}

/// The normalized spelling of a duration (`2d`, `1d12h`, `0s`); sub-second parts are dropped.
pub fn format_duration(duration: Duration) -> String {
    let mut secs = duration.as_secs();
    if secs == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in UNITS {
        let count = secs / size;
        if count > 0 {
            out.push_str(&format!("{count}{unit}"));
            secs %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_valid_durations() {
        let cases: &[(&str, u64)] = &[
            ("48h", 48 * 3600),
            ("30m", 1800),
            ("2d", 2 * 86_400),
            ("90s", 90),
            ("0s", 0),
            ("1d12h", 86_400 + 12 * 3600),
            ("1h 30m", 5400),
            (" 5m ", 300),
            ("1h1h", 7200),
        ];
        for (text, secs) in cases {
            assert_eq!(parse_duration(text), Ok(Duration::from_secs(*secs)), "{text}");
        }
    }

    #[test]
    fn rejects_invalid_durations() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("   ", "empty"),
            ("48", "missing unit"),
            ("48x", "unknown unit 'x'"),
            ("h", "expected a number"),
            ("1d12", "missing unit"),
            ("-1h", "expected a number"),
            ("1.5h", "unknown unit '.'"),
            ("99999999999999999999s", "number too large"),
            ("9999999999999999d", "too large"),
            ("1h é", "expected a number"),
        ];
        for (text, reason) in cases {
            let err = parse_duration(text).expect_err(text);
            assert!(err.reason.contains(reason), "{text}: {err}");
            assert!(!err.to_string().contains('\n'), "{text}: {err}");
        }
    }

    #[test]
    fn formats_normalized() {
        let cases: &[(u64, &str)] =
            &[(0, "0s"), (90, "1m30s"), (48 * 3600, "2d"), (86_400 + 12 * 3600, "1d12h"), (3601, "1h1s")];
        for (secs, text) in cases {
            assert_eq!(format_duration(Duration::from_secs(*secs)), *text);
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in "\\PC*") {
            let _ = parse_duration(&text);
        }

        #[test]
        fn format_round_trips(secs in any::<u64>()) {
            let duration = Duration::from_secs(secs);
            prop_assert_eq!(parse_duration(&format_duration(duration)), Ok(duration));
        }
    }
}
