//! Session events as typed values: one enum per side, delivered to one listener per side (matrix-sdk-ffi's
//! shape). Kotlin sees sealed classes, Swift enums with associated values, Python classes per variant.

use crate::host::JoinRequest;
use crate::types::Permissions;
use peerdesk::control::{ControlErrorCode, CursorImageMessage};
use peerdesk::session as core;
use std::sync::Arc;

/// Why the host refused a viewer's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum RefusalCode {
    /// The message could not be read.
    Malformed,
    /// The message was over its size limit.
    TooLarge,
    /// The message's protocol version is not spoken by the host.
    UnsupportedVersion,
    /// The viewer lacks the permission (control or clipboard) the message needs.
    PermissionDenied,
    /// The viewer sent more messages than the host's rate limit allows.
    RateLimited,
    /// The host cannot carry the message out (for example, it has no input sink).
    Unsupported,
}

impl From<ControlErrorCode> for RefusalCode {
    fn from(code: ControlErrorCode) -> Self {
        match code {
            ControlErrorCode::Malformed => RefusalCode::Malformed,
            ControlErrorCode::TooLarge => RefusalCode::TooLarge,
            ControlErrorCode::UnsupportedVersion => RefusalCode::UnsupportedVersion,
            ControlErrorCode::PermissionDenied => RefusalCode::PermissionDenied,
            ControlErrorCode::RateLimited => RefusalCode::RateLimited,
            // A code added to the protocol later reaches the app as the closest meaning.
            _ => RefusalCode::Unsupported,
        }
    }
}

/// The host's cursor image: straight (not premultiplied) RGBA, `width * 4` bytes a row.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CursorImage {
    /// Width in pixels (1–48).
    pub width: u32,
    /// Height in pixels (1–48).
    pub height: u32,
    /// Column of the pixel that points, from the left.
    pub hotspot_x: u32,
    /// Row of the pixel that points, from the top.
    pub hotspot_y: u32,
    /// `width * height * 4` bytes of RGBA.
    pub rgba: Vec<u8>,
}

impl CursorImage {
    /// The image carried by a cursor message, or `None` when it is not valid (see
    /// `CursorImageMessage::pixels`).
    fn from_message(message: &CursorImageMessage) -> Option<Self> {
        Some(CursorImage {
            width: message.width,
            height: message.height,
            hotspot_x: message.hotspot_x,
            hotspot_y: message.hotspot_y,
            rgba: message.pixels()?,
        })
    }
}

/// Something that happened in a viewer's session.
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum ViewerEvent {
    /// The host's cursor moved (fractions 0–1 of the screen) or changed its image.
    Cursor {
        /// Horizontal position, 0 (left) to 1 (right).
        x: f32,
        /// Vertical position, 0 (top) to 1 (bottom).
        y: f32,
        /// Whether the cursor is over the shared screen.
        visible: bool,
        /// The new image, only when it changed; keep drawing the last one otherwise.
        image: Option<CursorImage>,
    },
    /// Clipboard text from the host (the viewer holds the clipboard permission).
    Clipboard {
        /// The text, as the host's user copied it; escape it before showing it in a terminal.
        text: String,
    },
    /// A chat line from the host.
    Chat {
        /// The line; escape it before showing it in a terminal.
        text: String,
    },
    /// The host changed this viewer's permissions.
    PermissionsChanged {
        /// The permissions from now on.
        permissions: Permissions,
    },
    /// The host refused one of this viewer's messages.
    Refused {
        /// Why, as a code to branch on.
        code: RefusalCode,
        /// Why, in words for people.
        message: String,
    },
    /// The connection to the host was lost; the host restarts ICE and the session waits up to a minute. Video
    /// and input pause.
    Reconnecting,
    /// The lost connection is back.
    Reconnected,
    /// The session ended; no event follows.
    Ended {
        /// Why, in words for people.
        reason: String,
    },
}

impl ViewerEvent {
    /// The typed form of a core event; `None` for kinds this version of the bindings does not know.
    pub(crate) fn from_core(event: core::ViewerEvent) -> Option<Self> {
        use core::ViewerEvent as E;
        Some(match event {
            E::Cursor { x, y, visible, image } => ViewerEvent::Cursor {
                x,
                y,
                visible,
                image: image.as_ref().and_then(CursorImage::from_message),
            },
            E::Clipboard(text) => ViewerEvent::Clipboard { text },
            E::Chat(text) => ViewerEvent::Chat { text },
            E::PermissionsChanged(p) => ViewerEvent::PermissionsChanged { permissions: p.into() },
            E::Refused { code, message } => ViewerEvent::Refused {
                code: code.into(),
                message,
            },
            E::Reconnecting => ViewerEvent::Reconnecting,
            E::Reconnected => ViewerEvent::Reconnected,
            E::Ended { reason } => ViewerEvent::Ended { reason },
            #[allow(unreachable_patterns)]
            _ => return None,
        })
    }
}

/// Something that happened in a host's session.
#[derive(Clone, uniffi::Enum)]
pub enum HostEvent {
    /// A viewer asks to join: answer with `request.allow(..)` or `request.deny(..)`, now or later (an unanswered
    /// request is denied when dropped).
    JoinRequest {
        /// The request, with who asks and for what.
        request: Arc<JoinRequest>,
    },
    /// The six-digit verification code of an admitted viewer's connection (`"042 917"`), just before
    /// `ViewerConnected`. Show it; if the technician reads the same digits, call `Host.confirm_verification`.
    /// Different codes mean someone sits in the middle: disconnect.
    VerificationCode {
        /// The viewer's id.
        viewer: String,
        /// Six digits with a space after the third.
        code: String,
    },
    /// A technician proved an unattended access (secret, and TOTP code when required); their connection
    /// follows.
    UnattendedAccess {
        /// The viewer's id.
        viewer: String,
        /// The access name from the policy.
        access: String,
    },
    /// Unattended attempts failed `failures` times in a row (3 and more): someone may be guessing.
    AccessFailures {
        /// Failures in a row.
        failures: u32,
        /// Seconds the next attempt waits.
        retry_after_secs: u64,
    },
    /// An admitted viewer's connection is up.
    ViewerConnected {
        /// The viewer's id.
        viewer: String,
        /// The name the viewer gave (not verified).
        name: String,
    },
    /// A viewer's connection was lost; ICE is restarted for up to a minute.
    ViewerReconnecting {
        /// The viewer's id.
        viewer: String,
    },
    /// A viewer's lost connection is back.
    ViewerReconnected {
        /// The viewer's id.
        viewer: String,
    },
    /// The signaling connection is back after a loss; new viewers join with `code` (earlier codes are void).
    SignalingRestored {
        /// The new one-time code.
        code: String,
    },
    /// A viewer left or was disconnected.
    ViewerLeft {
        /// The viewer's id.
        viewer: String,
        /// Why, in words for people.
        reason: String,
    },
    /// Clipboard text from a viewer holding the clipboard permission.
    Clipboard {
        /// The viewer's id.
        viewer: String,
        /// The text as the other side sent it (at most the control protocol's size limit); escape it before printing it to a terminal.
        text: String,
    },
    /// A chat line from a viewer.
    Chat {
        /// The viewer's id.
        viewer: String,
        /// The line; escape it before showing it in a terminal.
        text: String,
    },
    /// A viewer's message was refused (for example input without the control permission).
    Refused {
        /// The viewer's id.
        viewer: String,
        /// Why, as a code to branch on.
        code: RefusalCode,
    },
    /// The session ended; no event follows.
    Ended {
        /// Why, in words for people.
        reason: String,
    },
}

impl HostEvent {
    /// The typed form of a core event; `None` for kinds this version of the bindings does not know.
    pub(crate) fn from_core(event: core::HostEvent) -> Option<Self> {
        use core::HostEvent as E;
        Some(match event {
            E::JoinRequest(request) => HostEvent::JoinRequest {
                request: Arc::new(JoinRequest::new(request)),
            },
            E::VerificationCode { viewer, code } => HostEvent::VerificationCode { viewer, code },
            E::UnattendedAccess { viewer, access } => HostEvent::UnattendedAccess { viewer, access },
            E::AccessFailures { failures, retry_after } => HostEvent::AccessFailures {
                failures,
                retry_after_secs: retry_after.as_secs(),
            },
            E::ViewerConnected { viewer, name } => HostEvent::ViewerConnected { viewer, name },
            E::ViewerReconnecting { viewer } => HostEvent::ViewerReconnecting { viewer },
            E::ViewerReconnected { viewer } => HostEvent::ViewerReconnected { viewer },
            E::SignalingRestored { code } => HostEvent::SignalingRestored { code },
            E::ViewerLeft { viewer, reason } => HostEvent::ViewerLeft { viewer, reason },
            E::Clipboard { viewer, text } => HostEvent::Clipboard { viewer, text },
            E::Chat { viewer, text } => HostEvent::Chat { viewer, text },
            E::Refused { viewer, code } => HostEvent::Refused {
                viewer,
                code: code.into(),
            },
            E::Ended { reason } => HostEvent::Ended { reason },
            #[allow(unreachable_patterns)]
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_image_of_the_stated_size_crosses_and_a_bad_one_is_dropped() {
        let pixels = vec![7u8; 2 * 3 * 4];
        let mut message = CursorImageMessage {
            width: 2,
            height: 3,
            hotspot_x: 1,
            hotspot_y: 2,
            // 24 bytes of 7: "BwcH" is the base64 of three.
            rgba: "BwcH".repeat(8),
        };
        let image = CursorImage::from_message(&message).expect("a valid image");
        assert_eq!(
            (image.width, image.height, image.hotspot_x, image.hotspot_y),
            (2, 3, 1, 2)
        );
        assert_eq!(image.rgba, pixels);
        message.width = 3;
        assert_eq!(CursorImage::from_message(&message), None, "wrong size");
        message.width = 2;
        message.rgba = "not base64!".into();
        assert_eq!(CursorImage::from_message(&message), None, "not base64");
    }

    #[test]
    fn core_events_keep_their_fields() {
        let event = ViewerEvent::from_core(core::ViewerEvent::Refused {
            code: ControlErrorCode::PermissionDenied,
            message: "no control".into(),
        });
        assert_eq!(
            event,
            Some(ViewerEvent::Refused {
                code: RefusalCode::PermissionDenied,
                message: "no control".into()
            })
        );
    }
}
