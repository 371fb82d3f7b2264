//! Which RTP packets are missing, when to ask for them again (NACK, RFC 4585) and when to give them up. Plain
//! logic with time passed in.
//!
//! A gap is NACKed the moment a later packet shows it. A retransmission normally arrives one repair time later
//! (the round trip plus the sender's pacing), measured here from a packet's first NACK to its arrival; a packet
//! not back after [`LossConfig::retry_factor`] repair times (plus [`LossConfig::min_retry`]) is asked for
//! again, up to [`LossConfig::max_nacks`] times. After the last NACK has had its chance, or
//! [`LossConfig::max_wait`] after the gap appeared, the packet is given up and the caller falls back to a
//! keyframe. On a loopback or LAN path this gives up after about 170 ms; on a 100 ms path after 1 s.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How loss is repaired.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct LossConfig {
    /// NACKs sent for one packet before it is given up. Default 8 (libwebrtc: 10); at least 1.
    pub max_nacks: u8,
    /// How long a retransmission is waited for, as a multiple of the measured repair time (plus
    /// [`LossConfig::min_retry`]). Default 1.2: measured on a path with a 110 ms round trip and 5 % loss
    /// (the network bench's `delay-loss-5`, five and four sessions, same sitting), a lost retransmission asked
    /// for again after 1.2 rather than 1.5 repair times brought p95 from 388 to 328 ms (medians; Chromium's
    /// viewer of the same host: 319 ms). The sender answers a packet at most once per round trip whatever is asked, so an early
    /// retry costs no extra copy in a slow sender's queue.
    pub retry_factor: f64,
    /// Added to every wait between two NACKs for one packet, for the sender's pacing and scheduling. Default 20 ms.
    pub min_retry: Duration,
    /// The repair time assumed before one has been measured. Default 50 ms.
    pub initial_repair_time: Duration,
    /// The longest a missing packet is waited for, whatever the repair time. Default 1 s.
    pub max_wait: Duration,
    /// Gaps larger than this many packets are not NACKed but given up at once (a sender restart, a long cut).
    /// Default 1,000; it also bounds the tracker's memory.
    pub max_missing: u64,
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig {
            max_nacks: 8,
            retry_factor: 1.2,
            min_retry: Duration::from_millis(20),
            initial_repair_time: Duration::from_millis(50),
            max_wait: Duration::from_secs(1),
            max_missing: 1_000,
        }
    }
}

/// What one arriving packet was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The next packet, or one after a gap that is now tracked as missing.
    New,
    /// A packet that was missing: a retransmission or a late one.
    Repaired,
    /// Older than anything missing: a duplicate, or one already given up.
    Stale,
    /// A jump forward too large to repair: everything before it is given up.
    Jump,
}

#[derive(Debug, Clone, Copy)]
struct Missing {
    since: Instant,
    first_nack: Option<Instant>,
    last_nack: Option<Instant>,
    nacks: u8,
}

/// Counts kept by the tracker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LossCounts {
    /// Sequence numbers put into NACKs (a packet asked for twice counts twice).
    pub nacked: u64,
    /// Missing packets that arrived after all.
    pub recovered: u64,
    /// Missing packets given up.
    pub abandoned: u64,
}

/// The missing packets of one stream, by extended sequence number (see
/// [`SequenceExtender`](super::sequence::SequenceExtender)).
///
/// ```
/// use peerdesk::receive::loss::{LossTracker, LossConfig};
/// use std::time::{Duration, Instant};
/// let t0 = Instant::now();
/// let mut loss = LossTracker::new(LossConfig::default());
/// loss.on_packet(t0, 100);
/// loss.on_packet(t0, 102); // 101 is missing
/// let mut nacks = Vec::new();
/// loss.poll_nacks(t0, &mut nacks);
/// assert_eq!(nacks, [101]);
/// ```
#[derive(Debug)]
pub struct LossTracker {
    config: LossConfig,
    missing: BTreeMap<u64, Missing>,
    highest: Option<u64>,
    repair_time: Option<Duration>,
    counts: LossCounts,
}

impl LossTracker {
    /// A tracker that has seen nothing.
    pub fn new(config: LossConfig) -> Self {
        LossTracker {
            config: LossConfig {
                max_nacks: config.max_nacks.max(1),
                ..config
            },
            missing: BTreeMap::new(),
            highest: None,
            repair_time: None,
            counts: LossCounts::default(),
        }
    }

    /// Notes packet `seq` arriving at `now`.
    pub fn on_packet(&mut self, now: Instant, seq: u64) -> Arrival {
        let Some(highest) = self.highest else {
            self.highest = Some(seq);
            return Arrival::New;
        };
        if seq > highest {
            self.highest = Some(seq);
            let gap = seq - highest - 1;
            if gap > self.config.max_missing {
                self.counts.abandoned += gap + self.missing.len() as u64;
                self.missing.clear();
                return Arrival::Jump;
            }
            for missing in highest + 1..seq {
                self.missing.insert(
                    missing,
                    Missing {
                        since: now,
                        first_nack: None,
                        last_nack: None,
                        nacks: 0,
                    },
                );
            }
            self.trim();
            return Arrival::New;
        }
        match self.missing.remove(&seq) {
            Some(missing) => {
                self.counts.recovered += 1;
                // Timed from the first NACK, also when it took several: a repair slower than the retry interval
                // (retransmissions queued behind a keyframe in the sender's pacer) must lengthen the interval, or
                // every retry adds one more copy to that queue. When a retransmission itself was lost this
                // overestimates by one interval; at loss rate p the estimate settles near (rtt + 20 ms·p) /
                // (1 − 1.2·p), which stays bounded for any p below 80 %.
                if let Some(asked) = missing.first_nack {
                    self.learn_repair_time(now.saturating_duration_since(asked));
                }
                tracing::trace!(
                    seq,
                    nacks = missing.nacks,
                    missing_for = ?now.saturating_duration_since(missing.since),
                    repair_time = ?self.repair_time(),
                    "repaired"
                );
                Arrival::Repaired
            }
            None => Arrival::Stale,
        }
    }

    /// Notes packet `seq`, newer than any before, as the start of a fresh stretch: whatever is missing before it
    /// is given up, not NACKed (the caller knows it is too old to be worth repairing, e.g. after a long cut).
    pub fn jump_to(&mut self, seq: u64) -> Arrival {
        let gap = self.highest.map_or(0, |highest| seq.saturating_sub(highest + 1));
        self.counts.abandoned += gap + self.missing.len() as u64;
        self.missing.clear();
        self.highest = Some(self.highest.map_or(seq, |highest| highest.max(seq)));
        Arrival::Jump
    }

    /// Keeps at most `max_missing` entries: the oldest go first.
    fn trim(&mut self) {
        while self.missing.len() as u64 > self.config.max_missing {
            self.missing.pop_first();
            self.counts.abandoned += 1;
        }
    }

    /// Smoothed like TCP's SRTT (RFC 6298): the first sample replaces the guess, later ones weigh 1/8.
    fn learn_repair_time(&mut self, sample: Duration) {
        let sample = sample.min(self.config.max_wait);
        self.repair_time = Some(match self.repair_time {
            None => sample,
            Some(old) => (old * 7 + sample) / 8,
        });
    }

    /// The measured repair time (round trip plus the sender's pacing), or the configured guess.
    pub fn repair_time(&self) -> Duration {
        self.repair_time.unwrap_or(self.config.initial_repair_time)
    }

    /// How long a NACK is given before the packet is asked for again.
    pub fn retry_interval(&self) -> Duration {
        self.repair_time().mul_f64(self.config.retry_factor) + self.config.min_retry
    }

    /// Appends the (16-bit) sequence numbers to NACK now: new gaps at once, older ones whose last NACK has had
    /// its time. Each is then counted as asked for once more.
    pub fn poll_nacks(&mut self, now: Instant, out: &mut Vec<u16>) {
        let retry = self.retry_interval();
        let max_nacks = self.config.max_nacks;
        for (&seq, missing) in &mut self.missing {
            let due = match missing.last_nack {
                None => true,
                Some(last) => missing.nacks < max_nacks && now >= last + retry,
            };
            if due {
                missing.first_nack.get_or_insert(now);
                missing.last_nack = Some(now);
                missing.nacks += 1;
                self.counts.nacked += 1;
                out.push(seq as u16);
            }
        }
    }

    /// When a missing packet stops being waited for.
    fn give_up_at(&self, missing: &Missing, retry: Duration) -> Instant {
        let by_age = missing.since + self.config.max_wait;
        match missing.last_nack {
            Some(last) if missing.nacks >= self.config.max_nacks => by_age.min(last + retry),
            _ => by_age,
        }
    }

    /// Gives up every missing packet whose time has passed (and every one before it) and returns the highest
    /// given up; `None` when nothing expired.
    pub fn expire(&mut self, now: Instant) -> Option<u64> {
        let retry = self.retry_interval();
        let expired = self
            .missing
            .iter()
            .filter(|(_, missing)| self.give_up_at(missing, retry) <= now)
            .map(|(&seq, _)| seq)
            .next_back()?;
        self.forget_through(expired);
        Some(expired)
    }

    /// Stops tracking everything up to and including `seq` (the caller has moved past it), counting what was
    /// still missing as given up.
    pub fn forget_through(&mut self, seq: u64) {
        let kept = self.missing.split_off(&(seq + 1));
        self.counts.abandoned += self.missing.len() as u64;
        self.missing = kept;
    }

    /// The next instant something is due: a NACK to repeat or a packet to give up.
    pub fn next_deadline(&self) -> Option<Instant> {
        let retry = self.retry_interval();
        self.missing
            .values()
            .map(|missing| {
                let give_up = self.give_up_at(missing, retry);
                match missing.last_nack {
                    None => missing.since,
                    Some(last) if missing.nacks < self.config.max_nacks => (last + retry).min(give_up),
                    Some(_) => give_up,
                }
            })
            .min()
    }

    /// Packets missing now.
    pub fn missing(&self) -> usize {
        self.missing.len()
    }

    /// The counts so far.
    pub fn counts(&self) -> LossCounts {
        self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn nacks(loss: &mut LossTracker, now: Instant) -> Vec<u16> {
        let mut out = Vec::new();
        loss.poll_nacks(now, &mut out);
        out
    }

    #[test]
    fn a_gap_is_nacked_at_once_and_again_after_the_repair_time() {
        let t0 = Instant::now();
        let mut loss = LossTracker::new(LossConfig::default());
        for seq in 10..20 {
            loss.on_packet(t0, seq);
        }
        assert_eq!(loss.on_packet(t0 + ms(1), 23), Arrival::New);
        assert_eq!(nacks(&mut loss, t0 + ms(1)), [20, 21, 22]);
        assert!(
            nacks(&mut loss, t0 + ms(2)).is_empty(),
            "not again before the retry interval"
        );
        // 20 comes back 4 ms after its NACK: that is the repair time from now on.
        assert_eq!(loss.on_packet(t0 + ms(5), 20), Arrival::Repaired);
        assert_eq!(loss.repair_time(), ms(4));
        let retry = loss.retry_interval();
        assert_eq!(retry, Duration::from_micros(4_800) + ms(20));
        assert!(nacks(&mut loss, t0 + ms(1) + retry - ms(1)).is_empty());
        assert_eq!(nacks(&mut loss, t0 + ms(1) + retry), [21, 22]);
        assert_eq!(loss.on_packet(t0 + ms(30), 20), Arrival::Stale, "a duplicate");
    }

    #[test]
    fn repairs_slower_than_the_retry_interval_lengthen_it() {
        // Retransmissions queued 200 ms behind a keyframe: each packet is NACKed several times before its first
        // retransmission arrives. Timing from the first NACK, the interval grows until one NACK is enough.
        let t0 = Instant::now();
        let mut loss = LossTracker::new(LossConfig::default());
        let mut seq = 0;
        let mut now = t0;
        loss.on_packet(now, seq);
        let mut nacks_per_packet = Vec::new();
        for _ in 0..40 {
            seq += 2; // seq - 1 is lost
            loss.on_packet(now, seq);
            let asked_at = now;
            let mut asked = 0;
            while now < asked_at + ms(200) {
                asked += nacks(&mut loss, now).len();
                now += ms(1);
            }
            assert_eq!(loss.on_packet(now, seq - 1), Arrival::Repaired);
            nacks_per_packet.push(asked);
        }
        assert!(nacks_per_packet[0] >= 3, "{nacks_per_packet:?}");
        assert_eq!(nacks_per_packet.last(), Some(&1), "{nacks_per_packet:?}");
        assert!(loss.repair_time() >= ms(150), "{:?}", loss.repair_time());
    }

    #[test]
    fn a_packet_is_given_up_after_its_last_nack_has_had_its_time() {
        let t0 = Instant::now();
        let mut loss = LossTracker::new(LossConfig::default());
        loss.on_packet(t0, 1);
        loss.on_packet(t0, 3);
        let mut now = t0;
        let mut sent = 0;
        while loss.expire(now).is_none() {
            sent += nacks(&mut loss, now).len();
            now = loss.next_deadline().expect("something is due while 2 is missing");
            assert!(now - t0 < ms(1000));
        }
        assert_eq!(sent, 8, "max_nacks NACKs, then given up");
        // Eight NACKs 80 ms apart (initial guess 50 ms × 1.2 + 20), given up one interval after the last.
        assert_eq!(now - t0, ms(80) * 8);
        assert_eq!(loss.missing(), 0);
        assert_eq!(loss.counts().abandoned, 1);
        assert_eq!(loss.next_deadline(), None);
    }

    #[test]
    fn a_huge_jump_is_not_nacked() {
        let t0 = Instant::now();
        let mut loss = LossTracker::new(LossConfig::default());
        loss.on_packet(t0, 1);
        assert_eq!(loss.on_packet(t0, 50_000), Arrival::Jump);
        assert!(nacks(&mut loss, t0).is_empty());
        assert_eq!(loss.missing(), 0);
    }

    #[test]
    fn old_gaps_expire_in_order_and_take_earlier_ones_with_them() {
        let t0 = Instant::now();
        let config = LossConfig {
            max_wait: ms(100),
            ..LossConfig::default()
        };
        let mut loss = LossTracker::new(config);
        loss.on_packet(t0, 1);
        loss.on_packet(t0, 3); // 2 missing since t0
        loss.on_packet(t0 + ms(50), 5); // 4 missing since t0 + 50
        assert_eq!(loss.expire(t0 + ms(99)), None);
        assert_eq!(loss.expire(t0 + ms(100)), Some(2));
        assert_eq!(loss.missing(), 1);
        assert_eq!(loss.expire(t0 + ms(150)), Some(4));
    }
}
