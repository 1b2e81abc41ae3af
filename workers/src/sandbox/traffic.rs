//! What the provider sees of its clients' request rate: the arrival time of every `/v1/*`
//! request, the busiest second so far, and when the last 429 was served. This is where a
//! request budget is checked from the outside, as the real provider would count.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Arrival times kept for [`Traffic::arrivals`]; older ones are dropped (the busiest
/// second is tracked over every request regardless).
const KEPT: usize = 200_000;

pub(crate) struct Traffic {
    started: Instant,
    arrivals: VecDeque<Duration>,
    /// The arrivals of the last second, for the sliding maximum.
    window: VecDeque<Duration>,
    busiest_second: u64,
    rate_limited_at: Option<Duration>,
}

impl Traffic {
    pub(crate) fn new() -> Self {
        Traffic {
            started: Instant::now(),
            arrivals: VecDeque::new(),
            window: VecDeque::new(),
            busiest_second: 0,
            rate_limited_at: None,
        }
    }

    /// One request arrived now.
    pub(crate) fn arrived(&mut self) {
        let now = self.started.elapsed();
        if self.arrivals.len() == KEPT {
            self.arrivals.pop_front();
        }
        self.arrivals.push_back(now);
        while self
            .window
            .front()
            .is_some_and(|&t| t + Duration::from_secs(1) <= now)
        {
            self.window.pop_front();
        }
        self.window.push_back(now);
        self.busiest_second = self.busiest_second.max(self.window.len() as u64);
    }

    /// A 429 was answered now.
    pub(crate) fn rate_limited(&mut self) {
        self.rate_limited_at = Some(self.started.elapsed());
    }

    /// Arrival times since the sandbox started, oldest first (the last 200,000).
    pub(crate) fn arrivals(&self) -> Vec<Duration> {
        self.arrivals.iter().copied().collect()
    }

    /// The most requests that arrived within any one second (a sliding window).
    pub(crate) fn busiest_second(&self) -> u64 {
        self.busiest_second
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
    fn the_busiest_second_slides() {
        let mut t = Traffic::new();
        for _ in 0..5 {
            t.arrived();
        }
        assert_eq!(t.busiest_second(), 5);
        assert_eq!(t.arrivals().len(), 5);
        assert!(t.rate_limited_at().is_none());
        t.rate_limited();
        assert!(t.rate_limited_at().is_some());
    }
}
