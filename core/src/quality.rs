//! Picture quality measures used by tests, benchmarks and the demo: PSNR of I420 planes.

use crate::frame::{FrameError, I420Image};

/// Sum of squared differences of two 8-bit planes of `width` x `height` samples.
pub fn sse_plane(a: &[u8], a_stride: usize, b: &[u8], b_stride: usize, width: usize, height: usize) -> u64 {
    let mut sse: u64 = 0;
    for y in 0..height {
        let ra = &a[y * a_stride..y * a_stride + width];
        let rb = &b[y * b_stride..y * b_stride + width];
        sse += ra
            .iter()
            .zip(rb)
            .map(|(&p, &q)| (i32::from(p) - i32::from(q)).pow(2) as u64)
            .sum::<u64>();
    }
    sse
}

/// Peak signal-to-noise ratio of two 8-bit planes, in dB; `f64::INFINITY` when they are identical.
pub fn psnr_plane(a: &[u8], a_stride: usize, b: &[u8], b_stride: usize, width: usize, height: usize) -> f64 {
    psnr_from_sse(
        sse_plane(a, a_stride, b, b_stride, width, height),
        (width * height) as u64,
    )
}

/// PSNR in dB from a sum of squared errors over `samples` 8-bit samples.
pub fn psnr_from_sse(sse: u64, samples: u64) -> f64 {
    if sse == 0 || samples == 0 {
        return f64::INFINITY;
    }
    let mse = sse as f64 / samples as f64;
    10.0 * (255.0 * 255.0 / mse).log10()
}

/// PSNR of the luma planes of two I420 pictures of the same size.
///
/// ```
/// use peerdesk::frame::{Frame, PixelFormat};
/// use peerdesk::quality::psnr_y;
/// let a = Frame::new(PixelFormat::I420, 16, 16).unwrap();
/// let img = a.as_i420_image().unwrap();
/// assert!(psnr_y(&img, &img).unwrap().is_infinite());
/// ```
pub fn psnr_y(a: &I420Image<'_>, b: &I420Image<'_>) -> Result<f64, FrameError> {
    if a.width() != b.width() || a.height() != b.height() {
        return Err(FrameError::SizeMismatch(a.width(), a.height(), b.width(), b.height()));
    }
    Ok(psnr_plane(
        a.plane(0),
        a.stride(0),
        b.plane(0),
        b.stride(0),
        a.width() as usize,
        a.height() as usize,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_error_gives_known_psnr() {
        let a = [100u8; 64];
        let b = [110u8; 64];
        // MSE 100 -> 10*log10(65025/100) = 28.13 dB.
        let p = psnr_plane(&a, 8, &b, 8, 8, 8);
        assert!((p - 28.13).abs() < 0.01, "{p}");
    }
}
