//! Frames: the pictures that travel the data path.
//!
//! Capture produces BGRA [`Frame`]s (as screens give them), the conversion step turns them into I420 (as codecs want
//! them), and the decoder hands I420 back. A frame owns one buffer and is meant to be reused from tick to tick, so
//! the hot path does not allocate. Borrowed pictures from a host app enter as [`BgraImage`] or [`I420Image`], which
//! validate sizes and strides before anything reads them.

use std::time::Duration;

/// Errors for pictures whose sizes, strides or buffers do not fit together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Width or height is zero, or larger than [`MAX_DIMENSION`].
    #[error("invalid frame size {width}x{height} (each side must be 1..={max})", max = MAX_DIMENSION)]
    InvalidSize {
        /// The width given.
        width: u32,
        /// The height given.
        height: u32,
    },
    /// The stride of a plane is smaller than its row.
    #[error("stride {stride} of plane {plane} is smaller than its row of {min} bytes")]
    StrideTooSmall {
        /// Plane index (0 for BGRA or Y, 1 for U, 2 for V).
        plane: usize,
        /// The stride given.
        stride: usize,
        /// The least stride that holds one row.
        min: usize,
    },
    /// The buffer is too short for the size and stride given.
    #[error("buffer of plane {plane} holds {len} bytes, {needed} needed")]
    BufferTooShort {
        /// Plane index (0 for BGRA or Y, 1 for U, 2 for V).
        plane: usize,
        /// The buffer length given.
        len: usize,
        /// The bytes the size and stride need.
        needed: usize,
    },
    /// The operation needs a frame of another pixel format.
    #[error("expected a {expected:?} frame, got {actual:?}")]
    WrongFormat {
        /// The format the operation needs.
        expected: PixelFormat,
        /// The format it was given.
        actual: PixelFormat,
    },
    /// Two frames that must have the same size do not.
    #[error("size mismatch: {0}x{1} vs {2}x{3}")]
    SizeMismatch(u32, u32, u32, u32),
}

/// The largest width or height peerdesk accepts (AV1 level 6 and common 8K screens fit).
pub const MAX_DIMENSION: u32 = 16_384;

/// How the pixels of a frame are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PixelFormat {
    /// 8-bit blue, green, red, unused/alpha: one plane, 4 bytes a pixel (X11, Windows, macOS screens).
    Bgra,
    /// 8-bit RGBA: one plane, 4 bytes a pixel (browsers, image libraries).
    Rgba,
    /// 8-bit planar YUV 4:2:0, BT.601 limited range: Y plane, then U and V at half width and height.
    I420,
}

impl PixelFormat {
    /// Number of planes of this format.
    pub fn plane_count(self) -> usize {
        match self {
            PixelFormat::Bgra | PixelFormat::Rgba => 1,
            PixelFormat::I420 => 3,
        }
    }
}

/// A rectangle in pixels, used for damage (what changed) and monitor geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Rect {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl Rect {
    /// A rectangle from its position and size.
    pub const fn new(x: u32, y: u32, width: u32, height: u32) -> Self {
        Rect { x, y, width, height }
    }

    /// Whether it covers no pixel.
    pub fn is_empty(&self) -> bool {
        self.width == 0 || self.height == 0
    }

    /// One past the right edge.
    pub fn right(&self) -> u32 {
        self.x.saturating_add(self.width)
    }

    /// One past the bottom edge.
    pub fn bottom(&self) -> u32 {
        self.y.saturating_add(self.height)
    }

    /// Number of pixels covered.
    pub fn area(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }

    /// The part of this rectangle inside `width` x `height`.
    pub fn clipped(&self, width: u32, height: u32) -> Rect {
        let x = self.x.min(width);
        let y = self.y.min(height);
        Rect::new(x, y, self.right().min(width) - x, self.bottom().min(height) - y)
    }

    /// The smallest rectangle holding both.
    pub fn union(&self, other: &Rect) -> Rect {
        if self.is_empty() {
            return *other;
        }
        if other.is_empty() {
            return *self;
        }
        let x = self.x.min(other.x);
        let y = self.y.min(other.y);
        Rect::new(
            x,
            y,
            self.right().max(other.right()) - x,
            self.bottom().max(other.bottom()) - y,
        )
    }

    /// Whether the point lies inside.
    pub fn contains(&self, x: u32, y: u32) -> bool {
        x >= self.x && x < self.right() && y >= self.y && y < self.bottom()
    }

    /// Whether `other` lies wholly inside this rectangle.
    pub fn contains_rect(&self, other: &Rect) -> bool {
        other.is_empty()
            || (other.x >= self.x
                && other.y >= self.y
                && other.right() <= self.right()
                && other.bottom() <= self.bottom())
    }
}

/// Checks that a picture size is usable.
pub fn validate_size(width: u32, height: u32) -> Result<(), FrameError> {
    if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(FrameError::InvalidSize { width, height });
    }
    Ok(())
}

fn validate_plane(plane: usize, len: usize, stride: usize, row_bytes: usize, rows: usize) -> Result<(), FrameError> {
    if stride < row_bytes {
        return Err(FrameError::StrideTooSmall {
            plane,
            stride,
            min: row_bytes,
        });
    }
    // The last row needs only its own bytes, not a whole stride. Checked: a huge stride from a host app must not
    // wrap around (on 32-bit targets) and pass.
    let needed = stride
        .checked_mul(rows.saturating_sub(1))
        .and_then(|n| n.checked_add(row_bytes))
        .unwrap_or(usize::MAX);
    if len < needed {
        return Err(FrameError::BufferTooShort { plane, len, needed });
    }
    Ok(())
}

/// A borrowed, validated 4-byte-per-pixel picture (BGRA or RGBA), as a host app or a screen grab hands it over.
#[derive(Debug, Clone, Copy)]
pub struct BgraImage<'a> {
    data: &'a [u8],
    width: u32,
    height: u32,
    stride: usize,
}

impl<'a> BgraImage<'a> {
    /// Wraps `data`, checking that `width` x `height` pixels with `stride` bytes a row fit in it.
    pub fn new(data: &'a [u8], width: u32, height: u32, stride: usize) -> Result<Self, FrameError> {
        validate_size(width, height)?;
        validate_plane(0, data.len(), stride, width as usize * 4, height as usize)?;
        Ok(BgraImage {
            data,
            width,
            height,
            stride,
        })
    }

    /// The pixel bytes.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }
    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }
    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }
    /// Bytes from one row to the next.
    pub fn stride(&self) -> usize {
        self.stride
    }
    /// The bytes of row `y` (exactly `width * 4`).
    pub fn row(&self, y: u32) -> &'a [u8] {
        let start = y as usize * self.stride;
        &self.data[start..start + self.width as usize * 4]
    }
}

/// A borrowed, validated I420 picture: three planes with their strides.
#[derive(Debug, Clone, Copy)]
pub struct I420Image<'a> {
    planes: [&'a [u8]; 3],
    strides: [usize; 3],
    width: u32,
    height: u32,
}

impl<'a> I420Image<'a> {
    /// Wraps three planes, checking every size and stride.
    pub fn new(planes: [&'a [u8]; 3], strides: [usize; 3], width: u32, height: u32) -> Result<Self, FrameError> {
        validate_size(width, height)?;
        let (cw, ch) = chroma_size(width, height);
        validate_plane(0, planes[0].len(), strides[0], width as usize, height as usize)?;
        validate_plane(1, planes[1].len(), strides[1], cw as usize, ch as usize)?;
        validate_plane(2, planes[2].len(), strides[2], cw as usize, ch as usize)?;
        Ok(I420Image {
            planes,
            strides,
            width,
            height,
        })
    }

    /// Plane `i` (0 = Y, 1 = U, 2 = V).
    pub fn plane(&self, i: usize) -> &'a [u8] {
        self.planes[i]
    }
    /// Stride of plane `i` in bytes.
    pub fn stride(&self, i: usize) -> usize {
        self.strides[i]
    }
    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }
    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }
}

/// Size of the U and V planes of a `width` x `height` I420 picture.
pub fn chroma_size(width: u32, height: u32) -> (u32, u32) {
    (width.div_ceil(2), height.div_ceil(2))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct PlaneLayout {
    offset: usize,
    stride: usize,
    rows: usize,
}

/// An owned picture with its capture time and the damage since the previous picture of the same source.
///
/// ```
/// use peerdesk::frame::{Frame, PixelFormat};
/// let frame = Frame::new(PixelFormat::I420, 64, 48).unwrap();
/// assert_eq!(frame.stride(0), 64);
/// assert_eq!(frame.plane(1).len(), 32 * 24);
/// ```
#[derive(Debug, Clone)]
pub struct Frame {
    format: PixelFormat,
    width: u32,
    height: u32,
    data: Vec<u8>,
    planes: [PlaneLayout; 3],
    /// When the picture was captured, on the source's clock (for stamps: since the UNIX epoch).
    pub timestamp: Duration,
    /// Rectangles that changed since the previous frame of the same source; empty means nothing changed.
    pub damage: Vec<Rect>,
}

impl Frame {
    /// A black (or zeroed) frame of the given format and size, with the whole picture marked damaged.
    pub fn new(format: PixelFormat, width: u32, height: u32) -> Result<Self, FrameError> {
        let mut frame = Frame {
            format,
            width: 0,
            height: 0,
            data: Vec::new(),
            planes: [PlaneLayout::default(); 3],
            timestamp: Duration::ZERO,
            damage: Vec::new(),
        };
        frame.reshape(format, width, height)?;
        Ok(frame)
    }

    /// Changes format and size, reusing the buffer when it is large enough; marks everything damaged.
    pub fn reshape(&mut self, format: PixelFormat, width: u32, height: u32) -> Result<(), FrameError> {
        validate_size(width, height)?;
        if format == self.format && width == self.width && height == self.height && !self.data.is_empty() {
            return Ok(());
        }
        let (w, h) = (width as usize, height as usize);
        let planes = match format {
            PixelFormat::Bgra | PixelFormat::Rgba => [
                PlaneLayout {
                    offset: 0,
                    stride: w * 4,
                    rows: h,
                },
                PlaneLayout::default(),
                PlaneLayout::default(),
            ],
            PixelFormat::I420 => {
                let (cw, ch) = chroma_size(width, height);
                let (cw, ch) = (cw as usize, ch as usize);
                [
                    PlaneLayout {
                        offset: 0,
                        stride: w,
                        rows: h,
                    },
                    PlaneLayout {
                        offset: w * h,
                        stride: cw,
                        rows: ch,
                    },
                    PlaneLayout {
                        offset: w * h + cw * ch,
                        stride: cw,
                        rows: ch,
                    },
                ]
            }
        };
        let total = planes.iter().map(|p| p.stride * p.rows).sum::<usize>();
        self.data.clear();
        self.data.resize(total, 0);
        if format == PixelFormat::I420 {
            // Black in limited-range YUV: Y = 16, U = V = 128.
            let y_len = w * h;
            self.data[..y_len].fill(16);
            self.data[y_len..].fill(128);
        }
        self.format = format;
        self.width = width;
        self.height = height;
        self.planes = planes;
        self.damage.clear();
        self.damage.push(Rect::new(0, 0, width, height));
        Ok(())
    }

    /// Pixel format.
    pub fn format(&self) -> PixelFormat {
        self.format
    }
    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }
    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }
    /// The whole picture as a rectangle.
    pub fn bounds(&self) -> Rect {
        Rect::new(0, 0, self.width, self.height)
    }
    /// Bytes from one row of plane `i` to the next.
    pub fn stride(&self, i: usize) -> usize {
        self.planes[i].stride
    }
    /// Plane `i` (BGRA/RGBA: 0 only; I420: 0 = Y, 1 = U, 2 = V).
    pub fn plane(&self, i: usize) -> &[u8] {
        let p = self.planes[i];
        &self.data[p.offset..p.offset + p.stride * p.rows]
    }
    /// Plane `i`, writable.
    pub fn plane_mut(&mut self, i: usize) -> &mut [u8] {
        let p = self.planes[i];
        &mut self.data[p.offset..p.offset + p.stride * p.rows]
    }
    /// The three I420 planes at once, writable.
    pub fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let [y, u, v] = self.planes;
        let (y_plane, rest) = self.data.split_at_mut(u.offset);
        let (u_plane, v_plane) = rest.split_at_mut(v.offset - u.offset);
        (
            &mut y_plane[..y.stride * y.rows],
            &mut u_plane[..u.stride * u.rows],
            &mut v_plane[..v.stride * v.rows],
        )
    }
    /// The whole buffer.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }
    /// Whether anything changed since the previous frame.
    pub fn has_damage(&self) -> bool {
        self.damage.iter().any(|r| !r.is_empty())
    }
    /// Marks the whole picture as changed.
    pub fn damage_all(&mut self) {
        self.damage.clear();
        self.damage.push(self.bounds());
    }

    /// This BGRA/RGBA frame as a borrowed image.
    pub fn as_bgra_image(&self) -> Result<BgraImage<'_>, FrameError> {
        match self.format {
            PixelFormat::Bgra | PixelFormat::Rgba => Ok(BgraImage {
                data: self.plane(0),
                width: self.width,
                height: self.height,
                stride: self.stride(0),
            }),
            other => Err(FrameError::WrongFormat {
                expected: PixelFormat::Bgra,
                actual: other,
            }),
        }
    }

    /// This I420 frame as a borrowed image.
    pub fn as_i420_image(&self) -> Result<I420Image<'_>, FrameError> {
        if self.format != PixelFormat::I420 {
            return Err(FrameError::WrongFormat {
                expected: PixelFormat::I420,
                actual: self.format,
            });
        }
        Ok(I420Image {
            planes: [self.plane(0), self.plane(1), self.plane(2)],
            strides: [self.stride(0), self.stride(1), self.stride(2)],
            width: self.width,
            height: self.height,
        })
    }

    /// Copies a borrowed I420 picture into this frame (reshaping it), marking everything damaged.
    pub fn copy_from_i420(&mut self, image: &I420Image<'_>) -> Result<(), FrameError> {
        self.reshape(PixelFormat::I420, image.width(), image.height())?;
        for i in 0..3 {
            let rows = self.planes[i].rows;
            let row_bytes = if i == 0 {
                image.width() as usize
            } else {
                chroma_size(image.width(), image.height()).0 as usize
            };
            let dst_stride = self.stride(i);
            let src_stride = image.stride(i);
            let src = image.plane(i);
            let dst = self.plane_mut(i);
            for r in 0..rows {
                dst[r * dst_stride..r * dst_stride + row_bytes]
                    .copy_from_slice(&src[r * src_stride..r * src_stride + row_bytes]);
            }
        }
        self.damage_all();
        Ok(())
    }

    /// Copies a borrowed BGRA picture into this frame (reshaping it to BGRA), marking everything damaged.
    pub fn copy_from_bgra(&mut self, image: &BgraImage<'_>) -> Result<(), FrameError> {
        self.reshape(PixelFormat::Bgra, image.width(), image.height())?;
        let stride = self.stride(0);
        let row_bytes = image.width() as usize * 4;
        let dst = self.plane_mut(0);
        for y in 0..image.height() {
            let start = y as usize * stride;
            dst[start..start + row_bytes].copy_from_slice(image.row(y));
        }
        self.damage_all();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_zero_and_huge_sizes() {
        assert_eq!(
            Frame::new(PixelFormat::I420, 0, 10).unwrap_err(),
            FrameError::InvalidSize { width: 0, height: 10 }
        );
        assert!(matches!(
            Frame::new(PixelFormat::Bgra, 10, MAX_DIMENSION + 1),
            Err(FrameError::InvalidSize { .. })
        ));
    }

    #[test]
    fn odd_sizes_round_chroma_up() {
        let f = Frame::new(PixelFormat::I420, 33, 17).unwrap();
        assert_eq!((f.stride(1), f.plane(1).len()), (17, 17 * 9));
        assert_eq!(f.as_bytes().len(), 33 * 17 + 2 * 17 * 9);
    }

    #[test]
    fn bgra_image_checks_stride_and_length() {
        let buf = vec![0u8; 100];
        assert!(matches!(
            BgraImage::new(&buf, 10, 2, 39),
            Err(FrameError::StrideTooSmall {
                stride: 39,
                min: 40,
                ..
            })
        ));
        assert!(matches!(
            BgraImage::new(&buf, 10, 3, 40),
            Err(FrameError::BufferTooShort { needed: 120, .. })
        ));
        // Last row needs no padding.
        assert!(BgraImage::new(&buf, 10, 2, 60).is_ok());
    }

    #[test]
    fn i420_image_checks_each_plane() {
        let y = vec![0u8; 16];
        let c = vec![0u8; 3];
        let err = I420Image::new([&y, &c, &c], [4, 2, 2], 4, 4).unwrap_err();
        assert_eq!(
            err,
            FrameError::BufferTooShort {
                plane: 1,
                len: 3,
                needed: 4
            }
        );
    }

    #[test]
    fn rect_union_and_clip() {
        let a = Rect::new(10, 10, 10, 10);
        let b = Rect::new(0, 15, 5, 30);
        assert_eq!(a.union(&b), Rect::new(0, 10, 20, 35));
        assert_eq!(b.clipped(4, 20), Rect::new(0, 15, 4, 5));
        assert!(Rect::new(50, 50, 10, 10).clipped(20, 20).is_empty());
    }

    #[test]
    fn copy_from_strided_i420() {
        // 2x2 picture in planes with padding.
        let y = [1, 2, 0, 3, 4];
        let u = [5];
        let v = [6];
        let img = I420Image::new([&y, &u, &v], [3, 1, 1], 2, 2).unwrap();
        let mut f = Frame::new(PixelFormat::Bgra, 1, 1).unwrap();
        f.copy_from_i420(&img).unwrap();
        assert_eq!(f.plane(0), &[1, 2, 3, 4]);
        assert_eq!((f.plane(1), f.plane(2)), (&[5u8][..], &[6u8][..]));
    }
}
