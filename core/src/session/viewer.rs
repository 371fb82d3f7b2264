//! The watching side: joins by code, receives and decodes the host's screen, sends input, clipboard and chat.

use super::candidates::add_candidates;
use super::join_flow::{JoinFlow, JoinStep, Offered};
use super::reconnect::ConnectionState;
use super::viewer_core::{ViewerCore, ViewerInput, ViewerOutput, Welcome};
use super::{sleep_until_or_never, FrameQueue, SessionError};
use crate::control::protocol::{encode, parse_host_message, CursorImageMessage};
use crate::control::{ControlErrorCode, InputEvent, Permissions, ViewerMessage};
use crate::decode::{DecodedFrame, DecoderConfig};
use crate::receive::rtp_loop::{self, VideoShared};
use crate::session::event_queue::{event_queue, Droppable, EventReceiver, EventSender};
use crate::session::verification::{sdp_fingerprint, verification_code};
use crate::signaling::{
    ClientMessage, PeerId, ServerMessage, SignalPayload, SignalingClient, SignalingSender, SignalingTls,
    PROTOCOL_VERSION,
};
use crate::transport::capture_time::ABS_CAPTURE_TIME_URI;
use crate::transport::peer::{new_peer, Peer, PeerEvent};
use crate::transport::stats::{fill_from_report, ConnectionStats};
use crate::transport::video_send::negotiated_extension_id;
use crate::transport::{TransportConfig, TransportError};
use crate::unattended::handshake::{technician_answer, Expectation, Proof};
use crate::unattended::DeviceId;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::peer_connection::{PeerConnection, RTCSessionDescription, StatsSelector};

/// Settings of a [`Viewer`], built with [`ViewerConfig::new`] (or [`ViewerConfig::for_device`]) and its setters;
/// each setter says its default and range.
///
/// ```
/// use peerdesk::control::Permissions;
/// use peerdesk::session::ViewerConfig;
/// use std::time::Duration;
///
/// let config = ViewerConfig::new("wss://support.example/ws", "1234567890", "Alex (support)")
///     .asks(Permissions::VIEW_ONLY)
///     .frame_queue(1)
///     .consent_timeout(Duration::from_secs(60));
/// # let _ = config;
/// ```
#[derive(Debug, Clone)]
pub struct ViewerConfig {
    /// The signaling server's WebSocket URL.
    pub(crate) server_url: String,
    /// The session code the host's user read out.
    pub(crate) code: String,
    /// Shown to the host's user in the consent prompt.
    pub(crate) name: String,
    /// Network settings.
    pub(crate) transport: TransportConfig,
    /// Decoded frames kept for a slow app; older ones are dropped (and counted).
    pub(crate) frame_queue: usize,
    /// How long to wait for the host user's consent.
    pub(crate) consent_timeout: Duration,
    /// How long to wait for the connection once admitted.
    pub(crate) connect_timeout: Duration,
    /// Decoder settings.
    pub(crate) decoder: DecoderConfig,
    /// Which servers a `wss://` signaling URL may present certificates from (default: the webpki roots and
    /// the system's bundle).
    pub(crate) tls: SignalingTls,
    /// Unattended access instead of a session code (see [`ViewerConfig::for_device`]).
    pub(crate) unattended: Option<UnattendedLogin>,
    /// What this viewer asks the host's user for, shown to them in plain words. Default:
    /// [`Permissions::CONTROL`] (see the screen, use mouse and keyboard). The host's user decides what is
    /// granted.
    pub(crate) asks: Permissions,
    /// A technician account of the signaling server's operator to sign in with (see
    /// [`ViewerConfig::sign_in`]); none by default.
    pub(crate) account: Option<AccountToken>,
}

/// A technician account on the operator's signaling server and its API token. With it, the host's consent
/// prompt says `verified by <operator>` and shows the account name instead of a self-chosen name.
#[derive(Clone)]
pub struct AccountToken {
    /// The account name.
    pub account: String,
    token: String,
}

impl std::fmt::Debug for AccountToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token never reaches a log.
        f.debug_struct("AccountToken")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

/// What a technician proves for unattended access: the device, the access name, its secret and, when the
/// access requires it, the current TOTP code. Neither the secret nor the code leaves this process in a usable
/// form (see [`crate::unattended`]).
#[derive(Clone)]
pub struct UnattendedLogin {
    /// The device to reach.
    pub device: DeviceId,
    /// The access name the device's policy knows.
    pub access: String,
    secret: String,
    totp_code: Option<String>,
}

impl std::fmt::Debug for UnattendedLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret and code never reach a log.
        f.debug_struct("UnattendedLogin")
            .field("device", &self.device)
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

impl ViewerConfig {
    /// Settings for joining the host that owns the one-time `code` through the signaling server at
    /// `server_url`, showing `name` to the host's user (at most 64 characters are kept), with every default: a
    /// queue of 3 decoded frames, 2 minutes for consent, 20 s to connect, asking for [`Permissions::CONTROL`].
    #[must_use]
    pub fn new(server_url: impl Into<String>, code: impl Into<String>, name: impl Into<String>) -> Self {
        ViewerConfig {
            server_url: server_url.into(),
            code: code.into(),
            name: name.into().chars().take(64).collect(),
            transport: TransportConfig::default(),
            frame_queue: 3,
            consent_timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(20),
            decoder: DecoderConfig::default(),
            tls: SignalingTls::default(),
            unattended: None,
            asks: Permissions::CONTROL,
            account: None,
        }
    }
    /// Signs in to the signaling server as the technician `account` with its API token before joining (the
    /// server's operator issues tokens: `peerdesk-signaling-server --new-token NAME`). The host's prompt then
    /// names the account as verified by the operator. [`Viewer::join`] fails with
    /// [`SessionError::AuthenticationFailed`] for an unknown account or a wrong token. Default: not signed in.
    ///
    /// ```
    /// use peerdesk::session::ViewerConfig;
    ///
    /// let config = ViewerConfig::new("wss://support.example/ws", "1234567890", "Alex").sign_in("alex", "pdt_…");
    /// assert!(!format!("{config:?}").contains("pdt_"), "the token never reaches a log");
    /// ```
    #[must_use]
    pub fn sign_in(mut self, account: impl Into<String>, token: impl Into<String>) -> Self {
        self.account = Some(AccountToken {
            account: account.into(),
            token: token.into(),
        });
        self
    }
    /// What to ask the host's user for. Default: [`Permissions::CONTROL`].
    #[must_use]
    pub fn asks(mut self, permissions: Permissions) -> Self {
        self.asks = permissions;
        self
    }
    /// Unattended access to `device` as the technician `access`, proving `secret`: no session code and, unless
    /// the access's policy asks the customer, no prompt. The name shown to the host is the access name (change
    /// it with [`ViewerConfig::name`]). [`Viewer::join`] then fails with [`SessionError::AuthenticationFailed`]
    /// for a wrong secret or code and [`SessionError::HostNotAuthenticated`] when the host cannot prove itself.
    ///
    /// ```
    /// use peerdesk::session::ViewerConfig;
    ///
    /// let device = "123 456 789".parse()?;
    /// let config = ViewerConfig::for_device("wss://support.example/ws", device, "alex", "correct horse battery")
    ///     .totp_code("287082");
    /// # let _ = config;
    /// # Ok::<(), peerdesk::unattended::UnattendedError>(())
    /// ```
    pub fn for_device(
        server_url: impl Into<String>,
        device: DeviceId,
        access: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        let access = access.into();
        let mut config = ViewerConfig::new(server_url, String::new(), access.clone());
        config.unattended = Some(UnattendedLogin {
            device,
            access,
            secret: secret.into(),
            totp_code: None,
        });
        config
    }
    /// The TOTP code for an access that requires one (six digits; spaces are ignored). Default: none.
    #[must_use]
    pub fn totp_code(mut self, code: impl Into<String>) -> Self {
        if let Some(login) = &mut self.unattended {
            login.totp_code = Some(code.into());
        }
        self
    }
    /// The name shown to the host's user in the consent prompt (unverified unless signed in with
    /// [`ViewerConfig::sign_in`]); at most 64 characters are kept. Default: the `name` given to `new`.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into().chars().take(64).collect();
        self
    }
    /// Network settings: ICE servers you operate, loopback-only binding, relay-only.
    /// Default: [`TransportConfig::default`] (no STUN/TURN server, every local interface).
    #[must_use]
    pub fn transport(mut self, transport: TransportConfig) -> Self {
        self.transport = transport;
        self
    }
    /// Decoded frames kept for an app that takes them slowly, 1–64 (clamped); when full, the oldest is dropped
    /// and counted (`frames_dropped`). Default: 3 (about 100 ms at 30 fps: low latency over completeness).
    #[must_use]
    pub fn frame_queue(mut self, frames: usize) -> Self {
        self.frame_queue = frames.clamp(1, 64);
        self
    }
    /// How long [`Viewer::join`] waits for the host's user to answer before it fails with
    /// [`SessionError::Timeout`]. Default: 120 s.
    #[must_use]
    pub fn consent_timeout(mut self, timeout: Duration) -> Self {
        self.consent_timeout = timeout;
        self
    }
    /// How long [`Viewer::join`] waits for the signaling server, and for the connection once admitted, before
    /// it fails with [`SessionError::Timeout`]. Default: 20 s.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
    /// Decoder settings (threads, frame delay). Default: [`DecoderConfig::default`].
    #[must_use]
    pub fn decoder(mut self, decoder: DecoderConfig) -> Self {
        self.decoder = decoder;
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

/// What happens in a viewed session.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ViewerEvent {
    /// The host's cursor moved (fractions of the screen) or changed its image.
    Cursor {
        /// Horizontal position.
        x: f32,
        /// Vertical position.
        y: f32,
        /// Over the shared screen.
        visible: bool,
        /// The new image, when it changed.
        image: Option<CursorImageMessage>,
    },
    /// Clipboard text from the host.
    Clipboard(String),
    /// A chat line from the host.
    Chat(String),
    /// The host changed this viewer's permissions.
    PermissionsChanged(Permissions),
    /// The connection to the host was lost (network cut, address change); the host restarts ICE and the session
    /// waits up to [`RECONNECT_WINDOW`](crate::session::RECONNECT_WINDOW) for it to come back. Video and input
    /// pause.
    Reconnecting,
    /// The lost connection is back.
    Reconnected,
    /// The host refused a message (e.g. input without the control permission).
    Refused {
        /// Why, as a code to branch on.
        code: ControlErrorCode,
        /// The same, in words for people; from the other side, so escape it before printing it to a terminal.
        message: String,
    },
    /// The session ended.
    Ended {
        /// Why, in words for people; from the other side, so escape it before printing it to a terminal.
        reason: String,
    },
}

impl Droppable for ViewerEvent {
    fn droppable(&self) -> bool {
        matches!(
            self,
            ViewerEvent::Cursor { .. } | ViewerEvent::Clipboard(_) | ViewerEvent::Chat(_) | ViewerEvent::Refused { .. }
        )
    }
}

#[derive(Debug, Default)]
struct Counters {
    /// The video path's counters and its keyframe-request signal.
    video: Arc<VideoShared>,
    stats: Mutex<ConnectionStats>,
}

enum Command {
    Send(ViewerMessage),
    Leave(String, oneshot::Sender<()>),
}

/// Control messages waiting to go to the host, at most: about ten seconds of a 100 Hz mouse. When full, the
/// sending method fails with [`SessionError::RateLimited`] and the message is not sent (the data channel is not
/// keeping up, and queueing more would only make input later); [`Viewer::leave`] waits for room.
const COMMAND_QUEUE: usize = 1024;

/// A joined session.
pub struct Viewer {
    commands: mpsc::Sender<Command>,
    events: Option<EventReceiver<ViewerEvent>>,
    frames: Arc<FrameQueue<DecodedFrame>>,
    permissions: watch::Receiver<Permissions>,
    screen: (u32, u32),
    host_name: String,
    counters: Arc<Counters>,
    verification_code: String,
    device_key: Option<[u8; 32]>,
}

impl std::fmt::Debug for Viewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Viewer")
            .field("screen", &self.screen)
            .field("host_name", &self.host_name)
            .finish()
    }
}

impl Viewer {
    /// Joins the host that owns `config.code`: waits for the host user's consent, connects, and returns once
    /// the host has welcomed this viewer. Refusal is [`SessionError::Denied`]; a wrong code
    /// [`SessionError::InvalidCode`]; an old one [`SessionError::ExpiredCode`].
    pub async fn join(config: ViewerConfig) -> Result<Viewer, SessionError> {
        let mut client = SignalingClient::connect_with(&config.server_url, &config.tls).await?;
        if let Some(account) = &config.account {
            sign_in(&mut client, account, config.connect_timeout).await?;
        }
        let join = match &config.unattended {
            Some(login) => ClientMessage::JoinDevice {
                v: PROTOCOL_VERSION,
                device: login.device.as_str().to_string(),
                access: login.access.clone(),
                name: config.name.clone(),
                asks: Some(config.asks),
            },
            None => ClientMessage::Join {
                v: PROTOCOL_VERSION,
                code: config.code.clone(),
                name: config.name.clone(),
                asks: Some(config.asks),
            },
        };
        client.send(join).await?;
        // Pending → accepted → the host's offer (and, unattended, its challenge).
        let mut flow = JoinFlow::new(
            Instant::now(),
            config.consent_timeout,
            config.connect_timeout,
            config.unattended.is_some(),
        );
        let offered = loop {
            let wait = flow.deadline().saturating_duration_since(Instant::now());
            let step = match tokio::time::timeout(wait, client.recv()).await {
                Ok(Some(message)) => flow.handle(message, Instant::now()),
                Ok(None) => JoinStep::Failed(flow.closed()),
                Err(_) => match flow.handle_timeout(Instant::now()) {
                    Some(e) => JoinStep::Failed(e),
                    None => JoinStep::Waiting,
                },
            };
            match step {
                JoinStep::Waiting => {}
                JoinStep::Ready(offered) => break *offered,
                JoinStep::Failed(e) => return Err(e),
            }
        };
        let Offered {
            host,
            offer,
            challenge,
            ice_servers,
            candidates: mut remote_candidates,
        } = offered;
        let mut transport = config.transport.clone();
        transport.ice_servers.extend(ice_servers);
        // The one certificate the DTLS handshake will accept from the host; an offer naming several is refused.
        let host_fingerprint = sdp_fingerprint(&offer).map_err(|e| TransportError::InvalidSdp(e.to_string()))?;
        let peer = new_peer(&transport, &[]).await?;
        let offer = RTCSessionDescription::offer(offer).map_err(|e| TransportError::InvalidSdp(e.to_string()))?;
        peer.connection
            .set_remote_description(offer)
            .await
            .map_err(|e| TransportError::InvalidSdp(e.to_string()))?;
        let answer = peer
            .connection
            .create_answer(None)
            .await
            .map_err(TransportError::webrtc)?;
        peer.connection
            .set_local_description(answer.clone())
            .await
            .map_err(TransportError::webrtc)?;
        let own_fingerprint = sdp_fingerprint(&answer.sdp).map_err(|e| TransportError::InvalidSdp(e.to_string()))?;
        let verification_code = verification_code(&host_fingerprint, &own_fingerprint, &config.code);
        add_candidates(&peer.connection, remote_candidates.on_description_applied()).await;
        let expectation = match (&config.unattended, challenge) {
            (Some(login), Some(challenge)) => {
                let login = login.clone();
                // argon2id takes tens of milliseconds and 19 MiB: off the async threads.
                let (confirm, expectation) = tokio::task::spawn_blocking(move || {
                    technician_answer(
                        &login.device,
                        &login.access,
                        &login.secret,
                        login.totp_code.as_deref(),
                        &challenge,
                        &host_fingerprint,
                        &own_fingerprint,
                    )
                })
                .await
                .map_err(|e| SessionError::InvalidArgument(format!("the handshake task failed: {e}")))?
                .map_err(|e| SessionError::HostNotAuthenticated(e.to_string()))?;
                let payload = SignalPayload::AuthConfirm {
                    spake: crate::text::base64_encode(&confirm.spake),
                    mac: crate::text::base64_encode(&confirm.mac),
                };
                client
                    .send(ClientMessage::Signal {
                        v: PROTOCOL_VERSION,
                        to: host.clone(),
                        payload,
                    })
                    .await?;
                Some(expectation)
            }
            _ => None,
        };
        client
            .send(ClientMessage::Signal {
                v: PROTOCOL_VERSION,
                to: host.clone(),
                payload: SignalPayload::Answer { sdp: answer.sdp },
            })
            .await?;
        let device_key = match expectation {
            Some(expectation) => {
                let result = await_proof(&mut client, &peer, &host, &expectation, config.connect_timeout).await;
                if result.is_err() {
                    let _ = peer.connection.close().await;
                }
                Some(result?)
            }
            None => None,
        };
        let (sender, incoming) = client.split();

        let frames = Arc::new(FrameQueue::new(config.frame_queue));
        let counters = Arc::new(Counters::default());
        let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE);
        let (events_tx, events_rx) = event_queue();
        let (permissions_tx, permissions_rx) = watch::channel(Permissions::VIEW_ONLY);
        let (welcome_tx, welcome_rx) = oneshot::channel();
        let connection = peer.connection.clone();
        tokio::spawn(run_viewer(Task {
            peer,
            host,
            signaling: sender,
            incoming,
            commands: commands_rx,
            events: events_tx,
            permissions: permissions_tx,
            welcome: Some(welcome_tx),
            frames: frames.clone(),
            counters: counters.clone(),
            decoder: config.decoder.clone(),
            host_fingerprint,
            server_url: config.server_url.clone(),
            tls: config.tls.clone(),
        }));
        let welcome = match tokio::time::timeout(config.connect_timeout, welcome_rx).await {
            Ok(Ok(Ok(w))) => w,
            Ok(Ok(Err(e))) => return Err(e),
            Ok(Err(_)) => {
                return Err(SessionError::Ended(
                    "the connection closed before the host's welcome".into(),
                ))
            }
            Err(_) => {
                let _ = connection.close().await;
                return Err(SessionError::Timeout("the connection to the host"));
            }
        };
        let _ = permissions_rx.has_changed();
        Ok(Viewer {
            commands: commands_tx,
            events: Some(events_rx),
            frames,
            permissions: permissions_rx,
            screen: (welcome.width, welcome.height),
            host_name: welcome.host_name,
            counters,
            verification_code,
            device_key,
        }
        .with_permissions(welcome.permissions))
    }

    /// For an unattended session: the device's Ed25519 public key, which it proved it holds. An app can remember
    /// it from the first session and refuse a later one with another key (nine-digit device IDs can be ground).
    pub fn device_public_key(&self) -> Option<[u8; 32]> {
        self.device_key
    }

    fn with_permissions(self, _initial: Permissions) -> Self {
        self
    }

    /// The next decoded frame; `None` once the session ended.
    pub async fn next_frame(&self) -> Option<DecodedFrame> {
        self.frames.pop().await
    }

    /// The queue decoded frames arrive in (for a dedicated delivery thread, e.g. in bindings).
    pub fn frame_queue(&self) -> Arc<FrameQueue<DecodedFrame>> {
        self.frames.clone()
    }

    /// The next event; `None` after the session ended (or once the events were taken).
    pub async fn next_event(&mut self) -> Option<ViewerEvent> {
        self.events.as_mut()?.recv().await
    }

    /// An event if one is waiting.
    pub fn try_next_event(&mut self) -> Option<ViewerEvent> {
        self.events.as_mut()?.try_recv()
    }

    /// Takes the event stream, for an app that consumes events on a task of its own.
    pub fn take_events(&mut self) -> Option<EventReceiver<ViewerEvent>> {
        self.events.take()
    }

    /// The permissions the host granted (updated as the host changes them).
    pub fn permissions(&self) -> Permissions {
        *self.permissions.borrow()
    }

    /// Width and height of the host's screen.
    pub fn screen_size(&self) -> (u32, u32) {
        self.screen
    }

    /// The host's display name (typed by the host app; not verified by anyone).
    pub fn host_name(&self) -> &str {
        &self.host_name
    }

    /// This session's verification code: six digits in two groups (`"042 917"`), derived from the two DTLS
    /// certificates this connection is bound to (see [`crate::session::verification_code`]). Read it to the
    /// person sharing their screen: their app shows the same code exactly when nobody — signaling server or
    /// relay — sits in the middle of the encrypted connection. A host may withhold control until its user
    /// confirmed the code ([`crate::session::HostConfig::require_verification`]).
    pub fn verification_code(&self) -> &str {
        &self.verification_code
    }

    fn send(&self, message: ViewerMessage) -> Result<(), SessionError> {
        self.commands.try_send(Command::Send(message)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                SessionError::RateLimited("control messages are sent faster than the connection takes them".into())
            }
            mpsc::error::TrySendError::Closed(_) => SessionError::Ended("session ended".into()),
        })
    }

    /// Sends input to the host. The host checks it against this viewer's permissions; refusals arrive as
    /// [`ViewerEvent::Refused`].
    ///
    /// # Errors
    /// [`SessionError::RateLimited`] when messages are queued faster than the connection takes them (over 1,024
    /// waiting; the message is not sent), [`SessionError::Ended`] after the session ended.
    pub fn send_input(&self, event: InputEvent) -> Result<(), SessionError> {
        self.send(ViewerMessage::Input(event))
    }

    /// Sends clipboard text to the host (needs the clipboard permission).
    ///
    /// # Errors
    /// [`SessionError::RateLimited`] when messages are queued faster than the connection takes them (over 1,024
    /// waiting; the message is not sent), [`SessionError::Ended`] after the session ended.
    pub fn send_clipboard(&self, text: impl Into<String>) -> Result<(), SessionError> {
        self.send(ViewerMessage::Clipboard { text: text.into() })
    }

    /// Sends a chat line.
    ///
    /// # Errors
    /// [`SessionError::RateLimited`] when messages are queued faster than the connection takes them (over 1,024
    /// waiting; the message is not sent), [`SessionError::Ended`] after the session ended.
    pub fn send_chat(&self, text: impl Into<String>) -> Result<(), SessionError> {
        self.send(ViewerMessage::Chat { text: text.into() })
    }

    /// Connection figures: RTT, loss, received bitrate and frame rate over the last second, frames decoded and
    /// dropped.
    pub fn stats(&self) -> ConnectionStats {
        let mut stats = *self.counters.stats.lock().unwrap_or_else(|e| e.into_inner());
        stats.frames = self.counters.video.frames.load(Ordering::Relaxed);
        stats.bytes = self.counters.video.bytes.load(Ordering::Relaxed);
        stats.keyframes = self.counters.video.keyframes.load(Ordering::Relaxed);
        stats.packets_nacked = self.counters.video.packets_nacked.load(Ordering::Relaxed);
        stats.packets_recovered = self.counters.video.packets_recovered.load(Ordering::Relaxed);
        stats.keyframe_requests = self.counters.video.keyframe_requests.load(Ordering::Relaxed);
        stats.frames_dropped = self.frames.dropped() + self.counters.video.frames_dropped.load(Ordering::Relaxed);
        stats
    }

    /// Asks the host for a keyframe (an RTCP PLI), e.g. after the app dropped frames it needed. The host answers
    /// with a keyframe for every viewer; `stats().keyframes` counts those received.
    pub fn request_keyframe(&self) {
        self.counters.video.request_keyframe();
    }

    /// Leaves the session.
    pub async fn leave(self) {
        let (tx, rx) = oneshot::channel();
        if self
            .commands
            .send(Command::Leave("viewer left".into(), tx))
            .await
            .is_ok()
        {
            let _ = tokio::time::timeout(Duration::from_secs(3), rx).await;
        }
    }
}

struct Task {
    peer: Peer,
    host: PeerId,
    signaling: SignalingSender,
    incoming: mpsc::Receiver<ServerMessage>,
    commands: mpsc::Receiver<Command>,
    events: EventSender<ViewerEvent>,
    permissions: watch::Sender<Permissions>,
    welcome: Option<oneshot::Sender<Result<Welcome, SessionError>>>,
    frames: Arc<FrameQueue<DecodedFrame>>,
    counters: Arc<Counters>,
    decoder: DecoderConfig,
    /// The host's certificate: an ICE-restart offer must name the same one.
    host_fingerprint: crate::session::Fingerprint,
    /// Where and how to reach the signaling server again.
    server_url: String,
    tls: SignalingTls,
}

async fn run_viewer(mut task: Task) {
    let connection = task.peer.connection.clone();
    let reason = match viewer_loop(&mut task).await {
        Ok(reason) => reason,
        Err(e) => {
            if let Some(welcome) = task.welcome.take() {
                let _ = welcome.send(Err(e.clone()));
            }
            e.to_string()
        }
    };
    let _ = task.signaling.send(ClientMessage::Leave { v: PROTOCOL_VERSION }).await;
    let _ = connection.close().await;
    task.frames.close();
    if let Some(welcome) = task.welcome.take() {
        let _ = welcome.send(Err(SessionError::Ended(reason.clone())));
    }
    let _ = task.events.send(ViewerEvent::Ended { reason });
}

/// The viewer's loop: moves signaling messages, peer and control-channel events and the app's commands into the
/// state machine, and carries out what it decides.
async fn viewer_loop(task: &mut Task) -> Result<String, SessionError> {
    let connection: Arc<dyn PeerConnection> = task.peer.connection.clone();
    let mut core = ViewerCore::new(task.host.clone(), task.host_fingerprint);
    // Bounded: a host sending faster than this loop handles its messages is slowed by SCTP's flow control.
    let (channel_tx, mut channel_events) = mpsc::channel::<DataChannelEvent>(256);
    let mut channel: Option<Arc<dyn DataChannel>> = None;
    let mut stats_tick = tokio::time::interval(Duration::from_secs(1));
    let mut last = (Instant::now(), 0u64, 0u64);
    loop {
        // Set when the app leaves: fired once the goodbye went out.
        let mut leaving: Option<oneshot::Sender<()>> = None;
        let input = tokio::select! {
            _ = sleep_until_or_never(core.deadline()) => {
                core.handle_timeout(Instant::now());
                None
            }
            message = task.incoming.recv(), if core.signaling_open() => Some(match message {
                Some(message) => ViewerInput::Server(message),
                None => ViewerInput::SignalingClosed,
            }),
            event = task.peer.events.recv() => match event {
                None => Some(ViewerInput::Connection(ConnectionState::Closed)),
                Some(PeerEvent::LocalCandidate(c)) => Some(ViewerInput::LocalCandidate(c)),
                Some(PeerEvent::State(state)) => Some(ViewerInput::Connection(state.into())),
                Some(PeerEvent::DataChannel(dc)) => {
                    if core.accept_channel() {
                        let tx = channel_tx.clone();
                        let forward = dc.clone();
                        tokio::spawn(async move {
                            while let Some(event) = forward.poll().await {
                                if tx.send(event).await.is_err() {
                                    break;
                                }
                            }
                        });
                        channel = Some(dc);
                    }
                    None
                }
                Some(PeerEvent::Track(track)) => {
                    if core.accept_track() {
                        let capture_time_id =
                            negotiated_receive_extension(&task.peer.connection, ABS_CAPTURE_TIME_URI).await;
                        let (frames, video, decoder) =
                            (task.frames.clone(), task.counters.video.clone(), task.decoder.clone());
                        rtp_loop::spawn(track, frames, video, decoder, capture_time_id);
                    }
                    None
                }
            },
            Some(event) = channel_events.recv() => match event {
                DataChannelEvent::OnMessage(message) => {
                    Some(ViewerInput::Host(parse_host_message(&message.data).map_err(|e| e.to_string())))
                }
                DataChannelEvent::OnClose => Some(ViewerInput::ChannelClosed),
                _ => None,
            },
            command = task.commands.recv() => Some(match command {
                None => ViewerInput::AppGone,
                Some(Command::Send(message)) => ViewerInput::Send(message),
                Some(Command::Leave(reason, done)) => {
                    leaving = Some(done);
                    ViewerInput::Leave(reason)
                }
            }),
            _ = stats_tick.tick() => {
                update_stats(&connection, &task.counters, &mut last).await;
                None
            }
        };
        if let Some(input) = input {
            core.handle(input, Instant::now());
        }
        while let Some(output) = core.poll_output() {
            match output {
                ViewerOutput::Signal(message) => {
                    if let Err(e) = task.signaling.send(message).await {
                        tracing::debug!("signaling message not sent: {e}");
                    }
                }
                ViewerOutput::AnswerRestart(sdp) => match answer_restart(&connection, sdp).await {
                    Ok(answer) => core.handle(ViewerInput::RestartAnswered(answer), Instant::now()),
                    Err(e) => tracing::warn!("ICE restart offer not answered: {e}"),
                },
                ViewerOutput::AddCandidate(candidate) => {
                    if let Err(e) = connection.add_ice_candidate(candidate.clone()).await {
                        tracing::debug!("remote candidate refused: {e}");
                        core.handle(ViewerInput::CandidateRefused(candidate), Instant::now());
                    }
                }
                ViewerOutput::AddHeldCandidates(candidates) => add_candidates(&connection, candidates).await,
                ViewerOutput::Control(message) => {
                    if let Some(dc) = &channel {
                        if let Err(e) = dc.send_text(&encode(&message)).await {
                            tracing::debug!("control message not sent: {e}");
                        }
                    }
                }
                ViewerOutput::Event(event) => {
                    let _ = task.events.send(event);
                }
                ViewerOutput::Permissions(permissions) => {
                    task.permissions.send_replace(permissions);
                }
                ViewerOutput::Welcome(welcome) => {
                    if let Some(reply) = task.welcome.take() {
                        let _ = reply.send(Ok(welcome));
                    }
                }
                ViewerOutput::ResumeSignaling(token) => {
                    match resume_signaling(&task.server_url, &task.tls, token).await {
                        Ok((sender, incoming)) => {
                            task.signaling = sender;
                            task.incoming = incoming;
                            core.handle(ViewerInput::SignalingResumed, Instant::now());
                        }
                        Err(e) => {
                            tracing::info!("signaling server still unreachable: {e}");
                            core.handle(ViewerInput::ResumeFailed, Instant::now());
                        }
                    }
                }
                ViewerOutput::Finish(result) => {
                    if let Some(done) = leaving.take() {
                        // Give the goodbye on the control channel a moment to leave.
                        if channel.is_some() {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        let _ = done.send(());
                    }
                    return result;
                }
            }
        }
    }
}

/// Refreshes the figures [`Viewer::stats`] reads: the connection's report, and bitrate and frame rate since `last`
/// (time, bytes, frames), which it moves on.
async fn update_stats(connection: &Arc<dyn PeerConnection>, counters: &Counters, last: &mut (Instant, u64, u64)) {
    let report = connection.get_stats(Instant::now(), StatsSelector::None).await;
    let now = Instant::now();
    let bytes = counters.video.bytes.load(Ordering::Relaxed);
    let frames = counters.video.frames.load(Ordering::Relaxed);
    let seconds = now.duration_since(last.0).as_secs_f64().max(1e-3);
    {
        let mut stats = counters.stats.lock().unwrap_or_else(|e| e.into_inner());
        fill_from_report(&report, &mut stats);
        stats.bitrate_kbps = (bytes - last.1) as f64 * 8.0 / seconds / 1000.0;
        stats.fps = (frames - last.2) as f64 / seconds;
    }
    *last = (now, bytes, frames);
}

/// Answers the host's ICE-restart offer; returns the answer's SDP.
/// Connects to the signaling server again and presents the session's resumption token; the pairing arrives as
/// `resumed` on the returned receiver once the host presented it too.
async fn resume_signaling(
    server_url: &str,
    tls: &SignalingTls,
    token: String,
) -> Result<(SignalingSender, mpsc::Receiver<ServerMessage>), SessionError> {
    let client = tokio::time::timeout(Duration::from_secs(10), SignalingClient::connect_with(server_url, tls))
        .await
        .map_err(|_| SessionError::Timeout("the signaling server"))??;
    client
        .send(ClientMessage::Resume {
            v: PROTOCOL_VERSION,
            token,
        })
        .await?;
    Ok(client.split())
}

/// Signs in with a technician account and waits for the server's answer.
async fn sign_in(client: &mut SignalingClient, account: &AccountToken, timeout: Duration) -> Result<(), SessionError> {
    client
        .send(ClientMessage::SignIn {
            v: PROTOCOL_VERSION,
            account: account.account.clone(),
            token: account.token.clone(),
        })
        .await?;
    loop {
        let message = tokio::time::timeout(timeout, client.recv())
            .await
            .map_err(|_| SessionError::Timeout("the server's sign-in answer"))?
            .ok_or(SessionError::Signaling(crate::signaling::SignalingError::Closed))?;
        match message {
            ServerMessage::SignedIn { .. } => return Ok(()),
            ServerMessage::Error {
                code,
                message,
                retry_after_secs,
                ..
            } => return Err(SessionError::from_server(code, message, retry_after_secs)),
            _ => {}
        }
    }
}

/// Waits for the host's proof in an unattended handshake, applying the ICE candidates that come meanwhile.
async fn await_proof(
    client: &mut SignalingClient,
    peer: &Peer,
    host: &PeerId,
    expectation: &Expectation,
    timeout: Duration,
) -> Result<[u8; 32], SessionError> {
    let deadline = Instant::now() + timeout;
    loop {
        let message = tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), client.recv())
            .await
            .map_err(|_| SessionError::Timeout("the host's authentication"))?
            .ok_or(SessionError::Signaling(crate::signaling::SignalingError::Closed))?;
        match message {
            ServerMessage::Signal { from, payload, .. } if &from == host => match payload {
                SignalPayload::AuthProof {
                    mac,
                    public_key,
                    signature,
                } => {
                    let decode = |field: &str| {
                        crate::text::base64_decode(field)
                            .ok_or_else(|| SessionError::HostNotAuthenticated("a malformed proof".into()))
                    };
                    let proof = Proof {
                        mac: decode(&mac)?,
                        public_key: decode(&public_key)?,
                        signature: decode(&signature)?,
                    };
                    return expectation
                        .check(&proof)
                        .map_err(|e| SessionError::HostNotAuthenticated(e.to_string()));
                }
                SignalPayload::Candidate {
                    candidate,
                    sdp_mid,
                    sdp_mline_index,
                } => {
                    let init = crate::transport::peer::remote_candidate(candidate, sdp_mid, sdp_mline_index);
                    if let Err(e) = peer.connection.add_ice_candidate(init).await {
                        tracing::debug!("remote candidate refused: {e}");
                    }
                }
                _ => {}
            },
            ServerMessage::Error {
                code,
                message,
                retry_after_secs,
                ..
            } => return Err(SessionError::from_server(code, message, retry_after_secs)),
            ServerMessage::PeerLeft { reason, .. } => {
                tracing::info!(reason = ?reason, "the host left during authentication");
                return Err(SessionError::AuthenticationFailed { retry_after: None });
            }
            _ => {}
        }
    }
}

async fn answer_restart(connection: &Arc<dyn PeerConnection>, sdp: String) -> Result<String, SessionError> {
    let offer = RTCSessionDescription::offer(sdp).map_err(|e| TransportError::InvalidSdp(e.to_string()))?;
    connection
        .set_remote_description(offer)
        .await
        .map_err(|e| TransportError::InvalidSdp(e.to_string()))?;
    let answer = connection.create_answer(None).await.map_err(TransportError::webrtc)?;
    connection
        .set_local_description(answer.clone())
        .await
        .map_err(TransportError::webrtc)?;
    Ok(answer.sdp)
}

/// The ID negotiated for the receive-side header extension `uri` on the video receiver, if it was.
async fn negotiated_receive_extension(connection: &Arc<dyn PeerConnection>, uri: &str) -> Option<u8> {
    for receiver in connection.get_receivers().await {
        if let Ok(parameters) = receiver.get_parameters().await {
            if let Some(id) = negotiated_extension_id(&parameters.rtp_parameters.header_extensions, uri) {
                return Some(id);
            }
        }
    }
    None
}
