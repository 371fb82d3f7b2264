//! How often one viewer's keyframe requests (RTCP PLI/FIR) reach the encoder. Plain logic, time passed in.
//!
//! A keyframe costs tens of kilobytes and is sent to every viewer, since one encoder serves them all: without a
//! limit, one viewer (view-only included) could keep the encoder producing only keyframes (security review M7).
//! Like libwebrtc's sender, a request is honoured at once when the last one this viewer caused is old enough,
//! and otherwise deferred (never dropped) to the end of the interval, so a viewer that lost a keyframe still
//! gets one; any number of requests within an interval cost one keyframe.

use std::time::{Duration, Instant};

/// Least time between two keyframes caused by one viewer: 300 ms, the interval libwebrtc's receivers keep
/// between their own requests.
pub const MIN_KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(300);

/// One viewer's keyframe requests.
#[derive(Debug, Clone)]
pub struct KeyframeRequests {
    interval: Duration,
    last_forwarded: Option<Instant>,
    deferred: bool,
}

impl Default for KeyframeRequests {
    fn default() -> Self {
        KeyframeRequests::new(MIN_KEYFRAME_REQUEST_INTERVAL)
    }
}

impl KeyframeRequests {
    /// At most one keyframe per `interval` for this viewer.
    pub fn new(interval: Duration) -> Self {
        KeyframeRequests {
            interval,
            last_forwarded: None,
            deferred: false,
        }
    }

    /// A request arrived: `true` when it goes to the encoder now; otherwise it waits for [`poll`](Self::poll).
    pub fn request(&mut self, now: Instant) -> bool {
        match self.last_forwarded {
            Some(last) if now.saturating_duration_since(last) < self.interval => {
                self.deferred = true;
                false
            }
            _ => {
                self.last_forwarded = Some(now);
                self.deferred = false;
                true
            }
        }
    }

    /// `true` when a deferred request is due now (and counts as forwarded).
    pub fn poll(&mut self, now: Instant) -> bool {
        if self.deferred && self.deadline().is_some_and(|d| now >= d) {
            self.deferred = false;
            self.last_forwarded = Some(now);
            return true;
        }
        false
    }

    /// When a deferred request falls due; `None` when none waits.
    pub fn deadline(&self) -> Option<Instant> {
        match (self.deferred, self.last_forwarded) {
            (true, Some(last)) => Some(last + self.interval),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_requests_costs_one_keyframe_per_interval() {
        let t0 = Instant::now();
        let mut requests = KeyframeRequests::default();
        let mut forwarded = 0;
        // 1000 PLIs a second for 3 s, as a hostile viewer might send.
        for ms in 0..3_000u64 {
            let now = t0 + Duration::from_millis(ms);
            if requests.request(now) {
                forwarded += 1;
            }
            if requests.poll(now) {
                forwarded += 1;
            }
        }
        assert!((10..=11).contains(&forwarded), "{forwarded} keyframes in 3 s");
    }

    #[test]
    fn a_request_inside_the_interval_is_deferred_not_lost() {
        let t0 = Instant::now();
        let mut requests = KeyframeRequests::default();
        assert!(requests.request(t0));
        assert!(!requests.request(t0 + Duration::from_millis(100)));
        assert_eq!(requests.deadline(), Some(t0 + MIN_KEYFRAME_REQUEST_INTERVAL));
        assert!(!requests.poll(t0 + Duration::from_millis(299)));
        assert!(requests.poll(t0 + Duration::from_millis(300)));
        assert_eq!(requests.deadline(), None);
        assert!(!requests.poll(t0 + Duration::from_secs(5)), "it fires once");
        assert!(
            requests.request(t0 + Duration::from_secs(5)),
            "a late request goes at once"
        );
    }
}
