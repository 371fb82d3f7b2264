//! RTP → AV1 temporal units at the receiver: holds packets in sequence order while one is missing, depacketizes
//! with the crate's AV1 depacketizer, emits one temporal unit per RTP timestamp at its marker packet, and once a
//! missing packet is given up ([`FrameAssembler::abandon_through`], decided by the loss tracker's clock) asks for
//! a keyframe once and discards until one starts (it asks again only when that keyframe is lost or damaged; the
//! receiver repeats an unanswered request). Plain logic: packets in, frames out.

use super::av1_depacketizer::Av1Depacketizer;
use bytes::{Bytes, BytesMut};
use std::collections::BTreeMap;

/// Packets held while waiting for a missing one; one more gives the oldest gap up at once. This bounds memory
/// (with [`MAX_FRAME_BYTES`]); the usual way a gap is given up is by time, see [`super::loss`].
pub const MAX_HELD: usize = 1024;
/// The largest temporal unit accepted (bytes); larger ones are dropped as damaged.
pub const MAX_FRAME_BYTES: usize = crate::decode::MAX_TEMPORAL_UNIT;

/// A temporal unit put back together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssembledFrame {
    /// The OBUs, starting with a temporal delimiter, ready for the decoder.
    pub data: Bytes,
    /// The RTP timestamp (90 kHz).
    pub rtp_timestamp: u32,
    /// Whether it begins a new coded video sequence (a keyframe with its sequence header).
    pub keyframe: bool,
}

#[derive(Debug)]
struct Held {
    timestamp: u32,
    marker: bool,
    payload: Bytes,
}

/// Reassembles AV1 frames from RTP packets of one stream.
#[derive(Debug)]
pub struct FrameAssembler {
    depacketizer: Av1Depacketizer,
    held: BTreeMap<u64, Held>,
    next_seq: Option<u64>,
    frame: BytesMut,
    frame_timestamp: Option<u32>,
    frame_keyframe: bool,
    frame_broken: bool,
    waiting_for_keyframe: bool,
    keyframe_request: bool,
    frames_lost: u64,
}

impl Default for FrameAssembler {
    fn default() -> Self {
        Self::new()
    }
}

const TEMPORAL_DELIMITER: [u8; 2] = [0x12, 0x00];

impl FrameAssembler {
    /// An assembler that waits for the first keyframe.
    pub fn new() -> Self {
        FrameAssembler {
            depacketizer: Av1Depacketizer::new(),
            held: BTreeMap::new(),
            next_seq: None,
            frame: BytesMut::new(),
            frame_timestamp: None,
            frame_keyframe: false,
            frame_broken: false,
            waiting_for_keyframe: true,
            keyframe_request: false,
            frames_lost: 0,
        }
    }

    /// Whether a keyframe should be requested from the sender (PLI); clears the flag.
    pub fn take_keyframe_request(&mut self) -> bool {
        std::mem::take(&mut self.keyframe_request)
    }

    /// Frames given up because of loss or damage.
    pub fn frames_lost(&self) -> u64 {
        self.frames_lost
    }

    /// Whether delta frames are being discarded until a keyframe starts.
    pub fn waiting_for_keyframe(&self) -> bool {
        self.waiting_for_keyframe
    }

    /// The sequence number the assembler needs next; older packets are dropped as too late.
    pub fn next_expected(&self) -> Option<u64> {
        self.next_seq
    }

    /// Takes one RTP packet by its extended sequence number (see
    /// [`SequenceExtender`](super::sequence::SequenceExtender)); appends the frames it completes to `out`, oldest
    /// first.
    pub fn push(&mut self, seq: u64, timestamp: u32, marker: bool, payload: Bytes, out: &mut Vec<AssembledFrame>) {
        // While a keyframe's start is looked for, an older packet may be it: the first packet of a keyframe can
        // arrive after later ones (a path that reorders), and taking the first packet seen as the stream's start
        // dropped the keyframe's real start as "too late" (measured through a relay with 0-10 ms of jitter: the
        // first picture 4.3 s after the join instead of 1.1 s).
        if self.next_seq.is_some_and(|n| seq < n) && !self.seeking_keyframe() {
            return; // duplicate or too late
        }
        self.held.insert(
            seq,
            Held {
                timestamp,
                marker,
                payload,
            },
        );
        self.drain(out);
    }

    /// Whether a keyframe is waited for and none has begun: what is held is searched for the packet that starts
    /// one, and nothing before it is of use.
    fn seeking_keyframe(&self) -> bool {
        self.waiting_for_keyframe && self.frame_timestamp.is_none()
    }

    /// While seeking a keyframe: moves to the first held packet that starts one (N set in its aggregation
    /// header: the first packet of a coded video sequence), dropping what is held before it, and returns true;
    /// returns false when none is held yet, keeping at most [`MAX_HELD`] of the newest packets.
    fn find_keyframe_start(&mut self) -> bool {
        let start = self
            .held
            .iter()
            .find(|(_, held)| held.payload.first().is_some_and(|header| header & 0x08 != 0))
            .map(|(&seq, _)| seq);
        match start {
            Some(start) => {
                self.held = self.held.split_off(&start);
                self.next_seq = Some(start);
                true
            }
            None => {
                while self.held.len() > MAX_HELD {
                    self.held.pop_first();
                }
                false
            }
        }
    }

    /// Gives up every packet up to and including `seq` that has not arrived: what is held before it is dropped
    /// (it belongs to frames the loss broke), a keyframe is asked for, and held packets after it are assembled.
    pub fn abandon_through(&mut self, seq: u64, out: &mut Vec<AssembledFrame>) {
        let Some(next) = self.next_seq else { return };
        if seq < next {
            return;
        }
        tracing::debug!(
            lost_from = next,
            lost_through = seq,
            "RTP packets given up; waiting for a keyframe"
        );
        self.held = self.held.split_off(&(seq + 1));
        self.next_seq = Some(seq + 1);
        self.lose_frame();
        self.drain(out);
    }

    fn drain(&mut self, out: &mut Vec<AssembledFrame>) {
        loop {
            if self.seeking_keyframe() && !self.find_keyframe_start() {
                return;
            }
            let Some(next) = self.next_seq else { return };
            if let Some(held) = self.held.remove(&next) {
                self.next_seq = Some(next + 1);
                if let Some(frame) = self.consume(held) {
                    out.push(frame);
                }
                continue;
            }
            if self.held.len() > MAX_HELD {
                // Memory bound: skip to the oldest held packet and resync at a keyframe.
                let oldest = self.held.keys().next().copied().unwrap_or(next);
                tracing::debug!(lost = oldest - next, "too many packets held; waiting for a keyframe");
                self.next_seq = Some(oldest);
                self.lose_frame();
                continue;
            }
            break;
        }
    }

    /// Drops the frame being assembled. A keyframe is asked for when this starts the wait for one, or when the
    /// frame lost was the keyframe waited for; delta frames lost while waiting ask for nothing more (the request
    /// already made covers them, and asking again would put a second keyframe behind the first on the link).
    fn lose_frame(&mut self) {
        let keyframe_lost = self.frame_timestamp.is_some() && self.frame_keyframe;
        self.frames_lost += 1;
        self.frame.clear();
        self.frame_timestamp = None;
        self.frame_broken = false;
        self.depacketizer.reset();
        if !self.waiting_for_keyframe || keyframe_lost {
            self.keyframe_request = true;
        }
        self.waiting_for_keyframe = true;
    }

    fn consume(&mut self, held: Held) -> Option<AssembledFrame> {
        if held.payload.is_empty() {
            // Padding only (a bandwidth probe): it takes a sequence number and carries nothing.
            return None;
        }
        if self.frame_timestamp.is_some_and(|t| t != held.timestamp) {
            // A new timestamp before the previous frame's marker: that frame is incomplete.
            self.lose_frame();
        }
        let starts_frame = self.frame_timestamp.is_none();
        if starts_frame {
            self.frame_timestamp = Some(held.timestamp);
            // N: this packet begins a new coded video sequence.
            self.frame_keyframe = held.payload.first().is_some_and(|h| h & 0x08 != 0);
            self.frame.clear();
            self.frame.extend_from_slice(&TEMPORAL_DELIMITER);
        }
        if self.waiting_for_keyframe && !self.frame_keyframe {
            self.frame_broken = true;
        }
        if !self.frame_broken {
            match self.depacketizer.depacketize(&held.payload, &mut self.frame) {
                Ok(()) if self.frame.len() > MAX_FRAME_BYTES => self.frame_broken = true,
                Ok(()) => {}
                Err(e) => {
                    tracing::debug!("bad AV1 RTP payload: {e}");
                    self.frame_broken = true;
                }
            }
        }
        if !held.marker {
            return None;
        }
        let timestamp = self.frame_timestamp.take().expect("frame started");
        if self.frame_broken {
            let was_waiting = self.waiting_for_keyframe;
            tracing::debug!(
                rtp_timestamp = timestamp,
                starts_sequence = self.frame_keyframe,
                waiting_for_keyframe = was_waiting,
                "frame discarded"
            );
            self.frame_broken = false;
            self.frame.clear();
            if !was_waiting {
                self.lose_frame();
            } else if self.frame_keyframe {
                // The keyframe waited for is damaged: another one is needed.
                self.keyframe_request = true;
            }
            return None;
        }
        if self.frame_keyframe {
            self.waiting_for_keyframe = false;
        }
        let data = std::mem::take(&mut self.frame).freeze();
        Some(AssembledFrame {
            data,
            rtp_timestamp: timestamp,
            keyframe: self.frame_keyframe,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::sequence::SequenceExtender;
    use super::super::test_support::temporal_unit;
    use super::*;

    /// The assembler fed 16-bit sequence numbers, as they come off the wire.
    struct Assembler16 {
        inner: FrameAssembler,
        ext: SequenceExtender,
    }

    impl Assembler16 {
        fn new() -> Self {
            Assembler16 {
                inner: FrameAssembler::new(),
                ext: SequenceExtender::default(),
            }
        }

        fn push(&mut self, seq: u16, timestamp: u32, marker: bool, payload: Bytes) -> Vec<AssembledFrame> {
            let mut out = Vec::new();
            let seq = self.ext.extend(seq);
            self.inner.push(seq, timestamp, marker, payload, &mut out);
            out
        }
    }

    impl std::ops::Deref for Assembler16 {
        type Target = FrameAssembler;
        fn deref(&self) -> &FrameAssembler {
            &self.inner
        }
    }

    impl std::ops::DerefMut for Assembler16 {
        fn deref_mut(&mut self) -> &mut FrameAssembler {
            &mut self.inner
        }
    }
    use rtc::rtp::codec::av1::Av1Payloader;
    use rtc::rtp::packetizer::Payloader;

    fn packets(tu: &Bytes, first_seq: u16, timestamp: u32) -> Vec<(u16, u32, bool, Bytes)> {
        let payloads = Av1Payloader::default().payload(1200, tu).unwrap();
        let n = payloads.len();
        payloads
            .into_iter()
            .enumerate()
            .map(|(i, p)| (first_seq.wrapping_add(i as u16), timestamp, i + 1 == n, p))
            .collect()
    }

    fn frame_obu(frame: &AssembledFrame) -> &[u8] {
        // The frame OBU's payload is the tail.
        &frame.data[frame.data.len() - 10..]
    }

    #[test]
    fn reassembles_fragmented_frames_across_sequence_wrap() {
        let mut a = Assembler16::new();
        let key = temporal_unit(true, 7, 5000);
        let delta = temporal_unit(false, 9, 3000);
        let mut seq = 65_530u16;
        let mut frames = Vec::new();
        for (tu, ts) in [(&key, 0u32), (&delta, 3000)] {
            let ps = packets(tu, seq, ts);
            seq = seq.wrapping_add(ps.len() as u16);
            for (s, t, m, p) in ps {
                frames.extend(a.push(s, t, m, p));
            }
        }
        assert_eq!(frames.len(), 2);
        assert!(frames[0].keyframe && !frames[1].keyframe);
        assert_eq!(frame_obu(&frames[0]), &[7; 10]);
        assert_eq!(frame_obu(&frames[1]), &[9; 10]);
        assert_eq!(&frames[0].data[..2], &TEMPORAL_DELIMITER);
        assert!(!a.take_keyframe_request());
    }

    #[test]
    fn padding_between_frames_costs_nothing() {
        // Chromium sends padding-only packets (bandwidth probes) between frames; each takes a sequence number.
        let mut a = Assembler16::new();
        let first = packets(&temporal_unit(true, 1, 3000), 0, 0);
        let n = first.len() as u16;
        let second = packets(&temporal_unit(false, 2, 3000), n + 2, 3000);
        let mut frames = Vec::new();
        for (s, t, m, p) in first {
            frames.extend(a.push(s, t, m, p));
        }
        frames.extend(a.push(n, 0, false, Bytes::new()));
        frames.extend(a.push(n + 1, 0, false, Bytes::new()));
        for (s, t, m, p) in second {
            frames.extend(a.push(s, t, m, p));
        }
        assert_eq!(frames.len(), 2);
        assert!(!a.take_keyframe_request(), "padding is not loss");
        assert_eq!(a.frames_lost(), 0);
    }

    #[test]
    fn reorders_within_the_window() {
        let mut a = Assembler16::new();
        let mut ps = packets(&temporal_unit(true, 1, 4000), 100, 0);
        ps.swap(1, 2);
        let frames: Vec<_> = ps.into_iter().flat_map(|(s, t, m, p)| a.push(s, t, m, p)).collect();
        assert_eq!(frames.len(), 1);
        assert_eq!(frame_obu(&frames[0]), &[1; 10]);
    }

    #[test]
    fn a_keyframe_whose_first_packet_comes_after_later_ones_is_assembled() {
        // The stream's first keyframe (and a later one waited for after a loss) with its first packet overtaken
        // by the next two, as on a path with jitter.
        for start in [0u16, 65_534] {
            let mut a = Assembler16::new();
            let key = packets(&temporal_unit(true, 1, 4000), start, 0);
            let n = key.len() as u16;
            let delta = packets(&temporal_unit(false, 2, 3000), start.wrapping_add(n), 3000);
            let mut order = key.clone();
            order.rotate_left(1); // packet 0 (N set) after packets 1..
            order.swap(key.len() - 1, 1);
            let mut frames: Vec<_> = order.into_iter().flat_map(|(s, t, m, p)| a.push(s, t, m, p)).collect();
            frames.extend(delta.into_iter().flat_map(|(s, t, m, p)| a.push(s, t, m, p)));
            assert_eq!(frames.len(), 2, "start {start}");
            assert!(frames[0].keyframe);
            assert_eq!(frame_obu(&frames[0]), &[1; 10]);
            assert_eq!(frame_obu(&frames[1]), &[2; 10]);
            assert!(!a.take_keyframe_request());
        }
        // Deltas held before a keyframe's start are of no use and dropped; so is a late packet older than it.
        let mut a = Assembler16::new();
        let stray = packets(&temporal_unit(false, 9, 3000), 10, 0);
        let key = packets(&temporal_unit(true, 1, 4000), 20, 3000);
        let mut frames = Vec::new();
        for (s, t, m, p) in stray.iter().skip(1).cloned().chain(key) {
            frames.extend(a.push(s, t, m, p));
        }
        let (s, t, m, p) = stray[0].clone();
        frames.extend(a.push(s, t, m, p));
        assert_eq!(frames.len(), 1);
        assert!(frames[0].keyframe);
    }

    #[test]
    fn loss_requests_a_keyframe_and_skips_deltas_until_one_arrives() {
        let mut a = Assembler16::new();
        let mut seq = 0u16;
        let mut send = |a: &mut Assembler16, tu: &Bytes, ts: u32, drop_second: bool| {
            let ps = packets(tu, seq, ts);
            seq = seq.wrapping_add(ps.len() as u16);
            let mut out = Vec::new();
            for (i, (s, t, m, p)) in ps.into_iter().enumerate() {
                if drop_second && i == 1 {
                    continue;
                }
                out.extend(a.push(s, t, m, p));
            }
            out
        };
        assert_eq!(send(&mut a, &temporal_unit(true, 1, 3000), 0, false).len(), 1);
        let lost = a.next_expected().unwrap() + 1;
        // A delta frame loses a packet; then many delta frames follow: held while the packet may still come.
        send(&mut a, &temporal_unit(false, 2, 3000), 3000, true);
        let mut delivered = 0;
        for i in 0..120 {
            delivered += send(&mut a, &temporal_unit(false, 3, 3000), 6000 + i * 3000, false).len();
        }
        assert_eq!(delivered, 0);
        assert!(
            !a.take_keyframe_request(),
            "no keyframe while the packet may still be repaired"
        );
        // The loss tracker gives it up: what was held is assembled, the deltas are not decodable.
        let mut out = Vec::new();
        a.abandon_through(lost, &mut out);
        assert!(out.is_empty(), "no delta frame may be delivered after a loss");
        assert!(a.take_keyframe_request(), "loss must ask for a keyframe");
        assert!(a.waiting_for_keyframe());
        let after = send(&mut a, &temporal_unit(true, 4, 3000), 1_000_000, false);
        assert_eq!(after.len(), 1);
        assert!(after[0].keyframe);
        assert!(a.frames_lost() >= 1);
    }

    #[test]
    fn payloads_that_crashed_the_viewer_lose_a_frame_and_nothing_else() {
        // Security review M1: rtc-rtp 0.21.1's depacketizer panicked on these, ending the viewer's video.
        let mut a = Assembler16::new();
        for (i, payload) in [&[0x18u8, 0x36][..], &[0x08, 0x01, 0x36], &[0x18, 0x34]]
            .iter()
            .enumerate()
        {
            let out = a.push(i as u16, i as u32, true, Bytes::copy_from_slice(payload));
            assert!(out.is_empty());
        }
        assert!(a.take_keyframe_request(), "a keyframe is asked for instead");
    }

    #[test]
    fn garbage_payloads_do_not_panic() {
        let mut a = Assembler16::new();
        for i in 0..2000u16 {
            let len = (i as usize * 7) % 40;
            let payload: Vec<u8> = (0..len).map(|j| (i as usize * 31 + j * 17) as u8).collect();
            a.push(i.wrapping_mul(3), u32::from(i / 3), i % 5 == 0, Bytes::from(payload));
        }
    }
}
