//! The receive side of the data path (… → send → **receive** → decode → present): RTP packets of one video
//! stream back into AV1 temporal units, with loss repaired by retransmission first and keyframes only when it
//! cannot be. Plain logic with time passed in; the viewer's RTP loop drives it.
//!
//! - [`sequence`]: 16-bit RTP sequence numbers extended to 64 bits.
//! - [`loss`]: which packets are missing, when to NACK them again and when to give them up.
//! - [`assembler`]: packets in sequence order → temporal units; discards until a keyframe after a loss.
//! - [`av1_depacketizer`]: the AV1 RTP payload format, read with every length checked.
//! - [`video`]: the three together as one state machine, with the keyframe-request policy.
//! - `rtp_loop` (crate-private): the edge that drives [`video`] from a WebRTC track and feeds the decoder.

pub mod assembler;
pub mod av1_depacketizer;
pub mod loss;
pub(crate) mod rtp_loop;
pub mod sequence;
pub mod video;

/// Temporal units for the receive side's tests.
#[cfg(test)]
pub(crate) mod test_support {
    use bytes::{Bytes, BytesMut};

    /// A fake temporal unit: TD, a sequence header (type 1, 3 bytes) when `key`, and a frame OBU (type 6, with a
    /// size field) of `len` bytes of `fill`.
    pub(crate) fn temporal_unit(key: bool, fill: u8, len: usize) -> Bytes {
        let mut tu = BytesMut::from(&[0x12u8, 0x00][..]);
        if key {
            tu.extend_from_slice(&[0x0a, 0x03, 0x00, 0x00, 0x00]);
        }
        tu.extend_from_slice(&[0x32]);
        super::av1_depacketizer::write_leb128(&mut tu, len);
        tu.extend(std::iter::repeat_n(fill, len));
        tu.freeze()
    }
}
