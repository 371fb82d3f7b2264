//! The decisions around the encoder, as plain logic with time passed in: whether a capture tick is encoded,
//! skipped, made a keyframe or a quality refresh, and how to adapt when the encoder cannot keep up.

use super::rate_budget::RateBudget;
use std::time::Duration;

/// What to do with one capture tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to send.
    Skip,
    /// Encode the current picture.
    Encode {
        /// As a keyframe.
        keyframe: bool,
    },
    /// Encode the unchanged picture again at higher quality (motion stopped).
    Refresh,
    /// Encode the unchanged picture again so that receivers see the stream is alive.
    KeepAlive,
}

/// How the controller reduces load when encoding takes longer than the frame interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adaptation {
    /// Encode one tick in this many (1 = every tick).
    pub fps_divisor: u32,
    /// Encode at half width and height.
    pub downscale: bool,
}

/// Consecutive slow encodes (on the average) before load is reduced.
const SLOW_STREAK: u32 = 20;
/// Consecutive fast encodes before load is raised again.
const FAST_STREAK: u32 = 90;

const LEVELS: [Adaptation; 4] = [
    Adaptation {
        fps_divisor: 1,
        downscale: false,
    },
    Adaptation {
        fps_divisor: 2,
        downscale: false,
    },
    Adaptation {
        fps_divisor: 2,
        downscale: true,
    },
    Adaptation {
        fps_divisor: 3,
        downscale: true,
    },
];

/// Settings of the [`EncodeController`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerConfig {
    /// Capture ticks per second.
    pub fps: u32,
    /// How long the picture must stay unchanged before one quality refresh; `None` for no refresh.
    pub refresh_after: Option<Duration>,
    /// Longest time without sending a frame on a still screen; `None` for no keep-alive.
    pub keep_alive: Option<Duration>,
    /// Whether to cut frame rate and resolution when encoding is too slow.
    pub adapt: bool,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            fps: 30,
            refresh_after: Some(Duration::from_millis(400)),
            keep_alive: Some(Duration::from_secs(1)),
            adapt: true,
        }
    }
}

/// Decides, tick by tick, what the encoder does.
///
/// ```
/// use peerdesk::encode::{ControllerConfig, Decision, EncodeController};
/// use std::time::Duration;
/// let mut c = EncodeController::new(ControllerConfig::default());
/// assert_eq!(c.tick(Duration::ZERO, true), Decision::Encode { keyframe: true });
/// assert_eq!(c.tick(Duration::from_millis(33), false), Decision::Skip);
/// ```
#[derive(Debug, Clone)]
pub struct EncodeController {
    config: ControllerConfig,
    keyframe_requested: bool,
    dirty: bool,
    refresh_pending: bool,
    last_change: Duration,
    last_sent: Option<Duration>,
    tick_count: u64,
    level: usize,
    encode_time_avg: Option<f64>,
    slow_streak: u32,
    fast_streak: u32,
    budget: Option<RateBudget>,
}

impl EncodeController {
    /// A controller whose first encode is a keyframe.
    pub fn new(config: ControllerConfig) -> Self {
        EncodeController {
            config,
            keyframe_requested: true,
            dirty: false,
            refresh_pending: false,
            last_change: Duration::ZERO,
            last_sent: None,
            tick_count: 0,
            level: 0,
            encode_time_avg: None,
            slow_streak: 0,
            fast_streak: 0,
            budget: None,
        }
    }

    /// Sets the bitrate the encoder aims at; its output is held to what the pacer sends for it (see
    /// [`RateBudget`]): while what was sent is more than a quarter second ahead, changed pictures wait. Until
    /// this is called nothing waits.
    pub fn set_target_bitrate(&mut self, bps: u32) {
        match &mut self.budget {
            Some(budget) => budget.set_target(bps),
            None => self.budget = Some(RateBudget::new(bps)),
        }
    }

    /// Notes `bytes` of encoded output at `now`, for the target bitrate's budget.
    pub fn record_sent(&mut self, now: Duration, bytes: usize) {
        if let Some(budget) = &mut self.budget {
            budget.on_sent(now, bytes);
        }
    }

    /// Asks for a keyframe on the next tick (PLI/FIR, a new viewer, a resize).
    pub fn request_keyframe(&mut self) {
        self.keyframe_requested = true;
    }

    /// Whether a keyframe is waiting to be sent.
    pub fn keyframe_pending(&self) -> bool {
        self.keyframe_requested
    }

    /// The current load reduction.
    pub fn adaptation(&self) -> Adaptation {
        LEVELS[self.level]
    }

    /// Decides what to do at time `now` when the picture `changed` (or not) since the previous tick.
    pub fn tick(&mut self, now: Duration, changed: bool) -> Decision {
        self.tick_count += 1;
        if changed {
            self.dirty = true;
            self.last_change = now;
            self.refresh_pending = self.config.refresh_after.is_some();
        }
        if self.keyframe_requested {
            return self.sent(now, Decision::Encode { keyframe: true });
        }
        // Over budget, a change waits (it stays dirty) and so does a quality refresh; a keep-alive is tiny.
        let within_budget = self.budget.as_mut().is_none_or(|budget| budget.allows(now));
        if self.dirty && !within_budget {
            return Decision::Skip;
        }
        if self.dirty {
            let divisor = u64::from(LEVELS[self.level].fps_divisor);
            if self.tick_count % divisor == 0 || divisor == 1 {
                return self.sent(now, Decision::Encode { keyframe: false });
            }
            return Decision::Skip;
        }
        if let (true, Some(after), true) = (self.refresh_pending, self.config.refresh_after, within_budget) {
            if now.saturating_sub(self.last_change) >= after {
                self.refresh_pending = false;
                return self.sent(now, Decision::Refresh);
            }
        }
        if let (Some(every), Some(last)) = (self.config.keep_alive, self.last_sent) {
            if now.saturating_sub(last) >= every {
                return self.sent(now, Decision::KeepAlive);
            }
        }
        Decision::Skip
    }

    fn sent(&mut self, now: Duration, decision: Decision) -> Decision {
        if let Decision::Encode { keyframe } = decision {
            self.dirty = false;
            if keyframe {
                self.keyframe_requested = false;
            }
        }
        self.last_sent = Some(now);
        decision
    }

    /// Reports how long an encode took, to adapt the load. Returns the new adaptation when it changed.
    pub fn record_encode_time(&mut self, took: Duration) -> Option<Adaptation> {
        if !self.config.adapt {
            return None;
        }
        let took = took.as_secs_f64();
        let avg = match self.encode_time_avg {
            Some(avg) => avg * 0.9 + took * 0.1,
            None => took,
        };
        self.encode_time_avg = Some(avg);
        let interval = 1.0 / f64::from(self.config.fps.max(1));
        let budget = interval * f64::from(LEVELS[self.level].fps_divisor);
        if avg > budget * 0.9 {
            self.slow_streak += 1;
            self.fast_streak = 0;
        } else if self.level > 0 && avg < interval * f64::from(LEVELS[self.level - 1].fps_divisor) * 0.5 {
            self.fast_streak += 1;
            self.slow_streak = 0;
        } else {
            self.slow_streak = 0;
            self.fast_streak = 0;
        }
        let before = self.level;
        if self.slow_streak >= SLOW_STREAK && self.level + 1 < LEVELS.len() {
            self.level += 1;
        } else if self.fast_streak >= FAST_STREAK && self.level > 0 {
            self.level -= 1;
        } else {
            return None;
        }
        self.slow_streak = 0;
        self.fast_streak = 0;
        if LEVELS[before].downscale != LEVELS[self.level].downscale {
            // A new resolution starts with a keyframe.
            self.keyframe_requested = true;
            // Encode times at the new size are not comparable.
            self.encode_time_avg = None;
        }
        tracing::info!(
            ?before,
            after = self.level,
            avg_ms = avg * 1000.0,
            "encoder load adaptation"
        );
        Some(LEVELS[self.level])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_its_bitrate_a_change_waits_and_is_sent_when_the_budget_allows() {
        let mut c = EncodeController::new(ControllerConfig::default());
        c.set_target_bitrate(400_000); // the pacer sends 1 Mbit/s
        assert_eq!(c.tick(ms(0), true), Decision::Encode { keyframe: true });
        c.record_sent(ms(0), 60_000); // half a second of the pacer
        assert_eq!(c.tick(ms(33), true), Decision::Skip);
        assert_eq!(c.tick(ms(66), false), Decision::Skip);
        // The change of 33 ms is still owed: sent at the first tick within the budget.
        assert_eq!(c.tick(ms(250), false), Decision::Encode { keyframe: false });
        // A requested keyframe never waits.
        c.record_sent(ms(250), 60_000);
        c.request_keyframe();
        assert_eq!(c.tick(ms(283), true), Decision::Encode { keyframe: true });
    }

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn first_frame_is_a_keyframe_and_still_screens_cost_nothing() {
        let mut c = EncodeController::new(ControllerConfig {
            keep_alive: None,
            refresh_after: None,
            ..Default::default()
        });
        assert_eq!(c.tick(ms(0), true), Decision::Encode { keyframe: true });
        for t in 1..100 {
            assert_eq!(c.tick(ms(t * 33), false), Decision::Skip);
        }
        assert_eq!(c.tick(ms(3400), true), Decision::Encode { keyframe: false });
    }

    #[test]
    fn keyframe_on_request_even_without_change() {
        let mut c = EncodeController::new(ControllerConfig::default());
        c.tick(ms(0), true);
        c.request_keyframe();
        assert_eq!(c.tick(ms(33), false), Decision::Encode { keyframe: true });
        assert!(!c.keyframe_pending());
    }

    #[test]
    fn one_refresh_after_motion_stops_then_keep_alive() {
        let mut c = EncodeController::new(ControllerConfig {
            refresh_after: Some(ms(300)),
            keep_alive: Some(ms(1000)),
            ..Default::default()
        });
        c.tick(ms(0), true);
        c.tick(ms(100), true);
        assert_eq!(c.tick(ms(399), false), Decision::Skip);
        assert_eq!(c.tick(ms(400), false), Decision::Refresh);
        assert_eq!(c.tick(ms(500), false), Decision::Skip);
        assert_eq!(c.tick(ms(1399), false), Decision::Skip);
        assert_eq!(c.tick(ms(1400), false), Decision::KeepAlive);
        assert_eq!(c.tick(ms(1500), false), Decision::Skip);
    }

    #[test]
    fn slow_encoder_halves_frame_rate_then_downscales_and_recovers() {
        let mut c = EncodeController::new(ControllerConfig {
            fps: 30,
            ..Default::default()
        });
        c.tick(ms(0), true);
        let mut changes = Vec::new();
        for _ in 0..80 {
            if let Some(a) = c.record_encode_time(ms(80)) {
                changes.push(a);
            }
        }
        assert_eq!(
            changes[0],
            Adaptation {
                fps_divisor: 2,
                downscale: false
            }
        );
        assert!(
            c.adaptation().downscale,
            "80 ms per frame exceeds even 15 fps: {changes:?}"
        );
        assert!(c.keyframe_pending(), "a resolution change needs a keyframe");
        // With a halved rate, only every other changed tick is encoded, but no change is lost.
        let mut encoded = 0;
        for t in 1..=10 {
            if matches!(c.tick(ms(t * 33), t == 1), Decision::Encode { .. }) {
                encoded += 1;
            }
        }
        assert_eq!(encoded, 1);
        for _ in 0..400 {
            c.record_encode_time(ms(2));
        }
        assert_eq!(
            c.adaptation(),
            Adaptation {
                fps_divisor: 1,
                downscale: false
            }
        );
    }

    #[test]
    fn a_skipped_change_is_encoded_on_a_later_tick() {
        let mut c = EncodeController::new(ControllerConfig::default());
        c.tick(ms(0), true);
        for _ in 0..SLOW_STREAK {
            c.record_encode_time(ms(40));
        }
        assert_eq!(c.adaptation().fps_divisor, 2);
        let a = c.tick(ms(33), true);
        let b = c.tick(ms(66), false);
        assert!(matches!(
            (a, b),
            (Decision::Skip, Decision::Encode { .. }) | (Decision::Encode { .. }, Decision::Skip)
        ));
    }
}
