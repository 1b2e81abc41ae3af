//! Finding one order in the user's order list (`GET /v1/orders/{skip}`), without I/O: the
//! executor feeds pages to a [`Search`], which says whether to read on and what the search
//! established.
//!
//! What a lookup relies on (providers.md §1.2; the provider documents no idempotency key and
//! no search by merchant reference):
//! - the list is the user's orders of both kinds, newest first, 10 a page, with `skip`
//!   counting rows; orders are never deleted from it. A row created while we page pushes
//!   the others one row further, so a row can be read twice but never skipped;
//! - before the provider order id is known, our order is recognised by the merchant
//!   reference we send in `metaData.merchantRef`; after, by that id;
//! - `createdAt` on a row, when present, is the provider's clock. Our order cannot have been
//!   created at the provider before rampd created the order, so rows older than that (less
//!   [`CLOCK_SKEW`]) end the search.
//!
//! The search is complete, and may say [`Outcome::NotFound`], only when it read back to
//! such an old row or to the end of the list and ruled out every row on the way. An
//! unreadable row, or a row of our kind with no merchant reference (it might be ours), makes
//! it [`Outcome::Inconclusive`]; so does a list longer than [`MAX_PAGES`].

use chrono::{DateTime, TimeDelta, Utc};

use rampd_domain::order::LookupProgress;

use super::{ListedOrder, OrderKind, OrderPage, RecentOrder};

/// Rows per page of the provider's order list.
pub const PAGE_SIZE: u32 = 10;

/// The most pages one lookup reads (2,000 orders created since ours). Past that it is
/// inconclusive: the order is retried later and flagged, never created again.
pub const MAX_PAGES: u32 = 200;

/// How far the provider's clock may be behind ours before a row's `createdAt` could mislead
/// the search into stopping early.
pub const CLOCK_SKEW: TimeDelta = TimeDelta::minutes(15);

/// What identifies our order in the list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sought {
    /// The provider order id, once a create reply or an earlier lookup gave it.
    ProviderId(String),
    /// Our merchant reference, before any id is known.
    MerchantRef(String),
}

/// What a finished search established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Found(RecentOrder),
    NotFound,
    /// Why the search could not decide, for the timeline (no PII).
    Inconclusive(String),
}

/// What to do after a page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    Page { skip: u32 },
    Done(Outcome),
}

/// One lookup, page by page.
#[derive(Clone, Debug)]
pub struct Search {
    kind: OrderKind,
    sought: Sought,
    horizon: DateTime<Utc>,
    pages: u32,
    /// The first reason the rows read so far cannot rule the order out.
    doubt: Option<String>,
}

impl Search {
    /// A search for an order of `kind` that cannot have reached the provider before
    /// `not_before` (by our clock). Read page [`Search::skip`] first.
    pub fn new(kind: OrderKind, sought: Sought, not_before: DateTime<Utc>) -> Self {
        Search {
            kind,
            sought,
            horizon: not_before - CLOCK_SKEW,
            pages: 0,
            doubt: None,
        }
    }

    /// Go on with a search an earlier lookup left unfinished ([`Search::progress`]). An
    /// unreadable cursor starts over, which is always safe.
    pub fn resume(mut self, progress: Option<&LookupProgress>) -> Self {
        if let Some(p) = progress
            && let Ok(pages) = p.cursor.parse::<u32>()
        {
            self.pages = pages;
            self.doubt = p.doubt.clone();
        }
        self
    }

    /// Where to read next: the `skip` of the next page.
    pub fn skip(&self) -> u32 {
        self.pages * PAGE_SIZE
    }

    /// How far the search got, for a later lookup to go on from. The list only grows at its
    /// head, so the rows before this point stay before it.
    pub fn progress(&self) -> LookupProgress {
        LookupProgress {
            cursor: self.pages.to_string(),
            doubt: self.doubt.clone(),
        }
    }

    /// Take the next page (the one at the `skip` this search asked for last).
    pub fn page(&mut self, page: &OrderPage) -> Next {
        self.pages += 1;
        let n = self.pages;
        for row in &page.rows {
            let order = match row {
                ListedOrder::Readable(order) => order,
                ListedOrder::Unreadable => {
                    self.doubt
                        .get_or_insert_with(|| format!("an unreadable row on page {n}"));
                    continue;
                }
            };
            if self.is_ours(order) {
                return Next::Done(Outcome::Found(order.clone()));
            }
            if order.created_at.is_some_and(|t| t < self.horizon) {
                // Newest first: this row and every later one predate our order.
                return Next::Done(self.conclude());
            }
            if self.might_be_ours(order) {
                self.doubt.get_or_insert_with(|| {
                    format!("a row without merchant reference on page {n} may be ours")
                });
            }
        }
        if page.rows.len() < PAGE_SIZE as usize {
            return Next::Done(self.conclude()); // the list ended
        }
        if n >= MAX_PAGES {
            return Next::Done(Outcome::Inconclusive(format!(
                "read {n} pages without reaching the order's creation time or the list's end"
            )));
        }
        Next::Page { skip: self.skip() }
    }

    fn is_ours(&self, order: &RecentOrder) -> bool {
        order.kind == self.kind
            && match &self.sought {
                Sought::ProviderId(id) => &order.order_id == id,
                Sought::MerchantRef(r) => order.merchant_ref.as_deref() == Some(r.as_str()),
            }
    }

    fn might_be_ours(&self, order: &RecentOrder) -> bool {
        matches!(self.sought, Sought::MerchantRef(_))
            && order.kind == self.kind
            && order.merchant_ref.is_none()
    }

    fn conclude(&self) -> Outcome {
        match &self.doubt {
            Some(why) => Outcome::Inconclusive(why.clone()),
            None => Outcome::NotFound,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap() + TimeDelta::minutes(min)
    }

    fn row(id: &str, merchant_ref: Option<&str>, created: Option<i64>) -> ListedOrder {
        ListedOrder::Readable(RecentOrder {
            order_id: id.into(),
            merchant_ref: merchant_ref.map(str::to_string),
            status: "fiatPending".into(),
            utr: None,
            kind: OrderKind::Onramp,
            tx_hash: None,
            created_at: created.map(t),
        })
    }

    /// `n` rows of other merchants' orders, all created at minute `at`.
    fn others(n: usize, at: i64) -> Vec<ListedOrder> {
        (0..n)
            .map(|i| row(&format!("other-{i}"), Some(&format!("x-{i}")), Some(at)))
            .collect()
    }

    fn by_ref() -> Search {
        Search::new(OrderKind::Onramp, Sought::MerchantRef("ours".into()), t(0))
    }

    /// The page of `rows` the provider answers for `skip`.
    fn page_at(rows: &[ListedOrder], skip: usize) -> OrderPage {
        OrderPage {
            rows: rows
                .iter()
                .skip(skip)
                .take(PAGE_SIZE as usize)
                .cloned()
                .collect(),
        }
    }

    /// Feed `rows` in pages as the provider would; returns the outcome and pages read.
    fn run(mut search: Search, rows: &[ListedOrder]) -> (Outcome, u32) {
        let mut skip = search.skip() as usize;
        loop {
            let page = page_at(rows, skip);
            match search.page(&page) {
                Next::Page { skip: s } => skip = s as usize,
                Next::Done(o) => return (o, search.pages),
            }
        }
    }

    #[test]
    fn finds_an_order_deeper_than_any_fixed_page_count() {
        for newer in [0, 9, 10, 29, 30, 31, 95, 500] {
            let mut rows = others(newer, 5);
            rows.push(row("p-1", Some("ours"), Some(1)));
            rows.extend(others(40, -600));
            let (outcome, pages) = run(by_ref(), &rows);
            let Outcome::Found(o) = outcome else {
                panic!("{newer}: {outcome:?}")
            };
            assert_eq!(o.order_id, "p-1");
            assert_eq!(pages, newer as u32 / PAGE_SIZE + 1);
        }
    }

    #[test]
    fn not_found_only_after_reading_past_the_order_s_creation() {
        // 35 newer rows, then rows older than the horizon: four pages, then a verdict.
        let mut rows = others(35, 5);
        rows.extend(others(30, -600));
        assert_eq!(run(by_ref(), &rows), (Outcome::NotFound, 4));
        // Rows inside the clock-skew margin are read too.
        let mut rows = others(12, -10);
        rows.extend(others(5, -16));
        assert_eq!(run(by_ref(), &rows), (Outcome::NotFound, 2));
    }

    #[test]
    fn not_found_at_the_end_of_the_list() {
        assert_eq!(run(by_ref(), &[]), (Outcome::NotFound, 1));
        assert_eq!(run(by_ref(), &others(10, 5)), (Outcome::NotFound, 2));
        // Undated rows cannot end the search early; the list's end does.
        let undated: Vec<_> = (0..23)
            .map(|i| row(&format!("u-{i}"), Some("x"), None))
            .collect();
        assert_eq!(run(by_ref(), &undated), (Outcome::NotFound, 3));
    }

    #[test]
    fn an_unreadable_row_in_range_makes_it_inconclusive() {
        let mut rows = others(14, 5);
        rows.insert(12, ListedOrder::Unreadable);
        let (outcome, _) = run(by_ref(), &rows);
        assert_eq!(
            outcome,
            Outcome::Inconclusive("an unreadable row on page 2".into())
        );
        // … but not once the search has passed the horizon.
        let mut rows = others(3, 5);
        rows.extend(others(1, -600));
        rows.push(ListedOrder::Unreadable);
        assert_eq!(run(by_ref(), &rows).0, Outcome::NotFound);
        // And the order itself, found after an unreadable row, is found.
        let rows = vec![ListedOrder::Unreadable, row("p-1", Some("ours"), Some(1))];
        assert!(matches!(run(by_ref(), &rows).0, Outcome::Found(_)));
    }

    #[test]
    fn a_row_without_merchant_reference_may_be_ours() {
        let rows = vec![row("anon", None, Some(2))];
        assert!(matches!(run(by_ref(), &rows).0, Outcome::Inconclusive(_)));
        // The other kind cannot be ours.
        let mut off = row("anon", None, Some(2));
        if let ListedOrder::Readable(o) = &mut off {
            o.kind = OrderKind::Offramp;
        }
        assert_eq!(run(by_ref(), &[off]).0, Outcome::NotFound);
        // By provider id, a missing merchant reference rules nothing in or out.
        let by_id = Search::new(OrderKind::Onramp, Sought::ProviderId("p-9".into()), t(0));
        assert_eq!(run(by_id, &rows).0, Outcome::NotFound);
    }

    #[test]
    fn by_provider_id_and_kind() {
        let mut rows = others(25, 5);
        rows.push(row("p-9", None, Some(1)));
        let by_id = Search::new(OrderKind::Onramp, Sought::ProviderId("p-9".into()), t(0));
        assert!(matches!(run(by_id, &rows).0, Outcome::Found(o) if o.order_id == "p-9"));
        let off = Search::new(OrderKind::Offramp, Sought::ProviderId("p-9".into()), t(0));
        assert_eq!(run(off, &rows).0, Outcome::NotFound);
    }

    #[test]
    fn a_resumed_search_goes_on_and_keeps_its_doubt() {
        let mut rows = others(35, 5);
        rows.push(row("p-1", Some("ours"), Some(1)));
        // Read two pages, then stop (as if page 3 failed), then resume.
        let mut first = by_ref();
        let page = |skip: usize| page_at(&rows, skip);
        assert_eq!(first.page(&page(0)), Next::Page { skip: 10 });
        assert_eq!(first.page(&page(10)), Next::Page { skip: 20 });
        let saved = first.progress();
        assert_eq!(saved.cursor, "2");
        let resumed = by_ref().resume(Some(&saved));
        assert_eq!(resumed.skip(), 20);
        let (outcome, pages) = {
            let mut s = resumed;
            let mut skip = s.skip() as usize;
            loop {
                match s.page(&page(skip)) {
                    Next::Page { skip: n } => skip = n as usize,
                    Next::Done(o) => break (o, s.pages),
                }
            }
        };
        assert!(matches!(outcome, Outcome::Found(o) if o.order_id == "p-1"));
        assert_eq!(pages, 4);
        // A doubt found before the stop survives it: no "not found" past it.
        let mut doubtful = by_ref();
        doubtful.page(&OrderPage {
            rows: std::iter::once(ListedOrder::Unreadable)
                .chain(others(9, 5))
                .collect(),
        });
        let resumed = by_ref().resume(Some(&doubtful.progress()));
        assert!(matches!(
            run(resumed, &others(3, 5)).0,
            Outcome::Inconclusive(_)
        ));
        // A cursor it cannot read starts over.
        let odd = LookupProgress {
            cursor: "x".into(),
            doubt: None,
        };
        assert_eq!(by_ref().resume(Some(&odd)).skip(), 0);
    }

    #[test]
    fn a_list_longer_than_the_cap_is_inconclusive() {
        let rows = others((MAX_PAGES * PAGE_SIZE + 5) as usize, 5);
        let (outcome, pages) = run(by_ref(), &rows);
        assert!(matches!(outcome, Outcome::Inconclusive(_)), "{outcome:?}");
        assert_eq!(pages, MAX_PAGES);
    }
}
