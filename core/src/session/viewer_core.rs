//! The viewer's session decisions as a plain state machine, with no sockets, tasks or clocks of its own (str0m's
//! way): what the host's control messages mean, when the session ends and why, the host's ICE restarts (same
//! certificate or ignored) and the remote candidates that wait for them, losing and regaining the path, and
//! carrying on peer to peer when the signaling server goes away while reconnecting to it with the session's
//! resumption token.
//!
//! The driver in `viewer.rs` feeds it [`ViewerInput`]s with the time they happened, calls
//! [`ViewerCore::handle_timeout`] at [`ViewerCore::deadline`], and carries out the [`ViewerOutput`]s it then yields
//! from [`ViewerCore::poll_output`]. The outputs of one input are drained before the next is read, so the queue
//! holds at most what one input causes (the candidates held for a restart: at most
//! [`RemoteCandidates::CAPACITY`]).

use super::candidates::RemoteCandidates;
use super::reconnect::{Backoff, ConnectionState, LossTimer, PathChange, PathState};
use super::verification::sdp_fingerprint;
use super::{Fingerprint, SessionError, ViewerEvent};
use crate::control::protocol::HostMessage;
use crate::control::{Permissions, ViewerMessage};
use crate::signaling::{ClientMessage, PeerId, ServerMessage, SignalPayload, SignalingError, PROTOCOL_VERSION};
use crate::transport::TransportError;
use std::collections::VecDeque;
use std::time::Instant;
use webrtc::peer_connection::RTCIceCandidateInit;

/// The longest resumption token kept from the host's welcome; a longer one is ignored (the session then does not
/// resume after a signaling restart).
pub(super) const MAX_RESUME_TOKEN_CHARS: usize = 128;

/// What reaches the viewer's state machine.
#[derive(Debug)]
pub(super) enum ViewerInput {
    /// A message from the signaling server.
    Server(ServerMessage),
    /// The signaling connection closed.
    SignalingClosed,
    /// The driver reached the server again after a [`ViewerOutput::ResumeSignaling`].
    SignalingResumed,
    /// It did not.
    ResumeFailed,
    /// The host's restart offer was applied; the answer's SDP.
    RestartAnswered(String),
    /// The connection refused a remote candidate (it came ahead of its restart's offer).
    CandidateRefused(RTCIceCandidateInit),
    /// A local candidate to trickle to the host.
    LocalCandidate(RTCIceCandidateInit),
    /// The peer connection's state changed.
    Connection(ConnectionState),
    /// A control message from the host, or why it could not be read.
    Host(Result<HostMessage, String>),
    /// The control channel closed.
    ChannelClosed,
    /// The app sends a control message.
    Send(ViewerMessage),
    /// The app leaves.
    Leave(String),
    /// The app dropped its `Viewer`.
    AppGone,
}

/// What the host's welcome told, for [`super::Viewer::join`] to return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Welcome {
    pub(super) permissions: Permissions,
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) host_name: String,
}

/// What the driver carries out.
#[derive(Debug)]
pub(super) enum ViewerOutput {
    /// Send to the signaling server (failures are logged: the loss arrives as [`ViewerInput::SignalingClosed`]).
    Signal(ClientMessage),
    /// Apply the host's ICE-restart offer and answer it ([`ViewerInput::RestartAnswered`]).
    AnswerRestart(String),
    /// Add a remote candidate; report a refusal as [`ViewerInput::CandidateRefused`].
    AddCandidate(RTCIceCandidateInit),
    /// Add candidates held for a description just applied; a refusal is only logged.
    AddHeldCandidates(Vec<RTCIceCandidateInit>),
    /// Send on the control channel (only emitted while one is open).
    Control(ViewerMessage),
    /// Tell the app.
    Event(ViewerEvent),
    /// The permissions the host granted now.
    Permissions(Permissions),
    /// The host's welcome: `join` may return.
    Welcome(Welcome),
    /// Connect to the signaling server again and present this token ([`ViewerInput::SignalingResumed`] or
    /// [`ViewerInput::ResumeFailed`] follows).
    ResumeSignaling(String),
    /// The session is over: leave the server, close the connection, tell the app. The last output.
    Finish(Result<String, SessionError>),
}

/// The viewer's session state; see the module docs.
pub(super) struct ViewerCore {
    /// The host's current peer id on the signaling server (a resumed session gives it a new one).
    host: PeerId,
    /// The host's certificate: a restart offer must name the same one.
    host_fingerprint: Fingerprint,
    resume_token: Option<String>,
    channel_open: bool,
    video_started: bool,
    remote_candidates: RemoteCandidates<RTCIceCandidateInit>,
    signaling_open: bool,
    /// While the signaling connection is down: when to try again.
    reconnect_at: Option<Instant>,
    backoff: Backoff,
    loss: LossTimer,
    connected_once: bool,
    finished: bool,
    outputs: VecDeque<ViewerOutput>,
}

impl ViewerCore {
    /// A session with the host at `host` whose certificate is `host_fingerprint`, after its answer was sent.
    pub(super) fn new(host: PeerId, host_fingerprint: Fingerprint) -> Self {
        ViewerCore {
            host,
            host_fingerprint,
            resume_token: None,
            channel_open: false,
            video_started: false,
            remote_candidates: RemoteCandidates::applied(),
            signaling_open: true,
            reconnect_at: None,
            backoff: Backoff::default(),
            loss: LossTimer::default(),
            connected_once: false,
            finished: false,
            outputs: VecDeque::new(),
        }
    }

    /// Whether the signaling connection is up (the driver reads from it only then).
    pub(super) fn signaling_open(&self) -> bool {
        self.signaling_open
    }

    /// The next time [`Self::handle_timeout`] has something to do.
    pub(super) fn deadline(&self) -> Option<Instant> {
        match (self.loss.deadline(), self.reconnect_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next thing to carry out, oldest first.
    pub(super) fn poll_output(&mut self) -> Option<ViewerOutput> {
        self.outputs.pop_front()
    }

    /// The host opened a data channel: `true` for the first (the control channel); later ones are ignored, so a
    /// hostile host cannot replace the control channel.
    pub(super) fn accept_channel(&mut self) -> bool {
        if self.channel_open {
            tracing::warn!("the host opened a second data channel; ignored");
            return false;
        }
        self.channel_open = true;
        true
    }

    /// The host's video track arrived: `true` for the first; more are ignored (each would cost a decode thread).
    pub(super) fn accept_track(&mut self) -> bool {
        if self.video_started {
            tracing::warn!("the host sent a second video track; ignored");
            return false;
        }
        self.video_started = true;
        true
    }

    /// Does what is due at `now`: gives up a path lost for too long, or tries the signaling server again.
    pub(super) fn handle_timeout(&mut self, now: Instant) {
        if self.finished {
            return;
        }
        if self.loss.deadline().is_some_and(|at| at <= now) {
            let why = "the connection was lost and did not come back within a minute";
            self.finish(Err(SessionError::Transport(TransportError::WebRtc(why.into()))));
            return;
        }
        if self.reconnect_at.is_some_and(|at| at <= now) {
            self.reconnect_at = None;
            // Without the host's token there is nothing to resume: the session goes on without signaling.
            if let Some(token) = self.resume_token.clone() {
                self.emit(ViewerOutput::ResumeSignaling(token));
            }
        }
    }

    /// Takes in one input that happened at `now`. Inputs after the session finished are ignored.
    pub(super) fn handle(&mut self, input: ViewerInput, now: Instant) {
        if self.finished {
            return;
        }
        match input {
            ViewerInput::Server(message) => self.on_server(message),
            ViewerInput::SignalingClosed => {
                self.signaling_open = false;
                // Signaling is only needed to connect; the session carries on peer to peer.
                if !self.channel_open {
                    self.finish(Err(SessionError::Signaling(SignalingError::Closed)));
                    return;
                }
                // Chat, permissions, cursor, input and the end go on over the data channel. Reconnect, so that
                // the host's later ICE restarts reach this viewer.
                tracing::info!("signaling connection closed; the session goes on peer to peer; reconnecting");
                self.reconnect_at = Some(self.backoff.next_attempt(now));
            }
            ViewerInput::SignalingResumed => self.signaling_open = true,
            ViewerInput::ResumeFailed => self.reconnect_at = Some(self.backoff.next_attempt(now)),
            ViewerInput::RestartAnswered(sdp) => {
                let held: Vec<_> = self.remote_candidates.on_description_applied().collect();
                if !held.is_empty() {
                    self.emit(ViewerOutput::AddHeldCandidates(held));
                }
                self.signal(SignalPayload::Answer { sdp });
            }
            ViewerInput::CandidateRefused(candidate) => {
                // Ahead of its restart's offer: added once that is applied.
                self.remote_candidates.on_refused(candidate);
            }
            ViewerInput::LocalCandidate(c) => {
                let payload = SignalPayload::Candidate {
                    candidate: c.candidate,
                    sdp_mid: c.sdp_mid,
                    sdp_mline_index: c.sdp_mline_index,
                };
                self.signal(payload);
            }
            ViewerInput::Connection(state) => self.on_connection(state, now),
            ViewerInput::Host(Ok(message)) => self.on_host(message),
            ViewerInput::Host(Err(e)) => tracing::warn!("bad control message from the host: {e}"),
            ViewerInput::ChannelClosed => self.finish(Ok("the host closed the connection".into())),
            ViewerInput::Send(message) => {
                if self.channel_open {
                    self.emit(ViewerOutput::Control(message));
                }
            }
            ViewerInput::Leave(reason) => {
                if self.channel_open {
                    self.emit(ViewerOutput::Control(ViewerMessage::Leave { reason: reason.clone() }));
                }
                self.finish(Ok(reason));
            }
            ViewerInput::AppGone => self.finish(Ok("viewer dropped".into())),
        }
    }

    fn emit(&mut self, output: ViewerOutput) {
        self.outputs.push_back(output);
    }

    fn signal(&mut self, payload: SignalPayload) {
        let message = ClientMessage::Signal {
            v: PROTOCOL_VERSION,
            to: self.host.clone(),
            payload,
        };
        self.emit(ViewerOutput::Signal(message));
    }

    fn finish(&mut self, result: Result<String, SessionError>) {
        self.finished = true;
        self.reconnect_at = None;
        self.emit(ViewerOutput::Finish(result));
    }

    fn on_server(&mut self, message: ServerMessage) {
        match message {
            ServerMessage::Signal {
                from,
                payload: SignalPayload::Offer { sdp },
                ..
            } if from == self.host => {
                // The host restarts ICE after losing the connection. Same certificate, or it is not the host.
                if sdp_fingerprint(&sdp).ok() != Some(self.host_fingerprint) {
                    tracing::warn!("a restart offer with another certificate; ignored");
                    return;
                }
                self.emit(ViewerOutput::AnswerRestart(sdp));
            }
            ServerMessage::Signal {
                from,
                payload:
                    SignalPayload::Candidate {
                        candidate,
                        sdp_mid,
                        sdp_mline_index,
                    },
                ..
            } if from == self.host => {
                let init = crate::transport::peer::remote_candidate(candidate, sdp_mid, sdp_mline_index);
                if let Some(init) = self.remote_candidates.on_candidate(init) {
                    self.emit(ViewerOutput::AddCandidate(init));
                }
            }
            ServerMessage::PeerLeft { peer, reason, .. } if peer == self.host => {
                // The control channel usually says why first; this covers a host that vanished.
                if !self.channel_open {
                    let reason = crate::text::printable(&reason).into_owned();
                    self.finish(Ok(format!("the host left ({reason})")));
                }
            }
            ServerMessage::Resumed { peer, .. } => {
                // The server paired this connection with the host's new one: restarts can reach us again.
                tracing::info!("signaling session resumed");
                self.host = peer;
                self.backoff.reset();
            }
            other => tracing::debug!(?other, "ignored signaling message"),
        }
    }

    fn on_connection(&mut self, state: ConnectionState, now: Instant) {
        let path = match state {
            // Before the first connection, or without signaling to carry the host's restart, a failure is final.
            ConnectionState::Failed if !self.connected_once || !self.signaling_open => {
                self.finish(Err(SessionError::Transport(TransportError::WebRtc(
                    "ICE/DTLS failed".into(),
                ))));
                return;
            }
            ConnectionState::Closed => {
                self.finish(Ok("connection closed".into()));
                return;
            }
            ConnectionState::Connected => PathState::Connected,
            ConnectionState::Disconnected => PathState::Disconnected,
            ConnectionState::Failed => PathState::Failed,
            ConnectionState::Other => return,
        };
        self.connected_once |= path == PathState::Connected;
        match self.loss.on_state(path, now) {
            Some(PathChange::Lost) => {
                tracing::info!("connection to the host lost; waiting for the host to restart ICE");
                self.emit(ViewerOutput::Event(ViewerEvent::Reconnecting));
            }
            Some(PathChange::Restored) => {
                tracing::info!("connection to the host restored");
                self.emit(ViewerOutput::Event(ViewerEvent::Reconnected));
            }
            None => {}
        }
    }

    fn on_host(&mut self, message: HostMessage) {
        let event = match message {
            HostMessage::Welcome {
                permissions,
                width,
                height,
                host_name,
                resume_token,
            } => {
                self.resume_token = resume_token.filter(|t| t.chars().count() <= MAX_RESUME_TOKEN_CHARS);
                self.emit(ViewerOutput::Permissions(permissions));
                self.emit(ViewerOutput::Welcome(Welcome {
                    permissions,
                    width,
                    height,
                    host_name,
                }));
                return;
            }
            HostMessage::Permissions { permissions } => {
                self.emit(ViewerOutput::Permissions(permissions));
                ViewerEvent::PermissionsChanged(permissions)
            }
            HostMessage::Cursor { x, y, visible, image } => ViewerEvent::Cursor { x, y, visible, image },
            HostMessage::Clipboard { text } => ViewerEvent::Clipboard(text),
            HostMessage::Chat { text } => ViewerEvent::Chat(text),
            HostMessage::Error { code, message } => ViewerEvent::Refused { code, message },
            HostMessage::End { reason } => {
                self.finish(Ok(reason));
                return;
            }
        };
        self.emit(ViewerOutput::Event(event));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::ControlErrorCode;
    use crate::session::verification::sdp_with_fingerprint;
    use crate::session::RECONNECT_WINDOW;
    use std::time::Duration;

    fn core() -> ViewerCore {
        ViewerCore::new("host".into(), sdp_fingerprint(&sdp_with_fingerprint(0xAB)).unwrap())
    }

    /// A session whose control channel is open and whose host sent its welcome with a resumption token.
    fn joined(now: Instant) -> ViewerCore {
        let mut core = core();
        assert!(core.accept_channel());
        core.handle(ViewerInput::Connection(ConnectionState::Connected), now);
        let welcome = HostMessage::Welcome {
            permissions: Permissions::VIEW_ONLY,
            width: 1920,
            height: 1080,
            host_name: "Front desk".into(),
            resume_token: Some("token".into()),
        };
        core.handle(ViewerInput::Host(Ok(welcome)), now);
        let out = outputs(&mut core);
        assert!(
            out.iter()
                .any(|o| matches!(o, ViewerOutput::Welcome(w) if w.width == 1920)),
            "{out:?}"
        );
        core
    }

    fn outputs(core: &mut ViewerCore) -> Vec<ViewerOutput> {
        std::iter::from_fn(|| core.poll_output()).collect()
    }

    fn from_host(payload: SignalPayload) -> ViewerInput {
        ViewerInput::Server(ServerMessage::Signal {
            v: PROTOCOL_VERSION,
            from: "host".into(),
            payload,
        })
    }

    fn candidate(n: u32) -> SignalPayload {
        SignalPayload::Candidate {
            candidate: format!("candidate:{n}"),
            sdp_mid: None,
            sdp_mline_index: None,
        }
    }

    #[test]
    fn losing_the_signaling_server_mid_session_keeps_the_session_and_resumes_it() {
        let t0 = Instant::now();
        let mut core = joined(t0);
        core.handle(ViewerInput::SignalingClosed, t0);
        assert!(!core.signaling_open());
        assert!(
            outputs(&mut core).is_empty(),
            "the session ended with the signaling server"
        );
        // Control goes on over the data channel meanwhile, both ways.
        core.handle(
            ViewerInput::Host(Ok(HostMessage::Chat {
                text: "still there?".into(),
            })),
            t0,
        );
        core.handle(ViewerInput::Send(ViewerMessage::Chat { text: "yes".into() }), t0);
        let out = outputs(&mut core);
        assert!(
            matches!(
                &out[..],
                [ViewerOutput::Event(ViewerEvent::Chat(_)), ViewerOutput::Control(_)]
            ),
            "{out:?}"
        );
        // The server is tried again after 1 s, then 2 s, with the host's token.
        assert_eq!(core.deadline(), Some(t0 + Duration::from_secs(1)));
        core.handle_timeout(t0 + Duration::from_secs(1));
        assert!(matches!(&outputs(&mut core)[..], [ViewerOutput::ResumeSignaling(t)] if t == "token"));
        core.handle(ViewerInput::ResumeFailed, t0 + Duration::from_secs(1));
        assert_eq!(core.deadline(), Some(t0 + Duration::from_secs(3)));
        core.handle_timeout(t0 + Duration::from_secs(3));
        outputs(&mut core);
        core.handle(ViewerInput::SignalingResumed, t0 + Duration::from_secs(3));
        assert!(core.signaling_open());
        assert_eq!(core.deadline(), None);
        // The host's new peer id is where signals go from now on.
        let resumed = ServerMessage::Resumed {
            v: PROTOCOL_VERSION,
            token: "token".into(),
            peer: "host-2".into(),
        };
        core.handle(ViewerInput::Server(resumed), t0 + Duration::from_secs(3));
        core.handle(
            ViewerInput::LocalCandidate(crate::transport::peer::remote_candidate(
                "candidate:9".into(),
                None,
                None,
            )),
            t0,
        );
        let out = outputs(&mut core);
        assert!(
            matches!(&out[..], [ViewerOutput::Signal(ClientMessage::Signal { to, .. })] if to == "host-2"),
            "{out:?}"
        );
    }

    #[test]
    fn losing_the_signaling_server_before_the_control_channel_ends_the_join() {
        let mut core = core();
        core.handle(ViewerInput::SignalingClosed, Instant::now());
        let out = outputs(&mut core);
        assert!(
            matches!(
                &out[..],
                [ViewerOutput::Finish(Err(SessionError::Signaling(
                    SignalingError::Closed
                )))]
            ),
            "{out:?}"
        );
        // Nothing after the end.
        core.handle(
            ViewerInput::Host(Ok(HostMessage::Chat { text: "x".into() })),
            Instant::now(),
        );
        assert!(outputs(&mut core).is_empty());
    }

    #[test]
    fn without_a_resumption_token_the_session_goes_on_without_signaling() {
        let t0 = Instant::now();
        let mut core = core();
        assert!(core.accept_channel());
        core.handle(ViewerInput::SignalingClosed, t0);
        core.handle_timeout(t0 + Duration::from_secs(1));
        assert!(outputs(&mut core).is_empty());
        assert_eq!(core.deadline(), None);
    }

    #[test]
    fn an_oversized_resumption_token_is_not_kept() {
        let t0 = Instant::now();
        let mut core = core();
        assert!(core.accept_channel());
        let welcome = HostMessage::Welcome {
            permissions: Permissions::VIEW_ONLY,
            width: 640,
            height: 480,
            host_name: String::new(),
            resume_token: Some("x".repeat(MAX_RESUME_TOKEN_CHARS + 1)),
        };
        core.handle(ViewerInput::Host(Ok(welcome)), t0);
        outputs(&mut core);
        core.handle(ViewerInput::SignalingClosed, t0);
        core.handle_timeout(t0 + Duration::from_secs(1));
        assert!(outputs(&mut core).is_empty());
    }

    #[test]
    fn a_restart_offer_with_another_certificate_is_ignored() {
        let mut core = joined(Instant::now());
        core.handle(
            from_host(SignalPayload::Offer {
                sdp: sdp_with_fingerprint(0xCD),
            }),
            Instant::now(),
        );
        assert!(outputs(&mut core).is_empty());
        // From someone other than the host, even with the right certificate.
        let stranger = ServerMessage::Signal {
            v: PROTOCOL_VERSION,
            from: "eve".into(),
            payload: SignalPayload::Offer {
                sdp: sdp_with_fingerprint(0xAB),
            },
        };
        core.handle(ViewerInput::Server(stranger), Instant::now());
        assert!(outputs(&mut core).is_empty());
        core.handle(
            from_host(SignalPayload::Offer {
                sdp: sdp_with_fingerprint(0xAB),
            }),
            Instant::now(),
        );
        assert!(matches!(&outputs(&mut core)[..], [ViewerOutput::AnswerRestart(_)]));
    }

    #[test]
    fn candidates_ahead_of_a_restart_are_added_once_its_offer_is_applied() {
        let now = Instant::now();
        let mut core = joined(now);
        core.handle(from_host(candidate(1)), now);
        let out = outputs(&mut core);
        let [ViewerOutput::AddCandidate(first)] = &out[..] else {
            panic!("{out:?}")
        };
        // The connection refuses it: it belongs to a restart whose offer has not arrived.
        core.handle(ViewerInput::CandidateRefused(first.clone()), now);
        core.handle(
            from_host(SignalPayload::Offer {
                sdp: sdp_with_fingerprint(0xAB),
            }),
            now,
        );
        outputs(&mut core);
        core.handle(ViewerInput::RestartAnswered("answer".into()), now);
        let out = outputs(&mut core);
        let [ViewerOutput::AddHeldCandidates(held), ViewerOutput::Signal(ClientMessage::Signal {
            payload: SignalPayload::Answer { sdp },
            ..
        })] = &out[..]
        else {
            panic!("{out:?}")
        };
        assert_eq!(
            held.iter().map(|c| c.candidate.as_str()).collect::<Vec<_>>(),
            ["candidate:1"]
        );
        assert_eq!(sdp, "answer");
    }

    #[test]
    fn a_path_lost_for_the_reconnect_window_ends_the_session_and_one_that_returns_does_not() {
        let t0 = Instant::now();
        let mut core = joined(t0);
        core.handle(ViewerInput::Connection(ConnectionState::Disconnected), t0);
        assert!(matches!(
            &outputs(&mut core)[..],
            [ViewerOutput::Event(ViewerEvent::Reconnecting)]
        ));
        // A failure after the first connection waits for the host's restart.
        core.handle(
            ViewerInput::Connection(ConnectionState::Failed),
            t0 + Duration::from_secs(5),
        );
        assert!(outputs(&mut core).is_empty());
        core.handle(
            ViewerInput::Connection(ConnectionState::Connected),
            t0 + Duration::from_secs(10),
        );
        assert!(matches!(
            &outputs(&mut core)[..],
            [ViewerOutput::Event(ViewerEvent::Reconnected)]
        ));
        assert_eq!(core.deadline(), None);

        let t1 = t0 + Duration::from_secs(20);
        core.handle(ViewerInput::Connection(ConnectionState::Disconnected), t1);
        outputs(&mut core);
        assert_eq!(core.deadline(), Some(t1 + RECONNECT_WINDOW));
        core.handle_timeout(t1 + RECONNECT_WINDOW - Duration::from_millis(1));
        assert!(outputs(&mut core).is_empty());
        core.handle_timeout(t1 + RECONNECT_WINDOW);
        assert!(matches!(
            &outputs(&mut core)[..],
            [ViewerOutput::Finish(Err(SessionError::Transport(_)))]
        ));
    }

    #[test]
    fn a_failure_before_the_first_connection_or_without_signaling_is_final() {
        let mut core = core();
        core.handle(ViewerInput::Connection(ConnectionState::Failed), Instant::now());
        assert!(matches!(&outputs(&mut core)[..], [ViewerOutput::Finish(Err(_))]));

        let now = Instant::now();
        let mut core = joined(now);
        core.handle(ViewerInput::SignalingClosed, now);
        core.handle(ViewerInput::Connection(ConnectionState::Failed), now);
        assert!(matches!(outputs(&mut core).last(), Some(ViewerOutput::Finish(Err(_)))));
    }

    #[test]
    fn the_host_ends_the_session_by_control_message_by_closing_or_by_leaving_before_the_channel() {
        let mut core = joined(Instant::now());
        core.handle(
            ViewerInput::Host(Ok(HostMessage::End { reason: "done".into() })),
            Instant::now(),
        );
        assert!(matches!(&outputs(&mut core)[..], [ViewerOutput::Finish(Ok(r))] if r == "done"));

        let mut core = joined(Instant::now());
        core.handle(ViewerInput::ChannelClosed, Instant::now());
        assert!(matches!(&outputs(&mut core)[..], [ViewerOutput::Finish(Ok(_))]));

        // Once the channel is open, the host's leaving the server is not the end (the channel says why).
        let left = ServerMessage::PeerLeft {
            v: PROTOCOL_VERSION,
            peer: "host".into(),
            reason: "gone\u{1b}[2J".into(),
        };
        let mut core = joined(Instant::now());
        core.handle(ViewerInput::Server(left.clone()), Instant::now());
        assert!(outputs(&mut core).is_empty());
        let mut core = self::core();
        core.handle(ViewerInput::Server(left), Instant::now());
        let out = outputs(&mut core);
        assert!(
            matches!(&out[..], [ViewerOutput::Finish(Ok(r))] if r == "the host left (gone[2J)"),
            "{out:?}"
        );
    }

    #[test]
    fn leaving_says_goodbye_on_the_channel_first() {
        let mut core = joined(Instant::now());
        core.handle(ViewerInput::Leave("bye".into()), Instant::now());
        let out = outputs(&mut core);
        assert!(
            matches!(&out[..], [ViewerOutput::Control(ViewerMessage::Leave { .. }), ViewerOutput::Finish(Ok(r))] if r == "bye"),
            "{out:?}"
        );
    }

    #[test]
    fn host_messages_become_events_and_permissions() {
        let mut core = joined(Instant::now());
        core.handle(
            ViewerInput::Host(Ok(HostMessage::Permissions {
                permissions: Permissions::FULL,
            })),
            Instant::now(),
        );
        let refusal = HostMessage::Error {
            code: ControlErrorCode::PermissionDenied,
            message: "no".into(),
        };
        core.handle(ViewerInput::Host(Ok(refusal)), Instant::now());
        core.handle(ViewerInput::Host(Err("malformed".into())), Instant::now());
        let out = outputs(&mut core);
        assert!(
            matches!(
                &out[..],
                [
                    ViewerOutput::Permissions(Permissions::FULL),
                    ViewerOutput::Event(ViewerEvent::PermissionsChanged(Permissions::FULL)),
                    ViewerOutput::Event(ViewerEvent::Refused {
                        code: ControlErrorCode::PermissionDenied,
                        ..
                    }),
                ]
            ),
            "{out:?}"
        );
    }

    #[test]
    fn one_control_channel_and_one_video_track() {
        let mut core = core();
        assert!(core.accept_channel());
        assert!(!core.accept_channel());
        assert!(core.accept_track());
        assert!(!core.accept_track());
    }
}
