//! Criterion micro-benchmarks of each step of the data path at 1080p: synthetic capture, BGRA → I420 (full and
//! damaged rows only), encode with each backend, decode with dav1d.
//!
//! `cargo bench -p peerdesk-benches --bench pipeline`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use peerdesk::capture::synthetic::{SyntheticConfig, SyntheticDesktop};
use peerdesk::convert::{bgra_to_i420, i420_to_rgba};
use peerdesk::decode::{Decoder, DecoderConfig};
use peerdesk::encode::{new_encoder, Backend, EncoderConfig, FrameOptions};
use peerdesk::frame::{Frame, PixelFormat, Rect};
use std::time::Duration;

const W: u32 = 1920;
const H: u32 = 1080;

fn desktop_i420(count: u64) -> Vec<Frame> {
    let mut desktop = SyntheticDesktop::new(SyntheticConfig::with_size(W, H)).unwrap();
    (0..count)
        .map(|n| {
            let bgra = desktop.render(n, n as u32 * 33);
            let mut yuv = Frame::new(PixelFormat::I420, W, H).unwrap();
            bgra_to_i420(&bgra.as_bgra_image().unwrap(), &mut yuv, None).unwrap();
            yuv.timestamp = Duration::from_millis(n * 33);
            yuv
        })
        .collect()
}

fn capture_and_convert(c: &mut Criterion) {
    let mut group = c.benchmark_group("convert_1080p");
    group.throughput(Throughput::Elements(1));
    let mut desktop = SyntheticDesktop::new(SyntheticConfig::with_size(W, H)).unwrap();
    let bgra = desktop.render(0, 0).clone();
    let image = bgra.as_bgra_image().unwrap();
    let mut yuv = Frame::new(PixelFormat::I420, W, H).unwrap();
    group.bench_function("bgra_to_i420_full", |b| {
        b.iter(|| bgra_to_i420(&image, &mut yuv, None).unwrap())
    });
    let cursor_blink = [Rect::new(1200, 300, 8, 16)];
    group.bench_function("bgra_to_i420_16_damaged_rows", |b| {
        b.iter(|| bgra_to_i420(&image, &mut yuv, Some(&cursor_blink)).unwrap())
    });
    let mut rgba = vec![0u8; (W * H * 4) as usize];
    let i420 = yuv.as_i420_image().unwrap();
    group.bench_function("i420_to_rgba", |b| {
        b.iter(|| i420_to_rgba(&i420, &mut rgba, W as usize * 4).unwrap())
    });
    let mut n = 1;
    group.bench_function("synthetic_capture_and_convert_damaged", |b| {
        b.iter(|| {
            let frame = desktop.render(n, 0);
            bgra_to_i420(&frame.as_bgra_image().unwrap(), &mut yuv, Some(&frame.damage)).unwrap();
            n += 1;
        })
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let frames = desktop_i420(60);
    for backend in Backend::available() {
        let mut group = c.benchmark_group(format!("encode_1080p_{backend}"));
        group.throughput(Throughput::Elements(1));
        if backend == Backend::Rav1e {
            group.sample_size(10).measurement_time(Duration::from_secs(10));
        }
        let config = EncoderConfig::new(W, H).bitrate(2_000_000).threads(2);
        let mut encoder = new_encoder(backend, &config).unwrap();
        let mut i = 0usize;
        group.bench_function("scrolling_desktop_frame", |b| {
            b.iter(|| {
                let frame = &frames[i % frames.len()];
                encoder
                    .send_frame(
                        frame,
                        FrameOptions {
                            keyframe: i == 0,
                            refresh: false,
                            keep_alive: false,
                        },
                    )
                    .unwrap();
                while encoder.receive_packet().unwrap().is_some() {}
                i += 1;
            })
        });
        group.finish();
    }
}

fn decode(c: &mut Criterion) {
    let frames = desktop_i420(120);
    let mut encoder = new_encoder(Backend::default_interactive(), &EncoderConfig::new(W, H)).unwrap();
    let mut packets = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        encoder
            .send_frame(
                frame,
                FrameOptions {
                    keyframe: i == 0,
                    refresh: false,
                    keep_alive: false,
                },
            )
            .unwrap();
        while let Some(p) = encoder.receive_packet().unwrap() {
            packets.push(p);
        }
    }
    let mut group = c.benchmark_group("decode_1080p_dav1d");
    group.throughput(Throughput::Elements(packets.len() as u64));
    group.sample_size(10);
    group.bench_function("120_desktop_frames", |b| {
        b.iter_batched(
            || Decoder::new(DecoderConfig::default()).unwrap(),
            |mut decoder| {
                for p in &packets {
                    assert!(decoder.decode(p.data.clone(), p.timestamp).unwrap().is_some());
                }
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, capture_and_convert, encode, decode);
criterion_main!(benches);
