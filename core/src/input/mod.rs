//! Input on the host, the end of the control path (viewer input → data channel → permission check → **input
//! sink**).
//!
//! The host hands every permitted [`InputEvent`] to an [`InputSink`]. `x11::XTestSink` (feature `x11`) injects
//! into an X display through XTest; apps on other platforms implement the trait (or receive the events through
//! the bindings) and inject them their own way.

mod pressed;
#[cfg(feature = "x11")]
pub mod x11;

pub use crate::control::protocol::{InputEvent, MouseButton};
pub use pressed::{PressedInputs, MAX_HELD_KEYS};

/// Errors of an input sink.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The display or input service is unavailable.
    #[error("input unavailable: {0}")]
    Unavailable(String),
    /// This event cannot be injected (e.g. a key with no mapping).
    #[error("cannot inject: {0}")]
    Unsupported(String),
}

/// Something that carries out viewer input on the host.
pub trait InputSink: Send {
    /// Injects one event.
    fn inject(&mut self, event: &InputEvent) -> Result<(), InputError>;
}

/// An input sink that collects events, for apps that inject input themselves and for tests.
#[derive(Debug, Clone, Default)]
pub struct RecordingSink {
    events: std::sync::Arc<std::sync::Mutex<Vec<InputEvent>>>,
}

impl RecordingSink {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }
    /// The events injected so far.
    pub fn events(&self) -> Vec<InputEvent> {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl InputSink for RecordingSink {
    fn inject(&mut self, event: &InputEvent) -> Result<(), InputError> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event.clone());
        Ok(())
    }
}
