//! AV1 encoding, step three of the data path (capture → convert → **encode** → send).
//!
//! Every backend implements [`Encoder`], shaped like rav1e's API: [`Encoder::send_frame`] takes an I420
//! [`Frame`], [`Encoder::receive_packet`] returns AV1 temporal units ready for the RTP payloader (temporal
//! delimiter first, sequence header on keyframes), one per frame. Two backends exist:
//!
//! | backend | when | delay |
//! | --- | --- | --- |
//! | [`Backend::Aom`] (libaom realtime, screen tune) | interactive use, the default | 0 frames |
//! | [`Backend::Rav1e`] (pure Rust) | portability, low frame rates | 3 frames, drained on still screens |
//!
//! [`EncodeController`] holds the decisions around the encoder (skip, keyframe, quality refresh, adaptation) as
//! plain logic with time passed in; [`KeyframeRequests`] limits how often one viewer's requests reach it.

#[cfg(feature = "aom")]
mod aom;
mod controller;
mod keyframe_requests;
mod rate_budget;
#[cfg(feature = "rav1e")]
mod rav1e;

pub use controller::{
    Adaptation, ControllerConfig, Decision, EncodeController, DOWNSCALE_BELOW_BPS_PER_PIXEL, MAX_SEND_BACKLOG,
    UPSCALE_ABOVE_BPS_PER_PIXEL, UPSCALE_FAILED_WITHIN, UPSCALE_HOLD, UPSCALE_HOLD_MAX,
};
pub use keyframe_requests::{KeyframeRequests, MIN_KEYFRAME_REQUEST_INTERVAL};
pub use rate_budget::RateBudget;

use crate::frame::{Frame, FrameError};
use bytes::Bytes;
use std::time::Duration;

/// Errors from encoders.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A configuration field is out of range.
    #[error("invalid encoder setting `{field}`: {reason}")]
    InvalidConfig {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The frame is not I420 or not the configured size.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// This build does not include the backend (cargo feature off).
    #[error("encoder backend {0} is not compiled into this build")]
    Unavailable(Backend),
    /// The codec library reported an error.
    #[error("{backend} encoder failed: {message}")]
    Codec {
        /// Which backend.
        backend: Backend,
        /// The library's message.
        message: String,
    },
}

/// The AV1 encoder implementations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// libaom in realtime mode with the screen-content tools (palette, intra block copy).
    Aom,
    /// rav1e, the pure-Rust encoder, at its fastest speed.
    Rav1e,
}

impl Backend {
    /// Every backend compiled into this build, the default first.
    pub fn available() -> Vec<Backend> {
        let mut list = Vec::new();
        if cfg!(feature = "aom") {
            list.push(Backend::Aom);
        }
        if cfg!(feature = "rav1e") {
            list.push(Backend::Rav1e);
        }
        list
    }

    /// The backend for interactive sessions: libaom when compiled in (it meets the realtime targets), else rav1e.
    pub fn default_interactive() -> Backend {
        if cfg!(feature = "aom") {
            Backend::Aom
        } else {
            Backend::Rav1e
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Aom => "aom",
            Backend::Rav1e => "rav1e",
        })
    }
}

impl std::str::FromStr for Backend {
    type Err = EncodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "aom" | "libaom" => Ok(Backend::Aom),
            "rav1e" => Ok(Backend::Rav1e),
            other => Err(EncodeError::InvalidConfig {
                field: "backend",
                reason: format!("unknown backend `{other}`"),
            }),
        }
    }
}

/// Encoder settings. Build with [`EncoderConfig::new`] and the chained setters; [`EncoderConfig::validate`] names
/// the first bad field.
///
/// ```
/// use peerdesk::encode::EncoderConfig;
/// let config = EncoderConfig::new(1920, 1080).fps(30).bitrate(2_000_000).threads(2);
/// assert!(config.validate().is_ok());
/// assert!(EncoderConfig::new(0, 1080).validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderConfig {
    /// Picture width in pixels.
    pub width: u32,
    /// Picture height in pixels.
    pub height: u32,
    /// Nominal frames per second (rate control budget per frame).
    pub fps: u32,
    /// Target bitrate in bits per second.
    pub bitrate_bps: u32,
    /// Worker threads (and tiles) the encoder may use.
    pub threads: usize,
    /// Speed preset, backend-specific (libaom cpu-used 0–10, rav1e 0–10); `None` for the realtime default (10).
    pub speed: Option<u8>,
    /// Use the screen-content tools (palette, intra block copy) where the backend has them.
    pub screen_content: bool,
}

impl EncoderConfig {
    /// Defaults for a screen of this size: 30 fps, 2 Mbit/s, 2 threads, screen content.
    pub fn new(width: u32, height: u32) -> Self {
        EncoderConfig {
            width,
            height,
            fps: 30,
            bitrate_bps: 2_000_000,
            threads: 2,
            speed: None,
            screen_content: true,
        }
    }
    /// Sets the nominal frame rate.
    pub fn fps(mut self, fps: u32) -> Self {
        self.fps = fps;
        self
    }
    /// Sets the target bitrate in bits per second.
    pub fn bitrate(mut self, bps: u32) -> Self {
        self.bitrate_bps = bps;
        self
    }
    /// Sets the worker thread count.
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }
    /// Sets the speed preset.
    pub fn speed(mut self, speed: u8) -> Self {
        self.speed = Some(speed);
        self
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<(), EncodeError> {
        crate::frame::validate_size(self.width, self.height)?;
        let bad = |field, reason: &str| {
            Err(EncodeError::InvalidConfig {
                field,
                reason: reason.to_string(),
            })
        };
        if !(1..=240).contains(&self.fps) {
            return bad("fps", "must be 1..=240");
        }
        if !(10_000..=100_000_000).contains(&self.bitrate_bps) {
            return bad("bitrate_bps", "must be 10 kbit/s..=100 Mbit/s");
        }
        if !(1..=64).contains(&self.threads) {
            return bad("threads", "must be 1..=64");
        }
        if self.speed.is_some_and(|s| s > 10) {
            return bad("speed", "must be 0..=10");
        }
        Ok(())
    }
}

/// Per-frame instructions to the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameOptions {
    /// Encode this frame as a keyframe (decodable on its own).
    pub keyframe: bool,
    /// A quality refresh of an unchanged picture: spend bits to sharpen it.
    pub refresh: bool,
    /// A keep-alive of an unchanged picture: spend as little as the codec allows (libaom: the quantiser held at
    /// its ceiling, so every block repeats the last picture instead of being refined by the rate control).
    pub keep_alive: bool,
}

/// One encoded frame: an AV1 temporal unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The OBUs: temporal delimiter, sequence header on keyframes, frame.
    pub data: Bytes,
    /// Whether the frame is a keyframe.
    pub keyframe: bool,
    /// Capture time of the source frame.
    pub timestamp: Duration,
    /// Index of the source frame among those sent to this encoder.
    pub frame_index: u64,
}

/// An AV1 encoder.
pub trait Encoder: Send {
    /// Which implementation this is.
    fn backend(&self) -> Backend;

    /// The configuration in force (bitrate included).
    fn config(&self) -> &EncoderConfig;

    /// Hands a frame in. It must be I420 at the configured size.
    fn send_frame(&mut self, frame: &Frame, options: FrameOptions) -> Result<(), EncodeError>;

    /// The next finished temporal unit, or `Ok(None)` when the encoder needs more frames.
    fn receive_packet(&mut self) -> Result<Option<Packet>, EncodeError>;

    /// Changes the target bitrate from the next frame on.
    fn set_bitrate(&mut self, bps: u32) -> Result<(), EncodeError>;

    /// Frames sent whose packet has not come out yet (0 for a zero-delay encoder).
    fn frames_in_flight(&self) -> usize;
}

/// A new encoder of the given backend.
pub fn new_encoder(backend: Backend, config: &EncoderConfig) -> Result<Box<dyn Encoder>, EncodeError> {
    config.validate()?;
    match backend {
        #[cfg(feature = "aom")]
        Backend::Aom => Ok(Box::new(aom::AomEncoder::new(config.clone())?)),
        #[cfg(feature = "rav1e")]
        Backend::Rav1e => Ok(Box::new(rav1e::Rav1eEncoder::new(config.clone())?)),
        #[allow(unreachable_patterns)]
        other => Err(EncodeError::Unavailable(other)),
    }
}

/// Checks a new target bitrate against the rest of `config`.
#[cfg_attr(not(any(feature = "aom", feature = "rav1e")), allow(dead_code))]
pub(crate) fn check_bitrate(config: &EncoderConfig, bps: u32) -> Result<(), EncodeError> {
    EncoderConfig {
        bitrate_bps: bps,
        ..config.clone()
    }
    .validate()
}

/// Checks that `frame` is I420 of the configured size.
#[cfg_attr(not(any(feature = "aom", feature = "rav1e")), allow(dead_code))]
pub(crate) fn check_frame(frame: &Frame, config: &EncoderConfig) -> Result<(), EncodeError> {
    frame.as_i420_image()?;
    if frame.width() != config.width || frame.height() != config.height {
        return Err(FrameError::SizeMismatch(frame.width(), frame.height(), config.width, config.height).into());
    }
    Ok(())
}
