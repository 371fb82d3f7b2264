//! Decoded frames handed to the app without copying: width, height, stride and a pointer + length per plane,
//! valid until `release()` (or until the object is released).

use peerdesk::capture::stamp;
use peerdesk::decode::DecodedFrame;
use std::sync::Mutex;

use crate::types::FrameStamp;

/// A decoded I420 frame.
#[derive(uniffi::Object)]
pub struct VideoFrame {
    inner: Mutex<Option<DecodedFrame>>,
    width: u32,
    height: u32,
    timestamp_us: u64,
}

impl VideoFrame {
    pub(crate) fn new(frame: DecodedFrame) -> Self {
        let (width, height) = (frame.width(), frame.height());
        let timestamp_us = u64::try_from(frame.timestamp.as_micros()).unwrap_or(u64::MAX);
        VideoFrame {
            inner: Mutex::new(Some(frame)),
            width,
            height,
            timestamp_us,
        }
    }

    fn with<T>(&self, default: T, f: impl FnOnce(&DecodedFrame) -> T) -> T {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or(default, f)
    }
}

#[uniffi::export]
impl VideoFrame {
    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }
    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }
    /// When the host captured this picture, in microseconds on the host's source clock: since the UNIX epoch for
    /// the X11 screen and the synthetic desktop, the app's own `timestamp_us` for pushed frames. (A host that does
    /// not send capture times, such as an older one, gives the time the frame arrived here instead.) Kept after
    /// `release()`.
    pub fn capture_timestamp_us(&self) -> u64 {
        self.timestamp_us
    }
    /// The pixel format: always `"I420"` (8-bit 4:2:0, planes Y, U, V).
    pub fn format(&self) -> String {
        "I420".into()
    }
    /// Bytes from one row of `plane` (0 = Y, 1 = U, 2 = V) to the next; 0 after `release()` or for a bad plane.
    pub fn stride(&self, plane: u32) -> u32 {
        if plane > 2 {
            return 0;
        }
        self.with(0, |f| f.stride(plane as usize) as u32)
    }
    /// Address of `plane`'s first byte, valid until `release()`; 0 after `release()` or for a bad plane.
    pub fn data_pointer(&self, plane: u32) -> u64 {
        if plane > 2 {
            return 0;
        }
        self.with(0, |f| f.plane(plane as usize).as_ptr() as u64)
    }
    /// Length in bytes of `plane` at `data_pointer`.
    pub fn data_length(&self, plane: u32) -> u64 {
        if plane > 2 {
            return 0;
        }
        self.with(0, |f| f.plane(plane as usize).len() as u64)
    }
    /// A copy as tightly packed RGBA (`width * 4` bytes a row). Costs a conversion and a copy.
    pub fn to_rgba(&self) -> Vec<u8> {
        self.with(Vec::new(), |f| {
            let mut out = vec![0u8; self.width as usize * self.height as usize * 4];
            match f.write_rgba(&mut out, self.width as usize * 4) {
                Ok(()) => out,
                Err(_) => Vec::new(),
            }
        })
    }
    /// The synthetic desktop's frame stamp, if this frame carries one.
    pub fn stamp(&self) -> Option<FrameStamp> {
        self.with(None, |f| {
            stamp::read_luma(f.plane(0), f.stride(0), self.width, self.height).map(|s| FrameStamp {
                frame_number: s.frame_number,
                capture_millis: s.capture_millis,
            })
        })
    }
    /// Releases the picture now; pointers from `data_pointer` are invalid afterwards.
    pub fn release(&self) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}
