//! RTP's 16-bit sequence numbers, extended to 64 bits so that order and distance survive the wrap at 65,535.

/// Extends 16-bit RTP sequence numbers of one stream to 64 bits around the highest one seen.
///
/// The first number maps to `seq + 65,536` (so a packet a little older than the first still has room below it);
/// each later one maps to whichever of the three candidates around the highest so far is nearest.
///
/// ```
/// use peerdesk::receive::sequence::SequenceExtender;
/// let mut ext = SequenceExtender::default();
/// let a = ext.extend(65_535);
/// let b = ext.extend(0); // wrapped
/// assert_eq!(b, a + 1);
/// assert_eq!(ext.extend(65_534), a - 1); // a little late, still before
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SequenceExtender {
    highest: Option<u64>,
}

impl SequenceExtender {
    /// The 64-bit sequence number of `seq`.
    pub fn extend(&mut self, seq: u16) -> u64 {
        let ext = match self.highest {
            None => u64::from(seq) + (1 << 16),
            Some(highest) => {
                let base = highest & !0xFFFF;
                [base.saturating_sub(1 << 16), base, base + (1 << 16)]
                    .into_iter()
                    .map(|b| b | u64::from(seq))
                    .min_by_key(|c| c.abs_diff(highest))
                    .unwrap_or(base | u64::from(seq))
            }
        };
        if self.highest.is_none_or(|h| ext > h) {
            self.highest = Some(ext);
        }
        ext
    }

    /// The highest extended sequence number seen, if any.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_survives_wraps_and_late_packets() {
        let mut ext = SequenceExtender::default();
        let mut previous = ext.extend(60_000);
        for i in 1..200_000u32 {
            let seq = (60_000u32 + i) as u16;
            let e = ext.extend(seq);
            assert_eq!(e, previous + 1);
            previous = e;
        }
        // A packet 300 behind the highest is placed 300 behind, across a wrap too.
        let highest = ext.highest().unwrap();
        let late = ext.extend((highest as u16).wrapping_sub(300));
        assert_eq!(late, highest - 300);
        assert_eq!(ext.highest(), Some(highest), "a late packet does not move the highest");
    }
}
