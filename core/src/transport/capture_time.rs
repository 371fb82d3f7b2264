//! The host's capture time on the wire: the absolute-capture-time RTP header extension (libwebrtc's
//! `abs-capture-time`, 8 bytes: the capture time as 64-bit NTP, seconds and fraction). The host puts it on the
//! first packet of every frame; the viewer keeps the last [`CaptureTimes::CAPACITY`] of them by RTP timestamp and
//! gives each decoded frame the capture time of its picture, not the time it arrived.
//!
//! The time is the source's clock as the host read it: for the built-in sources (X11, the synthetic desktop) the
//! UNIX epoch; for pushed frames the app's own `timestamp`. NTP counts seconds from 1900 in 32 bits, so a time
//! is carried modulo 2³² s (136 years) and read back into the era that holds the UNIX epoch.

use std::time::Duration;

/// The extension's URI, as libwebrtc names it in SDP.
pub const ABS_CAPTURE_TIME_URI: &str = "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time";

/// Seconds from the NTP epoch (1900) to the UNIX epoch (1970).
const NTP_TO_UNIX_SECS: u64 = 2_208_988_800;

/// The extension's payload for a frame captured at `capture` (on the source's clock).
pub fn encode(capture: Duration) -> [u8; 8] {
    let seconds = (capture.as_secs() + NTP_TO_UNIX_SECS) & 0xFFFF_FFFF;
    // The fraction in units of 2⁻³² s; below 2³² for any sub-second nanosecond count.
    let fraction = (u64::from(capture.subsec_nanos()) << 32) / 1_000_000_000;
    ((seconds << 32) | fraction).to_be_bytes()
}

/// The capture time in an extension payload: 8 bytes, or 16 with the optional clock offset (ignored). Anything
/// else is `None`.
pub fn decode(payload: &[u8]) -> Option<Duration> {
    if payload.len() != 8 && payload.len() != 16 {
        return None;
    }
    let ntp = u64::from_be_bytes(payload[..8].try_into().ok()?);
    let mut seconds = ntp >> 32;
    if seconds < NTP_TO_UNIX_SECS {
        seconds += 1 << 32; // the next NTP era (from 2036)
    }
    let nanos = ((ntp & 0xFFFF_FFFF) * 1_000_000_000 + (1 << 31)) >> 32;
    // Rounding may reach one second exactly; `Duration::new` carries it over.
    Some(Duration::new(seconds - NTP_TO_UNIX_SECS, 0) + Duration::from_nanos(nanos))
}

/// Capture times of the frames received last, by RTP timestamp: a fixed ring, so a host that sends a time with
/// every packet costs no memory; when full, the oldest time is overwritten.
#[derive(Debug, Clone)]
pub struct CaptureTimes {
    entries: [Option<(u32, Duration)>; Self::CAPACITY],
    next: usize,
}

impl Default for CaptureTimes {
    fn default() -> Self {
        Self {
            entries: [None; Self::CAPACITY],
            next: 0,
        }
    }
}

impl CaptureTimes {
    /// Frames remembered: two seconds at 30 fps, more than a frame waits for its repaired packets (1 s at most).
    pub const CAPACITY: usize = 64;

    /// Records that the frame with `rtp_timestamp` was captured at `capture`. A second time for the same frame
    /// (a retransmitted first packet) replaces nothing.
    pub fn insert(&mut self, rtp_timestamp: u32, capture: Duration) {
        if self.get(rtp_timestamp).is_some() {
            return;
        }
        self.entries[self.next] = Some((rtp_timestamp, capture));
        self.next = (self.next + 1) % Self::CAPACITY;
    }

    /// The capture time of the frame with `rtp_timestamp`, when it was recorded and not yet overwritten.
    pub fn get(&self, rtp_timestamp: u32) -> Option<Duration> {
        self.entries
            .iter()
            .flatten()
            .find(|(ts, _)| *ts == rtp_timestamp)
            .map(|(_, capture)| *capture)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unix_time_survives_the_wire_within_a_nanosecond() {
        for capture in [
            Duration::new(1_796_000_000, 123_456_789), // 2026
            Duration::new(2_085_978_495, 999_999_999), // the last second of NTP era 0 (2036-02-07)
            Duration::new(2_085_978_496, 0),           // the first of era 1
            Duration::ZERO,
        ] {
            let back = decode(&encode(capture)).expect("8 bytes decode");
            let error = back.abs_diff(capture);
            assert!(error <= Duration::from_nanos(1), "{capture:?} came back as {back:?}");
        }
    }

    #[test]
    fn an_app_clock_from_zero_survives_the_wire() {
        // Pushed frames carry the app's clock, which may start at 0.
        let capture = Duration::from_micros(33_333);
        assert_eq!(decode(&encode(capture)).unwrap().as_micros(), 33_333);
    }

    #[test]
    fn the_clock_offset_form_is_read_and_other_sizes_are_refused() {
        let mut sixteen = encode(Duration::from_secs(5)).to_vec();
        sixteen.extend_from_slice(&[0xFF; 8]);
        assert_eq!(decode(&sixteen), Some(Duration::from_secs(5)));
        for len in [0, 1, 7, 9, 15, 17] {
            assert_eq!(decode(&vec![0; len]), None, "{len} bytes");
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_frames_and_forgets_the_oldest() {
        let mut times = CaptureTimes::default();
        let n = CaptureTimes::CAPACITY as u32 + 10;
        for i in 0..n {
            times.insert(i * 3000, Duration::from_millis(u64::from(i)));
        }
        assert_eq!(times.get(0), None, "overwritten");
        assert_eq!(times.get(9 * 3000), None, "overwritten");
        assert_eq!(times.get(10 * 3000), Some(Duration::from_millis(10)));
        assert_eq!(times.get((n - 1) * 3000), Some(Duration::from_millis(u64::from(n - 1))));
        assert_eq!(times.get(1), None, "never seen");
    }

    #[test]
    fn a_repeated_time_for_a_frame_keeps_the_first() {
        let mut times = CaptureTimes::default();
        times.insert(90, Duration::from_secs(1));
        times.insert(90, Duration::from_secs(2));
        assert_eq!(times.get(90), Some(Duration::from_secs(1)));
    }
}
