//! The host's side of one viewer as a plain state machine, with no sockets, tasks or clocks of its own (str0m's
//! way): the answer and the certificate it binds, the verification code, the unattended handshake's last steps,
//! which permissions are in force (granted, and confirmed when verification is required), every control message
//! through the permission gate and its refusal throttle, keyframe requests, ICE restarts after a lost path and the
//! candidates that wait for them, the cursor image each viewer already has, and the input count for the audit.
//!
//! The driver (`viewer_loop` in `host.rs`) feeds it [`LinkInput`]s with the time they happened, calls
//! [`ViewerLink::handle_timeout`] at [`ViewerLink::deadline`], and carries out the [`LinkOutput`]s from
//! [`ViewerLink::poll_output`]. The outputs of one input are drained before the next is read: the queue holds what
//! one input causes (at most the candidates held for a description, [`RemoteCandidates::CAPACITY`]).

use super::candidates::RemoteCandidates;
use super::host_core::{FromViewer, ToViewer};
use super::reconnect::{ConnectionState, PathChange, PathState, ReconnectAction, Reconnector};
use super::verification::{permissions_in_force, sdp_fingerprint, verification_code};
use super::{Fingerprint, SessionError, ViewerId};
use crate::control::permissions::ControlGate;
use crate::control::protocol::HostMessage;
use crate::control::{ControlErrorCode, InputEvent, Permissions, ViewerMessage};
use crate::encode::KeyframeRequests;
use crate::send::cursor::{CursorUpdate, ImageSent};
use crate::signaling::{ClientMessage, PeerId, SignalPayload, PROTOCOL_VERSION};
use crate::transport::TransportError;
use crate::unattended::handshake::{Confirm, HostHandshake};
use crate::unattended::DeviceIdentity;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use webrtc::peer_connection::RTCIceCandidateInit;

/// Stats ticks (one a second) between input counts in the audit trail.
const INPUT_COUNT_TICKS: u64 = 60;

/// How often the viewer's task reads congestion control's target for the encoder. The encoder's rate control
/// needs a few frames to follow anyway; once a second (as before) let a pushback arrive a second late.
pub(super) const TARGET_BITRATE_INTERVAL: Duration = Duration::from_millis(100);

/// How long the end of the session waits for the `end` message to leave before the connection closes.
pub(super) const END_LINGER: Duration = Duration::from_millis(100);

/// An unattended viewer's handshake, started with the offer; its answer is applied only once the viewer proved its
/// access.
pub(super) struct UnattendedLink {
    pub(super) handshake: HostHandshake,
    pub(super) identity: Arc<DeviceIdentity>,
    pub(super) access: String,
}

/// Who the viewer is and what the host's user granted it.
pub(super) struct LinkConfig {
    pub(super) viewer: ViewerId,
    pub(super) name: String,
    /// The code it joined with (part of the verification code's input).
    pub(super) session_code: String,
    pub(super) granted: Permissions,
    pub(super) require_verification: bool,
    /// The host's certificate, from its offer.
    pub(super) own_fingerprint: Fingerprint,
    pub(super) resume_token: String,
    pub(super) screen: (u32, u32),
    pub(super) host_name: String,
    /// Whether this host injects input at all.
    pub(super) takes_input: bool,
    pub(super) unattended: Option<UnattendedLink>,
}

/// What reaches the link.
#[derive(Debug)]
pub(super) enum LinkInput {
    /// From the host's loop: a signal, a permission change, a confirmation, text or the end.
    Host(ToViewer),
    /// A local candidate to trickle to the viewer.
    LocalCandidate(RTCIceCandidateInit),
    /// The peer connection's state changed.
    Connection(ConnectionState),
    /// The control channel opened.
    ChannelOpen,
    /// A control message's bytes (the data channel's buffer, not copied).
    Control(bytes::Bytes),
    /// The control channel closed.
    ChannelClosed,
    /// The viewer asked for a keyframe (RTCP PLI or FIR).
    KeyframeRequest,
    /// The cursor changed.
    Cursor(CursorUpdate),
    /// Once a second.
    StatsTick,
    /// Congestion control's new target for this viewer's encoder, bit/s (polled every
    /// [`TARGET_BITRATE_INTERVAL`], passed on when it moved).
    TargetBitrate { bits_per_second: f64 },
    /// A description from [`LinkOutput::ApplyAnswer`] was applied.
    AnswerApplied,
    /// It was not.
    AnswerRefused { restart: bool, error: String },
}

/// What the driver carries out.
#[derive(Debug)]
pub(super) enum LinkOutput {
    /// Send to the signaling server.
    Signal(ClientMessage),
    /// Apply the viewer's answer (`restart`: to an ICE restart); report [`LinkInput::AnswerApplied`] or
    /// [`LinkInput::AnswerRefused`].
    ApplyAnswer { sdp: String, restart: bool },
    /// Add the viewer's candidates; a refusal is only logged.
    AddCandidates(Vec<RTCIceCandidateInit>),
    /// Send an ICE-restart offer.
    RestartIce,
    /// Send on the control channel.
    Control(HostMessage),
    /// A note for the host's loop.
    Note(FromViewer),
    /// Inject input (when this host takes input); report it with [`ViewerLink::input_injected`].
    Inject(InputEvent),
    /// Control was granted (`true`) or revoked (`false`): input already queued under the old grant is not
    /// injected, and keys and buttons held are released on a revoke.
    ControlLive(bool),
    /// The connection is up: start sending video to this viewer.
    StartVideo,
    /// Ask the encoder for a keyframe.
    Keyframe,
    /// The link is over; after `linger`, close the connection. The last output.
    Finish {
        result: Result<String, SessionError>,
        linger: Duration,
    },
}

/// The host's side of one viewer; see the module docs.
pub(super) struct ViewerLink {
    config: LinkConfig,
    granted: Permissions,
    verified: bool,
    /// Where signals to this viewer go: its peer id, until a resumed signaling session gives it another.
    address: PeerId,
    gate: ControlGate,
    remote_candidates: RemoteCandidates<RTCIceCandidateInit>,
    channel_open: bool,
    video_started: bool,
    keyframe_requests: KeyframeRequests,
    reconnector: Reconnector,
    input_events: u64,
    stats_ticks: u64,
    /// The viewer's certificate, fixed by the first answer: a restart's answer must name the same one.
    viewer_fingerprint: Option<Fingerprint>,
    verification_code: Option<String>,
    auth_confirm: Option<Confirm>,
    cursor_image: ImageSent,
    finished: bool,
    outputs: VecDeque<LinkOutput>,
}

impl ViewerLink {
    /// The link after the host sent its offer (and, for an unattended viewer, the handshake's first message).
    pub(super) fn new(config: LinkConfig, now: Instant) -> Self {
        // An unattended viewer's handshake is bound to both certificates: nobody can be in the middle, so there
        // is no code to confirm.
        let verified = config.unattended.is_some();
        let permissions = permissions_in_force(config.granted, config.require_verification, verified);
        ViewerLink {
            granted: config.granted,
            verified,
            address: config.viewer.clone(),
            gate: ControlGate::new(permissions, now),
            remote_candidates: RemoteCandidates::default(),
            channel_open: false,
            video_started: false,
            keyframe_requests: KeyframeRequests::default(),
            reconnector: Reconnector::default(),
            input_events: 0,
            stats_ticks: 0,
            viewer_fingerprint: None,
            verification_code: None,
            auth_confirm: None,
            cursor_image: ImageSent::default(),
            finished: false,
            outputs: VecDeque::new(),
            config,
        }
    }

    /// Whether control is in force at the start.
    pub(super) fn control_in_force(&self) -> bool {
        self.gate.permissions().control
    }

    /// Whether cursor updates should be read (the control channel is open).
    pub(super) fn wants_cursor(&self) -> bool {
        self.channel_open && !self.finished
    }

    /// Where signals to this viewer go now.
    pub(super) fn address(&self) -> &PeerId {
        &self.address
    }

    /// The next time [`Self::handle_timeout`] has something to do.
    pub(super) fn deadline(&self) -> Option<Instant> {
        match (self.reconnector.deadline(), self.keyframe_requests.deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next thing to carry out, oldest first.
    pub(super) fn poll_output(&mut self) -> Option<LinkOutput> {
        self.outputs.pop_front()
    }

    /// The driver injected one event of a [`LinkOutput::Inject`] (it drops them when the input queue is full).
    pub(super) fn input_injected(&mut self) {
        self.input_events += 1;
    }

    /// Input events injected and not yet counted in the audit trail; counts them.
    pub(super) fn take_input_events(&mut self) -> u64 {
        std::mem::take(&mut self.input_events)
    }

    /// Does what is due at `now`: an ICE restart or giving up on a lost path, a deferred keyframe.
    pub(super) fn handle_timeout(&mut self, now: Instant) {
        if self.finished {
            return;
        }
        if self.reconnector.deadline().is_some_and(|at| at <= now) {
            match self.reconnector.poll(now) {
                ReconnectAction::Wait => {}
                ReconnectAction::RestartIce => {
                    let restarts = self.reconnector.restarts();
                    tracing::info!(viewer = %self.config.viewer, restarts, "connection lost; restarting ICE");
                    // Candidates of the new generation wait for the answer to the restart.
                    self.remote_candidates.on_new_generation();
                    self.emit(LinkOutput::RestartIce);
                }
                ReconnectAction::GiveUp => {
                    let why = "the connection was lost and did not come back within a minute";
                    self.finish(
                        Err(SessionError::Transport(TransportError::WebRtc(why.into()))),
                        Duration::ZERO,
                    );
                    return;
                }
            }
        }
        if self.keyframe_requests.deadline().is_some_and(|at| at <= now) && self.keyframe_requests.poll(now) {
            self.emit(LinkOutput::Keyframe);
        }
    }

    /// Takes in one input that happened at `now` (`unix_secs`: the wall clock, for the unattended handshake's
    /// TOTP). Inputs after the link finished are ignored.
    pub(super) fn handle(&mut self, input: LinkInput, now: Instant, unix_secs: u64) {
        if self.finished {
            return;
        }
        match input {
            LinkInput::Host(ToViewer::Signal(payload)) => self.on_signal(payload, unix_secs),
            LinkInput::Host(ToViewer::Readdress(peer)) => self.address = peer,
            LinkInput::Host(ToViewer::SetPermissions(p)) => {
                self.granted = p;
                self.apply_permissions();
            }
            LinkInput::Host(ToViewer::Verified) => {
                tracing::info!(viewer = %self.config.viewer, "verification code confirmed by the host's user");
                self.verified = true;
                self.apply_permissions();
            }
            LinkInput::Host(ToViewer::Clipboard(text)) => {
                if self.gate.permissions().clipboard {
                    self.emit(LinkOutput::Control(HostMessage::Clipboard { text }));
                }
            }
            LinkInput::Host(ToViewer::Chat(text)) => self.emit(LinkOutput::Control(HostMessage::Chat { text })),
            LinkInput::Host(ToViewer::End(reason)) => {
                self.emit(LinkOutput::Control(HostMessage::End { reason: reason.clone() }));
                self.finish(Ok(reason), END_LINGER);
            }
            LinkInput::LocalCandidate(c) => {
                let payload = SignalPayload::Candidate {
                    candidate: c.candidate,
                    sdp_mid: c.sdp_mid,
                    sdp_mline_index: c.sdp_mline_index,
                };
                self.signal(payload);
            }
            LinkInput::Connection(state) => self.on_connection(state, now),
            LinkInput::ChannelOpen => {
                self.channel_open = true;
                let (width, height) = self.config.screen;
                self.emit(LinkOutput::Control(HostMessage::Welcome {
                    permissions: self.gate.permissions(),
                    width,
                    height,
                    host_name: self.config.host_name.clone(),
                    resume_token: Some(self.config.resume_token.clone()),
                }));
            }
            LinkInput::Control(bytes) => self.on_control(&bytes, now),
            LinkInput::ChannelClosed => self.finish(Ok("control channel closed".into()), Duration::ZERO),
            LinkInput::KeyframeRequest => {
                // One viewer gets at most one keyframe per interval; the rest are deferred.
                if self.keyframe_requests.request(now) {
                    self.emit(LinkOutput::Keyframe);
                }
            }
            LinkInput::Cursor(update) => {
                if self.channel_open {
                    let image = self.cursor_image.image_for(&update);
                    let (x, y, visible) = (update.x, update.y, update.visible);
                    self.emit(LinkOutput::Control(HostMessage::Cursor { x, y, visible, image }));
                }
            }
            LinkInput::StatsTick => {
                self.stats_ticks += 1;
                if self.stats_ticks % INPUT_COUNT_TICKS == 0 && self.input_events > 0 {
                    let events = self.take_input_events();
                    self.emit(LinkOutput::Note(FromViewer::InputCount {
                        viewer: self.config.viewer.clone(),
                        events,
                    }));
                }
            }
            LinkInput::TargetBitrate { bits_per_second } => {
                if bits_per_second > 0.0 {
                    let note = FromViewer::TargetBitrate {
                        viewer: self.config.viewer.clone(),
                        bps: bits_per_second,
                    };
                    self.emit(LinkOutput::Note(note));
                }
            }
            LinkInput::AnswerApplied => {
                let held: Vec<_> = self.remote_candidates.on_description_applied().collect();
                if !held.is_empty() {
                    self.emit(LinkOutput::AddCandidates(held));
                }
            }
            LinkInput::AnswerRefused { restart: true, error } => {
                // A late answer to an earlier restart: dropped, not fatal.
                tracing::debug!(viewer = %self.config.viewer, "restart answer not applied: {error}");
            }
            LinkInput::AnswerRefused { restart: false, error } => {
                self.finish(
                    Err(SessionError::Transport(TransportError::InvalidSdp(error))),
                    Duration::ZERO,
                );
            }
        }
    }

    fn emit(&mut self, output: LinkOutput) {
        self.outputs.push_back(output);
    }

    fn signal(&mut self, payload: SignalPayload) {
        let message = ClientMessage::Signal {
            v: PROTOCOL_VERSION,
            to: self.address.clone(),
            payload,
        };
        self.emit(LinkOutput::Signal(message));
    }

    fn finish(&mut self, result: Result<String, SessionError>, linger: Duration) {
        self.finished = true;
        self.emit(LinkOutput::Finish { result, linger });
    }

    fn apply_permissions(&mut self) {
        let p = permissions_in_force(self.granted, self.config.require_verification, self.verified);
        if p == self.gate.permissions() {
            return;
        }
        if p.control != self.gate.permissions().control {
            self.emit(LinkOutput::ControlLive(p.control));
        }
        self.gate.set_permissions(p);
        self.emit(LinkOutput::Control(HostMessage::Permissions { permissions: p }));
    }

    fn on_signal(&mut self, payload: SignalPayload, unix_secs: u64) {
        let viewer = self.config.viewer.clone();
        match payload {
            SignalPayload::Answer { sdp } if self.viewer_fingerprint.is_some() => {
                // The answer to an ICE restart: it must name the certificate of the first one (a different one
                // would be someone else).
                if sdp_fingerprint(&sdp).ok() != self.viewer_fingerprint {
                    tracing::warn!(%viewer, "a restart answer with another certificate; ignored");
                    return;
                }
                self.emit(LinkOutput::ApplyAnswer { sdp, restart: true });
            }
            SignalPayload::Answer { sdp } => {
                // The one certificate the DTLS handshake will accept from the viewer: the verification code is
                // derived from it, so an answer that names several is refused.
                let fingerprint = match sdp_fingerprint(&sdp) {
                    Ok(fingerprint) => fingerprint,
                    Err(e) => {
                        let error = TransportError::InvalidSdp(e.to_string());
                        self.finish(Err(SessionError::Transport(error)), Duration::ZERO);
                        return;
                    }
                };
                if let Some(unattended) = self.config.unattended.take() {
                    let own = self.config.own_fingerprint;
                    let result = match self.auth_confirm.take() {
                        Some(confirm) => {
                            unattended
                                .handshake
                                .finish(&unattended.identity, &confirm, &own, &fingerprint, unix_secs)
                        }
                        None => Err(crate::unattended::UnattendedError::AuthenticationFailed),
                    };
                    let ok = result.is_ok();
                    let note = FromViewer::Authenticated {
                        viewer: viewer.clone(),
                        access: unattended.access,
                        ok,
                    };
                    self.emit(LinkOutput::Note(note));
                    let Ok(proof) = result else {
                        self.finish(
                            Err(SessionError::AuthenticationFailed { retry_after: None }),
                            Duration::ZERO,
                        );
                        return;
                    };
                    self.signal(SignalPayload::AuthProof {
                        mac: crate::text::base64_encode(&proof.mac),
                        public_key: crate::text::base64_encode(&proof.public_key),
                        signature: crate::text::base64_encode(&proof.signature),
                    });
                }
                self.viewer_fingerprint = Some(fingerprint);
                let code = verification_code(&self.config.own_fingerprint, &fingerprint, &self.config.session_code);
                self.verification_code = Some(code);
                self.emit(LinkOutput::ApplyAnswer { sdp, restart: false });
            }
            SignalPayload::Candidate {
                candidate,
                sdp_mid,
                sdp_mline_index,
            } => {
                let init = crate::transport::peer::remote_candidate(candidate, sdp_mid, sdp_mline_index);
                if let Some(init) = self.remote_candidates.on_candidate(init) {
                    self.emit(LinkOutput::AddCandidates(vec![init]));
                }
            }
            SignalPayload::AuthConfirm { spake, mac }
                if self.config.unattended.is_some() && self.auth_confirm.is_none() =>
            {
                match (crate::text::base64_decode(&spake), crate::text::base64_decode(&mac)) {
                    (Some(spake), Some(mac)) => self.auth_confirm = Some(Confirm { spake, mac }),
                    _ => tracing::warn!(%viewer, "malformed authentication confirmation; the answer will fail"),
                }
            }
            SignalPayload::Offer { .. }
            | SignalPayload::Auth { .. }
            | SignalPayload::AuthConfirm { .. }
            | SignalPayload::AuthProof { .. } => {
                tracing::warn!(%viewer, "unexpected signal payload from the viewer; ignored")
            }
        }
    }

    fn on_connection(&mut self, state: ConnectionState, now: Instant) {
        let path = match state {
            ConnectionState::Connected if !self.video_started => {
                self.video_started = true;
                self.emit(LinkOutput::StartVideo);
                self.emit(LinkOutput::Keyframe);
                let viewer = self.config.viewer.clone();
                if let Some(code) = self.verification_code.clone() {
                    self.emit(LinkOutput::Note(FromViewer::VerificationCode {
                        viewer: viewer.clone(),
                        code,
                    }));
                }
                let name = self.config.name.clone();
                self.emit(LinkOutput::Note(FromViewer::Connected { viewer, name }));
                return;
            }
            ConnectionState::Failed if !self.video_started => {
                let error = TransportError::WebRtc("ICE/DTLS failed".into());
                self.finish(Err(SessionError::Transport(error)), Duration::ZERO);
                return;
            }
            ConnectionState::Closed => {
                self.finish(Ok("connection closed".into()), Duration::ZERO);
                return;
            }
            // Only a connection that was up can be lost (the first negotiation has its own timeout).
            _ if !self.video_started => return,
            ConnectionState::Connected => PathState::Connected,
            ConnectionState::Disconnected => PathState::Disconnected,
            ConnectionState::Failed => PathState::Failed,
            ConnectionState::Other => return,
        };
        if let Some(change) = self.reconnector.on_state(path, now) {
            tracing::info!(viewer = %self.config.viewer, ?change, "connection path");
            // What was sent while the path was down is lost, and the pictures after it refer to it: the viewer
            // starts again from a keyframe instead of waiting for one (Chromium waits 3 s before it asks), or for
            // repairs of media too old to show.
            if change == PathChange::Restored && self.keyframe_requests.request(now) {
                self.emit(LinkOutput::Keyframe);
            }
            self.emit(LinkOutput::Note(FromViewer::Path {
                viewer: self.config.viewer.clone(),
                change,
            }));
        }
    }

    fn on_control(&mut self, bytes: &[u8], now: Instant) {
        let viewer = self.config.viewer.clone();
        match self.gate.check(bytes, now) {
            Ok(ViewerMessage::Input(event)) => {
                if self.config.takes_input {
                    self.emit(LinkOutput::Inject(event));
                } else {
                    let message = "this host takes no input".into();
                    self.emit(LinkOutput::Control(HostMessage::Error {
                        code: ControlErrorCode::Unsupported,
                        message,
                    }));
                }
            }
            Ok(ViewerMessage::Clipboard { text }) => {
                self.emit(LinkOutput::Note(FromViewer::Clipboard { viewer, text }))
            }
            Ok(ViewerMessage::Chat { text }) => self.emit(LinkOutput::Note(FromViewer::Chat { viewer, text })),
            Ok(ViewerMessage::Leave { reason }) => {
                let reason = crate::text::printable(&reason).into_owned();
                self.finish(Ok(format!("viewer left: {reason}")), Duration::ZERO);
            }
            Err(mut e) => {
                if e.code == ControlErrorCode::PermissionDenied && self.gate.permissions() != self.granted {
                    e.message = format!(
                        "{}: the host's user has not yet confirmed the verification code",
                        e.message
                    );
                }
                tracing::info!(%viewer, code = ?e.code, "control message refused: {}", e.message);
                if self.gate.should_answer(&e, now) {
                    let code = e.code;
                    self.emit(LinkOutput::Control(HostMessage::Error {
                        code,
                        message: e.message,
                    }));
                    self.emit(LinkOutput::Note(FromViewer::Refused { viewer, code }));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::encode;
    use crate::encode::MIN_KEYFRAME_REQUEST_INTERVAL;
    use crate::session::verification::sdp_with_fingerprint;
    use crate::session::{RECONNECT_WINDOW, RESTART_AFTER_DISCONNECTED};

    const HOST_CERT: u8 = 0x11;
    const VIEWER_CERT: u8 = 0x22;

    fn fingerprint(byte: u8) -> Fingerprint {
        [byte; 32]
    }

    fn config(granted: Permissions, require_verification: bool) -> LinkConfig {
        LinkConfig {
            viewer: "v1".into(),
            name: "Alex".into(),
            session_code: "123-456-789".into(),
            granted,
            require_verification,
            own_fingerprint: fingerprint(HOST_CERT),
            resume_token: "token".into(),
            screen: (1920, 1080),
            host_name: "Front desk".into(),
            takes_input: true,
            unattended: None,
        }
    }

    fn outputs(link: &mut ViewerLink) -> Vec<LinkOutput> {
        std::iter::from_fn(|| link.poll_output()).collect()
    }

    fn answer(byte: u8) -> LinkInput {
        LinkInput::Host(ToViewer::Signal(SignalPayload::Answer {
            sdp: sdp_with_fingerprint(byte),
        }))
    }

    fn pointer(x: f32) -> LinkInput {
        LinkInput::Control(encode(&ViewerMessage::Input(InputEvent::PointerMove { x, y: 0.5 })).into())
    }

    /// A link whose first answer was applied, whose connection is up and whose control channel is open.
    fn connected(granted: Permissions, require_verification: bool, now: Instant) -> ViewerLink {
        let mut link = ViewerLink::new(config(granted, require_verification), now);
        link.handle(answer(VIEWER_CERT), now, 0);
        link.handle(LinkInput::AnswerApplied, now, 0);
        link.handle(LinkInput::Connection(ConnectionState::Connected), now, 0);
        link.handle(LinkInput::ChannelOpen, now, 0);
        outputs(&mut link);
        link
    }

    #[test]
    fn the_first_answer_fixes_the_viewers_certificate_and_the_verification_code() {
        let now = Instant::now();
        let mut link = ViewerLink::new(config(Permissions::FULL, false), now);
        link.handle(answer(VIEWER_CERT), now, 0);
        let out = outputs(&mut link);
        assert!(
            matches!(&out[..], [LinkOutput::ApplyAnswer { restart: false, .. }]),
            "{out:?}"
        );
        link.handle(LinkInput::Connection(ConnectionState::Connected), now, 0);
        let out = outputs(&mut link);
        let expected = verification_code(&fingerprint(HOST_CERT), &fingerprint(VIEWER_CERT), "123-456-789");
        assert!(matches!(&out[0], LinkOutput::StartVideo), "{out:?}");
        assert!(matches!(&out[1], LinkOutput::Keyframe), "{out:?}");
        assert!(matches!(&out[2], LinkOutput::Note(FromViewer::VerificationCode { code, .. }) if *code == expected));
        assert!(matches!(&out[3], LinkOutput::Note(FromViewer::Connected { name, .. }) if name == "Alex"));
        // A restart's answer must name the same certificate; a late one that does not apply is not fatal.
        link.handle(answer(0x33), now, 0);
        assert!(
            outputs(&mut link).is_empty(),
            "an answer with another certificate was applied"
        );
        link.handle(answer(VIEWER_CERT), now, 0);
        assert!(matches!(
            &outputs(&mut link)[..],
            [LinkOutput::ApplyAnswer { restart: true, .. }]
        ));
        link.handle(
            LinkInput::AnswerRefused {
                restart: true,
                error: "stale".into(),
            },
            now,
            0,
        );
        assert!(outputs(&mut link).is_empty());
    }

    #[test]
    fn an_answer_without_one_certificate_or_that_does_not_apply_ends_the_link() {
        let now = Instant::now();
        let mut link = ViewerLink::new(config(Permissions::FULL, false), now);
        let two = format!("{}{}", sdp_with_fingerprint(VIEWER_CERT), sdp_with_fingerprint(0x33));
        link.handle(
            LinkInput::Host(ToViewer::Signal(SignalPayload::Answer { sdp: two })),
            now,
            0,
        );
        assert!(matches!(
            &outputs(&mut link)[..],
            [LinkOutput::Finish { result: Err(_), .. }]
        ));

        let mut link = ViewerLink::new(config(Permissions::FULL, false), now);
        link.handle(answer(VIEWER_CERT), now, 0);
        outputs(&mut link);
        link.handle(
            LinkInput::AnswerRefused {
                restart: false,
                error: "bad".into(),
            },
            now,
            0,
        );
        assert!(matches!(
            &outputs(&mut link)[..],
            [LinkOutput::Finish { result: Err(_), .. }]
        ));
    }

    #[test]
    fn with_verification_required_control_waits_for_the_users_confirmation() {
        let now = Instant::now();
        let mut link = ViewerLink::new(config(Permissions::FULL, true), now);
        assert!(!link.control_in_force());
        link.handle(answer(VIEWER_CERT), now, 0);
        link.handle(LinkInput::ChannelOpen, now, 0);
        let out = outputs(&mut link);
        let welcome = out.iter().find_map(|o| match o {
            LinkOutput::Control(HostMessage::Welcome {
                permissions,
                resume_token,
                ..
            }) => Some((*permissions, resume_token.clone())),
            _ => None,
        });
        assert_eq!(welcome, Some((Permissions::VIEW_ONLY, Some("token".to_string()))));
        link.handle(pointer(0.5), now, 0);
        let out = outputs(&mut link);
        assert!(
            matches!(&out[..], [LinkOutput::Control(HostMessage::Error { code: ControlErrorCode::PermissionDenied, message }), LinkOutput::Note(FromViewer::Refused { .. })] if message.contains("not yet confirmed")),
            "{out:?}"
        );

        link.handle(LinkInput::Host(ToViewer::Verified), now, 0);
        let out = outputs(&mut link);
        assert!(
            matches!(
                &out[..],
                [
                    LinkOutput::ControlLive(true),
                    LinkOutput::Control(HostMessage::Permissions {
                        permissions: Permissions::FULL
                    })
                ]
            ),
            "{out:?}"
        );
        link.handle(pointer(0.5), now, 0);
        assert!(matches!(
            &outputs(&mut link)[..],
            [LinkOutput::Inject(InputEvent::PointerMove { .. })]
        ));

        // A revoke stops control at once; a change that leaves control alone does not touch it.
        link.handle(
            LinkInput::Host(ToViewer::SetPermissions(Permissions::VIEW_ONLY)),
            now,
            0,
        );
        assert!(matches!(
            &outputs(&mut link)[..],
            [
                LinkOutput::ControlLive(false),
                LinkOutput::Control(HostMessage::Permissions { .. })
            ]
        ));
        let clipboard_only = Permissions {
            control: false,
            clipboard: true,
        };
        link.handle(LinkInput::Host(ToViewer::SetPermissions(clipboard_only)), now, 0);
        assert!(matches!(
            &outputs(&mut link)[..],
            [LinkOutput::Control(HostMessage::Permissions { .. })]
        ));
        link.handle(LinkInput::Host(ToViewer::SetPermissions(clipboard_only)), now, 0);
        assert!(outputs(&mut link).is_empty(), "an unchanged grant was sent again");
    }

    #[test]
    fn a_flood_of_refused_messages_is_answered_once_a_second() {
        let t0 = Instant::now();
        let mut link = connected(Permissions::FULL, false, t0);
        let mut answered = 0;
        for i in 0..2000 {
            link.handle(pointer((i % 100) as f32 / 100.0), t0, 0);
            answered += outputs(&mut link)
                .iter()
                .filter(|o| {
                    matches!(
                        o,
                        LinkOutput::Note(FromViewer::Refused {
                            code: ControlErrorCode::RateLimited,
                            ..
                        })
                    )
                })
                .count();
        }
        assert_eq!(answered, 1, "the flood set the pace of the answers");
        link.handle(pointer(0.5), t0 + std::time::Duration::from_millis(1500), 0);
        let out = outputs(&mut link);
        assert!(
            matches!(&out[..], [LinkOutput::Inject(_)]),
            "a message after the flood was refused: {out:?}"
        );
    }

    #[test]
    fn keyframe_requests_from_one_viewer_cost_one_keyframe_per_interval() {
        let t0 = Instant::now();
        let mut link = connected(Permissions::VIEW_ONLY, false, t0);
        link.handle_timeout(t0 + Duration::from_millis(1));
        assert!(outputs(&mut link).is_empty());
        for i in 0..10 {
            link.handle(LinkInput::KeyframeRequest, t0 + Duration::from_millis(i * 10), 0);
        }
        let keyframes = |link: &mut ViewerLink| {
            outputs(link)
                .iter()
                .filter(|o| matches!(o, LinkOutput::Keyframe))
                .count()
        };
        assert_eq!(keyframes(&mut link), 1);
        let due = link.deadline().expect("the deferred request");
        assert!(due <= t0 + MIN_KEYFRAME_REQUEST_INTERVAL, "{:?}", due - t0);
        link.handle_timeout(due);
        assert_eq!(keyframes(&mut link), 1);
        assert_eq!(link.deadline(), None);
    }

    #[test]
    fn a_lost_path_restarts_ice_holds_the_new_candidates_and_gives_up_after_the_window() {
        let t0 = Instant::now();
        let mut link = connected(Permissions::VIEW_ONLY, false, t0);
        link.handle(LinkInput::Connection(ConnectionState::Disconnected), t0, 0);
        let out = outputs(&mut link);
        assert!(
            matches!(
                &out[..],
                [LinkOutput::Note(FromViewer::Path {
                    change: PathChange::Lost,
                    ..
                })]
            ),
            "{out:?}"
        );
        link.handle_timeout(t0 + RESTART_AFTER_DISCONNECTED);
        assert!(matches!(&outputs(&mut link)[..], [LinkOutput::RestartIce]));
        // The new generation's candidates wait for the answer to the restart.
        let candidate = SignalPayload::Candidate {
            candidate: "candidate:7".into(),
            sdp_mid: None,
            sdp_mline_index: None,
        };
        link.handle(
            LinkInput::Host(ToViewer::Signal(candidate)),
            t0 + RESTART_AFTER_DISCONNECTED,
            0,
        );
        assert!(
            outputs(&mut link).is_empty(),
            "a candidate went ahead of its restart's answer"
        );
        link.handle(answer(VIEWER_CERT), t0 + RESTART_AFTER_DISCONNECTED, 0);
        outputs(&mut link);
        link.handle(LinkInput::AnswerApplied, t0 + RESTART_AFTER_DISCONNECTED, 0);
        let out = outputs(&mut link);
        assert!(
            matches!(&out[..], [LinkOutput::AddCandidates(c)] if c[0].candidate == "candidate:7"),
            "{out:?}"
        );
        // The restart did not bring the path back: the link gives up after the window.
        let mut now = t0 + RESTART_AFTER_DISCONNECTED;
        let mut link_that_comes_back = connected(Permissions::VIEW_ONLY, false, t0);
        link_that_comes_back.handle(LinkInput::Connection(ConnectionState::Disconnected), t0, 0);
        outputs(&mut link_that_comes_back);
        link_that_comes_back.handle(LinkInput::Connection(ConnectionState::Connected), now, 0);
        let out = outputs(&mut link_that_comes_back);
        assert!(
            matches!(
                &out[..],
                [
                    LinkOutput::Keyframe,
                    LinkOutput::Note(FromViewer::Path {
                        change: PathChange::Restored,
                        ..
                    })
                ]
            ),
            "a path that comes back starts again from a keyframe: {out:?}"
        );
        while let Some(at) = link.deadline() {
            now = at;
            link.handle_timeout(now);
            if outputs(&mut link)
                .iter()
                .any(|o| matches!(o, LinkOutput::Finish { result: Err(_), .. }))
            {
                break;
            }
        }
        assert_eq!(now, t0 + RECONNECT_WINDOW);
    }

    #[test]
    fn the_end_is_said_on_the_channel_and_lingers() {
        let now = Instant::now();
        let mut link = connected(Permissions::VIEW_ONLY, false, now);
        link.handle(LinkInput::Host(ToViewer::End("done".into())), now, 0);
        let out = outputs(&mut link);
        assert!(
            matches!(&out[..], [LinkOutput::Control(HostMessage::End { .. }), LinkOutput::Finish { result: Ok(r), linger }] if r == "done" && *linger == END_LINGER),
            "{out:?}"
        );
        link.handle(LinkInput::Host(ToViewer::Chat("late".into())), now, 0);
        assert!(outputs(&mut link).is_empty(), "output after the end");
    }

    #[test]
    fn a_viewers_goodbye_is_made_printable() {
        let now = Instant::now();
        let mut link = connected(Permissions::VIEW_ONLY, false, now);
        let leave = encode(&ViewerMessage::Leave {
            reason: "bye\u{1b}[2J".into(),
        })
        .into();
        link.handle(LinkInput::Control(leave), now, 0);
        let out = outputs(&mut link);
        assert!(
            matches!(&out[..], [LinkOutput::Finish { result: Ok(r), .. }] if r == "viewer left: bye[2J"),
            "{out:?}"
        );
    }

    #[test]
    fn a_host_without_input_says_so_and_input_is_counted_for_the_audit_every_minute() {
        let now = Instant::now();
        let mut link = ViewerLink::new(
            LinkConfig {
                takes_input: false,
                ..config(Permissions::FULL, false)
            },
            now,
        );
        link.handle(LinkInput::ChannelOpen, now, 0);
        outputs(&mut link);
        link.handle(pointer(0.1), now, 0);
        assert!(matches!(
            &outputs(&mut link)[..],
            [LinkOutput::Control(HostMessage::Error {
                code: ControlErrorCode::Unsupported,
                ..
            })]
        ));

        let mut link = connected(Permissions::FULL, false, now);
        for _ in 0..3 {
            link.handle(pointer(0.2), now, 0);
            link.input_injected();
        }
        outputs(&mut link);
        let counts = |link: &mut ViewerLink| -> Vec<u64> {
            outputs(link)
                .into_iter()
                .filter_map(|o| match o {
                    LinkOutput::Note(FromViewer::InputCount { events, .. }) => Some(events),
                    _ => None,
                })
                .collect()
        };
        let mut seen = Vec::new();
        for _ in 0..INPUT_COUNT_TICKS * 2 {
            link.handle(LinkInput::StatsTick, now, 0);
            seen.extend(counts(&mut link));
        }
        assert_eq!(
            seen,
            [3],
            "counted once, at the first minute, and not again without input"
        );
    }

    #[test]
    fn the_cursor_image_goes_out_once_per_change_and_only_on_an_open_channel() {
        let now = Instant::now();
        let mut link = ViewerLink::new(config(Permissions::VIEW_ONLY, false), now);
        let image = Arc::new(crate::control::protocol::CursorImageMessage {
            width: 1,
            height: 1,
            hotspot_x: 0,
            hotspot_y: 0,
            rgba: "AAAAAA==".into(),
        });
        let update = |x: f32, serial: u64| CursorUpdate {
            x,
            y: 0.5,
            visible: true,
            image: Some(image.clone()),
            serial,
        };
        link.handle(LinkInput::Cursor(update(0.1, 1)), now, 0);
        assert!(outputs(&mut link).is_empty());
        assert!(!link.wants_cursor());
        link.handle(LinkInput::ChannelOpen, now, 0);
        outputs(&mut link);
        assert!(link.wants_cursor());
        let images = |link: &mut ViewerLink| -> Vec<bool> {
            outputs(link)
                .into_iter()
                .filter_map(|o| match o {
                    LinkOutput::Control(HostMessage::Cursor { image, .. }) => Some(image.is_some()),
                    _ => None,
                })
                .collect()
        };
        link.handle(LinkInput::Cursor(update(0.2, 1)), now, 0);
        link.handle(LinkInput::Cursor(update(0.3, 1)), now, 0);
        link.handle(LinkInput::Cursor(update(0.4, 2)), now, 0);
        assert_eq!(images(&mut link), [true, false, true]);
    }
}
