//! # peerdesk-ffi
//!
//! The uniffi (0.32, proc-macros, library mode) face of peerdesk's session API for Swift, Kotlin and Python. It
//! converts types and forwards calls; all behaviour lives in the `peerdesk` crate.
//!
//! - Configuration as records with defaults ([`HostOptions`], [`ViewerOptions`]); errors as one enum per area
//!   ([`SessionError`], [`FrameError`]); no panic crosses the boundary (uniffi turns one into an internal
//!   error, and listener calls are contained).
//! - Events are typed enums ([`HostEvent`], [`ViewerEvent`]) delivered to one listener per side
//!   ([`HostListener`], [`ViewerListener`]) on one dedicated thread each, never on an async worker. Each
//!   binding turns them into its language's stream (Python async iterators, Kotlin `Flow`, Swift `AsyncStream`).
//! - Frames arrive without polling: awaited one at a time ([`Viewer::receive_frame`]), or pushed to a
//!   [`FrameListener`] from one thread.
//! - Frames out: [`VideoFrame`] exposes a pointer + length per plane, no copy; frames in: [`Host::push_frame`]
//!   takes the app's bytes as a borrowed slice.
//! - Async calls (`Host.start`, `Viewer.join`, `invite`, `end`, `leave`) are Kotlin `suspend` functions, Swift
//!   `async` functions and Python coroutines; cancelling them on the foreign side drops the Rust future.

mod errors;
mod events;
mod frame;
mod host;
mod runtime;
mod types;
mod viewer;

pub use errors::{CallbackError, FrameError, SessionError};
pub use events::{CursorImage, HostEvent, RefusalCode, ViewerEvent};
pub use frame::VideoFrame;
pub use host::{Host, HostListener, JoinRequest};
pub use runtime::detach_listeners;
pub use types::{
    FrameStamp, HostOptions, HostStats, InputEvent, MouseButton, Permissions, PushFormat, ScreenSource, ViewerOptions,
    ViewerStats,
};
pub use viewer::{FrameListener, Viewer, ViewerListener};

uniffi::setup_scaffolding!();

/// The library version.
#[uniffi::export]
pub fn peerdesk_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
