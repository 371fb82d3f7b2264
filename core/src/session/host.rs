//! The sharing side: one capture/encode thread feeds every admitted viewer; consent and permissions are decided
//! here and enforced on every control message.

use super::candidates::{add_candidates, RemoteCandidates};
use super::cursor::{next_update, CursorUpdate, ImageSent};
use super::lag::{FrameAction, LagRecovery};
use super::shared_bitrate::SharedBitrate;
use super::sleep_until_or_never;
use super::SessionError;
use crate::audit::{permission_names, AuditEvent, AuditFile, TextKind};
use crate::capture::ScreenSource;
use crate::control::permissions::ControlGate;
use crate::control::protocol::{encode, HostMessage, MAX_CLIPBOARD_BYTES, MAX_TEXT_BYTES};
use crate::control::{ControlErrorCode, InputEvent, Permissions, ViewerMessage, CHANNEL_LABEL};
use crate::encode::{Backend, ControllerConfig, Decision, EncoderConfig};
use crate::input::InputSink;
use crate::pipeline::EncodePipeline;
use crate::ratelimit::{FailureBackoff, TokenBucket};
use crate::session::event_queue::{event_queue, Droppable, EventReceiver, EventSender};
use crate::session::reconnect::{Backoff, PathChange, PathState, ReconnectAction, Reconnector};
use crate::session::verification::{permissions_in_force, sdp_fingerprint};
use crate::signaling::{
    ClientMessage, ServerMessage, SignalPayload, SignalingClient, SignalingSender, SignalingTls, VerifiedIdentity,
    PROTOCOL_VERSION,
};
use crate::transport::peer::{new_peer, PeerEvent};
use crate::transport::stats::{fill_from_report, ConnectionStats};
use crate::transport::video_send::{new_video_track, Av1RtpSender};
use crate::transport::{TransportConfig, TransportError};
use crate::unattended::handshake::{Confirm, HostHandshake};
use crate::unattended::{DeviceId, UnattendedConfig};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelInit};
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::StatsSelector;
use webrtc::peer_connection::{PeerConnection, RTCIceCandidateInit, RTCPeerConnectionState, RTCSessionDescription};

/// A viewer's identifier within a host (the signaling server's peer id).
pub type ViewerId = String;

/// Settings of a [`Host`], built with [`HostConfig::new`] and its setters; each setter says its default and range.
///
/// ```
/// use peerdesk::session::HostConfig;
/// use std::time::Duration;
///
/// let config = HostConfig::new("wss://support.example/ws")
///     .name("Front desk PC")
///     .fps(15)
///     .max_bitrate(2_000_000)
///     .connect_timeout(Duration::from_secs(5))
///     .require_verification(true);
/// # let _ = config;
/// ```
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The signaling server's WebSocket URL.
    pub(crate) server_url: String,
    /// Shown to viewers.
    pub(crate) name: String,
    /// Network settings.
    pub(crate) transport: TransportConfig,
    /// Encoder backend.
    pub(crate) backend: Backend,
    /// Capture rate.
    pub(crate) fps: u32,
    /// Highest video bitrate, bit/s (congestion control may ask for less).
    pub(crate) max_bitrate_bps: u32,
    /// Encoder threads.
    pub(crate) threads: usize,
    /// How long to wait for the server to answer.
    pub(crate) connect_timeout: Duration,
    /// Which servers a `wss://` signaling URL may present certificates from (default: the webpki roots and
    /// the system's bundle).
    pub(crate) tls: SignalingTls,
    /// Control and clipboard only after the host's user confirmed the session's verification code (see
    /// [`HostConfig::require_verification`]). Default: off.
    pub(crate) require_verification: bool,
    /// Where the session's audit trail is written (see [`crate::audit`]); none by default.
    pub(crate) audit_log: Option<std::path::PathBuf>,
    /// Unattended access (see [`crate::unattended`]); none by default.
    pub(crate) unattended: Option<UnattendedConfig>,
}

impl HostConfig {
    /// Settings for a host that registers with the signaling server at `server_url` (`wss://` in production;
    /// `ws://` only on a trusted network), with every default: 30 fps, up to 4 Mbit/s, 2 encoder threads, the
    /// interactive encoder, no ICE server, no verification requirement, no audit trail, no unattended access.
    #[must_use]
    pub fn new(server_url: impl Into<String>) -> Self {
        HostConfig {
            server_url: server_url.into(),
            name: "peerdesk host".into(),
            transport: TransportConfig::default(),
            backend: Backend::default_interactive(),
            fps: 30,
            max_bitrate_bps: 4_000_000,
            threads: 2,
            connect_timeout: Duration::from_secs(10),
            tls: SignalingTls::default(),
            require_verification: false,
            audit_log: None,
            unattended: None,
        }
    }
    /// Offers unattended access: the host registers its device ID with the signaling server, and technicians
    /// of `config`'s policy connect with their secret (and TOTP code) — without a prompt, unless their access
    /// says the customer is asked. Default: none (attended sessions only).
    ///
    /// ```
    /// use peerdesk::session::HostConfig;
    /// use peerdesk::unattended::{AccessPolicy, DeviceIdentity, TechnicianAccess, UnattendedConfig};
    ///
    /// let policy = AccessPolicy::new().with(TechnicianAccess::new("alex", "correct horse battery")?);
    /// let config = HostConfig::new("wss://support.example/ws")
    ///     .unattended(UnattendedConfig::new(DeviceIdentity::generate()?, policy));
    /// # let _ = config;
    /// # Ok::<(), peerdesk::unattended::UnattendedError>(())
    /// ```
    #[must_use]
    pub fn unattended(mut self, config: UnattendedConfig) -> Self {
        self.unattended = Some(config);
        self
    }
    /// Writes the session's audit trail to `path` — hash-chained JSON lines, created (or truncated) with
    /// owner-only permissions: join requests, consent, verification, permission changes, input counts per minute,
    /// chat and clipboard sizes and hashes (never their text), reconnects, the end. `peerdesk audit verify PATH`
    /// checks it. Default: no audit trail.
    ///
    /// [`Host::start`] fails with [`SessionError::InvalidArgument`] when the file cannot be created.
    #[must_use]
    pub fn audit_log(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.audit_log = Some(path.into());
        self
    }
    /// With `true`, an admitted viewer watches at once but gets the control and clipboard permissions it was
    /// granted only after the host app calls [`Host::confirm_verification`] — which it should do when its user
    /// has compared the six-digit code of [`HostEvent::VerificationCode`] with the one the technician reads out
    /// from their screen. Equal codes prove that no signaling server or relay sits in the middle of the
    /// encrypted connection. Default: `false` (permissions apply at once; the code is still shown).
    #[must_use]
    pub fn require_verification(mut self, required: bool) -> Self {
        self.require_verification = required;
        self
    }
    /// The name viewers see for this host, e.g. the computer's or the customer's name (sent as typed; the viewer
    /// shows it as unverified). Default: `"peerdesk host"`; at most 64 characters are kept.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into().chars().take(64).collect();
        self
    }
    /// Network settings: ICE servers you operate, loopback-only binding, relay-only, congestion control.
    /// Default: [`TransportConfig::default`] (no STUN/TURN server, every local interface, congestion control on).
    #[must_use]
    pub fn transport(mut self, transport: TransportConfig) -> Self {
        self.transport = transport;
        self
    }
    /// The AV1 encoder. Default: [`Backend::default_interactive`] (libaom's realtime mode where it is built in,
    /// rav1e otherwise).
    #[must_use]
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }
    /// Frames captured per second, 1–60 (values outside are clamped). Default: 30. A still screen costs almost
    /// nothing at any rate: unchanged frames are not encoded.
    #[must_use]
    pub fn fps(mut self, fps: u32) -> Self {
        self.fps = fps.clamp(1, 60);
        self
    }
    /// The highest video bitrate in bit/s, 100 kbit/s – 50 Mbit/s (clamped); congestion control may ask for less.
    /// Default: 4,000,000.
    #[must_use]
    pub fn max_bitrate(mut self, bps: u32) -> Self {
        self.max_bitrate_bps = bps.clamp(100_000, 50_000_000);
        self
    }
    /// Encoder threads, 1–16 (clamped). Default: 2.
    #[must_use]
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads.clamp(1, 16);
        self
    }
    /// How long [`Host::start`] waits for the signaling server to answer before it fails with
    /// [`SessionError::Timeout`]. Default: 10 s.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
    /// Also trusts the CA certificate(s) in `pem` for a `wss://` signaling server with a private CA.
    /// Default: only the webpki roots and the system's bundle.
    #[must_use]
    pub fn trust_ca_pem(mut self, pem: impl Into<String>) -> Self {
        self.tls = self.tls.trust_pem(pem);
        self
    }
}

/// The host user's answer to a join request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consent {
    /// Refuse, with a reason shown to the viewer.
    Deny(String),
    /// Admit with these permissions.
    Allow(Permissions),
}

/// A viewer asks to join; answer with [`JoinRequest::answer`]. Dropping it unanswered denies.
#[derive(Debug)]
pub struct JoinRequest {
    /// Who asks.
    pub viewer: ViewerId,
    /// The name they typed: not verified by anyone, so show it as such. Control, format and bidi-override
    /// characters are removed.
    pub name: String,
    /// The technician account the signaling server's operator verified (the viewer signed in), or `None`: then
    /// `name` is only what the other side typed, and the prompt must say so.
    pub verified: Option<VerifiedIdentity>,
    /// What the viewer asks for (the app decides what to grant).
    pub asks: Permissions,
    /// For an unattended request of an access whose policy asks the customer: the access name the technician
    /// claims. Admitting starts the handshake that proves it; a wrong secret still ends the session. `None` for
    /// attended requests (by session code).
    pub unattended_access: Option<String>,
    /// The session code the viewer joined with (part of the verification code's input).
    session_code: String,
    reply: Option<mpsc::UnboundedSender<Command>>,
}

impl JoinRequest {
    /// The request in plain words for a prompt, with the name escaped of nothing (it is already free of control
    /// and bidi characters) and marked as verified or not:
    /// `"Alex (verified by Example Support) asks to see your screen and use your mouse and keyboard."` or
    /// `"\"Alex\" (name not verified) asks to see your screen."`
    pub fn describe(&self) -> String {
        let who = match &self.verified {
            Some(v) => format!("{} (verified by {})", v.account, v.operator),
            None => format!("\"{}\" (name not verified)", self.name),
        };
        let mut wants = vec!["see your screen"];
        if self.asks.control {
            wants.push("use your mouse and keyboard");
        }
        if self.asks.clipboard {
            wants.push("read and write your clipboard");
        }
        let wants = match wants.split_last() {
            Some((last, [])) => last.to_string(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
            None => String::new(),
        };
        let how = match &self.unattended_access {
            Some(access) => format!(" with unattended access \"{access}\""),
            None => String::new(),
        };
        format!("{who} asks{how} to {wants}.")
    }

    /// Answers the request.
    pub fn answer(mut self, consent: Consent) {
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(Command::Consent {
                viewer: self.viewer.clone(),
                name: self.name.clone(),
                session_code: std::mem::take(&mut self.session_code),
                access: self.unattended_access.take(),
                consent,
            });
        }
    }
}

impl Drop for JoinRequest {
    fn drop(&mut self) {
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(Command::Consent {
                viewer: self.viewer.clone(),
                name: self.name.clone(),
                session_code: String::new(),
                access: None,
                consent: Consent::Deny("the host did not answer".into()),
            });
        }
    }
}

/// What happens in a hosted session.
#[derive(Debug)]
#[non_exhaustive]
pub enum HostEvent {
    /// A viewer asks to join.
    JoinRequest(JoinRequest),
    /// The verification code of an admitted viewer's connection, sent just before
    /// [`HostEvent::ViewerConnected`]. Show it to the user and ask whether the technician reads the same six
    /// digits from their screen; if so, call [`Host::confirm_verification`]. Different codes mean someone sits
    /// in the middle of the connection: disconnect that viewer.
    VerificationCode {
        /// The viewer's id, unique within this host's session.
        viewer: ViewerId,
        /// Six digits in two groups, e.g. `"042 917"`.
        code: String,
    },
    /// A technician proved an unattended access (secret, and TOTP code when required); their connection
    /// follows. Sent before [`HostEvent::ViewerConnected`].
    UnattendedAccess {
        /// The viewer's id, unique within this host's session.
        viewer: ViewerId,
        /// The access name they proved.
        access: String,
    },
    /// Unattended attempts failed this many times in a row (sent after
    /// [`UnattendedConfig::alert_after`](crate::unattended::UnattendedConfig::alert_after) failures, and at each
    /// further one): someone may be guessing. Attempts wait `retry_after` before the host considers the next.
    AccessFailures {
        /// Failures in a row.
        failures: u32,
        /// The wait now imposed.
        retry_after: Duration,
    },
    /// An admitted viewer's connection is up.
    ViewerConnected {
        /// The viewer's id, unique within this host's session.
        viewer: ViewerId,
        /// Their name.
        name: String,
    },
    /// A viewer's connection was lost (network cut, address change); the session tries to restore it for up to
    /// [`RECONNECT_WINDOW`](crate::session::RECONNECT_WINDOW), restarting ICE. Video and control pause.
    ViewerReconnecting {
        /// The viewer's id, unique within this host's session.
        viewer: ViewerId,
    },
    /// A lost connection is back; video and control go on where they were.
    ViewerReconnected {
        /// The viewer's id, unique within this host's session.
        viewer: ViewerId,
    },
    /// The signaling connection was lost and is back (the server restarted, a proxy dropped the connection):
    /// connected viewers never noticed, and new viewers join with this new code — the earlier codes died with
    /// the old connection. Until then, the host retries with a growing wait (1 s to 30 s).
    SignalingRestored {
        /// The new one-time code.
        code: String,
    },
    /// A viewer left or was disconnected.
    ViewerLeft {
        /// The viewer's id, unique within this host's session.
        viewer: ViewerId,
        /// Why, in words for people; from the other side, so escape it before printing it to a terminal.
        reason: String,
    },
    /// A viewer sent clipboard text (they hold the clipboard permission).
    Clipboard {
        /// The viewer's id, unique within this host's session.
        viewer: ViewerId,
        /// The text as the other side sent it (at most the control protocol's size limit); escape it before printing it to a terminal.
        text: String,
    },
    /// A viewer sent a chat line.
    Chat {
        /// The viewer's id, unique within this host's session.
        viewer: ViewerId,
        /// The text as the other side sent it (at most the control protocol's size limit); escape it before printing it to a terminal.
        text: String,
    },
    /// A viewer's message was refused (e.g. input without the control permission).
    Refused {
        /// The viewer's id, unique within this host's session.
        viewer: ViewerId,
        /// Why, as a code to branch on.
        code: ControlErrorCode,
    },
    /// The session ended.
    Ended {
        /// Why, in words for people; from the other side, so escape it before printing it to a terminal.
        reason: String,
    },
}

impl Droppable for HostEvent {
    fn droppable(&self) -> bool {
        matches!(
            self,
            HostEvent::Clipboard { .. } | HostEvent::Chat { .. } | HostEvent::Refused { .. }
        )
    }
}

/// Host-side figures.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct HostStats {
    /// Viewers receiving video.
    pub viewers: usize,
    /// Frames encoded.
    pub frames_encoded: u64,
    /// Encoded bytes.
    pub bytes_encoded: u64,
    /// The bitrate the encoder targets (the slowest viewer's estimate), bit/s.
    pub target_bitrate_bps: u64,
    /// Mean encode time of the last frames, microseconds.
    pub encode_time_us: u64,
    /// Keyframes encoded (the first, and one per honoured keyframe request).
    pub keyframes_encoded: u64,
}

#[derive(Debug, Default)]
struct Counters {
    watchers: AtomicUsize,
    frames: AtomicU64,
    bytes: AtomicU64,
    target_bitrate: AtomicU64,
    encode_time_us: AtomicU64,
    keyframes: AtomicU64,
}

enum Command {
    Consent {
        viewer: ViewerId,
        name: String,
        session_code: String,
        access: Option<String>,
        consent: Consent,
    },
    ConfirmVerification {
        viewer: ViewerId,
    },
    SetPermissions {
        viewer: ViewerId,
        permissions: Permissions,
    },
    Disconnect {
        viewer: ViewerId,
        reason: String,
    },
    Clipboard(String),
    Chat(String),
    Invite(oneshot::Sender<Result<String, SessionError>>),
    MaxBitrate(u32),
    End {
        reason: String,
        done: oneshot::Sender<()>,
    },
}

/// A frame ready to packetize.
#[derive(Debug, Clone)]
struct OutFrame {
    data: Bytes,
    encoded_at: Instant,
    /// When its picture was captured, on the source's clock: travels to the viewer's decoded frame.
    captured: Duration,
    keyframe: bool,
}

enum EncoderCommand {
    Keyframe,
    Bitrate(u32),
    Stop,
}

/// Shares a screen with viewers who join by code and whom the host user admits.
pub struct Host {
    code: String,
    commands: mpsc::UnboundedSender<Command>,
    events: Option<EventReceiver<HostEvent>>,
    counters: Arc<Counters>,
    screen: (u32, u32),
    device_id: Option<DeviceId>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host").field("screen", &self.screen).finish()
    }
}

fn timeout_err(what: &'static str) -> impl FnOnce(tokio::time::error::Elapsed) -> SessionError {
    move |_| SessionError::Timeout(what)
}

impl Host {
    /// Connects to the signaling server, obtains a session code and starts the capture/encode thread (which
    /// captures only while a viewer watches). `input` carries out permitted viewer input.
    pub async fn start(
        config: HostConfig,
        source: Box<dyn ScreenSource>,
        input: Option<Box<dyn InputSink>>,
    ) -> Result<Host, SessionError> {
        let (width, height) = source.size();
        let encoder_config = EncoderConfig::new(width, height)
            .fps(config.fps)
            .bitrate(config.max_bitrate_bps)
            .threads(config.threads);
        encoder_config
            .validate()
            .map_err(|e| SessionError::InvalidArgument(e.to_string()))?;
        let mut client = SignalingClient::connect_with(&config.server_url, &config.tls).await?;
        client.send(first_registration(config.unattended.as_ref())).await?;
        let (code, ice_servers, host_peer) = loop {
            let message = tokio::time::timeout(config.connect_timeout, client.recv())
                .await
                .map_err(timeout_err("the signaling server"))?
                .ok_or(SessionError::Signaling(crate::signaling::SignalingError::Closed))?;
            match message {
                ServerMessage::Registered {
                    code,
                    ice_servers,
                    peer,
                    device,
                    ..
                } => {
                    let expected = config.unattended.as_ref().map(|u| u.device_id().as_str().to_string());
                    if expected.is_some() && device != expected {
                        return Err(SessionError::InvalidArgument(
                            "the signaling server did not register this host's device ID (does it support unattended access?)"
                                .into(),
                        ));
                    }
                    break (code, ice_servers, peer);
                }
                ServerMessage::DeviceChallenge { nonce, .. } => {
                    client
                        .send(device_registration(config.unattended.as_ref(), &nonce)?)
                        .await?
                }
                ServerMessage::Error {
                    code,
                    message,
                    retry_after_secs,
                    ..
                } => return Err(SessionError::from_server(code, message, retry_after_secs)),
                _ => continue,
            }
        };
        let mut transport = config.transport.clone();
        transport.ice_servers.extend(ice_servers);
        let audit = match &config.audit_log {
            Some(path) => {
                let mut file = AuditFile::create(path, &host_peer).map_err(|e| {
                    SessionError::InvalidArgument(format!("cannot create the audit log {}: {e}", path.display()))
                })?;
                file.write(&AuditEvent::SessionStarted {
                    host_name: config.name.clone(),
                });
                Some(file)
            }
            None => None,
        };

        let counters = Arc::new(Counters::default());
        counters
            .target_bitrate
            .store(u64::from(config.max_bitrate_bps), Ordering::Relaxed);
        let (frames_tx, _) = broadcast::channel::<OutFrame>(16);
        let (cursor_tx, cursor_rx) = watch::channel::<Option<CursorUpdate>>(None);
        let (encoder_tx, encoder_rx) = std::sync::mpsc::channel::<EncoderCommand>();
        let controller = ControllerConfig {
            fps: config.fps,
            keep_alive: Some(Duration::from_secs(1)),
            ..Default::default()
        };
        let pipeline = EncodePipeline::new(config.backend, encoder_config, controller)
            .map_err(|e| SessionError::InvalidArgument(e.to_string()))?;
        {
            let frames_tx = frames_tx.clone();
            let counters = counters.clone();
            let fps = config.fps;
            std::thread::Builder::new()
                .name("peerdesk-encode".into())
                .spawn(move || encode_thread(source, pipeline, fps, encoder_rx, frames_tx, cursor_tx, counters))
                .map_err(|e| SessionError::InvalidArgument(format!("cannot start the encode thread: {e}")))?;
        }
        let input_tx = input.map(|sink| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<InputCommand>(INPUT_QUEUE);
            let _ = std::thread::Builder::new()
                .name("peerdesk-input".into())
                .spawn(move || input_thread(sink, rx));
            tx
        });

        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = event_queue();
        let (sender, incoming) = client.split();
        let shared = Shared {
            signaling: SignalingLink(std::sync::Mutex::new(sender)),
            server_url: config.server_url.clone(),
            tls: config.tls.clone(),
            transport,
            host_name: config.name.clone(),
            screen: (width, height),
            frames: frames_tx,
            cursor: cursor_rx,
            encoder: encoder_tx,
            input: input_tx,
            counters: counters.clone(),
            max_bitrate: config.max_bitrate_bps,
            require_verification: config.require_verification,
            unattended: config.unattended.clone(),
        };
        tokio::spawn(run_host(
            shared,
            audit,
            code.clone(),
            incoming,
            commands_rx,
            commands_tx.clone(),
            events_tx,
        ));
        tracing::info!(width, height, "hosting; session code issued");
        Ok(Host {
            code,
            commands: commands_tx,
            events: Some(events_rx),
            counters,
            screen: (width, height),
            device_id: config.unattended.as_ref().map(UnattendedConfig::device_id),
        })
    }

    /// With unattended access: the device ID technicians reach this host by, registered with the signaling
    /// server (which checked this host's key).
    pub fn device_id(&self) -> Option<&DeviceId> {
        self.device_id.as_ref()
    }

    /// The one-time session code to tell the viewer.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// Width and height of the shared screen.
    pub fn screen_size(&self) -> (u32, u32) {
        self.screen
    }

    /// Issues another one-time code, for another viewer.
    pub async fn invite(&self) -> Result<String, SessionError> {
        self.invite_future().await
    }

    /// Like [`Host::invite`], as a future that does not borrow the host.
    pub fn invite_future(&self) -> impl std::future::Future<Output = Result<String, SessionError>> + Send + 'static {
        let commands = self.commands.clone();
        async move {
            let (tx, rx) = oneshot::channel();
            commands
                .send(Command::Invite(tx))
                .map_err(|_| SessionError::Ended("host stopped".into()))?;
            tokio::time::timeout(Duration::from_secs(10), rx)
                .await
                .map_err(timeout_err("a new code"))?
                .map_err(|_| SessionError::Ended("host stopped".into()))?
        }
    }

    /// The next event; `None` after the session ended (or once the events were taken).
    pub async fn next_event(&mut self) -> Option<HostEvent> {
        self.events.as_mut()?.recv().await
    }

    /// Takes the event stream, for an app that consumes events on a task or thread of its own while it keeps
    /// calling the host's other methods. Later calls (and `next_event`) get `None`. The queue is bounded: see
    /// [`EventReceiver`] for what is dropped when the app does not keep up.
    pub fn take_events(&mut self) -> Option<EventReceiver<HostEvent>> {
        self.events.take()
    }

    /// Changes a viewer's permissions; they apply to the next message it sends.
    pub fn set_permissions(&self, viewer: &ViewerId, permissions: Permissions) {
        let _ = self.commands.send(Command::SetPermissions {
            viewer: viewer.clone(),
            permissions,
        });
    }

    /// Records that the host's user compared this viewer's verification code ([`HostEvent::VerificationCode`])
    /// with the technician's and found them equal. With [`HostConfig::require_verification`] on, the viewer's
    /// granted control and clipboard permissions apply from now on (the viewer is told); without it, this only
    /// marks the session as verified. Unknown viewers are ignored.
    pub fn confirm_verification(&self, viewer: &ViewerId) {
        let _ = self
            .commands
            .send(Command::ConfirmVerification { viewer: viewer.clone() });
    }

    /// Disconnects one viewer.
    pub fn disconnect(&self, viewer: &ViewerId, reason: impl Into<String>) {
        let _ = self.commands.send(Command::Disconnect {
            viewer: viewer.clone(),
            reason: reason.into(),
        });
    }

    /// Sends clipboard text to every viewer holding the clipboard permission.
    pub fn send_clipboard(&self, text: impl Into<String>) -> Result<(), SessionError> {
        let text = text.into();
        if text.len() > MAX_CLIPBOARD_BYTES {
            return Err(SessionError::InvalidArgument(format!(
                "clipboard text over {MAX_CLIPBOARD_BYTES} bytes"
            )));
        }
        self.commands
            .send(Command::Clipboard(text))
            .map_err(|_| SessionError::Ended("host stopped".into()))
    }

    /// Sends a chat line to every viewer.
    pub fn send_chat(&self, text: impl Into<String>) -> Result<(), SessionError> {
        let text = text.into();
        if text.len() > MAX_TEXT_BYTES {
            return Err(SessionError::InvalidArgument(format!(
                "chat text over {MAX_TEXT_BYTES} bytes"
            )));
        }
        self.commands
            .send(Command::Chat(text))
            .map_err(|_| SessionError::Ended("host stopped".into()))
    }

    /// Changes the highest video bitrate (congestion control may still ask for less); the encoder follows at
    /// once.
    pub fn set_max_bitrate(&self, bps: u32) -> Result<(), SessionError> {
        if !(10_000..=100_000_000).contains(&bps) {
            return Err(SessionError::InvalidArgument(format!(
                "bitrate {bps} outside 10 kbit/s..=100 Mbit/s"
            )));
        }
        self.commands
            .send(Command::MaxBitrate(bps))
            .map_err(|_| SessionError::Ended("host stopped".into()))
    }

    /// Current figures.
    pub fn stats(&self) -> HostStats {
        HostStats {
            viewers: self.counters.watchers.load(Ordering::Relaxed),
            frames_encoded: self.counters.frames.load(Ordering::Relaxed),
            bytes_encoded: self.counters.bytes.load(Ordering::Relaxed),
            target_bitrate_bps: self.counters.target_bitrate.load(Ordering::Relaxed),
            encode_time_us: self.counters.encode_time_us.load(Ordering::Relaxed),
            keyframes_encoded: self.counters.keyframes.load(Ordering::Relaxed),
        }
    }

    /// Ends the session for everyone, telling viewers `reason`.
    pub async fn end(self, reason: impl Into<String>) {
        let (done_tx, done_rx) = oneshot::channel();
        if self
            .commands
            .send(Command::End {
                reason: reason.into(),
                done: done_tx,
            })
            .is_ok()
        {
            let _ = tokio::time::timeout(Duration::from_secs(5), done_rx).await;
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let (done, _) = oneshot::channel();
        let _ = self.commands.send(Command::End {
            reason: "the host stopped sharing".into(),
            done,
        });
    }
}

fn encode_thread(
    mut source: Box<dyn ScreenSource>,
    mut pipeline: EncodePipeline,
    fps: u32,
    commands: std::sync::mpsc::Receiver<EncoderCommand>,
    frames: broadcast::Sender<OutFrame>,
    cursor: watch::Sender<Option<CursorUpdate>>,
    counters: Arc<Counters>,
) {
    let interval = Duration::from_secs_f64(1.0 / f64::from(fps.max(1)));
    let started = Instant::now();
    let mut next_tick = Instant::now();
    let mut packets = Vec::new();
    let mut encode_times: VecDeque<u64> = VecDeque::with_capacity(32);
    let mut tick = 0u64;
    // Two grabs of burst: a screen that changes at `fps` is grabbed right after each change, whatever the phase.
    let mut grabs = TokenBucket::new(2.0, f64::from(fps.max(1)), started);
    let (width, height) = source.size();
    loop {
        loop {
            match commands.try_recv() {
                Ok(EncoderCommand::Keyframe) => pipeline.request_keyframe(),
                Ok(EncoderCommand::Bitrate(bps)) => {
                    if let Err(e) = pipeline.set_bitrate(bps) {
                        tracing::warn!("bitrate change refused: {e}");
                    }
                }
                Ok(EncoderCommand::Stop) | Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
            }
        }
        if counters.watchers.load(Ordering::Relaxed) == 0 {
            crate::capture::sleep_until(next_tick);
            next_tick = Instant::now() + interval;
            continue; // nobody watches: no capture, no encode
        }
        // At most `fps` grabs a second on average, each as soon as the screen changes (sources that can tell wake
        // us), else at the next tick (sources that cannot; the controller's timed work on a still screen). Waking
        // on change keeps the grab just behind the application's drawing instead of up to an interval later.
        crate::capture::sleep_until(grabs.available_at(Instant::now()));
        let changed = match source.wait_for_change(next_tick) {
            Ok(changed) => changed,
            Err(e) if e.is_final() => {
                tracing::info!("screen source ended ({e}); stopping capture");
                return;
            }
            Err(e) => {
                tracing::warn!("waiting for screen changes failed: {e}");
                crate::capture::sleep_until(next_tick);
                false
            }
        };
        let now = Instant::now();
        if changed {
            next_tick = now + interval;
        }
        while next_tick <= now {
            next_tick += interval;
        }
        tick += 1;
        let captured = match source.capture() {
            Ok(c) => c,
            Err(e) if e.is_final() => {
                tracing::info!("screen source ended ({e}); stopping capture");
                return;
            }
            Err(e) => {
                tracing::warn!("capture failed: {e}");
                None
            }
        };
        if changed || captured.is_some() {
            grabs.try_take(now);
        }
        let report = match pipeline.tick(started.elapsed(), captured, &mut packets) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("encode failed: {e}");
                pipeline.request_keyframe();
                continue;
            }
        };
        if report.decision != Decision::Skip {
            encode_times.push_back(report.encode_time.as_micros() as u64);
            if encode_times.len() > 30 {
                encode_times.pop_front();
            }
            let mean = encode_times.iter().sum::<u64>() / encode_times.len() as u64;
            counters.encode_time_us.store(mean, Ordering::Relaxed);
        }
        let encoded_at = Instant::now();
        if !packets.is_empty() {
            tracing::trace!(
                decision = ?report.decision,
                drain_repeats = report.drain_repeats,
                bytes = packets.iter().map(|p| p.data.len()).sum::<usize>(),
                "encoded"
            );
        }
        for packet in packets.drain(..) {
            counters.frames.fetch_add(1, Ordering::Relaxed);
            counters.bytes.fetch_add(packet.data.len() as u64, Ordering::Relaxed);
            if packet.keyframe {
                counters.keyframes.fetch_add(1, Ordering::Relaxed);
            }
            let _ = frames.send(OutFrame {
                data: packet.data,
                encoded_at,
                captured: packet.timestamp,
                keyframe: packet.keyframe,
            });
        }
        if tick % 2 == 0 {
            if let Ok(Some(state)) = source.cursor() {
                cursor.send_if_modified(|current| match next_update(&state, (width, height), current.as_ref()) {
                    Some(update) => {
                        *current = Some(update);
                        true
                    }
                    None => false,
                });
            }
        }
    }
}

pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Base64 from the other side, at most 4 KiB of it (every handshake field is far smaller).
pub(crate) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    (text.len() <= 4096)
        .then(|| base64::engine::general_purpose::STANDARD.decode(text).ok())
        .flatten()
}

/// Input events waiting for the input thread; when full, new events are dropped (a viewer sending faster than
/// the desktop takes them loses the excess, not the host its memory).
const INPUT_QUEUE: usize = 256;

/// What the input thread is asked to do.
enum InputCommand {
    /// Inject `event` if `allowed` still holds when its turn comes: a revoke clears it, so events queued before
    /// the revoke are not injected after it.
    Inject {
        event: InputEvent,
        allowed: Arc<AtomicBool>,
    },
    /// Let go of every key and button injected input still holds (control revoked, viewer gone).
    ReleaseAll,
}

fn input_thread(mut sink: Box<dyn InputSink>, commands: std::sync::mpsc::Receiver<InputCommand>) {
    let mut held = crate::input::PressedInputs::new();
    while let Ok(command) = commands.recv() {
        match command {
            InputCommand::Inject { event, allowed } => {
                if !allowed.load(Ordering::Acquire) {
                    continue;
                }
                match sink.inject(&event) {
                    Ok(()) => held.observe(&event),
                    Err(e) => tracing::debug!("input not injected: {e}"),
                }
            }
            InputCommand::ReleaseAll => {
                for event in held.release_all() {
                    if let Err(e) = sink.inject(&event) {
                        tracing::debug!("release not injected: {e}");
                    }
                }
            }
        }
    }
}

/// The current signaling connection's sending side; replaced when the host reconnects.
struct SignalingLink(std::sync::Mutex<SignalingSender>);

impl SignalingLink {
    async fn send(&self, message: ClientMessage) -> Result<(), crate::signaling::SignalingError> {
        let sender = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        sender.send(message).await
    }

    fn replace(&self, sender: SignalingSender) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = sender;
    }
}

struct Shared {
    signaling: SignalingLink,
    /// Where and how to reach the signaling server again.
    server_url: String,
    tls: SignalingTls,
    transport: TransportConfig,
    host_name: String,
    screen: (u32, u32),
    frames: broadcast::Sender<OutFrame>,
    cursor: watch::Receiver<Option<CursorUpdate>>,
    encoder: std::sync::mpsc::Sender<EncoderCommand>,
    input: Option<std::sync::mpsc::SyncSender<InputCommand>>,
    counters: Arc<Counters>,
    max_bitrate: u32,
    require_verification: bool,
    unattended: Option<UnattendedConfig>,
}

enum ToViewer {
    Signal(SignalPayload),
    /// The viewer's connection to the signaling server has a new peer id (the session was resumed).
    Readdress(crate::signaling::PeerId),
    SetPermissions(Permissions),
    Verified,
    Clipboard(String),
    Chat(String),
    End(String),
}

/// Notes from the viewer tasks to the host's loop. Chat, clipboard, refusals and bitrate estimates are dropped when
/// it is full (a flooding viewer loses its own messages); lifecycle notes wait for room.
const FROM_VIEWERS_QUEUE: usize = 1024;
/// Messages from the host's loop to one viewer's task; when full, the message is dropped and logged (the loop
/// never waits for one viewer).
const TO_VIEWER_QUEUE: usize = 256;

/// Control-channel events and RTCP waiting for one viewer's task.
const VIEWER_INPUT_QUEUE: usize = 256;

fn to_viewer(tx: &mpsc::Sender<ToViewer>, message: ToViewer) {
    if tx.try_send(message).is_err() {
        tracing::warn!("a viewer's task is not keeping up; message dropped");
    }
}

enum FromViewer {
    VerificationCode {
        viewer: ViewerId,
        code: String,
    },
    Path {
        viewer: ViewerId,
        change: PathChange,
    },
    InputCount {
        viewer: ViewerId,
        events: u64,
    },
    Connected {
        viewer: ViewerId,
        name: String,
    },
    /// An unattended technician proved their access, or failed to.
    Authenticated {
        viewer: ViewerId,
        access: String,
        ok: bool,
    },
    Left {
        viewer: ViewerId,
        reason: String,
    },
    Clipboard {
        viewer: ViewerId,
        text: String,
    },
    Chat {
        viewer: ViewerId,
        text: String,
    },
    Refused {
        viewer: ViewerId,
        code: ControlErrorCode,
    },
    TargetBitrate {
        viewer: ViewerId,
        bps: f64,
    },
}

async fn run_host(
    shared: Shared,
    mut audit: Option<AuditFile>,
    first_code: String,
    mut incoming: mpsc::Receiver<ServerMessage>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    commands_tx: mpsc::UnboundedSender<Command>,
    events: EventSender<HostEvent>,
) {
    let shared = Arc::new(shared);
    let mut viewers: HashMap<ViewerId, (mpsc::Sender<ToViewer>, tokio::task::JoinHandle<()>)> = HashMap::new();
    let mut invites: VecDeque<oneshot::Sender<Result<String, SessionError>>> = VecDeque::new();
    let mut bitrate = SharedBitrate::<ViewerId>::new(shared.max_bitrate);
    let set_bitrate = |target: Option<u32>| {
        if let Some(bps) = target {
            tracing::debug!(bps, "encoder target bitrate");
            shared.counters.target_bitrate.store(u64::from(bps), Ordering::Relaxed);
            let _ = shared.encoder.send(EncoderCommand::Bitrate(bps));
        }
    };
    let (from_viewers_tx, mut from_viewers) = mpsc::channel::<FromViewer>(FROM_VIEWERS_QUEUE);
    let mut signaling_open = true;
    let mut backoff = Backoff::default();
    let mut reconnect_at: Option<Instant> = None;
    // A registration sent after reconnecting, whose code is announced as SignalingRestored.
    let mut reregistering = false;
    // Codes this host was given; a join request naming any other code is refused without asking the user.
    let mut held_codes: std::collections::HashSet<String> = [first_code].into();
    // Viewers the user let in whose admission the server has not confirmed yet.
    let mut awaiting_admission: HashMap<ViewerId, Admitted> = HashMap::new();
    // Each connected viewer's resumption token, and the peer ids the server gave resumed viewers.
    let mut resume_tokens: HashMap<String, ViewerId> = HashMap::new();
    let mut aliases: HashMap<crate::signaling::PeerId, ViewerId> = HashMap::new();
    // Failed unattended attempts, whoever made them: the wait doubles with each.
    let mut access_backoff = FailureBackoff::new(crate::unattended::FIRST_BACKOFF, crate::unattended::MAX_BACKOFF);
    let end_reason = loop {
        tokio::select! {
            message = incoming.recv(), if signaling_open => match message {
                None => {
                    tracing::warn!("signaling connection lost; connected viewers stay; reconnecting");
                    signaling_open = false;
                    // The codes and pending joins died with the connection.
                    held_codes.clear();
                    awaiting_admission.clear();
                    aliases.clear();
                    for invite in invites.drain(..) {
                        let _ = invite.send(Err(SessionError::Signaling(crate::signaling::SignalingError::Closed)));
                    }
                    reconnect_at = Some(backoff.next_attempt(Instant::now()));
                }
                Some(ServerMessage::JoinRequest { peer, name, access: Some(access), verified, asks, .. }) => {
                    let name = crate::text::printable(&name).trim().to_string();
                    let refusal = match &shared.unattended {
                        None => Some("this host does not offer unattended access".to_string()),
                        Some(_) => access_backoff.retry_after(Instant::now()).map(|wait| {
                            format!("too many failed attempts; retry in {} s", wait.as_secs_f64().ceil() as u64)
                        }),
                    };
                    if let Some(reason) = refusal {
                        tracing::info!(viewer = %peer, %reason, "unattended join refused");
                        let _ = shared.signaling.send(ClientMessage::Reject { v: PROTOCOL_VERSION, peer, reason }).await;
                        continue;
                    }
                    record(&mut audit, AuditEvent::JoinRequest { viewer: peer.clone(), name: format!("{} (unattended access {access:?})", identity_for_audit(&name, verified.as_ref())) });
                    let entry = shared.unattended.as_ref().and_then(|u| u.policy.get(&access));
                    if entry.is_some_and(|e| e.asks_customer()) {
                        let asks = asks.unwrap_or(Permissions::VIEW_ONLY);
                        let request = JoinRequest { viewer: peer, name, verified, asks, unattended_access: Some(access), session_code: String::new(), reply: Some(commands_tx.clone()) };
                        let _ = events.send(HostEvent::JoinRequest(request));
                        continue;
                    }
                    // Unknown names go through the same exchange (against a decoy) and fail in it, so a guesser
                    // cannot tell which names exist.
                    let permissions = entry.map_or(Permissions::VIEW_ONLY, |e| e.granted());
                    let _ = shared.signaling.send(ClientMessage::Accept { v: PROTOCOL_VERSION, peer: peer.clone() }).await;
                    if awaiting_admission.len() < MAX_AWAITING_ADMISSION {
                        let admitted = Admitted { viewer: peer.clone(), name, session_code: String::new(), permissions, ice_servers: Vec::new(), access: Some(access), resume_token: String::new() };
                        awaiting_admission.insert(peer, admitted);
                    }
                }
                Some(ServerMessage::DeviceChallenge { nonce, .. }) => {
                    match device_registration(shared.unattended.as_ref(), &nonce) {
                        Ok(register) => { let _ = shared.signaling.send(register).await; }
                        Err(e) => tracing::warn!("device registration not sent: {e}"),
                    }
                }
                Some(ServerMessage::JoinRequest { peer, name, code, verified, asks, .. }) => {
                    if !code.is_empty() && !held_codes.contains(&code) {
                        tracing::warn!(viewer = %peer, "join request for a code this host does not hold; refused");
                        let reason = "this host did not issue that code".to_string();
                        let _ = shared.signaling.send(ClientMessage::Reject { v: PROTOCOL_VERSION, peer, reason }).await;
                        continue;
                    }
                    // The name is whatever the viewer typed: no control, format or bidi-override characters reach
                    // the app's prompt.
                    let name = crate::text::printable(&name).trim().to_string();
                    record(&mut audit, AuditEvent::JoinRequest { viewer: peer.clone(), name: identity_for_audit(&name, verified.as_ref()) });
                    let asks = asks.unwrap_or(Permissions::VIEW_ONLY);
                    let request = JoinRequest { viewer: peer, name, verified, asks, unattended_access: None, session_code: code, reply: Some(commands_tx.clone()) };
                    let _ = events.send(HostEvent::JoinRequest(request));
                }
                Some(ServerMessage::Signal { from, payload, .. }) => {
                    let from = aliases.get(&from).cloned().unwrap_or(from);
                    if let Some((tx, _)) = viewers.get(&from) {
                        to_viewer(tx, ToViewer::Signal(payload));
                    }
                }
                Some(ServerMessage::Admitted { viewer, ice_servers, .. }) => {
                    if let Some(mut admitted) = awaiting_admission.remove(&viewer) {
                        admitted.ice_servers = ice_servers;
                        admitted.resume_token = new_resume_token();
                        resume_tokens.insert(admitted.resume_token.clone(), viewer.clone());
                        let (tx, rx) = mpsc::channel(TO_VIEWER_QUEUE);
                        let task = tokio::spawn(run_viewer(shared.clone(), admitted, rx, from_viewers_tx.clone()));
                        viewers.insert(viewer, (tx, task));
                    }
                }
                Some(ServerMessage::Resumed { token, peer, .. }) => {
                    if let Some(viewer) = resume_tokens.get(&token) {
                        tracing::info!(%viewer, "signaling session resumed");
                        aliases.insert(peer.clone(), viewer.clone());
                        if let Some((tx, _)) = viewers.get(viewer) {
                            to_viewer(tx, ToViewer::Readdress(peer));
                        }
                    }
                }
                Some(ServerMessage::PeerLeft { peer, reason, .. }) => {
                    let peer = aliases.get(&peer).cloned().unwrap_or(peer);
                    awaiting_admission.remove(&peer);
                    if let Some((tx, _)) = viewers.get(&peer) {
                        to_viewer(tx, ToViewer::End(format!("viewer {reason}")));
                    }
                }
                Some(ServerMessage::Registered { code, .. }) => {
                    held_codes.insert(code.clone());
                    if reregistering {
                        reregistering = false;
                        backoff.reset();
                        tracing::info!("signaling connection restored; new session code issued");
                        let _ = events.send(HostEvent::SignalingRestored { code });
                        // Pair the connected viewers again, so that ICE restarts reach them.
                        for token in resume_tokens.keys() {
                            let resume = ClientMessage::Resume { v: PROTOCOL_VERSION, token: token.clone() };
                            let _ = shared.signaling.send(resume).await;
                        }
                    } else if let Some(invite) = invites.pop_front() {
                        let _ = invite.send(Ok(code));
                    }
                }
                Some(ServerMessage::Error { code, message, retry_after_secs, .. }) => {
                    tracing::warn!(%code, %message, "signaling server refused a request");
                    if let Some(invite) = invites.pop_front() {
                        let _ = invite.send(Err(SessionError::from_server(code, message, retry_after_secs)));
                    }
                }
                Some(other) => tracing::debug!(?other, "ignored signaling message"),
            },
            _ = sleep_until_or_never(reconnect_at), if !signaling_open => {
                match reconnect_signaling(&shared).await {
                    Ok(receiver) => {
                        incoming = receiver;
                        signaling_open = true;
                        reregistering = true;
                        reconnect_at = None;
                    }
                    Err(e) => {
                        tracing::info!("signaling server still unreachable: {e}");
                        reconnect_at = Some(backoff.next_attempt(Instant::now()));
                    }
                }
                continue;
            }
            command = commands.recv() => match command {
                None => break "the host stopped sharing".to_string(),
                Some(Command::Consent { viewer, name, session_code, access, consent }) => match consent {
                    Consent::Deny(reason) => {
                        record(&mut audit, AuditEvent::Consent { viewer: viewer.clone(), allowed: false, permissions: Vec::new() });
                        tracing::info!(%viewer, "join denied");
                        let _ = shared.signaling.send(ClientMessage::Reject { v: PROTOCOL_VERSION, peer: viewer, reason }).await;
                    }
                    Consent::Allow(permissions) => {
                        tracing::info!(%viewer, ?permissions, "join accepted");
                        record(&mut audit, AuditEvent::Consent { viewer: viewer.clone(), allowed: true, permissions: permission_names(permissions) });
                        let _ = shared.signaling.send(ClientMessage::Accept { v: PROTOCOL_VERSION, peer: viewer.clone() }).await;
                        // The connection starts once the server confirms (`admitted`), with the STUN/TURN servers
                        // it issues for this viewer. Bounded by the join requests the server lets through.
                        if awaiting_admission.len() < MAX_AWAITING_ADMISSION {
                            // An unattended access the customer was asked about gets at most what its policy grants.
                            let permissions = match (&access, &shared.unattended) {
                                (Some(access), Some(u)) => {
                                    let policy = u.policy.get(access).map_or(Permissions::VIEW_ONLY, |e| e.granted());
                                    Permissions { control: permissions.control && policy.control, clipboard: permissions.clipboard && policy.clipboard }
                                }
                                _ => permissions,
                            };
                            let admitted = Admitted { viewer: viewer.clone(), name, session_code, permissions, ice_servers: Vec::new(), access, resume_token: String::new() };
                            awaiting_admission.insert(viewer, admitted);
                        }
                    }
                },
                Some(Command::SetPermissions { viewer, permissions }) => {
                    record(&mut audit, AuditEvent::PermissionsChanged { viewer: viewer.clone(), permissions: permission_names(permissions) });
                    if let Some((tx, _)) = viewers.get(&viewer) {
                        to_viewer(tx, ToViewer::SetPermissions(permissions));
                    }
                }
                Some(Command::ConfirmVerification { viewer }) => {
                    record(&mut audit, AuditEvent::VerificationConfirmed { viewer: viewer.clone() });
                    if let Some((tx, _)) = viewers.get(&viewer) {
                        to_viewer(tx, ToViewer::Verified);
                    }
                }
                Some(Command::Disconnect { viewer, reason }) => {
                    if let Some((tx, _)) = viewers.get(&viewer) {
                        to_viewer(tx, ToViewer::End(reason));
                    }
                }
                Some(Command::Clipboard(text)) => {
                    record(&mut audit, AuditEvent::text(TextKind::Clipboard, "*", "to_viewer", &text));
                    for (tx, _) in viewers.values() {
                        to_viewer(tx, ToViewer::Clipboard(text.clone()));
                    }
                }
                Some(Command::Chat(text)) => {
                    record(&mut audit, AuditEvent::text(TextKind::Chat, "*", "to_viewer", &text));
                    for (tx, _) in viewers.values() {
                        to_viewer(tx, ToViewer::Chat(text.clone()));
                    }
                }
                Some(Command::MaxBitrate(bps)) => set_bitrate(bitrate.set_max(bps)),
                Some(Command::Invite(reply)) => {
                    if shared.signaling.send(ClientMessage::Register { v: PROTOCOL_VERSION, device: None }).await.is_ok() {
                        invites.push_back(reply);
                    } else {
                        let _ = reply.send(Err(SessionError::Signaling(crate::signaling::SignalingError::Closed)));
                    }
                }
                Some(Command::End { reason, done }) => {
                    for (tx, task) in viewers.drain().map(|(_, v)| v) {
                        to_viewer(&tx, ToViewer::End(reason.clone()));
                        let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
                    }
                    let _ = done.send(());
                    break reason;
                }
            },
            Some(note) = from_viewers.recv() => match note {
                FromViewer::VerificationCode { viewer, code } => {
                    record(&mut audit, AuditEvent::Connected { viewer: viewer.clone(), verification_code: code.clone() });
                    let _ = events.send(HostEvent::VerificationCode { viewer, code });
                }
                FromViewer::Path { viewer, change: PathChange::Lost } => {
                    record(&mut audit, AuditEvent::Reconnect { viewer: viewer.clone(), state: "lost" });
                    let _ = events.send(HostEvent::ViewerReconnecting { viewer });
                }
                FromViewer::Path { viewer, change: PathChange::Restored } => {
                    record(&mut audit, AuditEvent::Reconnect { viewer: viewer.clone(), state: "restored" });
                    let _ = events.send(HostEvent::ViewerReconnected { viewer });
                }
                FromViewer::Authenticated { viewer, access, ok: true } => {
                    access_backoff.record_success();
                    record(&mut audit, AuditEvent::UnattendedAccess { viewer: viewer.clone(), access: access.clone(), ok: true });
                    let _ = events.send(HostEvent::UnattendedAccess { viewer, access });
                }
                FromViewer::Authenticated { viewer, access, ok: false } => {
                    let retry_after = access_backoff.record_failure(Instant::now());
                    let failures = access_backoff.failures();
                    tracing::warn!(%viewer, failures, ?retry_after, "unattended authentication failed");
                    record(&mut audit, AuditEvent::UnattendedAccess { viewer: viewer.clone(), access, ok: false });
                    if signaling_open {
                        let _ = shared.signaling.send(ClientMessage::AuthFailed { v: PROTOCOL_VERSION, peer: viewer }).await;
                    }
                    if shared.unattended.as_ref().is_some_and(|u| failures >= u.alert_after) {
                        let _ = events.send(HostEvent::AccessFailures { failures, retry_after });
                    }
                }
                FromViewer::Connected { viewer, name } => {
                    let _ = events.send(HostEvent::ViewerConnected { viewer, name });
                }
                FromViewer::InputCount { viewer, events } => {
                    record(&mut audit, AuditEvent::Input { viewer, events });
                }
                FromViewer::Left { viewer, reason } => {
                    record(&mut audit, AuditEvent::Left { viewer: viewer.clone(), reason: reason.clone() });
                    viewers.remove(&viewer);
                    set_bitrate(bitrate.on_viewer_left(&viewer));
                    resume_tokens.retain(|_, v| *v != viewer);
                    aliases.retain(|_, v| *v != viewer);
                    let _ = events.send(HostEvent::ViewerLeft { viewer, reason });
                }
                FromViewer::Clipboard { viewer, text } => {
                    record(&mut audit, AuditEvent::text(TextKind::Clipboard, &viewer, "to_host", &text));
                    let _ = events.send(HostEvent::Clipboard { viewer, text });
                }
                FromViewer::Chat { viewer, text } => {
                    record(&mut audit, AuditEvent::text(TextKind::Chat, &viewer, "to_host", &text));
                    let _ = events.send(HostEvent::Chat { viewer, text });
                }
                FromViewer::Refused { viewer, code } => { let _ = events.send(HostEvent::Refused { viewer, code }); }
                // The slowest viewer sets the pace: one encoder serves all.
                FromViewer::TargetBitrate { viewer, bps } => set_bitrate(bitrate.on_estimate(viewer, bps)),
            },
        }
    };
    let _ = shared
        .signaling
        .send(ClientMessage::Leave { v: PROTOCOL_VERSION })
        .await;
    let _ = shared.encoder.send(EncoderCommand::Stop);
    for (_, (tx, _)) in viewers.drain() {
        to_viewer(&tx, ToViewer::End(end_reason.clone()));
    }
    record(
        &mut audit,
        AuditEvent::Ended {
            reason: end_reason.clone(),
        },
    );
    let _ = events.send(HostEvent::Ended { reason: end_reason });
}

/// Who asked, for the audit trail: the verified account, or the typed name marked as such.
fn identity_for_audit(name: &str, verified: Option<&VerifiedIdentity>) -> String {
    match verified {
        Some(v) => format!("{} (verified by {})", v.account, v.operator),
        None => format!("{name} (name not verified)"),
    }
}

/// A session's resumption token: 256 bits from the operating system's random source, base64.
fn new_resume_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    base64_encode(&bytes)
}

/// Appends `event` to the audit trail, when there is one.
fn record(audit: &mut Option<AuditFile>, event: AuditEvent) {
    if let Some(file) = audit {
        file.write(&event);
    }
}

enum ViewerInput {
    Host(ToViewer),
    Peer(PeerEvent),
    Channel(DataChannelEvent),
    Rtcp(TrackLocalEvent),
}

async fn send_control(channel: &Arc<dyn DataChannel>, message: &HostMessage) {
    if let Err(e) = channel.send_text(&encode(message)).await {
        tracing::debug!("control message not sent: {e}");
    }
}

/// A viewer the host's user let in.
struct Admitted {
    viewer: ViewerId,
    name: String,
    /// The code it joined with.
    session_code: String,
    /// What the user granted (in force at once, or after verification when that is required).
    permissions: Permissions,
    /// STUN/TURN servers the signaling server issued for this viewer's connection.
    ice_servers: Vec<crate::signaling::IceServer>,
    /// For an unattended viewer: the access it must prove before its answer is applied.
    access: Option<String>,
    /// The secret both sides present to the signaling server to be paired again after it restarted.
    resume_token: String,
}

/// Viewers let in by the user and waiting for the server's confirmation, at most.
const MAX_AWAITING_ADMISSION: usize = 64;

/// One admitted viewer: its peer connection, control channel and video sender.
async fn run_viewer(
    shared: Arc<Shared>,
    admitted: Admitted,
    mut from_host: mpsc::Receiver<ToViewer>,
    notes: mpsc::Sender<FromViewer>,
) {
    let viewer = admitted.viewer.clone();
    let reason = match viewer_session(&shared, &admitted, &mut from_host, &notes).await {
        Ok(reason) => reason,
        Err(e) => {
            tracing::warn!(%viewer, "viewer session failed: {e}");
            e.to_string()
        }
    };
    let _ = notes.send(FromViewer::Left { viewer, reason }).await;
}

async fn viewer_session(
    shared: &Arc<Shared>,
    admitted: &Admitted,
    from_host: &mut mpsc::Receiver<ToViewer>,
    notes: &mpsc::Sender<FromViewer>,
) -> Result<String, SessionError> {
    let peer = new_peer(&shared.transport, &admitted.ice_servers).await?;
    let connection = peer.connection.clone();
    let result = viewer_loop(shared, admitted, from_host, notes, peer).await;
    let _ = connection.close().await;
    result
}

async fn viewer_loop(
    shared: &Arc<Shared>,
    admitted: &Admitted,
    from_host: &mut mpsc::Receiver<ToViewer>,
    notes: &mpsc::Sender<FromViewer>,
    peer: crate::transport::peer::Peer,
) -> Result<String, SessionError> {
    let Admitted {
        viewer,
        name,
        session_code,
        permissions: granted,
        ..
    } = admitted;
    let mut granted = *granted;
    // Where signals to this viewer go: its peer id, until a resumed signaling session gives it another.
    let mut address = viewer.clone();
    // An unattended viewer's handshake is bound to both certificates: nobody can be in the middle, so there is
    // no code to confirm.
    let mut verified = admitted.access.is_some();
    let permissions = permissions_in_force(granted, shared.require_verification, verified);
    let mut verification_code = None;
    let connection: Arc<dyn PeerConnection> = peer.connection;
    let mut peer_events = peer.events;
    let (track, ssrc) = new_video_track();
    let rtp_sender = connection
        .add_track(track.clone() as Arc<dyn TrackLocal>)
        .await
        .map_err(TransportError::webrtc)?;
    let init = RTCDataChannelInit {
        ordered: true,
        ..Default::default()
    };
    let channel = connection
        .create_data_channel(CHANNEL_LABEL, Some(init))
        .await
        .map_err(TransportError::webrtc)?;
    let offer = send_offer(&connection, shared, viewer, false).await?;
    let own_fingerprint = sdp_fingerprint(&offer).map_err(|e| TransportError::InvalidSdp(e.to_string()))?;
    // Unattended: the handshake's first message follows the offer, and the answer is applied (so that ICE and
    // DTLS can start) only once the viewer proved its access.
    let mut handshake = None;
    let mut auth_confirm: Option<Confirm> = None;
    if let (Some(access), Some(unattended)) = (&admitted.access, &shared.unattended) {
        let (_, kdf, hash, totp) = unattended.policy.entry_or_decoy(access, &unattended.identity);
        let (host_handshake, challenge) =
            HostHandshake::start(&unattended.identity.device_id(), access, &kdf, &hash, totp);
        handshake = Some(host_handshake);
        let payload = SignalPayload::Auth {
            kdf: challenge.kdf,
            spake: base64_encode(&challenge.spake),
        };
        shared
            .signaling
            .send(ClientMessage::Signal {
                v: PROTOCOL_VERSION,
                to: viewer.clone(),
                payload,
            })
            .await?;
    }

    // Funnel the control channel and RTCP into one bounded queue. Control messages wait for room, so a viewer
    // that sends faster than the host handles them is slowed by SCTP's flow control instead of growing a queue;
    // keyframe requests are dropped when it is full (the throttle keeps only one per interval anyway).
    let (tx, mut inputs) = mpsc::channel::<ViewerInput>(VIEWER_INPUT_QUEUE);
    {
        let tx = tx.clone();
        let channel = channel.clone();
        tokio::spawn(async move {
            while let Some(event) = channel.poll().await {
                if tx.send(ViewerInput::Channel(event)).await.is_err() {
                    break;
                }
            }
        });
    }

    let mut gate = ControlGate::new(permissions, Instant::now());
    let mut remote_candidates = RemoteCandidates::<RTCIceCandidateInit>::default();
    let mut channel_open = false;
    let mut video_task: Option<tokio::task::JoinHandle<()>> = None;
    let mut watching = false;
    let mut cursor = shared.cursor.clone();
    let mut cursor_image = ImageSent::default();
    let mut stats_tick = tokio::time::interval(Duration::from_secs(1));
    let mut keyframe_requests = crate::encode::KeyframeRequests::default();
    let mut reconnector = Reconnector::default();
    // Input events injected since the last audit count, and seconds of session (one stats tick a second).
    let mut input_events = 0u64;
    let mut stats_ticks = 0u64;
    // The viewer's certificate, fixed by the first answer: a restart's answer must name the same one.
    let mut viewer_fingerprint = None;
    // Cleared when control ends, so that input already queued is not injected after the revoke.
    let mut control_live = Arc::new(AtomicBool::new(permissions.control));

    let outcome = loop {
        let keyframe_due = keyframe_requests.deadline();
        let input = tokio::select! {
            _ = sleep_until_or_never(reconnector.deadline()) => {
                match reconnector.poll(Instant::now()) {
                    ReconnectAction::Wait => {}
                    ReconnectAction::RestartIce => {
                        tracing::info!(%viewer, restarts = reconnector.restarts(), "connection lost; restarting ICE");
                        // Candidates of the new generation wait for the answer to the restart.
                        remote_candidates.on_new_generation();
                        if let Err(e) = send_offer(&connection, shared, &address, true).await {
                            tracing::warn!(%viewer, "ICE restart not sent: {e}");
                        }
                    }
                    ReconnectAction::GiveUp => {
                        break Err(SessionError::Transport(TransportError::WebRtc(
                            "the connection was lost and did not come back within a minute".into(),
                        )))
                    }
                }
                continue;
            }
            _ = sleep_until_or_never(keyframe_due) => {
                if keyframe_requests.poll(Instant::now()) {
                    let _ = shared.encoder.send(EncoderCommand::Keyframe);
                }
                continue;
            }
            m = from_host.recv() => match m { Some(m) => ViewerInput::Host(m), None => break Ok("host stopped".to_string()) },
            e = peer_events.recv() => match e { Some(e) => ViewerInput::Peer(e), None => break Ok("connection closed".to_string()) },
            Some(i) = inputs.recv() => i,
            changed = cursor.changed(), if channel_open => {
                if changed.is_err() { continue; }
                let update = cursor.borrow_and_update().clone();
                if let Some(update) = update {
                    let image = cursor_image.image_for(&update);
                    send_control(&channel, &HostMessage::Cursor { x: update.x, y: update.y, visible: update.visible, image }).await;
                }
                continue;
            }
            _ = stats_tick.tick() => {
                stats_ticks += 1;
                if stats_ticks % 60 == 0 && input_events > 0 {
                    let count = FromViewer::InputCount { viewer: viewer.clone(), events: std::mem::take(&mut input_events) };
                    let _ = notes.send(count).await;
                }
                let report = connection.get_stats(Instant::now(), StatsSelector::None).await;
                let mut stats = ConnectionStats::default();
                fill_from_report(&report, &mut stats);
                if stats.target_bitrate_bps > 0.0 {
                    let _ = notes.try_send(FromViewer::TargetBitrate { viewer: viewer.clone(), bps: stats.target_bitrate_bps });
                }
                continue;
            }
        };
        match input {
            ViewerInput::Host(ToViewer::Signal(payload)) => match payload {
                SignalPayload::Answer { sdp } if viewer_fingerprint.is_some() => {
                    // The answer to an ICE restart: it must name the certificate of the first one (a different one
                    // would be someone else), and a late answer to an earlier restart is dropped, not fatal.
                    if sdp_fingerprint(&sdp).ok() != viewer_fingerprint {
                        tracing::warn!(%viewer, "a restart answer with another certificate; ignored");
                        continue;
                    }
                    let applied = match RTCSessionDescription::answer(sdp) {
                        Ok(answer) => connection
                            .set_remote_description(answer)
                            .await
                            .map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    if let Err(e) = applied {
                        tracing::debug!(%viewer, "restart answer not applied: {e}");
                        continue;
                    }
                    add_candidates(&connection, remote_candidates.on_description_applied()).await;
                }
                SignalPayload::Answer { sdp } => {
                    // The one certificate the DTLS handshake will accept from the viewer: the verification code
                    // is derived from it, so an answer that names several is refused.
                    let fingerprint = sdp_fingerprint(&sdp).map_err(|e| TransportError::InvalidSdp(e.to_string()))?;
                    if let (Some(host_handshake), Some(unattended), Some(access)) =
                        (handshake.take(), &shared.unattended, &admitted.access)
                    {
                        let unix_secs = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_secs());
                        let result = match auth_confirm.take() {
                            Some(confirm) => host_handshake.finish(
                                &unattended.identity,
                                &confirm,
                                &own_fingerprint,
                                &fingerprint,
                                unix_secs,
                            ),
                            None => Err(crate::unattended::UnattendedError::AuthenticationFailed),
                        };
                        let ok = result.is_ok();
                        let note = FromViewer::Authenticated {
                            viewer: viewer.clone(),
                            access: access.clone(),
                            ok,
                        };
                        let _ = notes.send(note).await;
                        let Ok(proof) = result else {
                            break Err(SessionError::AuthenticationFailed { retry_after: None });
                        };
                        let payload = SignalPayload::AuthProof {
                            mac: base64_encode(&proof.mac),
                            public_key: base64_encode(&proof.public_key),
                            signature: base64_encode(&proof.signature),
                        };
                        shared
                            .signaling
                            .send(ClientMessage::Signal {
                                v: PROTOCOL_VERSION,
                                to: viewer.clone(),
                                payload,
                            })
                            .await?;
                    }
                    viewer_fingerprint = Some(fingerprint);
                    verification_code = Some(crate::session::verification_code(
                        &own_fingerprint,
                        &fingerprint,
                        session_code,
                    ));
                    let answer =
                        RTCSessionDescription::answer(sdp).map_err(|e| TransportError::InvalidSdp(e.to_string()))?;
                    connection
                        .set_remote_description(answer)
                        .await
                        .map_err(|e| TransportError::InvalidSdp(e.to_string()))?;
                    add_candidates(&connection, remote_candidates.on_description_applied()).await;
                }
                SignalPayload::Candidate {
                    candidate,
                    sdp_mid,
                    sdp_mline_index,
                } => {
                    let init = crate::transport::peer::remote_candidate(candidate, sdp_mid, sdp_mline_index);
                    add_candidates(&connection, remote_candidates.on_candidate(init)).await;
                }
                SignalPayload::AuthConfirm { spake, mac } if handshake.is_some() && auth_confirm.is_none() => {
                    match (base64_decode(&spake), base64_decode(&mac)) {
                        (Some(spake), Some(mac)) => auth_confirm = Some(Confirm { spake, mac }),
                        _ => tracing::warn!(%viewer, "malformed authentication confirmation; the answer will fail"),
                    }
                }
                SignalPayload::Offer { .. }
                | SignalPayload::Auth { .. }
                | SignalPayload::AuthConfirm { .. }
                | SignalPayload::AuthProof { .. } => {
                    tracing::warn!(%viewer, "unexpected signal payload from the viewer; ignored")
                }
            },
            ViewerInput::Host(message @ (ToViewer::SetPermissions(_) | ToViewer::Verified)) => {
                match message {
                    ToViewer::SetPermissions(p) => granted = p,
                    _ => {
                        tracing::info!(%viewer, "verification code confirmed by the host's user");
                        verified = true;
                    }
                }
                let p = permissions_in_force(granted, shared.require_verification, verified);
                if p == gate.permissions() {
                    continue;
                }
                let had_control = control_live.load(Ordering::Acquire);
                control_live.store(false, Ordering::Release);
                control_live = Arc::new(AtomicBool::new(p.control));
                if had_control && !p.control {
                    release_held_input(shared);
                }
                gate.set_permissions(p);
                send_control(&channel, &HostMessage::Permissions { permissions: p }).await;
            }
            ViewerInput::Host(ToViewer::Clipboard(text)) => {
                if gate.permissions().clipboard {
                    send_control(&channel, &HostMessage::Clipboard { text }).await;
                }
            }
            ViewerInput::Host(ToViewer::Chat(text)) => send_control(&channel, &HostMessage::Chat { text }).await,
            ViewerInput::Host(ToViewer::End(reason)) => {
                send_control(&channel, &HostMessage::End { reason: reason.clone() }).await;
                // Give the message a moment to leave before the connection closes.
                tokio::time::sleep(Duration::from_millis(100)).await;
                break Ok(reason);
            }
            ViewerInput::Peer(PeerEvent::LocalCandidate(c)) => {
                let payload = SignalPayload::Candidate {
                    candidate: c.candidate,
                    sdp_mid: c.sdp_mid,
                    sdp_mline_index: c.sdp_mline_index,
                };
                let _ = shared
                    .signaling
                    .send(ClientMessage::Signal {
                        v: PROTOCOL_VERSION,
                        to: address.clone(),
                        payload,
                    })
                    .await;
            }
            ViewerInput::Host(ToViewer::Readdress(peer)) => address = peer,
            ViewerInput::Peer(PeerEvent::State(state)) => match state {
                RTCPeerConnectionState::Connected if video_task.is_none() => {
                    let sender = Av1RtpSender::negotiated(track.clone(), ssrc, &rtp_sender).await?;
                    tracing::info!(%viewer, payload_type = sender.payload_type(), playout_delay = sender.has_playout_delay(), "viewer connected");
                    // The track is bound once connected; only then does it deliver RTCP (keyframe requests).
                    let rtcp_tx = tx.clone();
                    let rtcp_track = track.clone();
                    tokio::spawn(async move {
                        while let Some(event) = rtcp_track.poll().await {
                            if let Err(mpsc::error::TrySendError::Closed(_)) =
                                rtcp_tx.try_send(ViewerInput::Rtcp(event))
                            {
                                break;
                            }
                        }
                    });
                    let frames = shared.frames.subscribe();
                    let encoder = shared.encoder.clone();
                    video_task = Some(tokio::spawn(send_video(sender, frames, encoder)));
                    shared.counters.watchers.fetch_add(1, Ordering::Relaxed);
                    watching = true;
                    let _ = shared.encoder.send(EncoderCommand::Keyframe);
                    if let Some(code) = verification_code.clone() {
                        let _ = notes
                            .send(FromViewer::VerificationCode {
                                viewer: viewer.clone(),
                                code,
                            })
                            .await;
                    }
                    let _ = notes
                        .send(FromViewer::Connected {
                            viewer: viewer.clone(),
                            name: name.to_string(),
                        })
                        .await;
                }
                RTCPeerConnectionState::Failed if video_task.is_none() => {
                    break Err(SessionError::Transport(TransportError::WebRtc(
                        "ICE/DTLS failed".into(),
                    )))
                }
                RTCPeerConnectionState::Closed => break Ok("connection closed".to_string()),
                // Only a connection that was up can be lost (the first negotiation has its own timeout).
                state if video_task.is_some() => {
                    let path = match state {
                        RTCPeerConnectionState::Connected => Some(PathState::Connected),
                        RTCPeerConnectionState::Disconnected => Some(PathState::Disconnected),
                        RTCPeerConnectionState::Failed => Some(PathState::Failed),
                        _ => None,
                    };
                    if let Some(change) = path.and_then(|p| reconnector.on_state(p, Instant::now())) {
                        tracing::info!(%viewer, ?change, "connection path");
                        let _ = notes
                            .send(FromViewer::Path {
                                viewer: viewer.clone(),
                                change,
                            })
                            .await;
                    }
                }
                _ => {}
            },
            ViewerInput::Peer(_) => {}
            ViewerInput::Channel(DataChannelEvent::OnOpen) => {
                channel_open = true;
                let (width, height) = shared.screen;
                let welcome = HostMessage::Welcome {
                    permissions: gate.permissions(),
                    width,
                    height,
                    host_name: shared.host_name.clone(),
                    resume_token: Some(admitted.resume_token.clone()),
                };
                send_control(&channel, &welcome).await;
                cursor.mark_changed();
            }
            ViewerInput::Channel(DataChannelEvent::OnMessage(message)) => {
                match gate.check(&message.data, Instant::now()) {
                    Ok(ViewerMessage::Input(event)) => match &shared.input {
                        Some(input) => {
                            let command = InputCommand::Inject {
                                event,
                                allowed: control_live.clone(),
                            };
                            if input.try_send(command).is_err() {
                                tracing::debug!(%viewer, "input queue full; event dropped");
                            } else {
                                input_events += 1;
                            }
                        }
                        None => {
                            send_control(
                                &channel,
                                &HostMessage::Error {
                                    code: ControlErrorCode::Unsupported,
                                    message: "this host takes no input".into(),
                                },
                            )
                            .await
                        }
                    },
                    Ok(ViewerMessage::Clipboard { text }) => {
                        let _ = notes.try_send(FromViewer::Clipboard {
                            viewer: viewer.clone(),
                            text,
                        });
                    }
                    Ok(ViewerMessage::Chat { text }) => {
                        let _ = notes.try_send(FromViewer::Chat {
                            viewer: viewer.clone(),
                            text,
                        });
                    }
                    Ok(ViewerMessage::Leave { reason }) => break Ok(format!("viewer left: {reason}")),
                    Err(mut e) => {
                        if e.code == ControlErrorCode::PermissionDenied && gate.permissions() != granted {
                            e.message = format!(
                                "{}: the host's user has not yet confirmed the verification code",
                                e.message
                            );
                        }
                        tracing::info!(%viewer, code = ?e.code, "control message refused: {}", e.message);
                        if gate.should_answer(&e, Instant::now()) {
                            send_control(
                                &channel,
                                &HostMessage::Error {
                                    code: e.code,
                                    message: e.message,
                                },
                            )
                            .await;
                            let _ = notes.try_send(FromViewer::Refused {
                                viewer: viewer.clone(),
                                code: e.code,
                            });
                        }
                    }
                }
            }
            ViewerInput::Channel(DataChannelEvent::OnClose) => break Ok("control channel closed".to_string()),
            ViewerInput::Channel(_) => {}
            ViewerInput::Rtcp(TrackLocalEvent::OnRtcpPacket(_)) => {
                // Only keyframe requests are passed up (see transport::peer); one viewer gets at most one keyframe
                // per interval, the rest are deferred.
                if keyframe_requests.request(Instant::now()) {
                    let _ = shared.encoder.send(EncoderCommand::Keyframe);
                }
            }
            #[allow(unreachable_patterns)]
            ViewerInput::Rtcp(_) => {}
        }
    };
    if input_events > 0 {
        let _ = notes
            .send(FromViewer::InputCount {
                viewer: viewer.clone(),
                events: input_events,
            })
            .await;
    }
    if control_live.swap(false, Ordering::AcqRel) {
        release_held_input(shared);
    }
    if watching {
        shared.counters.watchers.fetch_sub(1, Ordering::Relaxed);
    }
    if let Some(task) = video_task {
        task.abort();
    }
    outcome
}

/// The first message on a signaling connection: a plain registration, or — with a device identity — the request
/// for the nonce whose signature registers the device ID.
fn first_registration(unattended: Option<&UnattendedConfig>) -> ClientMessage {
    match unattended {
        Some(_) => ClientMessage::DeviceChallenge { v: PROTOCOL_VERSION },
        None => ClientMessage::Register {
            v: PROTOCOL_VERSION,
            device: None,
        },
    }
}

/// The registration that proves this host holds its device key, for the server's `nonce`.
fn device_registration(unattended: Option<&UnattendedConfig>, nonce: &str) -> Result<ClientMessage, SessionError> {
    use base64::Engine as _;
    let b64 = &base64::engine::general_purpose::STANDARD;
    let identity = unattended
        .map(|u| &u.identity)
        .ok_or_else(|| SessionError::InvalidArgument("a device challenge without a device identity".into()))?;
    let nonce = b64
        .decode(nonce)
        .map_err(|_| SessionError::InvalidArgument("the server's device challenge is not base64".into()))?;
    Ok(ClientMessage::Register {
        v: PROTOCOL_VERSION,
        device: Some(crate::signaling::DeviceClaim {
            public_key: b64.encode(identity.public_key()),
            signature: b64.encode(identity.registration_proof(&nonce)),
        }),
    })
}

/// Connects to the signaling server again and registers; the new code arrives as `registered` on the returned
/// receiver.
async fn reconnect_signaling(shared: &Shared) -> Result<mpsc::Receiver<ServerMessage>, SessionError> {
    let client = tokio::time::timeout(
        Duration::from_secs(10),
        SignalingClient::connect_with(&shared.server_url, &shared.tls),
    )
    .await
    .map_err(timeout_err("the signaling server"))??;
    client.send(first_registration(shared.unattended.as_ref())).await?;
    let (sender, incoming) = client.split();
    shared.signaling.replace(sender);
    Ok(incoming)
}

/// Makes an offer, applies it locally and sends it to the viewer; returns its SDP. With `ice_restart`, the offer
/// carries new ICE credentials: both sides gather and check candidate pairs again, on the addresses they have
/// now; DTLS, media and the control channel carry on once a pair works.
async fn send_offer(
    connection: &Arc<dyn PeerConnection>,
    shared: &Shared,
    viewer: &ViewerId,
    ice_restart: bool,
) -> Result<String, SessionError> {
    let options = rtc::peer_connection::configuration::RTCOfferOptions { ice_restart };
    let offer = connection
        .create_offer(Some(options))
        .await
        .map_err(TransportError::webrtc)?;
    connection
        .set_local_description(offer.clone())
        .await
        .map_err(TransportError::webrtc)?;
    shared
        .signaling
        .send(ClientMessage::Signal {
            v: PROTOCOL_VERSION,
            to: viewer.clone(),
            payload: SignalPayload::Offer { sdp: offer.sdp.clone() },
        })
        .await?;
    Ok(offer.sdp)
}

/// Lets go of keys and buttons the viewers' input still holds. Blocks briefly if the input queue is full, so
/// the release is never the event that gets dropped.
fn release_held_input(shared: &Shared) {
    if let Some(input) = &shared.input {
        let _ = input.send(InputCommand::ReleaseAll);
    }
}

async fn send_video(
    mut sender: Av1RtpSender,
    mut frames: broadcast::Receiver<OutFrame>,
    encoder: std::sync::mpsc::Sender<EncoderCommand>,
) {
    let mut lag = LagRecovery::default();
    loop {
        match frames.recv().await {
            Ok(frame) => {
                if let FrameAction::Skip { request_keyframe } = lag.on_frame(frame.keyframe) {
                    if request_keyframe {
                        let _ = encoder.send(EncoderCommand::Keyframe);
                    }
                    continue;
                }
                if let Err(e) = sender.send(&frame.data, frame.encoded_at, frame.captured).await {
                    tracing::debug!("video send failed: {e}");
                    if matches!(e, TransportError::Closed) {
                        break;
                    }
                }
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                // This viewer fell behind and lost frames: only a keyframe repairs its picture (see `lag`).
                tracing::debug!(missed, "viewer lagging; requesting a keyframe");
                lag.on_frames_lost();
                let _ = encoder.send(EncoderCommand::Keyframe);
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
}
