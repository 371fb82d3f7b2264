//! WebRTC transport on webrtc-rs 0.21, steps four and five of the data path (encode → **packetize/send** →
//! **receive** → decode).
//!
//! - [`peer`]: building a peer connection: AV1 registered exactly as Chrome offers it, NACK/RTX, congestion
//!   control (GCC over TWCC, with its pacer), the playout-delay header extension, keyframe requests passed up.
//! - [`video_send`]: AV1 temporal units → RTP (the crate's AV1 payloader, one timestamp per frame from one 90 kHz
//!   clock, marker on the last packet, playout delay 0 on every packet, the capture time on the first).
//! - `estimate`: webrtc-rs's GCC with its increases capped at 1.5 × the acknowledged rate.
//! - `queue_delay`: a ceiling on that estimate from the link's queue, seen in the feedback's one-way delays.
//! - `windowed_min`: the smallest value over a sliding time horizon (a path's base delay).
//! - `congestion_window`: at most the estimate × (base round trip + 250 ms) in flight, the rest held in front of
//!   the wire, the encoder pushed back while the window stays full or the link's queue is long.
//! - `retransmission_budget`: how many retransmissions answer NACKs (a share of the estimate, one copy per
//!   round trip).
//! - [`capture_time`]: the host's capture time of a frame on the wire (the absolute-capture-time extension).
//!
//! What arrives is put back together in [`crate::receive`].
//! - [`stats`]: connection statistics.

pub mod capture_time;
pub(crate) mod congestion_window;
pub(crate) mod estimate;
pub(crate) mod queue_delay;
pub mod peer;
pub(crate) mod retransmission_budget;
pub(crate) mod windowed_min;
pub mod stats;
pub mod video_send;

use crate::signaling::IceServer;
use std::net::SocketAddr;

/// Errors of the transport.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// webrtc-rs refused an operation.
    #[error("WebRTC: {0}")]
    WebRtc(String),
    /// The remote description could not be applied (malformed or incompatible SDP).
    #[error("invalid session description: {0}")]
    InvalidSdp(String),
    /// The remote peer offered no codec peerdesk can use.
    #[error("no AV1 codec was negotiated")]
    NoCodec,
    /// The connection closed.
    #[error("connection closed")]
    Closed,
}

impl TransportError {
    pub(crate) fn webrtc(e: impl std::fmt::Display) -> Self {
        TransportError::WebRtc(e.to_string())
    }
}

/// Network settings of a peer connection.
///
/// The default names no third-party server: set STUN/TURN servers you operate (the signaling server also hands
/// out its operator's list, which is added to these).
#[derive(Debug, Clone, PartialEq)]
pub struct TransportConfig {
    /// STUN/TURN servers.
    pub ice_servers: Vec<IceServer>,
    /// Local addresses for ICE to bind; `0.0.0.0:0` gathers every interface (webrtc-rs skips loopback then, so
    /// name `127.0.0.1:0` for same-machine sessions).
    pub bind_addrs: Vec<SocketAddr>,
    /// Run send-side congestion control (GCC over TWCC, with pacing) and let it drive the encoder's bitrate.
    pub congestion_control: bool,
    /// Bitrate the estimator starts from, bit/s. Default 1 Mbit/s: enough for a moving 1080p screen on a good
    /// path (the estimator climbs from there), and a first keyframe a narrow link can carry. (It was 10 Mbit/s:
    /// at a 1 Mbit/s cap the first frame then never arrived; libwebrtc starts at 300 kbit/s.)
    pub start_bitrate_bps: u32,
    /// Lowest bitrate the estimator may ask for, bit/s.
    pub min_bitrate_bps: u32,
    /// Highest bitrate the estimator may ask for, bit/s.
    pub max_bitrate_bps: u32,
    /// Connect only through a TURN relay: no host or server-reflexive candidates are offered, so the other side
    /// (and the signaling server) never learn this machine's addresses, at the cost of a relay hop. Needs a TURN
    /// server among the ICE servers (the signaling server's operator hands one out on admission). Default: off.
    pub relay_only: bool,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            ice_servers: Vec::new(),
            bind_addrs: vec![SocketAddr::from(([0, 0, 0, 0], 0))],
            congestion_control: true,
            start_bitrate_bps: 1_000_000,
            min_bitrate_bps: 150_000,
            max_bitrate_bps: 50_000_000,
            relay_only: false,
        }
    }
}

impl TransportConfig {
    /// Binds ICE to the loopback address only: for sessions on one machine (tests, demos).
    pub fn loopback() -> Self {
        TransportConfig {
            bind_addrs: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            ..Default::default()
        }
    }
}
