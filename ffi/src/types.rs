//! Plain data crossing the boundary: configuration records with defaults, permissions, input, statistics, and
//! the conversions to and from the core's types.

use peerdesk::control as core_control;

/// What a viewer may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct Permissions {
    /// Pointer and keyboard input.
    #[uniffi(default = false)]
    pub control: bool,
    /// Clipboard text in both directions.
    #[uniffi(default = false)]
    pub clipboard: bool,
}

impl From<Permissions> for core_control::Permissions {
    fn from(p: Permissions) -> Self {
        core_control::Permissions::VIEW_ONLY
            .with_control(p.control)
            .with_clipboard(p.clipboard)
    }
}

impl From<core_control::Permissions> for Permissions {
    fn from(p: core_control::Permissions) -> Self {
        Permissions {
            control: p.control,
            clipboard: p.clipboard,
        }
    }
}

/// What the host shares.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum ScreenSource {
    /// The deterministic synthetic desktop (demos, tests).
    Synthetic {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// An X11 display (`None`: `$DISPLAY`), with XTest input.
    X11 {
        /// Display name, e.g. `":0"`.
        display: Option<String>,
    },
    /// Frames the app pushes with `Host.push_frame` (iOS ReplayKit, Android MediaProjection).
    Pushed {
        /// Initial width.
        width: u32,
        /// Initial height.
        height: u32,
    },
}

/// Settings of a host.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HostOptions {
    /// Signaling server WebSocket URL.
    pub server_url: String,
    /// Shown to viewers.
    #[uniffi(default = "peerdesk host")]
    pub name: String,
    /// Capture rate.
    #[uniffi(default = 30)]
    pub fps: u32,
    /// Highest bitrate, bit/s.
    #[uniffi(default = 4000000)]
    pub max_bitrate_bps: u32,
    /// Bind ICE to 127.0.0.1 only (sessions on one machine).
    #[uniffi(default = false)]
    pub loopback: bool,
    /// STUN/TURN URLs you operate (none by default).
    #[uniffi(default = [])]
    pub ice_servers: Vec<String>,
    /// Connect only through a TURN relay (default false): the other side never learns this machine's addresses.
    #[uniffi(default = false)]
    pub relay_only: bool,
    /// Extra CA certificate(s), PEM, trusted for a `wss://` server with a private CA (none by default; the
    /// webpki roots and the system's bundle are always trusted).
    #[uniffi(default = None)]
    pub trusted_ca_pem: Option<String>,
    /// Grant control and clipboard only after `Host.confirm_verification` (default false: at once).
    #[uniffi(default = false)]
    pub require_verification: bool,
    /// Unattended access: the device key file (created owner-only on first use). With `access_policy_path`,
    /// the host registers its device ID and technicians of the policy connect with their secret. Default none.
    #[uniffi(default = None)]
    pub device_key_path: Option<String>,
    /// Unattended access: the access policy file (see `add_technician_access`). Default none.
    #[uniffi(default = None)]
    pub access_policy_path: Option<String>,
}

/// Settings of a viewer.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ViewerOptions {
    /// Signaling server WebSocket URL.
    pub server_url: String,
    /// The session code (ignored with `device_id`).
    pub code: String,
    /// Shown to the host's user.
    #[uniffi(default = "peerdesk viewer")]
    pub name: String,
    /// Bind ICE to 127.0.0.1 only (sessions on one machine).
    #[uniffi(default = false)]
    pub loopback: bool,
    /// Decoded frames kept for a slow app (older ones are dropped and counted).
    #[uniffi(default = 3)]
    pub frame_queue: u32,
    /// STUN/TURN URLs you operate (none by default).
    #[uniffi(default = [])]
    pub ice_servers: Vec<String>,
    /// Connect only through a TURN relay (default false): the other side never learns this machine's addresses.
    #[uniffi(default = false)]
    pub relay_only: bool,
    /// Extra CA certificate(s), PEM, trusted for a `wss://` server with a private CA (none by default; the
    /// webpki roots and the system's bundle are always trusted).
    #[uniffi(default = None)]
    pub trusted_ca_pem: Option<String>,
    /// Unattended access: the nine-digit device ID to reach instead of a code (with `access` and `secret`).
    #[uniffi(default = None)]
    pub device_id: Option<String>,
    /// Unattended access: the technician access name.
    #[uniffi(default = None)]
    pub access: Option<String>,
    /// Unattended access: the access secret (never sent; proven with a PAKE).
    #[uniffi(default = None)]
    pub secret: Option<String>,
    /// Unattended access: the current TOTP code, when the access requires one.
    #[uniffi(default = None)]
    pub totp_code: Option<String>,
    /// A technician account of the server's operator (with `token`): the host's prompt says it is verified.
    #[uniffi(default = None)]
    pub account: Option<String>,
    /// The account's API token.
    #[uniffi(default = None)]
    pub token: Option<String>,
}

pub(crate) fn transport(
    loopback: bool,
    relay_only: bool,
    ice_servers: &[String],
) -> peerdesk::transport::TransportConfig {
    let mut config = if loopback {
        peerdesk::transport::TransportConfig::loopback()
    } else {
        peerdesk::transport::TransportConfig::default()
    };
    config.relay_only = relay_only;
    if !ice_servers.is_empty() {
        config.ice_servers.push(peerdesk::signaling::IceServer {
            urls: ice_servers.to_vec(),
            ..Default::default()
        });
    }
    config
}

/// A mouse button.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum MouseButton {
    /// Primary.
    Left,
    /// Wheel click.
    Middle,
    /// Secondary.
    Right,
    /// Back.
    Back,
    /// Forward.
    Forward,
}

/// Input from the viewer.
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum InputEvent {
    /// Pointer to a position, as fractions (0..=1) of the shared screen.
    PointerMove {
        /// Horizontal position, 0 (left edge) to 1 (right edge) of the shared screen.
        x: f32,
        /// Vertical position, 0 (top edge) to 1 (bottom edge) of the shared screen.
        y: f32,
    },
    /// A button pressed or released.
    PointerButton {
        /// The button.
        button: MouseButton,
        /// Pressed or released.
        pressed: bool,
    },
    /// Wheel notches.
    Wheel {
        /// Horizontal notches, positive to the right.
        dx: f32,
        /// Vertical notches, positive downwards.
        dy: f32,
    },
    /// A key by W3C `KeyboardEvent.code`.
    Key {
        /// e.g. `"KeyA"`.
        code: String,
        /// Pressed or released.
        pressed: bool,
    },
    /// Text to type.
    Text {
        /// The text as the other side sent it (at most the control protocol's size limit); escape it before printing it to a terminal.
        text: String,
    },
}

impl From<InputEvent> for core_control::InputEvent {
    fn from(e: InputEvent) -> Self {
        use core_control::MouseButton as B;
        match e {
            InputEvent::PointerMove { x, y } => core_control::InputEvent::PointerMove { x, y },
            InputEvent::PointerButton { button, pressed } => core_control::InputEvent::PointerButton {
                button: match button {
                    MouseButton::Left => B::Left,
                    MouseButton::Middle => B::Middle,
                    MouseButton::Right => B::Right,
                    MouseButton::Back => B::Back,
                    MouseButton::Forward => B::Forward,
                },
                pressed,
            },
            InputEvent::Wheel { dx, dy } => core_control::InputEvent::Wheel { dx, dy },
            InputEvent::Key { code, pressed } => core_control::InputEvent::Key { code, pressed },
            InputEvent::Text { text } => core_control::InputEvent::Text { text },
        }
    }
}

/// Connection figures of a viewer. Counters are totals since joining; rates cover the last second.
#[derive(Debug, Clone, Copy, PartialEq, uniffi::Record)]
pub struct ViewerStats {
    /// Round-trip time of the connection, ms (0 until measured).
    pub rtt_ms: f64,
    /// Received video bitrate over the last second, kbit/s.
    pub bitrate_kbps: f64,
    /// Decoded frames per second over the last second.
    pub fps: f64,
    /// Frames decoded.
    pub frames: u64,
    /// Frames dropped because the app took them too slowly (the frame queue was full).
    pub frames_dropped: u64,
    /// Video payload bytes received.
    pub bytes: u64,
    /// RTP packets the transport reports lost (before repair).
    pub packets_lost: i64,
    /// Keyframes received.
    pub keyframes: u64,
    /// Sequence numbers asked for again by NACK; a packet asked for twice counts twice.
    pub packets_nacked: u64,
    /// NACKed packets that came back in time.
    pub packets_recovered: u64,
    /// Keyframe requests (PLI) sent to the host.
    pub keyframe_requests: u64,
}

/// Host-side figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct HostStats {
    /// Viewers receiving video.
    pub viewers: u64,
    /// Frames encoded.
    pub frames_encoded: u64,
    /// Encoded bytes.
    pub bytes_encoded: u64,
    /// Target bitrate (slowest viewer), bit/s.
    pub target_bitrate_bps: u64,
    /// Mean encode time of the last frames, microseconds.
    pub encode_time_us: u64,
    /// Keyframes encoded (the first, and one per honoured keyframe request).
    pub keyframes_encoded: u64,
    /// Pushed frames replaced before they were encoded (app pushing faster than the capture rate).
    pub frames_replaced: u64,
}

/// The frame stamp the synthetic desktop draws, read back from a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct FrameStamp {
    /// Frame number at the source.
    pub frame_number: u32,
    /// Capture time, ms since the UNIX epoch modulo 2^32.
    pub capture_millis: u32,
}

/// Pixel layout of a pushed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum PushFormat {
    /// Blue, green, red, alpha.
    Bgra,
    /// Red, green, blue, alpha.
    Rgba,
}
