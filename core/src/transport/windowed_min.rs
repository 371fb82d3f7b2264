//! The smallest value seen over a sliding time horizon, in amortised constant time: plain logic with time passed
//! in. Used for a path's base delay, the delay with no queue in it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The smallest of the values noted over the last `horizon`, kept as a monotonic queue: each entry is smaller
/// than every later one, so the front is the smallest, and at most `capacity` entries are kept (the oldest go
/// first).
#[derive(Debug)]
pub(crate) struct WindowedMin<T> {
    horizon: Duration,
    capacity: usize,
    entries: VecDeque<(Instant, T)>,
}

impl<T: PartialOrd + Copy> WindowedMin<T> {
    /// Remembers values for `horizon`, at most `capacity` of them (at least one).
    pub(crate) fn new(horizon: Duration, capacity: usize) -> Self {
        WindowedMin {
            horizon,
            capacity: capacity.max(1),
            entries: VecDeque::new(),
        }
    }

    /// Notes `value` seen at `now` and returns the smallest over the horizon, `value` included.
    pub(crate) fn push(&mut self, now: Instant, value: T) -> T {
        while self.entries.back().is_some_and(|&(_, later)| later >= value) {
            self.entries.pop_back();
        }
        self.entries.push_back((now, value));
        while self.entries.len() > self.capacity
            || self
                .entries
                .front()
                .is_some_and(|&(at, _)| now.saturating_duration_since(at) > self.horizon)
        {
            self.entries.pop_front();
        }
        self.min().unwrap_or(value)
    }

    /// The smallest value over the horizon as of the last [`WindowedMin::push`]; `None` before the first.
    pub(crate) fn min(&self) -> Option<T> {
        self.entries.front().map(|&(_, value)| value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smallest_of_the_horizon_and_nothing_older() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut min = WindowedMin::new(10 * s, 1_024);
        assert_eq!(min.min(), None);
        assert_eq!(min.push(t0, 20), 20);
        assert_eq!(min.push(t0 + s, 400), 20);
        assert_eq!(min.push(t0 + 2 * s, 30), 20);
        // Eleven seconds on, 20 is forgotten; 30 (two seconds later) is still within the horizon.
        assert_eq!(min.push(t0 + 11 * s, 500), 30);
        assert_eq!(min.push(t0 + 13 * s, 500), 500);
    }

    #[test]
    fn the_oldest_entries_go_first_beyond_the_capacity() {
        let t0 = Instant::now();
        let mut min = WindowedMin::new(Duration::from_secs(10), 2);
        // Rising values are all kept (each could become the smallest); the third pushes the first out.
        min.push(t0, 1);
        min.push(t0, 2);
        assert_eq!(min.push(t0, 3), 2);
    }
}
