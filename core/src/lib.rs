//! # peerdesk
//!
//! An embeddable, peer-to-peer remote-support SDK: a customer's app shares its screen, a technician sees it and,
//! with consent, controls it. Pictures travel as AV1 over WebRTC; everything on the wire is an open standard, so a
//! browser can be the technician's console.
//!
//! ## The public face
//!
//! - [`session`]: [`session::Host`] shares a screen, [`session::Viewer`] joins it; both are configured with
//!   builders ([`session::HostConfig`], [`session::ViewerConfig`]) and report typed events
//!   ([`session::HostEvent`], [`session::ViewerEvent`]) and errors ([`session::SessionError`]).
//! - [`capture`]: where the host's pictures come from — an X11 display, pictures the app pushes
//!   ([`capture::pushed`]), or the synthetic desktop for demos and tests.
//! - [`input`]: where a permitted viewer's input goes (XTest, or a sink of the app's own).
//! - [`control::Permissions`]: what a viewer may do, enforced on the host.
//! - [`unattended`], [`audit`]: unattended access with device identity, and the session's audit trail.
//! - [`encode`], [`decode`], [`frame`]: codec settings and the decoded picture.
//!
//! The engine behind it (WebRTC transport, signaling client, encode pipeline, receive path, rate limits,
//! conversion) is public only with the `unstable` feature, for the signaling server, tests and benches; no
//! webrtc-rs type appears in the API above.
//!
//! ## The data path
//!
//! capture → convert (BGRA → I420, damaged rows only) → encode (an [`encode::EncodeController`] decides skip,
//! keyframe, refresh; libaom realtime or rav1e encode) → send (RTP over WebRTC) → receive (NACK first, keyframes
//! only when needed) → decode (dav1d) → present (the app's frame queue).
//!
//! ## Example: share a screen and watch it
//!
//! ```no_run
//! use peerdesk::capture::synthetic::{SyntheticConfig, SyntheticSource};
//! use peerdesk::control::Permissions;
//! use peerdesk::session::{Consent, Host, HostConfig, HostEvent, SessionError, Viewer, ViewerConfig};
//!
//! # async fn demo() -> Result<(), SessionError> {
//! let source = SyntheticSource::new(SyntheticConfig::with_size(1280, 720))
//!     .map_err(|e| SessionError::InvalidArgument(e.to_string()))?;
//! let mut host = Host::start(HostConfig::new("wss://support.example/ws"), Box::new(source), None).await?;
//! let mut host_events = host.take_events().expect("taken once");
//! tokio::spawn(async move {
//!     while let Some(event) = host_events.recv().await {
//!         if let HostEvent::JoinRequest(request) = event {
//!             println!("{}", request.describe()); // a real app asks its user here
//!             request.answer(Consent::Allow(Permissions::VIEW_ONLY));
//!         }
//!     }
//! });
//!
//! let viewer = Viewer::join(ViewerConfig::new("wss://support.example/ws", host.code(), "Alex (support)")).await?;
//! let frames = viewer.frame_queue();
//! while let Some(frame) = frames.pop().await {
//!     println!("{}x{} frame", frame.width(), frame.height());
//! }
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

/// Declares an engine module that is public only with the `unstable` feature, and crate-private otherwise: the
/// transport, the signaling client and protocol, the encode pipeline, rate limits, quality metrics, the receive
/// path and pixel conversion. The signaling server, the CLI, the tests, benches and fuzz targets reach into them;
/// an app does not, and they carry no stability promise (a webrtc-rs upgrade may change them).
macro_rules! internal_mod {
    ($name:ident) => {
        #[cfg(feature = "unstable")]
        pub mod $name;
        #[cfg(not(feature = "unstable"))]
        #[allow(dead_code, unused_imports, unreachable_pub, missing_docs)]
        pub(crate) mod $name;
    };
}

pub mod audit;
pub mod capture;
pub mod control;
internal_mod!(convert);
pub mod decode;
pub mod encode;
pub mod frame;
pub mod input;
internal_mod!(pipeline);
internal_mod!(present);
internal_mod!(quality);
internal_mod!(ratelimit);
internal_mod!(receive);
internal_mod!(send);
pub mod session;
internal_mod!(signaling);
pub mod text;
internal_mod!(transport);
pub mod unattended;

pub use frame::{Frame, FrameError, PixelFormat, Rect};
