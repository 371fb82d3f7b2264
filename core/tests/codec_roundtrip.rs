//! Encode → decode round trips of the synthetic desktop through every encoder backend, and bad input.

use bytes::Bytes;
use peerdesk::capture::stamp;
use peerdesk::capture::synthetic::{SyntheticConfig, SyntheticDesktop};
use peerdesk::convert::bgra_to_i420;
use peerdesk::decode::{DecodeError, Decoder, DecoderConfig};
use peerdesk::encode::{new_encoder, Backend, EncodeError, Encoder, EncoderConfig, FrameOptions, Packet};
use peerdesk::frame::{Frame, FrameError, PixelFormat};
use peerdesk::quality::psnr_y;
use std::time::Duration;

/// Renders pictures 0..count of the desktop as I420 frames with 30 fps timestamps.
fn desktop_frames(width: u32, height: u32, count: u64) -> Vec<Frame> {
    let mut desktop = SyntheticDesktop::new(SyntheticConfig::with_size(width, height)).unwrap();
    (0..count)
        .map(|n| {
            let bgra = desktop.render(n, 1_000 + n as u32 * 33);
            let mut yuv = Frame::new(PixelFormat::I420, width, height).unwrap();
            bgra_to_i420(&bgra.as_bgra_image().unwrap(), &mut yuv, None).unwrap();
            yuv.timestamp = Duration::from_millis(n * 33);
            yuv
        })
        .collect()
}

/// Encodes every frame, then pushes the encoder's delay out by repeating the last frame.
fn encode_all(encoder: &mut dyn Encoder, frames: &[Frame], keyframe_at: &[usize]) -> Vec<Packet> {
    let mut packets = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        let options = FrameOptions {
            keyframe: keyframe_at.contains(&i),
            refresh: false,
            keep_alive: false,
        };
        encoder.send_frame(frame, options).unwrap();
        while let Some(p) = encoder.receive_packet().unwrap() {
            packets.push(p);
        }
    }
    let last = frames.last().unwrap();
    let mut guard = 0;
    while packets
        .last()
        .is_none_or(|p| (p.frame_index as usize) < frames.len() - 1)
    {
        encoder.send_frame(last, FrameOptions::default()).unwrap();
        while let Some(p) = encoder.receive_packet().unwrap() {
            packets.push(p);
        }
        guard += 1;
        assert!(guard < 10, "encoder never released its last frame");
    }
    packets.truncate(frames.len());
    packets
}

/// Decodes every packet, asserting one picture per temporal unit; returns the mean and minimum PSNR-Y.
fn decode_and_compare(packets: &[Packet], frames: &[Frame]) -> (f64, f64) {
    let mut decoder = Decoder::new(DecoderConfig::default()).unwrap();
    let mut sum = 0.0;
    let mut min = f64::INFINITY;
    for (i, packet) in packets.iter().enumerate() {
        let picture = decoder
            .decode(packet.data.clone(), packet.timestamp)
            .unwrap()
            .unwrap_or_else(|| panic!("temporal unit {i} gave no picture"));
        let source = &frames[packet.frame_index as usize];
        let psnr = psnr_y(&picture.as_i420().unwrap(), &source.as_i420_image().unwrap())
            .unwrap()
            .min(99.0);
        sum += psnr;
        min = min.min(psnr);
    }
    (sum / packets.len() as f64, min)
}

fn round_trip(backend: Backend, width: u32, height: u32, count: u64, bitrate: u32, min_mean_psnr: f64) {
    let frames = desktop_frames(width, height, count);
    let config = EncoderConfig::new(width, height).bitrate(bitrate);
    let mut encoder = new_encoder(backend, &config).unwrap();
    let packets = encode_all(encoder.as_mut(), &frames, &[0]);
    assert_eq!(packets.len(), frames.len(), "{backend}: one temporal unit per frame");
    assert!(packets[0].keyframe, "{backend}: first frame is a keyframe");
    assert!(
        packets[1..].iter().all(|p| !p.keyframe),
        "{backend}: no keyframe unless asked for"
    );
    for (i, p) in packets.iter().enumerate() {
        assert_eq!(p.frame_index, i as u64, "{backend}: packets in order");
        assert_eq!(p.timestamp, frames[i].timestamp, "{backend}: timestamp carried");
    }
    let (mean, min) = decode_and_compare(&packets, &frames);
    eprintln!("{backend} {width}x{height}: mean PSNR-Y {mean:.2} dB, min {min:.2} dB");
    assert!(
        mean >= min_mean_psnr,
        "{backend} {width}x{height}: mean PSNR-Y {mean:.2} < {min_mean_psnr}"
    );
}

#[test]
fn aom_1080p_round_trip_keeps_quality() {
    round_trip(Backend::Aom, 1920, 1080, 20, 2_000_000, 45.0);
}

#[test]
fn rav1e_1080p_round_trip_keeps_quality() {
    round_trip(Backend::Rav1e, 1920, 1080, 8, 2_000_000, 38.0);
}

#[test]
fn odd_sizes_round_trip_with_every_backend() {
    for backend in Backend::available() {
        for (w, h) in [(333, 199), (97, 61), (17, 17)] {
            round_trip(backend, w, h, 6, 500_000, 35.0);
        }
    }
    // libaom takes any size; rav1e needs 16x16 at least and says so.
    round_trip(Backend::Aom, 17, 9, 6, 500_000, 35.0);
    let tiny = new_encoder(Backend::Rav1e, &EncoderConfig::new(17, 9));
    assert!(
        matches!(tiny, Err(EncodeError::InvalidConfig { field: "height", .. })),
        "{:?}",
        tiny.err()
    );
}

#[test]
fn keyframe_on_request_produces_a_keyframe() {
    for backend in Backend::available() {
        let frames = desktop_frames(320, 240, 8);
        let mut encoder = new_encoder(backend, &EncoderConfig::new(320, 240)).unwrap();
        let packets = encode_all(encoder.as_mut(), &frames, &[0, 5]);
        let keyframes: Vec<u64> = packets.iter().filter(|p| p.keyframe).map(|p| p.frame_index).collect();
        assert_eq!(keyframes, vec![0, 5], "{backend}");
        // A decoder that joins at the requested keyframe decodes from there on.
        let mut late = Decoder::new(DecoderConfig::default()).unwrap();
        for p in &packets[5..] {
            assert!(late.decode(p.data.clone(), p.timestamp).unwrap().is_some(), "{backend}");
        }
    }
}

#[test]
fn frame_stamp_survives_the_round_trip() {
    for backend in Backend::available() {
        let frames = desktop_frames(640, 360, 6);
        let mut encoder = new_encoder(backend, &EncoderConfig::new(640, 360).bitrate(800_000)).unwrap();
        let packets = encode_all(encoder.as_mut(), &frames, &[0]);
        let mut decoder = Decoder::new(DecoderConfig::default()).unwrap();
        for p in &packets {
            let picture = decoder.decode(p.data.clone(), p.timestamp).unwrap().unwrap();
            let frame = picture.to_frame().unwrap();
            let read = stamp::read_i420(&frame).expect("stamp readable after decode");
            assert_eq!(read.frame_number as u64, p.frame_index, "{backend}");
            assert_eq!(read.capture_millis, 1_000 + p.frame_index as u32 * 33, "{backend}");
        }
    }
}

#[test]
fn runtime_bitrate_change_takes_effect() {
    for backend in Backend::available() {
        let frames = desktop_frames(640, 360, 40);
        let mut encoder = new_encoder(backend, &EncoderConfig::new(640, 360).bitrate(250_000)).unwrap();
        let mut sizes = [0usize; 2];
        let mut decoder = Decoder::new(DecoderConfig::default()).unwrap();
        for (i, frame) in frames.iter().enumerate() {
            if i == 20 {
                encoder.set_bitrate(40_000).unwrap();
            }
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
                // Skip the first frames of each half: keyframes and rate-control settling.
                let half = (p.frame_index / 20) as usize;
                if p.frame_index % 20 >= 8 {
                    sizes[half] += p.data.len();
                }
                decoder.decode(p.data, p.timestamp).unwrap();
            }
        }
        assert_eq!(encoder.config().bitrate_bps, 40_000);
        assert!(
            sizes[1] * 4 < sizes[0] * 3,
            "{backend}: bytes before/after lowering the bitrate: {sizes:?}"
        );
        assert!(matches!(
            encoder.set_bitrate(0),
            Err(EncodeError::InvalidConfig {
                field: "bitrate_bps",
                ..
            })
        ));
    }
}

#[test]
fn encoders_refuse_wrong_frames_with_typed_errors() {
    for backend in Backend::available() {
        let mut encoder = new_encoder(backend, &EncoderConfig::new(64, 48)).unwrap();
        let bgra = Frame::new(PixelFormat::Bgra, 64, 48).unwrap();
        assert!(matches!(
            encoder.send_frame(&bgra, FrameOptions::default()),
            Err(EncodeError::Frame(FrameError::WrongFormat { .. }))
        ));
        let small = Frame::new(PixelFormat::I420, 32, 48).unwrap();
        assert!(matches!(
            encoder.send_frame(&small, FrameOptions::default()),
            Err(EncodeError::Frame(FrameError::SizeMismatch(32, 48, 64, 48)))
        ));
        for bad in [
            EncoderConfig::new(0, 48),
            EncoderConfig::new(64, 48).fps(0),
            EncoderConfig::new(64, 48).threads(0),
        ] {
            assert!(new_encoder(backend, &bad).is_err(), "{backend}: {bad:?} accepted");
        }
    }
}

#[test]
fn corrupt_and_truncated_av1_give_typed_errors_and_the_decoder_recovers() {
    let frames = desktop_frames(320, 240, 4);
    let mut encoder = new_encoder(Backend::default_interactive(), &EncoderConfig::new(320, 240)).unwrap();
    let packets = encode_all(encoder.as_mut(), &frames, &[0, 3]);
    let key = packets[0].data.clone();
    let mut decoder = Decoder::new(DecoderConfig::default()).unwrap();

    assert_eq!(
        decoder.decode(Bytes::new(), Duration::ZERO).unwrap_err(),
        DecodeError::Empty
    );
    let garbage = Bytes::from((0..4000u32).map(|i| (i * 7919 % 251) as u8).collect::<Vec<_>>());
    let truncated = key.slice(..key.len() / 3);
    let mut flipped = key.to_vec();
    for b in flipped.iter_mut().skip(40).step_by(13) {
        *b ^= 0x5a;
    }
    for bad in [
        garbage,
        truncated,
        Bytes::from(flipped),
        Bytes::from_static(&[0x12, 0x00, 0x0a, 0xff, 0xff]),
    ] {
        match decoder.decode(bad, Duration::ZERO) {
            Err(DecodeError::InvalidData(_)) | Ok(None) => {}
            Ok(Some(_)) => {} // dav1d may conceal damage in a decodable unit; it must not panic.
            Err(other) => panic!("unexpected error kind {other:?}"),
        }
    }
    // The next keyframe decodes cleanly, pixel-exact to a fresh decoder's output.
    decoder.reset();
    let recovered = decoder
        .decode(packets[3].data.clone(), Duration::ZERO)
        .unwrap()
        .unwrap();
    let mut fresh = Decoder::new(DecoderConfig::default()).unwrap();
    let reference = fresh.decode(packets[3].data.clone(), Duration::ZERO).unwrap().unwrap();
    assert_eq!(
        recovered.to_frame().unwrap().as_bytes(),
        reference.to_frame().unwrap().as_bytes()
    );
}

#[test]
fn wrong_decoded_destination_is_a_typed_error() {
    let frames = desktop_frames(64, 48, 1);
    let mut encoder = new_encoder(Backend::default_interactive(), &EncoderConfig::new(64, 48)).unwrap();
    let packets = encode_all(encoder.as_mut(), &frames, &[0]);
    let mut decoder = Decoder::new(DecoderConfig::default()).unwrap();
    let picture = decoder
        .decode(packets[0].data.clone(), Duration::ZERO)
        .unwrap()
        .unwrap();
    let mut small = vec![0u8; 100];
    assert!(matches!(
        picture.write_rgba(&mut small, 256),
        Err(DecodeError::Convert(_))
    ));
    let mut rgba = vec![0u8; 64 * 48 * 4];
    picture.write_rgba(&mut rgba, 256).unwrap();
}

#[test]
fn pictures_larger_than_the_limit_are_refused_before_they_are_allocated() {
    // Security review M2: no limit meant a hostile stream could announce 65536 × 65536.
    let frames = desktop_frames(640, 360, 1);
    let mut encoder = new_encoder(Backend::default_interactive(), &EncoderConfig::new(640, 360)).unwrap();
    let key = encode_all(encoder.as_mut(), &frames, &[0])[0].data.clone();
    let small_limit = DecoderConfig {
        max_picture_pixels: 320 * 180,
        ..DecoderConfig::default()
    };
    let mut limited = Decoder::new(small_limit).unwrap();
    assert!(
        matches!(
            limited.decode(key.clone(), Duration::ZERO),
            Err(DecodeError::InvalidData(_))
        ),
        "a 640x360 picture must be refused under a 320x180 limit"
    );
    let mut default = Decoder::new(DecoderConfig::default()).unwrap();
    let picture = default.decode(key, Duration::ZERO).unwrap().unwrap();
    assert_eq!((picture.width(), picture.height()), (640, 360));
}

/// A still screen costs next to nothing: after a keyframe and a few moving frames at a low quality, the
/// keep-alives of the unchanged picture (one a second) stay tiny. Before keep-alives held libaom's quantiser at
/// its ceiling, its CBR rate control spent the quiet second's budget refining the picture in them.
#[test]
fn aom_keep_alives_of_a_still_picture_stay_tiny() {
    let frames = desktop_frames(1280, 720, 6);
    let mut encoder = new_encoder(Backend::Aom, &EncoderConfig::new(1280, 720).bitrate(1_000_000)).unwrap();
    let mut packets = encode_all(encoder.as_mut(), &frames, &[0]);
    let still = frames.last().unwrap();
    let mut sizes = Vec::new();
    for second in 1..=5u64 {
        let mut frame = still.clone();
        frame.timestamp = still.timestamp + Duration::from_secs(second);
        let options = FrameOptions {
            keep_alive: true,
            ..FrameOptions::default()
        };
        encoder.send_frame(&frame, options).unwrap();
        while let Some(p) = encoder.receive_packet().unwrap() {
            sizes.push(p.data.len());
            packets.push(p);
        }
    }
    assert_eq!(sizes.len(), 5, "one temporal unit per keep-alive");
    assert!(sizes.iter().all(|&s| s <= 200), "keep-alive sizes {sizes:?} bytes");
    // They still decode, as repeats of the picture.
    let mut decoder = Decoder::new(DecoderConfig::default()).unwrap();
    for p in &packets {
        decoder.decode(p.data.clone(), Duration::ZERO).unwrap();
    }
}
