//! Tables the operator commands print, by the `comfy-table` crate: columns sized to their
//! widest cell, two spaces apart, no borders, no wrapping (the same on a terminal and in a
//! pipe, so `grep`/`awk` see one row per line), trailing spaces trimmed.

use comfy_table::{ContentArrangement, Table, presets};

/// A borderless table with these column titles.
pub fn new<const N: usize>(header: [&str; N]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header);
    for c in t.column_iter_mut() {
        c.set_padding((0, 2));
    }
    t
}

/// The table's lines, each ending in a newline.
pub fn render(t: &Table) -> String {
    let mut s = t.trim_fmt();
    s.push('\n');
    s
}

/// A framed two-column table of labels and values (the demo's summary).
pub fn framed(rows: impl IntoIterator<Item = (String, String)>) -> String {
    let mut t = Table::new();
    t.load_style(presets::UTF8_FULL_CONDENSED.with_solid_inner_borders())
        .set_content_arrangement(ContentArrangement::Disabled);
    for (k, v) in rows {
        t.add_row([k, v]);
    }
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_fit_their_widest_cell() {
        let mut t = new(["ID", "STATE", "TRACE"]);
        t.add_row(["o-1", "awaiting_payment", "-"]);
        t.add_row(["order-22", "completed", "4bf92f35"]);
        assert_eq!(
            render(&t),
            "ID        STATE             TRACE\n\
             o-1       awaiting_payment  -\n\
             order-22  completed         4bf92f35\n"
        );
        // No rows: the titles alone.
        assert_eq!(render(&new(["A", "B"])), "A  B\n");
    }

    #[test]
    fn a_long_value_widens_its_column_and_is_never_wrapped() {
        let long = "x".repeat(300);
        let mut t = new(["K", "V"]);
        t.add_row(["k", long.as_str()]);
        let out = render(&t);
        assert_eq!(out.lines().count(), 2);
        assert!(out.lines().nth(1).unwrap().ends_with(&long));
    }

    #[test]
    fn framed_keeps_the_frame_around_long_values() {
        let out = framed([
            ("orders".to_string(), "12".to_string()),
            ("nats".to_string(), format!("nats://{}", "h".repeat(40))),
        ]);
        let widths: Vec<usize> = out.lines().map(|l| l.chars().count()).collect();
        assert!(widths.windows(2).all(|w| w[0] == w[1]), "{out}");
        assert!(out.starts_with('┌') && out.ends_with('┘'), "{out}");
    }
}
