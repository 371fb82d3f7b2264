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

/// Below this target, in bit/s per pixel of the picture, pictures are encoded at half width and height (1080p:
/// 518 kbit/s). Half size is a quarter of the pixels: below this rate a busy full-size desktop falls far below
/// 30 fps (the rate budget cuts the frame rate first; 1080p at libaom's quantiser ceiling costs ~1.8 Mbit/s at
/// 30 fps), and one full-size keyframe (150–180 KB) holds a narrow link for seconds.
pub const DOWNSCALE_BELOW_BPS_PER_PIXEL: f64 = 0.25;
/// Back to full size once the target has stayed at or above this, in bit/s per pixel (1080p: 933 kbit/s), for
/// [`UPSCALE_HOLD`], at a moment the picture is still: well above the way down, so that an estimate hovering near
/// one threshold does not switch the size (each switch costs a keyframe).
///
/// Why only when still: the estimate is no proof that the link carries a full-size keyframe. While the encoder
/// sends less than the link could (half size), GCC's estimate keeps climbing (measured on a 1 Mbit/s link: to
/// 1.9 Mbit/s), and a full-size keyframe sent at the pacer's 2.5× that rate was lost in the link's queue: the
/// moving picture froze for 6–11 s. On a still picture the keyframe goes out alone, in place of a quality
/// refresh, and nothing moving waits for it.
pub const UPSCALE_ABOVE_BPS_PER_PIXEL: f64 = 0.45;
/// How long the target must hold above [`UPSCALE_ABOVE_BPS_PER_PIXEL`] before pictures go back to full size; it
/// doubles (up to [`UPSCALE_HOLD_MAX`]) each time the size has to halve again within [`UPSCALE_FAILED_WITHIN`].
pub const UPSCALE_HOLD: Duration = Duration::from_secs(5);
/// The longest [`UPSCALE_HOLD`] grows to.
pub const UPSCALE_HOLD_MAX: Duration = Duration::from_secs(160);
/// A return to full size that is followed by half size again this soon failed: the next waits twice as long.
pub const UPSCALE_FAILED_WITHIN: Duration = Duration::from_secs(30);

/// While the slowest viewer's sender holds back more than this (media its congestion window has not let out yet,
/// as time at its estimate), a changed picture waits; see [`EncodeController::set_send_backlog`].
pub const MAX_SEND_BACKLOG: Duration = Duration::from_millis(100);

/// How long the picture must have been unchanged (and sent) before the size goes back up: the default quality
/// refresh's wait.
const STILL_BEFORE_UPSCALE: Duration = Duration::from_millis(400);

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
    send_backlog: Duration,
    target_bps: Option<u32>,
    pixels: Option<u64>,
    /// Half size because the target is low (see [`DOWNSCALE_BELOW_BPS_PER_PIXEL`]).
    downscaled_for_bitrate: bool,
    /// Since when the target has been high enough to go back to full size.
    upscale_allowed_since: Option<Duration>,
    /// How long that must last; see [`UPSCALE_HOLD`].
    upscale_hold: Duration,
    /// When the size last went back to full for the bitrate.
    upscaled_at: Option<Duration>,
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
            send_backlog: Duration::ZERO,
            target_bps: None,
            pixels: None,
            downscaled_for_bitrate: false,
            upscale_allowed_since: None,
            upscale_hold: UPSCALE_HOLD,
            upscaled_at: None,
        }
    }

    /// Sets the size of the full picture, which the target bitrate is measured against to choose between full
    /// and half size (see [`DOWNSCALE_BELOW_BPS_PER_PIXEL`]). Until this is called the size is never changed
    /// for the bitrate.
    pub fn set_picture_size(&mut self, width: u32, height: u32) {
        self.pixels = Some(u64::from(width) * u64::from(height)).filter(|&p| p > 0);
    }

    /// Sets the bitrate the encoder aims at; its output is held to what the pacer sends for it (see
    /// [`RateBudget`]): while what was sent is more than a quarter second ahead, changed pictures wait. Until
    /// this is called nothing waits.
    pub fn set_target_bitrate(&mut self, bps: u32) {
        self.target_bps = Some(bps);
        match &mut self.budget {
            Some(budget) => budget.set_target(bps),
            None => self.budget = Some(RateBudget::new(bps)),
        }
    }

    /// Notes how much media the slowest viewer's sender holds back in front of its congestion window, as time at
    /// its estimate (zero, the default, when nothing waits). While that is more than [`MAX_SEND_BACKLOG`] a
    /// changed picture, a requested keyframe and a quality refresh wait, like over the rate budget: a picture
    /// encoded now would wait behind it, and the picture encoded once it has drained is fresher.
    ///
    /// ```
    /// use peerdesk::encode::{ControllerConfig, Decision, EncodeController};
    /// use std::time::Duration;
    /// let mut c = EncodeController::new(ControllerConfig::default());
    /// assert_eq!(c.tick(Duration::ZERO, true), Decision::Encode { keyframe: true });
    /// c.set_send_backlog(Duration::from_millis(400));
    /// assert_eq!(c.tick(Duration::from_millis(33), true), Decision::Skip);
    /// c.set_send_backlog(Duration::from_millis(20));
    /// assert_eq!(c.tick(Duration::from_millis(66), false), Decision::Encode { keyframe: false });
    /// ```
    pub fn set_send_backlog(&mut self, backlog: Duration) {
        self.send_backlog = backlog;
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

    /// The current load reduction: the encoder's (frame rate, size) and the bitrate's (size).
    pub fn adaptation(&self) -> Adaptation {
        let level = LEVELS[self.level];
        Adaptation {
            downscale: level.downscale || self.downscaled_for_bitrate,
            ..level
        }
    }

    /// Chooses full or half size for the target bitrate at `now`; a change of size asks for a keyframe.
    fn follow_bitrate(&mut self, now: Duration) {
        let (Some(target), Some(pixels)) = (self.target_bps, self.pixels) else {
            return;
        };
        let per_pixel = f64::from(target) / pixels as f64;
        let still = !self.dirty && now.saturating_sub(self.last_change) >= STILL_BEFORE_UPSCALE;
        let downscale = if self.downscaled_for_bitrate {
            if per_pixel >= UPSCALE_ABOVE_BPS_PER_PIXEL {
                let since = *self.upscale_allowed_since.get_or_insert(now);
                now.saturating_sub(since) < self.upscale_hold || !still
            } else {
                self.upscale_allowed_since = None;
                true
            }
        } else {
            per_pixel < DOWNSCALE_BELOW_BPS_PER_PIXEL
        };
        if downscale == self.downscaled_for_bitrate {
            return;
        }
        if downscale
            && self
                .upscaled_at
                .is_some_and(|at| now.saturating_sub(at) < UPSCALE_FAILED_WITHIN)
        {
            self.upscale_hold = (self.upscale_hold * 2).min(UPSCALE_HOLD_MAX);
        }
        if !downscale {
            self.upscaled_at = Some(now);
        }
        let before = self.adaptation();
        self.downscaled_for_bitrate = downscale;
        self.upscale_allowed_since = None;
        self.restart_if_resized(before);
        tracing::info!(
            target_bps = target,
            downscale,
            next_upscale_hold_s = self.upscale_hold.as_secs(),
            "picture size follows the target bitrate"
        );
    }

    /// After a change of adaptation from `before`: a new encoded size starts with a keyframe, and encode times at
    /// the new size are not comparable with the old ones.
    fn restart_if_resized(&mut self, before: Adaptation) {
        if before.downscale != self.adaptation().downscale {
            self.keyframe_requested = true;
            self.encode_time_avg = None;
        }
    }

    /// Decides what to do at time `now` when the picture `changed` (or not) since the previous tick.
    pub fn tick(&mut self, now: Duration, changed: bool) -> Decision {
        self.tick_count += 1;
        if changed {
            self.dirty = true;
            self.last_change = now;
            self.refresh_pending = self.config.refresh_after.is_some();
        }
        self.follow_bitrate(now);
        // Over budget, a change waits (it stays dirty) and so does a quality refresh; a keep-alive is tiny.
        let within_budget =
            self.budget.as_mut().is_none_or(|budget| budget.allows(now)) && self.send_backlog <= MAX_SEND_BACKLOG;
        if self.keyframe_requested {
            // The first picture goes at once. A later keyframe waits for the budget too: one still in front of
            // the pacer answers every request made meanwhile, while keyframes sent back to back filled a narrow
            // link's queue and were lost in it (measured at 500 kbit/s: one every 300 ms, none arrived whole).
            if within_budget || self.last_sent.is_none() {
                return self.sent(now, Decision::Encode { keyframe: true });
            }
            return Decision::Skip;
        }
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
        let adaptation_before = self.adaptation();
        if self.slow_streak >= SLOW_STREAK && self.level + 1 < LEVELS.len() {
            self.level += 1;
        } else if self.fast_streak >= FAST_STREAK && self.level > 0 {
            self.level -= 1;
        } else {
            return None;
        }
        self.slow_streak = 0;
        self.fast_streak = 0;
        self.restart_if_resized(adaptation_before);
        tracing::info!(
            ?before,
            after = self.level,
            avg_ms = avg * 1000.0,
            "encoder load adaptation"
        );
        Some(self.adaptation())
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
        // A requested keyframe waits for the budget too (the one in front of the pacer answers the request).
        c.record_sent(ms(250), 60_000);
        c.request_keyframe();
        assert_eq!(c.tick(ms(283), true), Decision::Skip);
        assert!(c.keyframe_pending());
        assert_eq!(c.tick(ms(700), true), Decision::Skip);
        assert_eq!(c.tick(ms(710), true), Decision::Encode { keyframe: true });
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
    fn a_low_target_halves_the_size_and_only_a_high_one_held_for_a_while_restores_it() {
        let mut c = EncodeController::new(ControllerConfig::default());
        c.set_picture_size(1920, 1080);
        c.set_target_bitrate(1_000_000);
        assert_eq!(c.tick(ms(0), true), Decision::Encode { keyframe: true });
        assert!(!c.adaptation().downscale);
        // The estimate falls below 518 kbit/s: half size, starting with a keyframe.
        c.set_target_bitrate(500_000);
        assert_eq!(c.tick(ms(33), true), Decision::Encode { keyframe: true });
        assert!(c.adaptation().downscale);
        // Between the two thresholds nothing changes.
        c.set_target_bitrate(800_000);
        for t in 2..400 {
            c.tick(ms(33 * t), false);
        }
        assert!(c.adaptation().downscale);
        // Above 933 kbit/s for less than 5 s, with a dip: still half size.
        c.set_target_bitrate(1_200_000);
        c.tick(ms(20_000), false);
        c.tick(ms(24_000), false);
        c.set_target_bitrate(900_000);
        c.tick(ms(24_500), false);
        c.set_target_bitrate(1_200_000);
        c.tick(ms(25_000), false);
        c.tick(ms(29_900), false);
        assert!(c.adaptation().downscale, "the dip restarted the hold");
        // Held for 5 s, but the picture moves: a full-size keyframe now would make the moving picture wait.
        assert_eq!(c.tick(ms(30_000), true), Decision::Encode { keyframe: false });
        assert!(c.adaptation().downscale);
        // Still for 400 ms: full size again, with a keyframe.
        assert_eq!(c.tick(ms(30_300), false), Decision::Skip);
        assert!(c.adaptation().downscale);
        assert_eq!(c.tick(ms(30_400), false), Decision::Encode { keyframe: true });
        assert!(!c.adaptation().downscale);
        // The estimate falls again 10 s later: that return failed, so the next one waits 10 s, not 5.
        c.set_target_bitrate(400_000);
        c.tick(ms(40_400), false);
        assert!(c.adaptation().downscale);
        c.set_target_bitrate(1_200_000);
        c.tick(ms(41_000), false);
        c.tick(ms(50_000), false);
        assert!(c.adaptation().downscale, "9 s of the 10 s hold");
        c.tick(ms(51_000), false);
        assert!(!c.adaptation().downscale);
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
