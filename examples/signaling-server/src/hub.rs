//! The hub: what the server does with each message, independent of sockets.
//!
//! Every connected peer has an outgoing queue; [`Hub::handle`] parses one message from a peer, checks it against
//! the limits and the room state, and queues the replies and relays. A bad message gets an `error` reply and
//! changes nothing else.

use crate::rooms::{new_code, RedeemError, Relation, RoomStore};
use peerdesk::ratelimit::FailureWindow;
use peerdesk::signaling::protocol::{parse_client_message, MAX_NAME_CHARS};
use peerdesk::signaling::{ClientMessage, ErrorCode, IceServer, PeerId, ServerMessage, PROTOCOL_VERSION};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Server settings.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Digits in a session code (at least 9).
    pub code_digits: usize,
    /// How long a code stays valid.
    pub code_ttl: Duration,
    /// STUN/TURN servers handed to clients.
    pub ice_servers: Vec<IceServer>,
    /// Most peers connected at once.
    pub max_peers: usize,
    /// Sustained messages per second per connection.
    pub messages_per_second: f64,
    /// Burst of messages per connection.
    pub message_burst: f64,
    /// Failed joins allowed per address per window.
    pub join_failures_per_addr: usize,
    /// Failed joins allowed from all addresses together per window.
    pub join_failures_global: usize,
    /// The window for failed joins.
    pub join_failure_window: Duration,
    /// Codes one host may hold at once.
    pub codes_per_host: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            code_digits: 10,
            code_ttl: Duration::from_secs(600),
            ice_servers: Vec::new(),
            max_peers: 10_000,
            messages_per_second: 20.0,
            message_burst: 60.0,
            join_failures_per_addr: 10,
            join_failures_global: 1_000,
            join_failure_window: Duration::from_secs(60),
            codes_per_host: 16,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Unassigned,
    Host,
    Viewer,
}

#[derive(Debug)]
struct PeerEntry {
    tx: mpsc::Sender<ServerMessage>,
    role: Role,
    /// For a viewer: the host it joined.
    host: Option<PeerId>,
    codes_issued: usize,
}

/// Queue length of each peer's outgoing messages; a peer that falls this far behind loses messages.
pub const OUTGOING_QUEUE: usize = 128;

/// The server's shared state.
pub struct Hub {
    config: HubConfig,
    store: Arc<dyn RoomStore>,
    peers: Mutex<HashMap<PeerId, PeerEntry>>,
    join_failures: Mutex<HashMap<IpAddr, FailureWindow>>,
    global_join_failures: Mutex<FailureWindow>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn new_peer_id() -> PeerId {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn clean_name(name: &str) -> Option<String> {
    let name: String = name
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .to_string();
    (!name.is_empty() && name.chars().count() <= MAX_NAME_CHARS).then_some(name)
}

impl Hub {
    /// A hub over a room store.
    pub fn new(config: HubConfig, store: Arc<dyn RoomStore>) -> Self {
        let global = FailureWindow::new(config.join_failures_global, config.join_failure_window);
        Hub {
            config,
            store,
            peers: Mutex::new(HashMap::new()),
            join_failures: Mutex::new(HashMap::new()),
            global_join_failures: Mutex::new(global),
        }
    }

    /// Registers a new connection; returns its id and outgoing queue, or `Unavailable` at capacity.
    pub fn connect(&self) -> Result<(PeerId, mpsc::Receiver<ServerMessage>), ErrorCode> {
        let mut peers = lock(&self.peers);
        if peers.len() >= self.config.max_peers {
            return Err(ErrorCode::Unavailable);
        }
        let id = new_peer_id();
        let (tx, rx) = mpsc::channel(OUTGOING_QUEUE);
        peers.insert(
            id.clone(),
            PeerEntry {
                tx,
                role: Role::Unassigned,
                host: None,
                codes_issued: 0,
            },
        );
        Ok((id, rx))
    }

    /// Peers connected and (codes, pairs) live, for the health endpoint.
    pub fn counts(&self) -> (usize, usize, usize) {
        let (codes, pairs) = self.store.counts(Instant::now());
        (lock(&self.peers).len(), codes, pairs)
    }

    fn send(&self, to: &PeerId, message: ServerMessage) {
        let tx = lock(&self.peers).get(to).map(|p| p.tx.clone());
        if let Some(tx) = tx {
            if tx.try_send(message).is_err() {
                tracing::warn!(peer = %to, "outgoing queue full or closed; message dropped");
            }
        }
    }

    /// Queues an error reply to `to`.
    pub fn reply_error(&self, to: &PeerId, code: ErrorCode, message: impl Into<String>) {
        let message = message.into();
        tracing::info!(peer = %to, code = %code, %message, "request refused");
        self.send(to, ServerMessage::error(code, message));
    }

    /// Handles one text message from `peer`, which connected from `addr`.
    pub fn handle(&self, peer: &PeerId, addr: IpAddr, text: &str, now: Instant) {
        let message = match parse_client_message(text) {
            Ok(m) => m,
            Err(e) => return self.reply_error(peer, e.code(), e.to_string()),
        };
        debug_assert_eq!(message.version(), PROTOCOL_VERSION);
        match message {
            ClientMessage::Register { .. } => self.register(peer, now),
            ClientMessage::Join { code, name, .. } => self.join(peer, addr, &code, &name, now),
            ClientMessage::Accept { peer: viewer, .. } => self.accept(peer, &viewer),
            ClientMessage::Reject {
                peer: viewer, reason, ..
            } => self.reject(peer, &viewer, &reason),
            ClientMessage::Signal { to, payload, .. } => {
                if self.paired(peer, &to) {
                    self.send(
                        &to,
                        ServerMessage::Signal {
                            v: PROTOCOL_VERSION,
                            from: peer.clone(),
                            payload,
                        },
                    );
                } else if lock(&self.peers).contains_key(&to) {
                    self.reply_error(
                        peer,
                        ErrorCode::NotAllowed,
                        "signal is only relayed between a host and a viewer it accepted",
                    );
                } else {
                    self.reply_error(peer, ErrorCode::UnknownPeer, format!("no peer {to}"));
                }
            }
            ClientMessage::Leave { .. } => self.leave(peer, "left"),
        }
    }

    fn role(&self, peer: &PeerId) -> Option<Role> {
        lock(&self.peers).get(peer).map(|p| p.role)
    }

    fn paired(&self, a: &PeerId, b: &PeerId) -> bool {
        self.store.relation(a, b) == Relation::Admitted || self.store.relation(b, a) == Relation::Admitted
    }

    fn register(&self, peer: &PeerId, now: Instant) {
        {
            let mut peers = lock(&self.peers);
            let Some(entry) = peers.get_mut(peer) else {
                return;
            };
            if entry.role == Role::Viewer {
                drop(peers);
                return self.reply_error(
                    peer,
                    ErrorCode::NotAllowed,
                    "a viewer connection cannot register as a host",
                );
            }
            if entry.codes_issued >= self.config.codes_per_host {
                drop(peers);
                return self.reply_error(peer, ErrorCode::RateLimited, "this host holds the most codes allowed");
            }
            entry.role = Role::Host;
            entry.codes_issued += 1;
        }
        let code = loop {
            let code = new_code(self.config.code_digits);
            if self.store.insert_code(&code, peer, now, self.config.code_ttl) {
                break code;
            }
        };
        tracing::info!(host = %peer, "session code issued");
        self.send(
            peer,
            ServerMessage::Registered {
                v: PROTOCOL_VERSION,
                peer: peer.clone(),
                code,
                expires_in_secs: self.config.code_ttl.as_secs(),
                ice_servers: self.config.ice_servers.clone(),
            },
        );
    }

    fn join(&self, peer: &PeerId, addr: IpAddr, code: &str, name: &str, now: Instant) {
        match self.role(peer) {
            Some(Role::Unassigned) => {}
            Some(_) => return self.reply_error(peer, ErrorCode::NotAllowed, "this connection already has a role"),
            None => return,
        }
        let Some(name) = clean_name(name) else {
            return self.reply_error(
                peer,
                ErrorCode::Malformed,
                format!("name must be 1..={MAX_NAME_CHARS} printable characters"),
            );
        };
        let allowed = lock(&self.join_failures)
            .entry(addr)
            .or_insert_with(|| FailureWindow::new(self.config.join_failures_per_addr, self.config.join_failure_window))
            .allows(now)
            && lock(&self.global_join_failures).allows(now);
        if !allowed {
            return self.reply_error(
                peer,
                ErrorCode::RateLimited,
                "too many failed join attempts; try again later",
            );
        }
        let well_formed = code.len() == self.config.code_digits && code.bytes().all(|b| b.is_ascii_digit());
        let result = if well_formed {
            self.store.redeem(code, now)
        } else {
            Err(RedeemError::Invalid)
        };
        let host = match result {
            Ok(host) => host,
            Err(e) => {
                lock(&self.join_failures)
                    .entry(addr)
                    .or_insert_with(|| {
                        FailureWindow::new(self.config.join_failures_per_addr, self.config.join_failure_window)
                    })
                    .record_failure(now);
                lock(&self.global_join_failures).record_failure(now);
                let code = match e {
                    RedeemError::Invalid => ErrorCode::InvalidCode,
                    RedeemError::Expired => ErrorCode::ExpiredCode,
                };
                return self.reply_error(peer, code, e.to_string());
            }
        };
        {
            let mut peers = lock(&self.peers);
            if !peers.contains_key(&host) {
                drop(peers);
                return self.reply_error(peer, ErrorCode::InvalidCode, "the host of this code has gone");
            }
            if let Some(entry) = peers.get_mut(peer) {
                entry.role = Role::Viewer;
                entry.host = Some(host.clone());
            }
        }
        lock(&self.join_failures).retain(|_, w| !w.is_idle(now));
        self.store.set_pending(&host, peer);
        tracing::info!(host = %host, viewer = %peer, "join request");
        self.send(
            peer,
            ServerMessage::JoinPending {
                v: PROTOCOL_VERSION,
                peer: peer.clone(),
                host: host.clone(),
                ice_servers: self.config.ice_servers.clone(),
            },
        );
        self.send(
            &host,
            ServerMessage::JoinRequest {
                v: PROTOCOL_VERSION,
                peer: peer.clone(),
                name,
            },
        );
    }

    fn accept(&self, host: &PeerId, viewer: &PeerId) {
        if self.role(host) != Some(Role::Host) {
            return self.reply_error(host, ErrorCode::NotAllowed, "only a host accepts viewers");
        }
        match self.store.relation(host, viewer) {
            Relation::Pending => {
                self.store.admit(host, viewer);
                tracing::info!(host = %host, viewer = %viewer, "viewer accepted");
                self.send(
                    viewer,
                    ServerMessage::Accepted {
                        v: PROTOCOL_VERSION,
                        host: host.clone(),
                    },
                );
            }
            Relation::Admitted => self.reply_error(host, ErrorCode::NotAllowed, "viewer already accepted"),
            Relation::None => self.reply_error(host, ErrorCode::UnknownPeer, format!("no pending viewer {viewer}")),
        }
    }

    fn reject(&self, host: &PeerId, viewer: &PeerId, reason: &str) {
        if self.role(host) != Some(Role::Host) {
            return self.reply_error(host, ErrorCode::NotAllowed, "only a host rejects viewers");
        }
        if self.store.relation(host, viewer) == Relation::None {
            return self.reply_error(host, ErrorCode::UnknownPeer, format!("no viewer {viewer}"));
        }
        self.store.unpair(host, viewer);
        let reason: String = reason.chars().filter(|c| !c.is_control()).take(200).collect();
        tracing::info!(host = %host, viewer = %viewer, "viewer rejected");
        self.send(
            viewer,
            ServerMessage::error(
                ErrorCode::Denied,
                if reason.is_empty() {
                    "the host declined".into()
                } else {
                    reason
                },
            ),
        );
    }

    fn leave(&self, peer: &PeerId, reason: &str) {
        for other in self.store.remove_peer(peer) {
            self.send(
                &other,
                ServerMessage::PeerLeft {
                    v: PROTOCOL_VERSION,
                    peer: peer.clone(),
                    reason: reason.to_string(),
                },
            );
        }
    }

    /// Forgets a connection that closed, telling its counterparts.
    pub fn disconnect(&self, peer: &PeerId) {
        self.leave(peer, "disconnected");
        lock(&self.peers).remove(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rooms::MemoryRoomStore;

    const ADDR: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn hub() -> Hub {
        Hub::new(HubConfig::default(), Arc::new(MemoryRoomStore::default()))
    }

    fn next(rx: &mut mpsc::Receiver<ServerMessage>) -> ServerMessage {
        rx.try_recv().expect("a message was queued")
    }

    fn error_code(m: ServerMessage) -> ErrorCode {
        match m {
            ServerMessage::Error { code, .. } => code,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn register_join_accept_and_relay() {
        let hub = hub();
        let now = Instant::now();
        let (host, mut host_rx) = hub.connect().unwrap();
        let (viewer, mut viewer_rx) = hub.connect().unwrap();
        hub.handle(&host, ADDR, r#"{"type":"register","v":1}"#, now);
        let ServerMessage::Registered { code, .. } = next(&mut host_rx) else {
            panic!()
        };
        assert_eq!(code.len(), 10);
        // Signal before admission is refused.
        let early = format!(r#"{{"type":"signal","v":1,"to":"{host}","payload":{{"kind":"answer","sdp":"x"}}}}"#);
        hub.handle(&viewer, ADDR, &early, now);
        assert_eq!(error_code(next(&mut viewer_rx)), ErrorCode::NotAllowed);
        hub.handle(
            &viewer,
            ADDR,
            &format!(r#"{{"type":"join","v":1,"code":"{code}","name":"Tech"}}"#),
            now,
        );
        assert!(matches!(next(&mut viewer_rx), ServerMessage::JoinPending { .. }));
        assert!(matches!(next(&mut host_rx), ServerMessage::JoinRequest { name, .. } if name == "Tech"));
        hub.handle(
            &host,
            ADDR,
            &format!(r#"{{"type":"accept","v":1,"peer":"{viewer}"}}"#),
            now,
        );
        assert!(matches!(next(&mut viewer_rx), ServerMessage::Accepted { .. }));
        let offer = format!(r#"{{"type":"signal","v":1,"to":"{viewer}","payload":{{"kind":"offer","sdp":"v=0"}}}}"#);
        hub.handle(&host, ADDR, &offer, now);
        assert!(matches!(next(&mut viewer_rx), ServerMessage::Signal { from, .. } if from == host));
        // The code was single use.
        let (other, mut other_rx) = hub.connect().unwrap();
        hub.handle(
            &other,
            ADDR,
            &format!(r#"{{"type":"join","v":1,"code":"{code}","name":"X"}}"#),
            now,
        );
        assert_eq!(error_code(next(&mut other_rx)), ErrorCode::InvalidCode);
        hub.disconnect(&host);
        assert!(matches!(next(&mut viewer_rx), ServerMessage::PeerLeft { .. }));
    }

    #[test]
    fn guessing_is_rate_limited_per_address() {
        let hub = hub();
        let now = Instant::now();
        let (guesser, mut rx) = hub.connect().unwrap();
        for i in 0..10 {
            hub.handle(
                &guesser,
                ADDR,
                &format!(r#"{{"type":"join","v":1,"code":"{:010}","name":"g"}}"#, i),
                now,
            );
            assert_eq!(error_code(next(&mut rx)), ErrorCode::InvalidCode);
        }
        hub.handle(
            &guesser,
            ADDR,
            r#"{"type":"join","v":1,"code":"0000000042","name":"g"}"#,
            now,
        );
        assert_eq!(error_code(next(&mut rx)), ErrorCode::RateLimited);
        // Another address is not affected; the first is again after the window.
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        hub.handle(
            &guesser,
            other,
            r#"{"type":"join","v":1,"code":"0000000042","name":"g"}"#,
            now,
        );
        assert_eq!(error_code(next(&mut rx)), ErrorCode::InvalidCode);
        hub.handle(
            &guesser,
            ADDR,
            r#"{"type":"join","v":1,"code":"0000000042","name":"g"}"#,
            now + Duration::from_secs(61),
        );
        assert_eq!(error_code(next(&mut rx)), ErrorCode::InvalidCode);
    }

    #[test]
    fn only_hosts_accept_and_reject_is_denial() {
        let hub = hub();
        let now = Instant::now();
        let (host, mut host_rx) = hub.connect().unwrap();
        let (viewer, mut viewer_rx) = hub.connect().unwrap();
        hub.handle(&host, ADDR, r#"{"type":"register","v":1}"#, now);
        let ServerMessage::Registered { code, .. } = next(&mut host_rx) else {
            panic!()
        };
        hub.handle(
            &viewer,
            ADDR,
            &format!(r#"{{"type":"join","v":1,"code":"{code}","name":"T"}}"#),
            now,
        );
        next(&mut viewer_rx);
        next(&mut host_rx);
        hub.handle(
            &viewer,
            ADDR,
            &format!(r#"{{"type":"accept","v":1,"peer":"{viewer}"}}"#),
            now,
        );
        assert_eq!(error_code(next(&mut viewer_rx)), ErrorCode::NotAllowed);
        hub.handle(
            &host,
            ADDR,
            &format!(r#"{{"type":"reject","v":1,"peer":"{viewer}","reason":"not now"}}"#),
            now,
        );
        assert!(
            matches!(next(&mut viewer_rx), ServerMessage::Error { code: ErrorCode::Denied, message, .. } if message == "not now")
        );
    }
}
