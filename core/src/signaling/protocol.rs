//! The signaling protocol, version 1: JSON text messages over one WebSocket per peer.
//!
//! Every message is an object with `"v": 1` and a `"type"`. The server relays SDP and ICE candidates between a
//! host and a viewer it has admitted, and nothing else.
//!
//! | direction | `type` | fields | meaning |
//! | --- | --- | --- | --- |
//! | host → server | `device_challenge` | | ask for a nonce to sign (a host with a device identity) |
//! | server → host | `device_challenge` | `nonce` | base64 bytes to sign once |
//! | host → server | `register` | `device` (optional: `public_key`, `signature`) | issue a one-time session code for this host; with `device`, also take its device ID |
//! | server → host | `registered` | `peer`, `code`, `expires_in_secs`, `device` | the code to show the user (and the device ID registered) |
//! | viewer → server | `sign_in` | `account`, `token` | sign in with a technician account of the operator (optional, before joining) |
//! | server → viewer | `signed_in` | `account`, `operator` | the account is verified; join requests now carry it |
//! | viewer → server | `join` | `code`, `name`, `asks` | ask to join the host that owns `code` |
//! | viewer → server | `join_device` | `device`, `access`, `name` | ask for unattended access to a registered device |
//! | server → viewer | `join_pending` | `peer`, `host`, `ice_servers` (empty: see `accepted`) | the host has been asked for consent |
//! | server → host | `join_request` | `peer`, `name`, `code`, `access`, `verified`, `asks` | a viewer asks to join with one of the host's codes (or, with `access`, unattended); answer with `accept` or `reject` |
//! | host → server | `auth_failed` | `peer` | an unattended viewer failed to authenticate: the server ends it and backs off its address |
//! | host → server | `accept` / `reject` | `peer` (+ `reason` for reject) | the consent answer |
//! | server → viewer | `accepted` | `host` | the host consented; its offer follows |
//! | either → server | `signal` | `to`, `payload` | SDP offer/answer or ICE candidate for an admitted peer |
//! | server → either | `signal` | `from`, `payload` | the relayed payload |
//! | either → server | `resume` | `token` | after a reconnect: pair this connection again with the other side of a session that presents the same token |
//! | server → either | `resumed` | `token`, `peer` | the other side presented it too: signals to `peer` are relayed |
//! | either → server | `leave` | | end this peer's sessions |
//! | server → either | `peer_left` | `peer`, `reason` | the other side left or was rejected |
//! | server → either | `error` | `code`, `message`, `retry_after_secs` | a request was refused; the connection stays usable |
//!
//! The `signal` payloads are `offer`, `answer` and `candidate`, and, for unattended access (see
//! [`crate::unattended`]), `auth`, `auth_confirm` and `auth_proof`.
//!
//! Limits: a message is at most [`MAX_MESSAGE_BYTES`]; servers also limit messages per second and join attempts
//! (answered with `error` code `rate_limited`).

use serde::{Deserialize, Serialize};

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// The largest signaling message accepted, in bytes (an SDP offer is 2–6 KiB).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// The longest viewer name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// The longest access name accepted, in characters.
pub const MAX_ACCESS_CHARS: usize = 64;

/// A peer's identifier on the server: random, opaque, valid for one WebSocket connection.
pub type PeerId = String;

/// An ICE server (STUN or TURN) that clients should use; configured by the operator, never built in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct IceServer {
    /// `stun:` / `turn:` URLs.
    pub urls: Vec<String>,
    /// TURN user name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// TURN credential.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub credential: String,
}

/// What a peer relays to the other side: session descriptions and ICE candidates only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SignalPayload {
    /// An SDP offer.
    Offer {
        /// The SDP text.
        sdp: String,
    },
    /// An SDP answer.
    Answer {
        /// The SDP text.
        sdp: String,
    },
    /// A trickled ICE candidate.
    Candidate {
        /// The `candidate:` attribute value.
        candidate: String,
        /// The media stream identification tag.
        #[serde(default)]
        sdp_mid: Option<String>,
        /// The m-line index.
        #[serde(default)]
        sdp_mline_index: Option<u16>,
    },
    /// Unattended access, host → viewer after the offer: argon2id parameters and the host's SPAKE2 message.
    Auth {
        /// `$argon2id$v=19$m=…,t=…,p=…$<salt>`.
        kdf: String,
        /// Base64 SPAKE2 message.
        spake: String,
    },
    /// Unattended access, viewer → host before the answer: the viewer's SPAKE2 message and key confirmation.
    AuthConfirm {
        /// Base64 SPAKE2 message.
        spake: String,
        /// Base64 HMAC-SHA256 over the transcript (and TOTP code).
        mac: String,
    },
    /// Unattended access, host → viewer: the host's key confirmation and device signature.
    AuthProof {
        /// Base64 HMAC-SHA256 over the transcript.
        mac: String,
        /// Base64 Ed25519 device public key.
        public_key: String,
        /// Base64 Ed25519 signature of the transcript.
        signature: String,
    },
}

/// A technician account the signaling server verified, as it tells the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifiedIdentity {
    /// The operator running the server (from its configuration).
    pub operator: String,
    /// The account name.
    pub account: String,
}

/// A host's proof that it holds its device key: its public key and its signature of the server's nonce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceClaim {
    /// Base64 Ed25519 public key (32 bytes).
    pub public_key: String,
    /// Base64 Ed25519 signature of [`crate::unattended::REGISTRATION_CONTEXT`] followed by the nonce.
    pub signature: String,
}

/// Messages a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// A host asks for a one-time session code.
    Register {
        /// The signaling protocol version the sender speaks (`PROTOCOL_VERSION`); the other side refuses another.
        v: u32,
        /// With a device identity: the proof that registers its device ID for this connection.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<DeviceClaim>,
    },
    /// A host with a device identity asks for a nonce to sign.
    DeviceChallenge {
        /// The signaling protocol version the sender speaks (`PROTOCOL_VERSION`); the other side refuses another.
        v: u32,
    },
    /// A viewer asks for unattended access to a registered device.
    JoinDevice {
        /// The signaling protocol version the sender speaks (`PROTOCOL_VERSION`); the other side refuses another.
        v: u32,
        /// The nine-digit device ID.
        device: String,
        /// The technician access name the host's policy knows.
        access: String,
        /// Who is asking, shown to the host's user when the policy asks them.
        name: String,
        /// What the viewer asks for, shown to the host's user in plain words.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        asks: Option<crate::control::Permissions>,
    },
    /// After reconnecting to the server (which may have restarted and forgotten everything): pair this connection
    /// again with the other side of a running session, which presents the same token (sent in the session's
    /// encrypted control channel, so only the two peers know it).
    Resume {
        /// The signaling protocol version the sender speaks (`PROTOCOL_VERSION`); the other side refuses another.
        v: u32,
        /// The session's resumption token.
        token: String,
    },
    /// An unattended viewer failed to authenticate (host → server): end it and back off its address.
    AuthFailed {
        /// The signaling protocol version the sender speaks (`PROTOCOL_VERSION`); the other side refuses another.
        v: u32,
        /// The viewer.
        peer: PeerId,
    },
    /// A viewer asks to join the host owning `code`.
    Join {
        /// The signaling protocol version the sender speaks (`PROTOCOL_VERSION`); the other side refuses another.
        v: u32,
        /// The session code the host's user read out.
        code: String,
        /// Who is asking, shown to the host's user in the consent prompt.
        name: String,
        /// What the viewer asks for, shown to the host's user in plain words (absent: view only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        asks: Option<crate::control::Permissions>,
    },
    /// A technician signs in with an account of the operator's server (an API token).
    SignIn {
        /// The signaling protocol version the sender speaks (`PROTOCOL_VERSION`); the other side refuses another.
        v: u32,
        /// The account name.
        account: String,
        /// The account's API token.
        token: String,
    },
    /// The host consents to a viewer.
    Accept {
        /// The signaling protocol version the sender speaks (`PROTOCOL_VERSION`); the other side refuses another.
        v: u32,
        /// The viewer.
        peer: PeerId,
    },
    /// The host refuses a viewer.
    Reject {
        /// The signaling protocol version the sender speaks (`PROTOCOL_VERSION`); the other side refuses another.
        v: u32,
        /// The viewer.
        peer: PeerId,
        /// Shown to the viewer.
        reason: String,
    },
    /// SDP or ICE for an admitted peer.
    Signal {
        /// The signaling protocol version the sender speaks (`PROTOCOL_VERSION`); the other side refuses another.
        v: u32,
        /// The recipient.
        to: PeerId,
        /// What to relay.
        payload: SignalPayload,
    },
    /// Leave every session.
    Leave {
        /// The signaling protocol version the sender speaks (`PROTOCOL_VERSION`); the other side refuses another.
        v: u32,
    },
}

/// Why the server refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// Not JSON, or not a known message.
    Malformed,
    /// The `v` field names a version the server does not speak.
    UnsupportedVersion,
    /// The message exceeds [`MAX_MESSAGE_BYTES`].
    TooLarge,
    /// Too many messages or join attempts; wait and retry.
    RateLimited,
    /// No session has this code (never issued, already used, or revoked).
    InvalidCode,
    /// The code existed but has expired.
    ExpiredCode,
    /// The host refused the viewer.
    Denied,
    /// The message is not allowed in this state (e.g. `signal` before admission, `accept` by a viewer).
    NotAllowed,
    /// The named peer is not connected or not paired with the sender.
    UnknownPeer,
    /// The server is at capacity.
    Unavailable,
    /// No host with this device ID is connected.
    UnknownDevice,
    /// Another key holds this device ID.
    DeviceTaken,
    /// Unattended authentication failed.
    AuthenticationFailed,
}

impl ErrorCode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Malformed => "malformed",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::InvalidCode => "invalid_code",
            ErrorCode::ExpiredCode => "expired_code",
            ErrorCode::Denied => "denied",
            ErrorCode::NotAllowed => "not_allowed",
            ErrorCode::UnknownPeer => "unknown_peer",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::UnknownDevice => "unknown_device",
            ErrorCode::DeviceTaken => "device_taken",
            ErrorCode::AuthenticationFailed => "authentication_failed",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Messages the server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// A code was issued to this host.
    Registered {
        /// The signaling protocol version the sender speaks (`PROTOCOL_VERSION`); the other side refuses another.
        v: u32,
        /// This host's peer id.
        peer: PeerId,
        /// The one-time session code.
        code: String,
        /// Seconds until the code expires.
        expires_in_secs: u64,
        /// Empty from this server version on: STUN/TURN servers (and TURN credentials) come in `admitted`, once
        /// the host let a viewer in, so that registering alone earns no relay.
        #[serde(default)]
        ice_servers: Vec<IceServer>,
        /// The device ID registered for this connection, when the registration carried a device claim.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<String>,
    },
    /// The nonce a host signs to register its device ID.
    DeviceChallenge {
        /// The signaling protocol version the sender speaks (`PROTOCOL_VERSION`); the other side refuses another.
        v: u32,
        /// Base64 bytes, good for one `register` on this connection.
        nonce: String,
    },
    /// The viewer's join request went to the host.
    JoinPending {
        /// The signaling protocol version the sender speaks (`PROTOCOL_VERSION`); the other side refuses another.
        v: u32,
        /// This viewer's peer id.
        peer: PeerId,
        /// The host's peer id.
        host: PeerId,
        /// STUN/TURN servers the operator configured.
        ice_servers: Vec<IceServer>,
    },
    /// A viewer asks to join (to the host).
    JoinRequest {
        /// The signaling protocol version the sender speaks (`PROTOCOL_VERSION`); the other side refuses another.
        v: u32,
        /// The viewer's peer id.
        peer: PeerId,
        /// The name the viewer gave.
        name: String,
        /// The code the viewer joined with: a host prompts only for codes it holds. Empty from servers older than
        /// this field, and for unattended requests.
        #[serde(default)]
        code: String,
        /// For an unattended request (`join_device`): the access name the viewer claims; it proves it in the
        /// handshake that follows.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        access: Option<String>,
        /// The technician account the server verified (`sign_in`), if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        verified: Option<VerifiedIdentity>,
        /// What the viewer asks for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        asks: Option<crate::control::Permissions>,
    },
    /// Both sides of a session presented the same resumption token: relaying between them works again.
    Resumed {
        /// The signaling protocol version the sender speaks (`PROTOCOL_VERSION`); the other side refuses another.
        v: u32,
        /// The token.
        token: String,
        /// The other side's new peer id.
        peer: PeerId,
    },
    /// A `sign_in` succeeded.
    SignedIn {
        /// The signaling protocol version the sender speaks (`PROTOCOL_VERSION`); the other side refuses another.
        v: u32,
        /// The account.
        account: String,
        /// The operator who vouches for it.
        operator: String,
    },
    /// The host consented (to the viewer).
    Accepted {
        /// The signaling protocol version the sender speaks (`PROTOCOL_VERSION`); the other side refuses another.
        v: u32,
        /// The host's peer id.
        host: PeerId,
        /// STUN/TURN servers the operator configured: given only once the host consented, so that TURN
        /// credentials do not go to anyone who merely sends a `join`. Empty from servers older than this field
        /// (which sent them in `join_pending`).
        #[serde(default)]
        ice_servers: Vec<IceServer>,
    },
    /// The host's `accept` went through (to the host): the STUN/TURN servers for this viewer's connection, with
    /// TURN credentials issued for this host (time-limited when the operator runs a TURN REST secret).
    Admitted {
        /// The signaling protocol version the sender speaks (`PROTOCOL_VERSION`); the other side refuses another.
        v: u32,
        /// The viewer admitted.
        viewer: PeerId,
        /// STUN/TURN servers for the connection to that viewer.
        #[serde(default)]
        ice_servers: Vec<IceServer>,
    },
    /// A relayed payload.
    Signal {
        /// The signaling protocol version the sender speaks (`PROTOCOL_VERSION`); the other side refuses another.
        v: u32,
        /// The sender.
        from: PeerId,
        /// SDP or ICE.
        payload: SignalPayload,
    },
    /// The other side left, disconnected or rejected the join.
    PeerLeft {
        /// The signaling protocol version the sender speaks (`PROTOCOL_VERSION`); the other side refuses another.
        v: u32,
        /// Who left.
        peer: PeerId,
        /// Why, in words for people; from the other side, so escape it before printing it to a terminal.
        reason: String,
    },
    /// A request was refused.
    Error {
        /// The signaling protocol version the sender speaks (`PROTOCOL_VERSION`); the other side refuses another.
        v: u32,
        /// Why, machine-readable.
        code: ErrorCode,
        /// Why, for people.
        message: String,
        /// For `rate_limited` and `authentication_failed`: seconds until another attempt may succeed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_secs: Option<u64>,
    },
}

impl ServerMessage {
    /// An error reply.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMessage::Error {
            v: PROTOCOL_VERSION,
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// An error reply that says when to retry.
    pub fn error_retry_after(code: ErrorCode, message: impl Into<String>, retry_after_secs: u64) -> Self {
        ServerMessage::Error {
            v: PROTOCOL_VERSION,
            code,
            message: message.into(),
            retry_after_secs: Some(retry_after_secs),
        }
    }
}

impl ClientMessage {
    /// The version the message claims.
    pub fn version(&self) -> u32 {
        match self {
            ClientMessage::Register { v, .. }
            | ClientMessage::DeviceChallenge { v }
            | ClientMessage::JoinDevice { v, .. }
            | ClientMessage::AuthFailed { v, .. }
            | ClientMessage::SignIn { v, .. }
            | ClientMessage::Resume { v, .. }
            | ClientMessage::Join { v, .. }
            | ClientMessage::Accept { v, .. }
            | ClientMessage::Reject { v, .. }
            | ClientMessage::Signal { v, .. }
            | ClientMessage::Leave { v } => *v,
        }
    }
}

/// Why a client message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Larger than [`MAX_MESSAGE_BYTES`].
    #[error("message of {0} bytes exceeds the {max} byte limit", max = MAX_MESSAGE_BYTES)]
    TooLarge(usize),
    /// Not a valid message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A version this side does not speak.
    #[error("unsupported protocol version {0} (this side speaks {v})", v = PROTOCOL_VERSION)]
    UnsupportedVersion(u32),
}

impl ParseError {
    /// The error code to answer with.
    pub fn code(&self) -> ErrorCode {
        match self {
            ParseError::TooLarge(_) => ErrorCode::TooLarge,
            ParseError::Malformed(_) => ErrorCode::Malformed,
            ParseError::UnsupportedVersion(_) => ErrorCode::UnsupportedVersion,
        }
    }
}

/// Parses and checks a client message: size, JSON shape, version.
pub fn parse_client_message(text: &str) -> Result<ClientMessage, ParseError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(ParseError::TooLarge(text.len()));
    }
    // Read the version first, so that a newer client gets "unsupported version" rather than "malformed".
    #[derive(Deserialize)]
    struct Versioned {
        v: Option<u32>,
    }
    let versioned: Versioned = serde_json::from_str(text).map_err(|e| ParseError::Malformed(e.to_string()))?;
    match versioned.v {
        Some(PROTOCOL_VERSION) => {}
        Some(other) => return Err(ParseError::UnsupportedVersion(other)),
        None => return Err(ParseError::Malformed("missing field `v`".into())),
    }
    serde_json::from_str(text).map_err(|e| ParseError::Malformed(e.to_string()))
}

/// Parses a server message (client side), with the same size limit.
pub fn parse_server_message(text: &str) -> Result<ServerMessage, ParseError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(ParseError::TooLarge(text.len()));
    }
    serde_json::from_str(text).map_err(|e| ParseError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format_is_stable() {
        let join = ClientMessage::Join {
            v: 1,
            code: "1234567890".into(),
            name: "Ann".into(),
            asks: None,
        };
        assert_eq!(
            serde_json::to_string(&join).unwrap(),
            r#"{"type":"join","v":1,"code":"1234567890","name":"Ann"}"#
        );
        let signal = ClientMessage::Signal {
            v: 1,
            to: "p1".into(),
            payload: SignalPayload::Candidate {
                candidate: "candidate:1".into(),
                sdp_mid: Some("0".into()),
                sdp_mline_index: Some(0),
            },
        };
        let text = serde_json::to_string(&signal).unwrap();
        assert_eq!(parse_client_message(&text).unwrap(), signal);
        let err = ServerMessage::error(ErrorCode::RateLimited, "slow down");
        assert_eq!(
            serde_json::to_string(&err).unwrap(),
            r#"{"type":"error","v":1,"code":"rate_limited","message":"slow down"}"#
        );
    }

    #[test]
    fn bad_messages_are_classified() {
        assert!(matches!(parse_client_message("{"), Err(ParseError::Malformed(_))));
        assert!(matches!(
            parse_client_message(r#"{"type":"register"}"#),
            Err(ParseError::Malformed(_))
        ));
        assert_eq!(
            parse_client_message(r#"{"type":"register","v":2}"#),
            Err(ParseError::UnsupportedVersion(2))
        );
        assert!(matches!(
            parse_client_message(r#"{"type":"fly","v":1}"#),
            Err(ParseError::Malformed(_))
        ));
        assert!(matches!(
            parse_client_message(r#"{"type":"signal","v":1,"to":"x","payload":{"kind":"chat","text":"hi"}}"#),
            Err(ParseError::Malformed(_))
        ));
        let huge = format!(
            r#"{{"type":"join","v":1,"code":"1","name":"{}"}}"#,
            "a".repeat(MAX_MESSAGE_BYTES)
        );
        assert!(matches!(parse_client_message(&huge), Err(ParseError::TooLarge(_))));
        assert_eq!(parse_client_message(&huge).unwrap_err().code(), ErrorCode::TooLarge);
    }
}
