//! A deterministic two-sided session for tests: the host's state machines ([`HostCore`] and one [`ViewerLink`])
//! and the viewer's ([`ViewerCore`]) joined by a simulated signaling server, a simulated control channel and a
//! simulated network path, on a fake clock. Everything the async drivers do with sockets is done here by moving
//! outputs to inputs after a one-way delay; the signaling server can be killed (it forgets every session, as with
//! SIGKILL) and started again, and the path can be cut. An hour of session runs in milliseconds.

use super::host_core::{FromViewer, HostCore, HostInput, HostOutput, UserAction};
use super::reconnect::ConnectionState;
use super::verification::sdp_with_fingerprint;
use super::viewer_core::{ViewerCore, ViewerInput, ViewerOutput};
use super::viewer_link::{LinkConfig, LinkInput, LinkOutput, ViewerLink};
use super::{Consent, Fingerprint, HostEvent, SessionError, ViewerEvent};
use crate::control::protocol::{encode, parse_host_message, HostMessage};
use crate::control::{InputEvent, Permissions, ViewerMessage};
use crate::signaling::{ClientMessage, ServerMessage, SignalPayload, PROTOCOL_VERSION};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

const HOST_CERT: u8 = 0x11;
const VIEWER_CERT: u8 = 0x22;
const CODE: &str = "123-456-789";

/// Where a delivery goes.
#[derive(Debug)]
enum Delivery {
    Host(HostInput),
    Link(LinkInput),
    Viewer(ViewerInput),
}

/// Which side presented a resumption token to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Host,
    Viewer,
}

/// The simulated session; see the module docs.
pub(super) struct SessionSim {
    pub(super) now: Instant,
    pub(super) start: Instant,
    /// What arrives when, in order (the counter keeps inputs of the same instant in the order they were sent).
    queue: BTreeMap<(Instant, u64), Delivery>,
    seq: u64,
    pub(super) host: HostCore,
    pub(super) link: Option<ViewerLink>,
    pub(super) viewer: Option<ViewerCore>,
    /// One way through the path or the server.
    pub(super) one_way: Duration,
    pub(super) signaling_up: bool,
    pub(super) path_up: bool,
    /// Whether the server pairs sessions again on `resume` (a server without it shows what resumption is for).
    pub(super) server_resumes: bool,
    /// The two sides' current peer ids on the server (new ones after each reconnection).
    host_id: String,
    viewer_id: String,
    ids_issued: u32,
    codes_issued: u32,
    presented: HashMap<String, Vec<Side>>,
    next_stats_tick: Instant,
    // What happened.
    pub(super) host_events: Vec<HostEvent>,
    pub(super) viewer_events: Vec<ViewerEvent>,
    pub(super) viewer_chats: Vec<String>,
    pub(super) injected: Vec<InputEvent>,
    pub(super) restarts_sent: u32,
    pub(super) restart_offers_received: u32,
    pub(super) viewer_end: Option<Result<String, SessionError>>,
    pub(super) link_end: Option<Result<String, SessionError>>,
    pub(super) welcomed: bool,
    /// The viewer's id as the host knows it (the server's first peer id for it).
    admitted_viewer: String,
    /// When the path was cut; a cut longer than [`ICE_FAILS_AFTER`] needs an ICE restart to come back.
    cut_at: Option<Instant>,
}

/// How long a cut path may last and still come back on its own (ICE's consent checks keep trying); longer, and
/// only an ICE restart answered while the path is up brings it back. (webrtc-rs: failed after 25 s; shorter here.)
const ICE_FAILS_AFTER: Duration = Duration::from_secs(5);

impl SessionSim {
    /// A host registered with the server and a viewer that asked to join; the host's app admits it with full
    /// control. `one_way` is the delay of every hop.
    pub(super) fn joined(one_way: Duration) -> Self {
        let start = Instant::now();
        let mut sim = SessionSim {
            now: start,
            start,
            queue: BTreeMap::new(),
            seq: 0,
            host: HostCore::new(CODE.into(), 2_000_000, None),
            link: None,
            viewer: None,
            one_way,
            signaling_up: true,
            path_up: true,
            server_resumes: true,
            host_id: "host-0".into(),
            viewer_id: "viewer-0".into(),
            ids_issued: 0,
            codes_issued: 0,
            presented: HashMap::new(),
            next_stats_tick: start + Duration::from_secs(1),
            host_events: Vec::new(),
            viewer_events: Vec::new(),
            viewer_chats: Vec::new(),
            injected: Vec::new(),
            restarts_sent: 0,
            restart_offers_received: 0,
            viewer_end: None,
            link_end: None,
            welcomed: false,
            admitted_viewer: String::new(),
            cut_at: None,
        };
        let join = ServerMessage::JoinRequest {
            v: PROTOCOL_VERSION,
            peer: sim.viewer_id.clone(),
            name: "Alex".into(),
            code: CODE.into(),
            access: None,
            verified: None,
            asks: Some(Permissions::FULL),
        };
        sim.deliver(one_way, Delivery::Host(HostInput::Server(join)));
        sim
    }

    /// Seconds since the start.
    pub(super) fn elapsed(&self) -> f64 {
        (self.now - self.start).as_secs_f64()
    }

    fn deliver(&mut self, after: Duration, delivery: Delivery) {
        self.seq += 1;
        self.queue.insert((self.now + after, self.seq), delivery);
    }

    fn new_id(&mut self, side: &str) -> String {
        self.ids_issued += 1;
        format!("{side}-{}", self.ids_issued)
    }

    /// Kills the signaling server (it forgets every session) or starts it again.
    pub(super) fn set_signaling(&mut self, up: bool) {
        if self.signaling_up && !up {
            self.presented.clear();
            self.deliver(Duration::ZERO, Delivery::Host(HostInput::SignalingClosed));
            self.deliver(Duration::ZERO, Delivery::Viewer(ViewerInput::SignalingClosed));
        }
        self.signaling_up = up;
    }

    /// Cuts the network path between host and viewer, or brings it back (ICE recovers on its own once it is).
    pub(super) fn set_path(&mut self, up: bool) {
        if self.path_up && !up {
            self.cut_at = Some(self.now);
            self.deliver(
                Duration::ZERO,
                Delivery::Link(LinkInput::Connection(ConnectionState::Disconnected)),
            );
            self.deliver(
                Duration::ZERO,
                Delivery::Viewer(ViewerInput::Connection(ConnectionState::Disconnected)),
            );
        }
        if !self.path_up && up && self.cut_at.is_some_and(|at| self.now - at < ICE_FAILS_AFTER) {
            self.connect_both(2 * self.one_way);
        }
        self.path_up = up;
    }

    fn connect_both(&mut self, after: Duration) {
        self.deliver(after, Delivery::Link(LinkInput::Connection(ConnectionState::Connected)));
        self.deliver(
            after,
            Delivery::Viewer(ViewerInput::Connection(ConnectionState::Connected)),
        );
    }

    /// The host's app sends a chat line to every viewer.
    pub(super) fn host_chat(&mut self, text: &str) {
        self.host
            .handle(HostInput::User(UserAction::Chat(text.into())), self.now);
        self.drain();
    }

    /// The viewer's app sends a control message.
    pub(super) fn viewer_sends(&mut self, message: ViewerMessage) {
        if let Some(viewer) = &mut self.viewer {
            viewer.handle(ViewerInput::Send(message), self.now);
        }
        self.drain();
    }

    /// Runs until `seconds` after the start.
    pub(super) fn run_until(&mut self, seconds: f64) {
        let end = self.start + Duration::from_secs_f64(seconds);
        loop {
            let mut next = self.next_stats_tick;
            if let Some((&(at, _), _)) = self.queue.iter().next() {
                next = next.min(at);
            }
            let deadlines = [
                self.host.reconnect_deadline(),
                self.link.as_ref().and_then(|l| l.deadline()),
                self.viewer.as_ref().and_then(|v| v.deadline()),
            ];
            for deadline in deadlines.into_iter().flatten() {
                next = next.min(deadline);
            }
            if next > end {
                self.now = end;
                return;
            }
            self.now = self.now.max(next);
            self.step();
        }
    }

    fn step(&mut self) {
        let now = self.now;
        if let Some(entry) = self.queue.first_entry() {
            if entry.key().0 <= now {
                match entry.remove() {
                    Delivery::Host(input) => self.host.handle(input, now),
                    Delivery::Link(input) => {
                        if let Some(link) = &mut self.link {
                            link.handle(input, now, 0);
                        }
                    }
                    Delivery::Viewer(input) => {
                        if let Some(viewer) = &mut self.viewer {
                            viewer.handle(input, now);
                        }
                    }
                }
                self.drain();
                return;
            }
        }
        if self.host.reconnect_deadline().is_some_and(|at| at <= now) {
            if self.signaling_up {
                self.host.handle(HostInput::SignalingReconnected, now);
                self.host_id = self.new_id("host");
                self.codes_issued += 1;
                let registered = ServerMessage::Registered {
                    v: PROTOCOL_VERSION,
                    peer: self.host_id.clone(),
                    code: format!("code-{}", self.codes_issued),
                    expires_in_secs: 600,
                    ice_servers: Vec::new(),
                    device: None,
                };
                self.deliver(self.one_way, Delivery::Host(HostInput::Server(registered)));
            } else {
                self.host.handle(HostInput::ReconnectFailed, now);
            }
        }
        if let Some(link) = &mut self.link {
            if link.deadline().is_some_and(|at| at <= now) {
                link.handle_timeout(now);
            }
        }
        if let Some(viewer) = &mut self.viewer {
            if viewer.deadline().is_some_and(|at| at <= now) {
                viewer.handle_timeout(now);
            }
        }
        if self.next_stats_tick <= now {
            self.next_stats_tick += Duration::from_secs(1);
            if let Some(link) = &mut self.link {
                link.handle(LinkInput::StatsTick, now, 0);
                link.handle(
                    LinkInput::TargetBitrate {
                        bits_per_second: 1_000_000.0,
                    },
                    now,
                    0,
                );
            }
        }
        self.drain();
    }

    /// Carries out every side's outputs until none is left.
    fn drain(&mut self) {
        loop {
            let mut any = false;
            while let Some(output) = self.host.poll_output() {
                any = true;
                self.on_host_output(output);
            }
            while let Some(output) = self.link.as_mut().and_then(|l| l.poll_output()) {
                any = true;
                self.on_link_output(output);
            }
            while let Some(output) = self.viewer.as_mut().and_then(|v| v.poll_output()) {
                any = true;
                self.on_viewer_output(output);
            }
            if !any {
                return;
            }
        }
    }

    /// The signaling server: what a client message sent now causes, if the server is up.
    fn on_client_message(&mut self, from: Side, message: ClientMessage) {
        if !self.signaling_up {
            return;
        }
        let hop = self.one_way;
        match message {
            ClientMessage::Accept { peer, .. } if from == Side::Host && peer == self.viewer_id => {
                let admitted = ServerMessage::Admitted {
                    v: PROTOCOL_VERSION,
                    viewer: peer,
                    ice_servers: Vec::new(),
                };
                self.deliver(2 * hop, Delivery::Host(HostInput::Server(admitted)));
            }
            ClientMessage::Signal { to, payload, .. } => match from {
                Side::Host if to == self.viewer_id => {
                    if matches!(payload, SignalPayload::Offer { .. }) {
                        self.restart_offers_received += 1;
                    }
                    let from = self.host_id.clone();
                    let signal = ServerMessage::Signal {
                        v: PROTOCOL_VERSION,
                        from,
                        payload,
                    };
                    self.deliver(2 * hop, Delivery::Viewer(ViewerInput::Server(signal)));
                }
                Side::Viewer if to == self.host_id => {
                    let from = self.viewer_id.clone();
                    let signal = ServerMessage::Signal {
                        v: PROTOCOL_VERSION,
                        from,
                        payload,
                    };
                    self.deliver(2 * hop, Delivery::Host(HostInput::Server(signal)));
                }
                // Addressed to a peer id the server does not know (any more): dropped, as the server does.
                _ => {}
            },
            ClientMessage::Resume { token, .. } if self.server_resumes => {
                let sides = self.presented.entry(token.clone()).or_default();
                if !sides.contains(&from) {
                    sides.push(from);
                }
                if sides.len() == 2 {
                    let to_host = ServerMessage::Resumed {
                        v: PROTOCOL_VERSION,
                        token: token.clone(),
                        peer: self.viewer_id.clone(),
                    };
                    let to_viewer = ServerMessage::Resumed {
                        v: PROTOCOL_VERSION,
                        token,
                        peer: self.host_id.clone(),
                    };
                    self.deliver(hop, Delivery::Host(HostInput::Server(to_host)));
                    self.deliver(hop, Delivery::Viewer(ViewerInput::Server(to_viewer)));
                }
            }
            _ => {}
        }
    }

    fn on_host_output(&mut self, output: HostOutput) {
        match output {
            HostOutput::Signal(message) => self.on_client_message(Side::Host, message),
            HostOutput::ToViewer { message, .. } => {
                if let Some(link) = &mut self.link {
                    link.handle(LinkInput::Host(message), self.now, 0);
                }
            }
            HostOutput::Start(admitted) => {
                let config = LinkConfig {
                    viewer: admitted.viewer,
                    name: admitted.name,
                    session_code: admitted.session_code,
                    granted: admitted.permissions,
                    require_verification: false,
                    own_fingerprint: [HOST_CERT; 32] as Fingerprint,
                    resume_token: admitted.resume_token,
                    screen: (1920, 1080),
                    host_name: "Front desk".into(),
                    takes_input: true,
                    unattended: None,
                };
                self.admitted_viewer = config.viewer.clone();
                self.link = Some(ViewerLink::new(config, self.now));
                // The offer: the viewer answers it and starts its session (what `Viewer::join` does).
                self.viewer = Some(ViewerCore::new(self.host_id.clone(), [HOST_CERT; 32]));
                let answer = SignalPayload::Answer {
                    sdp: sdp_with_fingerprint(VIEWER_CERT),
                };
                let message = ClientMessage::Signal {
                    v: PROTOCOL_VERSION,
                    to: self.host_id.clone(),
                    payload: answer,
                };
                self.on_client_message(Side::Viewer, message);
            }
            HostOutput::Forget(_) => {}
            HostOutput::Event(HostEvent::JoinRequest(request)) => {
                let consent = UserAction::Consent {
                    viewer: request.viewer.clone(),
                    name: request.name.clone(),
                    session_code: request.session_code.clone(),
                    access: None,
                    consent: Consent::Allow(Permissions::FULL),
                };
                self.host.handle(HostInput::User(consent), self.now);
            }
            HostOutput::Event(event) => self.host_events.push(event),
            HostOutput::Audit(_) | HostOutput::EncoderBitrate(_) | HostOutput::InviteAnswer(_) => {}
        }
    }

    fn on_link_output(&mut self, output: LinkOutput) {
        let now = self.now;
        match output {
            LinkOutput::Signal(message) => self.on_client_message(Side::Host, message),
            LinkOutput::ApplyAnswer { restart, .. } => {
                if let Some(link) = &mut self.link {
                    link.handle(LinkInput::AnswerApplied, now, 0);
                }
                if self.path_up {
                    self.connect_both(2 * self.one_way);
                    if !restart {
                        self.deliver(3 * self.one_way, Delivery::Link(LinkInput::ChannelOpen));
                        if let Some(viewer) = &mut self.viewer {
                            assert!(viewer.accept_channel());
                        }
                    }
                }
            }
            LinkOutput::RestartIce => {
                self.restarts_sent += 1;
                let to = self.link.as_ref().map(|l| l.address().clone()).unwrap_or_default();
                let offer = SignalPayload::Offer {
                    sdp: sdp_with_fingerprint(HOST_CERT),
                };
                self.on_client_message(
                    Side::Host,
                    ClientMessage::Signal {
                        v: PROTOCOL_VERSION,
                        to,
                        payload: offer,
                    },
                );
            }
            LinkOutput::Control(message) => {
                if self.path_up {
                    let parsed = parse_host_message(encode(&message).as_bytes()).map_err(|e| e.to_string());
                    if let Ok(HostMessage::Welcome { .. }) = &parsed {
                        self.welcomed = true;
                    }
                    self.deliver(self.one_way, Delivery::Viewer(ViewerInput::Host(parsed)));
                }
            }
            LinkOutput::Note(note) => self.host.handle(HostInput::Viewer(note), now),
            LinkOutput::Inject(event) => {
                self.injected.push(event);
                if let Some(link) = &mut self.link {
                    link.input_injected();
                }
            }
            LinkOutput::Finish { result, .. } => {
                let reason = match &result {
                    Ok(reason) => reason.clone(),
                    Err(e) => e.to_string(),
                };
                self.link_end = Some(result);
                let viewer = self.admitted_viewer.clone();
                self.link = None;
                self.host
                    .handle(HostInput::Viewer(FromViewer::Left { viewer, reason }), now);
            }
            LinkOutput::AddCandidates(_)
            | LinkOutput::ControlLive(_)
            | LinkOutput::StartVideo
            | LinkOutput::Keyframe => {}
        }
    }

    fn on_viewer_output(&mut self, output: ViewerOutput) {
        let now = self.now;
        match output {
            ViewerOutput::Signal(message) => self.on_client_message(Side::Viewer, message),
            ViewerOutput::AnswerRestart(_) => {
                if let Some(viewer) = &mut self.viewer {
                    viewer.handle(ViewerInput::RestartAnswered(sdp_with_fingerprint(VIEWER_CERT)), now);
                }
            }
            ViewerOutput::Control(message) => {
                if self.path_up {
                    self.deliver(
                        self.one_way,
                        Delivery::Link(LinkInput::Control(encode(&message).into())),
                    );
                }
            }
            ViewerOutput::Event(ViewerEvent::Chat(text)) => self.viewer_chats.push(text),
            ViewerOutput::Event(event) => self.viewer_events.push(event),
            ViewerOutput::ResumeSignaling(token) => {
                if self.signaling_up {
                    self.viewer_id = self.new_id("viewer");
                    if let Some(viewer) = &mut self.viewer {
                        viewer.handle(ViewerInput::SignalingResumed, now);
                    }
                    self.on_client_message(
                        Side::Viewer,
                        ClientMessage::Resume {
                            v: PROTOCOL_VERSION,
                            token,
                        },
                    );
                } else if let Some(viewer) = &mut self.viewer {
                    viewer.handle(ViewerInput::ResumeFailed, now);
                }
            }
            ViewerOutput::Finish(result) => {
                self.viewer_end = Some(result);
                self.viewer = None;
            }
            ViewerOutput::AddCandidate(_)
            | ViewerOutput::AddHeldCandidates(_)
            | ViewerOutput::Permissions(_)
            | ViewerOutput::Welcome(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::RECONNECT_WINDOW;

    fn pointer() -> ViewerMessage {
        ViewerMessage::Input(InputEvent::PointerMove { x: 0.5, y: 0.5 })
    }

    fn connected() -> SessionSim {
        let mut sim = SessionSim::joined(Duration::from_millis(20));
        sim.run_until(1.0);
        assert!(sim.welcomed, "no welcome after 1 s");
        assert!(sim
            .host_events
            .iter()
            .any(|e| matches!(e, HostEvent::ViewerConnected { .. })));
        sim
    }

    #[test]
    fn a_session_joins_and_control_flows_both_ways() {
        let mut sim = connected();
        assert!(sim
            .host_events
            .iter()
            .any(|e| matches!(e, HostEvent::VerificationCode { .. })));
        sim.viewer_sends(pointer());
        sim.host_chat("hello");
        sim.run_until(2.0);
        assert_eq!(sim.injected.len(), 1);
        assert_eq!(sim.viewer_chats, ["hello"]);
    }

    #[test]
    fn a_signaling_restart_mid_session_loses_no_control_and_a_later_cut_is_repaired_through_the_new_pairing() {
        let mut sim = connected();
        sim.run_until(2.0);
        sim.set_signaling(false);
        sim.run_until(3.0);
        // While the server is down, chat and input go on over the data channel.
        sim.host_chat("still there?");
        sim.viewer_sends(pointer());
        sim.run_until(5.0);
        assert_eq!(sim.viewer_chats, ["still there?"]);
        assert_eq!(sim.injected.len(), 1);
        assert!(
            sim.viewer_end.is_none() && sim.link_end.is_none(),
            "the session ended with the server"
        );
        sim.set_signaling(true);
        // Both sides reconnect within their backoff (at most 8 s after three failures) and are paired again.
        sim.run_until(20.0);
        assert!(sim
            .host_events
            .iter()
            .any(|e| matches!(e, HostEvent::SignalingRestored { .. })));
        // A 10 s cut: the host restarts ICE through the new pairing, and the path comes back.
        sim.set_path(false);
        sim.run_until(30.0);
        sim.set_path(true);
        sim.run_until(45.0);
        assert!(sim.restarts_sent >= 1, "no ICE restart");
        assert!(
            sim.restart_offers_received >= 1,
            "no restart offer reached the viewer through the new pairing"
        );
        let reconnects: Vec<_> = sim
            .viewer_events
            .iter()
            .filter(|e| matches!(e, ViewerEvent::Reconnecting | ViewerEvent::Reconnected))
            .collect();
        assert_eq!(reconnects, [&ViewerEvent::Reconnecting, &ViewerEvent::Reconnected]);
        sim.host_chat("back");
        sim.run_until(46.0);
        assert_eq!(sim.viewer_chats, ["still there?", "back"]);
        assert!(sim.viewer_end.is_none() && sim.link_end.is_none());
    }

    #[test]
    fn a_cut_that_outlasts_the_reconnect_window_ends_both_sides_with_a_reason() {
        let mut sim = connected();
        sim.set_path(false);
        sim.run_until(1.0 + RECONNECT_WINDOW.as_secs_f64() + 1.0);
        assert!(
            matches!(sim.viewer_end, Some(Err(SessionError::Transport(_)))),
            "{:?}",
            sim.viewer_end
        );
        assert!(
            matches!(sim.link_end, Some(Err(SessionError::Transport(_)))),
            "{:?}",
            sim.link_end
        );
        assert!(sim
            .host_events
            .iter()
            .any(|e| matches!(e, HostEvent::ViewerLeft { .. })));
        // Restarts were tried meanwhile, a few seconds apart, not in a storm.
        assert!((2..=20).contains(&sim.restarts_sent), "{} restarts", sim.restarts_sent);
    }

    /// The harness catches what resumption is for: with a server that does not pair sessions again, the host's
    /// restart offers after a signaling restart go nowhere, and a cut ends the session.
    #[test]
    fn without_resumption_a_cut_after_a_signaling_restart_ends_the_session() {
        let mut sim = connected();
        sim.server_resumes = false;
        sim.set_signaling(false);
        sim.run_until(3.0);
        sim.set_signaling(true);
        sim.run_until(20.0);
        sim.set_path(false);
        sim.run_until(30.0);
        sim.set_path(true);
        sim.run_until(45.0);
        assert!(sim.restarts_sent >= 1);
        assert_eq!(sim.restart_offers_received, 0);
        sim.run_until(90.0);
        assert!(matches!(sim.viewer_end, Some(Err(_))), "{:?}", sim.viewer_end);
    }

    #[test]
    fn an_hour_of_session_with_input_and_chat_loses_nothing() {
        let mut sim = connected();
        let mut sent = 0;
        for second in 2..3600 {
            for _ in 0..30 {
                sim.viewer_sends(pointer());
                sent += 1;
            }
            if second % 60 == 0 {
                sim.host_chat(&format!("minute {}", second / 60));
            }
            sim.run_until(second as f64);
        }
        sim.run_until(3601.0);
        assert_eq!(sim.injected.len(), sent);
        assert_eq!(sim.viewer_chats.len(), 59);
        assert!(sim.elapsed() >= 3600.0);
        assert!(sim.viewer_end.is_none() && sim.link_end.is_none());
    }
}
