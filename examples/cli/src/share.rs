//! `peerdesk share`: shares this screen (X11, or the synthetic desktop) and asks on the terminal before anyone
//! may watch or control.

use crate::report::parse_size;
use crate::report::screen_choice;
use anyhow::Context as _;
use peerdesk::capture::{open_screen, CaptureError, Captured, CursorState, Monitor, OpenedScreen, ScreenSource};
use peerdesk::control::Permissions;
use peerdesk::encode::Backend;
use peerdesk::session::{Consent, Host, HostConfig, HostEvent};
use peerdesk::text::escape_for_terminal;
use peerdesk::transport::TransportConfig;
use peerdesk::unattended::{AccessPolicy, DeviceIdentity, UnattendedConfig};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::io::AsyncBufReadExt;

/// How `share` answers join requests without asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AutoAnswer {
    /// Refuse everyone.
    Deny,
    /// Admit to view only.
    View,
    /// Admit with mouse and keyboard.
    Control,
    /// Admit with control and clipboard.
    Full,
}

/// Options of `peerdesk share`.
#[derive(clap::Args, Debug)]
pub struct ShareArgs {
    /// A PEM file of CA certificate(s) to trust for a `wss://` server with a private CA.
    #[arg(long)]
    pub ca_file: Option<std::path::PathBuf>,
    /// Signaling server WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    pub server: String,
    /// Share the synthetic desktop even when an X display is available.
    #[arg(long)]
    pub synthetic: bool,
    /// Size of the synthetic desktop, WIDTHxHEIGHT.
    #[arg(long, default_value = "1920x1080", value_parser = parse_size)]
    pub size: (u32, u32),
    /// Capture rate.
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    /// Encoder backend.
    #[arg(long, default_value_t = Backend::default_interactive())]
    pub backend: Backend,
    /// Highest bitrate, bit/s.
    #[arg(long, default_value_t = 4_000_000)]
    pub bitrate: u32,
    /// Answer join requests without asking (for scripts and tests); commands then come on stdin:
    /// `invite` issues another code, `still` freezes the picture, `move` unfreezes it, `bitrate N` caps the bitrate,
    /// `quit` ends the session.
    #[arg(long, value_enum)]
    pub auto_accept: Option<AutoAnswer>,
    /// Bind ICE to 127.0.0.1 only (sessions on this machine).
    #[arg(long)]
    pub loopback: bool,
    /// Connect only through the TURN relay the signaling server hands out: the other side never learns this
    /// machine's addresses.
    #[arg(long)]
    pub relay_only: bool,
    /// Name shown to viewers.
    #[arg(long, default_value = "peerdesk share")]
    pub name: String,
    /// Grant control and clipboard only after you typed `confirm`: compare the six-digit verification code shown
    /// here with the one the technician reads from their screen first. Equal codes mean nobody (signaling server
    /// or relay) sits in the middle of the encrypted connection.
    #[arg(long)]
    pub require_verification: bool,
    /// Write the session's audit trail (hash-chained JSON lines) to this file; `peerdesk audit verify` checks it.
    #[arg(long)]
    pub audit_log: Option<std::path::PathBuf>,
    /// Accept unattended access: register this machine's device ID (key in --device-key) and let the
    /// technicians of --access-policy connect with their secret (see `peerdesk device add-access`).
    #[arg(long, requires_all = ["device_key", "access_policy"])]
    pub unattended: bool,
    /// The device key file (created owner-only on first use).
    #[arg(long)]
    pub device_key: Option<std::path::PathBuf>,
    /// The access policy file.
    #[arg(long)]
    pub access_policy: Option<std::path::PathBuf>,
}

/// A source that can be frozen from outside: while frozen it reports no change (the still-screen measurements).
pub struct Freezable {
    inner: Box<dyn ScreenSource>,
    frozen: Arc<AtomicBool>,
}

impl Freezable {
    /// Wraps `inner`; the picture is frozen while `frozen` is set.
    pub fn new(inner: Box<dyn ScreenSource>, frozen: Arc<AtomicBool>) -> Self {
        Self { inner, frozen }
    }
}

impl ScreenSource for Freezable {
    fn size(&self) -> (u32, u32) {
        self.inner.size()
    }
    fn capture(&mut self) -> Result<Option<Captured<'_>>, CaptureError> {
        if self.frozen.load(Ordering::Relaxed) {
            return Ok(None);
        }
        self.inner.capture()
    }
    fn invalidate(&mut self) {
        self.inner.invalidate()
    }
    fn cursor(&mut self) -> Result<Option<CursorState>, CaptureError> {
        self.inner.cursor()
    }
    fn monitors(&self) -> Vec<Monitor> {
        self.inner.monitors()
    }
    fn wait_for_change(&mut self, deadline: Instant) -> Result<bool, CaptureError> {
        if self.frozen.load(Ordering::Relaxed) {
            if let Some(wait) = deadline.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            return Ok(false);
        }
        self.inner.wait_for_change(deadline)
    }
}

fn consent_for(answer: AutoAnswer) -> Consent {
    match answer {
        AutoAnswer::Deny => Consent::Deny("the host does not accept viewers".into()),
        AutoAnswer::View => Consent::Allow(Permissions::VIEW_ONLY),
        AutoAnswer::Control => Consent::Allow(Permissions::CONTROL),
        AutoAnswer::Full => Consent::Allow(Permissions::FULL),
    }
}

fn parse_consent(line: &str) -> Option<Consent> {
    match line.trim().to_ascii_lowercase().as_str() {
        "v" | "view" => Some(Consent::Allow(Permissions::VIEW_ONLY)),
        "c" | "control" => Some(Consent::Allow(Permissions::CONTROL)),
        "f" | "full" => Some(Consent::Allow(Permissions::FULL)),
        "n" | "no" | "" => Some(Consent::Deny("the host declined".into())),
        _ => None,
    }
}

/// Runs `peerdesk share`.
pub async fn run(args: ShareArgs) -> anyhow::Result<()> {
    let (width, height) = args.size;
    let choice = screen_choice(args.synthetic, (width, height), args.fps);
    let OpenedScreen {
        source,
        input: sink,
        description: source_name,
    } = open_screen(choice)?;
    let frozen = Arc::new(AtomicBool::new(false));
    let source = Box::new(Freezable::new(source, frozen.clone()));
    let mut transport = if args.loopback {
        TransportConfig::loopback()
    } else {
        TransportConfig::default()
    };
    transport.relay_only = args.relay_only;
    let mut config = HostConfig::new(&args.server)
        .name(&args.name)
        .transport(transport)
        .backend(args.backend)
        .fps(args.fps)
        .max_bitrate(args.bitrate)
        .require_verification(args.require_verification);
    if let Some(path) = &args.audit_log {
        config = config.audit_log(path);
    }
    if let (true, Some(key), Some(policy)) = (args.unattended, &args.device_key, &args.access_policy) {
        let identity = DeviceIdentity::load_or_create(key).context("loading the device key")?;
        let policy = AccessPolicy::load(policy).context("loading the access policy")?;
        config = config.unattended(UnattendedConfig::new(identity, policy));
    }
    if let Some(path) = &args.ca_file {
        let pem = std::fs::read_to_string(path).with_context(|| format!("reading --ca-file {}", path.display()))?;
        config = config.trust_ca_pem(pem);
    }
    let mut host = Host::start(config, source, sink).await.context("starting the host")?;
    println!("code: {}", host.code());
    if let Some(id) = host.device_id() {
        println!("device ID: {id} (unattended access on)");
    }
    println!(
        "sharing {source_name} ({}x{}); tell your technician the code above",
        host.screen_size().0,
        host.screen_size().1
    );
    std::io::stdout().flush()?;

    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    // Join requests waiting for an answer, oldest first: each typed answer goes to the one on screen, never to a
    // request that arrived while the user was typing.
    let mut waiting: std::collections::VecDeque<peerdesk::session::JoinRequest> = Default::default();
    // Viewers whose verification code was shown and not yet confirmed, oldest first.
    let mut unconfirmed: std::collections::VecDeque<peerdesk::session::ViewerId> = Default::default();
    loop {
        tokio::select! {
            event = host.next_event() => match event {
                None => break,
                Some(HostEvent::JoinRequest(request)) => match args.auto_accept {
                    Some(answer) => {
                        println!("{} Answering {answer:?}", shown(&request.describe()));
                        request.answer(consent_for(answer));
                    }
                    None => {
                        waiting.push_back(request);
                        if waiting.len() == 1 {
                            prompt(&waiting[0])?;
                        } else {
                            println!("(another join request is waiting: {} people in all)", waiting.len());
                        }
                    }
                },
                Some(HostEvent::VerificationCode { viewer, code }) => {
                    println!("verification code for viewer {viewer}: {code}");
                    if args.require_verification {
                        println!("  if the technician reads exactly these digits, type `confirm` to let control apply; otherwise `disconnect`");
                        unconfirmed.push_back(viewer);
                    }
                }
                Some(HostEvent::ViewerConnected { name, .. }) => println!("{} is watching", shown(&name)),
                Some(HostEvent::UnattendedAccess { viewer, access }) => println!("viewer {viewer} proved unattended access {}", shown(&access)),
                Some(HostEvent::AccessFailures { failures, retry_after }) => {
                    println!("{failures} failed unattended attempts in a row; the next waits {} s", retry_after.as_secs())
                }
                Some(HostEvent::SignalingRestored { code }) => {
                    println!("signaling server reachable again; earlier codes are void");
                    println!("code: {code}");
                }
                Some(HostEvent::ViewerReconnecting { viewer }) => println!("viewer {viewer}: connection lost; reconnecting..."),
                Some(HostEvent::ViewerReconnected { viewer }) => println!("viewer {viewer}: reconnected"),
                Some(HostEvent::ViewerLeft { viewer, reason }) => println!("viewer {viewer} left: {}", shown(&reason)),
                Some(HostEvent::Clipboard { text, .. }) => println!("clipboard from viewer: {}", escape_for_terminal(&text, true)),
                Some(HostEvent::Chat { text, .. }) => println!("chat: {}", escape_for_terminal(&text, true)),
                Some(HostEvent::Ended { reason }) => { println!("session ended: {}", shown(&reason)); break; }
                Some(_) => {}
            },
            line = lines.next_line(), if stdin_open => match line {
                Ok(Some(line)) => {
                    if let Some(request) = waiting.pop_front() {
                        match parse_consent(&line) {
                            Some(consent) => {
                                request.answer(consent);
                                if let Some(next) = waiting.front() {
                                    prompt(next)?;
                                }
                            }
                            None => {
                                print!("Answer v, c, f or n: ");
                                std::io::stdout().flush()?;
                                waiting.push_front(request);
                            }
                        }
                    } else {
                        match line.trim() {
                            "still" => { frozen.store(true, Ordering::Relaxed); println!("picture frozen"); }
                            "move" => { frozen.store(false, Ordering::Relaxed); println!("picture live"); }
                            "quit" => break,
                            "invite" => match host.invite().await {
                                Ok(code) => println!("code: {code}"),
                                Err(e) => println!("no new code: {}", shown(&e.to_string())),
                            },
                            "confirm" => match unconfirmed.pop_front() {
                                Some(viewer) => { host.confirm_verification(&viewer); println!("viewer {viewer} verified; the permissions you granted apply"); }
                                None => println!("no verification code waits for confirmation"),
                            },
                            "disconnect" => match unconfirmed.pop_front() {
                                Some(viewer) => { host.disconnect(&viewer, "the verification codes did not match"); println!("viewer {viewer} disconnected"); }
                                None => println!("no unverified viewer"),
                            },
                            cmd if cmd.starts_with("bitrate ") => match cmd[8..].trim().parse::<u32>() {
                                Ok(bps) => match host.set_max_bitrate(bps) {
                                    Ok(()) => println!("bitrate now at most {bps} bit/s"),
                                    Err(e) => println!("{e}"),
                                },
                                Err(_) => println!("usage: bitrate BITS_PER_SECOND"),
                            },
                            "" => {}
                            other => println!("unknown command `{}` (invite, still, move, bitrate N, confirm, disconnect, quit)", shown(other)),
                        }
                    }
                    std::io::stdout().flush()?;
                }
                _ => stdin_open = false,
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    host.end("the host stopped sharing").await;
    Ok(())
}

/// Text from the other side (or from the server) as one safe line: escape sequences, bidi overrides and line
/// breaks are shown as escapes, so they cannot redraw the terminal, set its clipboard (OSC 52) or fake a prompt.
fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    escape_for_terminal(text, false)
}

/// Asks the user about one join request. The name is whatever the viewer typed, relayed by the server: it is
/// shown escaped and marked as unverified.
fn prompt(request: &peerdesk::session::JoinRequest) -> std::io::Result<()> {
    if request.unattended_access.is_some() {
        println!("(their access secret is checked after you allow it)");
    }
    print!(
        "{} Allow (v)iew, (c)ontrol, (f)ull control + clipboard, or (n)o? ",
        shown(&request.describe())
    );
    std::io::stdout().flush()
}
