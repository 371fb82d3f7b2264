//! The sharing side: one capture/encode thread feeds every admitted viewer; consent and permissions are decided
//! here and enforced on every control message.

use super::candidates::add_candidates;
use super::host_core::{Admitted, FromViewer, HostCore, HostInput, HostOutput, ToViewer, UserAction};
use super::reconnect::ConnectionState;
use super::sleep_until_or_never;
use super::viewer_link::{LinkConfig, LinkInput, LinkOutput, UnattendedLink, ViewerLink, TARGET_BITRATE_INTERVAL};
use super::SessionError;
use crate::audit::{AuditEvent, AuditFile};
use crate::capture::ScreenSource;
use crate::control::protocol::{encode, HostMessage, MAX_CLIPBOARD_BYTES, MAX_TEXT_BYTES};
use crate::control::{ControlErrorCode, InputEvent, Permissions, CHANNEL_LABEL};
use crate::encode::{Backend, ControllerConfig, EncoderConfig};
use crate::input::InputSink;
use crate::pipeline::EncodePipeline;
use crate::send::cursor::CursorUpdate;
use crate::send::encode_loop::{encode_thread, EncoderCommand, EncoderCommands, OutFrame, SendCounters};
use crate::send::fan_out::send_video;
use crate::session::event_queue::{event_queue, Droppable, EventReceiver, EventSender};
use crate::session::verification::sdp_fingerprint;
use crate::signaling::{
    ClientMessage, ServerMessage, SignalPayload, SignalingClient, SignalingSender, SignalingTls, VerifiedIdentity,
    PROTOCOL_VERSION,
};
use crate::transport::peer::{new_peer, PeerEvent};
use crate::transport::video_send::{new_video_track, Av1RtpSender};
use crate::transport::{TransportConfig, TransportError};
use crate::unattended::handshake::HostHandshake;
use crate::unattended::{DeviceId, UnattendedConfig};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelInit};
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::{PeerConnection, RTCSessionDescription};

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
    pub(super) session_code: String,
    /// Where the answer goes; `None` once answered (and in the state machine, which leaves it to the driver).
    pub(super) reply: Option<mpsc::Sender<Command>>,
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
            send_command(
                &reply,
                Command::User(UserAction::Consent {
                    viewer: self.viewer.clone(),
                    name: self.name.clone(),
                    session_code: std::mem::take(&mut self.session_code),
                    access: self.unattended_access.take(),
                    consent,
                }),
            );
        }
    }
}

impl Drop for JoinRequest {
    fn drop(&mut self) {
        if let Some(reply) = self.reply.take() {
            send_command(
                &reply,
                Command::User(UserAction::Consent {
                    viewer: self.viewer.clone(),
                    name: self.name.clone(),
                    session_code: String::new(),
                    access: None,
                    consent: Consent::Deny("the host did not answer".into()),
                }),
            );
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

/// What the [`Host`] handle and a [`JoinRequest`]'s answer send to the host's loop.
pub(super) enum Command {
    /// A decision for the state machine.
    User(UserAction),
    /// A new code: the reply waits for the server's answer.
    Invite(oneshot::Sender<Result<String, SessionError>>),
}

/// Commands waiting for the host's loop, at most. When full, [`Host`]'s methods that return a `Result` fail with
/// [`SessionError::RateLimited`] and the others (and a join request's answer) drop the command with a warning: the
/// loop is stuck or the app floods it, and waiting would block the app's thread.
const COMMAND_QUEUE: usize = 256;

/// The order to stop, on a queue of its own (one place) so that a full command queue never loses it; an end
/// already queued is as good as a second.
struct Ending {
    reason: String,
    /// Fires once the viewers were told.
    done: Option<oneshot::Sender<()>>,
}

/// Queues `command`, or drops it with a warning when the queue is full or the host has stopped.
fn send_command(commands: &mpsc::Sender<Command>, command: Command) {
    if let Err(mpsc::error::TrySendError::Full(_)) = commands.try_send(command) {
        tracing::warn!("the host's command queue is full; command dropped");
    }
}

/// Queues `command`; fails when the queue is full or the host has stopped.
fn try_command(commands: &mpsc::Sender<Command>, command: Command) -> Result<(), SessionError> {
    commands.try_send(command).map_err(|e| match e {
        mpsc::error::TrySendError::Full(_) => SessionError::RateLimited("the host's command queue is full".into()),
        mpsc::error::TrySendError::Closed(_) => SessionError::Ended("host stopped".into()),
    })
}

/// Shares a screen with viewers who join by code and whom the host user admits.
pub struct Host {
    code: String,
    commands: mpsc::Sender<Command>,
    ending: mpsc::Sender<Ending>,
    events: Option<EventReceiver<HostEvent>>,
    counters: Arc<SendCounters>,
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

        let counters = Arc::new(SendCounters::default());
        counters
            .target_bitrate
            .store(u64::from(config.max_bitrate_bps), Ordering::Relaxed);
        let (frames_tx, _) = broadcast::channel::<OutFrame>(16);
        let (cursor_tx, cursor_rx) = watch::channel::<Option<CursorUpdate>>(None);
        let (encoder_tx, encoder_rx) = EncoderCommands::new();
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

        let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE);
        let (ending_tx, ending_rx) = mpsc::channel(1);
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
            ending_rx,
            events_tx,
        ));
        tracing::info!(width, height, "hosting; session code issued");
        Ok(Host {
            code,
            commands: commands_tx,
            ending: ending_tx,
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
    ///
    /// # Errors
    /// What the signaling server refused (e.g. [`SessionError::RateLimited`] past its codes per host),
    /// [`SessionError::Signaling`] while the server is unreachable, [`SessionError::Timeout`] after 10 s without
    /// an answer, [`SessionError::Ended`] after the host stopped.
    pub async fn invite(&self) -> Result<String, SessionError> {
        self.invite_future().await
    }

    /// Like [`Host::invite`], as a future that does not borrow the host.
    pub fn invite_future(&self) -> impl std::future::Future<Output = Result<String, SessionError>> + Send + 'static {
        let commands = self.commands.clone();
        async move {
            let (tx, rx) = oneshot::channel();
            try_command(&commands, Command::Invite(tx))?;
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
        send_command(
            &self.commands,
            Command::User(UserAction::SetPermissions {
                viewer: viewer.clone(),
                permissions,
            }),
        );
    }

    /// Records that the host's user compared this viewer's verification code ([`HostEvent::VerificationCode`])
    /// with the technician's and found them equal. With [`HostConfig::require_verification`] on, the viewer's
    /// granted control and clipboard permissions apply from now on (the viewer is told); without it, this only
    /// marks the session as verified. Unknown viewers are ignored.
    pub fn confirm_verification(&self, viewer: &ViewerId) {
        send_command(
            &self.commands,
            Command::User(UserAction::ConfirmVerification { viewer: viewer.clone() }),
        );
    }

    /// Disconnects one viewer.
    pub fn disconnect(&self, viewer: &ViewerId, reason: impl Into<String>) {
        send_command(
            &self.commands,
            Command::User(UserAction::Disconnect {
                viewer: viewer.clone(),
                reason: reason.into(),
            }),
        );
    }

    /// Sends clipboard text to every viewer holding the clipboard permission.
    ///
    /// # Errors
    /// [`SessionError::InvalidArgument`] for text over the size limit, [`SessionError::RateLimited`] when the
    /// host's command queue is full (256 waiting), [`SessionError::Ended`] after the host stopped.
    pub fn send_clipboard(&self, text: impl Into<String>) -> Result<(), SessionError> {
        let text = text.into();
        if text.len() > MAX_CLIPBOARD_BYTES {
            return Err(SessionError::InvalidArgument(format!(
                "clipboard text over {MAX_CLIPBOARD_BYTES} bytes"
            )));
        }
        try_command(&self.commands, Command::User(UserAction::Clipboard(text)))
    }

    /// Sends a chat line to every viewer.
    ///
    /// # Errors
    /// [`SessionError::InvalidArgument`] for text over the size limit, [`SessionError::RateLimited`] when the
    /// host's command queue is full (256 waiting), [`SessionError::Ended`] after the host stopped.
    pub fn send_chat(&self, text: impl Into<String>) -> Result<(), SessionError> {
        let text = text.into();
        if text.len() > MAX_TEXT_BYTES {
            return Err(SessionError::InvalidArgument(format!(
                "chat text over {MAX_TEXT_BYTES} bytes"
            )));
        }
        try_command(&self.commands, Command::User(UserAction::Chat(text)))
    }

    /// Changes the highest video bitrate (congestion control may still ask for less); the encoder follows at
    /// once.
    ///
    /// # Errors
    /// [`SessionError::InvalidArgument`] outside 10 kbit/s..=100 Mbit/s, [`SessionError::RateLimited`] when the
    /// host's command queue is full, [`SessionError::Ended`] after the host stopped.
    pub fn set_max_bitrate(&self, bps: u32) -> Result<(), SessionError> {
        if !(10_000..=100_000_000).contains(&bps) {
            return Err(SessionError::InvalidArgument(format!(
                "bitrate {bps} outside 10 kbit/s..=100 Mbit/s"
            )));
        }
        try_command(&self.commands, Command::User(UserAction::MaxBitrate(bps)))
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
        let ending = Ending {
            reason: reason.into(),
            done: Some(done_tx),
        };
        if self.ending.send(ending).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(5), done_rx).await;
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.ending.try_send(Ending {
            reason: "the host stopped sharing".into(),
            done: None,
        });
    }
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
    encoder: EncoderCommands,
    input: Option<std::sync::mpsc::SyncSender<InputCommand>>,
    counters: Arc<SendCounters>,
    max_bitrate: u32,
    require_verification: bool,
    unattended: Option<UnattendedConfig>,
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

/// The host's loop: moves signaling messages, user commands and viewer notes into the state machine, and carries
/// out what it decides.
#[allow(clippy::too_many_arguments)]
async fn run_host(
    shared: Shared,
    audit: Option<AuditFile>,
    first_code: String,
    mut incoming: mpsc::Receiver<ServerMessage>,
    mut commands: mpsc::Receiver<Command>,
    commands_tx: mpsc::Sender<Command>,
    mut ending: mpsc::Receiver<Ending>,
    events: EventSender<HostEvent>,
) {
    let shared = Arc::new(shared);
    let mut core = HostCore::new(first_code, shared.max_bitrate, shared.unattended.clone());
    let (from_viewers_tx, mut from_viewers) = mpsc::channel::<FromViewer>(FROM_VIEWERS_QUEUE);
    let mut effects = HostEffects {
        shared: shared.clone(),
        audit,
        events,
        viewers: HashMap::new(),
        invites: VecDeque::new(),
        commands: commands_tx,
        from_viewers: from_viewers_tx,
    };
    let (end_reason, done) = loop {
        let input = tokio::select! {
            message = incoming.recv(), if core.signaling_open() => match message {
                None => HostInput::SignalingClosed,
                Some(message) => HostInput::Server(message),
            },
            _ = sleep_until_or_never(core.reconnect_deadline()) => match reconnect_signaling(&shared).await {
                Ok(receiver) => {
                    incoming = receiver;
                    HostInput::SignalingReconnected
                }
                Err(e) => {
                    tracing::info!("signaling server still unreachable: {e}");
                    HostInput::ReconnectFailed
                }
            },
            Some(command) = commands.recv() => match command {
                Command::User(action) => HostInput::User(action),
                Command::Invite(reply) => {
                    effects.invites.push_back(reply);
                    HostInput::User(UserAction::Invite)
                }
            },
            end = ending.recv() => match end {
                // The handle is gone without a word (it always sends one when dropped).
                None => break ("the host stopped sharing".to_string(), None),
                Some(Ending { reason, done }) => break (reason, done),
            },
            Some(note) = from_viewers.recv() => HostInput::Viewer(note),
        };
        core.handle(input, Instant::now());
        while let Some(output) = core.poll_output() {
            effects.carry_out(output).await;
        }
    };
    // Each viewer is told, and given a moment to say goodbye on its own connection.
    for (tx, task) in effects.viewers.drain().map(|(_, v)| v) {
        to_viewer(&tx, ToViewer::End(end_reason.clone()));
        let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
    }
    if let Some(done) = done {
        let _ = done.send(());
    }
    shared.encoder.stop();
    core.finish(end_reason);
    while let Some(output) = core.poll_output() {
        effects.carry_out(output).await;
    }
}

/// What the host's loop acts on: the state machine's outputs become sends, tasks, events and audit lines here.
struct HostEffects {
    shared: Arc<Shared>,
    audit: Option<AuditFile>,
    events: EventSender<HostEvent>,
    /// Each running viewer task and its inbox.
    viewers: HashMap<ViewerId, (mpsc::Sender<ToViewer>, tokio::task::JoinHandle<()>)>,
    /// Invite replies, oldest first: the state machine answers them in this order.
    invites: VecDeque<oneshot::Sender<Result<String, SessionError>>>,
    /// Handed to each join request, for its answer.
    commands: mpsc::Sender<Command>,
    /// Handed to each viewer task, for its notes.
    from_viewers: mpsc::Sender<FromViewer>,
}

impl HostEffects {
    async fn carry_out(&mut self, output: HostOutput) {
        match output {
            HostOutput::Signal(message) => {
                if let Err(e) = self.shared.signaling.send(message).await {
                    tracing::debug!("signaling message not sent: {e}");
                }
            }
            HostOutput::ToViewer { viewer, message } => {
                if let Some((tx, _)) = self.viewers.get(&viewer) {
                    to_viewer(tx, message);
                }
            }
            HostOutput::Start(admitted) => {
                let viewer = admitted.viewer.clone();
                let (tx, rx) = mpsc::channel(TO_VIEWER_QUEUE);
                let task = tokio::spawn(run_viewer(self.shared.clone(), admitted, rx, self.from_viewers.clone()));
                self.viewers.insert(viewer, (tx, task));
            }
            HostOutput::Forget(viewer) => {
                self.viewers.remove(&viewer);
            }
            HostOutput::InviteAnswer(answer) => {
                if let Some(reply) = self.invites.pop_front() {
                    let _ = reply.send(answer);
                }
            }
            HostOutput::Event(mut event) => {
                if let HostEvent::JoinRequest(request) = &mut event {
                    request.reply = Some(self.commands.clone());
                }
                let _ = self.events.send(event);
            }
            HostOutput::Audit(event) => record(&mut self.audit, event),
            HostOutput::EncoderBitrate(bps) => {
                self.shared
                    .counters
                    .target_bitrate
                    .store(u64::from(bps), Ordering::Relaxed);
                self.shared.encoder.send(EncoderCommand::Bitrate(bps));
            }
        }
    }
}

/// Appends `event` to the audit trail, when there is one.
fn record(audit: &mut Option<AuditFile>, event: AuditEvent) {
    if let Some(file) = audit {
        file.write(&event);
    }
}

/// What a viewer's control channel and video track report, funnelled into one queue.
enum ViewerInput {
    Channel(DataChannelEvent),
    Rtcp(TrackLocalEvent),
}

async fn send_control(channel: &Arc<dyn DataChannel>, message: &HostMessage) {
    if let Err(e) = channel.send_text(&encode(message)).await {
        tracing::debug!("control message not sent: {e}");
    }
}

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
    let _backlog = shared.counters.backlogs.register(peer.send_backlog.clone());
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
    let viewer = &admitted.viewer;
    let connection: Arc<dyn PeerConnection> = peer.connection;
    let mut peer_events = peer.events;
    let encoder_target = peer.encoder_target;
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
    let mut unattended = None;
    if let (Some(access), Some(config)) = (&admitted.access, &shared.unattended) {
        let (_, kdf, hash, totp) = config.policy.entry_or_decoy(access, &config.identity);
        let (handshake, challenge) = HostHandshake::start(&config.identity.device_id(), access, &kdf, &hash, totp);
        let identity = config.identity.clone();
        unattended = Some(UnattendedLink {
            handshake,
            identity,
            access: access.clone(),
        });
        let payload = SignalPayload::Auth {
            kdf: challenge.kdf,
            spake: crate::text::base64_encode(&challenge.spake),
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

    let config = LinkConfig {
        viewer: viewer.clone(),
        name: admitted.name.clone(),
        session_code: admitted.session_code.clone(),
        granted: admitted.permissions,
        require_verification: shared.require_verification,
        own_fingerprint,
        resume_token: admitted.resume_token.clone(),
        screen: shared.screen,
        host_name: shared.host_name.clone(),
        takes_input: shared.input.is_some(),
        unattended,
    };
    let mut link = ViewerLink::new(config, Instant::now());
    let mut video_task: Option<tokio::task::JoinHandle<()>> = None;
    let mut cursor = shared.cursor.clone();
    let mut stats_tick = tokio::time::interval(Duration::from_secs(1));
    let mut target_tick = tokio::time::interval(TARGET_BITRATE_INTERVAL);
    target_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut target_passed_on = None;
    // Cleared when control ends, so that input already queued is not injected after the revoke.
    let mut control_live = Arc::new(AtomicBool::new(link.control_in_force()));

    let outcome = 'session: loop {
        let input = tokio::select! {
            _ = sleep_until_or_never(link.deadline()) => {
                link.handle_timeout(Instant::now());
                None
            }
            m = from_host.recv() => Some(match m {
                Some(m) => LinkInput::Host(m),
                None => LinkInput::Host(ToViewer::End("host stopped".to_string())),
            }),
            e = peer_events.recv() => match e {
                Some(PeerEvent::LocalCandidate(c)) => Some(LinkInput::LocalCandidate(c)),
                Some(PeerEvent::State(state)) => Some(LinkInput::Connection(state.into())),
                Some(_) => None,
                None => Some(LinkInput::Connection(ConnectionState::Closed)),
            },
            Some(i) = inputs.recv() => match i {
                ViewerInput::Channel(DataChannelEvent::OnOpen) => {
                    cursor.mark_changed();
                    Some(LinkInput::ChannelOpen)
                }
                ViewerInput::Channel(DataChannelEvent::OnMessage(message)) => Some(LinkInput::Control(message.data.freeze())),
                ViewerInput::Channel(DataChannelEvent::OnClose) => Some(LinkInput::ChannelClosed),
                ViewerInput::Channel(_) => None,
                // Only keyframe requests are passed up (see transport::peer).
                ViewerInput::Rtcp(TrackLocalEvent::OnRtcpPacket(_)) => Some(LinkInput::KeyframeRequest),
                #[allow(unreachable_patterns)]
                ViewerInput::Rtcp(_) => None,
            },
            changed = cursor.changed(), if link.wants_cursor() => match changed {
                Ok(()) => cursor.borrow_and_update().clone().map(LinkInput::Cursor),
                Err(_) => None,
            },
            _ = stats_tick.tick() => Some(LinkInput::StatsTick),
            _ = target_tick.tick() => match encoder_target.get() {
                Some(bps) if target_passed_on != Some(bps) => {
                    target_passed_on = Some(bps);
                    Some(LinkInput::TargetBitrate { bits_per_second: bps })
                }
                _ => None,
            },
        };
        if let Some(input) = input {
            link.handle(input, Instant::now(), unix_secs());
        }
        while let Some(output) = link.poll_output() {
            match output {
                LinkOutput::Signal(message) => {
                    if let Err(e) = shared.signaling.send(message).await {
                        tracing::debug!(%viewer, "signaling message not sent: {e}");
                    }
                }
                LinkOutput::ApplyAnswer { sdp, restart } => {
                    let applied = match RTCSessionDescription::answer(sdp) {
                        Ok(answer) => connection
                            .set_remote_description(answer)
                            .await
                            .map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    let input = match applied {
                        Ok(()) => LinkInput::AnswerApplied,
                        Err(error) => LinkInput::AnswerRefused { restart, error },
                    };
                    link.handle(input, Instant::now(), unix_secs());
                }
                LinkOutput::AddCandidates(candidates) => add_candidates(&connection, candidates).await,
                LinkOutput::RestartIce => {
                    if let Err(e) = send_offer(&connection, shared, link.address(), true).await {
                        tracing::warn!(%viewer, "ICE restart not sent: {e}");
                    }
                }
                LinkOutput::Control(message) => send_control(&channel, &message).await,
                LinkOutput::Note(note) => send_note(notes, note).await,
                LinkOutput::Inject(event) => {
                    let Some(input) = &shared.input else { continue };
                    let command = InputCommand::Inject {
                        event,
                        allowed: control_live.clone(),
                    };
                    if input.try_send(command).is_err() {
                        tracing::debug!(%viewer, "input queue full; event dropped");
                    } else {
                        link.input_injected();
                    }
                }
                LinkOutput::ControlLive(live) => {
                    let had_control = control_live.swap(false, Ordering::AcqRel);
                    control_live = Arc::new(AtomicBool::new(live));
                    if had_control && !live {
                        release_held_input(shared);
                    }
                }
                LinkOutput::StartVideo => {
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
                }
                LinkOutput::Keyframe => {
                    shared.encoder.send(EncoderCommand::Keyframe);
                }
                LinkOutput::Finish { result, linger } => {
                    // Give the last control message a moment to leave before the connection closes.
                    if !linger.is_zero() {
                        tokio::time::sleep(linger).await;
                    }
                    break 'session result;
                }
            }
        }
    };
    let events = link.take_input_events();
    if events > 0 {
        send_note(
            notes,
            FromViewer::InputCount {
                viewer: viewer.clone(),
                events,
            },
        )
        .await;
    }
    if control_live.swap(false, Ordering::AcqRel) {
        release_held_input(shared);
    }
    if let Some(task) = video_task {
        shared.counters.watchers.fetch_sub(1, Ordering::Relaxed);
        task.abort();
    }
    outcome
}

/// Seconds since the Unix epoch (0 before it): the unattended handshake's TOTP clock.
fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Passes a viewer's note to the host's loop: chat, clipboard, refusals and bitrate estimates are dropped when its
/// queue is full (a flooding viewer loses its own messages); lifecycle notes wait for room.
async fn send_note(notes: &mpsc::Sender<FromViewer>, note: FromViewer) {
    match note {
        FromViewer::Clipboard { .. }
        | FromViewer::Chat { .. }
        | FromViewer::Refused { .. }
        | FromViewer::TargetBitrate { .. } => {
            let _ = notes.try_send(note);
        }
        note => {
            let _ = notes.send(note).await;
        }
    }
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
pub(super) fn device_registration(
    unattended: Option<&UnattendedConfig>,
    nonce: &str,
) -> Result<ClientMessage, SessionError> {
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
