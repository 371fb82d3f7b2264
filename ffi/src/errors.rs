//! Errors crossing the boundary: one enum per area, mapped to exceptions (Kotlin, Python) and errors (Swift).

/// Errors of sessions (joining, hosting, sending).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum SessionError {
    /// The host refused the viewer.
    #[error("the host declined: {reason}")]
    Denied {
        /// Why, in words for people; from the other side, so escape it before printing it to a terminal.
        reason: String,
    },
    /// The code is unknown, used or revoked.
    #[error("invalid session code")]
    InvalidCode,
    /// The code has expired.
    #[error("the session code has expired")]
    ExpiredCode,
    /// Too many attempts.
    #[error("rate limited: {details}")]
    RateLimited {
        /// What went wrong, in words for people.
        details: String,
    },
    /// Signaling or the peer connection failed.
    #[error("connection failed: {details}")]
    Connection {
        /// What went wrong, in words for people.
        details: String,
    },
    /// The session has ended.
    #[error("the session has ended: {reason}")]
    Ended {
        /// Why, in words for people; from the other side, so escape it before printing it to a terminal.
        reason: String,
    },
    /// A step took too long.
    #[error("timed out waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
    },
    /// A bad argument or configuration.
    #[error("invalid argument: {details}")]
    InvalidArgument {
        /// What went wrong, in words for people.
        details: String,
    },
    /// Unattended access or sign-in refused: wrong secret, TOTP code or token, or someone in the middle.
    #[error("authentication failed")]
    AuthenticationFailed {
        /// Seconds before another attempt may succeed, when the server said.
        retry_after_secs: Option<u64>,
    },
    /// Unattended access: the host did not prove its identity or the secret (wrong device, or someone in the
    /// middle).
    #[error("the host did not authenticate: {details}")]
    HostNotAuthenticated {
        /// What went wrong, in words for people.
        details: String,
    },
}

impl From<peerdesk::session::SessionError> for SessionError {
    fn from(e: peerdesk::session::SessionError) -> Self {
        use peerdesk::session::SessionError as E;
        match e {
            E::Denied(reason) => SessionError::Denied { reason },
            E::InvalidCode => SessionError::InvalidCode,
            E::ExpiredCode => SessionError::ExpiredCode,
            E::RateLimited(message) => SessionError::RateLimited { details: message },
            E::Ended(reason) => SessionError::Ended { reason },
            E::Timeout(what) => SessionError::Timeout { what: what.to_string() },
            E::InvalidArgument(message) => SessionError::InvalidArgument { details: message },
            E::AuthenticationFailed { retry_after } => SessionError::AuthenticationFailed {
                retry_after_secs: retry_after.map(|d| d.as_secs()),
            },
            E::HostNotAuthenticated(details) => SessionError::HostNotAuthenticated { details },
            other => SessionError::Connection {
                details: other.to_string(),
            },
        }
    }
}

/// Errors of frames handed in or read out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum FrameError {
    /// Width or height out of range.
    #[error("invalid frame size {width}x{height}")]
    InvalidSize {
        /// The width given, pixels.
        width: u32,
        /// The height given, pixels.
        height: u32,
    },
    /// Stride or buffer length does not fit the size.
    #[error("buffer does not fit: {details}")]
    BadBuffer {
        /// What went wrong, in words for people.
        details: String,
    },
    /// The host does not take pushed frames (it captures a screen itself), or the session ended.
    #[error("not accepted: {details}")]
    NotAccepted {
        /// What went wrong, in words for people.
        details: String,
    },
}

impl From<peerdesk::capture::CaptureError> for FrameError {
    fn from(e: peerdesk::capture::CaptureError) -> Self {
        use peerdesk::capture::CaptureError as C;
        use peerdesk::frame::FrameError as F;
        match e {
            C::Frame(F::InvalidSize { width, height }) => FrameError::InvalidSize { width, height },
            C::Frame(other) => FrameError::BadBuffer {
                details: other.to_string(),
            },
            other => FrameError::NotAccepted {
                details: other.to_string(),
            },
        }
    }
}

/// Returned by a foreign callback that failed; logged and ignored on the Rust side.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum CallbackError {
    /// The callback raised or threw.
    #[error("callback failed: {details}")]
    Failed {
        /// What went wrong, in words for people.
        details: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for CallbackError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        CallbackError::Failed { details: e.reason }
    }
}
