//! `peerdesk view`: joins a shared screen by code, reports what it receives and saves frames as PNG on request.

use anyhow::Context as _;
use peerdesk::decode::DecodedFrame;
use peerdesk::session::{Viewer, ViewerConfig, ViewerEvent};
use peerdesk::text::escape_for_terminal;
use peerdesk::transport::TransportConfig;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Options of `peerdesk view`.
#[derive(clap::Args, Debug)]
pub struct ViewArgs {
    /// A PEM file of CA certificate(s) to trust for a `wss://` server with a private CA.
    #[arg(long)]
    pub ca_file: Option<std::path::PathBuf>,
    /// Signaling server WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    pub server: String,
    /// The session code the host's user read out.
    #[arg(long, required_unless_present = "device", conflicts_with = "device")]
    pub code: Option<String>,
    /// Unattended access: the device ID to reach (with --access and --secret-file).
    #[arg(long, requires_all = ["access", "secret_file"])]
    pub device: Option<String>,
    /// The technician access name the device's policy knows.
    #[arg(long)]
    pub access: Option<String>,
    /// A file whose first line is the access secret (`-` reads standard input).
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
    /// The current TOTP code, when the access requires one.
    #[arg(long)]
    pub totp: Option<String>,
    /// Sign in to the signaling server as this technician account (with --token-file): the host's prompt then
    /// says the operator verified you.
    #[arg(long, requires = "token_file")]
    pub account: Option<String>,
    /// A file whose first line is the account's API token (`-` reads standard input).
    #[arg(long, requires = "account")]
    pub token_file: Option<PathBuf>,
    /// Your name, shown to the host's user.
    #[arg(long, default_value = "peerdesk viewer")]
    pub name: String,
    /// Save every Nth frame as PNG into this folder.
    #[arg(long)]
    pub save_frames: Option<PathBuf>,
    /// With --save-frames: save one frame in this many.
    #[arg(long, default_value_t = 30)]
    pub every: u64,
    /// Leave after this many seconds.
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Bind ICE to 127.0.0.1 only (sessions on this machine).
    #[arg(long)]
    pub loopback: bool,
    /// Connect only through the TURN relay the signaling server hands out: the other side never learns this
    /// machine's addresses.
    #[arg(long)]
    pub relay_only: bool,
    /// Print `stamp N` for every frame carrying a frame stamp (synthetic or test-pattern hosts).
    #[arg(long)]
    pub print_stamps: bool,
}

/// Writes a decoded frame as an RGBA PNG.
pub fn save_png(frame: &DecodedFrame, path: &Path) -> anyhow::Result<()> {
    let (w, h) = (frame.width(), frame.height());
    let mut rgba = vec![0u8; (w * h * 4) as usize];
    frame.write_rgba(&mut rgba, w as usize * 4)?;
    image::save_buffer(path, &rgba, w, h, image::ColorType::Rgba8)
        .with_context(|| format!("writing {}", path.display()))
}

/// Runs `peerdesk view`.
pub async fn run(args: ViewArgs) -> anyhow::Result<()> {
    let mut transport = if args.loopback {
        TransportConfig::loopback()
    } else {
        TransportConfig::default()
    };
    transport.relay_only = args.relay_only;
    let mut config = match (&args.device, &args.access, &args.secret_file) {
        (Some(device), Some(access), Some(secret_file)) => {
            let device = device.parse().context("--device")?;
            let secret = crate::device::read_secret(secret_file)?;
            let mut config = ViewerConfig::for_device(&args.server, device, access, secret).transport(transport);
            if args.name != "peerdesk viewer" {
                config = config.name(&args.name);
            }
            match &args.totp {
                Some(code) => config.totp_code(code),
                None => config,
            }
        }
        _ => ViewerConfig::new(&args.server, args.code.as_deref().unwrap_or_default(), &args.name).transport(transport),
    };
    if let Some(path) = &args.ca_file {
        let pem = std::fs::read_to_string(path).with_context(|| format!("reading --ca-file {}", path.display()))?;
        config = config.trust_ca_pem(pem);
    }
    if let (Some(account), Some(token_file)) = (&args.account, &args.token_file) {
        config = config.sign_in(account, crate::device::read_secret(token_file)?);
    }
    println!("asking the host to let you in...");
    let mut viewer = Viewer::join(config).await.context("joining")?;
    let (w, h) = viewer.screen_size();
    println!(
        "connected to {} ({w}x{h}), permissions {:?}",
        escape_for_terminal(viewer.host_name(), false),
        viewer.permissions()
    );
    if viewer.device_public_key().is_some() {
        println!("unattended access: the device proved its identity and both sides proved the connection is theirs");
    } else {
        println!(
            "verification code: {} (read it to the person sharing; a different code on their screen means someone is in the middle)",
            viewer.verification_code()
        );
    }
    if let Some(dir) = &args.save_frames {
        std::fs::create_dir_all(dir)?;
    }
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut count = 0u64;
    let end = args.seconds.map(|s| started + Duration::from_secs_f64(s));
    let frames = viewer.frame_queue();
    loop {
        let deadline = end.map_or(Duration::from_secs(3600), |e| {
            e.saturating_duration_since(Instant::now())
        });
        tokio::select! {
            frame = frames.pop() => {
                let Some(frame) = frame else { break };
                count += 1;
                if args.print_stamps {
                    let (w, h) = (frame.width(), frame.height());
                    if let Some(s) = peerdesk::capture::stamp::read_luma(frame.plane(0), frame.stride(0), w, h) {
                        println!("stamp {}", s.frame_number);
                    }
                }
                if let Some(dir) = &args.save_frames {
                    if count % args.every.max(1) == 1 || args.every <= 1 {
                        save_png(&frame, &dir.join(format!("frame-{count:06}.png")))?;
                    }
                }
            }
            event = viewer.next_event() => match event {
                Some(ViewerEvent::Ended { reason }) => { println!("session ended: {}", escape_for_terminal(&reason, false)); break; }
                Some(ViewerEvent::PermissionsChanged(p)) => println!("permissions now {p:?}"),
                Some(ViewerEvent::Reconnecting) => println!("connection lost; reconnecting..."),
                Some(ViewerEvent::Reconnected) => println!("reconnected"),
                Some(ViewerEvent::Clipboard(text)) => println!("clipboard from host: {}", escape_for_terminal(&text, true)),
                Some(ViewerEvent::Chat(text)) => println!("chat: {}", escape_for_terminal(&text, true)),
                Some(ViewerEvent::Refused { message, .. }) => println!("refused: {}", escape_for_terminal(&message, false)),
                Some(_) => {}
                None => break,
            },
            _ = tokio::time::sleep(deadline) => break,
            _ = tokio::signal::ctrl_c() => break,
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            let s = viewer.stats();
            println!(
                "{:.1} fps, {:.0} kbit/s, RTT {:.1} ms, {} frames, {} dropped",
                s.fps, s.bitrate_kbps, s.rtt_ms, s.frames, s.frames_dropped
            );
        }
    }
    println!("received {count} frames");
    viewer.leave().await;
    Ok(())
}
