//! AV1 decoding with dav1d, step six of the data path (receive → **decode** → present).
//!
//! Settings match Chrome's: `max_frame_delay = 1` (a picture out for every temporal unit in, no frame-threading
//! delay) and 2 threads. A [`DecodedFrame`] borrows dav1d's picture without copying; convert it to RGBA or copy
//! it into an owned [`Frame`] when needed.

use crate::convert::{self, ConvertError};
use crate::frame::{Frame, FrameError, I420Image, PixelFormat};
use bytes::Bytes;
use dav1d::{PixelLayout, PlanarImageComponent};
use std::time::Duration;

/// Errors from the decoder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The decoder could not be created.
    #[error("decoder setup failed: {0}")]
    Setup(String),
    /// The bytes are not a valid AV1 temporal unit (corrupt, truncated, or not AV1).
    #[error("invalid AV1 data: {0}")]
    InvalidData(String),
    /// The stream decodes, but to a format peerdesk does not present (only 8-bit 4:2:0).
    #[error("unsupported picture format: {0}")]
    Unsupported(String),
    /// An empty temporal unit.
    #[error("empty AV1 data")]
    Empty,
    /// The largest temporal unit accepted was exceeded.
    #[error("temporal unit of {0} bytes exceeds the {max} byte limit", max = MAX_TEMPORAL_UNIT)]
    TooLarge(usize),
    /// Conversion of the decoded picture failed.
    #[error(transparent)]
    Convert(#[from] ConvertError),
}

impl From<FrameError> for DecodeError {
    fn from(e: FrameError) -> Self {
        DecodeError::Convert(e.into())
    }
}

/// The largest temporal unit the decoder accepts (a lossless 4K keyframe fits).
pub const MAX_TEMPORAL_UNIT: usize = 16 * 1024 * 1024;

/// Decoder settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecoderConfig {
    /// Worker threads (dav1d's `n_threads`); 0 lets dav1d choose.
    pub threads: u32,
    /// Frames dav1d may hold back for frame threading; 1 for the lowest latency.
    pub max_frame_delay: u32,
    /// Largest picture decoded, in pixels (width × height); larger ones are refused before dav1d allocates
    /// them. Default 8192 × 4320 (8K UHD, larger than any screen a host shares); range 1 to 16384 × 16384. A
    /// hostile stream could otherwise announce 65536 × 65536 and make the viewer allocate gigabytes.
    pub max_picture_pixels: u32,
}

/// [`DecoderConfig::max_picture_pixels`]' default.
pub const DEFAULT_MAX_PICTURE_PIXELS: u32 = 8192 * 4320;

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            threads: 2,
            max_frame_delay: 1,
            max_picture_pixels: DEFAULT_MAX_PICTURE_PIXELS,
        }
    }
}

/// A decoded picture, borrowed from dav1d without a copy.
#[derive(Debug, Clone)]
pub struct DecodedFrame {
    picture: dav1d::Picture,
    /// The timestamp the temporal unit was submitted with. A viewer's frames carry the host's capture time of the
    /// picture, on the host's source clock (since the UNIX epoch for the X11 screen and the synthetic desktop, the
    /// app's own timestamp for pushed frames), or the time the frame arrived when the host sent none.
    pub timestamp: Duration,
}

impl DecodedFrame {
    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.picture.width()
    }
    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.picture.height()
    }
    /// Plane `i` (0 = Y, 1 = U, 2 = V) of the I420 picture.
    pub fn plane(&self, i: usize) -> &[u8] {
        let component = component(i);
        let (stride, rows) = self.picture.plane_data_geometry(component);
        let ptr = self.picture.plane_data_ptr(component) as *const u8;
        if ptr.is_null() {
            return &[];
        }
        // SAFETY: dav1d guarantees `stride * rows` readable bytes for the plane while the picture lives, and
        // `self` holds a reference to it.
        unsafe { std::slice::from_raw_parts(ptr, stride as usize * rows as usize) }
    }
    /// Bytes from one row of plane `i` to the next.
    pub fn stride(&self, i: usize) -> usize {
        self.picture.stride(component(i)) as usize
    }
    /// The picture as a borrowed I420 image.
    pub fn as_i420(&self) -> Result<I420Image<'_>, DecodeError> {
        Ok(I420Image::new(
            [self.plane(0), self.plane(1), self.plane(2)],
            [self.stride(0), self.stride(1), self.stride(2)],
            self.width(),
            self.height(),
        )?)
    }
    /// Converts to RGBA into `dst` (`stride` bytes a row).
    pub fn write_rgba(&self, dst: &mut [u8], stride: usize) -> Result<(), DecodeError> {
        Ok(convert::i420_to_rgba(&self.as_i420()?, dst, stride)?)
    }
    /// Copies into an owned I420 frame (reusing its buffer).
    pub fn copy_to(&self, frame: &mut Frame) -> Result<(), DecodeError> {
        frame.copy_from_i420(&self.as_i420()?)?;
        frame.timestamp = self.timestamp;
        Ok(())
    }
    /// Copies into a new owned I420 frame.
    pub fn to_frame(&self) -> Result<Frame, DecodeError> {
        let mut frame = Frame::new(PixelFormat::I420, self.width(), self.height())?;
        self.copy_to(&mut frame)?;
        Ok(frame)
    }
}

fn component(i: usize) -> PlanarImageComponent {
    match i {
        0 => PlanarImageComponent::Y,
        1 => PlanarImageComponent::U,
        _ => PlanarImageComponent::V,
    }
}

/// The AV1 decoder.
pub struct Decoder {
    inner: dav1d::Decoder,
    config: DecoderConfig,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder").field("config", &self.config).finish()
    }
}

// SAFETY: dav1d's decoder context is used from one thread at a time (`&mut self`); the crate marks it !Send only
// because of its raw pointer.
unsafe impl Send for Decoder {}

impl Decoder {
    /// A decoder with these settings.
    pub fn new(config: DecoderConfig) -> Result<Self, DecodeError> {
        let mut settings = dav1d::Settings::new();
        settings.set_n_threads(config.threads);
        settings.set_max_frame_delay(config.max_frame_delay);
        settings.set_frame_size_limit(config.max_picture_pixels.clamp(1, 16384 * 16384));
        let inner = dav1d::Decoder::with_settings(&settings).map_err(|e| DecodeError::Setup(e.to_string()))?;
        Ok(Decoder { inner, config })
    }

    /// Decodes one temporal unit. Returns the picture it completes, or `Ok(None)` when it completes none (a
    /// frame dav1d holds back, or a unit that only carries headers).
    ///
    /// After an error the decoder stays usable: it resumes at the next keyframe.
    pub fn decode(&mut self, data: Bytes, timestamp: Duration) -> Result<Option<DecodedFrame>, DecodeError> {
        if data.is_empty() {
            return Err(DecodeError::Empty);
        }
        if data.len() > MAX_TEMPORAL_UNIT {
            return Err(DecodeError::TooLarge(data.len()));
        }
        let ts = i64::try_from(timestamp.as_micros()).unwrap_or(i64::MAX);
        let mut result = self.inner.send_data(data, None, Some(ts), None);
        let mut picture = None;
        loop {
            match result {
                Ok(()) => break,
                Err(dav1d::Error::Again) => {
                    // dav1d wants pictures taken out before it takes the rest of the data.
                    match self.inner.get_picture() {
                        Ok(p) => picture = Some(p),
                        Err(dav1d::Error::Again) => {}
                        Err(e) => return Err(self.fail(e)),
                    }
                    result = self.inner.send_pending_data();
                }
                Err(e) => return Err(self.fail(e)),
            }
        }
        if picture.is_none() {
            match self.inner.get_picture() {
                Ok(p) => picture = Some(p),
                Err(dav1d::Error::Again) => {}
                Err(e) => return Err(self.fail(e)),
            }
        }
        let Some(picture) = picture else {
            return Ok(None);
        };
        if picture.bit_depth() != 8 || picture.pixel_layout() != PixelLayout::I420 {
            return Err(DecodeError::Unsupported(format!(
                "{}-bit {:?}",
                picture.bit_depth(),
                picture.pixel_layout()
            )));
        }
        let timestamp = picture
            .timestamp()
            .map_or(timestamp, |t| Duration::from_micros(t.max(0) as u64));
        Ok(Some(DecodedFrame { picture, timestamp }))
    }

    fn fail(&mut self, error: dav1d::Error) -> DecodeError {
        // Drop whatever partial state the bad data left, so the next keyframe decodes cleanly.
        self.inner.flush();
        DecodeError::InvalidData(error.to_string())
    }

    /// Forgets buffered state (after a seek or a lost stream); the next picture must be a keyframe.
    pub fn reset(&mut self) {
        self.inner.flush();
    }
}
