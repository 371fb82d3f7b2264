//! The control channel: how input, clipboard, cursor, chat and permissions travel between viewer and host
//! (viewer input → data channel → [`permissions`] check on the host → input sink).

pub mod permissions;
pub mod protocol;

pub use permissions::{ControlGate, GateError};
pub use protocol::{
    ControlErrorCode, CursorImageMessage, HostMessage, InputEvent, MouseButton, Permissions, ViewerMessage,
    CHANNEL_LABEL,
};
