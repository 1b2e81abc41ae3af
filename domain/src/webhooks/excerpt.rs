//! A bounded, redacted excerpt of a receiver's response, kept with each attempt for the
//! operator. A receiver may echo what it was sent or put anything in an error page, so the
//! excerpt is cut short, stripped of control characters, and has e-mail addresses and long
//! digit runs (phone, account and card numbers) masked before it is stored. It is stored
//! only; it is never logged.

/// Longest excerpt kept, in characters.
pub const EXCERPT_CHARS: usize = 256;

pub fn response_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let cut: String = text
        .chars()
        .take(EXCERPT_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    cut.split(' ')
        .map(redact_word)
        .collect::<Vec<_>>()
        .join(" ")
}

fn redact_word(w: &str) -> String {
    if w.contains('@') && w.contains('.') {
        return "[redacted]".into();
    }
    let mut out = String::with_capacity(w.len());
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        if digits.len() >= 6 {
            out.push_str("[redacted]");
        } else {
            out.push_str(digits);
        }
        digits.clear();
    };
    for c in w.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut digits, &mut out);
            out.push(c);
        }
    }
    flush(&mut digits, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_contacts_and_numbers_and_bounds_length() {
        let e = response_excerpt(b"error: user asha@example.com phone 9876543210 code 502\n");
        assert_eq!(e, "error: user [redacted] phone [redacted] code 502 ");
        assert_eq!(
            response_excerpt(b"acct=50100012345678;"),
            "acct=[redacted];"
        );
        let long = "x".repeat(10_000);
        assert_eq!(
            response_excerpt(long.as_bytes()).chars().count(),
            EXCERPT_CHARS
        );
        assert_eq!(response_excerpt(&[0xff, b'o', b'k']), "\u{fffd}ok");
    }
}
