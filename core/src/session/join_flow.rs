//! A viewer's way in, from its `join` to the host's offer, as a plain state machine with time passed in: the
//! server says the request is pending (and who the host is), the host's user consents (within the consent
//! timeout), and the host's offer — and, for unattended access, its handshake's first message — arrives (within
//! the connect timeout of the consent). Candidates the host trickles before the offer is applied are held.
//! `Viewer::join` drives it from the signaling connection and does the rest (SDP, the handshake, the proof) step by
//! step.

use super::candidates::RemoteCandidates;
use super::SessionError;
use crate::signaling::{IceServer, PeerId, ServerMessage, SignalPayload, SignalingError};
use crate::unattended::handshake::Challenge;
use std::time::{Duration, Instant};
use webrtc::peer_connection::RTCIceCandidateInit;

/// What the host sent, once everything the session needs to start has arrived.
pub(super) struct Offered {
    /// The host's peer id on the signaling server.
    pub(super) host: PeerId,
    /// Its offer's SDP.
    pub(super) offer: String,
    /// For unattended access: the handshake's first message.
    pub(super) challenge: Option<Challenge>,
    /// The STUN/TURN servers the server issued.
    pub(super) ice_servers: Vec<IceServer>,
    /// Candidates that came before the offer was applied.
    pub(super) candidates: RemoteCandidates<RTCIceCandidateInit>,
}

/// Where the join stands after an input.
pub(super) enum JoinStep {
    /// Still waiting: for consent, or for the offer.
    Waiting,
    /// Everything arrived.
    Ready(Box<Offered>),
    /// The join failed.
    Failed(SessionError),
}

/// The viewer's join; see the module docs.
pub(super) struct JoinFlow {
    unattended: bool,
    connect_timeout: Duration,
    /// Until the host's user consents.
    consent_deadline: Instant,
    /// Set at consent: until the offer (and challenge) arrive.
    offer_deadline: Option<Instant>,
    host: Option<PeerId>,
    ice_servers: Vec<IceServer>,
    offer: Option<String>,
    challenge: Option<Challenge>,
    candidates: RemoteCandidates<RTCIceCandidateInit>,
}

impl JoinFlow {
    /// A join sent at `now`; `unattended` when it asked for unattended access (the host's challenge is awaited
    /// too).
    pub(super) fn new(now: Instant, consent_timeout: Duration, connect_timeout: Duration, unattended: bool) -> Self {
        JoinFlow {
            unattended,
            connect_timeout,
            consent_deadline: now + consent_timeout,
            offer_deadline: None,
            host: None,
            ice_servers: Vec::new(),
            offer: None,
            challenge: None,
            candidates: RemoteCandidates::default(),
        }
    }

    /// When the join fails unless something arrives.
    pub(super) fn deadline(&self) -> Instant {
        self.offer_deadline.unwrap_or(self.consent_deadline)
    }

    /// The deadline passed at `now`: why the join failed.
    pub(super) fn handle_timeout(&self, now: Instant) -> Option<SessionError> {
        if now < self.deadline() {
            return None;
        }
        Some(SessionError::Timeout(match self.offer_deadline {
            Some(_) => "the host's offer",
            None => "the host's consent",
        }))
    }

    /// The signaling connection closed.
    pub(super) fn closed(&self) -> SessionError {
        SessionError::Signaling(SignalingError::Closed)
    }

    /// Takes in a message from the signaling server that arrived at `now`.
    pub(super) fn handle(&mut self, message: ServerMessage, now: Instant) -> JoinStep {
        match message {
            ServerMessage::JoinPending { host, ice_servers, .. } => {
                self.host = Some(host);
                self.ice_servers = ice_servers;
            }
            ServerMessage::Accepted { ice_servers, .. } => {
                if self.offer_deadline.is_none() {
                    self.offer_deadline = Some(now + self.connect_timeout);
                }
                if !ice_servers.is_empty() {
                    self.ice_servers = ice_servers;
                }
            }
            ServerMessage::Signal { payload, from, .. } if Some(&from) == self.host.as_ref() => match payload {
                SignalPayload::Offer { sdp } => self.offer = Some(sdp),
                SignalPayload::Auth { kdf, spake } => match crate::text::base64_decode(&spake) {
                    Some(spake) => self.challenge = Some(Challenge { kdf, spake }),
                    None => {
                        return JoinStep::Failed(SessionError::HostNotAuthenticated("a malformed challenge".into()))
                    }
                },
                SignalPayload::Candidate {
                    candidate,
                    sdp_mid,
                    sdp_mline_index,
                } => {
                    let init = crate::transport::peer::remote_candidate(candidate, sdp_mid, sdp_mline_index);
                    // No description yet: held (`None`).
                    let _held = self.candidates.on_candidate(init);
                }
                _ => {}
            },
            ServerMessage::Error {
                code,
                message,
                retry_after_secs,
                ..
            } => return JoinStep::Failed(SessionError::from_server(code, message, retry_after_secs)),
            ServerMessage::PeerLeft { reason, .. } => {
                let reason = crate::text::printable(&reason).into_owned();
                return JoinStep::Failed(SessionError::Denied(format!("the host left ({reason})")));
            }
            _ => {}
        }
        self.ready()
    }

    fn ready(&mut self) -> JoinStep {
        if self.offer.is_none() || (self.unattended && self.challenge.is_none()) {
            return JoinStep::Waiting;
        }
        let (Some(host), Some(offer)) = (self.host.clone(), self.offer.take()) else {
            return JoinStep::Waiting;
        };
        JoinStep::Ready(Box::new(Offered {
            host,
            offer,
            challenge: self.challenge.take(),
            ice_servers: std::mem::take(&mut self.ice_servers),
            candidates: std::mem::take(&mut self.candidates),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signaling::{ErrorCode, PROTOCOL_VERSION};

    const CONSENT: Duration = Duration::from_secs(120);
    const CONNECT: Duration = Duration::from_secs(20);

    fn pending() -> ServerMessage {
        let stun = IceServer {
            urls: vec!["stun:10.0.0.1:3478".into()],
            ..IceServer::default()
        };
        ServerMessage::JoinPending {
            v: PROTOCOL_VERSION,
            peer: "me".into(),
            host: "host".into(),
            ice_servers: vec![stun],
        }
    }

    fn accepted() -> ServerMessage {
        let turn = IceServer {
            urls: vec!["turn:10.0.0.1:3478".into()],
            ..IceServer::default()
        };
        ServerMessage::Accepted {
            v: PROTOCOL_VERSION,
            host: "host".into(),
            ice_servers: vec![turn],
        }
    }

    fn from(peer: &str, payload: SignalPayload) -> ServerMessage {
        ServerMessage::Signal {
            v: PROTOCOL_VERSION,
            from: peer.into(),
            payload,
        }
    }

    fn offer() -> SignalPayload {
        SignalPayload::Offer { sdp: "v=0".into() }
    }

    #[test]
    fn consent_then_the_offer_with_candidates_held_and_the_servers_issued_at_consent() {
        let t0 = Instant::now();
        let mut flow = JoinFlow::new(t0, CONSENT, CONNECT, false);
        assert!(matches!(flow.handle(pending(), t0), JoinStep::Waiting));
        assert_eq!(flow.deadline(), t0 + CONSENT);
        let t1 = t0 + Duration::from_secs(30);
        assert!(matches!(flow.handle(accepted(), t1), JoinStep::Waiting));
        assert_eq!(flow.deadline(), t1 + CONNECT);
        let candidate = SignalPayload::Candidate {
            candidate: "candidate:1".into(),
            sdp_mid: None,
            sdp_mline_index: None,
        };
        assert!(matches!(flow.handle(from("host", candidate), t1), JoinStep::Waiting));
        // From someone else: ignored.
        assert!(matches!(flow.handle(from("eve", offer()), t1), JoinStep::Waiting));
        let JoinStep::Ready(offered) = flow.handle(from("host", offer()), t1) else {
            panic!("not ready")
        };
        assert_eq!((offered.host.as_str(), offered.offer.as_str()), ("host", "v=0"));
        assert_eq!(offered.ice_servers[0].urls, ["turn:10.0.0.1:3478"]);
        let mut candidates = offered.candidates;
        let held: Vec<_> = candidates.on_description_applied().map(|c| c.candidate).collect();
        assert_eq!(held, ["candidate:1"]);
    }

    #[test]
    fn the_consent_and_the_offer_each_have_their_own_timeout() {
        let t0 = Instant::now();
        let mut flow = JoinFlow::new(t0, CONSENT, CONNECT, false);
        flow.handle(pending(), t0);
        assert!(flow.handle_timeout(t0 + CONSENT - Duration::from_millis(1)).is_none());
        assert_eq!(
            flow.handle_timeout(t0 + CONSENT),
            Some(SessionError::Timeout("the host's consent"))
        );
        let mut flow = JoinFlow::new(t0, CONSENT, CONNECT, false);
        flow.handle(accepted(), t0 + Duration::from_secs(110));
        // Consent came: the offer has the connect timeout from then, past the consent deadline.
        assert!(flow.handle_timeout(t0 + CONSENT).is_none());
        let late = t0 + Duration::from_secs(110) + CONNECT;
        assert_eq!(
            flow.handle_timeout(late),
            Some(SessionError::Timeout("the host's offer"))
        );
    }

    #[test]
    fn unattended_access_waits_for_the_offer_and_the_challenge_in_either_order() {
        let t0 = Instant::now();
        let auth = || SignalPayload::Auth {
            kdf: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA".into(),
            spake: "AAEC".into(),
        };
        for offer_first in [true, false] {
            let mut flow = JoinFlow::new(t0, CONSENT, CONNECT, true);
            flow.handle(pending(), t0);
            flow.handle(accepted(), t0);
            let (first, second) = if offer_first {
                (offer(), auth())
            } else {
                (auth(), offer())
            };
            assert!(matches!(flow.handle(from("host", first), t0), JoinStep::Waiting));
            let JoinStep::Ready(offered) = flow.handle(from("host", second), t0) else {
                panic!("not ready")
            };
            assert_eq!(offered.challenge.map(|c| c.spake), Some(vec![0, 1, 2]));
        }
        let mut flow = JoinFlow::new(t0, CONSENT, CONNECT, true);
        flow.handle(pending(), t0);
        let bad = SignalPayload::Auth {
            kdf: String::new(),
            spake: "not base64!".into(),
        };
        assert!(matches!(
            flow.handle(from("host", bad), t0),
            JoinStep::Failed(SessionError::HostNotAuthenticated(_))
        ));
    }

    #[test]
    fn a_refusal_or_the_host_leaving_ends_the_join_with_a_printable_reason() {
        let t0 = Instant::now();
        let mut flow = JoinFlow::new(t0, CONSENT, CONNECT, false);
        let refused = ServerMessage::error(ErrorCode::InvalidCode, "no such code");
        assert!(matches!(
            flow.handle(refused, t0),
            JoinStep::Failed(SessionError::InvalidCode)
        ));
        let left = ServerMessage::PeerLeft {
            v: PROTOCOL_VERSION,
            peer: "host".into(),
            reason: "no\u{1b}[31m".into(),
        };
        let JoinStep::Failed(SessionError::Denied(reason)) = flow.handle(left, t0) else {
            panic!("not denied")
        };
        assert_eq!(reason, "the host left (no[31m)");
    }
}
