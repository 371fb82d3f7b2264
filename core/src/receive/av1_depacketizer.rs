//! AV1 RTP payloads → OBUs with size fields (the low-overhead bitstream format dav1d reads), per the AV1 RTP
//! specification: aggregation header `|Z|Y| W |N|-|-|-|`, OBU elements with LEB128 lengths (the last one without
//! when W > 0), fragments continued across packets (Y then Z).
//!
//! The same framing as webrtc-rs's depacketizer (rtc-rtp 0.21.1), written again because that one panics on
//! network input: an OBU element shorter than its own header (`[0x18, 0x36]`: one byte announcing an extension
//! header) slices past its end, and `[0x18, 0x34]` underflows a length. Here every length is checked and bad
//! input is a [`DepacketizeError`]; the OBUs are written straight into the caller's frame buffer.

use bytes::{BufMut, BytesMut};

const Z_BIT: u8 = 0b1000_0000;
const Y_BIT: u8 = 0b0100_0000;
const W_MASK: u8 = 0b0011_0000;
const N_BIT: u8 = 0b0000_1000;
const OBU_TYPE_MASK: u8 = 0b0111_1000;
const OBU_EXTENSION_BIT: u8 = 0b0000_0100;
const OBU_HAS_SIZE_BIT: u8 = 0b0000_0010;
const OBU_TYPE_TEMPORAL_DELIMITER: u8 = 2;
const OBU_TYPE_TILE_LIST: u8 = 8;
/// A fragment held across packets is never larger than a whole frame may be.
const MAX_FRAGMENT: usize = crate::decode::MAX_TEMPORAL_UNIT;

/// Why a payload was refused. The frame it belongs to is lost; the depacketizer stays usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DepacketizeError {
    /// Shorter than an aggregation header plus one byte.
    #[error("AV1 RTP payload too short")]
    Short,
    /// A LEB128 length is cut off or too large.
    #[error("bad LEB128 length in an AV1 RTP payload")]
    BadLength,
    /// An OBU element runs past the payload's end.
    #[error("an OBU element runs past the end of the AV1 RTP payload")]
    Truncated,
    /// An OBU is shorter than its own header, or its size field disagrees with its length.
    #[error("malformed OBU in an AV1 RTP payload")]
    BadObu,
    /// W announced more OBU elements than the payload holds.
    #[error("AV1 RTP payload holds fewer OBU elements than its header says")]
    MissingElements,
    /// A fragment continued across packets grew past the largest frame accepted.
    #[error("AV1 OBU fragment too large")]
    TooLarge,
}

/// Reads an unsigned LEB128 value (at most 8 bytes, value below 2^32): `(value, bytes read)`.
fn read_leb128(data: &[u8]) -> Result<(usize, usize), DepacketizeError> {
    let mut value: u64 = 0;
    for (i, &byte) in data.iter().take(8).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return u32::try_from(value)
                .map(|v| (v as usize, i + 1))
                .map_err(|_| DepacketizeError::BadLength);
        }
    }
    Err(DepacketizeError::BadLength)
}

/// Appends `value` as LEB128, the AV1 size encoding.
pub(super) fn write_leb128(out: &mut BytesMut, mut value: usize) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.put_u8(byte);
            return;
        }
        out.put_u8(byte | 0x80);
    }
}

/// Reassembles the OBUs of one RTP stream; keeps a fragment that continues in the next packet.
#[derive(Debug, Default)]
pub struct Av1Depacketizer {
    fragment: BytesMut,
}

impl Av1Depacketizer {
    /// A depacketizer holding no fragment.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets a held fragment (after loss).
    pub fn reset(&mut self) {
        self.fragment.clear();
    }

    /// Appends the complete OBUs of `payload` to `out`, each with its size field; a last OBU that continues in
    /// the next packet (Y) is held back. Temporal delimiters and tile lists are dropped.
    ///
    /// # Errors
    /// [`DepacketizeError`] for malformed input; `out` may then hold part of the payload's OBUs, and the frame
    /// should be treated as lost.
    pub fn depacketize(&mut self, payload: &[u8], out: &mut BytesMut) -> Result<(), DepacketizeError> {
        let Some((&header, mut rest)) = payload.split_first() else {
            return Err(DepacketizeError::Short);
        };
        if rest.is_empty() {
            return Err(DepacketizeError::Short);
        }
        let z = header & Z_BIT != 0;
        let y = header & Y_BIT != 0;
        let w = usize::from((header & W_MASK) >> 4);
        if header & N_BIT != 0 || !z {
            self.fragment.clear();
        }
        let mut index = 0;
        while !rest.is_empty() {
            let last_by_count = w != 0 && index == w - 1;
            let length = if last_by_count {
                rest.len()
            } else {
                let (length, used) = read_leb128(rest)?;
                rest = &rest[used..];
                length
            };
            if length > rest.len() {
                return Err(DepacketizeError::Truncated);
            }
            let (element, after) = rest.split_at(length);
            rest = after;
            let is_last = last_by_count || rest.is_empty();
            let continues_previous = index == 0 && z;
            index += 1;

            if continues_previous && self.fragment.is_empty() {
                // The OBU's first fragment was lost: skip what remains of it.
                if is_last {
                    break;
                }
                continue;
            }
            if is_last && y {
                if continues_previous {
                    if self.fragment.len() + element.len() > MAX_FRAGMENT {
                        self.fragment.clear();
                        return Err(DepacketizeError::TooLarge);
                    }
                    self.fragment.extend_from_slice(element);
                } else {
                    self.fragment.clear();
                    self.fragment.extend_from_slice(element);
                }
                break;
            }
            if continues_previous {
                let mut whole = std::mem::take(&mut self.fragment);
                whole.extend_from_slice(element);
                let result = write_obu(&whole, out);
                whole.clear();
                self.fragment = whole; // keep the allocation
                result?;
            } else {
                write_obu(element, out)?;
            }
            if last_by_count {
                break;
            }
        }
        if w != 0 && index < w && !y {
            return Err(DepacketizeError::MissingElements);
        }
        Ok(())
    }
}

/// Writes one whole OBU to `out` with a size field, checking that it holds its header (and, when it already
/// has a size field, that the size matches its length).
fn write_obu(obu: &[u8], out: &mut BytesMut) -> Result<(), DepacketizeError> {
    let Some(&obu_header) = obu.first() else {
        return Ok(()); // empty elements are skipped
    };
    let obu_type = (obu_header & OBU_TYPE_MASK) >> 3;
    if obu_type == OBU_TYPE_TEMPORAL_DELIMITER || obu_type == OBU_TYPE_TILE_LIST {
        return Ok(());
    }
    let header_size = if obu_header & OBU_EXTENSION_BIT != 0 { 2 } else { 1 };
    if obu.len() < header_size {
        return Err(DepacketizeError::BadObu);
    }
    if obu_header & OBU_HAS_SIZE_BIT != 0 {
        let (size, used) = read_leb128(&obu[header_size..])?;
        if header_size + used + size != obu.len() {
            return Err(DepacketizeError::BadObu);
        }
        out.extend_from_slice(obu);
    } else {
        out.put_u8(obu_header | OBU_HAS_SIZE_BIT);
        out.extend_from_slice(&obu[1..header_size]);
        write_leb128(out, obu.len() - header_size);
        out.extend_from_slice(&obu[header_size..]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use rtc::rtp::codec::av1::Av1Payloader;
    use rtc::rtp::packetizer::Payloader;

    fn depacketize_all(d: &mut Av1Depacketizer, payloads: &[Bytes]) -> Result<BytesMut, DepacketizeError> {
        let mut out = BytesMut::new();
        for p in payloads {
            d.depacketize(p, &mut out)?;
        }
        Ok(out)
    }

    /// TD + sequence header + a large frame OBU, all with size fields, as an encoder writes them.
    fn temporal_unit(len: usize) -> Vec<u8> {
        let mut tu = vec![0x12, 0x00, 0x0a, 0x03, 0x00, 0x00, 0x00, 0x32];
        let mut size = BytesMut::new();
        write_leb128(&mut size, len);
        tu.extend_from_slice(&size);
        tu.extend((0..len).map(|i| (i * 7) as u8));
        tu
    }

    #[test]
    fn the_payloaders_packets_come_back_as_the_same_obus() {
        for (len, mtu) in [(10, 1200), (5_000, 1200), (70_000, 1000), (1, 60)] {
            let tu = temporal_unit(len);
            let mut payloader = Av1Payloader::default();
            let packets = payloader.payload(mtu, &Bytes::from(tu.clone())).unwrap();
            let out = depacketize_all(&mut Av1Depacketizer::new(), &packets).unwrap();
            // The temporal delimiter is dropped; everything else comes back byte for byte.
            assert_eq!(&out[..], &tu[2..], "len {len}, mtu {mtu}");
        }
    }

    #[test]
    fn payloads_that_crashed_webrtc_rs_are_errors() {
        // rtc-rtp 0.21.1: slice start > end, and a length underflow.
        for payload in [&[0x18u8, 0x36][..], &[0x08, 0x01, 0x36], &[0x18, 0x34], &[0x10, 0x34]] {
            let mut out = BytesMut::new();
            assert_eq!(
                Av1Depacketizer::new().depacketize(payload, &mut out),
                Err(DepacketizeError::BadObu),
                "{payload:02x?}"
            );
        }
        // The same through a fragment: one byte held (Y), then an empty continuation.
        let mut d = Av1Depacketizer::new();
        let mut out = BytesMut::new();
        d.depacketize(&[0x50, 0x34], &mut out).unwrap();
        assert_eq!(d.depacketize(&[0x80, 0x00], &mut out), Err(DepacketizeError::BadObu));
    }

    #[test]
    fn every_short_payload_is_handled_without_panicking() {
        // All payloads of up to 3 bytes, fed to one depacketizer in turn (so held fragments mix too).
        let mut d = Av1Depacketizer::new();
        let mut out = BytesMut::new();
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let _ = d.depacketize(&[a, b], &mut out);
                let _ = d.depacketize(&[a, b, a ^ b], &mut out);
                out.clear();
            }
        }
        assert_eq!(d.depacketize(&[], &mut out), Err(DepacketizeError::Short));
        assert_eq!(read_leb128(&[0xff; 9]), Err(DepacketizeError::BadLength));
        assert_eq!(
            read_leb128(&[0xff, 0xff, 0xff, 0xff, 0x7f]),
            Err(DepacketizeError::BadLength)
        );
    }
}
