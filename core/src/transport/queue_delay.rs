//! A ceiling on the congestion estimate from the link's queue, measured in the transport-wide feedback's own
//! times: plain logic with time passed in.
//!
//! Each packet the viewer reports has left the host at one instant (host's clock) and arrived at another
//! (viewer's clock). Their difference is the one-way delay plus a constant clock offset; its smallest value over
//! [`BASE_HORIZON`] is the empty path's, and the excess is the time the packet waited in a queue on the way.
//! When a feedback batch shows more than [`OVERUSE_QUEUE`] of queue, the ceiling drops to
//! [`DECREASE_FACTOR`] × the rate the viewer received at (which, with a queue standing, is the link's rate); while
//! the queue stays under [`HOLD_QUEUE`] it grows back by [`INCREASE_PER_SECOND`], and by
//! [`NEAR_CAPACITY_INCREASE_PER_SECOND`] once it is near the rate that arrived at the last overuse.
//!
//! Why: webrtc-rs's GCC did not see these queues. On a 1 Mbit/s link with a 200 ms queue its delay-based half
//! climbed from 1.07 to 3.5 Mbit/s in 16 s while the viewer received 0.94 Mbit/s and packets waited 200–400 ms
//! (measured, `tc tbf`); only losses brought the estimate down. An estimate above the link's rate lets the
//! encoder fill the link's queue, and a queue is latency.

use super::windowed_min::WindowedMin;
use std::time::{Duration, Instant};

/// How long the empty path's delay is remembered.
pub(crate) const BASE_HORIZON: Duration = Duration::from_secs(10);
/// One-way delays kept for the base at most (one per feedback batch: ~20 a second).
const MAX_BASE_SAMPLES: usize = 1_024;
/// A batch's queue above this is overuse: the ceiling comes down. Above the jitter of a real path (Wi-Fi's
/// tens of milliseconds, the bench's jitter scenario's 20 ms); below what a viewer notices.
pub(crate) const OVERUSE_QUEUE: Duration = Duration::from_millis(80);
/// Under this queue the ceiling grows; between the two it holds.
pub(crate) const HOLD_QUEUE: Duration = Duration::from_millis(40);
/// The ceiling after overuse, as a share of the received rate (GCC's and libwebrtc's 0.85).
pub(crate) const DECREASE_FACTOR: f64 = 0.85;
/// Decreases come at most this often: the queue a decrease drains shows in feedback only later.
const DECREASE_INTERVAL: Duration = Duration::from_millis(300);
/// How fast the ceiling grows while the queue is short, per second (GCC's multiplicative increase: 8 %).
pub(crate) const INCREASE_PER_SECOND: f64 = 0.08;
/// How fast it grows once it is near the rate that arrived at the last overuse (the link's rate, as far as
/// known), per second: GCC's additive increase near its link capacity, in spirit. At 8 % a second the ceiling
/// crossed a 1 Mbit/s link's rate by a fifth before the queue showed (measured: 250 ms of queue each time).
pub(crate) const NEAR_CAPACITY_INCREASE_PER_SECOND: f64 = 0.02;
/// "Near" the link's rate: above this share of it.
const NEAR_CAPACITY: f64 = 0.9;
/// How long the rate that arrived at an overuse is taken as the link's rate.
const CAPACITY_MEMORY: Duration = Duration::from_secs(30);

/// The queue ceiling's state.
#[derive(Debug)]
pub(crate) struct QueueCeiling {
    /// The first departure seen: departures are counted from it.
    epoch: Option<Instant>,
    /// The smallest arrival − departure (µs) over [`BASE_HORIZON`], by departure.
    base: WindowedMin<i64>,
    /// The ceiling, bit/s; `None` until the first overuse.
    ceiling: Option<f64>,
    last_decrease: Option<Instant>,
    /// What arrived at the last overuse, bit/s.
    capacity: Option<f64>,
    last_update: Option<Instant>,
    last_queue: Duration,
}

impl Default for QueueCeiling {
    fn default() -> Self {
        QueueCeiling {
            epoch: None,
            base: WindowedMin::new(BASE_HORIZON, MAX_BASE_SAMPLES),
            ceiling: None,
            last_decrease: None,
            capacity: None,
            last_update: None,
            last_queue: Duration::ZERO,
        }
    }
}

impl QueueCeiling {
    /// Notes the packets of one feedback batch, each `(departure, arrival)` (the arrival on the viewer's clock;
    /// lost packets are left out), and returns the batch's queue: the smallest of its delays over the base.
    pub(crate) fn on_batch(&mut self, packets: impl IntoIterator<Item = (Instant, Duration)>) -> Option<Duration> {
        let mut smallest: Option<(Instant, i64)> = None;
        for (departure, arrival) in packets {
            let epoch = *self.epoch.get_or_insert(departure);
            let Some(sent) = departure.checked_duration_since(epoch) else {
                continue;
            };
            let delay = i64::try_from(arrival.as_micros()).unwrap_or(i64::MAX)
                - i64::try_from(sent.as_micros()).unwrap_or(i64::MAX);
            if smallest.is_none_or(|(_, least)| delay < least) {
                smallest = Some((departure, delay));
            }
        }
        let (departure, delay) = smallest?;
        let base = self.base.push(departure, delay);
        let queue = Duration::from_micros(u64::try_from(delay - base).unwrap_or(0));
        self.last_queue = queue;
        Some(queue)
    }

    /// The queue the last batch showed.
    pub(crate) fn queue(&self) -> Duration {
        self.last_queue
    }

    /// Updates the ceiling at `now` from the last batch's `queue` and the rate the viewer received at
    /// (`received_bps`, when known), and returns it: `f64::INFINITY` until the first overuse.
    pub(crate) fn update(&mut self, now: Instant, queue: Duration, received_bps: Option<f64>) -> f64 {
        let elapsed = self
            .last_update
            .map_or(Duration::ZERO, |last| now.saturating_duration_since(last))
            .min(Duration::from_secs(1));
        self.last_update = Some(now);
        let may_decrease = self
            .last_decrease
            .is_none_or(|last| now.saturating_duration_since(last) >= DECREASE_INTERVAL);
        match (queue > OVERUSE_QUEUE, received_bps) {
            (true, Some(received)) if may_decrease && received > 0.0 => {
                let lower = received * DECREASE_FACTOR;
                self.ceiling = Some(self.ceiling.map_or(lower, |ceiling| ceiling.min(lower)));
                self.capacity = Some(received);
                self.last_decrease = Some(now);
                tracing::debug!(queue_ms = queue.as_millis(), ceiling = lower, "the link's queue grows: the estimate is held below what arrives");
            }
            _ if queue < HOLD_QUEUE => {
                let remembered = self
                    .last_decrease
                    .is_some_and(|last| now.saturating_duration_since(last) < CAPACITY_MEMORY);
                if let Some(ceiling) = &mut self.ceiling {
                    let near = remembered && self.capacity.is_some_and(|capacity| *ceiling >= capacity * NEAR_CAPACITY);
                    let rate = if near {
                        NEAR_CAPACITY_INCREASE_PER_SECOND
                    } else {
                        INCREASE_PER_SECOND
                    };
                    *ceiling *= 1.0 + rate * elapsed.as_secs_f64();
                }
            }
            _ => {}
        }
        self.ceiling.unwrap_or(f64::INFINITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A batch of 10 packets sent 5 ms apart from `start`, arriving `one_way` later on a clock 1,000 s ahead.
    fn batch(t0: Instant, start: Duration, one_way: Duration) -> Vec<(Instant, Duration)> {
        (0..10u32)
            .map(|i| {
                let sent = start + 5 * MS * i;
                (t0 + sent, Duration::from_secs(1_000) + sent + one_way)
            })
            .collect()
    }

    #[test]
    fn the_queue_is_the_delay_over_the_smallest_of_the_last_ten_seconds() {
        let t0 = Instant::now();
        let mut ceiling = QueueCeiling::default();
        assert_eq!(ceiling.on_batch(batch(t0, Duration::ZERO, 20 * MS)), Some(Duration::ZERO));
        assert_eq!(ceiling.on_batch(batch(t0, 100 * MS, 320 * MS)), Some(300 * MS));
        // One packet of a batch that did not wait is enough: the batch did not see a standing queue.
        let mut mixed = batch(t0, 200 * MS, 320 * MS);
        mixed[4].1 -= 300 * MS;
        assert_eq!(ceiling.on_batch(mixed), Some(Duration::ZERO));
        // Lost packets (none arrived) say nothing.
        assert_eq!(ceiling.on_batch(Vec::new()), None);
        // Eleven seconds on, the empty path's delay is forgotten: the standing delay is the new base.
        assert_eq!(ceiling.on_batch(batch(t0, Duration::from_secs(11), 320 * MS)), Some(Duration::ZERO));
    }

    #[test]
    fn a_queue_holds_the_estimate_below_what_arrives_and_a_short_one_lets_it_grow_back() {
        let t0 = Instant::now();
        let mut ceiling = QueueCeiling::default();
        assert_eq!(ceiling.update(t0, 10 * MS, Some(900_000.0)), f64::INFINITY);
        // Overuse: 85 % of the 1 Mbit/s arriving.
        assert_eq!(ceiling.update(t0 + 100 * MS, 150 * MS, Some(1_000_000.0)), 850_000.0);
        // Not again within 300 ms; holding while the queue is between the thresholds.
        assert_eq!(ceiling.update(t0 + 200 * MS, 150 * MS, Some(900_000.0)), 850_000.0);
        assert_eq!(ceiling.update(t0 + 300 * MS, 60 * MS, Some(900_000.0)), 850_000.0);
        // Still queued 300 ms later: down again, from what arrives now.
        assert_eq!(ceiling.update(t0 + 400 * MS, 100 * MS, Some(900_000.0)), 765_000.0);
        // Short queue: 8 % a second while well below the 900 kbit/s that arrived at the last overuse.
        let grown = ceiling.update(t0 + 1_400 * MS, 10 * MS, Some(700_000.0));
        assert!((grown - 765_000.0 * 1.08).abs() < 1.0, "{grown}");
        // Overuse without a received rate cannot say where to go: it holds.
        assert_eq!(ceiling.update(t0 + 2_000 * MS, 200 * MS, None), grown);
        // Near that rate (above 810 kbit/s), 2 % a second.
        let near = ceiling.update(t0 + 3_000 * MS, 10 * MS, None);
        assert!((near - grown * 1.02).abs() < 1.0, "{near}");
        // Thirty seconds after the overuse that rate is no longer known: 8 % again.
        let later = ceiling.update(t0 + 30_400 * MS, 10 * MS, None);
        assert!((later - near * 1.08).abs() < 1.0, "{later}");
    }
}
