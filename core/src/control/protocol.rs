//! The control protocol, version 1: JSON text messages on one reliable, ordered data channel labelled
//! [`CHANNEL_LABEL`].
//!
//! Every message is an object with `"v": 1` and a `"type"`; a message is at most [`MAX_MESSAGE_BYTES`].
//!
//! Viewer → host: `pointer_move {x, y}` (0..=1 of the shared screen), `pointer_button {button, pressed}`,
//! `wheel {dx, dy}` (notches), `key {code, pressed}` (W3C `KeyboardEvent.code`), `text {text}`,
//! `clipboard {text}`, `chat {text}`, `leave {reason}`.
//!
//! Host → viewer: `welcome {permissions, width, height, host_name}`, `permissions {permissions}`,
//! `cursor {x, y, visible, image?}`, `clipboard {text}`, `chat {text}`, `error {code, message}`, `end {reason}`.

use serde::{Deserialize, Serialize};

/// The data channel's label.
pub const CHANNEL_LABEL: &str = "peerdesk-control";
/// The protocol version.
pub const CONTROL_VERSION: u32 = 1;
/// The largest control message, in bytes (data channels carry 16 KiB messages everywhere).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;
/// The longest clipboard text, in bytes.
pub const MAX_CLIPBOARD_BYTES: usize = 12 * 1024;
/// The longest chat or typed text, in bytes.
pub const MAX_TEXT_BYTES: usize = 4 * 1024;
/// The largest cursor image side sent, in pixels.
pub const MAX_CURSOR_SIDE: u32 = 48;

/// What a viewer may do, as the host enforces it. Seeing the screen needs no permission; everything else does.
/// Build one from a constant and the `with_` methods: more permissions (file transfer) will come, so the struct
/// cannot be written as a literal outside this crate.
///
/// ```
/// use peerdesk::control::Permissions;
///
/// let granted = Permissions::VIEW_ONLY.with_clipboard(true);
/// assert!(granted.clipboard && !granted.control);
/// assert_eq!(Permissions::default(), Permissions::VIEW_ONLY);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct Permissions {
    /// Pointer and keyboard input.
    pub control: bool,
    /// Clipboard text in both directions.
    pub clipboard: bool,
}

impl Permissions {
    /// See the screen only.
    pub const VIEW_ONLY: Permissions = Permissions {
        control: false,
        clipboard: false,
    };
    /// See and control, without the clipboard.
    pub const CONTROL: Permissions = Permissions {
        control: true,
        clipboard: false,
    };
    /// See, control and share the clipboard.
    pub const FULL: Permissions = Permissions {
        control: true,
        clipboard: true,
    };
    /// These permissions with pointer and keyboard input allowed or not.
    #[must_use]
    pub const fn with_control(mut self, control: bool) -> Self {
        self.control = control;
        self
    }
    /// These permissions with clipboard text (both directions) allowed or not.
    #[must_use]
    pub const fn with_clipboard(mut self, clipboard: bool) -> Self {
        self.clipboard = clipboard;
        self
    }
}

/// A mouse button.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MouseButton {
    /// Primary.
    Left,
    /// Wheel click.
    Middle,
    /// Secondary.
    Right,
    /// Browser back.
    Back,
    /// Browser forward.
    Forward,
}

/// Input from the viewer, as the host's input sink receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum InputEvent {
    /// Pointer to a position, as fractions (0..=1) of the shared screen's width and height.
    PointerMove {
        /// Horizontal position.
        x: f32,
        /// Vertical position.
        y: f32,
    },
    /// A button pressed or released.
    PointerButton {
        /// The button.
        button: MouseButton,
        /// Pressed (true) or released.
        pressed: bool,
    },
    /// Wheel turned, in notches (positive: down / right).
    Wheel {
        /// Horizontal notches.
        dx: f32,
        /// Vertical notches.
        dy: f32,
    },
    /// A physical key pressed or released, named by its W3C `KeyboardEvent.code` (e.g. `"KeyA"`, `"Enter"`).
    Key {
        /// The key.
        code: String,
        /// Pressed (true) or released.
        pressed: bool,
    },
    /// Text to type as it is (IME results, pasted text).
    Text {
        /// The text as the other side sent it (at most the control protocol's size limit); escape it before printing it to a terminal.
        text: String,
    },
}

/// The cursor image, RGBA, base64-encoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorImageMessage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Hotspot column.
    pub hotspot_x: u32,
    /// Hotspot row.
    pub hotspot_y: u32,
    /// `width * height * 4` bytes of straight RGBA, base64.
    pub rgba: String,
}

impl CursorImageMessage {
    /// The image's straight RGBA pixels (`width * 4` bytes a row), or `None` when the sides are 0 or over
    /// [`MAX_CURSOR_SIDE`], or the text is not base64 of exactly `width * height * 4` bytes: an image from the
    /// other side is checked, never trusted.
    ///
    /// ```
    /// use peerdesk::control::CursorImageMessage;
    /// let image = CursorImageMessage { width: 1, height: 1, hotspot_x: 0, hotspot_y: 0, rgba: "AQIDBA==".into() };
    /// assert_eq!(image.pixels(), Some(vec![1, 2, 3, 4]));
    /// ```
    pub fn pixels(&self) -> Option<Vec<u8>> {
        use base64::Engine as _;
        let sides = 1..=MAX_CURSOR_SIDE;
        if !sides.contains(&self.width) || !sides.contains(&self.height) {
            return None;
        }
        let expected = self.width as usize * self.height as usize * 4;
        if self.rgba.len() > expected.div_ceil(3) * 4 {
            return None;
        }
        let pixels = base64::engine::general_purpose::STANDARD.decode(&self.rgba).ok()?;
        (pixels.len() == expected).then_some(pixels)
    }
}

/// Messages from the viewer to the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ViewerMessage {
    /// Clipboard text (needs the clipboard permission).
    Clipboard {
        /// The text as the other side sent it (at most the control protocol's size limit); escape it before printing it to a terminal.
        text: String,
    },
    /// A chat line.
    Chat {
        /// The text as the other side sent it (at most the control protocol's size limit); escape it before printing it to a terminal.
        text: String,
    },
    /// The viewer leaves.
    Leave {
        /// Why, in words for people; from the other side, so escape it before printing it to a terminal.
        reason: String,
    },
    /// Input (needs the control permission).
    #[serde(untagged)]
    Input(InputEvent),
}

/// Messages from the host to the viewer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HostMessage {
    /// Sent once the channel opens.
    Welcome {
        /// What the viewer may do.
        permissions: Permissions,
        /// Shared screen width.
        width: u32,
        /// Shared screen height.
        height: u32,
        /// The host's display name.
        host_name: String,
        /// A secret both sides present to the signaling server after it restarted, so that it pairs them again
        /// (256 random bits, base64; absent from older hosts). Only the two peers know it: it travels in this
        /// encrypted channel.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume_token: Option<String>,
    },
    /// The permissions changed.
    Permissions {
        /// The new permissions.
        permissions: Permissions,
    },
    /// Cursor position (fractions of the screen) and, when it changed, its image.
    Cursor {
        /// Horizontal position.
        x: f32,
        /// Vertical position.
        y: f32,
        /// Whether it is over the shared screen.
        visible: bool,
        /// The new image.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image: Option<CursorImageMessage>,
    },
    /// Clipboard text from the host.
    Clipboard {
        /// The text as the other side sent it (at most the control protocol's size limit); escape it before printing it to a terminal.
        text: String,
    },
    /// A chat line.
    Chat {
        /// The text as the other side sent it (at most the control protocol's size limit); escape it before printing it to a terminal.
        text: String,
    },
    /// A viewer message was refused.
    Error {
        /// Machine-readable reason.
        code: ControlErrorCode,
        /// The same, in words for people; from the other side, so escape it before printing it to a terminal.
        message: String,
    },
    /// The session ends.
    End {
        /// Why, in words for people; from the other side, so escape it before printing it to a terminal.
        reason: String,
    },
}

/// Why the host refused a control message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ControlErrorCode {
    /// Not a valid message.
    Malformed,
    /// Over the size limit.
    TooLarge,
    /// A version the host does not speak.
    UnsupportedVersion,
    /// The viewer lacks the permission.
    PermissionDenied,
    /// Too many messages.
    RateLimited,
    /// The host could not carry it out (e.g. no input sink).
    Unsupported,
}

/// Why a control message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ControlParseError {
    /// Over [`MAX_MESSAGE_BYTES`], or a field over its own limit.
    #[error("control message too large: {0}")]
    TooLarge(String),
    /// Not a valid message.
    #[error("malformed control message: {0}")]
    Malformed(String),
    /// Wrong version.
    #[error("unsupported control protocol version {0}")]
    UnsupportedVersion(u32),
}

impl ControlParseError {
    /// The code to answer with.
    pub fn code(&self) -> ControlErrorCode {
        match self {
            ControlParseError::TooLarge(_) => ControlErrorCode::TooLarge,
            ControlParseError::Malformed(_) => ControlErrorCode::Malformed,
            ControlParseError::UnsupportedVersion(_) => ControlErrorCode::UnsupportedVersion,
        }
    }
}

#[derive(Serialize)]
struct Out<'a, T> {
    v: u32,
    #[serde(flatten)]
    message: &'a T,
}

/// Encodes a message with its version.
pub fn encode<T: Serialize>(message: &T) -> String {
    serde_json::to_string(&Out {
        v: CONTROL_VERSION,
        message,
    })
    .expect("control messages always serialise")
}

fn check_version(bytes: &[u8]) -> Result<(), ControlParseError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(ControlParseError::TooLarge(format!("{} bytes", bytes.len())));
    }
    #[derive(Deserialize)]
    struct Versioned {
        v: Option<u32>,
    }
    let versioned: Versioned =
        serde_json::from_slice(bytes).map_err(|e| ControlParseError::Malformed(e.to_string()))?;
    match versioned.v {
        Some(CONTROL_VERSION) => Ok(()),
        Some(other) => Err(ControlParseError::UnsupportedVersion(other)),
        None => Err(ControlParseError::Malformed("missing field `v`".into())),
    }
}

fn text_limit(what: &str, text: &str, max: usize) -> Result<(), ControlParseError> {
    if text.len() > max {
        return Err(ControlParseError::TooLarge(format!(
            "{what} of {} bytes (limit {max})",
            text.len()
        )));
    }
    Ok(())
}

/// Parses and validates a viewer message.
pub fn parse_viewer_message(bytes: &[u8]) -> Result<ViewerMessage, ControlParseError> {
    check_version(bytes)?;
    let message: ViewerMessage =
        serde_json::from_slice(bytes).map_err(|e| ControlParseError::Malformed(e.to_string()))?;
    match &message {
        ViewerMessage::Input(InputEvent::PointerMove { x, y }) => {
            if !(x.is_finite() && y.is_finite() && (0.0..=1.0).contains(x) && (0.0..=1.0).contains(y)) {
                return Err(ControlParseError::Malformed(
                    "pointer position must be within 0..=1".into(),
                ));
            }
        }
        ViewerMessage::Input(InputEvent::Wheel { dx, dy }) => {
            if !(dx.is_finite() && dy.is_finite() && dx.abs() <= 100.0 && dy.abs() <= 100.0) {
                return Err(ControlParseError::Malformed(
                    "wheel notches must be within -100..=100".into(),
                ));
            }
        }
        ViewerMessage::Input(InputEvent::Key { code, .. }) => {
            if code.is_empty() || code.len() > 32 || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(ControlParseError::Malformed(
                    "key code must be a W3C KeyboardEvent.code".into(),
                ));
            }
        }
        ViewerMessage::Input(InputEvent::Text { text }) => text_limit("text", text, MAX_TEXT_BYTES)?,
        ViewerMessage::Clipboard { text } => text_limit("clipboard", text, MAX_CLIPBOARD_BYTES)?,
        ViewerMessage::Chat { text } => text_limit("chat", text, MAX_TEXT_BYTES)?,
        ViewerMessage::Leave { reason } => text_limit("reason", reason, 256)?,
        ViewerMessage::Input(InputEvent::PointerButton { .. }) => {}
    }
    Ok(message)
}

/// Parses a host message (viewer side).
pub fn parse_host_message(bytes: &[u8]) -> Result<HostMessage, ControlParseError> {
    check_version(bytes)?;
    serde_json::from_slice(bytes).map_err(|e| ControlParseError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewer_messages_round_trip_with_version() {
        let messages = [
            ViewerMessage::Input(InputEvent::PointerMove { x: 0.25, y: 1.0 }),
            ViewerMessage::Input(InputEvent::PointerButton {
                button: MouseButton::Left,
                pressed: true,
            }),
            ViewerMessage::Input(InputEvent::Key {
                code: "KeyA".into(),
                pressed: false,
            }),
            ViewerMessage::Input(InputEvent::Text { text: "héllo".into() }),
            ViewerMessage::Clipboard { text: "copied".into() },
            ViewerMessage::Leave { reason: "done".into() },
        ];
        for m in messages {
            let text = encode(&m);
            assert!(text.contains(r#""v":1"#), "{text}");
            assert_eq!(parse_viewer_message(text.as_bytes()).unwrap(), m);
        }
        assert_eq!(
            encode(&ViewerMessage::Input(InputEvent::PointerMove { x: 0.5, y: 0.5 })),
            r#"{"v":1,"type":"pointer_move","x":0.5,"y":0.5}"#
        );
    }

    #[test]
    fn bad_viewer_messages_are_typed_errors() {
        let cases: [(&[u8], ControlErrorCode); 7] = [
            (b"not json", ControlErrorCode::Malformed),
            (
                br#"{"type":"pointer_move","x":0.1,"y":0.1}"#,
                ControlErrorCode::Malformed,
            ),
            (
                br#"{"v":9,"type":"pointer_move","x":0.1,"y":0.1}"#,
                ControlErrorCode::UnsupportedVersion,
            ),
            (
                br#"{"v":1,"type":"pointer_move","x":1.5,"y":0.1}"#,
                ControlErrorCode::Malformed,
            ),
            (
                br#"{"v":1,"type":"key","code":"Key A; rm","pressed":true}"#,
                ControlErrorCode::Malformed,
            ),
            (br#"{"v":1,"type":"teleport"}"#, ControlErrorCode::Malformed),
            (
                br#"{"v":1,"type":"wheel","dx":0,"dy":1e9}"#,
                ControlErrorCode::Malformed,
            ),
        ];
        for (bytes, code) in cases {
            assert_eq!(
                parse_viewer_message(bytes).unwrap_err().code(),
                code,
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
        let big = encode(&ViewerMessage::Clipboard {
            text: "x".repeat(MAX_CLIPBOARD_BYTES + 1),
        });
        assert_eq!(
            parse_viewer_message(big.as_bytes()).unwrap_err().code(),
            ControlErrorCode::TooLarge
        );
        let huge = vec![b' '; MAX_MESSAGE_BYTES + 1];
        assert_eq!(
            parse_viewer_message(&huge).unwrap_err().code(),
            ControlErrorCode::TooLarge
        );
    }

    #[test]
    fn host_messages_round_trip() {
        let m = HostMessage::Welcome {
            permissions: Permissions::FULL,
            width: 1920,
            height: 1080,
            host_name: "desk".into(),
            resume_token: None,
        };
        assert_eq!(parse_host_message(encode(&m).as_bytes()).unwrap(), m);
        let e = HostMessage::Error {
            code: ControlErrorCode::PermissionDenied,
            message: "view only".into(),
        };
        assert_eq!(parse_host_message(encode(&e).as_bytes()).unwrap(), e);
    }
}
