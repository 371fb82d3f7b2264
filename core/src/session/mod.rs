//! The session API: [`Host`] shares a screen, [`Viewer`] watches and (with consent) controls it.
//!
//! ```no_run
//! use peerdesk::capture::synthetic::{SyntheticConfig, SyntheticSource};
//! use peerdesk::control::Permissions;
//! use peerdesk::session::{Consent, Host, HostConfig, HostEvent, Viewer, ViewerConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let source = SyntheticSource::new(SyntheticConfig::default())?;
//! let mut host = Host::start(HostConfig::new("ws://127.0.0.1:8080/ws"), Box::new(source), None).await?;
//! println!("tell your technician: {}", host.code());
//! tokio::spawn(async move {
//!     while let Some(event) = host.next_event().await {
//!         if let HostEvent::JoinRequest(request) = event {
//!             request.answer(Consent::Allow(Permissions::VIEW_ONLY));
//!         }
//!     }
//! });
//! # let code = String::new();
//! let mut viewer = Viewer::join(ViewerConfig::new("ws://127.0.0.1:8080/ws", &code, "Alex (support)")).await?;
//! while let Some(frame) = viewer.next_frame().await {
//!     println!("{}x{}", frame.width(), frame.height());
//! }
//! # Ok(()) }
//! ```

mod candidates;
mod event_queue;
#[cfg(test)]
mod harness;
mod host;
mod host_core;
mod join_flow;
mod reconnect;
mod shared_bitrate;
mod verification;
mod viewer;
mod viewer_core;
mod viewer_link;

pub use crate::present::FrameQueue;
pub use event_queue::{EventReceiver, EVENT_QUEUE_CAPACITY, EVENT_QUEUE_HARD_LIMIT};
pub use host::{Consent, Host, HostConfig, HostEvent, HostStats, JoinRequest, ViewerId};
pub use reconnect::{
    RECONNECT_WINDOW, RESTART_AFTER_DISCONNECTED, RESTART_RETRY, SIGNALING_RETRY_FIRST, SIGNALING_RETRY_MAX,
};
pub use verification::{parse_fingerprint, sdp_fingerprint, verification_code, Fingerprint, VerificationError};
pub use viewer::{AccountToken, UnattendedLogin, Viewer, ViewerConfig, ViewerEvent};
// The engine types the session API takes and gives, from modules that are otherwise internal.
pub use crate::signaling::{IceServer, SignalingTls, VerifiedIdentity};
pub use crate::transport::stats::ConnectionStats;
pub use crate::transport::TransportConfig;

use crate::control::ControlErrorCode;
use crate::signaling::{ErrorCode, SignalingError};
use crate::transport::TransportError;

/// Errors of the session API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The host refused the viewer (or stopped sharing before answering).
    #[error("the host declined: {0}")]
    Denied(String),
    /// The code is unknown, already used or revoked.
    #[error("invalid session code")]
    InvalidCode,
    /// The code has expired.
    #[error("the session code has expired")]
    ExpiredCode,
    /// Too many attempts; wait before retrying.
    #[error("rate limited: {0}")]
    RateLimited(String),
    /// The signaling server refused a request for another reason.
    #[error("signaling server refused the request ({code}): {message}")]
    Server {
        /// The server's error code.
        code: ErrorCode,
        /// Its message.
        message: String,
    },
    /// The signaling connection failed.
    #[error(transparent)]
    Signaling(#[from] SignalingError),
    /// The peer connection failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The host refused a control message.
    #[error("the host refused the request ({code:?}): {message}")]
    Refused {
        /// Why, as a code to branch on.
        code: ControlErrorCode,
        /// The same, in words for people; from the other side, so escape it before printing it to a terminal.
        message: String,
    },
    /// The session has ended.
    #[error("the session has ended: {0}")]
    Ended(String),
    /// A step took longer than allowed.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// Invalid configuration or argument.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Unattended access was refused: a wrong secret or TOTP code, an access name the host does not know, or
    /// someone in the middle of the connection. Attempts back off: `retry_after` says how long until the next
    /// one is considered.
    #[error("authentication failed{}", retry_after.map(|d| format!("; retry in {} s", d.as_secs())).unwrap_or_default())]
    AuthenticationFailed {
        /// The wait before another attempt, when the server said.
        retry_after: Option<std::time::Duration>,
    },
    /// Unattended access: the host did not prove that it knows the access's secret and holds the asked device's
    /// key — a wrong device ID, or someone in the middle.
    #[error("the host did not authenticate: {0}")]
    HostNotAuthenticated(String),
}

impl SessionError {
    pub(crate) fn from_server(code: ErrorCode, message: String, retry_after_secs: Option<u64>) -> Self {
        match code {
            ErrorCode::AuthenticationFailed => SessionError::AuthenticationFailed {
                retry_after: retry_after_secs.map(std::time::Duration::from_secs),
            },
            ErrorCode::Denied => SessionError::Denied(message),
            ErrorCode::InvalidCode => SessionError::InvalidCode,
            ErrorCode::ExpiredCode => SessionError::ExpiredCode,
            ErrorCode::RateLimited => SessionError::RateLimited(message),
            code => SessionError::Server { code, message },
        }
    }
}

/// Sleeps until `deadline`, or forever without one (a `select!` arm that never fires).
pub(crate) async fn sleep_until_or_never(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}
