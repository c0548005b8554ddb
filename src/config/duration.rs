//! Human-readable durations ("250ms", "5s", "2m", "1h30m").
//!
//! Parsed by hand rather than with `humantime` because the accepted grammar
//! is tiny, and owning it lets the error say exactly which units exist.
//! A bare number is rejected on purpose: `timeout = 30` is ambiguous
//! (seconds? milliseconds?) and a wrong guess would silently misconfigure
//! failure detection.

use std::fmt;
use std::time::Duration;

/// Why a duration string was rejected; rendered after the offending key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("invalid duration {0:?}: empty")]
    Empty(String),
    #[error("invalid duration {0:?}: missing unit after {1} (use ms, s, m, h or d, e.g. \"5s\")")]
    MissingUnit(String, u64),
    #[error("invalid duration {0:?}: unknown unit {1:?} (use ms, s, m, h or d)")]
    UnknownUnit(String, String),
    #[error("invalid duration {0:?}: expected a number before the unit")]
    MissingNumber(String),
    #[error("invalid duration {0:?}: too large")]
    Overflow(String),
}

/// Parses a sequence of `<integer><unit>` groups, optionally separated by
/// whitespace; the groups are summed, so "1m30s" is 90 seconds.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let original = text.to_owned();
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(DurationError::Empty(original));
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(DurationError::MissingNumber(original));
        }
        let value: u64 = rest[..digits]
            .parse()
            .map_err(|_| DurationError::Overflow(original.clone()))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c.is_whitespace())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = rest[unit_len..].trim_start();
        let part = match unit {
            "" => return Err(DurationError::MissingUnit(original, value)),
            "ms" => Some(Duration::from_millis(value)),
            "s" => Some(Duration::from_secs(value)),
            "m" => value.checked_mul(60).map(Duration::from_secs),
            "h" => value.checked_mul(3600).map(Duration::from_secs),
            "d" => value.checked_mul(86_400).map(Duration::from_secs),
            other => return Err(DurationError::UnknownUnit(original, other.to_owned())),
        };
        total = part
            .and_then(|p| total.checked_add(p))
            .ok_or_else(|| DurationError::Overflow(original.clone()))?;
    }
    Ok(total)
}

/// Renders a duration in the same grammar `parse_duration` accepts, so
/// summaries and logs show values the way an operator would write them.
pub struct HumanDuration(pub Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.is_zero() {
            return f.write_str("0s");
        }
        if d.subsec_nanos() != 0 || d.as_secs() == 0 {
            return write!(f, "{}ms", d.as_millis());
        }
        let secs = d.as_secs();
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
            if secs.is_multiple_of(size) {
                return write!(f, "{}{unit}", secs / size);
            }
        }
        write!(f, "{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn sums_compound_durations() {
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration(" 1h 2m 3s "), Ok(Duration::from_secs(3723)));
        assert_eq!(parse_duration("1s500ms"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn rejects_bare_numbers_and_unknown_units() {
        assert!(matches!(
            parse_duration("30"),
            Err(DurationError::MissingUnit(_, 30))
        ));
        assert!(matches!(
            parse_duration("5x"),
            Err(DurationError::UnknownUnit(_, u)) if u == "x"
        ));
        assert!(matches!(parse_duration(""), Err(DurationError::Empty(_))));
        assert!(matches!(
            parse_duration("s"),
            Err(DurationError::MissingNumber(_))
        ));
        assert!(matches!(
            parse_duration("1.5s"),
            Err(DurationError::UnknownUnit(_, u)) if u == "."
        ));
        assert!(matches!(
            parse_duration("-1s"),
            Err(DurationError::MissingNumber(_))
        ));
    }

    #[test]
    fn rejects_overflow() {
        assert!(matches!(
            parse_duration("99999999999999999999s"),
            Err(DurationError::Overflow(_))
        ));
        assert!(matches!(
            parse_duration("18446744073709551615d"),
            Err(DurationError::Overflow(_))
        ));
    }

    #[test]
    fn error_message_names_the_units() {
        let err = parse_duration("5x").unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid duration \"5x\": unknown unit \"x\" (use ms, s, m, h or d)"
        );
    }

    #[test]
    fn display_round_trips() {
        for text in ["250ms", "5s", "2m", "1h", "1d", "90s", "1500ms", "0s"] {
            let d = parse_duration(text).unwrap();
            let shown = HumanDuration(d).to_string();
            assert_eq!(parse_duration(&shown), Ok(d), "{text} -> {shown}");
        }
        assert_eq!(HumanDuration(Duration::from_secs(90)).to_string(), "90s");
        assert_eq!(HumanDuration(Duration::from_secs(120)).to_string(), "2m");
    }
}
