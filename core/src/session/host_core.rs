//! The host's session decisions as a plain state machine, with no sockets, tasks or clocks of its own (str0m's
//! way): the join flow and consent, the codes it holds, viewers awaiting the server's admission, resumption after a
//! signaling restart, unattended-access refusals and their backoff, invites, the bitrate one encoder gives every
//! viewer, and what goes to the audit trail.
//!
//! The driver in `host.rs` feeds it [`HostInput`]s with the time they happened and carries out the
//! [`HostOutput`]s it then yields from [`HostCore::poll_output`]: it sends, spawns and writes, and decides nothing.
//! The outputs of one input are drained before the next input is read, so the output queue holds at most what one
//! input causes (a chat line to every viewer at most: one entry per viewer, and viewers are bounded by the
//! server's admissions).

use super::shared_bitrate::SharedBitrate;
use super::{Consent, HostEvent, JoinRequest, SessionError, ViewerId};
use crate::audit::{permission_names, AuditEvent, TextKind};
use crate::control::{ControlErrorCode, Permissions};
use crate::ratelimit::FailureBackoff;
use crate::session::reconnect::{Backoff, PathChange};
use crate::signaling::{
    ClientMessage, IceServer, PeerId, ServerMessage, SignalPayload, SignalingError, VerifiedIdentity, PROTOCOL_VERSION,
};
use crate::unattended::UnattendedConfig;
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

/// Viewers let in by the user and waiting for the server's confirmation, at most; more are not admitted (the
/// server lets few join requests through, so an honest host never reaches it).
pub(super) const MAX_AWAITING_ADMISSION: usize = 64;

/// What reaches the host's state machine.
#[derive(Debug)]
pub(super) enum HostInput {
    /// A message from the signaling server.
    Server(ServerMessage),
    /// The signaling connection closed: connected viewers stay, the codes die with it.
    SignalingClosed,
    /// The driver connected again after [`HostCore::reconnect_deadline`] and sent the first registration.
    SignalingReconnected,
    /// The driver's attempt to connect again failed.
    ReconnectFailed,
    /// Something the host's user did.
    User(UserAction),
    /// A note from one viewer's task.
    Viewer(FromViewer),
}

/// What the host's user asks for, through [`super::Host`]'s methods or a [`JoinRequest`]'s answer.
#[derive(Debug)]
pub(super) enum UserAction {
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
    /// A new session code; answered by one [`HostOutput::InviteAnswer`], in the order invites were made.
    Invite,
    MaxBitrate(u32),
}

/// Notes from the viewer tasks to the host.
#[derive(Debug)]
pub(super) enum FromViewer {
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

/// Messages from the host to one viewer's task.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum ToViewer {
    Signal(SignalPayload),
    /// The viewer's connection to the signaling server has a new peer id (the session was resumed).
    Readdress(PeerId),
    SetPermissions(Permissions),
    Verified,
    Clipboard(String),
    Chat(String),
    End(String),
}

/// A viewer the host's user let in.
#[derive(Debug, Clone)]
pub(super) struct Admitted {
    pub(super) viewer: ViewerId,
    pub(super) name: String,
    /// The code it joined with.
    pub(super) session_code: String,
    /// What the user granted (in force at once, or after verification when that is required).
    pub(super) permissions: Permissions,
    /// STUN/TURN servers the signaling server issued for this viewer's connection.
    pub(super) ice_servers: Vec<IceServer>,
    /// For an unattended viewer: the access it must prove before its answer is applied.
    pub(super) access: Option<String>,
    /// The secret both sides present to the signaling server to be paired again after it restarted.
    pub(super) resume_token: String,
}

/// What the driver carries out.
#[derive(Debug)]
pub(super) enum HostOutput {
    /// Send to the signaling server (when the connection is gone, the send fails and is logged; the state machine
    /// hears of the loss as [`HostInput::SignalingClosed`]).
    Signal(ClientMessage),
    /// Pass to one viewer's task.
    ToViewer { viewer: ViewerId, message: ToViewer },
    /// Start the connection to an admitted viewer.
    Start(Admitted),
    /// The viewer's task ended: forget it.
    Forget(ViewerId),
    /// Tell the app. A [`HostEvent::JoinRequest`] leaves without a way to answer: the driver gives it one.
    Event(HostEvent),
    /// Append to the audit trail.
    Audit(AuditEvent),
    /// The encoder's new target bitrate, bits per second.
    EncoderBitrate(u32),
    /// The answer to the oldest unanswered [`UserAction::Invite`].
    InviteAnswer(Result<String, SessionError>),
}

/// The host's session state; see the module docs.
pub(super) struct HostCore {
    unattended: Option<UnattendedConfig>,
    /// Viewers whose task runs.
    viewers: HashSet<ViewerId>,
    /// Invites sent to the server and not answered yet.
    pending_invites: usize,
    bitrate: SharedBitrate<ViewerId>,
    signaling_open: bool,
    backoff: Backoff,
    reconnect_at: Option<Instant>,
    /// A registration sent after reconnecting, whose code is announced as `SignalingRestored`.
    reregistering: bool,
    /// Codes this host was given; a join request naming any other code is refused without asking the user.
    held_codes: HashSet<String>,
    /// Viewers the user let in whose admission the server has not confirmed yet.
    awaiting_admission: HashMap<ViewerId, Admitted>,
    /// Each connected viewer's resumption token.
    resume_tokens: HashMap<String, ViewerId>,
    /// The peer ids the server gave resumed viewers.
    aliases: HashMap<PeerId, ViewerId>,
    /// Failed unattended attempts, whoever made them: the wait doubles with each.
    access_backoff: FailureBackoff,
    outputs: VecDeque<HostOutput>,
    /// Where resumption tokens come from (the operating system's random source; fixed in tests).
    new_token: fn() -> String,
}

impl HostCore {
    /// A host that registered with `first_code`, gives the encoder at most `max_bitrate` bits per second, and
    /// offers `unattended` access when given.
    pub(super) fn new(first_code: String, max_bitrate: u32, unattended: Option<UnattendedConfig>) -> Self {
        HostCore {
            unattended,
            viewers: HashSet::new(),
            pending_invites: 0,
            bitrate: SharedBitrate::new(max_bitrate),
            signaling_open: true,
            backoff: Backoff::default(),
            reconnect_at: None,
            reregistering: false,
            held_codes: [first_code].into(),
            awaiting_admission: HashMap::new(),
            resume_tokens: HashMap::new(),
            aliases: HashMap::new(),
            access_backoff: FailureBackoff::new(crate::unattended::FIRST_BACKOFF, crate::unattended::MAX_BACKOFF),
            outputs: VecDeque::new(),
            new_token: new_resume_token,
        }
    }

    /// Whether the signaling connection is up (the driver reads from it only then).
    pub(super) fn signaling_open(&self) -> bool {
        self.signaling_open
    }

    /// When the driver should try to reach the signaling server again; `None` while connected.
    pub(super) fn reconnect_deadline(&self) -> Option<Instant> {
        self.reconnect_at
    }

    /// The next thing to carry out, oldest first.
    pub(super) fn poll_output(&mut self) -> Option<HostOutput> {
        self.outputs.pop_front()
    }

    /// Takes in one input that happened at `now`.
    pub(super) fn handle(&mut self, input: HostInput, now: Instant) {
        match input {
            HostInput::Server(message) => self.on_server(message, now),
            HostInput::SignalingClosed => {
                tracing::warn!("signaling connection lost; connected viewers stay; reconnecting");
                self.signaling_open = false;
                // The codes and pending joins died with the connection.
                self.held_codes.clear();
                self.awaiting_admission.clear();
                self.aliases.clear();
                for _ in 0..std::mem::take(&mut self.pending_invites) {
                    self.emit(HostOutput::InviteAnswer(Err(SessionError::Signaling(
                        SignalingError::Closed,
                    ))));
                }
                self.reconnect_at = Some(self.backoff.next_attempt(now));
            }
            HostInput::SignalingReconnected => {
                self.signaling_open = true;
                self.reregistering = true;
                self.reconnect_at = None;
            }
            HostInput::ReconnectFailed => self.reconnect_at = Some(self.backoff.next_attempt(now)),
            HostInput::User(action) => self.on_user(action),
            HostInput::Viewer(note) => self.on_viewer(note, now),
        }
    }

    /// The host stops: leaves the server, ends every remaining viewer, and says why.
    pub(super) fn finish(&mut self, reason: String) {
        self.emit(HostOutput::Signal(ClientMessage::Leave { v: PROTOCOL_VERSION }));
        for viewer in std::mem::take(&mut self.viewers) {
            self.emit(HostOutput::ToViewer {
                viewer,
                message: ToViewer::End(reason.clone()),
            });
        }
        self.emit(HostOutput::Audit(AuditEvent::Ended { reason: reason.clone() }));
        self.emit(HostOutput::Event(HostEvent::Ended { reason }));
    }

    fn emit(&mut self, output: HostOutput) {
        self.outputs.push_back(output);
    }

    fn tell_viewer(&mut self, viewer: ViewerId, message: ToViewer) {
        if self.viewers.contains(&viewer) {
            self.emit(HostOutput::ToViewer { viewer, message });
        }
    }

    fn reject(&mut self, peer: PeerId, reason: String) {
        self.emit(HostOutput::Signal(ClientMessage::Reject {
            v: PROTOCOL_VERSION,
            peer,
            reason,
        }));
    }

    fn set_bitrate(&mut self, target: Option<u32>) {
        if let Some(bps) = target {
            tracing::debug!(bps, "encoder target bitrate");
            self.emit(HostOutput::EncoderBitrate(bps));
        }
    }

    fn await_admission(&mut self, admitted: Admitted) {
        if self.awaiting_admission.len() < MAX_AWAITING_ADMISSION {
            self.awaiting_admission.insert(admitted.viewer.clone(), admitted);
        }
    }

    fn on_server(&mut self, message: ServerMessage, now: Instant) {
        match message {
            ServerMessage::JoinRequest {
                peer,
                name,
                access: Some(access),
                verified,
                asks,
                ..
            } => self.on_unattended_join(peer, name, access, verified, asks, now),
            ServerMessage::JoinRequest {
                peer,
                name,
                code,
                verified,
                asks,
                ..
            } => {
                if !code.is_empty() && !self.held_codes.contains(&code) {
                    tracing::warn!(viewer = %peer, "join request for a code this host does not hold; refused");
                    self.reject(peer, "this host did not issue that code".to_string());
                    return;
                }
                // The name is whatever the viewer typed: no control, format or bidi-override characters reach the
                // app's prompt.
                let name = crate::text::printable(&name).trim().to_string();
                let identity = identity_for_audit(&name, verified.as_ref());
                self.emit(HostOutput::Audit(AuditEvent::JoinRequest {
                    viewer: peer.clone(),
                    name: identity,
                }));
                let asks = asks.unwrap_or(Permissions::VIEW_ONLY);
                let request = JoinRequest {
                    viewer: peer,
                    name,
                    verified,
                    asks,
                    unattended_access: None,
                    session_code: code,
                    reply: None,
                };
                self.emit(HostOutput::Event(HostEvent::JoinRequest(request)));
            }
            ServerMessage::DeviceChallenge { nonce, .. } => {
                match super::host::device_registration(self.unattended.as_ref(), &nonce) {
                    Ok(register) => self.emit(HostOutput::Signal(register)),
                    Err(e) => tracing::warn!("device registration not sent: {e}"),
                }
            }
            ServerMessage::Signal { from, payload, .. } => {
                let from = self.aliases.get(&from).cloned().unwrap_or(from);
                self.tell_viewer(from, ToViewer::Signal(payload));
            }
            ServerMessage::Admitted {
                viewer, ice_servers, ..
            } => {
                if let Some(mut admitted) = self.awaiting_admission.remove(&viewer) {
                    admitted.ice_servers = ice_servers;
                    admitted.resume_token = (self.new_token)();
                    self.resume_tokens.insert(admitted.resume_token.clone(), viewer.clone());
                    self.viewers.insert(viewer);
                    self.emit(HostOutput::Start(admitted));
                }
            }
            ServerMessage::Resumed { token, peer, .. } => {
                if let Some(viewer) = self.resume_tokens.get(&token).cloned() {
                    tracing::info!(%viewer, "signaling session resumed");
                    self.aliases.insert(peer.clone(), viewer.clone());
                    self.tell_viewer(viewer, ToViewer::Readdress(peer));
                }
            }
            ServerMessage::PeerLeft { peer, reason, .. } => {
                let peer = self.aliases.get(&peer).cloned().unwrap_or(peer);
                self.awaiting_admission.remove(&peer);
                self.tell_viewer(peer, ToViewer::End(format!("viewer {reason}")));
            }
            ServerMessage::Registered { code, .. } => {
                self.held_codes.insert(code.clone());
                if self.reregistering {
                    self.reregistering = false;
                    self.backoff.reset();
                    tracing::info!("signaling connection restored; new session code issued");
                    self.emit(HostOutput::Event(HostEvent::SignalingRestored { code }));
                    // Pair the connected viewers again, so that ICE restarts reach them.
                    let mut tokens: Vec<String> = self.resume_tokens.keys().cloned().collect();
                    tokens.sort();
                    for token in tokens {
                        self.emit(HostOutput::Signal(ClientMessage::Resume {
                            v: PROTOCOL_VERSION,
                            token,
                        }));
                    }
                } else if self.pending_invites > 0 {
                    self.pending_invites -= 1;
                    self.emit(HostOutput::InviteAnswer(Ok(code)));
                }
            }
            ServerMessage::Error {
                code,
                message,
                retry_after_secs,
                ..
            } => {
                tracing::warn!(%code, message = %crate::text::printable(&message), "signaling server refused a request");
                if self.pending_invites > 0 {
                    self.pending_invites -= 1;
                    let error = SessionError::from_server(code, message, retry_after_secs);
                    self.emit(HostOutput::InviteAnswer(Err(error)));
                }
            }
            other => tracing::debug!(?other, "ignored signaling message"),
        }
    }

    fn on_unattended_join(
        &mut self,
        peer: PeerId,
        name: String,
        access: String,
        verified: Option<VerifiedIdentity>,
        asks: Option<Permissions>,
        now: Instant,
    ) {
        let name = crate::text::printable(&name).trim().to_string();
        let refusal = match &self.unattended {
            None => Some("this host does not offer unattended access".to_string()),
            Some(_) => self.access_backoff.retry_after(now).map(|wait| {
                format!(
                    "too many failed attempts; retry in {} s",
                    wait.as_secs_f64().ceil() as u64
                )
            }),
        };
        if let Some(reason) = refusal {
            tracing::info!(viewer = %peer, %reason, "unattended join refused");
            self.reject(peer, reason);
            return;
        }
        let identity = identity_for_audit(&name, verified.as_ref());
        let audit_name = format!("{identity} (unattended access {access:?})");
        self.emit(HostOutput::Audit(AuditEvent::JoinRequest {
            viewer: peer.clone(),
            name: audit_name,
        }));
        let entry = self.unattended.as_ref().and_then(|u| u.policy.get(&access));
        if entry.is_some_and(|e| e.asks_customer()) {
            let asks = asks.unwrap_or(Permissions::VIEW_ONLY);
            let request = JoinRequest {
                viewer: peer,
                name,
                verified,
                asks,
                unattended_access: Some(access),
                session_code: String::new(),
                reply: None,
            };
            self.emit(HostOutput::Event(HostEvent::JoinRequest(request)));
            return;
        }
        // Unknown names go through the same exchange (against a decoy) and fail in it, so a guesser cannot tell
        // which names exist.
        let permissions = entry.map_or(Permissions::VIEW_ONLY, |e| e.granted());
        self.emit(HostOutput::Signal(ClientMessage::Accept {
            v: PROTOCOL_VERSION,
            peer: peer.clone(),
        }));
        self.await_admission(Admitted {
            viewer: peer,
            name,
            session_code: String::new(),
            permissions,
            ice_servers: Vec::new(),
            access: Some(access),
            resume_token: String::new(),
        });
    }

    fn on_user(&mut self, action: UserAction) {
        match action {
            UserAction::Consent {
                viewer,
                consent: Consent::Deny(reason),
                ..
            } => {
                let audit = AuditEvent::Consent {
                    viewer: viewer.clone(),
                    allowed: false,
                    permissions: Vec::new(),
                };
                self.emit(HostOutput::Audit(audit));
                tracing::info!(%viewer, "join denied");
                self.reject(viewer, reason);
            }
            UserAction::Consent {
                viewer,
                name,
                session_code,
                access,
                consent: Consent::Allow(permissions),
            } => {
                tracing::info!(%viewer, ?permissions, "join accepted");
                let names = permission_names(permissions);
                let audit = AuditEvent::Consent {
                    viewer: viewer.clone(),
                    allowed: true,
                    permissions: names,
                };
                self.emit(HostOutput::Audit(audit));
                self.emit(HostOutput::Signal(ClientMessage::Accept {
                    v: PROTOCOL_VERSION,
                    peer: viewer.clone(),
                }));
                // An unattended access the customer was asked about gets at most what its policy grants.
                let permissions = match (&access, &self.unattended) {
                    (Some(access), Some(u)) => {
                        let policy = u.policy.get(access).map_or(Permissions::VIEW_ONLY, |e| e.granted());
                        Permissions {
                            control: permissions.control && policy.control,
                            clipboard: permissions.clipboard && policy.clipboard,
                        }
                    }
                    _ => permissions,
                };
                // The connection starts once the server confirms (`admitted`), with the STUN/TURN servers it issues
                // for this viewer.
                let ice_servers = Vec::new();
                let resume_token = String::new();
                self.await_admission(Admitted {
                    viewer,
                    name,
                    session_code,
                    permissions,
                    ice_servers,
                    access,
                    resume_token,
                });
            }
            UserAction::SetPermissions { viewer, permissions } => {
                let names = permission_names(permissions);
                self.emit(HostOutput::Audit(AuditEvent::PermissionsChanged {
                    viewer: viewer.clone(),
                    permissions: names,
                }));
                self.tell_viewer(viewer, ToViewer::SetPermissions(permissions));
            }
            UserAction::ConfirmVerification { viewer } => {
                self.emit(HostOutput::Audit(AuditEvent::VerificationConfirmed {
                    viewer: viewer.clone(),
                }));
                self.tell_viewer(viewer, ToViewer::Verified);
            }
            UserAction::Disconnect { viewer, reason } => self.tell_viewer(viewer, ToViewer::End(reason)),
            UserAction::Clipboard(text) => self.text_to_every_viewer(TextKind::Clipboard, text),
            UserAction::Chat(text) => self.text_to_every_viewer(TextKind::Chat, text),
            UserAction::MaxBitrate(bps) => {
                let target = self.bitrate.set_max(bps);
                self.set_bitrate(target);
            }
            UserAction::Invite => {
                if self.signaling_open {
                    self.pending_invites += 1;
                    self.emit(HostOutput::Signal(ClientMessage::Register {
                        v: PROTOCOL_VERSION,
                        device: None,
                    }));
                } else {
                    self.emit(HostOutput::InviteAnswer(Err(SessionError::Signaling(
                        SignalingError::Closed,
                    ))));
                }
            }
        }
    }

    /// Chat or clipboard text from the host's user: audited once, then to every viewer in a fixed order (each
    /// viewer's link checks its clipboard permission).
    fn text_to_every_viewer(&mut self, kind: TextKind, text: String) {
        let clipboard = matches!(kind, TextKind::Clipboard);
        self.emit(HostOutput::Audit(AuditEvent::text(kind, "*", "to_viewer", &text)));
        let mut viewers: Vec<ViewerId> = self.viewers.iter().cloned().collect();
        viewers.sort();
        for viewer in viewers {
            let message = if clipboard {
                ToViewer::Clipboard(text.clone())
            } else {
                ToViewer::Chat(text.clone())
            };
            self.emit(HostOutput::ToViewer { viewer, message });
        }
    }

    fn on_viewer(&mut self, note: FromViewer, now: Instant) {
        match note {
            FromViewer::VerificationCode { viewer, code } => {
                let audit = AuditEvent::Connected {
                    viewer: viewer.clone(),
                    verification_code: code.clone(),
                };
                self.emit(HostOutput::Audit(audit));
                self.emit(HostOutput::Event(HostEvent::VerificationCode { viewer, code }));
            }
            FromViewer::Path {
                viewer,
                change: PathChange::Lost,
            } => {
                self.emit(HostOutput::Audit(AuditEvent::Reconnect {
                    viewer: viewer.clone(),
                    state: "lost",
                }));
                self.emit(HostOutput::Event(HostEvent::ViewerReconnecting { viewer }));
            }
            FromViewer::Path {
                viewer,
                change: PathChange::Restored,
            } => {
                self.emit(HostOutput::Audit(AuditEvent::Reconnect {
                    viewer: viewer.clone(),
                    state: "restored",
                }));
                self.emit(HostOutput::Event(HostEvent::ViewerReconnected { viewer }));
            }
            FromViewer::Authenticated {
                viewer,
                access,
                ok: true,
            } => {
                self.access_backoff.record_success();
                let audit = AuditEvent::UnattendedAccess {
                    viewer: viewer.clone(),
                    access: access.clone(),
                    ok: true,
                };
                self.emit(HostOutput::Audit(audit));
                self.emit(HostOutput::Event(HostEvent::UnattendedAccess { viewer, access }));
            }
            FromViewer::Authenticated {
                viewer,
                access,
                ok: false,
            } => {
                let retry_after = self.access_backoff.record_failure(now);
                let failures = self.access_backoff.failures();
                tracing::warn!(%viewer, failures, ?retry_after, "unattended authentication failed");
                self.emit(HostOutput::Audit(AuditEvent::UnattendedAccess {
                    viewer: viewer.clone(),
                    access,
                    ok: false,
                }));
                if self.signaling_open {
                    self.emit(HostOutput::Signal(ClientMessage::AuthFailed {
                        v: PROTOCOL_VERSION,
                        peer: viewer,
                    }));
                }
                if self.unattended.as_ref().is_some_and(|u| failures >= u.alert_after) {
                    self.emit(HostOutput::Event(HostEvent::AccessFailures { failures, retry_after }));
                }
            }
            FromViewer::Connected { viewer, name } => {
                self.emit(HostOutput::Event(HostEvent::ViewerConnected { viewer, name }))
            }
            FromViewer::InputCount { viewer, events } => {
                self.emit(HostOutput::Audit(AuditEvent::Input { viewer, events }))
            }
            FromViewer::Left { viewer, reason } => {
                self.emit(HostOutput::Audit(AuditEvent::Left {
                    viewer: viewer.clone(),
                    reason: reason.clone(),
                }));
                self.viewers.remove(&viewer);
                self.emit(HostOutput::Forget(viewer.clone()));
                let target = self.bitrate.on_viewer_left(&viewer);
                self.set_bitrate(target);
                self.resume_tokens.retain(|_, v| *v != viewer);
                self.aliases.retain(|_, v| *v != viewer);
                self.emit(HostOutput::Event(HostEvent::ViewerLeft { viewer, reason }));
            }
            FromViewer::Clipboard { viewer, text } => {
                self.emit(HostOutput::Audit(AuditEvent::text(
                    TextKind::Clipboard,
                    &viewer,
                    "to_host",
                    &text,
                )));
                self.emit(HostOutput::Event(HostEvent::Clipboard { viewer, text }));
            }
            FromViewer::Chat { viewer, text } => {
                self.emit(HostOutput::Audit(AuditEvent::text(
                    TextKind::Chat,
                    &viewer,
                    "to_host",
                    &text,
                )));
                self.emit(HostOutput::Event(HostEvent::Chat { viewer, text }));
            }
            FromViewer::Refused { viewer, code } => self.emit(HostOutput::Event(HostEvent::Refused { viewer, code })),
            // The slowest viewer sets the pace: one encoder serves all.
            FromViewer::TargetBitrate { viewer, bps } => {
                let target = self.bitrate.on_estimate(viewer, bps);
                self.set_bitrate(target);
            }
        }
    }
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
    crate::text::base64_encode(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unattended::{AccessPolicy, DeviceIdentity, TechnicianAccess};
    use std::time::Duration;

    const CODE: &str = "123-456-789";

    fn core() -> HostCore {
        let mut core = HostCore::new(CODE.into(), 2_000_000, None);
        core.new_token = || "token".to_string();
        core
    }

    fn outputs(core: &mut HostCore) -> Vec<HostOutput> {
        std::iter::from_fn(|| core.poll_output()).collect()
    }

    fn join(peer: &str, name: &str, code: &str) -> HostInput {
        HostInput::Server(ServerMessage::JoinRequest {
            v: PROTOCOL_VERSION,
            peer: peer.into(),
            name: name.into(),
            code: code.into(),
            access: None,
            verified: None,
            asks: Some(Permissions::FULL),
        })
    }

    fn unattended_join(peer: &str, access: &str) -> HostInput {
        HostInput::Server(ServerMessage::JoinRequest {
            v: PROTOCOL_VERSION,
            peer: peer.into(),
            name: "Alex".into(),
            code: String::new(),
            access: Some(access.into()),
            verified: None,
            asks: None,
        })
    }

    fn allow(peer: &str, permissions: Permissions) -> HostInput {
        HostInput::User(UserAction::Consent {
            viewer: peer.into(),
            name: "Alex".into(),
            session_code: CODE.into(),
            access: None,
            consent: Consent::Allow(permissions),
        })
    }

    fn admitted(peer: &str) -> HostInput {
        let ice_servers = vec![IceServer {
            urls: vec!["turn:10.0.0.1:3478".into()],
            ..IceServer::default()
        }];
        HostInput::Server(ServerMessage::Admitted {
            v: PROTOCOL_VERSION,
            viewer: peer.into(),
            ice_servers,
        })
    }

    fn registered(code: &str) -> HostInput {
        HostInput::Server(ServerMessage::Registered {
            v: PROTOCOL_VERSION,
            peer: "host".into(),
            code: code.into(),
            expires_in_secs: 600,
            ice_servers: Vec::new(),
            device: None,
        })
    }

    /// Lets `peer` in and has the server confirm it: the viewer's task runs.
    fn connect(core: &mut HostCore, peer: &str, now: Instant) {
        core.handle(allow(peer, Permissions::VIEW_ONLY), now);
        core.handle(admitted(peer), now);
        let started = outputs(core)
            .into_iter()
            .any(|o| matches!(o, HostOutput::Start(a) if a.viewer == peer));
        assert!(started, "{peer} was not started");
    }

    fn signals(outputs: &[HostOutput]) -> Vec<&ClientMessage> {
        outputs
            .iter()
            .filter_map(|o| if let HostOutput::Signal(m) = o { Some(m) } else { None })
            .collect()
    }

    fn invite_answers(outputs: Vec<HostOutput>) -> Vec<Result<String, SessionError>> {
        outputs
            .into_iter()
            .filter_map(|o| {
                if let HostOutput::InviteAnswer(a) = o {
                    Some(a)
                } else {
                    None
                }
            })
            .collect()
    }

    #[test]
    fn a_join_for_a_code_the_host_does_not_hold_is_refused_without_asking() {
        let mut core = core();
        core.handle(join("v1", "Alex", "999-999-999"), Instant::now());
        let out = outputs(&mut core);
        assert!(
            matches!(signals(&out)[..], [ClientMessage::Reject { peer, .. }] if peer == "v1"),
            "{out:?}"
        );
        assert!(
            !out.iter().any(|o| matches!(o, HostOutput::Event(_))),
            "the user was asked: {out:?}"
        );
    }

    #[test]
    fn a_join_asks_the_user_with_a_printable_name_and_is_audited_first() {
        let mut core = core();
        core.handle(join("v1", "Al\u{202e}ex\u{7}  ", CODE), Instant::now());
        let out = outputs(&mut core);
        let [HostOutput::Audit(AuditEvent::JoinRequest { viewer, name: audited }), HostOutput::Event(HostEvent::JoinRequest(request))] =
            &out[..]
        else {
            panic!("{out:?}")
        };
        assert_eq!(viewer, "v1");
        assert_eq!(audited, "Alex (name not verified)");
        assert_eq!(
            (request.name.as_str(), request.asks, request.session_code.as_str()),
            ("Alex", Permissions::FULL, CODE)
        );
        assert!(request.reply.is_none(), "the driver gives the answer its way back");
    }

    #[test]
    fn a_viewer_starts_only_once_the_user_allowed_it_and_the_server_admitted_it() {
        let mut core = core();
        let now = Instant::now();
        // The server's admission of a viewer nobody let in starts nothing.
        core.handle(admitted("v1"), now);
        assert!(outputs(&mut core).is_empty());
        core.handle(allow("v1", Permissions::FULL), now);
        let out = outputs(&mut core);
        assert!(
            matches!(signals(&out)[..], [ClientMessage::Accept { peer, .. }] if peer == "v1"),
            "{out:?}"
        );
        assert!(
            !out.iter().any(|o| matches!(o, HostOutput::Start(_))),
            "started before the server's admission"
        );
        core.handle(admitted("v1"), now);
        let out = outputs(&mut core);
        let [HostOutput::Start(started)] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!(
            (started.viewer.as_str(), started.permissions),
            ("v1", Permissions::FULL)
        );
        assert_eq!(started.ice_servers[0].urls, ["turn:10.0.0.1:3478"]);
        assert_eq!(started.resume_token, "token");
        // A second admission of the same viewer starts nothing more.
        core.handle(admitted("v1"), now);
        assert!(outputs(&mut core).is_empty());
    }

    #[test]
    fn a_denial_rejects_with_the_users_reason_and_is_audited() {
        let mut core = core();
        let deny = UserAction::Consent {
            viewer: "v1".into(),
            name: "Alex".into(),
            session_code: CODE.into(),
            access: None,
            consent: Consent::Deny("not now".into()),
        };
        core.handle(HostInput::User(deny), Instant::now());
        let out = outputs(&mut core);
        assert!(
            matches!(&out[0], HostOutput::Audit(AuditEvent::Consent { allowed: false, .. })),
            "{out:?}"
        );
        assert!(
            matches!(signals(&out)[..], [ClientMessage::Reject { reason, .. }] if reason == "not now"),
            "{out:?}"
        );
        core.handle(admitted("v1"), Instant::now());
        assert!(outputs(&mut core).is_empty(), "a denied viewer was started");
    }

    #[test]
    fn invites_are_answered_in_order_and_more_than_sixteen_codes_are_held() {
        let mut core = core();
        let now = Instant::now();
        for _ in 0..20 {
            core.handle(HostInput::User(UserAction::Invite), now);
        }
        let out = outputs(&mut core);
        assert_eq!(
            signals(&out)
                .iter()
                .filter(|m| matches!(m, ClientMessage::Register { .. }))
                .count(),
            20
        );
        let mut answers = Vec::new();
        for i in 0..19 {
            core.handle(registered(&format!("code-{i}")), now);
            answers.extend(invite_answers(outputs(&mut core)));
        }
        let refusal = ServerMessage::error(crate::signaling::ErrorCode::RateLimited, "slow down");
        core.handle(HostInput::Server(refusal), now);
        answers.extend(invite_answers(outputs(&mut core)));
        let expected: Vec<_> = (0..19)
            .map(|i| Ok(format!("code-{i}")))
            .chain([Err(SessionError::RateLimited("slow down".into()))])
            .collect();
        assert_eq!(answers, expected);
        // Every code issued is still held: a join with the nineteenth asks the user.
        core.handle(join("v1", "Alex", "code-18"), now);
        assert!(outputs(&mut core)
            .iter()
            .any(|o| matches!(o, HostOutput::Event(HostEvent::JoinRequest(_)))));
    }

    #[test]
    fn a_signaling_restart_fails_pending_invites_backs_off_and_resumes_the_viewers() {
        let mut core = core();
        let t0 = Instant::now();
        connect(&mut core, "v1", t0);
        core.handle(HostInput::User(UserAction::Invite), t0);
        outputs(&mut core);
        assert_eq!(core.reconnect_deadline(), None);

        core.handle(HostInput::SignalingClosed, t0);
        assert!(!core.signaling_open());
        let answers = invite_answers(outputs(&mut core));
        assert_eq!(answers, [Err(SessionError::Signaling(SignalingError::Closed))]);
        assert_eq!(core.reconnect_deadline(), Some(t0 + Duration::from_secs(1)));
        // An invite while the server is gone fails at once.
        core.handle(HostInput::User(UserAction::Invite), t0);
        assert_eq!(invite_answers(outputs(&mut core)).len(), 1);
        let t1 = t0 + Duration::from_secs(1);
        core.handle(HostInput::ReconnectFailed, t1);
        assert_eq!(core.reconnect_deadline(), Some(t1 + Duration::from_secs(2)));

        let t2 = t1 + Duration::from_secs(2);
        core.handle(HostInput::SignalingReconnected, t2);
        assert_eq!(core.reconnect_deadline(), None);
        core.handle(registered("new-code"), t2);
        let out = outputs(&mut core);
        assert!(
            matches!(&out[0], HostOutput::Event(HostEvent::SignalingRestored { code }) if code == "new-code"),
            "{out:?}"
        );
        assert!(
            matches!(signals(&out)[..], [ClientMessage::Resume { token, .. }] if token == "token"),
            "{out:?}"
        );
        // The old connection's code died with it; the new one is held.
        core.handle(join("v2", "Eve", CODE), t2);
        assert!(matches!(
            signals(&outputs(&mut core))[..],
            [ClientMessage::Reject { .. }]
        ));
        core.handle(join("v3", "Alex", "new-code"), t2);
        assert!(outputs(&mut core)
            .iter()
            .any(|o| matches!(o, HostOutput::Event(HostEvent::JoinRequest(_)))));
        // The wait starts from the first again after a success.
        core.handle(HostInput::SignalingClosed, t2);
        assert_eq!(core.reconnect_deadline(), Some(t2 + Duration::from_secs(1)));
    }

    #[test]
    fn a_resumed_viewer_is_reached_under_its_new_peer_id_until_it_leaves() {
        let mut core = core();
        let now = Instant::now();
        connect(&mut core, "v1", now);
        let resumed = ServerMessage::Resumed {
            v: PROTOCOL_VERSION,
            token: "token".into(),
            peer: "v1-new".into(),
        };
        core.handle(HostInput::Server(resumed.clone()), now);
        let out = outputs(&mut core);
        assert!(
            matches!(&out[..], [HostOutput::ToViewer { viewer, message: ToViewer::Readdress(p) }] if viewer == "v1" && p == "v1-new"),
            "{out:?}"
        );
        let candidate = SignalPayload::Candidate {
            candidate: "candidate:1".into(),
            sdp_mid: None,
            sdp_mline_index: None,
        };
        let signal = ServerMessage::Signal {
            v: PROTOCOL_VERSION,
            from: "v1-new".into(),
            payload: candidate,
        };
        core.handle(HostInput::Server(signal.clone()), now);
        assert!(matches!(&outputs(&mut core)[..], [HostOutput::ToViewer { viewer, .. }] if viewer == "v1"));

        let left = FromViewer::Left {
            viewer: "v1".into(),
            reason: "bye".into(),
        };
        core.handle(HostInput::Viewer(left), now);
        let out = outputs(&mut core);
        assert!(
            out.iter().any(|o| matches!(o, HostOutput::Forget(v) if v == "v1")),
            "{out:?}"
        );
        assert!(
            out.iter()
                .any(|o| matches!(o, HostOutput::Event(HostEvent::ViewerLeft { .. }))),
            "{out:?}"
        );
        // Its token and alias went with it.
        core.handle(HostInput::Server(resumed), now);
        core.handle(HostInput::Server(signal), now);
        assert!(outputs(&mut core).is_empty());
    }

    #[test]
    fn chat_reaches_every_connected_viewer_once_and_is_audited() {
        let mut core = core();
        let now = Instant::now();
        connect(&mut core, "v2", now);
        connect(&mut core, "v1", now);
        core.handle(HostInput::User(UserAction::Chat("hello".into())), now);
        let out = outputs(&mut core);
        let reached: Vec<&str> = out
            .iter()
            .filter_map(|o| match o {
                HostOutput::ToViewer {
                    viewer,
                    message: ToViewer::Chat(text),
                } if text == "hello" => Some(viewer.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(reached, ["v1", "v2"]);
        assert!(matches!(&out[0], HostOutput::Audit(_)));
        // Messages for a viewer that is not connected go nowhere.
        core.handle(
            HostInput::User(UserAction::SetPermissions {
                viewer: "nobody".into(),
                permissions: Permissions::FULL,
            }),
            now,
        );
        assert!(!outputs(&mut core)
            .iter()
            .any(|o| matches!(o, HostOutput::ToViewer { .. })));
    }

    #[test]
    fn the_slowest_viewer_sets_the_encoder_and_its_leaving_frees_the_others() {
        let mut core = core();
        let now = Instant::now();
        connect(&mut core, "v1", now);
        connect(&mut core, "v2", now);
        let estimate = |core: &mut HostCore, viewer: &str, bps: f64| {
            core.handle(
                HostInput::Viewer(FromViewer::TargetBitrate {
                    viewer: viewer.into(),
                    bps,
                }),
                now,
            );
        };
        let bitrates = |core: &mut HostCore| -> Vec<u32> {
            outputs(core)
                .into_iter()
                .filter_map(|o| {
                    if let HostOutput::EncoderBitrate(b) = o {
                        Some(b)
                    } else {
                        None
                    }
                })
                .collect()
        };
        estimate(&mut core, "v1", 1_500_000.0);
        assert_eq!(bitrates(&mut core), [1_500_000]);
        estimate(&mut core, "v2", 400_000.0);
        assert_eq!(bitrates(&mut core), [400_000]);
        // The fast viewer's estimates do not lift the slow one's pace.
        estimate(&mut core, "v1", 1_800_000.0);
        assert_eq!(bitrates(&mut core), Vec::<u32>::new());
        core.handle(
            HostInput::Viewer(FromViewer::Left {
                viewer: "v2".into(),
                reason: "bye".into(),
            }),
            now,
        );
        assert_eq!(bitrates(&mut core), [1_800_000]);
        core.handle(HostInput::User(UserAction::MaxBitrate(1_000_000)), now);
        assert_eq!(bitrates(&mut core), [1_000_000]);
    }

    #[test]
    fn unattended_joins_are_refused_without_unattended_access() {
        let mut core = core();
        core.handle(unattended_join("v1", "alice"), Instant::now());
        let out = outputs(&mut core);
        assert!(
            matches!(signals(&out)[..], [ClientMessage::Reject { reason, .. }] if reason.contains("unattended")),
            "{out:?}"
        );
        assert!(!out.iter().any(|o| matches!(o, HostOutput::Event(_))));
    }

    #[test]
    fn failed_unattended_attempts_back_off_every_later_attempt_and_a_success_clears_it() {
        let access = TechnicianAccess::new("alice", "correct horse battery staple")
            .unwrap()
            .permissions(Permissions::FULL);
        let config =
            UnattendedConfig::new(DeviceIdentity::generate().unwrap(), AccessPolicy::new().with(access)).alert_after(2);
        let mut core = HostCore::new(CODE.into(), 2_000_000, Some(config));
        let t0 = Instant::now();
        // A known access that does not ask the customer is accepted with its policy's permissions, unasked.
        core.handle(unattended_join("v1", "alice"), t0);
        let out = outputs(&mut core);
        assert!(matches!(signals(&out)[..], [ClientMessage::Accept { .. }]), "{out:?}");
        assert!(
            !out.iter().any(|o| matches!(o, HostOutput::Event(_))),
            "the customer was asked: {out:?}"
        );
        core.handle(admitted("v1"), t0);
        let out = outputs(&mut core);
        assert!(
            matches!(&out[..], [HostOutput::Start(a)] if a.permissions == Permissions::FULL && a.access.as_deref() == Some("alice")),
            "{out:?}"
        );

        let failed = |viewer: &str| {
            HostInput::Viewer(FromViewer::Authenticated {
                viewer: viewer.into(),
                access: "alice".into(),
                ok: false,
            })
        };
        core.handle(failed("v1"), t0);
        let out = outputs(&mut core);
        assert!(
            matches!(signals(&out)[..], [ClientMessage::AuthFailed { .. }]),
            "{out:?}"
        );
        assert!(
            !out.iter()
                .any(|o| matches!(o, HostOutput::Event(HostEvent::AccessFailures { .. }))),
            "alerted after one failure"
        );
        // Whoever tries next, during the wait, is refused without a handshake.
        core.handle(unattended_join("v2", "alice"), t0 + Duration::from_millis(500));
        let out = outputs(&mut core);
        assert!(
            matches!(signals(&out)[..], [ClientMessage::Reject { reason, .. }] if reason.contains("retry in 1 s")),
            "{out:?}"
        );
        // After the wait, one more try; its failure doubles the wait and alerts the app.
        core.handle(unattended_join("v3", "alice"), t0 + Duration::from_secs(1));
        assert!(matches!(
            signals(&outputs(&mut core))[..],
            [ClientMessage::Accept { .. }]
        ));
        core.handle(failed("v3"), t0 + Duration::from_secs(1));
        let out = outputs(&mut core);
        assert!(
            out.iter()
                .any(|o| matches!(o, HostOutput::Event(HostEvent::AccessFailures { failures: 2, .. }))),
            "{out:?}"
        );
        core.handle(unattended_join("v4", "alice"), t0 + Duration::from_millis(2500));
        assert!(matches!(
            signals(&outputs(&mut core))[..],
            [ClientMessage::Reject { .. }]
        ));
        let ok = FromViewer::Authenticated {
            viewer: "v1".into(),
            access: "alice".into(),
            ok: true,
        };
        core.handle(HostInput::Viewer(ok), t0 + Duration::from_millis(2500));
        outputs(&mut core);
        core.handle(unattended_join("v5", "alice"), t0 + Duration::from_millis(2500));
        assert!(matches!(
            signals(&outputs(&mut core))[..],
            [ClientMessage::Accept { .. }]
        ));
    }

    #[test]
    fn finishing_leaves_the_server_and_ends_every_viewer() {
        let mut core = core();
        let now = Instant::now();
        connect(&mut core, "v1", now);
        core.finish("bye".into());
        let out = outputs(&mut core);
        assert!(
            matches!(&out[0], HostOutput::Signal(ClientMessage::Leave { .. })),
            "{out:?}"
        );
        assert!(
            matches!(&out[1], HostOutput::ToViewer { viewer, message: ToViewer::End(r) } if viewer == "v1" && r == "bye")
        );
        assert!(matches!(out.last(), Some(HostOutput::Event(HostEvent::Ended { reason })) if reason == "bye"));
    }
}
