//! Frame stamps: a machine-readable block code in the top-left corner of a picture, carrying the frame number and
//! the capture time, so that a viewer can read them back from decoded pixels and measure glass-to-glass latency
//! and frame order.
//!
//! The code is a grid of [`COLUMNS`] × [`ROWS`] black or white cells. The cell size scales with the picture width
//! (`width / 120`, at least 4 pixels), so a stamp still reads after the picture is downscaled. Bits, in row order:
//! a 4-bit sync pattern `1010`, 32 bits of frame number, 32 bits of capture time (milliseconds since the UNIX
//! epoch, modulo 2³²), then a 12-bit checksum.

use crate::frame::{Frame, PixelFormat, Rect};

/// Columns of cells.
pub const COLUMNS: u32 = 10;
/// Rows of cells.
pub const ROWS: u32 = 8;
const SYNC: u64 = 0b1010;

/// What a stamp carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameStamp {
    /// Frame number at the source.
    pub frame_number: u32,
    /// Capture time in milliseconds since the UNIX epoch, modulo 2³².
    pub capture_millis: u32,
}

impl FrameStamp {
    /// Milliseconds from the stamp's capture time to `now_millis` (same clock, modulo 2³²).
    pub fn age_millis(&self, now_millis: u32) -> u32 {
        now_millis.wrapping_sub(self.capture_millis)
    }
}

/// The side of one stamp cell, in pixels, for a picture `width` pixels wide.
pub fn cell_size(width: u32) -> u32 {
    (width / 120).max(4)
}

/// The rectangle the stamp occupies in a picture of this size, or `None` when the picture is too small to hold one.
pub fn stamp_rect(width: u32, height: u32) -> Option<Rect> {
    let cell = cell_size(width);
    let rect = Rect::new(0, 0, COLUMNS * cell, ROWS * cell);
    (rect.right() <= width && rect.bottom() <= height).then_some(rect)
}

fn checksum(payload: u64) -> u64 {
    // Fold the 64 payload bits into 12, mixing so that single and adjacent bit errors change it.
    let mut x = payload.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    (x >> 52) & 0xFFF
}

fn bits(stamp: FrameStamp) -> u128 {
    let payload = (u64::from(stamp.frame_number) << 32) | u64::from(stamp.capture_millis);
    (u128::from(SYNC) << 76) | (u128::from(payload) << 12) | u128::from(checksum(payload))
}

fn bit_at(code: u128, index: u32) -> bool {
    (code >> (COLUMNS * ROWS - 1 - index)) & 1 == 1
}

/// Draws `stamp` into a BGRA frame and adds its rectangle to the frame's damage. Returns `false` (and draws
/// nothing) when the frame is too small or not BGRA.
pub fn draw_bgra(frame: &mut Frame, stamp: FrameStamp) -> bool {
    if frame.format() != PixelFormat::Bgra {
        return false;
    }
    let Some(rect) = stamp_rect(frame.width(), frame.height()) else {
        return false;
    };
    let cell = cell_size(frame.width()) as usize;
    let code = bits(stamp);
    let stride = frame.stride(0);
    let data = frame.plane_mut(0);
    for row in 0..ROWS {
        for col in 0..COLUMNS {
            let value = if bit_at(code, row * COLUMNS + col) { 255 } else { 0 };
            for y in 0..cell {
                let start = (row as usize * cell + y) * stride + col as usize * cell * 4;
                for px in data[start..start + cell * 4].chunks_exact_mut(4) {
                    px.copy_from_slice(&[value, value, value, 255]);
                }
            }
        }
    }
    frame.damage.push(rect);
    true
}

/// Reads a stamp from a luma plane (`stride` bytes a row) of a `width` × `height` picture. Returns `None` when no
/// valid stamp is there (sync or checksum mismatch, picture too small).
pub fn read_luma(luma: &[u8], stride: usize, width: u32, height: u32) -> Option<FrameStamp> {
    stamp_rect(width, height)?;
    let cell = cell_size(width) as usize;
    let mut code: u128 = 0;
    for row in 0..ROWS as usize {
        for col in 0..COLUMNS as usize {
            // Average the cell's centre half to be robust to ringing at cell edges.
            let (y0, x0) = (row * cell + cell / 4, col * cell + cell / 4);
            let span = (cell / 2).max(1);
            let mut sum = 0u32;
            for y in y0..y0 + span {
                let line = luma.get(y * stride + x0..y * stride + x0 + span)?;
                sum += line.iter().map(|&v| u32::from(v)).sum::<u32>();
            }
            let mean = sum / (span * span) as u32;
            code = (code << 1) | u128::from(mean >= 128);
        }
    }
    if (code >> 76) as u64 != SYNC {
        return None;
    }
    let payload = ((code >> 12) & u128::from(u64::MAX)) as u64;
    if (code & 0xFFF) as u64 != checksum(payload) {
        return None;
    }
    Some(FrameStamp {
        frame_number: (payload >> 32) as u32,
        capture_millis: payload as u32,
    })
}

/// Reads a stamp from an I420 frame.
pub fn read_i420(frame: &Frame) -> Option<FrameStamp> {
    if frame.format() != PixelFormat::I420 {
        return None;
    }
    read_luma(frame.plane(0), frame.stride(0), frame.width(), frame.height())
}

/// Milliseconds since the UNIX epoch, modulo 2³², the clock stamps use.
pub fn now_millis() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u32)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::bgra_to_i420;

    #[test]
    fn round_trips_through_i420() {
        for (w, h) in [(1920, 1080), (41, 33), (640, 480)] {
            let mut frame = Frame::new(PixelFormat::Bgra, w, h).unwrap();
            let stamp = FrameStamp {
                frame_number: 0xDEAD_BEEF,
                capture_millis: 123_456_789,
            };
            assert!(draw_bgra(&mut frame, stamp));
            let mut yuv = Frame::new(PixelFormat::I420, 1, 1).unwrap();
            bgra_to_i420(&frame.as_bgra_image().unwrap(), &mut yuv, None).unwrap();
            assert_eq!(read_i420(&yuv), Some(stamp), "{w}x{h}");
        }
    }

    #[test]
    fn too_small_or_blank_has_no_stamp() {
        let mut tiny = Frame::new(PixelFormat::Bgra, 30, 30).unwrap();
        assert!(!draw_bgra(
            &mut tiny,
            FrameStamp {
                frame_number: 1,
                capture_millis: 1
            }
        ));
        let blank = Frame::new(PixelFormat::I420, 640, 480).unwrap();
        assert_eq!(read_i420(&blank), None);
    }

    #[test]
    fn a_flipped_cell_is_detected() {
        let mut frame = Frame::new(PixelFormat::Bgra, 640, 480).unwrap();
        draw_bgra(
            &mut frame,
            FrameStamp {
                frame_number: 7,
                capture_millis: 99,
            },
        );
        let mut yuv = Frame::new(PixelFormat::I420, 1, 1).unwrap();
        bgra_to_i420(&frame.as_bgra_image().unwrap(), &mut yuv, None).unwrap();
        // Invert cell (row 3, column 5).
        let cell = cell_size(640) as usize;
        let stride = yuv.stride(0);
        for y in 3 * cell..4 * cell {
            for v in &mut yuv.plane_mut(0)[y * stride + 5 * cell..y * stride + 6 * cell] {
                *v = 255 - *v;
            }
        }
        assert_eq!(read_i420(&yuv), None);
    }
}
