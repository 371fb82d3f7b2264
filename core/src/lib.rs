//! # peerdesk
//!
//! An embeddable, peer-to-peer remote-support SDK: a customer's app shares its screen, a technician sees it and,
//! with consent, controls it. Pictures travel as AV1 over WebRTC; everything on the wire is an open standard, so a
//! browser can be the technician's console.
//!
//! ## The data path
//!
//! A picture goes through these modules, in order:
//!
//! 1. [`capture`]: a [`capture::ScreenSource`] hands out the screen as BGRA with the rectangles that changed
//!    (X11 with MIT-SHM and DAMAGE, a synthetic desktop, or pictures pushed by the host app);
//! 2. [`convert`]: BGRA → I420, only the damaged rows;
//! 3. [`encode`]: an [`encode::EncodeController`] decides (skip, keyframe, refresh, adapt) and an
//!    [`encode::Encoder`] (libaom realtime or rav1e) produces AV1 temporal units;
//! 4. [`transport`] sends them as RTP over WebRTC; [`receive`] puts them back together at the viewer, repairing
//!    loss with NACKs first and keyframes only when it must;
//! 5. [`decode`]: dav1d turns them back into pictures at the viewer.
//!
//! [`pipeline::EncodePipeline`] drives steps 1–3 once per capture tick.
//!
//! ## Example: encode the synthetic desktop and decode it again
//!
//! ```
//! use peerdesk::capture::{synthetic::{SyntheticConfig, SyntheticSource}, ScreenSource};
//! use peerdesk::decode::{Decoder, DecoderConfig};
//! use peerdesk::encode::{Backend, ControllerConfig, EncoderConfig};
//! use peerdesk::pipeline::EncodePipeline;
//! use std::time::Duration;
//!
//! let mut source = SyntheticSource::new(SyntheticConfig::with_size(320, 240)).unwrap();
//! let config = EncoderConfig::new(320, 240).bitrate(500_000);
//! let mut pipeline = EncodePipeline::new(Backend::default_interactive(), config, ControllerConfig::default()).unwrap();
//! let mut decoder = Decoder::new(DecoderConfig::default()).unwrap();
//! let mut packets = Vec::new();
//! pipeline.tick(Duration::ZERO, source.capture().unwrap(), &mut packets).unwrap();
//! for tick in 1..5 {
//!     pipeline.tick(Duration::from_millis(tick * 33), None, &mut packets).unwrap();
//! }
//! let first = packets.remove(0);
//! assert!(first.keyframe);
//! let picture = decoder.decode(first.data, first.timestamp).unwrap().expect("one picture per temporal unit");
//! assert_eq!((picture.width(), picture.height()), (320, 240));
//! ```
#![warn(missing_docs)]

pub mod audit;
pub mod capture;
pub mod control;
pub mod convert;
pub mod decode;
pub mod encode;
pub mod frame;
pub mod input;
pub mod pipeline;
pub mod quality;
pub mod ratelimit;
pub mod receive;
pub mod session;
pub mod signaling;
pub mod text;
pub mod transport;
pub mod unattended;

pub use frame::{Frame, FrameError, PixelFormat, Rect};
