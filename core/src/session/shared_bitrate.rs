//! The bitrate of the host's one encoder when several viewers watch: plain logic, no I/O.
//!
//! One encoder serves every viewer, so the slowest viewer's congestion-control estimate sets the pace (a faster
//! one gets the same stream; a slower one would fall behind and lose frames). The target stays within
//! [`SharedBitrate::MIN_BPS`] and the app's ceiling. Estimates move a little with every report, and every change
//! costs the encoder a rate-control reset, so a change smaller than [`SharedBitrate::HYSTERESIS_PERCENT`] of the
//! current target is not passed on; a new ceiling from the app, and a viewer leaving, are re-evaluated at once.

use std::collections::HashMap;

/// The encoder's target for the viewers of one host. Every method returns the new target when the encoder should
/// change to it, else `None`.
#[derive(Debug, Clone)]
pub(crate) struct SharedBitrate<K> {
    estimates: HashMap<K, u32>,
    max_bps: u32,
    current_bps: u32,
}

impl<K: std::hash::Hash + Eq> SharedBitrate<K> {
    /// The lowest target, bit/s: below it a 1080p screen is not readable at any frame rate.
    pub const MIN_BPS: u32 = 100_000;
    /// Changes smaller than this share of the current target are not passed on.
    pub const HYSTERESIS_PERCENT: u32 = 10;

    /// No viewer yet: the target is the ceiling `max_bps`.
    pub fn new(max_bps: u32) -> Self {
        let max_bps = max_bps.max(Self::MIN_BPS);
        Self {
            estimates: HashMap::new(),
            max_bps,
            current_bps: max_bps,
        }
    }

    /// The current target, bit/s.
    #[cfg(test)]
    pub fn current(&self) -> u32 {
        self.current_bps
    }

    /// A viewer's congestion-control estimate, bit/s.
    pub fn on_estimate(&mut self, viewer: K, bps: f64) -> Option<u32> {
        if !(bps.is_finite() && bps > 0.0) {
            return None;
        }
        self.estimates.insert(viewer, bps.min(f64::from(u32::MAX)) as u32);
        self.update(false)
    }

    /// A viewer left: its estimate no longer holds the others back.
    pub fn on_viewer_left(&mut self, viewer: &K) -> Option<u32> {
        self.estimates.remove(viewer)?;
        self.update(true)
    }

    /// The app's new ceiling, bit/s (at least [`Self::MIN_BPS`]).
    pub fn set_max(&mut self, max_bps: u32) -> Option<u32> {
        self.max_bps = max_bps.max(Self::MIN_BPS);
        self.update(true)
    }

    fn target(&self) -> u32 {
        let slowest = self.estimates.values().copied().min().unwrap_or(self.max_bps);
        slowest.clamp(Self::MIN_BPS, self.max_bps)
    }

    fn update(&mut self, at_once: bool) -> Option<u32> {
        let target = self.target();
        let threshold = self.current_bps / 100 * Self::HYSTERESIS_PERCENT;
        if target != self.current_bps && (at_once || target.abs_diff(self.current_bps) > threshold) {
            self.current_bps = target;
            Some(target)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Bitrate = SharedBitrate<&'static str>;

    #[test]
    fn the_slowest_viewer_sets_the_pace_within_the_ceiling() {
        let mut bitrate = Bitrate::new(4_000_000);
        assert_eq!(bitrate.current(), 4_000_000, "no viewer: the ceiling");
        assert_eq!(bitrate.on_estimate("fast", 3_000_000.0), Some(3_000_000));
        assert_eq!(bitrate.on_estimate("slow", 800_000.0), Some(800_000));
        assert_eq!(
            bitrate.on_estimate("fast", 2_000_000.0),
            None,
            "the fast one does not set the pace"
        );
        assert_eq!(
            bitrate.on_estimate("slow", 50_000.0),
            Some(Bitrate::MIN_BPS),
            "never below the floor"
        );
        assert_eq!(
            bitrate.on_estimate("slow", 9_000_000.0),
            Some(2_000_000),
            "the fast one is slowest now"
        );
    }

    #[test]
    fn small_moves_are_not_passed_on() {
        let mut bitrate = Bitrate::new(4_000_000);
        assert_eq!(bitrate.on_estimate("a", 1_000_000.0), Some(1_000_000));
        assert_eq!(bitrate.on_estimate("a", 1_080_000.0), None, "8 %");
        assert_eq!(bitrate.on_estimate("a", 950_000.0), None, "5 %");
        assert_eq!(bitrate.on_estimate("a", 1_150_000.0), Some(1_150_000), "15 %");
        assert_eq!(bitrate.current(), 1_150_000);
    }

    #[test]
    fn a_slow_viewer_leaving_frees_the_others_at_once() {
        let mut bitrate = Bitrate::new(4_000_000);
        bitrate.on_estimate("fast", 3_000_000.0);
        bitrate.on_estimate("slow", 500_000.0);
        assert_eq!(bitrate.current(), 500_000);
        assert_eq!(bitrate.on_viewer_left(&"slow"), Some(3_000_000));
        assert_eq!(bitrate.on_viewer_left(&"slow"), None, "already gone");
        assert_eq!(
            bitrate.on_viewer_left(&"fast"),
            Some(4_000_000),
            "nobody left: the ceiling"
        );
    }

    #[test]
    fn a_new_ceiling_applies_at_once_and_caps_every_estimate() {
        let mut bitrate = Bitrate::new(4_000_000);
        bitrate.on_estimate("a", 2_000_000.0);
        assert_eq!(
            bitrate.set_max(1_900_000),
            Some(1_900_000),
            "5 % below, but the app asked"
        );
        assert_eq!(bitrate.on_estimate("a", 5_000_000.0), None, "capped");
        assert_eq!(bitrate.set_max(3_000_000), Some(3_000_000));
        assert_eq!(bitrate.set_max(10), Some(Bitrate::MIN_BPS), "the floor holds");
    }

    #[test]
    fn nonsense_estimates_are_ignored() {
        let mut bitrate = Bitrate::new(4_000_000);
        for bps in [f64::NAN, f64::INFINITY, -1.0, 0.0] {
            assert_eq!(bitrate.on_estimate("a", bps), None, "{bps}");
        }
        assert_eq!(bitrate.current(), 4_000_000);
        assert_eq!(
            bitrate.on_estimate("a", 1e12),
            None,
            "above the ceiling: the ceiling, unchanged"
        );
    }
}
