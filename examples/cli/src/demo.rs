//! `peerdesk demo`: the whole product on one machine. A signaling server in-process, a host in a child process
//! (`peerdesk share`: the X11 screen when a display is there, else the synthetic desktop), and a viewer here,
//! over loopback WebRTC. Reports join time, glass-to-glass latency from the frame stamps, fps, bitrate, CPU and
//! memory for a moving and then a still screen, and saves the last frame.

use crate::pipeline_demo::cpu_time;
use crate::report::{parse_size, percentile};
use crate::view::save_png;
use anyhow::{bail, Context as _};
use peerdesk::capture::stamp;
use peerdesk::encode::Backend;
use peerdesk::session::{Viewer, ViewerConfig};
use peerdesk::transport::TransportConfig;
use peerdesk_signaling_server::{HubConfig, Server};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

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

/// CPU seconds used by process `pid` (user + system).
fn process_cpu(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let stime: f64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    (utime + stime) / clock_ticks()
}

/// Peak resident memory of process `pid` in MB.
fn peak_rss_mb(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
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
    runtime.block_on(run_async(args))
}

async fn run_async(args: DemoArgs) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("ws://{}/ws", listener.local_addr()?);
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(Server::new(HubConfig::default(), None).serve(listener, async move {
        let _ = server_stopped.await;
    }));

    let (w, h) = args.size;
    let mut command = tokio::process::Command::new(std::env::current_exe()?);
    command
        .args([
            "share",
            "--server",
            &url,
            "--auto-accept",
            "control",
            "--loopback",
            "--name",
            "demo host",
        ])
        .args([
            "--fps",
            &args.fps.to_string(),
            "--size",
            &format!("{w}x{h}"),
            "--backend",
            &args.backend.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    if args.synthetic {
        command.arg("--synthetic");
    }
    let mut host = command.spawn().context("starting the host process")?;
    let host_pid = host.id().context("host pid")?;
    let mut host_in = host.stdin.take().context("host stdin")?;
    let mut host_out = tokio::io::BufReader::new(host.stdout.take().context("host stdout")?).lines();
    let mut code = None;
    let mut sharing = String::new();
    while code.is_none() || sharing.is_empty() {
        let line = tokio::time::timeout(Duration::from_secs(30), host_out.next_line())
            .await
            .context("the host did not start")??
            .context("the host exited")?;
        if let Some(c) = line.strip_prefix("code: ") {
            code = Some(c.trim().to_string());
        } else if line.starts_with("sharing ") {
            sharing = line;
        }
    }
    // The host prints each viewer's verification code; the demo compares it with the viewer's.
    let (host_code_tx, host_code_rx) = tokio::sync::oneshot::channel::<String>();
    tokio::spawn(async move {
        let mut host_code_tx = Some(host_code_tx);
        while let Ok(Some(line)) = host_out.next_line().await {
            if let Some((_, code)) = line.split_once("verification code for viewer ") {
                let code = code.split_once(": ").map(|(_, c)| c.trim().to_string());
                if let (Some(tx), Some(code)) = (host_code_tx.take(), code) {
                    let _ = tx.send(code);
                }
            }
        }
    });
    let code = code.expect("loop ends with a code");
    // The host tells its user to pass the code on; here the viewer below is the technician it is passed to.
    let sharing = sharing.split(';').next().unwrap_or(&sharing);
    println!("peerdesk demo: signaling server in-process, host process {host_pid} {sharing}");
    println!("  session code {code}: the viewer below joins with it, as a technician would");
    println!(
        "  encoder {} at {} fps; viewer in this process; loopback WebRTC",
        args.backend, args.fps
    );

    let join_started = Instant::now();
    let config = ViewerConfig::new(&url, &code, "demo technician").transport(TransportConfig::loopback());
    let viewer = Viewer::join(config).await.context("joining")?;
    let first = tokio::time::timeout(Duration::from_secs(10), viewer.next_frame())
        .await
        .context("no first frame")?;
    let Some(mut last_frame) = first else {
        bail!("the session ended before the first frame")
    };
    let join_to_first_frame = join_started.elapsed();
    let host_code = tokio::time::timeout(Duration::from_secs(5), host_code_rx)
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
    let (host_cpu0, self_cpu0, bytes0, frames0) = (
        process_cpu(host_pid),
        cpu_time(),
        viewer.stats().bytes,
        viewer.stats().frames,
    );
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut stamped = 0u32;
    let mut freezes = Freezes::default();
    let mut last_arrival = Instant::now();
    while started.elapsed().as_secs_f64() < args.seconds {
        let Ok(Some(frame)) = tokio::time::timeout(Duration::from_secs(15), viewer.next_frame()).await else {
            bail!("frames stopped");
        };
        let now = Instant::now();
        freezes.gap(now - last_arrival);
        last_arrival = now;
        if let Ok(decoded) = frame.to_frame() {
            if let Some(s) = stamp::read_i420(&decoded) {
                latencies.push(f64::from(s.age_millis(stamp::now_millis())));
                stamped += 1;
            }
        }
        last_frame = frame;
    }
    let moving = started.elapsed().as_secs_f64();
    let stats = viewer.stats();
    let fps = (stats.frames - frames0) as f64 / moving;
    let kbps = (stats.bytes - bytes0) as f64 * 8.0 / moving / 1000.0;
    let host_cpu = (process_cpu(host_pid) - host_cpu0) / moving * 100.0;
    let viewer_cpu = (cpu_time() - self_cpu0).as_secs_f64() / moving * 100.0;
    let rtt = stats.rtt_ms;

    // Still screen: freeze the host's picture, let the encoder settle, then measure.
    host_in.write_all(b"still\n").await?;
    host_in.flush().await?;
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(2) {
        if let Ok(Some(frame)) = tokio::time::timeout(Duration::from_millis(200), viewer.next_frame()).await {
            last_frame = frame;
        }
    }
    let (host_cpu1, bytes1) = (process_cpu(host_pid), viewer.stats().bytes);
    let still_started = Instant::now();
    while still_started.elapsed().as_secs_f64() < args.still_seconds {
        if let Ok(Some(frame)) = tokio::time::timeout(Duration::from_millis(200), viewer.next_frame()).await {
            last_frame = frame;
        }
    }
    let still = still_started.elapsed().as_secs_f64();
    let still_kbps = (viewer.stats().bytes - bytes1) as f64 * 8.0 / still / 1000.0;
    let still_host_cpu = (process_cpu(host_pid) - host_cpu1) / still * 100.0;
    let host_rss = peak_rss_mb(&host_pid.to_string());
    let viewer_rss = peak_rss_mb("self");

    latencies.sort_by(f64::total_cmp);
    println!(
        "  join → first frame      {:.0} ms",
        join_to_first_frame.as_secs_f64() * 1000.0
    );
    if stamped > 0 {
        println!(
            "  glass-to-glass          p50 {:.0} ms, p95 {:.0} ms (capture → decoded, {stamped} stamped frames)",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.95)
        );
    } else {
        println!("  glass-to-glass          n/a (the shared screen carries no frame stamp; use --synthetic)");
    }
    println!("  moving screen           {fps:.1} fps delivered, {kbps:.0} kbit/s, RTT {rtt:.1} ms");
    println!(
        "  freezes > {} ms        {} (longest {:.0} ms)",
        FREEZE.as_millis(),
        freezes.count,
        freezes.longest.as_secs_f64() * 1000.0
    );
    println!("  CPU while moving        host {host_cpu:.0} %, viewer {viewer_cpu:.0} % of one core");
    println!("  still screen            {still_kbps:.1} kbit/s, host CPU {still_host_cpu:.1} % of one core");
    println!("  peak memory             host {host_rss:.0} MB, viewer {viewer_rss:.0} MB resident");
    let end_stats = viewer.stats();
    println!("  frames dropped (viewer) {}", end_stats.frames_dropped);
    println!(
        "  loss repair (viewer)    {} packets NACKed, {} recovered; {} keyframe requests, {} keyframes",
        end_stats.packets_nacked, end_stats.packets_recovered, end_stats.keyframe_requests, end_stats.keyframes
    );
    save_png(&last_frame, &args.output)?;
    println!("  last frame              {}", args.output.display());

    viewer.leave().await;
    let _ = host_in.write_all(b"quit\n").await;
    let _ = tokio::time::timeout(Duration::from_secs(5), host.wait()).await;
    let _ = stop_server.send(());
    Ok(())
}

/// A gap between two delivered frames longer than this is a freeze a user notices.
const FREEZE: Duration = Duration::from_millis(250);

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
