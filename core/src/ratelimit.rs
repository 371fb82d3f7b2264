//! Rate limiting as plain logic with time passed in: token buckets and failure windows.
//!
//! Used by the signaling server (messages per second, join attempts per address) and by the host (control
//! messages per viewer).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A token bucket: up to `capacity` events at once, refilled at `per_second`.
///
/// ```
/// use peerdesk::ratelimit::TokenBucket;
/// use std::time::{Duration, Instant};
/// let start = Instant::now();
/// let mut bucket = TokenBucket::new(2.0, 1.0, start);
/// assert!(bucket.try_take(start) && bucket.try_take(start));
/// assert!(!bucket.try_take(start));
/// assert!(bucket.try_take(start + Duration::from_secs(1)));
/// ```
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(capacity: f64, per_second: f64, now: Instant) -> Self {
        TokenBucket {
            capacity,
            per_second,
            tokens: capacity,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.last = self.last.max(now);
    }

    /// When the next token will be there: `now` if one is there already.
    pub fn available_at(&mut self, now: Instant) -> Instant {
        self.refill(now);
        if self.tokens >= 1.0 || self.per_second <= 0.0 {
            return now;
        }
        now + Duration::from_secs_f64((1.0 - self.tokens) / self.per_second)
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Counts failures in a sliding window and says when a limit is reached.
#[derive(Debug, Clone)]
pub struct FailureWindow {
    window: Duration,
    limit: usize,
    failures: VecDeque<Instant>,
}

impl FailureWindow {
    /// At most `limit` failures per `window`.
    pub fn new(limit: usize, window: Duration) -> Self {
        FailureWindow {
            window,
            limit,
            failures: VecDeque::new(),
        }
    }

    fn expire(&mut self, now: Instant) {
        while self
            .failures
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= self.window)
        {
            self.failures.pop_front();
        }
    }

    /// Whether another attempt is allowed now.
    pub fn allows(&mut self, now: Instant) -> bool {
        self.expire(now);
        self.failures.len() < self.limit
    }

    /// Failures remembered in the window ending at `now`.
    pub fn failures_in_window(&mut self, now: Instant) -> usize {
        self.expire(now);
        self.failures.len()
    }

    /// Records a failure. At most `limit` failures are kept (the oldest go first): that does not change what
    /// [`allows`](Self::allows) says, and memory stays bounded whatever a client does.
    pub fn record_failure(&mut self, now: Instant) {
        self.expire(now);
        self.failures.push_back(now);
        if self.failures.len() > self.limit {
            self.failures.pop_front();
        }
    }

    /// Whether no failure is remembered (the entry can be dropped).
    pub fn is_idle(&mut self, now: Instant) -> bool {
        self.expire(now);
        self.failures.is_empty()
    }
}

/// Exponential backoff after failed authentications: after the `n`-th failure in a row, the next attempt waits
/// `first × 2^(n−1)`, at most `max`. A success starts over.
///
/// The wait is measured from the failure, so an attacker who keeps trying during it gains nothing; failures
/// that happen while a wait runs (attempts that were already under way) double it again.
///
/// ```
/// use peerdesk::ratelimit::FailureBackoff;
/// use std::time::{Duration, Instant};
/// let start = Instant::now();
/// let mut backoff = FailureBackoff::new(Duration::from_secs(1), Duration::from_secs(3600));
/// assert_eq!(backoff.retry_after(start), None);
/// assert_eq!(backoff.record_failure(start), Duration::from_secs(1));
/// assert_eq!(backoff.retry_after(start), Some(Duration::from_secs(1)));
/// let later = start + Duration::from_secs(1);
/// assert_eq!(backoff.retry_after(later), None);
/// assert_eq!(backoff.record_failure(later), Duration::from_secs(2));
/// ```
#[derive(Debug, Clone)]
pub struct FailureBackoff {
    first: Duration,
    max: Duration,
    failures: u32,
    blocked_until: Option<Instant>,
}

impl FailureBackoff {
    /// No failures yet. `first` is the wait after one failure (0 is taken as 1 ms), `max` the longest wait.
    pub fn new(first: Duration, max: Duration) -> Self {
        FailureBackoff {
            first: first.max(Duration::from_millis(1)),
            max,
            failures: 0,
            blocked_until: None,
        }
    }

    /// How long until the next attempt is allowed; `None` when it is allowed now.
    pub fn retry_after(&self, now: Instant) -> Option<Duration> {
        self.blocked_until.filter(|until| *until > now).map(|until| until - now)
    }

    /// Records a failure at `now` and returns the wait it imposes.
    pub fn record_failure(&mut self, now: Instant) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let doublings = self.failures.saturating_sub(1).min(30);
        let wait = self.first.saturating_mul(1 << doublings).min(self.max);
        self.blocked_until = Some(now + wait);
        wait
    }

    /// Records a success: the next failure waits `first` again.
    pub fn record_success(&mut self) {
        self.failures = 0;
        self.blocked_until = None;
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Whether the entry holds nothing worth keeping at `now` (no wait running and `forget_after` passed since
    /// the last one ended), so that a table of them can be pruned.
    pub fn is_stale(&self, now: Instant, forget_after: Duration) -> bool {
        match self.blocked_until {
            None => true,
            Some(until) => now >= until + forget_after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_per_failure_up_to_the_cap_and_a_success_resets_it() {
        let t0 = Instant::now();
        let mut backoff = FailureBackoff::new(Duration::from_secs(1), Duration::from_secs(10));
        let waits: Vec<u64> = (0..6)
            .map(|i| backoff.record_failure(t0 + Duration::from_secs(100 * i)).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 10, 10]);
        let last = t0 + Duration::from_secs(500);
        assert_eq!(
            backoff.retry_after(last + Duration::from_secs(4)),
            Some(Duration::from_secs(6))
        );
        assert!(!backoff.is_stale(last + Duration::from_secs(11), Duration::from_secs(60)));
        assert!(backoff.is_stale(last + Duration::from_secs(70), Duration::from_secs(60)));
        backoff.record_success();
        assert_eq!(backoff.retry_after(last), None);
        assert_eq!(backoff.record_failure(last), Duration::from_secs(1));
    }

    #[test]
    fn bucket_says_when_the_next_token_comes() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(2.0, 10.0, t0);
        assert_eq!(b.available_at(t0), t0);
        assert!(b.try_take(t0) && b.try_take(t0));
        let at = b.available_at(t0);
        assert!(
            at > t0 + Duration::from_millis(99) && at <= t0 + Duration::from_millis(101),
            "{:?}",
            at - t0
        );
        assert!(!b.try_take(at - Duration::from_millis(5)));
        assert!(b.try_take(at + Duration::from_millis(1)));
    }

    #[test]
    fn bucket_refills_at_its_rate_and_caps() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(3.0, 10.0, t0);
        for _ in 0..3 {
            assert!(b.try_take(t0));
        }
        assert!(!b.try_take(t0));
        assert!(b.try_take(t0 + Duration::from_millis(100)));
        assert!(!b.try_take(t0 + Duration::from_millis(100)));
        let later = t0 + Duration::from_secs(60);
        let taken = (0..10).filter(|_| b.try_take(later)).count();
        assert_eq!(taken, 3);
    }

    #[test]
    fn failure_window_blocks_then_forgets() {
        let t0 = Instant::now();
        let mut w = FailureWindow::new(2, Duration::from_secs(60));
        w.record_failure(t0);
        assert!(w.allows(t0));
        w.record_failure(t0 + Duration::from_secs(1));
        assert!(!w.allows(t0 + Duration::from_secs(59)));
        assert!(w.allows(t0 + Duration::from_secs(61)));
        assert!(w.is_idle(t0 + Duration::from_secs(120)));
    }
}
