//! The `Retry-After` header of an HTTP answer (RFC 9110 §10.2.3), as a delay from `now`.
//!
//! The value is delta-seconds or an HTTP-date. Dates are read by the `httpdate` crate, which
//! takes all three forms a recipient must accept (RFC 9110 §5.6.7): IMF-fixdate
//! (`Sun, 06 Nov 1994 08:49:37 GMT`), the obsolete RFC 850 form
//! (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6 08:49:37 1994`).

use std::time::Duration;

use chrono::{DateTime, Utc};

/// The delay a `Retry-After` value asks for, counted from `now`. A date in the past means
/// "now"; anything unreadable (a negative or signed number, a fraction, a date with a zone
/// other than GMT, a weekday that does not match the date) is ignored (`None`).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at: DateTime<Utc> = httpdate::parse_http_date(v).ok()?.into();
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("1994-11-06T08:48:37Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn delta_seconds() {
        assert_eq!(parse_retry_after("120", now()), Some(S(120)));
        assert_eq!(parse_retry_after(" 30 ", now()), Some(S(30)));
        assert_eq!(parse_retry_after("0", now()), Some(Duration::ZERO));
        for bad in ["", "-5", "+5", "1.5", "soon", "99999999999999999999999"] {
            assert_eq!(parse_retry_after(bad, now()), None, "{bad:?}");
        }
    }

    #[test]
    fn all_three_http_date_forms() {
        for date in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse_retry_after(date, now()), Some(S(60)), "{date}");
        }
    }

    #[test]
    fn a_past_date_means_now() {
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now()),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn dates_outside_the_http_grammar_are_ignored() {
        for bad in [
            // A zone other than GMT (RFC 2822 allows it, HTTP does not).
            "Sun, 06 Nov 1994 08:49:37 +0000",
            // The weekday does not match the date.
            "Mon, 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37",
            "1994-11-06T08:49:37Z",
        ] {
            assert_eq!(parse_retry_after(bad, now()), None, "{bad}");
        }
    }
}
