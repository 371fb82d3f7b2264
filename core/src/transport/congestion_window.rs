//! A congestion window in front of the wire, as libwebrtc's (`WebRTC-CongestionWindow`, on in Chrome): the host
//! keeps at most `estimate × (feedback round trip + QUEUE_ALLOWANCE)` bytes sent but not yet reported on by the
//! viewer's transport-wide feedback, and holds the rest back until feedback arrives. Plain logic with time passed
//! in ([`CongestionWindow`]); [`CongestionWindowGate`] applies it between the transport-wide sequence numbering
//! and congestion control's send history.
//!
//! Why: the pacer sends at 2.5 times the estimate, so that a keyframe leaves in a few frame times. On a link
//! narrower than that, a keyframe larger than the link's queue overflows it: measured at a 500 kbit/s cap with a
//! 200 ms queue, every half-size keyframe (~40 kB) lost its tail, the repairs went into the same full queue and
//! were lost again, and the lost keyframe was asked for again — a cycle of freezes. With the window, what the
//! link's queue cannot take waits here instead, and leaves as feedback reports the queue draining.

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;
use rtc::sansio::Protocol;
use rtc::shared::marshal::MarshalSize;
use super::retransmission_budget::{is_retransmission, SharedDepartures};
use super::windowed_min::WindowedMin;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Time added to the round trip in the window: how much queueing the window allows (libwebrtc: 350 ms). Lower
/// than libwebrtc's because peerdesk's viewer plays at once: a queue is latency.
const QUEUE_ALLOWANCE: Duration = Duration::from_millis(250);
/// The smallest window, bytes: a few packets, so that a tiny estimate still moves.
const MIN_WINDOW_BYTES: usize = 4 * 1_200;
/// Sent packets no feedback has covered after this long count as lost (their feedback was): they stop holding
/// the window shut.
const FEEDBACK_TIMEOUT: Duration = Duration::from_secs(1);
/// Packets tracked at most; beyond it the oldest is forgotten (10 Mbit/s for a second is ~1,000).
const MAX_TRACKED: usize = 4_096;
/// Packets held back at most. When it is full the gate opens for the oldest (the pacer's own queue bound is
/// 4,096 packets; a backlog this large is seconds of video and latency anyway).
const MAX_HELD: usize = 2_048;
/// How long the path's base round trip is remembered: the smallest feedback delay over this long is the round
/// trip without a queue in it. libwebrtc takes the smallest of the last 32 feedbacks (1.5–3 s); through a standing
/// queue all of those hold the queue, and a window grown from them allows the queue again on top of it (measured at a
/// 500 kbit/s cap: a 500 ms queue read as a 500 ms round trip, a 94 kB window, and the link's queue overflowed).
const BASE_ROUND_TRIP_HORIZON: Duration = Duration::from_secs(10);
/// Feedback delays kept for the base round trip at most (feedback comes every 50–100 ms: ~200 in the horizon).
const MAX_ROUND_TRIP_SAMPLES: usize = 1_024;
/// Feedback delays the current one is the smallest of: a feedback's newest packet waited up to the feedback's
/// interval for it, the smallest of a few did not.
const RECENT_SAMPLES: usize = 3;
/// The link's queue (the current feedback delay over the base round trip) above which the encoder is pushed back
/// by 5 % per feedback, and above twice which by 10 %. The window alone does not keep it short: it allows
/// `QUEUE_ALLOWANCE` at the estimate, and an estimate above the link's rate (GCC runs up to 1.5 times what the
/// link has carried) makes that a longer queue at the link's rate (measured at a 500 kbit/s cap: 25 kB in flight
/// at an 811 kbit/s estimate, 400 ms in the link's queue, p95 glass-to-glass 0.4–0.5 s).
const QUEUE_DELAY_LIMIT: Duration = Duration::from_millis(100);
/// The smallest share of the estimate the encoder is pushed back to.
const MIN_ENCODER_RATIO: f64 = 0.3;
/// While the window is shut, one held packet leaves this long after the last one anyway (libwebrtc's pacer:
/// 500 ms while congested). Feedback only reports packets the viewer has seen or knows are missing: when the
/// last packets before the window closed were all lost (a burst of loss, a cut), the viewer knows of nothing to
/// report, no feedback comes, and without this packet the window would stay shut until `FEEDBACK_TIMEOUT`.
/// Shorter than libwebrtc's because the picture waits behind it.
const CONGESTED_PACKET_INTERVAL: Duration = Duration::from_millis(100);
/// Without any feedback for this long the path counts as cut (or the viewer as one that sends no feedback): the
/// gate lets everything through, as if there were no window, until feedback comes again. Holding media through
/// a cut only delivers it stale when the link returns (measured: a 3 s cut's backlog put p95 at 2.9 s, and a
/// 10 s cut's picture came back 2.5 s after the link instead of 0.3 s).
const FEEDBACK_SILENCE: Duration = Duration::from_millis(500);
/// The round trip assumed before feedback has measured one.
const INITIAL_ROUND_TRIP: Duration = Duration::from_millis(100);

/// The path's round trip as transport-wide feedback measures it (smoothed 1/8, so it includes the link's
/// queue but not the pacer's), written by [`CongestionWindowGate`] and read by the retransmission budget.
#[derive(Debug, Clone, Default)]
pub(crate) struct SharedRoundTrip(Arc<AtomicU64>);

impl SharedRoundTrip {
    fn set(&self, round_trip: Duration) {
        let micros = u64::try_from(round_trip.as_micros()).unwrap_or(u64::MAX).max(1);
        self.0.store(micros, Ordering::Relaxed);
    }

    /// The latest measurement; `None` before the first feedback.
    pub(crate) fn get(&self) -> Option<Duration> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            micros => Some(Duration::from_micros(micros)),
        }
    }
}

/// How long the media this viewer's window holds back would take to leave at the estimate (the sender's queue in
/// front of the link), written by [`CongestionWindowGate`] whenever it changes and read by the encode thread,
/// which lets changed pictures wait while it is long (see [`crate::send::backlog`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct SharedBacklog(pub(crate) Arc<AtomicU64>);

impl SharedBacklog {
    fn set(&self, backlog: Duration) {
        self.0
            .store(u64::try_from(backlog.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The latest value.
    pub(crate) fn get(&self) -> Duration {
        Duration::from_micros(self.0.load(Ordering::Relaxed))
    }
}

/// The bitrate the encoder should aim at, bit/s (the estimate pushed back while the window is full or the link's
/// queue long), written by [`CongestionWindowGate`] whenever it announces one and read by the viewer's task a few
/// times a second. The connection's statistics carry the same figure, but reading them is a whole report: read
/// once a second, a pushback reached the encoder up to a second late while it went on filling the link's queue.
#[derive(Debug, Clone, Default)]
pub(crate) struct SharedEncoderTarget(Arc<AtomicU64>);

impl SharedEncoderTarget {
    fn set(&self, bits_per_second: f64) {
        self.0.store(bits_per_second.max(1.0) as u64, Ordering::Relaxed);
    }

    /// The latest target, bit/s; `None` before congestion control announced one.
    pub(crate) fn get(&self) -> Option<f64> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            bits_per_second => Some(bits_per_second as f64),
        }
    }
}

/// The bitrate the encoder should aim at (the estimate, pushed back while the window is full), bit/s: a custom
/// attribute on the read leg, which `peer` turns into the estimate the application sees, above the pacer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct EncoderTarget(pub f64);

#[derive(Debug, Clone, Copy)]
struct InFlight {
    sequence_number: u16,
    bytes: usize,
    sent: Instant,
}

/// The bytes in flight against the window, by transport-wide sequence number.
#[derive(Debug)]
pub(crate) struct CongestionWindow {
    estimate_bps: f64,
    /// The smallest feedback delay over [`BASE_ROUND_TRIP_HORIZON`]: the path's round trip without the queue this
    /// window allows.
    base_round_trips: WindowedMin<Duration>,
    /// The last [`RECENT_SAMPLES`] feedback delays.
    recent_round_trips: VecDeque<Duration>,
    /// The feedback delay smoothed 1/8 (TCP's SRTT): the round trip with the link's queue in it.
    smoothed_round_trip: Option<Duration>,
    in_flight: VecDeque<InFlight>,
    in_flight_bytes: usize,
    encoder_ratio: f64,
}

/// Whether `a` comes before `b` in 16-bit sequence space.
fn precedes(a: u16, b: u16) -> bool {
    (b.wrapping_sub(a) as i16) > 0
}

impl CongestionWindow {
    /// A window for `estimate_bps` until the first estimate arrives.
    pub(crate) fn new(estimate_bps: f64) -> Self {
        CongestionWindow {
            estimate_bps,
            base_round_trips: WindowedMin::new(BASE_ROUND_TRIP_HORIZON, MAX_ROUND_TRIP_SAMPLES),
            recent_round_trips: VecDeque::with_capacity(RECENT_SAMPLES),
            smoothed_round_trip: None,
            in_flight: VecDeque::new(),
            in_flight_bytes: 0,
            encoder_ratio: 1.0,
        }
    }

    /// A new congestion estimate, bit/s.
    pub(crate) fn set_estimate(&mut self, bits_per_second: f64) {
        if bits_per_second.is_finite() && bits_per_second > 0.0 {
            self.estimate_bps = bits_per_second;
        }
    }

    /// How long `bytes` take to leave at the estimate.
    pub(crate) fn time_to_send(&self, bytes: usize) -> Duration {
        Duration::from_secs_f64((bytes as f64 * 8.0 / self.estimate_bps).min(60.0))
    }

    /// The window, bytes.
    pub(crate) fn window_bytes(&self) -> usize {
        let round_trip = self.base_round_trip().unwrap_or(INITIAL_ROUND_TRIP);
        let bytes = self.estimate_bps / 8.0 * (round_trip + QUEUE_ALLOWANCE).as_secs_f64();
        (bytes as usize).max(MIN_WINDOW_BYTES)
    }

    /// Bytes sent and not yet covered by feedback.
    pub(crate) fn in_flight_bytes(&self) -> usize {
        self.in_flight_bytes
    }

    /// Whether another packet may leave now.
    pub(crate) fn is_open(&self) -> bool {
        self.in_flight_bytes < self.window_bytes()
    }

    /// Notes packet `sequence_number` (transport-wide), `bytes` long, leaving at `now`.
    pub(crate) fn on_sent(&mut self, now: Instant, sequence_number: u16, bytes: usize) {
        if self.in_flight.len() == MAX_TRACKED {
            self.forget_oldest();
        }
        self.in_flight.push_back(InFlight {
            sequence_number,
            bytes,
            sent: now,
        });
        self.in_flight_bytes += bytes;
    }

    fn forget_oldest(&mut self) -> Option<InFlight> {
        let oldest = self.in_flight.pop_front()?;
        self.in_flight_bytes -= oldest.bytes;
        Some(oldest)
    }

    /// Notes feedback arriving at `now` that reports on `count` packets from `base` on (received or lost: either
    /// way they have left the network). Everything sent before them leaves the window too.
    pub(crate) fn on_feedback(&mut self, now: Instant, base: u16, count: u16) {
        let end = base.wrapping_add(count);
        let mut newest_covered = None;
        while let Some(front) = self.in_flight.front() {
            if !precedes(front.sequence_number, end) {
                break;
            }
            newest_covered = self.forget_oldest();
        }
        if let Some(packet) = newest_covered {
            // The newest packet a feedback covers waited least for it: its delay is the round trip plus the
            // feedback's own interval at most.
            let sample = now.saturating_duration_since(packet.sent).min(FEEDBACK_TIMEOUT);
            self.note_round_trip(now, sample);
            self.smoothed_round_trip = Some(match self.smoothed_round_trip {
                None => sample,
                Some(old) => (old * 7 + sample) / 8,
            });
        }
    }

    /// Notes a feedback delay measured at `now`.
    fn note_round_trip(&mut self, now: Instant, sample: Duration) {
        self.base_round_trips.push(now, sample);
        if self.recent_round_trips.len() == RECENT_SAMPLES {
            self.recent_round_trips.pop_front();
        }
        self.recent_round_trips.push_back(sample);
    }

    /// The path's round trip without a queue: the smallest feedback delay of the last
    /// [`BASE_ROUND_TRIP_HORIZON`]; `None` before the first feedback.
    pub(crate) fn base_round_trip(&self) -> Option<Duration> {
        self.base_round_trips.min()
    }

    /// How long packets now wait in the link's queue: the smallest of the last few feedback delays over the base
    /// round trip; zero before feedback.
    pub(crate) fn queue_delay(&self) -> Duration {
        if self.in_flight_bytes == 0 {
            // Everything sent was reported on: whatever the last delays said, nothing is queued now. (Without
            // this a still picture, which sends nothing and so hears no new delay, would keep the last one.)
            return Duration::ZERO;
        }
        match (self.recent_round_trips.iter().min(), self.base_round_trip()) {
            (Some(&recent), Some(base)) => recent.saturating_sub(base),
            _ => Duration::ZERO,
        }
    }

    /// The feedback delay smoothed, queue included; `None` before the first feedback.
    pub(crate) fn smoothed_round_trip(&self) -> Option<Duration> {
        self.smoothed_round_trip
    }

    /// Updates the encoder's share of the estimate from how full the window is with `held_bytes` waiting in
    /// front of it (libwebrtc's `CongestionWindowPushbackController`) and from the link's queue: over 1.5 windows
    /// outstanding or twice [`QUEUE_DELAY_LIMIT`] queued it shrinks by 10 %, over one window or the limit by 5 %,
    /// under a tenth of a window with under half the limit queued it is whole again, in between it grows back by
    /// 5 %. Called once per feedback. Without it a backlog held here would only grow: the window turns the link's
    /// losses, which were what lowered the estimate, into waiting.
    pub(crate) fn update_encoder_ratio(&mut self, held_bytes: usize) {
        let fill = (self.in_flight_bytes + held_bytes) as f64 / self.window_bytes() as f64;
        let queued = self.queue_delay();
        self.encoder_ratio = if fill > 1.5 || queued > QUEUE_DELAY_LIMIT * 2 {
            self.encoder_ratio * 0.9
        } else if fill > 1.0 || queued > QUEUE_DELAY_LIMIT {
            self.encoder_ratio * 0.95
        } else if fill < 0.1 && queued < QUEUE_DELAY_LIMIT / 2 {
            1.0
        } else {
            self.encoder_ratio * 1.05
        }
        .clamp(MIN_ENCODER_RATIO, 1.0);
    }

    /// What the encoder should aim at, bit/s: the estimate times the share the window's fill allows.
    pub(crate) fn encoder_target_bps(&self) -> f64 {
        self.estimate_bps * self.encoder_ratio
    }

    /// Forgets every packet in flight (the path was cut: no feedback will cover them).
    pub(crate) fn clear(&mut self) {
        self.in_flight.clear();
        self.in_flight_bytes = 0;
        // The delays measured are kept: the first ones after a cut hold the queue the cut left (measured: a base
        // measured again read 280 ms of queue as round trip). A path that comes back longer (a relay) reads as
        // queue until [`BASE_ROUND_TRIP_HORIZON`] has passed.
        self.recent_round_trips.clear();
    }

    /// Forgets packets no feedback covered within [`FEEDBACK_TIMEOUT`].
    pub(crate) fn expire(&mut self, now: Instant) {
        while self
            .in_flight
            .front()
            .is_some_and(|packet| now.saturating_duration_since(packet.sent) >= FEEDBACK_TIMEOUT)
        {
            self.forget_oldest();
        }
    }

    /// When the oldest packet in flight stops counting.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.in_flight.front().map(|packet| packet.sent + FEEDBACK_TIMEOUT)
    }
}

/// The interceptor applying [`CongestionWindow`] to the media streams that carry transport-wide sequence numbers
/// (retransmissions, RTCP and anything else pass at once). It sits wire-ward of the numbering (2_000) and
/// application-ward of congestion control (1_000), so that the send history records when a held packet really
/// left and the estimator never mistakes this wait for the network's.
pub(crate) struct CongestionWindowGate {
    window: CongestionWindow,
    /// Transport-wide sequence number extension id, by media SSRC.
    extension_ids: HashMap<u32, u8>,
    /// Packets held back, with their sizes.
    held: VecDeque<(TaggedPacket, usize)>,
    /// The media bytes in `held`.
    held_bytes: usize,
    backlog: SharedBacklog,
    encoder_target: SharedEncoderTarget,
    /// When each media packet left (for the retransmission limiter's age rule).
    departures: SharedDepartures,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
    /// The target last passed up, bit/s.
    announced_bps: f64,
    round_trip: SharedRoundTrip,
    /// When a packet last left.
    last_sent: Option<Instant>,
    /// When feedback last arrived, or (before any) when the first packet left.
    heard_from: Option<Instant>,
    /// No feedback for [`FEEDBACK_SILENCE`]: everything passes untracked.
    silent: bool,
}

impl CongestionWindowGate {
    /// A gate starting at `start_bitrate_bps`, publishing its round trip to `round_trip`, what it holds back to
    /// `backlog`, the encoder's target to `encoder_target` and when each media packet left to `departures`.
    pub(crate) fn new(
        start_bitrate_bps: f64,
        round_trip: SharedRoundTrip,
        backlog: SharedBacklog,
        encoder_target: SharedEncoderTarget,
        departures: SharedDepartures,
    ) -> Self {
        CongestionWindowGate {
            window: CongestionWindow::new(start_bitrate_bps),
            extension_ids: HashMap::new(),
            held: VecDeque::new(),
            held_bytes: 0,
            backlog,
            encoder_target,
            departures,
            read: VecDeque::new(),
            write: VecDeque::new(),
            announced_bps: start_bitrate_bps,
            round_trip,
            last_sent: None,
            heard_from: None,
            silent: false,
        }
    }

    /// The transport-wide sequence number and size of a media packet, or `None` for anything the window does not
    /// govern.
    fn numbered(&self, msg: &TaggedPacket) -> Option<(u16, usize)> {
        let Packet::Rtp(packet) = &msg.message.packet else {
            return None;
        };
        if is_retransmission(msg) {
            return None;
        }
        let id = *self.extension_ids.get(&packet.header.ssrc)?;
        let extension = packet.header.get_extension(id)?;
        let sequence_number = u16::from_be_bytes([*extension.first()?, *extension.get(1)?]);
        Some((sequence_number, packet.marshal_size()))
    }

    /// Holds `msg` (a numbered media packet of `bytes`) back.
    fn hold(&mut self, msg: TaggedPacket, bytes: usize) {
        self.held.push_back((msg, bytes));
        self.held_bytes += bytes;
    }

    /// The oldest packet held back, no longer held.
    fn unhold(&mut self) -> Option<TaggedPacket> {
        let (msg, bytes) = self.held.pop_front()?;
        self.held_bytes -= bytes;
        Some(msg)
    }

    /// Publishes how long what is held back would take to leave at the estimate. The first few packets
    /// ([`MIN_WINDOW_BYTES`]) do not count: a window that is just full holds a packet or two as it fills and
    /// empties, and at a low estimate those alone would read as a queue and hold the encoder back while nothing
    /// waits for long (measured at 1 Mbit/s with a 30 ms limit that counted them: freezes of 1.6–4 s).
    ///
    /// The link's own queue counts too ([`CongestionWindow::queue_delay`]): a picture sent into it waits as long,
    /// and only a picture that waits here stops it growing at once (the encoder's rate follows a lower target over
    /// several pictures).
    fn publish_backlog(&self) {
        let queued = self.held_bytes.saturating_sub(MIN_WINDOW_BYTES);
        self.backlog.set(self.window.time_to_send(queued) + self.window.queue_delay());
    }

    /// Notes when an original RTP packet (not a retransmission) leaves, for the retransmission limiter.
    fn note_departure(&self, msg: &TaggedPacket, now: Instant) {
        if let Packet::Rtp(packet) = &msg.message.packet {
            if !is_retransmission(msg) {
                self.departures
                    .record(packet.header.ssrc, packet.header.sequence_number, now);
            }
        }
    }

    /// Sends `msg` at `now` and counts it against the window (unless the path is silent).
    fn send(&mut self, now: Instant, mut msg: TaggedPacket) {
        if let Some((sequence_number, bytes)) = self.numbered(&msg) {
            self.heard_from.get_or_insert(now);
            if !self.silent {
                self.window.on_sent(now, sequence_number, bytes);
            }
        }
        self.note_departure(&msg, now);
        // Congestion control records the departure from this instant.
        msg.now = now;
        self.last_sent = Some(now);
        self.write.push_back(msg);
    }

    /// Notes the path going silent at `now` once no feedback has come for [`FEEDBACK_SILENCE`]: what is held
    /// leaves, and nothing is counted in flight until feedback returns.
    fn check_silence(&mut self, now: Instant) {
        let quiet_for = |heard: Instant| now.saturating_duration_since(heard);
        if self.silent || self.heard_from.is_none_or(|heard| quiet_for(heard) < FEEDBACK_SILENCE) {
            return;
        }
        tracing::debug!(held = self.held.len(), "no feedback for 500 ms: the congestion window opens until it returns");
        self.silent = true;
        self.window.clear();
        while let Some(msg) = self.unhold() {
            self.send(now, msg);
        }
    }

    /// When a held packet leaves although the window is shut (see [`CONGESTED_PACKET_INTERVAL`]).
    fn congested_packet_due(&self) -> Option<Instant> {
        if self.held.is_empty() {
            return None;
        }
        Some(self.last_sent? + CONGESTED_PACKET_INTERVAL)
    }

    /// Sends what the window now admits, oldest first.
    fn release(&mut self, now: Instant) {
        while self.window.is_open() {
            let Some(msg) = self.unhold() else {
                break;
            };
            self.send(now, msg);
        }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for CongestionWindowGate {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        let now = msg.now;
        let mut estimate_changed = false;
        for attribute in &msg.message.attributes {
            if let Attribute::TargetBitrateChanged { bits_per_second } = attribute {
                self.window.set_estimate(*bits_per_second);
                estimate_changed = true;
            }
        }
        let mut feedback_arrived = false;
        if let Packet::Rtcp(packets) = &msg.message.packet {
            for feedback in packets.iter().filter_map(|p| p.as_any().downcast_ref::<TransportLayerCc>()) {
                if self.silent {
                    tracing::debug!("feedback again: the congestion window applies again");
                    self.silent = false;
                }
                self.heard_from = Some(now);
                self.window
                    .on_feedback(now, feedback.base_sequence_number, feedback.packet_status_count);
                feedback_arrived = true;
            }
        }
        self.window.expire(now);
        self.release(now);
        if feedback_arrived {
            self.window.update_encoder_ratio(self.held_bytes);
            if let Some(round_trip) = self.window.smoothed_round_trip() {
                self.round_trip.set(round_trip);
            }
            tracing::trace!(
                held = self.held.len(),
                in_flight = self.window.in_flight_bytes(),
                window = self.window.window_bytes(),
                queue_delay_ms = self.window.queue_delay().as_millis(),
                encoder_target = self.window.encoder_target_bps(),
                "congestion window"
            );
        }
        // The encoder's target rides up as an attribute of its own, announced with every new estimate and whenever
        // it moves by more than 2 %; the estimate itself goes on unchanged to the pacer and the retransmission
        // budget (a pacer slowed by the pushback would only deepen the backlog).
        let target = self.window.encoder_target_bps();
        let moved = (target - self.announced_bps).abs() > self.announced_bps * 0.02;
        if estimate_changed || moved {
            msg.message.add(Attribute::Custom(Arc::new(EncoderTarget(target))));
            self.encoder_target.set(target);
            self.announced_bps = target;
        }
        self.publish_backlog();
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        let now = msg.now;
        let Some((_, bytes)) = self.numbered(&msg) else {
            self.note_departure(&msg, now);
            self.write.push_back(msg);
            return Ok(());
        };
        self.window.expire(now);
        self.check_silence(now);
        if self.silent || (self.held.is_empty() && self.window.is_open()) {
            self.send(now, msg);
            self.publish_backlog();
            return Ok(());
        }
        if self.held.len() == MAX_HELD {
            if let Some(oldest) = self.unhold() {
                tracing::debug!(held = MAX_HELD, "congestion window backlog full: the oldest packet leaves anyway");
                self.send(now, oldest);
            }
        }
        self.hold(msg, bytes);
        self.publish_backlog();
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Self::Error> {
        self.window.expire(now);
        self.check_silence(now);
        self.release(now);
        if self.congested_packet_due().is_some_and(|due| now >= due) {
            if let Some(msg) = self.unhold() {
                self.send(now, msg);
            }
        }
        self.publish_backlog();
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        if self.held.is_empty() {
            return None;
        }
        let silence = self.heard_from.map(|heard| heard + FEEDBACK_SILENCE);
        [self.window.next_expiry(), self.congested_packet_due(), silence].into_iter().flatten().min()
    }
}

impl Interceptor for CongestionWindowGate {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        let id = info
            .rtp_header_extensions
            .iter()
            .find(|extension| extension.uri == rtc::sdp::extmap::TRANSPORT_CC_URI)
            .and_then(|extension| u8::try_from(extension.id).ok());
        if let Some(id) = id {
            self.extension_ids.insert(info.ssrc, id);
        }
    }
    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.extension_ids.remove(&info.ssrc);
    }
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_window_is_the_estimate_over_a_round_trip_and_the_queue_allowance() {
        let t0 = Instant::now();
        let mut window = CongestionWindow::new(400_000.0);
        // 400 kbit/s over 100 ms (assumed) + 250 ms = 17.5 kB.
        assert_eq!(window.window_bytes(), 17_500);
        window.on_sent(t0, 10, 1_000);
        window.on_feedback(t0 + 50 * MS, 10, 1);
        // Measured 50 ms: 400 kbit/s × 300 ms = 15 kB.
        assert_eq!(window.window_bytes(), 15_000);
        window.set_estimate(f64::NAN);
        assert_eq!(window.window_bytes(), 15_000);
        window.set_estimate(10_000.0);
        assert_eq!(window.window_bytes(), MIN_WINDOW_BYTES);
    }

    #[test]
    fn a_standing_queue_does_not_grow_the_window_and_reads_as_queue_delay() {
        let t0 = Instant::now();
        let mut window = CongestionWindow::new(400_000.0);
        let mut seq = 0u16;
        let mut feedback_after = |window: &mut CongestionWindow, at: Duration, delay: Duration| {
            window.on_sent(t0 + at - delay, seq, 1_000);
            window.on_feedback(t0 + at, seq, 1);
            seq += 1;
        };
        // An empty path: 20 ms.
        for i in 0..5u32 {
            feedback_after(&mut window, 100 * MS * i + MS * 20, 20 * MS);
        }
        assert_eq!(window.base_round_trip(), Some(20 * MS));
        assert_eq!(window.window_bytes(), 13_500); // 400 kbit/s × (20 + 250) ms
        // Then 64 feedbacks (more than libwebrtc's 32) through a 400 ms standing queue, the last still in flight.
        for i in 0..64u32 {
            feedback_after(&mut window, Duration::from_secs(1) + 50 * MS * i, 420 * MS);
        }
        window.on_sent(t0 + Duration::from_secs(5) - 400 * MS, seq, 1_000);
        assert_eq!(window.base_round_trip(), Some(20 * MS), "the queue is not the round trip");
        assert_eq!(window.window_bytes(), 13_500);
        assert_eq!(window.queue_delay(), 400 * MS);
        // Everything reported on: nothing can be queued, whatever the last delays were.
        window.on_feedback(t0 + Duration::from_secs(5) + 20 * MS, seq, 1);
        assert_eq!(window.in_flight_bytes(), 0);
        assert_eq!(window.queue_delay(), Duration::ZERO);
        // Ten seconds on, the old path's delay is forgotten and the queue's is the base.
        let later = Duration::from_secs(12);
        window.on_sent(t0 + later - 420 * MS, 9_000, 1_000);
        window.on_feedback(t0 + later, 9_000, 1);
        assert_eq!(window.base_round_trip(), Some(420 * MS));
    }

    #[test]
    fn the_smallest_of_the_last_few_delays_is_the_queue() {
        // A feedback's newest packet waited up to the feedback interval for it: one long delay among short ones is
        // not a queue.
        let t0 = Instant::now();
        let mut window = CongestionWindow::new(400_000.0);
        for (i, delay_ms) in [10u64, 10, 90, 10, 95].into_iter().enumerate() {
            let at = Duration::from_millis(100 * i as u64 + 100);
            window.on_sent(t0 + at - Duration::from_millis(delay_ms), i as u16, 1_000);
            window.on_feedback(t0 + at, i as u16, 1);
        }
        window.on_sent(t0 + Duration::from_secs(1), 100, 1_000);
        assert_eq!(window.queue_delay(), Duration::ZERO);
    }

    #[test]
    fn feedback_empties_the_window_up_to_what_it_covers() {
        let t0 = Instant::now();
        let mut window = CongestionWindow::new(400_000.0);
        for seq in 0..15u16 {
            window.on_sent(t0, 65_530u16.wrapping_add(seq), 1_200);
        }
        assert_eq!(window.in_flight_bytes(), 18_000);
        assert!(!window.is_open());
        // Feedback on 65,533..65,537 (across the wrap): the three before it are gone too.
        window.on_feedback(t0 + 40 * MS, 65_533, 5);
        assert_eq!(window.in_flight_bytes(), 7 * 1_200);
        assert!(window.is_open());
        // Old feedback changes nothing.
        window.on_feedback(t0 + 41 * MS, 65_530, 2);
        assert_eq!(window.in_flight_bytes(), 7 * 1_200);
    }

    const SSRC: u32 = 7;
    const EXTENSION_ID: u8 = 3;

    fn gate() -> CongestionWindowGate {
        gate_publishing_to(SharedBacklog::default())
    }

    fn gate_publishing_to(backlog: SharedBacklog) -> CongestionWindowGate {
        let mut gate = CongestionWindowGate::new(
            400_000.0,
            SharedRoundTrip::default(),
            backlog,
            SharedEncoderTarget::default(),
            SharedDepartures::default(),
        );
        gate.bind_local_stream(&stream_info());
        gate
    }

    /// The media stream, with its transport-wide sequence number extension.
    fn stream_info() -> StreamInfo {
        StreamInfo {
            ssrc: SSRC,
            rtp_header_extensions: vec![rtc::interceptor::RTPHeaderExtension {
                uri: rtc::sdp::extmap::TRANSPORT_CC_URI.to_owned(),
                id: u16::from(EXTENSION_ID),
            }],
            ..Default::default()
        }
    }

    fn media(now: Instant, transport_sequence: u16) -> TaggedPacket {
        let mut packet = rtc::rtp::Packet {
            header: rtc::rtp::header::Header {
                ssrc: SSRC,
                sequence_number: transport_sequence,
                ..Default::default()
            },
            payload: vec![0; 1_180].into(),
        };
        packet
            .header
            .set_extension(EXTENSION_ID, transport_sequence.to_be_bytes().to_vec().into())
            .unwrap();
        TaggedPacket {
            now,
            transport: Default::default(),
            message: rtc::interceptor::AttributedPacket::new(Packet::Rtp(packet)),
        }
    }

    fn feedback(now: Instant, base: u16, count: u16) -> TaggedPacket {
        let feedback = TransportLayerCc {
            base_sequence_number: base,
            packet_status_count: count,
            ..Default::default()
        };
        TaggedPacket {
            now,
            transport: Default::default(),
            message: rtc::interceptor::AttributedPacket::new(Packet::Rtcp(vec![Box::new(feedback)])),
        }
    }

    fn drain_writes(gate: &mut CongestionWindowGate) -> Vec<TaggedPacket> {
        std::iter::from_fn(|| gate.poll_write()).collect()
    }

    fn announced(gate: &mut CongestionWindowGate) -> Option<f64> {
        let mut last = None;
        while let Some(msg) = gate.poll_read() {
            if let Some(EncoderTarget(bps)) = msg.message.custom::<EncoderTarget>() {
                last = Some(*bps);
            }
        }
        last
    }

    #[test]
    fn the_gate_holds_what_the_window_cannot_take_and_feedback_lets_it_go() {
        let t0 = Instant::now();
        let mut gate = gate();
        // A 40-packet keyframe against a 17.5 kB window (400 kbit/s × 350 ms).
        for seq in 0..40u16 {
            gate.handle_write(media(t0, seq)).unwrap();
        }
        let first = drain_writes(&mut gate);
        assert_eq!(first.len(), 15, "17.5 kB of ~1.2 kB packets, the last one opening past the window");
        // Feedback on the first ten after 30 ms: the window is now 400 kbit/s × 280 ms = 14 kB, five packets are
        // still in flight, so seven more leave, stamped with the feedback's time (congestion control records
        // departures from it).
        let t1 = t0 + Duration::from_millis(30);
        gate.handle_read(feedback(t1, 0, 10)).unwrap();
        let released = drain_writes(&mut gate);
        assert_eq!(released.len(), 7);
        assert!(released.iter().all(|msg| msg.now == t1));
        // Anything without a transport-wide number (RTCP here) passes at once, whatever the window.
        gate.handle_write(feedback(t1, 0, 0)).unwrap();
        assert_eq!(drain_writes(&mut gate).len(), 1);
    }

    #[test]
    fn what_the_gate_holds_back_is_published_as_time_at_the_estimate() {
        let t0 = Instant::now();
        let backlog = SharedBacklog::default();
        let mut gate = gate_publishing_to(backlog.clone());
        for seq in 0..40u16 {
            gate.handle_write(media(t0, seq)).unwrap();
        }
        assert_eq!(drain_writes(&mut gate).len(), 15);
        // 25 packets of 1,200 bytes (with their header and extension) held, four of them the window's own
        // granularity: 21 × 9,600 bits at 400 kbit/s, 504 ms.
        let held = backlog.get();
        assert_eq!(held, Duration::from_millis(504));
        // Feedback on everything sent lets some of it go.
        gate.handle_read(feedback(t0 + 100 * MS, 0, 40)).unwrap();
        let left = drain_writes(&mut gate).len();
        let queued = ((25 - left) * 1_200).saturating_sub(MIN_WINDOW_BYTES);
        let expected = Duration::from_secs_f64(queued as f64 * 8.0 / 400_000.0);
        assert_eq!(backlog.get().as_millis(), expected.as_millis());
        assert!(backlog.get() < held);
        // A cut opens the gate: nothing is held, nothing published.
        gate.handle_timeout(t0 + 100 * MS + FEEDBACK_SILENCE).unwrap();
        drain_writes(&mut gate);
        assert_eq!(backlog.get(), Duration::ZERO);
    }

    #[test]
    fn a_held_packet_departs_when_the_gate_lets_it_go() {
        let t0 = Instant::now();
        let departures = SharedDepartures::default();
        let mut gate = CongestionWindowGate::new(
            400_000.0,
            SharedRoundTrip::default(),
            SharedBacklog::default(),
            SharedEncoderTarget::default(),
            departures.clone(),
        );
        gate.bind_local_stream(&stream_info());
        for seq in 0..40u16 {
            gate.handle_write(media(t0, seq)).unwrap();
        }
        assert_eq!(drain_writes(&mut gate).len(), 15);
        assert_eq!(departures.sent_at(SSRC, 14), Some(t0));
        assert_eq!(departures.sent_at(SSRC, 15), None, "held, not sent");
        gate.handle_read(feedback(t0 + 100 * MS, 0, 15)).unwrap();
        assert!(!drain_writes(&mut gate).is_empty());
        assert_eq!(departures.sent_at(SSRC, 15), Some(t0 + 100 * MS));
    }

    #[test]
    fn a_shut_window_without_feedback_lets_one_packet_through_every_interval() {
        let t0 = Instant::now();
        let mut gate = gate();
        for seq in 0..40u16 {
            gate.handle_write(media(t0, seq)).unwrap();
        }
        assert_eq!(drain_writes(&mut gate).len(), 15);
        // Everything in flight was lost, so the viewer has nothing to report.
        let due = gate.poll_timeout().unwrap();
        assert_eq!(due, t0 + CONGESTED_PACKET_INTERVAL);
        gate.handle_timeout(due - Duration::from_millis(1)).unwrap();
        assert!(drain_writes(&mut gate).is_empty());
        gate.handle_timeout(due).unwrap();
        assert_eq!(drain_writes(&mut gate).len(), 1);
        assert_eq!(gate.poll_timeout(), Some(due + CONGESTED_PACKET_INTERVAL));
    }

    #[test]
    fn without_feedback_for_half_a_second_the_gate_opens_until_feedback_returns() {
        let t0 = Instant::now();
        let mut gate = gate();
        for seq in 0..40u16 {
            gate.handle_write(media(t0, seq)).unwrap();
        }
        assert_eq!(drain_writes(&mut gate).len(), 15);
        gate.handle_read(feedback(t0 + Duration::from_millis(100), 0, 15)).unwrap();
        assert_eq!(drain_writes(&mut gate).len(), 15, "the window refilled");
        // The link is cut: no feedback. 500 ms after the last one, everything held leaves, and what comes next
        // passes at once.
        let cut = t0 + Duration::from_millis(100) + FEEDBACK_SILENCE;
        gate.handle_timeout(cut).unwrap();
        assert_eq!(drain_writes(&mut gate).len(), 10);
        for seq in 40..140u16 {
            gate.handle_write(media(cut, seq)).unwrap();
        }
        assert_eq!(drain_writes(&mut gate).len(), 100);
        // Feedback again: nothing from the cut counts in flight, and the window applies to what follows.
        let back = cut + Duration::from_secs(3);
        gate.handle_read(feedback(back, 140, 0)).unwrap();
        for seq in 140..180u16 {
            gate.handle_write(media(back, seq)).unwrap();
        }
        let after = drain_writes(&mut gate).len();
        assert!((10..40).contains(&after), "{after}");
    }

    #[test]
    fn a_standing_backlog_pushes_the_encoder_target_down_and_an_empty_window_restores_it() {
        let t0 = Instant::now();
        let mut gate = gate();
        let mut sent: u16 = 0;
        let mut acked: u16 = 0;
        let mut lowest = f64::INFINITY;
        // The encoder keeps sending twice what feedback lets through.
        for step in 1..=20u32 {
            let now = t0 + Duration::from_millis(50) * step;
            for _ in 0..10 {
                gate.handle_write(media(now, sent)).unwrap();
                sent += 1;
            }
            gate.handle_read(feedback(now, acked, 5)).unwrap();
            acked += 5;
            drain_writes(&mut gate);
            if let Some(target) = announced(&mut gate) {
                lowest = lowest.min(target);
            }
        }
        assert!(lowest <= 400_000.0 * MIN_ENCODER_RATIO * 1.01, "pushed back only to {lowest}");
        // The encoder stops and the viewer reports everything: the backlog drains, the window empties and the
        // target is whole again.
        let mut last = None;
        for step in 1..=20u32 {
            let now = t0 + Duration::from_secs(2) + Duration::from_millis(50) * step;
            gate.handle_read(feedback(now, 0, sent)).unwrap();
            drain_writes(&mut gate);
            last = announced(&mut gate).or(last);
        }
        assert_eq!(last, Some(400_000.0));
        let now = t0 + Duration::from_secs(3);
        // A target that does not move is not announced again.
        gate.handle_read(feedback(now, 0, sent)).unwrap();
        assert_eq!(announced(&mut gate), None);
    }

    #[test]
    fn a_long_link_queue_pushes_the_encoder_back_and_holds_changed_pictures() {
        // The window is open (the estimate is high, 2 Mbit/s), but every packet spends 300 ms in the link's queue:
        // the estimate is above the link's rate. The encoder's target comes down and the backlog the encode thread
        // reads says 300 ms, so that a changed picture waits instead of queueing behind it.
        let t0 = Instant::now();
        let backlog = SharedBacklog::default();
        let target = SharedEncoderTarget::default();
        let mut gate = CongestionWindowGate::new(
            2_000_000.0,
            SharedRoundTrip::default(),
            backlog.clone(),
            target.clone(),
            SharedDepartures::default(),
        );
        gate.bind_local_stream(&stream_info());
        // First an empty path, 10 ms.
        gate.handle_write(media(t0, 0)).unwrap();
        drain_writes(&mut gate);
        gate.handle_read(feedback(t0 + 10 * MS, 0, 1)).unwrap();
        assert_eq!(backlog.get(), Duration::ZERO);
        let mut lowest = f64::INFINITY;
        for step in 1..=20u16 {
            let now = t0 + Duration::from_millis(50) * u32::from(step);
            gate.handle_write(media(now, step)).unwrap();
            drain_writes(&mut gate);
            // Feedback on the packet sent 300 ms earlier (six steps back).
            if step > 6 {
                gate.handle_read(feedback(now, step - 6, 1)).unwrap();
                announced(&mut gate);
                lowest = lowest.min(target.get().unwrap_or(2_000_000.0));
            }
        }
        assert!(
            lowest <= 2_000_000.0 * 0.5,
            "the target came down only to {lowest} with 300 ms in the link's queue"
        );
        assert!(
            backlog.get() >= 250 * MS,
            "published backlog {:?} with 300 ms in the link's queue",
            backlog.get()
        );
    }

    #[test]
    fn packets_whose_feedback_never_comes_stop_counting_after_a_second() {
        let t0 = Instant::now();
        let mut window = CongestionWindow::new(100_000.0);
        window.on_sent(t0, 1, 1_200);
        window.on_sent(t0 + 500 * MS, 2, 1_200);
        assert_eq!(window.next_expiry(), Some(t0 + FEEDBACK_TIMEOUT));
        window.expire(t0 + 999 * MS);
        assert_eq!(window.in_flight_bytes(), 2_400);
        window.expire(t0 + 1_000 * MS);
        assert_eq!(window.in_flight_bytes(), 1_200);
    }
}
