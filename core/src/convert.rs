//! Colour conversion: BGRA ⇄ I420, step two of the data path (capture → **convert** → encode).
//!
//! All conversions use the `yuv` crate's SIMD kernels with BT.601 limited range, the colour description AV1
//! receivers assume when a stream carries none. [`bgra_to_i420`] converts only the row bands that the frame's
//! damage touches when that is less than most of the picture, so a blinking cursor costs microseconds.

use crate::frame::{BgraImage, Frame, FrameError, I420Image, PixelFormat, Rect};
use yuv::{BufferStoreMut, YuvConversionMode, YuvPlanarImage, YuvPlanarImageMut, YuvRange, YuvStandardMatrix};

/// Errors from colour conversion.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// The pictures do not fit (size, stride, format).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The conversion kernel refused the buffers.
    #[error("conversion kernel: {0}")]
    Kernel(String),
}

const RANGE: YuvRange = YuvRange::Limited;
const MATRIX: YuvStandardMatrix = YuvStandardMatrix::Bt601;

/// Above this share of rows damaged, the whole picture is converted in one pass.
const PARTIAL_CONVERSION_MAX_SHARE: f32 = 0.6;

/// Converts `src` into the I420 frame `dst` (reshaped to match), converting only the rows touched by `damage`
/// when that pays; `None` converts everything. `dst.damage` is left untouched.
pub fn bgra_to_i420(src: &BgraImage<'_>, dst: &mut Frame, damage: Option<&[Rect]>) -> Result<(), ConvertError> {
    let (width, height) = (src.width(), src.height());
    if dst.format() != PixelFormat::I420 || dst.width() != width || dst.height() != height {
        let saved = std::mem::take(&mut dst.damage);
        dst.reshape(PixelFormat::I420, width, height)?;
        dst.damage = saved;
        return convert_band(src, dst, 0, height);
    }
    let Some(damage) = damage else {
        return convert_band(src, dst, 0, height);
    };
    let mut bands = [(0u32, 0u32); 8];
    let band_count = row_bands(damage, height, &mut bands);
    let rows: u32 = bands[..band_count].iter().map(|(a, b)| b - a).sum();
    if band_count == 0 {
        return Ok(());
    }
    if rows as f32 > height as f32 * PARTIAL_CONVERSION_MAX_SHARE {
        return convert_band(src, dst, 0, height);
    }
    for &(start, end) in &bands[..band_count] {
        convert_band(src, dst, start, end)?;
    }
    Ok(())
}

/// Merges the vertical extents of `damage` into at most `out.len()` sorted, disjoint row bands aligned to even
/// rows (I420 chroma covers two rows). Returns how many bands were written.
fn row_bands(damage: &[Rect], height: u32, out: &mut [(u32, u32)]) -> usize {
    let mut count = 0;
    for rect in damage {
        let rect = rect.clipped(u32::MAX, height);
        if rect.is_empty() {
            continue;
        }
        let start = rect.y & !1;
        let end = (rect.bottom() + 1).min(height + 1) & !1;
        let end = end.max(start + 2).min(height);
        insert_band(out, &mut count, (start, end));
    }
    count
}

fn insert_band(bands: &mut [(u32, u32)], count: &mut usize, mut band: (u32, u32)) {
    // Absorb every overlapping or touching band, then insert in order.
    let mut i = 0;
    while i < *count {
        let (s, e) = bands[i];
        if band.0 <= e && s <= band.1 {
            band = (band.0.min(s), band.1.max(e));
            bands.copy_within(i + 1..*count, i);
            *count -= 1;
        } else {
            i += 1;
        }
    }
    if *count == bands.len() {
        // Out of slots: merge into the last band (still correct, converts a little more).
        let last = &mut bands[*count - 1];
        *last = (last.0.min(band.0), last.1.max(band.1));
        bands[..*count].sort_unstable();
        return;
    }
    bands[*count] = band;
    *count += 1;
    bands[..*count].sort_unstable();
}

fn convert_band(src: &BgraImage<'_>, dst: &mut Frame, start: u32, end: u32) -> Result<(), ConvertError> {
    let width = src.width();
    let rows = end - start;
    let (y_stride, c_stride) = (dst.stride(0), dst.stride(1));
    let c_start = (start / 2) as usize;
    let c_end = end.div_ceil(2) as usize;
    let (y, u, v) = dst.planes_mut();
    let y_plane = &mut y[start as usize * y_stride..end as usize * y_stride];
    let u_plane = &mut u[c_start * c_stride..c_end * c_stride];
    let v_plane = &mut v[c_start * c_stride..c_end * c_stride];
    let mut image = YuvPlanarImageMut {
        y_plane: BufferStoreMut::Borrowed(y_plane),
        y_stride: y_stride as u32,
        u_plane: BufferStoreMut::Borrowed(u_plane),
        u_stride: c_stride as u32,
        v_plane: BufferStoreMut::Borrowed(v_plane),
        v_stride: c_stride as u32,
        width,
        height: rows,
    };
    let src_start = start as usize * src.stride();
    let src_len = (rows as usize - 1) * src.stride() + width as usize * 4;
    let bgra = &src.data()[src_start..src_start + src_len];
    yuv::bgra_to_yuv420(
        &mut image,
        bgra,
        src.stride() as u32,
        RANGE,
        MATRIX,
        YuvConversionMode::Balanced,
    )
    .map_err(|e| ConvertError::Kernel(e.to_string()))
}

fn planar<'a>(src: &I420Image<'a>) -> YuvPlanarImage<'a, u8> {
    YuvPlanarImage {
        y_plane: src.plane(0),
        y_stride: src.stride(0) as u32,
        u_plane: src.plane(1),
        u_stride: src.stride(1) as u32,
        v_plane: src.plane(2),
        v_stride: src.stride(2) as u32,
        width: src.width(),
        height: src.height(),
    }
}

fn check_packed_destination(dst: &[u8], stride: usize, width: u32, height: u32) -> Result<(), ConvertError> {
    BgraImage::new(dst, width, height, stride)?;
    Ok(())
}

/// Converts an I420 picture to RGBA into `dst` (`stride` bytes a row).
pub fn i420_to_rgba(src: &I420Image<'_>, dst: &mut [u8], stride: usize) -> Result<(), ConvertError> {
    check_packed_destination(dst, stride, src.width(), src.height())?;
    yuv::yuv420_to_rgba(&planar(src), dst, stride as u32, RANGE, MATRIX)
        .map_err(|e| ConvertError::Kernel(e.to_string()))
}

/// Converts an I420 picture to BGRA into `dst` (`stride` bytes a row).
pub fn i420_to_bgra(src: &I420Image<'_>, dst: &mut [u8], stride: usize) -> Result<(), ConvertError> {
    check_packed_destination(dst, stride, src.width(), src.height())?;
    yuv::yuv420_to_bgra(&planar(src), dst, stride as u32, RANGE, MATRIX)
        .map_err(|e| ConvertError::Kernel(e.to_string()))
}

/// Converts an I420 picture into a new tightly packed RGBA buffer (`width * 4` bytes a row).
pub fn i420_to_rgba_vec(src: &I420Image<'_>) -> Result<Vec<u8>, ConvertError> {
    let stride = src.width() as usize * 4;
    let mut out = vec![0u8; stride * src.height() as usize];
    i420_to_rgba(src, &mut out, stride)?;
    Ok(out)
}

/// Halves an I420 picture in each direction (2×2 box filter) into `dst`, for adaptive downscaling.
pub fn downscale_i420_half(src: &I420Image<'_>, dst: &mut Frame) -> Result<(), ConvertError> {
    let (w, h) = (src.width().div_ceil(2), src.height().div_ceil(2));
    dst.reshape(PixelFormat::I420, w, h)?;
    for plane in 0..3 {
        let (sw, sh) = if plane == 0 {
            (src.width() as usize, src.height() as usize)
        } else {
            let (cw, ch) = crate::frame::chroma_size(src.width(), src.height());
            (cw as usize, ch as usize)
        };
        let (dw, dh) = (sw.div_ceil(2), sh.div_ceil(2));
        let s_stride = src.stride(plane);
        let d_stride = dst.stride(plane);
        let s = src.plane(plane);
        let d = dst.plane_mut(plane);
        for y in 0..dh {
            let r0 = &s[(2 * y) * s_stride..];
            let r1 = &s[(2 * y + 1).min(sh - 1) * s_stride..];
            let out = &mut d[y * d_stride..y * d_stride + dw];
            for (x, px) in out.iter_mut().enumerate() {
                let x0 = 2 * x;
                let x1 = (2 * x + 1).min(sw - 1);
                let sum = r0[x0] as u16 + r0[x1] as u16 + r1[x0] as u16 + r1[x1] as u16;
                *px = ((sum + 2) / 4) as u8;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bgra_gradient(w: u32, h: u32, stride: usize) -> Vec<u8> {
        let mut buf = vec![0u8; stride * h as usize];
        for y in 0..h as usize {
            for x in 0..w as usize {
                let p = &mut buf[y * stride + x * 4..y * stride + x * 4 + 4];
                p.copy_from_slice(&[(x * 7) as u8, (y * 5) as u8, ((x + y) * 3) as u8, 255]);
            }
        }
        buf
    }

    #[test]
    fn round_trip_is_close() {
        let (w, h) = (37, 23);
        let stride = w as usize * 4 + 12;
        let buf = bgra_gradient(w, h, stride);
        let src = BgraImage::new(&buf, w, h, stride).unwrap();
        let mut yuv = Frame::new(PixelFormat::I420, 2, 2).unwrap();
        bgra_to_i420(&src, &mut yuv, None).unwrap();
        let mut back = vec![0u8; w as usize * h as usize * 4];
        i420_to_bgra(&yuv.as_i420_image().unwrap(), &mut back, w as usize * 4).unwrap();
        let mut max_err = 0i32;
        for y in 0..h as usize {
            for x in 0..w as usize {
                // Green carries most luma and survives 4:2:0 best.
                let a = buf[y * stride + x * 4 + 1] as i32;
                let b = back[(y * w as usize + x) * 4 + 1] as i32;
                max_err = max_err.max((a - b).abs());
            }
        }
        assert!(max_err <= 40, "max green error {max_err}");
    }

    #[test]
    fn partial_conversion_matches_full_in_damaged_rows() {
        let (w, h) = (64, 64);
        let stride = w as usize * 4;
        let mut buf = bgra_gradient(w, h, stride);
        let mut full = Frame::new(PixelFormat::I420, w, h).unwrap();
        bgra_to_i420(&BgraImage::new(&buf, w, h, stride).unwrap(), &mut full, None).unwrap();
        let mut partial = full.clone();
        // Change rows 9..13 only.
        for b in &mut buf[9 * stride..13 * stride] {
            *b = b.wrapping_add(77);
        }
        let src = BgraImage::new(&buf, w, h, stride).unwrap();
        bgra_to_i420(&src, &mut partial, Some(&[Rect::new(3, 9, 5, 4)])).unwrap();
        bgra_to_i420(&src, &mut full, None).unwrap();
        assert_eq!(partial.as_bytes(), full.as_bytes());
    }

    #[test]
    fn bands_merge_and_align() {
        let mut out = [(0, 0); 8];
        let n = row_bands(
            &[Rect::new(0, 3, 1, 2), Rect::new(0, 4, 1, 4), Rect::new(0, 20, 1, 1)],
            21,
            &mut out,
        );
        assert_eq!(&out[..n], &[(2, 8), (20, 21)]);
    }

    #[test]
    fn destination_too_small_is_an_error() {
        let yuv = Frame::new(PixelFormat::I420, 8, 8).unwrap();
        let mut dst = vec![0u8; 10];
        let err = i420_to_rgba(&yuv.as_i420_image().unwrap(), &mut dst, 32).unwrap_err();
        assert!(matches!(err, ConvertError::Frame(FrameError::BufferTooShort { .. })));
    }

    #[test]
    fn downscale_halves_odd_sizes() {
        let mut src = Frame::new(PixelFormat::I420, 5, 3).unwrap();
        src.plane_mut(0)
            .copy_from_slice(&[10, 20, 30, 40, 50, 10, 20, 30, 40, 50, 90, 90, 90, 90, 90]);
        let mut dst = Frame::new(PixelFormat::I420, 1, 1).unwrap();
        downscale_i420_half(&src.as_i420_image().unwrap(), &mut dst).unwrap();
        assert_eq!((dst.width(), dst.height()), (3, 2));
        assert_eq!(dst.plane(0), &[15, 35, 50, 90, 90, 90]);
    }
}
