//! The media-pipeline demo: capture → convert → encode → decode in one process, paced in real time.

use crate::report::screen_choice;
use crate::report::{parse_size, percentile};
use peerdesk::capture::stamp;
use peerdesk::capture::{open_screen, OpenedScreen};
use peerdesk::decode::{Decoder, DecoderConfig};
use peerdesk::encode::{Backend, ControllerConfig, Decision, EncoderConfig};
use peerdesk::frame::Frame;
use peerdesk::pipeline::EncodePipeline;
use peerdesk::quality::psnr_y;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Options of `peerdesk demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Capture rate.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Size of the synthetic desktop, WIDTHxHEIGHT.
    #[arg(long, default_value = "1920x1080", value_parser = parse_size)]
    size: (u32, u32),
    /// Encoder backend: aom or rav1e.
    #[arg(long, default_value_t = Backend::default_interactive())]
    backend: Backend,
    /// Target bitrate in bit/s.
    #[arg(long, default_value_t = 2_000_000)]
    bitrate: u32,
    /// Use the synthetic desktop even when an X display is available.
    #[arg(long)]
    synthetic: bool,
    /// Where to write the last decoded frame.
    #[arg(long, default_value = "peerdesk-demo.png")]
    output: PathBuf,
}

/// Runs the demo and prints its report.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let (width, height) = args.size;
    let choice = screen_choice(args.synthetic, (width, height), args.fps);
    let OpenedScreen {
        mut source,
        description: source_name,
        ..
    } = open_screen(choice)?;
    let (width, height) = source.size();
    let encoder_config = EncoderConfig::new(width, height).fps(args.fps).bitrate(args.bitrate);
    let controller = ControllerConfig {
        fps: args.fps,
        ..Default::default()
    };
    let mut pipeline = EncodePipeline::new(args.backend, encoder_config, controller)?;
    let mut decoder = Decoder::new(DecoderConfig::default())?;
    println!(
        "peerdesk demo: {source_name} {width}x{height} @ {} fps, {} encoder at {} kbit/s, {:.0} s",
        args.fps,
        args.backend,
        args.bitrate / 1000,
        args.seconds
    );

    let interval = Duration::from_secs_f64(1.0 / f64::from(args.fps));
    let started = Instant::now();
    let mut next_tick = started;
    let mut packets = Vec::new();
    let mut sources: VecDeque<Frame> = VecDeque::new();
    let (mut bytes, mut decoded, mut encodes, mut skips) = (0usize, 0u64, 0u64, 0u64);
    let (mut convert_ms, mut encode_ms, mut decode_ms) = (Vec::new(), Vec::new(), Vec::new());
    let mut psnrs = Vec::new();
    let mut latencies = Vec::new();
    let mut last_picture = None;
    let cpu_start = cpu_time();
    while started.elapsed().as_secs_f64() < args.seconds {
        let now = Instant::now();
        if now < next_tick {
            std::thread::sleep(next_tick - now);
        }
        // Skip missed ticks rather than queueing stale pictures.
        while next_tick <= Instant::now() {
            next_tick += interval;
        }
        let captured = source.capture()?;
        let report = pipeline.tick(started.elapsed(), captured, &mut packets)?;
        match report.decision {
            Decision::Skip => skips += 1,
            _ => {
                encodes += 1;
                encode_ms.push(report.encode_time.as_secs_f64() * 1e3);
                if report.convert_time > Duration::ZERO {
                    convert_ms.push(report.convert_time.as_secs_f64() * 1e3);
                }
                // Keep the source of every 10th encode for PSNR.
                if encodes % 10 == 1 {
                    sources.push_back(pipeline.current_picture().clone());
                    if sources.len() > 8 {
                        sources.pop_front();
                    }
                }
            }
        }
        for packet in packets.drain(..) {
            bytes += packet.data.len();
            let t = Instant::now();
            let Some(picture) = decoder.decode(packet.data, packet.timestamp)? else {
                continue;
            };
            decode_ms.push(t.elapsed().as_secs_f64() * 1e3);
            decoded += 1;
            let frame = picture.to_frame()?;
            if let Some(stamp) = stamp::read_i420(&frame) {
                latencies.push(f64::from(stamp.age_millis(stamp::now_millis())));
            }
            if let Some(pos) = sources
                .iter()
                .position(|s| s.timestamp.as_micros() == frame.timestamp.as_micros())
            {
                let source = sources.remove(pos).expect("position is valid");
                psnrs.push(psnr_y(&frame.as_i420_image()?, &source.as_i420_image()?)?);
            }
            last_picture = Some(picture);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_time().saturating_sub(cpu_start).as_secs_f64();

    let mean = |v: &[f64]| {
        if v.is_empty() {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    latencies.sort_by(f64::total_cmp);
    let finite: Vec<f64> = psnrs.iter().copied().filter(|p| p.is_finite()).collect();
    println!(
        "  delivered      {:.1} fps ({decoded} pictures; {encodes} encodes, {skips} ticks skipped)",
        decoded as f64 / elapsed
    );
    println!("  bitrate        {:.0} kbit/s", bytes as f64 * 8.0 / elapsed / 1000.0);
    println!(
        "  PSNR-Y         {:.2} dB mean over {} sampled pictures",
        mean(&finite),
        psnrs.len()
    );
    println!(
        "  delay          capture→decoded p50 {:.0} ms, p95 {:.0} ms (frame stamps); encoder holds {} frames",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.95),
        pipeline.frames_in_flight()
    );
    println!(
        "  per picture    convert {:.2} ms, encode {:.2} ms, decode {:.2} ms (means)",
        mean(&convert_ms),
        mean(&encode_ms),
        mean(&decode_ms)
    );
    println!("  CPU            {:.0} % of one core", cpu / elapsed * 100.0);
    let adaptation = pipeline.controller().adaptation();
    if adaptation.fps_divisor > 1 || adaptation.downscale {
        println!("  adaptation     {adaptation:?} (the encoder could not keep up)");
    }
    if let Some(picture) = last_picture {
        crate::view::save_png(&picture, &args.output)?;
        println!("  last frame     {}", args.output.display());
    } else {
        anyhow::bail!("no picture was decoded");
    }
    Ok(())
}

/// CPU time used by this process so far.
pub fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) } == 0;
    if !ok {
        return Duration::ZERO;
    }
    // SAFETY: initialised by the successful call above.
    let usage = unsafe { usage.assume_init() };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}
