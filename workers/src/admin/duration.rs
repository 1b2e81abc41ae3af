//! Durations as operators type and read them, by the `humantime` crate: `90s`, `30m`, `2h`,
//! `1d`, combined (`1h30m`, `1h 30m`) or fractional (`1.5h`).

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a duration ({1}); use e.g. 90s, 30m, 2h, 1d or 1h30m")]
pub struct BadDuration(String, String);

/// Parse `30m`-style durations. A bare number is refused: its unit would be a guess.
pub fn parse(text: &str) -> Result<Duration, BadDuration> {
    humantime::parse_duration(text.trim()).map_err(|e| BadDuration(text.to_string(), e.to_string()))
}

/// A duration as an operator reads it, to the second: `1h 1m 40s`.
pub fn format(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_operator_durations() {
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse(" 1h 30m "), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        for bad in ["", "30", "m", "3x", "-5m", "99999999999999999999d"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let e = parse("30").unwrap_err().to_string();
        assert!(e.contains("\"30\"") && e.contains("e.g. 90s"), "{e}");
    }

    #[test]
    fn formats_to_the_second() {
        assert_eq!(format(Duration::from_secs(0)), "0s");
        assert_eq!(format(Duration::from_secs(42)), "42s");
        assert_eq!(format(Duration::from_millis(6_100_900)), "1h 41m 40s");
        assert_eq!(format(Duration::from_secs(90_061)), "1day 1h 1m 1s");
    }
}
