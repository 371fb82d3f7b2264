//! Keeps what the encoder sends within what the pacer can send, by letting changed pictures wait: plain logic
//! with time passed in (libwebrtc calls its version the frame dropper).
//!
//! An AV1 encoder aims at its target but cannot always hold it: libaom's quantiser ceiling keeps text readable,
//! so a busy 1080p desktop costs ~1.8 Mbit/s at 30 fps whatever the target says. Whatever the pacer (which sends
//! at 2.5 times the congestion estimate, the encoder's target) cannot send queues in front of it,
//! and latency climbed to seconds on a 1 Mbit/s link. With the budget the frame rate drops instead, and every
//! frame sent is fresh: text stays sharp and the queue short. Below the pacer's rate nothing waits: the estimate
//! is often low (GCC holds its start value at a few per cent of random loss), and cutting the frame rate to it
//! halved the frame rate at 5 % loss for nothing (measured: 15.9 fps against 30.7).
//!
//! The budget is a leaky bucket: each frame sent adds its bits, the bucket drains at the pacer's rate, and while
//! it holds more than [`ALLOWANCE`] of that rate a changed picture is not encoded yet (it is, with everything
//! that changed meanwhile, at the first tick the bucket allows). A keyframe's debt is capped at [`MAX_DEBT`], so
//! one keyframe costs at most a short pause on a narrow link.

use std::time::Duration;

/// How far ahead of the pacer the encoder may run before pictures wait: a quarter second of the pacer's rate.
pub const ALLOWANCE: Duration = Duration::from_millis(250);

/// The most one burst (a keyframe) can put the encoder behind: one second of the pacer's rate.
pub const MAX_DEBT: Duration = Duration::from_secs(1);

/// A leaky bucket over the encoder's output.
///
/// ```
/// use peerdesk::encode::RateBudget;
/// use std::time::Duration;
/// let mut budget = RateBudget::new(400_000); // the pacer sends 1 Mbit/s
/// assert!(budget.allows(Duration::ZERO));
/// budget.on_sent(Duration::ZERO, 60_000); // 480 kbit: half a second of the pacer
/// assert!(!budget.allows(Duration::from_millis(100)));
/// assert!(budget.allows(Duration::from_millis(230)));
/// ```
#[derive(Debug, Clone)]
pub struct RateBudget {
    /// The pacer's rate, bit/s.
    drain_bps: f64,
    level_bits: f64,
    at: Duration,
}

impl RateBudget {
    /// An empty bucket for an encoder aiming at `target_bps` (at least 1 bit/s): it drains at the pacer's rate.
    pub fn new(target_bps: u32) -> Self {
        RateBudget {
            drain_bps: pacer_rate(target_bps),
            level_bits: 0.0,
            at: Duration::ZERO,
        }
    }

    /// Changes the rate the bucket drains at.
    pub fn set_target(&mut self, target_bps: u32) {
        self.drain_bps = pacer_rate(target_bps);
        self.level_bits = self.level_bits.min(self.max_debt_bits());
    }

    /// Notes `bytes` sent at `now`.
    pub fn on_sent(&mut self, now: Duration, bytes: usize) {
        self.drain(now);
        self.level_bits = (self.level_bits + bytes as f64 * 8.0).min(self.max_debt_bits());
    }

    /// Whether a changed picture may be encoded at `now`.
    pub fn allows(&mut self, now: Duration) -> bool {
        self.drain(now);
        self.level_bits <= self.drain_bps * ALLOWANCE.as_secs_f64()
    }

    fn max_debt_bits(&self) -> f64 {
        self.drain_bps * MAX_DEBT.as_secs_f64()
    }

    fn drain(&mut self, now: Duration) {
        let elapsed = now.saturating_sub(self.at).as_secs_f64();
        self.at = self.at.max(now);
        self.level_bits = (self.level_bits - elapsed * self.drain_bps).max(0.0);
    }
}

/// The rate the pacer sends at for an encoder target of `target_bps`.
fn pacer_rate(target_bps: u32) -> f64 {
    f64::from(target_bps.max(1)) * crate::transport::peer::PACING_FACTOR
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// Frames encoded by a source that changes every 33 ms and costs `bytes_per_frame`, over `seconds`.
    fn frames_sent(target_bps: u32, bytes_per_frame: usize, seconds: u64) -> (u64, f64) {
        let mut budget = RateBudget::new(target_bps);
        let mut sent = 0u64;
        for tick in 0..seconds * 30 {
            let now = ms(tick * 1000 / 30);
            if budget.allows(now) {
                budget.on_sent(now, bytes_per_frame);
                sent += 1;
            }
        }
        (sent, (sent * bytes_per_frame as u64 * 8) as f64 / seconds as f64)
    }

    #[test]
    fn an_encoder_within_its_target_sends_every_frame() {
        // 4 KB frames at 30 fps = 960 kbit/s, more than the target of 400 kbit/s but less than the pacer sends.
        assert_eq!(frames_sent(400_000, 4_000, 10).0, 300);
    }

    #[test]
    fn an_overshooting_encoder_drops_frames_down_to_its_target() {
        // 7.5 KB frames at 30 fps = 1.8 Mbit/s (libaom's floor for a busy 1080p desktop) through a pacer of
        // 1 Mbit/s (a target of 400 kbit/s).
        let (sent, bps) = frames_sent(400_000, 7_500, 10);
        assert!((150..=175).contains(&sent), "{sent} frames in 10 s");
        // Within the target, give or take the allowance spread over the run.
        assert!(bps <= 1_000_000.0 * 1.03, "{bps} bit/s");
    }

    #[test]
    fn a_keyframe_costs_at_most_the_capped_debt() {
        let mut budget = RateBudget::new(400_000);
        budget.on_sent(ms(0), 180_000); // 1.44 Mbit, capped at 1 Mbit
        assert!(!budget.allows(ms(700)));
        assert!(budget.allows(ms(750)));
    }

    #[test]
    fn a_lower_target_drains_slower() {
        let mut budget = RateBudget::new(800_000);
        budget.on_sent(ms(0), 100_000); // 800 kbit
        budget.set_target(200_000); // pacer 500 kbit/s: capped at 500 kbit, allowance 125 kbit
        assert!(!budget.allows(ms(700)));
        assert!(budget.allows(ms(750)));
    }

    #[test]
    fn time_going_backwards_changes_nothing() {
        let mut budget = RateBudget::new(400_000);
        budget.on_sent(ms(500), 60_000);
        assert!(!budget.allows(ms(100)));
        assert!(budget.allows(ms(730)));
    }
}
