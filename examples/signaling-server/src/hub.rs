//! The hub: what the server does with each message, independent of sockets.
//!
//! Every connected peer has an outgoing queue; [`Hub::handle`] parses one message from a peer, checks it against
//! the limits and the room state, and queues the replies and relays. A bad message gets an `error` reply and
//! changes nothing else.

use crate::limits::{client_key, Cidr, JoinGuard, JoinLimits};
use crate::outbox::{outbox, Outbox, OutboxError, OutboxReceiver, OUTBOX_BYTES};
use crate::rooms::{new_code, RedeemError, Relation, RoomStore};
use crate::turn::TurnRest;
use peerdesk::ratelimit::{FailureBackoff, TokenBucket};
use peerdesk::signaling::protocol::{parse_client_message, MAX_ACCESS_CHARS, MAX_NAME_CHARS};
use peerdesk::signaling::{
    ClientMessage, DeviceClaim, ErrorCode, IceServer, PeerId, ServerMessage, VerifiedIdentity, PROTOCOL_VERSION,
};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Server settings.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Digits in a session code (at least 9).
    pub code_digits: usize,
    /// How long a code stays valid.
    pub code_ttl: Duration,
    /// STUN/TURN servers handed to admitted peers (with static credentials, if any).
    pub ice_servers: Vec<IceServer>,
    /// A TURN server that takes time-limited REST credentials, issued per peer on admission.
    pub turn: Option<TurnRest>,
    /// Most peers connected at once.
    pub max_peers: usize,
    /// Limits on failed joins (code guesses), per client key and prefix.
    pub join: JoinLimits,
    /// Live codes one host connection may hold at once (used and expired codes no longer count).
    pub codes_per_host: usize,
    /// Bytes queued for one connection before it counts as not reading and is disconnected.
    pub outbox_bytes: usize,
    /// Technician accounts viewers may sign in with; none by default.
    pub accounts: Option<Arc<crate::accounts::Accounts>>,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            code_digits: 10,
            code_ttl: Duration::from_secs(600),
            ice_servers: Vec::new(),
            turn: None,
            max_peers: 10_000,
            join: JoinLimits::default(),
            codes_per_host: 16,
            outbox_bytes: OUTBOX_BYTES,
            accounts: None,
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
    outbox: Outbox,
    role: Role,
    /// For a viewer: the host it joined.
    host: Option<PeerId>,
    /// The nonce this connection may sign once to register a device ID.
    nonce: Option<[u8; 32]>,
    /// For a host: the device ID it registered.
    device: Option<String>,
    /// For an unattended viewer: the device it asked for and its client key, where a failure backs off.
    unattended: Option<(String, Cidr)>,
    /// The technician account this connection signed in with.
    account: Option<String>,
}

/// A registered device: the connection holding it and its key.
#[derive(Debug, Clone)]
struct DeviceEntry {
    host: PeerId,
    public_key: [u8; 32],
}

/// A resumption token waits this long for the other side of its session.
const RESUME_WAIT: Duration = Duration::from_secs(120);
/// Most resumption tokens one connection may have waiting (a host presents one per viewer).
const RESUMES_PER_PEER: usize = 64;
/// Most resumption tokens waiting across the server.
const MAX_RESUMES: usize = 100_000;

/// One side of a session waiting for the other to present the same token.
#[derive(Debug, Clone)]
struct ResumeEntry {
    peer: PeerId,
    host_side: bool,
    at: Instant,
}

/// Most (device, client) backoff entries kept; when full, stale ones are pruned and, if none is stale, new
/// unattended attempts wait.
const MAX_AUTH_BACKOFFS: usize = 100_000;
/// A backoff entry whose wait ended this long ago is forgotten.
const AUTH_BACKOFF_MEMORY: Duration = Duration::from_secs(3600);

/// Log lines about refused requests and dropped connections, per second, across the server: enough to see an
/// attack, not enough for an attacker to fill the disk (one connection once wrote 1 GB of log in 10 s).
const REFUSAL_LOGS_PER_SECOND: f64 = 20.0;

/// Rate-limits a kind of log line and counts what it held back.
#[derive(Debug)]
struct LogLimiter {
    bucket: TokenBucket,
    suppressed: u64,
}

impl LogLimiter {
    fn new(now: Instant) -> Self {
        LogLimiter {
            bucket: TokenBucket::new(REFUSAL_LOGS_PER_SECOND * 5.0, REFUSAL_LOGS_PER_SECOND, now),
            suppressed: 0,
        }
    }

    /// `Some(lines held back since the last one)` when a line may be written now.
    fn admit(&mut self, now: Instant) -> Option<u64> {
        if self.bucket.try_take(now) {
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

/// The server's shared state.
pub struct Hub {
    config: HubConfig,
    store: Arc<dyn RoomStore>,
    peers: Mutex<HashMap<PeerId, PeerEntry>>,
    devices: Mutex<HashMap<String, DeviceEntry>>,
    resumes: Mutex<HashMap<String, ResumeEntry>>,
    /// Failed unattended attempts per (device, client key): one attacker's failures never slow another client.
    auth_backoff: Mutex<HashMap<(String, Cidr), FailureBackoff>>,
    joins: Mutex<JoinGuard>,
    refusal_log: Mutex<LogLimiter>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn new_peer_id() -> PeerId {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A display name without control, format or bidirectional-override characters (U+202E can make "Support" of
/// "troppuS"; U+2028 breaks lines), trimmed; `None` when nothing printable is left or it is too long.
pub fn clean_name(name: &str) -> Option<String> {
    let name: String = peerdesk::text::printable(name).trim().to_string();
    (!name.is_empty() && name.chars().count() <= MAX_NAME_CHARS).then_some(name)
}

impl Hub {
    /// A hub over a room store.
    pub fn new(config: HubConfig, store: Arc<dyn RoomStore>) -> Self {
        Hub {
            joins: Mutex::new(JoinGuard::new(config.join.clone())),
            config,
            store,
            peers: Mutex::new(HashMap::new()),
            devices: Mutex::new(HashMap::new()),
            resumes: Mutex::new(HashMap::new()),
            auth_backoff: Mutex::new(HashMap::new()),
            refusal_log: Mutex::new(LogLimiter::new(Instant::now())),
        }
    }

    /// Registers a new connection; returns its id and outgoing queue, or `Unavailable` at capacity.
    ///
    /// # Errors
    /// [`ErrorCode::Unavailable`] when `max_peers` connections are open.
    pub fn connect(&self) -> Result<(PeerId, OutboxReceiver), ErrorCode> {
        let mut peers = lock(&self.peers);
        if peers.len() >= self.config.max_peers {
            return Err(ErrorCode::Unavailable);
        }
        let id = new_peer_id();
        let (tx, rx) = outbox(self.config.outbox_bytes);
        peers.insert(
            id.clone(),
            PeerEntry {
                outbox: tx,
                role: Role::Unassigned,
                host: None,
                nonce: None,
                device: None,
                unattended: None,
                account: None,
            },
        );
        Ok((id, rx))
    }

    /// Whether the connection has registered as a host or joined as a viewer (connections that do neither within
    /// the handshake timeout are closed).
    pub fn has_role(&self, peer: &PeerId) -> bool {
        lock(&self.peers).get(peer).is_some_and(|p| p.role != Role::Unassigned)
    }

    /// Whether the connection is still known (the hub drops connections that stop reading).
    pub fn is_connected(&self, peer: &PeerId) -> bool {
        lock(&self.peers).contains_key(peer)
    }

    /// Writes a log line about an attacker-reachable event, at most [`REFUSAL_LOGS_PER_SECOND`] a second.
    fn log_limited(&self, write: impl FnOnce(u64)) {
        if let Some(suppressed) = lock(&self.refusal_log).admit(Instant::now()) {
            write(suppressed);
        }
    }

    /// Peers connected and (codes, pairs) live, for the health endpoint.
    pub fn counts(&self) -> (usize, usize, usize) {
        let (codes, pairs) = self.store.counts(Instant::now());
        (lock(&self.peers).len(), codes, pairs)
    }

    fn send(&self, to: &PeerId, message: ServerMessage) {
        let Some(outbox) = lock(&self.peers).get(to).map(|p| p.outbox.clone()) else {
            return;
        };
        let text: Arc<str> = match serde_json::to_string(&message) {
            Ok(text) => text.into(),
            Err(e) => return tracing::error!("cannot encode a server message: {e}"),
        };
        match outbox.push(text) {
            Ok(()) => {}
            Err(OutboxError::Closed) => {}
            Err(e @ OutboxError::Full(_)) => {
                self.log_limited(|suppressed| {
                    tracing::warn!(peer = %to, suppressed, "disconnecting a connection that does not read: {e}")
                });
                self.disconnect(to);
            }
        }
    }

    /// Queues an error reply to `to`. The log line escapes the message (it may quote the client's input) and is
    /// rate-limited across the server.
    pub fn reply_error(&self, to: &PeerId, code: ErrorCode, message: impl Into<String>) {
        let message = message.into();
        self.log_limited(
            |suppressed| tracing::info!(peer = %to, code = %code, message = ?message, suppressed, "request refused"),
        );
        self.send(to, ServerMessage::error(code, message));
    }

    /// Handles one text message from `peer`, whose client address (after trusted proxies) is `addr`.
    pub fn handle(&self, peer: &PeerId, addr: IpAddr, text: &str, now: Instant) {
        let message = match parse_client_message(text) {
            Ok(m) => m,
            Err(e) => return self.reply_error(peer, e.code(), e.to_string()),
        };
        debug_assert_eq!(message.version(), PROTOCOL_VERSION);
        match message {
            ClientMessage::Register { device, .. } => self.register(peer, device, now),
            ClientMessage::DeviceChallenge { .. } => self.device_challenge(peer),
            ClientMessage::JoinDevice {
                device,
                access,
                name,
                asks,
                ..
            } => self.join_device(peer, addr, &device, &access, &name, asks, now),
            ClientMessage::AuthFailed { peer: viewer, .. } => self.auth_failed(peer, &viewer, now),
            ClientMessage::SignIn { account, token, .. } => self.sign_in(peer, addr, &account, &token, now),
            ClientMessage::Resume { token, .. } => self.resume(peer, &token, now),
            ClientMessage::Join { code, name, asks, .. } => self.join(peer, addr, &code, &name, asks, now),
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
                    self.reply_error(peer, ErrorCode::UnknownPeer, format!("no peer {to:?}"));
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

    fn device_challenge(&self, peer: &PeerId) {
        let mut nonce = [0u8; 32];
        getrandom::fill(&mut nonce).expect("the operating system's random source failed");
        {
            let mut peers = lock(&self.peers);
            let Some(entry) = peers.get_mut(peer) else {
                return;
            };
            if entry.role == Role::Viewer {
                drop(peers);
                return self.reply_error(peer, ErrorCode::NotAllowed, "a viewer connection has no device");
            }
            entry.nonce = Some(nonce);
        }
        use base64::Engine as _;
        self.send(
            peer,
            ServerMessage::DeviceChallenge {
                v: PROTOCOL_VERSION,
                nonce: base64::engine::general_purpose::STANDARD.encode(nonce),
            },
        );
    }

    /// Checks a device claim against the nonce this connection was given (used up either way) and takes the
    /// device ID for it: a reconnecting host with the same key takes over; another key is refused.
    fn claim_device(&self, peer: &PeerId, claim: &DeviceClaim) -> Result<String, (ErrorCode, &'static str)> {
        use base64::Engine as _;
        let b64 = &base64::engine::general_purpose::STANDARD;
        let nonce = lock(&self.peers)
            .get_mut(peer)
            .and_then(|entry| entry.nonce.take())
            .ok_or((ErrorCode::NotAllowed, "ask for a device challenge first"))?;
        let public_key: [u8; 32] = b64
            .decode(&claim.public_key)
            .ok()
            .and_then(|k| k.try_into().ok())
            .ok_or((ErrorCode::Malformed, "a device public key is 32 bytes of base64"))?;
        let signature = b64
            .decode(&claim.signature)
            .map_err(|_| (ErrorCode::Malformed, "the device signature is not base64"))?;
        if !peerdesk::unattended::verify_registration(&public_key, &nonce, &signature) {
            return Err((ErrorCode::NotAllowed, "the device signature does not verify"));
        }
        let device = peerdesk::unattended::DeviceId::from_public_key(&public_key)
            .as_str()
            .to_string();
        let mut devices = lock(&self.devices);
        if let Some(held) = devices.get(&device) {
            let live = held.host != *peer && lock(&self.peers).contains_key(&held.host);
            if held.public_key != public_key && live {
                return Err((ErrorCode::DeviceTaken, "another key holds this device ID"));
            }
            if live {
                if let Some(old) = lock(&self.peers).get_mut(&held.host) {
                    old.device = None;
                }
            }
        }
        devices.insert(
            device.clone(),
            DeviceEntry {
                host: peer.clone(),
                public_key,
            },
        );
        drop(devices);
        if let Some(entry) = lock(&self.peers).get_mut(peer) {
            entry.device = Some(device.clone());
        }
        tracing::info!(host = %peer, %device, "device registered");
        Ok(device)
    }

    fn register(&self, peer: &PeerId, device: Option<DeviceClaim>, now: Instant) {
        if self.role(peer) == Some(Role::Viewer) {
            return self.reply_error(
                peer,
                ErrorCode::NotAllowed,
                "a viewer connection cannot register as a host",
            );
        }
        let device = match device.map(|claim| self.claim_device(peer, &claim)).transpose() {
            Ok(device) => device,
            Err((code, message)) => return self.reply_error(peer, code, message),
        };
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
            if self.store.codes_held(peer, now) >= self.config.codes_per_host {
                drop(peers);
                return self.reply_error(
                    peer,
                    ErrorCode::RateLimited,
                    "this host holds the most codes allowed; codes free up when used or expired",
                );
            }
            entry.role = Role::Host;
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
                // STUN/TURN only once a viewer is admitted (`admitted`): registering earns no relay.
                ice_servers: Vec::new(),
                device,
            },
        );
    }

    /// Pairs two connections presenting the same resumption token (a session whose sides reconnected, after a
    /// server restart or a dropped connection): one must be a registered host, the other not a host.
    fn resume(&self, peer: &PeerId, token: &str, now: Instant) {
        let well_formed = (16..=128).contains(&token.len())
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=_-".contains(&b));
        if !well_formed {
            return self.reply_error(
                peer,
                ErrorCode::Malformed,
                "a resumption token is 16–128 base64 characters",
            );
        }
        let host_side = match self.role(peer) {
            Some(Role::Host) => true,
            Some(_) => false,
            None => return,
        };
        let mut resumes = lock(&self.resumes);
        resumes.retain(|_, e| now.saturating_duration_since(e.at) < RESUME_WAIT);
        let other = resumes
            .get(token)
            .filter(|e| e.peer != *peer && e.host_side != host_side && self.is_connected(&e.peer))
            .cloned();
        let Some(other) = other else {
            let held = resumes.values().filter(|e| e.peer == *peer).count();
            if held >= RESUMES_PER_PEER || resumes.len() >= MAX_RESUMES {
                drop(resumes);
                return self.reply_error(peer, ErrorCode::RateLimited, "too many resumption tokens waiting");
            }
            resumes.insert(
                token.to_string(),
                ResumeEntry {
                    peer: peer.clone(),
                    host_side,
                    at: now,
                },
            );
            return;
        };
        resumes.remove(token);
        drop(resumes);
        let (host, viewer) = if host_side {
            (peer.clone(), other.peer.clone())
        } else {
            (other.peer.clone(), peer.clone())
        };
        if !(self.store.request(&host, &viewer) && self.store.admit(&host, &viewer).is_some()) {
            return self.reply_error(peer, ErrorCode::RateLimited, "the host has too many pending requests");
        }
        if let Some(entry) = lock(&self.peers).get_mut(&viewer) {
            entry.role = Role::Viewer;
            entry.host = Some(host.clone());
        }
        tracing::info!(host = %host, viewer = %viewer, "session resumed");
        for (to, other) in [(&host, &viewer), (&viewer, &host)] {
            self.send(
                to,
                ServerMessage::Resumed {
                    v: PROTOCOL_VERSION,
                    token: token.to_string(),
                    peer: other.clone(),
                },
            );
        }
    }

    /// The account a connection signed in with, as the host is told.
    fn verified(&self, peer: &PeerId) -> Option<VerifiedIdentity> {
        let account = lock(&self.peers).get(peer).and_then(|e| e.account.clone())?;
        let operator = self.config.accounts.as_ref()?.operator().to_string();
        Some(VerifiedIdentity { operator, account })
    }

    fn sign_in(&self, peer: &PeerId, addr: IpAddr, account: &str, token: &str, now: Instant) {
        let Some(accounts) = &self.config.accounts else {
            return self.reply_error(peer, ErrorCode::NotAllowed, "this server has no technician accounts");
        };
        if self.role(peer) != Some(Role::Unassigned) {
            return self.reply_error(peer, ErrorCode::NotAllowed, "sign in before joining");
        }
        // Token guesses count like code guesses, per client key.
        if !lock(&self.joins).allows(addr, now) {
            return self.reply_error(
                peer,
                ErrorCode::RateLimited,
                "too many failed attempts; try again later",
            );
        }
        if !accounts.verify(account, token) {
            lock(&self.joins).record_failure(addr, now);
            return self.reply_error(peer, ErrorCode::AuthenticationFailed, "unknown account or wrong token");
        }
        if let Some(entry) = lock(&self.peers).get_mut(peer) {
            entry.account = Some(account.to_string());
        }
        tracing::info!(%peer, account, %addr, "technician signed in");
        self.send(
            peer,
            ServerMessage::SignedIn {
                v: PROTOCOL_VERSION,
                account: account.to_string(),
                operator: accounts.operator().to_string(),
            },
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn join_device(
        &self,
        peer: &PeerId,
        addr: IpAddr,
        device: &str,
        access: &str,
        name: &str,
        asks: Option<peerdesk::control::Permissions>,
        now: Instant,
    ) {
        let Some(name) = self.joiner_name(peer, name) else {
            return;
        };
        let access_ok = peerdesk::text::printable(access) == access
            && !access.trim().is_empty()
            && access.chars().count() <= MAX_ACCESS_CHARS;
        if !access_ok {
            return self.reply_error(
                peer,
                ErrorCode::Malformed,
                format!("access must be 1..={MAX_ACCESS_CHARS} printable characters"),
            );
        }
        if device.len() != peerdesk::unattended::DEVICE_ID_DIGITS || !device.bytes().all(|b| b.is_ascii_digit()) {
            return self.reply_error(peer, ErrorCode::Malformed, "a device ID is nine digits");
        }
        // Guessing device IDs counts like guessing codes.
        if !lock(&self.joins).allows(addr, now) {
            return self.reply_error(
                peer,
                ErrorCode::RateLimited,
                "too many failed join attempts; try again later",
            );
        }
        let key = (device.to_string(), client_key(addr));
        if let Some(wait) = lock(&self.auth_backoff).get(&key).and_then(|b| b.retry_after(now)) {
            let secs = wait.as_secs_f64().ceil() as u64;
            return self.send(
                peer,
                ServerMessage::error_retry_after(
                    ErrorCode::RateLimited,
                    format!("too many failed attempts on this device; retry in {secs} s"),
                    secs,
                ),
            );
        }
        let host = lock(&self.devices)
            .get(device)
            .map(|d| d.host.clone())
            .filter(|host| self.is_connected(host));
        let Some(host) = host else {
            lock(&self.joins).record_failure(addr, now);
            return self.reply_error(peer, ErrorCode::UnknownDevice, "no device with this ID is connected");
        };
        if !self.store.request(&host, peer) {
            return self.reply_error(
                peer,
                ErrorCode::RateLimited,
                "this device has too many pending requests",
            );
        }
        if let Some(entry) = lock(&self.peers).get_mut(peer) {
            entry.role = Role::Viewer;
            entry.host = Some(host.clone());
            entry.unattended = Some(key);
        }
        tracing::info!(host = %host, viewer = %peer, %addr, %device, "unattended join request");
        self.ask_host(peer, &host, name, String::new(), Some(access.to_string()), asks);
    }

    /// The host says an unattended viewer failed its handshake: back off that client on that device, and end it.
    fn auth_failed(&self, host: &PeerId, viewer: &PeerId, now: Instant) {
        if self.role(host) != Some(Role::Host) {
            return self.reply_error(host, ErrorCode::NotAllowed, "only a host reports failed authentication");
        }
        if self.store.relation(host, viewer) == Relation::None {
            return self.reply_error(host, ErrorCode::UnknownPeer, format!("no viewer {viewer:?}"));
        }
        let host_device = lock(&self.peers).get(host).and_then(|e| e.device.clone());
        let key = lock(&self.peers).get(viewer).and_then(|e| e.unattended.clone());
        let Some(key) = key.filter(|(device, _)| Some(device) == host_device.as_ref()) else {
            return self.reply_error(
                host,
                ErrorCode::NotAllowed,
                "that viewer did not ask for unattended access",
            );
        };
        let wait = {
            let mut backoffs = lock(&self.auth_backoff);
            if backoffs.len() >= MAX_AUTH_BACKOFFS {
                backoffs.retain(|_, b| !b.is_stale(now, AUTH_BACKOFF_MEMORY));
            }
            let room = backoffs.len() < MAX_AUTH_BACKOFFS;
            match backoffs.get_mut(&key) {
                Some(backoff) => Some(backoff.record_failure(now)),
                None if room => {
                    let mut backoff =
                        FailureBackoff::new(peerdesk::unattended::FIRST_BACKOFF, peerdesk::unattended::MAX_BACKOFF);
                    let wait = backoff.record_failure(now);
                    backoffs.insert(key.clone(), backoff);
                    Some(wait)
                }
                None => None,
            }
        };
        let secs = wait.map_or(1, |w| w.as_secs_f64().ceil() as u64);
        self.store.unpair(host, viewer);
        tracing::info!(host = %host, viewer = %viewer, device = %key.0, retry_after_secs = secs, "unattended authentication failed");
        self.send(
            viewer,
            ServerMessage::error_retry_after(
                ErrorCode::AuthenticationFailed,
                format!("authentication failed; retry in {secs} s"),
                secs,
            ),
        );
    }

    fn join(
        &self,
        peer: &PeerId,
        addr: IpAddr,
        code: &str,
        name: &str,
        asks: Option<peerdesk::control::Permissions>,
        now: Instant,
    ) {
        let Some(name) = self.joiner_name(peer, name) else {
            return;
        };
        // Only this client's own key and prefix can run out of budget: what other addresses guessed never
        // refuses a valid code.
        if !lock(&self.joins).allows(addr, now) {
            return self.reply_error(
                peer,
                ErrorCode::RateLimited,
                "too many failed join attempts; try again later",
            );
        }
        let well_formed = code.len() == self.config.code_digits && code.bytes().all(|b| b.is_ascii_digit());
        let result = if well_formed {
            self.store.claim(code, peer, now)
        } else {
            Err(RedeemError::Invalid)
        };
        let host = match result {
            Ok(host) => host,
            Err(RedeemError::Busy) => {
                return self.reply_error(peer, ErrorCode::RateLimited, RedeemError::Busy.to_string());
            }
            Err(e) => {
                lock(&self.joins).record_failure(addr, now);
                let code = match e {
                    RedeemError::Expired => ErrorCode::ExpiredCode,
                    _ => ErrorCode::InvalidCode,
                };
                return self.reply_error(peer, code, e.to_string());
            }
        };
        {
            let mut peers = lock(&self.peers);
            if !peers.contains_key(&host) {
                drop(peers);
                self.store.unpair(&host, peer);
                return self.reply_error(peer, ErrorCode::InvalidCode, "the host of this code has gone");
            }
            if let Some(entry) = peers.get_mut(peer) {
                entry.role = Role::Viewer;
                entry.host = Some(host.clone());
            }
        }
        tracing::info!(host = %host, viewer = %peer, %addr, "join request");
        self.ask_host(peer, &host, name, code.to_string(), None, asks);
    }

    /// The name a connection without a role joins under (cleaned), or `None` after an error reply.
    fn joiner_name(&self, peer: &PeerId, name: &str) -> Option<String> {
        match self.role(peer) {
            Some(Role::Unassigned) => {}
            Some(_) => {
                self.reply_error(peer, ErrorCode::NotAllowed, "this connection already has a role");
                return None;
            }
            None => return None,
        }
        let name = clean_name(name);
        if name.is_none() {
            self.reply_error(
                peer,
                ErrorCode::Malformed,
                format!("name must be 1..={MAX_NAME_CHARS} printable characters"),
            );
        }
        name
    }

    /// Tells the viewer its request is pending and asks the host (with the verified account, if signed in).
    fn ask_host(
        &self,
        viewer: &PeerId,
        host: &PeerId,
        name: String,
        code: String,
        access: Option<String>,
        asks: Option<peerdesk::control::Permissions>,
    ) {
        self.send(
            viewer,
            ServerMessage::JoinPending {
                v: PROTOCOL_VERSION,
                peer: viewer.clone(),
                host: host.clone(),
                // TURN credentials only after consent (in `accepted`).
                ice_servers: Vec::new(),
            },
        );
        self.send(
            host,
            ServerMessage::JoinRequest {
                v: PROTOCOL_VERSION,
                peer: viewer.clone(),
                name,
                code,
                access,
                verified: self.verified(viewer),
                asks,
            },
        );
    }

    fn accept(&self, host: &PeerId, viewer: &PeerId) {
        if self.role(host) != Some(Role::Host) {
            return self.reply_error(host, ErrorCode::NotAllowed, "only a host accepts viewers");
        }
        match self.store.relation(host, viewer) {
            Relation::Pending => {
                let others = self.store.admit(host, viewer).unwrap_or_default();
                tracing::info!(host = %host, viewer = %viewer, "viewer accepted");
                // Others who waited on the same code (a lucky guesser, a second click) are turned away, and the
                // host is told so that it can close their prompts.
                for other in others {
                    self.send(
                        &other,
                        ServerMessage::error(ErrorCode::Denied, "the host admitted another viewer with this code"),
                    );
                    self.send(
                        host,
                        ServerMessage::PeerLeft {
                            v: PROTOCOL_VERSION,
                            peer: other,
                            reason: "code used by another viewer".into(),
                        },
                    );
                }
                self.send(
                    viewer,
                    ServerMessage::Accepted {
                        v: PROTOCOL_VERSION,
                        host: host.clone(),
                        ice_servers: self.ice_servers_for(viewer),
                    },
                );
                self.send(
                    host,
                    ServerMessage::Admitted {
                        v: PROTOCOL_VERSION,
                        viewer: viewer.clone(),
                        ice_servers: self.ice_servers_for(host),
                    },
                );
            }
            Relation::Admitted => self.reply_error(host, ErrorCode::NotAllowed, "viewer already accepted"),
            Relation::None => self.reply_error(host, ErrorCode::UnknownPeer, format!("no pending viewer {viewer:?}")),
        }
    }

    /// The STUN/TURN servers for one admitted peer: the static list, plus a time-limited TURN credential of its
    /// own when a TURN REST secret is configured.
    fn ice_servers_for(&self, peer: &PeerId) -> Vec<IceServer> {
        let mut servers = self.config.ice_servers.clone();
        if let Some(turn) = &self.config.turn {
            let unix_now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            servers.push(turn.credential_for(peer, unix_now));
        }
        servers
    }

    fn reject(&self, host: &PeerId, viewer: &PeerId, reason: &str) {
        if self.role(host) != Some(Role::Host) {
            return self.reply_error(host, ErrorCode::NotAllowed, "only a host rejects viewers");
        }
        if self.store.relation(host, viewer) == Relation::None {
            return self.reply_error(host, ErrorCode::UnknownPeer, format!("no viewer {viewer:?}"));
        }
        self.store.unpair(host, viewer);
        let reason: String = peerdesk::text::printable(reason).chars().take(200).collect();
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
        // The session's end in the server's log, under the same peer ids as the host's audit trail.
        tracing::info!(%peer, reason, "left");
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
        // Removed first: a counterpart that does not read either is disconnected in turn, not looped on.
        let removed = lock(&self.peers).remove(peer);
        if let Some(device) = removed.as_ref().and_then(|e| e.device.as_ref()) {
            let mut devices = lock(&self.devices);
            if devices.get(device).is_some_and(|d| d.host == *peer) {
                devices.remove(device);
            }
        }
        if removed.is_some() {
            self.leave(peer, "disconnected");
        }
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

    fn next(rx: &mut OutboxReceiver) -> ServerMessage {
        let text = futures_util::FutureExt::now_or_never(rx.recv())
            .flatten()
            .expect("a message was queued");
        peerdesk::signaling::protocol::parse_server_message(&text).expect("the hub queues server messages")
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
    fn turn_credentials_reach_a_viewer_only_after_consent() {
        // Security review M10: they went to any socket that sent `join`.
        let config = HubConfig {
            ice_servers: vec![IceServer {
                urls: vec!["turn:127.0.0.1:3478".into()],
                username: "operator".into(),
                credential: "s3cret".into(),
            }],
            ..HubConfig::default()
        };
        let hub = Hub::new(config, Arc::new(MemoryRoomStore::default()));
        let now = Instant::now();
        let (host, mut host_rx) = hub.connect().unwrap();
        let (viewer, mut viewer_rx) = hub.connect().unwrap();
        hub.handle(&host, ADDR, r#"{"type":"register","v":1}"#, now);
        let ServerMessage::Registered { code, .. } = next(&mut host_rx) else {
            panic!()
        };
        let join = format!(r#"{{"type":"join","v":1,"code":"{code}","name":"T"}}"#);
        hub.handle(&viewer, ADDR, &join, now);
        let ServerMessage::JoinPending { ice_servers, .. } = next(&mut viewer_rx) else {
            panic!()
        };
        assert!(ice_servers.is_empty(), "no credentials before consent");
        next(&mut host_rx);
        hub.handle(
            &host,
            ADDR,
            &format!(r#"{{"type":"accept","v":1,"peer":"{viewer}"}}"#),
            now,
        );
        let ServerMessage::Accepted { ice_servers, .. } = next(&mut viewer_rx) else {
            panic!()
        };
        assert_eq!(ice_servers[0].credential, "s3cret");
    }

    #[test]
    fn turn_rest_credentials_go_to_a_host_only_with_an_admitted_viewer() {
        // Security review M10: a bare `register` earned the operator's TURN credential (an open relay).
        let config = HubConfig {
            turn: Some(TurnRest::new(
                vec!["turn:127.0.0.1:3478".into()],
                b"shared",
                Duration::from_secs(600),
            )),
            ..HubConfig::default()
        };
        let hub = Hub::new(config, Arc::new(MemoryRoomStore::default()));
        let now = Instant::now();
        let (host, mut host_rx) = hub.connect().unwrap();
        let (viewer, mut viewer_rx) = hub.connect().unwrap();
        hub.handle(&host, ADDR, r#"{"type":"register","v":1}"#, now);
        let ServerMessage::Registered { code, ice_servers, .. } = next(&mut host_rx) else {
            panic!()
        };
        assert!(ice_servers.is_empty(), "no credentials for registering");
        hub.handle(
            &viewer,
            ADDR,
            &format!(r#"{{"type":"join","v":1,"code":"{code}","name":"T"}}"#),
            now,
        );
        next(&mut viewer_rx);
        next(&mut host_rx);
        hub.handle(
            &host,
            ADDR,
            &format!(r#"{{"type":"accept","v":1,"peer":"{viewer}"}}"#),
            now,
        );
        let ServerMessage::Accepted {
            ice_servers: for_viewer,
            ..
        } = next(&mut viewer_rx)
        else {
            panic!()
        };
        let ServerMessage::Admitted {
            viewer: admitted,
            ice_servers: for_host,
            ..
        } = next(&mut host_rx)
        else {
            panic!()
        };
        assert_eq!(admitted, viewer);
        assert!(
            for_viewer[0].username.ends_with(&format!(":{viewer}")),
            "{:?}",
            for_viewer[0]
        );
        assert!(for_host[0].username.ends_with(&format!(":{host}")), "{:?}", for_host[0]);
        assert_ne!(for_viewer[0].credential, for_host[0].credential);
    }

    #[test]
    fn a_host_can_invite_again_once_its_codes_are_used() {
        // The limit counted codes ever issued: after 16 invites a host could never invite again.
        let hub = hub();
        let now = Instant::now();
        let (host, mut host_rx) = hub.connect().unwrap();
        for round in 0..40 {
            hub.handle(&host, ADDR, r#"{"type":"register","v":1}"#, now);
            let ServerMessage::Registered { code, .. } = next(&mut host_rx) else {
                panic!("invite {round} refused")
            };
            let (viewer, mut viewer_rx) = hub.connect().unwrap();
            let join = format!(r#"{{"type":"join","v":1,"code":"{code}","name":"T"}}"#);
            hub.handle(&viewer, ADDR, &join, now);
            next(&mut viewer_rx);
            next(&mut host_rx);
            hub.handle(
                &host,
                ADDR,
                &format!(r#"{{"type":"accept","v":1,"peer":"{viewer}"}}"#),
                now,
            );
            next(&mut viewer_rx);
            assert!(matches!(next(&mut host_rx), ServerMessage::Admitted { .. }));
            hub.disconnect(&viewer);
            next(&mut host_rx); // peer_left
        }
        // Codes held at once are still limited.
        for _ in 0..16 {
            hub.handle(&host, ADDR, r#"{"type":"register","v":1}"#, now);
            assert!(matches!(next(&mut host_rx), ServerMessage::Registered { .. }));
        }
        hub.handle(&host, ADDR, r#"{"type":"register","v":1}"#, now);
        assert_eq!(error_code(next(&mut host_rx)), ErrorCode::RateLimited);
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

    /// Registers `identity` as a device on a new host connection; returns its peer id, outbox and device ID.
    fn register_device(
        hub: &Hub,
        identity: &peerdesk::unattended::DeviceIdentity,
        now: Instant,
    ) -> (PeerId, OutboxReceiver, String) {
        use base64::Engine as _;
        let b64 = &base64::engine::general_purpose::STANDARD;
        let (host, mut rx) = hub.connect().unwrap();
        hub.handle(&host, ADDR, r#"{"type":"device_challenge","v":1}"#, now);
        let ServerMessage::DeviceChallenge { nonce, .. } = next(&mut rx) else {
            panic!("no challenge")
        };
        let proof = identity.registration_proof(&b64.decode(&nonce).unwrap());
        let register = serde_json::json!({"type": "register", "v": 1, "device": {
            "public_key": b64.encode(identity.public_key()), "signature": b64.encode(proof)}});
        hub.handle(&host, ADDR, &register.to_string(), now);
        let ServerMessage::Registered {
            device: Some(device), ..
        } = next(&mut rx)
        else {
            panic!("not registered")
        };
        (host, rx, device)
    }

    #[test]
    fn a_device_id_is_registered_only_with_a_fresh_signed_nonce() {
        use base64::Engine as _;
        let b64 = &base64::engine::general_purpose::STANDARD;
        let hub = hub();
        let now = Instant::now();
        let identity = peerdesk::unattended::DeviceIdentity::generate().unwrap();
        let claim = |signature: &[u8]| {
            serde_json::json!({"type": "register", "v": 1, "device": {
                "public_key": b64.encode(identity.public_key()), "signature": b64.encode(signature)}})
            .to_string()
        };
        // Without a challenge, a replayed or made-up signature proves nothing.
        let (host, mut rx) = hub.connect().unwrap();
        hub.handle(&host, ADDR, &claim(&identity.registration_proof(b"old nonce")), now);
        assert_eq!(error_code(next(&mut rx)), ErrorCode::NotAllowed);
        // A signature of another nonce, or by another key, is refused, and the nonce is used up.
        hub.handle(&host, ADDR, r#"{"type":"device_challenge","v":1}"#, now);
        let ServerMessage::DeviceChallenge { nonce, .. } = next(&mut rx) else {
            panic!("no challenge")
        };
        let nonce = b64.decode(nonce).unwrap();
        let other = peerdesk::unattended::DeviceIdentity::generate().unwrap();
        hub.handle(&host, ADDR, &claim(&other.registration_proof(&nonce)), now);
        assert_eq!(error_code(next(&mut rx)), ErrorCode::NotAllowed);
        hub.handle(&host, ADDR, &claim(&identity.registration_proof(&nonce)), now);
        assert_eq!(error_code(next(&mut rx)), ErrorCode::NotAllowed, "a nonce is good once");

        let (first, _first_rx, device) = register_device(&hub, &identity, now);
        assert_eq!(device, identity.device_id().as_str());
        // The same key on a new connection (a reconnecting host) takes the ID over.
        let (second, _second_rx, again) = register_device(&hub, &identity, now);
        assert_eq!(again, device);
        let (viewer, mut viewer_rx) = hub.connect().unwrap();
        let join = format!(r#"{{"type":"join_device","v":1,"device":"{device}","access":"alex","name":"Alex"}}"#);
        hub.handle(&viewer, ADDR, &join, now);
        let ServerMessage::JoinPending { host, .. } = next(&mut viewer_rx) else {
            panic!("not pending")
        };
        assert_eq!(host, second);
        assert_ne!(host, first);
        // A device that is not connected is unknown.
        hub.disconnect(&second);
        let (late, mut late_rx) = hub.connect().unwrap();
        hub.handle(&late, ADDR, &join, now);
        assert_eq!(error_code(next(&mut late_rx)), ErrorCode::UnknownDevice);
    }

    #[test]
    fn failed_unattended_attempts_back_off_per_device_and_client_only() {
        let hub = hub();
        let now = Instant::now();
        let identity = peerdesk::unattended::DeviceIdentity::generate().unwrap();
        let (host, mut host_rx, device) = register_device(&hub, &identity, now);
        let join = format!(r#"{{"type":"join_device","v":1,"device":"{device}","access":"alex","name":"Alex"}}"#);
        let attempt = |addr: IpAddr, at: Instant| {
            let (viewer, mut rx) = hub.connect().unwrap();
            hub.handle(&viewer, addr, &join, at);
            (viewer, next(&mut rx), rx)
        };
        let fail = |host_rx: &mut OutboxReceiver, at: Instant| -> u64 {
            let (viewer, reply, mut rx) = attempt(ADDR, at);
            assert!(matches!(reply, ServerMessage::JoinPending { .. }), "{reply:?}");
            let ServerMessage::JoinRequest { access, peer, .. } = next(host_rx) else {
                panic!("the host was not asked")
            };
            assert_eq!((access.as_deref(), &peer), (Some("alex"), &viewer));
            hub.handle(
                &host,
                ADDR,
                &format!(r#"{{"type":"accept","v":1,"peer":"{viewer}"}}"#),
                at,
            );
            let _ = next(&mut rx);
            let _ = next(host_rx);
            hub.handle(
                &host,
                ADDR,
                &format!(r#"{{"type":"auth_failed","v":1,"peer":"{viewer}"}}"#),
                at,
            );
            match next(&mut rx) {
                ServerMessage::Error {
                    code: ErrorCode::AuthenticationFailed,
                    retry_after_secs: Some(secs),
                    ..
                } => secs,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(fail(&mut host_rx, now), 1);
        // During the wait this client is turned away before the host hears of it; another client is not.
        match attempt(ADDR, now + Duration::from_millis(500)).1 {
            ServerMessage::Error {
                code: ErrorCode::RateLimited,
                retry_after_secs: Some(1),
                ..
            } => {}
            other => panic!("{other:?}"),
        }
        let other: IpAddr = "192.0.2.7".parse().unwrap();
        assert!(matches!(attempt(other, now).1, ServerMessage::JoinPending { .. }));
        let _ = next(&mut host_rx);
        assert_eq!(fail(&mut host_rx, now + Duration::from_secs(1)), 2);
        assert_eq!(fail(&mut host_rx, now + Duration::from_secs(3)), 4);

        // Only the device's own host may report a failure, and only for an unattended viewer of its own.
        let (stranger, mut stranger_rx) = hub.connect().unwrap();
        hub.handle(&stranger, ADDR, r#"{"type":"register","v":1}"#, now);
        let _ = next(&mut stranger_rx);
        let (viewer, _, _) = attempt(other, now);
        let _ = next(&mut host_rx);
        hub.handle(
            &stranger,
            ADDR,
            &format!(r#"{{"type":"auth_failed","v":1,"peer":"{viewer}"}}"#),
            now,
        );
        assert_eq!(error_code(next(&mut stranger_rx)), ErrorCode::UnknownPeer);
    }

    #[test]
    fn a_session_resumes_when_both_sides_present_its_token_and_only_then() {
        let hub = hub();
        let now = Instant::now();
        let token = "c2Vzc2lvbi10b2tlbi0xMjM0NTY3ODkw";
        let (host, mut host_rx) = hub.connect().unwrap();
        hub.handle(&host, ADDR, r#"{"type":"register","v":1}"#, now);
        let _ = next(&mut host_rx);
        let (viewer, mut viewer_rx) = hub.connect().unwrap();
        // A stranger with another token pairs with nobody; two viewers with the same token do not pair.
        let (stranger, mut stranger_rx) = hub.connect().unwrap();
        hub.handle(
            &stranger,
            ADDR,
            r#"{"type":"resume","v":1,"token":"b3RoZXItdG9rZW4tMTIzNDU2Nzg5MA"}"#,
            now,
        );
        hub.handle(
            &viewer,
            ADDR,
            &format!(r#"{{"type":"resume","v":1,"token":"{token}"}}"#),
            now,
        );
        assert!(futures_util::FutureExt::now_or_never(viewer_rx.recv()).is_none());
        hub.handle(
            &stranger,
            ADDR,
            &format!(r#"{{"type":"resume","v":1,"token":"{token}"}}"#),
            now,
        );
        assert!(futures_util::FutureExt::now_or_never(stranger_rx.recv()).is_none());
        // The host presents it: both are told, and signals flow.
        hub.handle(
            &host,
            ADDR,
            &format!(r#"{{"type":"resume","v":1,"token":"{token}"}}"#),
            now,
        );
        let ServerMessage::Resumed { peer, .. } = next(&mut host_rx) else {
            panic!("host not told")
        };
        assert!(peer == viewer || peer == stranger);
        let paired = peer.clone();
        let relay =
            format!(r#"{{"type":"signal","v":1,"to":"{paired}","payload":{{"kind":"candidate","candidate":"c"}}}}"#);
        hub.handle(&host, ADDR, &relay, now);
        let (paired_rx, _) = if paired == viewer {
            (&mut viewer_rx, &mut stranger_rx)
        } else {
            (&mut stranger_rx, &mut viewer_rx)
        };
        assert!(matches!(next(paired_rx), ServerMessage::Resumed { .. }));
        assert!(matches!(next(paired_rx), ServerMessage::Signal { .. }));
        // A token is good once, and waits two minutes at most.
        let (late, mut late_rx) = hub.connect().unwrap();
        hub.handle(
            &late,
            ADDR,
            &format!(r#"{{"type":"resume","v":1,"token":"{token}"}}"#),
            now,
        );
        assert!(futures_util::FutureExt::now_or_never(late_rx.recv()).is_none());
        hub.handle(&late, ADDR, r#"{"type":"resume","v":1,"token":"x"}"#, now);
        assert_eq!(error_code(next(&mut late_rx)), ErrorCode::Malformed);
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
