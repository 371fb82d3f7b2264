//! The congestion estimate peerdesk sends at: webrtc-rs's GCC, whose increases are capped at 1.5 times the rate
//! the viewer acknowledges plus 10 kbit/s, as libwebrtc's AIMD rate control caps them, and held under the
//! ceiling the link's queue sets ([`super::queue_delay`]). Plain logic with time passed in.
//!
//! Why: GCC raises its estimate by 5 % every 200 ms while loss stays under 2 %, whatever is actually sent. A
//! host that sends less than the estimate (a still picture, a half-size one) let it climb to twice a 500 kbit/s
//! link (measured: 150 kbit/s → 1.05 Mbit/s in 10 s); the encoder then followed it, the link's queue overflowed,
//! and the loss crashed the estimate to its floor — a 20 s cycle of freezes and keyframes. With the cap the
//! estimate can only run ahead of what the link has shown it carries by half.

use super::queue_delay::QueueCeiling;
use rtc::interceptor::{BandwidthEstimator, EstimatorStats, Gcc, PacketReport};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How far an increase may run ahead of the acknowledged rate (libwebrtc's `AimdRateControl`: 1.5 × + 10 kbit/s).
const INCREASE_CAP_FACTOR: f64 = 1.5;
/// Added to the cap so that a nearly idle stream can still grow, bit/s.
const INCREASE_CAP_HEADROOM_BPS: f64 = 10_000.0;

/// How far back the acknowledged rate is measured, in the viewer's arrival times.
const ACKNOWLEDGED_WINDOW: Duration = Duration::from_millis(500);
/// Packets the window holds at most (500 ms at 100 Mbit/s of 1,200-byte packets is ~5,000); the oldest go first.
const ACKNOWLEDGED_MAX_PACKETS: usize = 8_192;

/// The rate the viewer received at, from the arrival times it reported (not from when its feedback reached the
/// host: feedback comes in batches, and a window of a few batches over-counts by one).
#[derive(Debug, Default)]
struct AcknowledgedRate {
    arrivals: VecDeque<(Duration, usize)>,
    bytes: usize,
    last_bps: Option<f64>,
}

impl AcknowledgedRate {
    fn on_arrival(&mut self, arrival: Duration, size: usize) {
        // Feedback lists packets by transport sequence number, so arrivals come nearly in order; a reordered one
        // counts at the newest time seen.
        let arrival = self.arrivals.back().map_or(arrival, |&(newest, _)| arrival.max(newest));
        self.arrivals.push_back((arrival, size));
        self.bytes += size;
        while let Some(&(oldest, oldest_size)) = self.arrivals.front() {
            if arrival.saturating_sub(oldest) <= ACKNOWLEDGED_WINDOW && self.arrivals.len() <= ACKNOWLEDGED_MAX_PACKETS
            {
                break;
            }
            self.arrivals.pop_front();
            self.bytes -= oldest_size;
        }
        if let (Some(&(oldest, first_size)), Some(&(newest, _))) = (self.arrivals.front(), self.arrivals.back()) {
            let span = newest.saturating_sub(oldest);
            // The first packet's bytes arrived before the span began.
            if span >= ACKNOWLEDGED_WINDOW / 4 {
                self.last_bps = Some((self.bytes - first_size) as f64 * 8.0 / span.as_secs_f64());
            }
        }
    }

    /// The latest measurement; kept while nothing arrives (a still picture sends nothing to measure).
    fn bits_per_second(&self) -> Option<f64> {
        self.last_bps
    }
}

/// GCC with its increases capped by the acknowledged rate.
pub(crate) struct CappedGcc {
    gcc: Gcc,
    acknowledged: AcknowledgedRate,
    queue: QueueCeiling,
    min: f64,
    target: f64,
}

impl CappedGcc {
    /// Starts at `initial` bit/s, kept within `min..=max`.
    pub(crate) fn new(initial: f64, min: f64, max: f64) -> Self {
        CappedGcc {
            gcc: Gcc::new(initial, min, max),
            acknowledged: AcknowledgedRate::default(),
            queue: QueueCeiling::default(),
            min,
            target: initial.clamp(min, max),
        }
    }
}

impl BandwidthEstimator for CappedGcc {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        self.gcc.on_reports(now, reports);
        for report in reports {
            if let (true, Some(arrival)) = (report.arrived, report.arrival) {
                self.acknowledged.on_arrival(arrival, report.size);
            }
        }
        let arrivals = reports
            .iter()
            .filter(|report| report.arrived)
            .filter_map(|report| Some((report.departure, report.arrival?)));
        let queue = self.queue.on_batch(arrivals).unwrap_or_else(|| self.queue.queue());
        let ceiling = self.queue.update(now, queue, self.acknowledged.bits_per_second());
        let proposed = self.gcc.target_bitrate();
        let target = if proposed > self.target {
            let cap = self
                .acknowledged
                .bits_per_second()
                .map_or(f64::INFINITY, |acked| acked * INCREASE_CAP_FACTOR + INCREASE_CAP_HEADROOM_BPS);
            proposed.min(cap.max(self.target))
        } else {
            proposed
        };
        self.target = target.min(ceiling).max(self.min);
    }

    fn target_bitrate(&self) -> f64 {
        self.target
    }

    fn stats(&self) -> EstimatorStats {
        self.gcc.stats()
    }
}
