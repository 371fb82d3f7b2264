//! Which screen a host shares and where permitted input goes, decided once for every front end (the CLI, the
//! bindings): an X11 display with XTest input, or the synthetic desktop.

use super::synthetic::{SyntheticConfig, SyntheticSource};
use super::{CaptureError, ScreenSource};
use crate::input::InputSink;

/// The screen to share.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScreenChoice {
    /// An X11 display (`None`: `$DISPLAY`), with XTest input where the server offers it. Fails when the display
    /// cannot be opened (needs the `x11` feature).
    X11 {
        /// The display name, e.g. `":0"`; `None` for `$DISPLAY`.
        display: Option<String>,
    },
    /// The deterministic synthetic desktop (demos, tests, benchmarks); no input sink.
    Synthetic {
        /// Width in pixels (16–8192).
        width: u32,
        /// Height in pixels (16–8192).
        height: u32,
        /// Frames per second it animates at (1–60).
        fps: u32,
    },
    /// `$DISPLAY` when it is set and opens, the synthetic desktop otherwise (logged): what a demo wants.
    X11OrSynthetic {
        /// Width of the synthetic desktop.
        width: u32,
        /// Height of the synthetic desktop.
        height: u32,
        /// Frames per second of the synthetic desktop.
        fps: u32,
    },
}

/// An opened screen: the source, its input sink (`None` when input cannot be injected), and a description for
/// people (`"X11 display :0"`, `"synthetic desktop"`).
pub struct OpenedScreen {
    /// Where pictures come from.
    pub source: Box<dyn ScreenSource>,
    /// Where permitted viewer input goes, if anywhere.
    pub input: Option<Box<dyn InputSink>>,
    /// What is shared, in words.
    pub description: String,
}

impl std::fmt::Debug for OpenedScreen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedScreen")
            .field("description", &self.description)
            .field("input", &self.input.is_some())
            .finish_non_exhaustive()
    }
}

/// Opens the screen `choice` names.
///
/// # Errors
///
/// [`CaptureError::Unavailable`] when an X11 display cannot be opened (or the crate was built without `x11`), or
/// the synthetic desktop's size is out of range.
///
/// ```
/// use peerdesk::capture::{open_screen, ScreenChoice};
///
/// let screen = open_screen(ScreenChoice::Synthetic { width: 320, height: 240, fps: 30 })?;
/// assert_eq!(screen.source.size(), (320, 240));
/// assert!(screen.input.is_none());
/// # Ok::<(), peerdesk::capture::CaptureError>(())
/// ```
pub fn open_screen(choice: ScreenChoice) -> Result<OpenedScreen, CaptureError> {
    match choice {
        ScreenChoice::X11 { display } => open_x11(display.as_deref()),
        ScreenChoice::Synthetic { width, height, fps } => synthetic(width, height, fps),
        ScreenChoice::X11OrSynthetic { width, height, fps } => {
            if std::env::var_os("DISPLAY").is_some() {
                match open_x11(None) {
                    Ok(screen) => return Ok(screen),
                    Err(e) => tracing::warn!("X11 capture unavailable ({e}); using the synthetic desktop"),
                }
            }
            synthetic(width, height, fps)
        }
    }
}

fn synthetic(width: u32, height: u32, fps: u32) -> Result<OpenedScreen, CaptureError> {
    let config = SyntheticConfig {
        width,
        height,
        fps,
        ..Default::default()
    };
    Ok(OpenedScreen {
        source: Box::new(SyntheticSource::new(config)?),
        input: None,
        description: "synthetic desktop".into(),
    })
}

#[cfg(feature = "x11")]
fn open_x11(display: Option<&str>) -> Result<OpenedScreen, CaptureError> {
    let source = super::x11::X11Source::open(display, None)?;
    let input = crate::input::x11::XTestSink::open(display, Some(source.area()))
        .map(|sink| Box::new(sink) as Box<dyn InputSink>)
        .map_err(|e| tracing::warn!("no input injection: {e}"))
        .ok();
    let name = display
        .map(str::to_string)
        .or_else(|| std::env::var("DISPLAY").ok())
        .unwrap_or_default();
    Ok(OpenedScreen {
        source: Box::new(source),
        input,
        description: format!("X11 display {}", crate::text::escape_for_terminal(&name, false)),
    })
}

#[cfg(not(feature = "x11"))]
fn open_x11(_display: Option<&str>) -> Result<OpenedScreen, CaptureError> {
    Err(CaptureError::Unavailable("built without the x11 feature".into()))
}
