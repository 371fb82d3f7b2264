//! Screen capture, step one of the data path (**capture** → convert → encode → send).
//!
//! Every source implements [`ScreenSource`]: it hands out the current picture as a borrowed [`BgraImage`] with
//! the rectangles that changed since the previous capture, or `None` when nothing changed (so nothing is
//! converted or encoded). The cursor travels apart from the picture, through [`ScreenSource::cursor`].
//!
//! - [`synthetic::SyntheticSource`]: a deterministic moving desktop for demos, tests and benchmarks.
//! - [`pushed::PushedSource`]: pictures handed in by the host app (iOS ReplayKit, Android MediaProjection, ...).
//! - `x11::X11Source` (feature `x11`): an X11 screen through MIT-SHM, DAMAGE, XFixes and RandR.
//!
//! [`open_screen`] picks one of them (and the matching input sink) from a [`ScreenChoice`].

pub mod pushed;
mod select;
internal_mod!(stamp);
pub mod synthetic;
#[cfg(feature = "x11")]
pub mod x11;

pub use select::{open_screen, OpenedScreen, ScreenChoice};

use crate::frame::{BgraImage, FrameError, Rect};
use std::time::{Duration, Instant};

/// Errors from screen sources.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The display could not be opened or does not offer what capture needs.
    #[error("display unavailable: {0}")]
    Unavailable(String),
    /// The display connection failed during capture.
    #[error("display connection lost: {0}")]
    ConnectionLost(String),
    /// A required X extension or platform feature is missing.
    #[error("missing display extension: {0}")]
    MissingExtension(&'static str),
    /// No monitor with this index exists.
    #[error("no monitor {index} (the display has {count})")]
    NoSuchMonitor {
        /// The index asked for.
        index: usize,
        /// How many monitors there are.
        count: usize,
    },
    /// A picture handed in does not fit its declared size or stride.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The source has been closed.
    #[error("source closed")]
    Closed,
}

impl CaptureError {
    /// Whether no later capture from this source can succeed: it was closed, or its display went away.
    pub fn is_final(&self) -> bool {
        matches!(self, CaptureError::Closed | CaptureError::ConnectionLost(_))
    }
}

/// One captured picture, borrowed from the source until the next capture.
#[derive(Debug, Clone, Copy)]
pub struct Captured<'a> {
    /// The whole picture.
    pub image: BgraImage<'a>,
    /// What changed since the previous capture (the whole picture on the first).
    pub damage: &'a [Rect],
    /// When it was captured, on the source's clock (for built-in sources: since the UNIX epoch).
    pub timestamp: Duration,
}

/// A monitor of a multi-monitor display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Monitor {
    /// The monitor's name as the platform gives it (e.g. `"HDMI-1"`).
    pub name: String,
    /// Its area on the virtual screen.
    pub area: Rect,
    /// Whether it is the primary monitor.
    pub primary: bool,
}

/// The cursor image, in straight (not premultiplied) BGRA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Hotspot column.
    pub hotspot_x: u32,
    /// Hotspot row.
    pub hotspot_y: u32,
    /// `width * height * 4` bytes of BGRA.
    pub pixels: Vec<u8>,
    /// Changes whenever the image changes.
    pub serial: u64,
}

/// Where the cursor is, relative to the captured area, and its image when that changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorState {
    /// Column of the hotspot within the captured area (may lie outside it).
    pub x: i32,
    /// Row of the hotspot within the captured area (may lie outside it).
    pub y: i32,
    /// The new image, present only when it changed since the previous call.
    pub image: Option<CursorImage>,
}

/// A source of screen pictures.
pub trait ScreenSource: Send {
    /// Width and height of the pictures this source produces.
    fn size(&self) -> (u32, u32);

    /// Captures the current picture. Returns `Ok(None)` when nothing changed since the previous capture.
    fn capture(&mut self) -> Result<Option<Captured<'_>>, CaptureError>;

    /// Marks the whole picture changed, so the next capture returns it in full (e.g. for a keyframe).
    fn invalidate(&mut self);

    /// The cursor's position and, when it changed, its image. `Ok(None)` when the source has no cursor.
    fn cursor(&mut self) -> Result<Option<CursorState>, CaptureError> {
        Ok(None)
    }

    /// The monitors this source can capture; empty when it has no choice.
    fn monitors(&self) -> Vec<Monitor> {
        Vec::new()
    }

    /// Waits until the picture has changed since the last capture, or until `deadline`, whichever comes first,
    /// and returns whether it changed. Lets a still screen be captured the moment it moves instead of at the next
    /// tick. Sources that cannot tell (the default) wait until `deadline` and return `false`.
    fn wait_for_change(&mut self, deadline: Instant) -> Result<bool, CaptureError> {
        sleep_until(deadline);
        Ok(false)
    }
}

/// Sleeps until `deadline` (at once if it has passed).
pub(crate) fn sleep_until(deadline: Instant) {
    if let Some(wait) = deadline.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
}

/// Time since the UNIX epoch, the clock built-in sources stamp pictures with.
pub fn wall_clock() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}
