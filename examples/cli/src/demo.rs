//! `peerdesk demo`: the whole product on one machine, in one process, through the library's public API: a
//! signaling server, a host (the X11 screen when a display is there, else the synthetic desktop) on a runtime of
//! its own, and a viewer, over loopback WebRTC. Reports join time, glass-to-glass latency from the frame stamps, fps, bitrate, CPU and
//! memory for a moving and then a still screen, and saves the last frame.

use crate::pipeline_demo::cpu_time;
use crate::report::{parse_size, percentile, screen_choice};
use crate::share::Freezable;
use crate::view::save_png;
use anyhow::{bail, Context as _};
use peerdesk::capture::stamp;
use peerdesk::capture::{open_screen, OpenedScreen};
use peerdesk::control::Permissions;
use peerdesk::encode::Backend;
use peerdesk::session::{Consent, Host, HostConfig, HostEvent, Viewer, ViewerConfig};
use peerdesk::transport::TransportConfig;
use peerdesk_signaling_server::turn::TurnRest;
use peerdesk_signaling_server::{HubConfig, Server};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of `peerdesk demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Seconds of moving screen to measure.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Seconds of still screen to measure (after 2 s of settling).
    #[arg(long, default_value_t = 5.0)]
    still_seconds: f64,
    /// Capture rate.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Size of the synthetic desktop, WIDTHxHEIGHT.
    #[arg(long, default_value = "1920x1080", value_parser = parse_size)]
    size: (u32, u32),
    /// Encoder backend.
    #[arg(long, default_value_t = Backend::default_interactive())]
    backend: Backend,
    /// Share the synthetic desktop even when an X display is available.
    #[arg(long)]
    synthetic: bool,
    /// Where to write the last received frame.
    #[arg(long, default_value = "peerdesk-demo.png")]
    output: PathBuf,
    /// Relay the session through this TURN server (coturn with `use-auth-secret`, e.g.
    /// `turn:127.0.0.1:3478?transport=udp`): the demo's signaling server hands host and viewer time-limited
    /// credentials for it, and both use relay-only ICE, so every packet goes through the relay.
    #[arg(long, requires = "turn_secret_file")]
    turn_url: Option<String>,
    /// File holding the secret shared with the TURN server (coturn's `static-auth-secret`).
    #[arg(long, requires = "turn_url")]
    turn_secret_file: Option<PathBuf>,
}

impl DemoArgs {
    /// The transport of host and viewer: loopback, and relay-only with a TURN server.
    fn transport(&self) -> TransportConfig {
        TransportConfig {
            relay_only: self.turn_url.is_some(),
            ..TransportConfig::loopback()
        }
    }

    /// The signaling server's settings: credentials for the TURN server when there is one.
    fn hub_config(&self) -> anyhow::Result<HubConfig> {
        let mut hub = HubConfig::default();
        if let (Some(url), Some(path)) = (&self.turn_url, &self.turn_secret_file) {
            let secret = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let secret = secret.trim_ascii();
            anyhow::ensure!(!secret.is_empty(), "--turn-secret-file {} is empty", path.display());
            hub.turn = Some(TurnRest::new(vec![url.clone()], secret, Duration::from_secs(3600)));
        }
        Ok(hub)
    }
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// Thread-name prefixes of the host's side of this process: its runtime's threads ([`HOST_THREADS`]), the
/// library's encode and input threads, and libaom's workers (which name themselves "aom enc worker"; rav1e's
/// inherit the name of the host thread that made them).
const HOST_THREAD_PREFIXES: [&str; 4] = [HOST_THREADS, "peerdesk-encode", "peerdesk-input", "aom "];

/// The name of the host runtime's threads.
const HOST_THREADS: &str = "demo-host";

/// CPU seconds (user + system) of this process's live threads whose name starts with one of `prefixes`, read from
/// `/proc/self/task/*/stat`.
fn threads_cpu(prefixes: &[&str]) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let mut ticks = 0.0;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ...": the name may hold spaces and parentheses, so it ends at the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if !prefixes.iter().any(|p| stat[open + 1..close].starts_with(p)) {
            continue;
        }
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let utime: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        let stime: f64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        ticks += utime + stime;
    }
    ticks / clock_ticks()
}

/// CPU seconds of the host's threads and of the rest of this process (viewer and signaling server).
fn cpu_split() -> (f64, f64) {
    let host = threads_cpu(&HOST_THREAD_PREFIXES);
    (host, (cpu_time().as_secs_f64() - host).max(0.0))
}

/// Peak resident memory of this process in MB.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l.to_string()))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Runs `peerdesk demo`.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // The host gets a runtime of its own, so that its CPU time can be told from the viewer's by thread name.
    let host_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(HOST_THREADS)
        .enable_all()
        .build()?;
    runtime.block_on(run_async(args, host_runtime.handle().clone()))
}

/// What the host task reports back to the demo.
struct HostHandle {
    code: String,
    description: String,
    /// The host's verification code of the first viewer.
    verification: tokio::sync::oneshot::Receiver<String>,
    /// Freezes the shared picture while set.
    frozen: Arc<AtomicBool>,
    /// Ends the session; the task then finishes.
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// Starts the host through the library on `runtime`, sharing the X11 screen when a display is there (else the
/// synthetic desktop), and admits every viewer with control, as a customer who clicked "allow" would.
async fn start_host(args: &DemoArgs, url: &str, runtime: &tokio::runtime::Handle) -> anyhow::Result<HostHandle> {
    let (width, height) = args.size;
    let fps = args.fps;
    let choice = screen_choice(args.synthetic, (width, height), fps);
    let OpenedScreen {
        source,
        input,
        description,
    } = open_screen(choice)?;
    let frozen = Arc::new(AtomicBool::new(false));
    let source = Box::new(Freezable::new(source, frozen.clone()));
    let config = HostConfig::new(url)
        .name("demo host")
        .transport(args.transport())
        .backend(args.backend)
        .fps(fps);
    let mut host = runtime
        .spawn(Host::start(config, source, input))
        .await?
        .context("starting the host")?;
    let code = host.code().to_string();
    let (width, height) = host.screen_size();
    let description = format!("{description} ({width}x{height})");
    let (verification_tx, verification) = tokio::sync::oneshot::channel();
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let task = runtime.spawn(async move {
        let mut verification_tx = Some(verification_tx);
        loop {
            tokio::select! {
                event = host.next_event() => match event {
                    Some(HostEvent::JoinRequest(request)) => request.answer(Consent::Allow(Permissions::CONTROL)),
                    Some(HostEvent::VerificationCode { code, .. }) => {
                        if let Some(tx) = verification_tx.take() {
                            let _ = tx.send(code);
                        }
                    }
                    Some(HostEvent::Ended { reason }) => {
                        tracing::warn!("the host's session ended: {reason}");
                        return;
                    }
                    None => return,
                    Some(_) => {}
                },
                _ = &mut stopped => break,
            }
        }
        host.end("the demo is over").await;
    });
    Ok(HostHandle {
        code,
        description,
        verification,
        frozen,
        stop,
        task,
    })
}

async fn run_async(args: DemoArgs, host_runtime: tokio::runtime::Handle) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("ws://{}/ws", listener.local_addr()?);
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(Server::new(args.hub_config()?, None).serve(listener, async move {
        let _ = server_stopped.await;
    }));

    let host = start_host(&args, &url, &host_runtime).await?;
    let code = host.code.clone();
    println!(
        "peerdesk demo: signaling server, host and viewer in this process; sharing {}",
        host.description
    );
    // The host tells its user to pass the code on; here the viewer below is the technician it is passed to.
    println!("  session code {code}: the viewer below joins with it, as a technician would");
    println!(
        "  encoder {} at {} fps; loopback WebRTC{}; the host admits the viewer with control",
        args.backend,
        args.fps,
        if args.turn_url.is_some() {
            ", relayed by the TURN server only"
        } else {
            ""
        }
    );

    let join_started = Instant::now();
    let config = ViewerConfig::new(&url, &code, "demo technician").transport(args.transport());
    let viewer = Viewer::join(config).await.context("joining")?;
    let first = tokio::time::timeout(Duration::from_secs(10), viewer.next_frame())
        .await
        .context("no first frame")?;
    let Some(mut last_frame) = first else {
        bail!("the session ended before the first frame")
    };
    let join_to_first_frame = join_started.elapsed();
    let host_code = tokio::time::timeout(Duration::from_secs(5), host.verification)
        .await
        .ok()
        .and_then(Result::ok);
    println!(
        "  verification code: viewer {}, host {} ({})",
        viewer.verification_code(),
        host_code.as_deref().unwrap_or("not shown"),
        if host_code.as_deref() == Some(viewer.verification_code()) {
            "equal: nobody in the middle"
        } else {
            "DIFFERENT: someone is in the middle"
        }
    );

    // Moving screen.
    let ((host_cpu0, viewer_cpu0), bytes0, frames0) = (cpu_split(), viewer.stats().bytes, viewer.stats().frames);
    let started = Instant::now();
    let mut whole = Delivery::default();
    // The same figures from SETTLE on: what a link that needs time to find its rate (a narrow one) settles to.
    let mut settled = Delivery::default();
    let mut last_arrival = Instant::now();
    while started.elapsed().as_secs_f64() < args.seconds {
        let Ok(Some(frame)) = tokio::time::timeout(Duration::from_secs(15), viewer.next_frame()).await else {
            bail!("frames stopped");
        };
        let now = Instant::now();
        let latency = frame
            .to_frame()
            .ok()
            .and_then(|decoded| stamp::read_i420(&decoded))
            .map(|s| f64::from(s.age_millis(stamp::now_millis())));
        whole.frame(now - last_arrival, latency);
        if now - started >= SETTLE {
            settled.frame(now - last_arrival, latency);
        }
        last_arrival = now;
        last_frame = frame;
    }
    let moving = started.elapsed().as_secs_f64();
    let settled_seconds = moving - SETTLE.as_secs_f64();
    let stats = viewer.stats();
    let fps = (stats.frames - frames0) as f64 / moving;
    let kbps = (stats.bytes - bytes0) as f64 * 8.0 / moving / 1000.0;
    let (host_cpu1, viewer_cpu1) = cpu_split();
    let host_cpu = (host_cpu1 - host_cpu0) / moving * 100.0;
    let viewer_cpu = (viewer_cpu1 - viewer_cpu0) / moving * 100.0;
    let rtt = stats.rtt_ms;

    // Still screen: freeze the host's picture, let the encoder settle, then measure.
    host.frozen.store(true, Ordering::Relaxed);
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(2) {
        if let Ok(Some(frame)) = tokio::time::timeout(Duration::from_millis(200), viewer.next_frame()).await {
            last_frame = frame;
        }
    }
    let (host_cpu2, bytes1) = (cpu_split().0, viewer.stats().bytes);
    let still_started = Instant::now();
    while still_started.elapsed().as_secs_f64() < args.still_seconds {
        if let Ok(Some(frame)) = tokio::time::timeout(Duration::from_millis(200), viewer.next_frame()).await {
            last_frame = frame;
        }
    }
    let still = still_started.elapsed().as_secs_f64();
    let still_kbps = (viewer.stats().bytes - bytes1) as f64 * 8.0 / still / 1000.0;
    let still_host_cpu = (cpu_split().0 - host_cpu2) / still * 100.0;
    let rss = peak_rss_mb();

    whole.latencies.sort_by(f64::total_cmp);
    settled.latencies.sort_by(f64::total_cmp);
    println!(
        "  join → first frame      {:.0} ms",
        join_to_first_frame.as_secs_f64() * 1000.0
    );
    let stamped = whole.latencies.len();
    if stamped > 0 {
        println!(
            "  glass-to-glass          p50 {:.0} ms, p95 {:.0} ms (capture → decoded, {stamped} stamped frames)",
            percentile(&whole.latencies, 0.5),
            percentile(&whole.latencies, 0.95)
        );
    } else {
        println!("  glass-to-glass          n/a (the shared screen carries no frame stamp; use --synthetic)");
    }
    println!("  moving screen           {fps:.1} fps delivered, {kbps:.0} kbit/s, RTT {rtt:.1} ms");
    println!(
        "  freezes > {} ms        {} (longest {:.0} ms)",
        FREEZE.as_millis(),
        whole.freezes.count,
        whole.freezes.longest.as_secs_f64() * 1000.0
    );
    if settled_seconds >= 1.0 && !settled.latencies.is_empty() {
        println!(
            "  after {} s               p50 {:.0} ms, p95 {:.0} ms, {:.1} fps, {} freezes (longest {:.0} ms)",
            SETTLE.as_secs(),
            percentile(&settled.latencies, 0.5),
            percentile(&settled.latencies, 0.95),
            f64::from(settled.frames) / settled_seconds,
            settled.freezes.count,
            settled.freezes.longest.as_secs_f64() * 1000.0
        );
    }
    println!("  CPU while moving        host {host_cpu:.0} %, viewer {viewer_cpu:.0} % of one core");
    println!("  still screen            {still_kbps:.1} kbit/s, host CPU {still_host_cpu:.1} % of one core");
    println!("  peak memory             {rss:.0} MB resident (host, viewer and server together)");
    let end_stats = viewer.stats();
    println!("  frames dropped (viewer) {}", end_stats.frames_dropped);
    println!(
        "  loss repair (viewer)    {} packets NACKed, {} recovered; {} keyframe requests, {} keyframes",
        end_stats.packets_nacked, end_stats.packets_recovered, end_stats.keyframe_requests, end_stats.keyframes
    );
    save_png(&last_frame, &args.output)?;
    println!("  last frame              {}", args.output.display());

    viewer.leave().await;
    let _ = host.stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), host.task).await;
    let _ = stop_server.send(());
    Ok(())
}

/// A gap between two delivered frames longer than this is a freeze a user notices.
const FREEZE: Duration = Duration::from_millis(250);
/// The moving phase's second figures start after this much of it (the bench's narrow-link targets hold "within
/// 5 s").
const SETTLE: Duration = Duration::from_secs(5);

/// What the viewer got over part of the moving phase: frames, the glass-to-glass latency of the stamped ones (ms),
/// and freezes.
#[derive(Debug, Default)]
struct Delivery {
    frames: u32,
    latencies: Vec<f64>,
    freezes: Freezes,
}

impl Delivery {
    /// A frame delivered `gap` after the one before, with its latency when it carried a stamp.
    fn frame(&mut self, gap: Duration, latency: Option<f64>) {
        self.frames += 1;
        self.freezes.gap(gap);
        self.latencies.extend(latency);
    }
}

/// Freezes of the moving picture: gaps between delivered frames longer than [`FREEZE`].
#[derive(Debug, Default)]
struct Freezes {
    count: u32,
    longest: Duration,
}

impl Freezes {
    fn gap(&mut self, gap: Duration) {
        if gap > FREEZE {
            self.count += 1;
        }
        self.longest = self.longest.max(gap);
    }
}
