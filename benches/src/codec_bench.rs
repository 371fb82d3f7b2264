//! `codec-bench`: compares peerdesk's encoder backends with ffmpeg's realtime encoders on the same frames.
//!
//! Input: a Y4M file, a raw I420 file (`--size`, `--fps`), or by default the synthetic desktop. For each peerdesk
//! backend it prints encode fps (conversion excluded), frames of encoder delay, kbit/s and PSNR-Y (decoded with
//! dav1d); then the same for ffmpeg's libvpx VP8, libaom and SVT-AV1 realtime encoders at the same bitrate, when
//! ffmpeg is installed. Ratios against the best ffmpeg peer close the table.
//!
//! ```text
//! cargo run --release -p peerdesk-benches --bin codec-bench -- --frames 150
//! cargo run --release -p peerdesk-benches --bin codec-bench -- clip.y4m
//! cargo run --release -p peerdesk-benches --bin codec-bench -- clip.yuv --size 1920x1080 --fps 30
//! ```

use anyhow::{bail, Context as _};
use clap::Parser;
use peerdesk::capture::synthetic::{SyntheticConfig, SyntheticDesktop};
use peerdesk::convert::bgra_to_i420;
use peerdesk::decode::{Decoder, DecoderConfig};
use peerdesk::encode::{new_encoder, Backend, EncoderConfig, FrameOptions};
use peerdesk::frame::{chroma_size, Frame, I420Image, PixelFormat};
use peerdesk::quality::{psnr_from_sse, sse_plane};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "Encode fps, delay, kbit/s and PSNR of peerdesk's AV1 backends beside ffmpeg's realtime encoders")]
struct Args {
    /// A .y4m clip, or a raw I420 clip with --size and --fps; none for the synthetic desktop.
    input: Option<PathBuf>,
    /// Size of a raw clip or of the synthetic desktop, WIDTHxHEIGHT.
    #[arg(long, default_value = "1920x1080")]
    size: String,
    /// Frame rate of a raw clip or of the synthetic desktop.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Frames to use at most.
    #[arg(long, default_value_t = 150)]
    frames: usize,
    /// Target bitrate in bit/s for every encoder.
    #[arg(long, default_value_t = 2_000_000)]
    bitrate: u32,
    /// Encoder threads for every encoder.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Backends to run (aom, rav1e); all compiled ones by default.
    #[arg(long, value_delimiter = ',')]
    backends: Vec<Backend>,
    /// Frames given to rav1e at most (it runs at about a tenth of real time).
    #[arg(long, default_value_t = 60)]
    rav1e_frames: usize,
    /// Skip the ffmpeg peers.
    #[arg(long)]
    no_ffmpeg: bool,
}

struct Clip {
    width: u32,
    height: u32,
    fps: u32,
    frames: Vec<Frame>,
}

#[derive(Debug, Clone)]
struct Row {
    name: String,
    frames: usize,
    encode_fps: f64,
    delay: Option<usize>,
    kbps: f64,
    psnr: f64,
}

fn parse_size(s: &str) -> anyhow::Result<(u32, u32)> {
    let (w, h) = s.split_once('x').context("size must be WIDTHxHEIGHT")?;
    Ok((w.parse()?, h.parse()?))
}

fn frame_from_planes(width: u32, height: u32, data: &[u8], index: usize, fps: u32) -> anyhow::Result<Frame> {
    let (cw, ch) = chroma_size(width, height);
    let (ys, cs) = ((width * height) as usize, (cw * ch) as usize);
    let image = I420Image::new(
        [&data[..ys], &data[ys..ys + cs], &data[ys + cs..ys + 2 * cs]],
        [width as usize, cw as usize, cw as usize],
        width,
        height,
    )?;
    let mut frame = Frame::new(PixelFormat::I420, width, height)?;
    frame.copy_from_i420(&image)?;
    frame.timestamp = Duration::from_secs_f64(index as f64 / f64::from(fps));
    Ok(frame)
}

fn load_clip(args: &Args) -> anyhow::Result<(Clip, String)> {
    let Some(path) = &args.input else {
        let (width, height) = parse_size(&args.size)?;
        let config = SyntheticConfig {
            width,
            height,
            fps: args.fps,
            ..Default::default()
        };
        let mut desktop = SyntheticDesktop::new(config)?;
        let mut frames = Vec::with_capacity(args.frames);
        for n in 0..args.frames {
            let bgra = desktop.render(n as u64, n as u32 * 33);
            let mut yuv = Frame::new(PixelFormat::I420, width, height)?;
            bgra_to_i420(&bgra.as_bgra_image()?, &mut yuv, None)?;
            yuv.timestamp = Duration::from_secs_f64(n as f64 / f64::from(args.fps));
            frames.push(yuv);
        }
        let name = format!(
            "synthetic desktop (scrolling terminal, typing, clock) {width}x{height}@{}",
            args.fps
        );
        return Ok((
            Clip {
                width,
                height,
                fps: args.fps,
                frames,
            },
            name,
        ));
    };
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "y4m") {
        let mut decoder = y4m::decode(BufReader::new(file)).map_err(|e| anyhow::anyhow!("y4m: {e:?}"))?;
        let (width, height) = (decoder.get_width() as u32, decoder.get_height() as u32);
        let rate = decoder.get_framerate();
        let fps = (rate.num as f64 / rate.den.max(1) as f64).round().max(1.0) as u32;
        if decoder.get_colorspace().get_bit_depth() != 8
            || !format!("{:?}", decoder.get_colorspace()).starts_with("C420")
        {
            bail!("only 8-bit 4:2:0 Y4M is supported, got {:?}", decoder.get_colorspace());
        }
        let mut frames = Vec::new();
        while frames.len() < args.frames {
            match decoder.read_frame() {
                Ok(f) => {
                    let mut data = f.get_y_plane().to_vec();
                    data.extend_from_slice(f.get_u_plane());
                    data.extend_from_slice(f.get_v_plane());
                    frames.push(frame_from_planes(width, height, &data, frames.len(), fps)?);
                }
                Err(y4m::Error::EOF) => break,
                Err(e) => bail!("y4m frame: {e:?}"),
            }
        }
        return Ok((
            Clip {
                width,
                height,
                fps,
                frames,
            },
            path.display().to_string(),
        ));
    }
    let (width, height) = parse_size(&args.size)?;
    let (cw, ch) = chroma_size(width, height);
    let frame_len = (width * height + 2 * cw * ch) as usize;
    let mut reader = BufReader::new(file);
    let mut buf = vec![0u8; frame_len];
    let mut frames = Vec::new();
    while frames.len() < args.frames && reader.read_exact(&mut buf).is_ok() {
        frames.push(frame_from_planes(width, height, &buf, frames.len(), args.fps)?);
    }
    Ok((
        Clip {
            width,
            height,
            fps: args.fps,
            frames,
        },
        path.display().to_string(),
    ))
}

fn run_backend(backend: Backend, clip: &Clip, frames: usize, args: &Args) -> anyhow::Result<Row> {
    let frames = &clip.frames[..frames.min(clip.frames.len())];
    let config = EncoderConfig::new(clip.width, clip.height)
        .fps(clip.fps)
        .bitrate(args.bitrate)
        .threads(args.threads);
    let mut encoder = new_encoder(backend, &config)?;
    let mut packets = Vec::with_capacity(frames.len());
    let mut encode_time = Duration::ZERO;
    let mut max_delay = 0;
    for (i, frame) in frames.iter().enumerate() {
        let started = Instant::now();
        encoder.send_frame(
            frame,
            FrameOptions {
                keyframe: i == 0,
                refresh: false,
                keep_alive: false,
            },
        )?;
        while let Some(p) = encoder.receive_packet()? {
            packets.push(p);
        }
        encode_time += started.elapsed();
        max_delay = max_delay.max(i + 1 - packets.len());
    }
    // Drain the delay (not timed) so every frame is scored.
    while packets.len() < frames.len() {
        encoder.send_frame(frames.last().expect("clip is not empty"), FrameOptions::default())?;
        while let Some(p) = encoder.receive_packet()? {
            packets.push(p);
        }
    }
    packets.truncate(frames.len());
    let bytes: usize = packets.iter().map(|p| p.data.len()).sum();
    let mut decoder = Decoder::new(DecoderConfig::default())?;
    let (mut sse, mut samples) = (0u64, 0u64);
    for p in &packets {
        let picture = decoder
            .decode(p.data.clone(), p.timestamp)?
            .context("dav1d gave no picture for a temporal unit")?;
        let source = &frames[p.frame_index as usize];
        sse += sse_plane(
            picture.plane(0),
            picture.stride(0),
            source.plane(0),
            source.stride(0),
            clip.width as usize,
            clip.height as usize,
        );
        samples += u64::from(clip.width * clip.height);
    }
    Ok(Row {
        name: format!("peerdesk {backend}"),
        frames: frames.len(),
        encode_fps: frames.len() as f64 / encode_time.as_secs_f64(),
        delay: Some(max_delay),
        kbps: bytes as f64 * 8.0 * f64::from(clip.fps) / frames.len() as f64 / 1000.0,
        psnr: psnr_from_sse(sse, samples),
    })
}

struct FfmpegPeer {
    name: &'static str,
    encoder: &'static str,
    args: fn(bitrate: u32, threads: usize) -> Vec<String>,
}

const PEERS: &[FfmpegPeer] = &[
    FfmpegPeer {
        name: "ffmpeg libvpx VP8 realtime cpu-used 16",
        encoder: "libvpx",
        args: |b, t| {
            strings(&[
                "-c:v",
                "libvpx",
                "-deadline",
                "realtime",
                "-cpu-used",
                "16",
                "-lag-in-frames",
                "0",
                "-g",
                "100000",
            ])
            .into_iter()
            .chain(rate(b, t))
            .collect()
        },
    },
    FfmpegPeer {
        name: "ffmpeg libaom realtime cpu-used 8 screen",
        encoder: "libaom-av1",
        args: |b, t| {
            strings(&[
                "-c:v",
                "libaom-av1",
                "-usage",
                "realtime",
                "-cpu-used",
                "8",
                "-tune-content",
                "screen",
                "-row-mt",
                "1",
                "-tile-columns",
                "1",
                "-lag-in-frames",
                "0",
                "-g",
                "100000",
            ])
            .into_iter()
            .chain(rate(b, t))
            .collect()
        },
    },
    FfmpegPeer {
        name: "ffmpeg SVT-AV1 preset 12 low-delay",
        encoder: "libsvtav1",
        args: |b, t| {
            strings(&[
                "-c:v",
                "libsvtav1",
                "-preset",
                "12",
                "-g",
                "100000",
                "-svtav1-params",
                "pred-struct=1:rc=2",
            ])
            .into_iter()
            .chain(rate(b, t))
            .collect()
        },
    },
];

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn rate(bitrate: u32, threads: usize) -> Vec<String> {
    vec![
        "-b:v".into(),
        bitrate.to_string(),
        "-threads".into(),
        threads.to_string(),
    ]
}

fn ffmpeg_has_encoder(name: &str) -> bool {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-encoders"])
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().any(|w| w == name))
        .unwrap_or(false)
}

fn run_ffmpeg(peer: &FfmpegPeer, clip: &Clip, raw: &Path, dir: &Path, args: &Args) -> anyhow::Result<Row> {
    let out = dir.join(format!("{}.ivf", peer.encoder));
    let size = format!("{}x{}", clip.width, clip.height);
    let mut cmd = Command::new("ffmpeg");
    cmd.env("SVT_LOG", "1");
    cmd.args([
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "yuv420p",
        "-s",
        &size,
    ])
    .args(["-r", &clip.fps.to_string(), "-i"])
    .arg(raw)
    .args((peer.args)(args.bitrate, args.threads))
    .args(["-f", "ivf"])
    .arg(&out);
    let started = Instant::now();
    let status = cmd.status().context("running ffmpeg")?;
    let elapsed = started.elapsed();
    if !status.success() {
        bail!("ffmpeg {} failed ({status})", peer.encoder);
    }
    // IVF: 32-byte file header, 12-byte frame headers.
    let file_len = std::fs::metadata(&out)?.len() as usize;
    let decoded = dir.join(format!("{}.yuv", peer.encoder));
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(&out)
        .args(["-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "yuv420p"])
        .arg(&decoded)
        .status()?;
    if !status.success() {
        bail!("ffmpeg could not decode its own {} output", peer.encoder);
    }
    let decoded_bytes = std::fs::read(&decoded)?;
    let (cw, ch) = chroma_size(clip.width, clip.height);
    let frame_len = (clip.width * clip.height + 2 * cw * ch) as usize;
    let decoded_frames = decoded_bytes.len() / frame_len;
    let payload = file_len.saturating_sub(32 + 12 * decoded_frames);
    let (mut sse, mut samples) = (0u64, 0u64);
    for (i, source) in clip.frames.iter().enumerate().take(decoded_frames) {
        let y = &decoded_bytes[i * frame_len..i * frame_len + (clip.width * clip.height) as usize];
        sse += sse_plane(
            y,
            clip.width as usize,
            source.plane(0),
            source.stride(0),
            clip.width as usize,
            clip.height as usize,
        );
        samples += u64::from(clip.width * clip.height);
    }
    Ok(Row {
        name: peer.name.to_string(),
        frames: decoded_frames,
        encode_fps: clip.frames.len() as f64 / elapsed.as_secs_f64(),
        delay: None,
        kbps: payload as f64 * 8.0 * f64::from(clip.fps) / clip.frames.len() as f64 / 1000.0,
        psnr: psnr_from_sse(sse, samples),
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (clip, name) = load_clip(&args)?;
    if clip.frames.is_empty() {
        bail!("the clip has no frames");
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "clip: {name}, {} frames; target {} kbit/s, {} threads; machine: {cpus} cores",
        clip.frames.len(),
        args.bitrate / 1000,
        args.threads
    );
    let backends = if args.backends.is_empty() {
        Backend::available()
    } else {
        args.backends.clone()
    };
    let mut rows = Vec::new();
    for backend in backends {
        let frames = if backend == Backend::Rav1e {
            args.rav1e_frames
        } else {
            clip.frames.len()
        };
        let row = run_backend(backend, &clip, frames, &args)?;
        print_row(&row, rows.is_empty());
        rows.push(row);
    }
    let ours = rows.clone();
    if !args.no_ffmpeg {
        if Command::new("ffmpeg")
            .arg("-version")
            .stdout(Stdio::null())
            .status()
            .is_ok()
        {
            let dir = std::env::temp_dir().join(format!("peerdesk-codec-bench-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            let raw = dir.join("clip.yuv");
            let mut file = std::io::BufWriter::new(std::fs::File::create(&raw)?);
            for frame in &clip.frames {
                file.write_all(frame.as_bytes())?;
            }
            file.flush()?;
            drop(file);
            for peer in PEERS {
                if !ffmpeg_has_encoder(peer.encoder) {
                    println!("{:<42} (ffmpeg has no {} encoder)", peer.name, peer.encoder);
                    continue;
                }
                match run_ffmpeg(peer, &clip, &raw, &dir, &args) {
                    Ok(row) => {
                        print_row(&row, false);
                        rows.push(row);
                    }
                    Err(e) => println!("{:<42} failed: {e:#}", peer.name),
                }
            }
            let _ = std::fs::remove_dir_all(&dir);
        } else {
            println!("(ffmpeg not installed: no peers measured)");
        }
    }
    let peers = &rows[ours.len()..];
    if !peers.is_empty() {
        println!();
        for row in &ours {
            for peer in peers {
                println!(
                    "{} vs {}: {:.2}x encode fps, {:.2}x kbit/s, {:+.2} dB PSNR-Y",
                    row.name,
                    peer.name,
                    row.encode_fps / peer.encode_fps,
                    row.kbps / peer.kbps,
                    row.psnr - peer.psnr
                );
            }
        }
    }
    Ok(())
}

fn print_row(row: &Row, header: bool) {
    if header {
        println!(
            "{:<42} {:>7} {:>10} {:>9} {:>9} {:>10}",
            "encoder", "frames", "encode fps", "delay", "kbit/s", "PSNR-Y dB"
        );
    }
    let delay = row.delay.map_or("-".to_string(), |d| d.to_string());
    println!(
        "{:<42} {:>7} {:>10.1} {:>9} {:>9.0} {:>10.2}",
        row.name, row.frames, row.encode_fps, delay, row.kbps, row.psnr
    );
}
