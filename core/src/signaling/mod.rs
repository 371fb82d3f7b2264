//! Signaling: how a host and a viewer find each other and exchange SDP and ICE through a signaling server.
//!
//! [`protocol`] defines the messages (shared with the server in `examples/signaling-server`); [`client`] is the
//! WebSocket client the session API uses.

pub mod client;
pub mod protocol;

pub use client::{SignalingClient, SignalingError, SignalingSender, SignalingTls};
pub use protocol::{
    ClientMessage, DeviceClaim, ErrorCode, IceServer, PeerId, ServerMessage, SignalPayload, VerifiedIdentity,
    PROTOCOL_VERSION,
};
