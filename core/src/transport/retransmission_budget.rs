//! How many retransmissions the host sends in answer to NACKs: at most a share of the congestion estimate, one
//! packet at most once per round trip, and none of a packet the viewer could have missed longer ago than
//! [`MIN_HISTORY`] or three round trips (libwebrtc's three rules, the last its packet history's; the round trip is
//! the one transport-wide feedback measures, see [`SharedRoundTrip`]). Plain logic with time passed in
//! ([`RetransmissionBudget`]); [`RetransmissionLimiter`] applies it between webrtc-rs's NACK responder and the
//! wire.
//!
//! Why: the NACK responder answers every NACK at once, wire-ward of the pacer and outside every budget. On a
//! link narrower than the first keyframe (measured at a 500 kbit/s cap with a 200 ms queue), the keyframe's
//! tail is dropped, each lost packet is asked for again every ~100 ms while its retransmission still waits in
//! the same queue, and the retransmissions (4.3 MB in 10 s) were 4.6 times the media (0.9 MB): the link carried
//! mostly copies of copies, and no first picture arrived in 10 s.

use rtc::interceptor::{Attribute, AttributedPacket, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::sansio::Protocol;
use rtc::shared::marshal::MarshalSize;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::congestion_window::SharedRoundTrip;

/// The retransmission rules' parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct BudgetConfig {
    /// Retransmissions may use this share of the congestion estimate. libwebrtc allows the whole estimate, but
    /// its retransmissions go through its pacer (2.5 × the estimate for everything); peerdesk's leave ahead of
    /// the pacer, so they get half, on top of the media the encoder sends at the estimate.
    pub share_of_estimate: f64,
    /// How much unused allowance is kept for a burst of losses, as time at the allowed rate.
    pub burst: Duration,
    /// Used before the first estimate arrives.
    pub initial_estimate_bps: f64,
    /// A packet is not sent again sooner than this before a round trip has been measured.
    pub initial_round_trip: Duration,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            share_of_estimate: 0.5,
            burst: Duration::from_millis(500),
            initial_estimate_bps: 1_000_000.0,
            initial_round_trip: Duration::from_millis(100),
        }
    }
}

/// How long a packet may be sent again after the viewer could first have missed it, at least (libwebrtc's packet
/// history keeps a packet for the longer of this and three round trips). A copy that arrives later repairs a
/// picture too old to show: measured after a 10 s cut, Chromium asked for the whole cut's packets and replayed
/// 10 s of video in 2 s, then stalled 3 s on one that had left the NACK responder's buffer.
///
/// "Could first have missed it" is when the packet after it left: a receiver sees a loss by the gap it leaves.
/// On a still screen the next packet may come seconds later, and the repair then completes the newest picture,
/// not a stale one (counted from the lost packet's own departure, a still screen at 5 % loss and 110 ms round
/// trip sent keyframes at 73–158 kbit/s instead of 0.2).
pub(crate) const MIN_HISTORY: Duration = Duration::from_secs(1);
/// Round trips a packet may be sent again after it first left, when that is longer than [`MIN_HISTORY`].
const HISTORY_ROUND_TRIPS: u32 = 3;

/// Whether `msg` is a retransmission (the NACK responder marks the copies it makes).
pub(crate) fn is_retransmission(msg: &TaggedPacket) -> bool {
    msg.message.attributes.iter().any(|a| matches!(a, Attribute::Retransmission))
}

/// When each media packet left for the wire, written by [`super::congestion_window::CongestionWindowGate`] (which
/// may hold a packet back for seconds on a narrow link, so only it knows) and read by [`RetransmissionLimiter`]:
/// one slot per sequence number modulo [`RESENT_SLOTS`], keyed by SSRC and sequence number. Both sides run on the
/// connection's driver, one after the other: the lock is never contended.
#[derive(Debug, Clone)]
pub(crate) struct SharedDepartures(Arc<Mutex<Box<[Option<Departure>]>>>);

/// One packet's departure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Departure {
    ssrc: u32,
    sequence_number: u16,
    at: Instant,
}

impl Default for SharedDepartures {
    fn default() -> Self {
        SharedDepartures(Arc::new(Mutex::new(vec![None; RESENT_SLOTS].into_boxed_slice())))
    }
}

impl SharedDepartures {
    fn slots(&self) -> std::sync::MutexGuard<'_, Box<[Option<Departure>]>> {
        // A panic elsewhere while holding it leaves plain data behind: go on with it.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Media packet `sequence_number` of `ssrc` left at `at`.
    pub(crate) fn record(&self, ssrc: u32, sequence_number: u16, at: Instant) {
        self.slots()[usize::from(sequence_number) % RESENT_SLOTS] = Some(Departure {
            ssrc,
            sequence_number,
            at,
        });
    }

    /// When media packet `sequence_number` of `ssrc` left, if it is still remembered.
    pub(crate) fn sent_at(&self, ssrc: u32, sequence_number: u16) -> Option<Instant> {
        self.slots()[usize::from(sequence_number) % RESENT_SLOTS]
            .filter(|d| d.ssrc == ssrc && d.sequence_number == sequence_number)
            .map(|d| d.at)
    }
}

/// At most one keyframe request per this interval stands in for refused stale repairs (see
/// [`RetransmissionLimiter`]); the host's own throttle then applies per viewer.
const STALE_KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(250);

/// What became of one retransmission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Send it.
    Send,
    /// The viewer could have missed it too long ago (or it never left, as far as this budget knows): a copy
    /// would be stale.
    TooOld,
    /// The same packet went out again less than a round trip ago: that copy may still arrive.
    TooSoon,
    /// The allowance is spent.
    OverBudget,
}

/// How many retransmissions were sent and refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct BudgetCounts {
    pub sent: u64,
    pub too_soon: u64,
    pub over_budget: u64,
    pub too_old: u64,
}

/// Slots remembering when a packet was last retransmitted, indexed by sequence number modulo their count: the
/// NACK responder keeps 1,024 packets, so a packet older than that cannot be resent anyway.
const RESENT_SLOTS: usize = 1024;

/// The two retransmission rules for one connection: a token bucket at a share of the estimate, and at most one
/// copy of a packet per round trip.
#[derive(Debug)]
pub(crate) struct RetransmissionBudget {
    config: BudgetConfig,
    estimate_bps: f64,
    allowance_bytes: f64,
    refilled_at: Option<Instant>,
    last_resent: Box<[Option<(u16, Instant)>]>,
    counts: BudgetCounts,
}

impl RetransmissionBudget {
    pub(crate) fn new(config: BudgetConfig) -> Self {
        let mut budget = RetransmissionBudget {
            config,
            estimate_bps: config.initial_estimate_bps,
            allowance_bytes: 0.0,
            refilled_at: None,
            last_resent: vec![None; RESENT_SLOTS].into_boxed_slice(),
            counts: BudgetCounts::default(),
        };
        budget.allowance_bytes = budget.capacity_bytes();
        budget
    }

    /// The allowed rate in bytes per second.
    fn rate_bytes_per_second(&self) -> f64 {
        self.estimate_bps * self.config.share_of_estimate / 8.0
    }

    fn capacity_bytes(&self) -> f64 {
        self.rate_bytes_per_second() * self.config.burst.as_secs_f64()
    }

    fn refill(&mut self, now: Instant) {
        if let Some(then) = self.refilled_at {
            let elapsed = now.saturating_duration_since(then).as_secs_f64();
            self.allowance_bytes =
                (self.allowance_bytes + elapsed * self.rate_bytes_per_second()).min(self.capacity_bytes());
        }
        self.refilled_at = Some(now);
    }

    /// A new congestion estimate, bit/s; the allowance follows from `now` on.
    pub(crate) fn set_estimate(&mut self, now: Instant, bits_per_second: f64) {
        if !(bits_per_second.is_finite() && bits_per_second > 0.0) {
            return;
        }
        self.refill(now);
        self.estimate_bps = bits_per_second;
        self.allowance_bytes = self.allowance_bytes.min(self.capacity_bytes());
    }

    /// Decides on retransmitting packet `sequence_number` (its original number), `bytes` long, which the viewer
    /// could first have missed at `missed_from` (`None`: not known to have been sent; see [`MIN_HISTORY`]), at
    /// `now`, on a path whose measured `round_trip` is known or not (then [`BudgetConfig::initial_round_trip`]);
    /// a packet that may go is charged to the allowance.
    pub(crate) fn decide(
        &mut self,
        now: Instant,
        sequence_number: u16,
        bytes: usize,
        missed_from: Option<Instant>,
        round_trip: Option<Duration>,
    ) -> Verdict {
        self.refill(now);
        let index = usize::from(sequence_number) % RESENT_SLOTS;
        let round_trip = round_trip.unwrap_or(self.config.initial_round_trip);
        let max_age = MIN_HISTORY.max(round_trip * HISTORY_ROUND_TRIPS);
        if missed_from.is_none_or(|at| now.saturating_duration_since(at) > max_age) {
            self.counts.too_old += 1;
            return Verdict::TooOld;
        }
        let slot = &mut self.last_resent[index];
        let copy_in_flight =
            matches!(*slot, Some((resent, at)) if resent == sequence_number && now.saturating_duration_since(at) < round_trip);
        if copy_in_flight {
            self.counts.too_soon += 1;
            return Verdict::TooSoon;
        }
        if self.allowance_bytes < bytes as f64 {
            self.counts.over_budget += 1;
            return Verdict::OverBudget;
        }
        self.allowance_bytes -= bytes as f64;
        *slot = Some((sequence_number, now));
        self.counts.sent += 1;
        Verdict::Send
    }

    pub(crate) fn counts(&self) -> BudgetCounts {
        self.counts
    }
}

/// The interceptor applying [`RetransmissionBudget`]: it sits wire-ward of the NACK responder, so it sees the
/// retransmissions the responder makes on their way out (and drops the ones the rules refuse), and the
/// congestion estimate on its way in. Everything else passes untouched.
///
/// A repair refused as too old means the viewer misses a packet it will never get, so the pictures after it cannot
/// be decoded until a keyframe: the limiter passes a keyframe request (a PLI of its own) up to the host at once,
/// at most one per [`STALE_KEYFRAME_REQUEST_INTERVAL`]. Chromium would ask only after 3 s without a decodable
/// picture (measured after a 3 s cut: the picture came back 3.1 s after the link).
pub(crate) struct RetransmissionLimiter {
    budget: RetransmissionBudget,
    round_trip: SharedRoundTrip,
    departures: SharedDepartures,
    /// The media SSRC each retransmission SSRC repairs.
    retransmission_ssrcs: HashMap<u32, u32>,
    /// When the last keyframe request for a stale repair went up.
    keyframe_asked_at: Option<Instant>,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl RetransmissionLimiter {
    /// A limiter reading the path's round trip from `round_trip` and when media packets left from `departures`.
    pub(crate) fn new(config: BudgetConfig, round_trip: SharedRoundTrip, departures: SharedDepartures) -> Self {
        RetransmissionLimiter {
            budget: RetransmissionBudget::new(config),
            round_trip,
            departures,
            retransmission_ssrcs: HashMap::new(),
            keyframe_asked_at: None,
            read: VecDeque::new(),
            write: VecDeque::new(),
        }
    }

    /// Whether an outgoing packet may leave.
    fn admits(&mut self, msg: &TaggedPacket) -> bool {
        match &msg.message.packet {
            Packet::Rtp(packet) if is_retransmission(msg) => {
                // An RTX packet carries the original sequence number in its first two bytes (RFC 4588); without
                // RTX the retransmission is the original packet itself.
                let (media_ssrc, original) = match self.retransmission_ssrcs.get(&packet.header.ssrc) {
                    Some(&media_ssrc) => match packet.payload.get(..2) {
                        Some(&[high, low]) => (media_ssrc, u16::from_be_bytes([high, low])),
                        _ => return false,
                    },
                    None => (packet.header.ssrc, packet.header.sequence_number),
                };
                let bytes = packet.header.marshal_size() + packet.payload.len();
                let round_trip = self.round_trip.get();
                // The viewer could miss it once the packet after it left (or, before that, it alone).
                let missed_from = self
                    .departures
                    .sent_at(media_ssrc, original.wrapping_add(1))
                    .or_else(|| self.departures.sent_at(media_ssrc, original));
                let verdict = self.budget.decide(msg.now, original, bytes, missed_from, round_trip);
                if verdict != Verdict::Send {
                    let counts = self.budget.counts();
                    if (counts.too_soon + counts.over_budget + counts.too_old).is_power_of_two() {
                        tracing::debug!(
                            ?verdict,
                            sent = counts.sent,
                            too_soon = counts.too_soon,
                            over_budget = counts.over_budget,
                            too_old = counts.too_old,
                            ?round_trip,
                            "retransmission refused"
                        );
                    }
                }
                if verdict == Verdict::TooOld {
                    self.ask_keyframe(msg.now, media_ssrc);
                }
                verdict == Verdict::Send
            }
            _ => true,
        }
    }

    /// Passes a keyframe request for `media_ssrc` up the read leg, unless one went up less than
    /// [`STALE_KEYFRAME_REQUEST_INTERVAL`] before `now`.
    fn ask_keyframe(&mut self, now: Instant, media_ssrc: u32) {
        if self
            .keyframe_asked_at
            .is_some_and(|at| now.saturating_duration_since(at) < STALE_KEYFRAME_REQUEST_INTERVAL)
        {
            return;
        }
        self.keyframe_asked_at = Some(now);
        let request = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc,
        };
        self.read.push_back(TaggedPacket {
            now,
            transport: Default::default(),
            message: AttributedPacket::new(Packet::Rtcp(vec![Box::new(request)])),
        });
    }

    fn observe_incoming(&mut self, msg: &TaggedPacket) {
        for attribute in &msg.message.attributes {
            if let Attribute::TargetBitrateChanged { bits_per_second } = attribute {
                self.budget.set_estimate(msg.now, *bits_per_second);
            }
        }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for RetransmissionLimiter {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.observe_incoming(&msg);
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if self.admits(&msg) {
            self.write.push_back(msg);
        }
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl Interceptor for RetransmissionLimiter {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        if let Some(ssrc) = info.ssrc_rtx {
            self.retransmission_ssrcs.insert(ssrc, info.ssrc);
        }
    }
    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        if let Some(ssrc) = info.ssrc_rtx {
            self.retransmission_ssrcs.remove(&ssrc);
        }
    }
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn budget() -> RetransmissionBudget {
        RetransmissionBudget::new(BudgetConfig::default())
    }

    /// Whether packet `sequence_number`, which the viewer could have missed only just now, may go again at `now`.
    fn resend(
        budget: &mut RetransmissionBudget,
        now: Instant,
        sequence_number: u16,
        bytes: usize,
        round_trip: Option<Duration>,
    ) -> Verdict {
        budget.decide(now, sequence_number, bytes, Some(now), round_trip)
    }

    #[test]
    fn retransmissions_are_limited_to_a_share_of_the_estimate() {
        let t0 = Instant::now();
        let mut budget = budget();
        budget.set_estimate(t0, 400_000.0);
        // 200 kbit/s allowed = 25 kB/s; the bucket holds half a second of it.
        let mut sent_bytes = 0;
        for i in 0..3_000u16 {
            let now = t0 + MS * u32::from(i);
            if resend(&mut budget, now, i, 1_200, None) == Verdict::Send {
                sent_bytes += 1_200;
            }
        }
        // Three seconds: 12.5 kB of burst plus 3 s × 25 kB/s.
        let allowed = 12_500 + 75_000;
        assert!(sent_bytes <= allowed, "{sent_bytes} > {allowed}");
        assert!(sent_bytes >= allowed - 2 * 1_200, "{sent_bytes} well below {allowed}");
        assert!(budget.counts().over_budget > 0);
    }

    #[test]
    fn a_lower_estimate_shrinks_what_is_left_at_once() {
        let t0 = Instant::now();
        let mut budget = budget();
        budget.set_estimate(t0, 150_000.0);
        // 150 kbit/s × 0.5 × 0.5 s = 4.7 kB: three packets, not the 1 Mbit/s start's 26.
        let sent = (0..30).filter(|&i| resend(&mut budget, t0, i, 1_200, None) == Verdict::Send).count();
        assert_eq!(sent, 3);
    }

    #[test]
    fn a_packet_goes_again_only_after_a_round_trip() {
        let t0 = Instant::now();
        let mut budget = budget();
        let sent = Some(t0);
        assert_eq!(budget.decide(t0, 7, 1_000, sent, None), Verdict::Send);
        // Before any measurement the round trip is taken as 100 ms.
        assert_eq!(budget.decide(t0 + 60 * MS, 7, 1_000, sent, None), Verdict::TooSoon);
        assert_eq!(budget.decide(t0 + 60 * MS, 8, 1_000, sent, None), Verdict::Send);
        assert_eq!(budget.decide(t0 + 101 * MS, 7, 1_000, sent, None), Verdict::Send);
        // A packet 1,024 numbers later shares the slot but is a different packet.
        assert_eq!(budget.decide(t0 + 102 * MS, 7 + 1_024, 1_000, sent, None), Verdict::Send);
        assert_eq!(budget.counts().too_soon, 1);
        // A measured 250 ms round trip: a copy 200 ms after the last is too soon, 260 ms after it is not.
        let rtt = Some(250 * MS);
        assert_eq!(budget.decide(t0 + 300 * MS, 9, 100, sent, rtt), Verdict::Send);
        assert_eq!(budget.decide(t0 + 500 * MS, 9, 100, sent, rtt), Verdict::TooSoon);
        assert_eq!(budget.decide(t0 + 560 * MS, 9, 100, sent, rtt), Verdict::Send);
    }

    #[test]
    fn nonsense_estimates_are_ignored() {
        let t0 = Instant::now();
        let mut budget = budget();
        budget.set_estimate(t0, f64::NAN);
        budget.set_estimate(t0, -5.0);
        budget.set_estimate(t0, 0.0);
        // Still the 1 Mbit/s start: 31 kB of burst, 26 packets.
        let sent = (0..40).filter(|&i| resend(&mut budget, t0, i, 1_200, None) == Verdict::Send).count();
        assert_eq!(sent, 26);
    }

    #[test]
    fn a_packet_missed_too_long_ago_is_not_sent_again() {
        let t0 = Instant::now();
        let mut budget = budget();
        // Before a measured round trip (100 ms assumed) a packet's history is MIN_HISTORY.
        assert_eq!(budget.decide(t0 + 900 * MS, 5, 1_000, Some(t0), None), Verdict::Send);
        assert_eq!(budget.decide(t0 + MIN_HISTORY + MS, 5, 1_000, Some(t0), None), Verdict::TooOld);
        // Three round trips when that is longer.
        assert_eq!(budget.decide(t0 + 1_400 * MS, 6, 1_000, Some(t0), Some(500 * MS)), Verdict::Send);
        assert_eq!(budget.decide(t0 + 1_501 * MS, 6, 1_000, Some(t0), Some(500 * MS)), Verdict::TooOld);
        // A packet not known to have been sent is not sent "again".
        assert_eq!(budget.decide(t0, 77, 1_000, None, None), Verdict::TooOld);
        assert_eq!(budget.counts().too_old, 3);
        assert_eq!(budget.counts().sent, 2);
    }

    #[test]
    fn departures_are_remembered_per_packet_until_a_later_one_takes_the_slot() {
        let t0 = Instant::now();
        let departures = SharedDepartures::default();
        departures.record(1, 5, t0);
        assert_eq!(departures.sent_at(1, 5), Some(t0));
        assert_eq!(departures.sent_at(2, 5), None, "another stream's packet");
        assert_eq!(departures.sent_at(1, 6), None, "never sent");
        departures.record(1, 5 + RESENT_SLOTS as u16, t0 + MS);
        assert_eq!(departures.sent_at(1, 5), None, "forgotten");
        assert_eq!(departures.sent_at(1, 5 + RESENT_SLOTS as u16), Some(t0 + MS));
    }

    #[test]
    fn a_repair_refused_as_stale_asks_the_host_for_a_keyframe() {
        const MEDIA: u32 = 1111;
        const RTX: u32 = 2222;
        let t0 = Instant::now();
        let departures = SharedDepartures::default();
        let mut limiter = RetransmissionLimiter::new(BudgetConfig::default(), SharedRoundTrip::default(), departures.clone());
        limiter.bind_local_stream(&StreamInfo {
            ssrc: MEDIA,
            ssrc_rtx: Some(RTX),
            ..Default::default()
        });
        let repair = |now: Instant, original: u16| {
            let mut message = AttributedPacket::new(Packet::Rtp(rtc::rtp::Packet {
                header: rtc::rtp::header::Header {
                    ssrc: RTX,
                    ..Default::default()
                },
                payload: [original.to_be_bytes().as_slice(), &[0; 1_000]].concat().into(),
            }));
            message.add(Attribute::Retransmission);
            TaggedPacket {
                now,
                transport: Default::default(),
                message,
            }
        };
        let keyframe_requests = |limiter: &mut RetransmissionLimiter| {
            std::iter::from_fn(|| limiter.poll_read())
                .filter(|msg| match &msg.message.packet {
                    Packet::Rtcp(packets) => packets.iter().any(|p| {
                        p.as_any()
                            .downcast_ref::<PictureLossIndication>()
                            .is_some_and(|pli| pli.media_ssrc == MEDIA)
                    }),
                    _ => false,
                })
                .count()
        };
        for original in 10..=14 {
            departures.record(MEDIA, original, t0);
        }
        // A fresh repair goes out and asks for nothing.
        limiter.handle_write(repair(t0 + 100 * MS, 10)).unwrap();
        assert!(limiter.poll_write().is_some());
        assert_eq!(keyframe_requests(&mut limiter), 0);
        // On a still screen the next packet left 1.5 s later: the repair completes the newest picture and goes.
        departures.record(MEDIA, 20, t0);
        departures.record(MEDIA, 21, t0 + 1_500 * MS);
        limiter.handle_write(repair(t0 + 1_600 * MS, 20)).unwrap();
        assert!(limiter.poll_write().is_some());
        assert_eq!(keyframe_requests(&mut limiter), 0);
        // Stale ones are dropped, and the first of them asks for a keyframe; more within the interval do not.
        let late = t0 + MIN_HISTORY + 200 * MS;
        for (i, original) in [11u16, 12, 13].into_iter().enumerate() {
            limiter.handle_write(repair(late + MS * i as u32, original)).unwrap();
        }
        assert!(limiter.poll_write().is_none());
        assert_eq!(keyframe_requests(&mut limiter), 1);
        limiter.handle_write(repair(late + STALE_KEYFRAME_REQUEST_INTERVAL, 14)).unwrap();
        assert_eq!(keyframe_requests(&mut limiter), 1);
    }
}
