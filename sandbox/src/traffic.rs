//! What the provider sees of its clients' request rate: the arrival time of every `/v1/*`
//! request (and whether it was a poll: an order status or order list call), the busiest
//! second so far, and when the last 429 was served. This is where a request budget is
//! checked from the outside, as the real provider would count.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Arrival times kept for [`Traffic::arrivals`]; older ones are dropped (the busiest
/// seconds are tracked over every request regardless).
const KEPT: usize = 200_000;

pub(crate) struct Traffic {
    started: Instant,
    arrivals: VecDeque<(Duration, bool)>,
    all: Window,
    polls: Window,
    rate_limited_at: Option<Duration>,
}

/// The arrivals of the last second, and the most there ever were.
#[derive(Default)]
struct Window {
    last_second: VecDeque<Duration>,
    busiest: u64,
}

impl Window {
    fn arrived(&mut self, now: Duration) {
        while self
            .last_second
            .front()
            .is_some_and(|&t| t + Duration::from_secs(1) <= now)
        {
            self.last_second.pop_front();
        }
        self.last_second.push_back(now);
        self.busiest = self.busiest.max(self.last_second.len() as u64);
    }
}

impl Traffic {
    pub(crate) fn new() -> Self {
        Traffic {
            started: Instant::now(),
            arrivals: VecDeque::new(),
            all: Window::default(),
            polls: Window::default(),
            rate_limited_at: None,
        }
    }

    /// One request arrived now; `poll` when it asked for an order's status or the order
    /// list.
    pub(crate) fn arrived(&mut self, poll: bool) {
        let now = self.started.elapsed();
        if self.arrivals.len() == KEPT {
            self.arrivals.pop_front();
        }
        self.arrivals.push_back((now, poll));
        self.all.arrived(now);
        if poll {
            self.polls.arrived(now);
        }
    }

    /// A 429 was answered now.
    pub(crate) fn rate_limited(&mut self) {
        self.rate_limited_at = Some(self.started.elapsed());
    }

    /// Arrival times since the sandbox started, oldest first (the last 200,000); only the
    /// polls' with `polls_only`.
    pub(crate) fn arrivals(&self, polls_only: bool) -> Vec<Duration> {
        self.arrivals
            .iter()
            .filter(|(_, poll)| *poll || !polls_only)
            .map(|(t, _)| *t)
            .collect()
    }

    /// The most requests (all of them, and polls alone) that arrived within any one second
    /// (a sliding window).
    pub(crate) fn busiest_second(&self) -> (u64, u64) {
        (self.all.busiest, self.polls.busiest)
    }

    /// When the last 429 was answered, on the clock of [`Traffic::arrivals`].
    pub(crate) fn rate_limited_at(&self) -> Option<Duration> {
        self.rate_limited_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busiest_second_counts_every_request_and_polls_apart() {
        let mut t = Traffic::new();
        for i in 0..5 {
            t.arrived(i % 2 == 0);
        }
        assert_eq!(t.busiest_second(), (5, 3));
        assert_eq!(t.arrivals(false).len(), 5);
        assert_eq!(t.arrivals(true).len(), 3);
        assert!(t.rate_limited_at().is_none());
        t.rate_limited();
        assert!(t.rate_limited_at().is_some());
    }
}
