//! The rav1e backend: pure Rust, portable, good quality at low frame rates.
//!
//! Speed 10, `low_latency`, one tile per thread, its own thread pool, keyframes only on request (no scene-cut
//! keyframes). rav1e keeps 3 frames in flight even so: the packet for frame N comes out when frame N+3 goes in.
//! [`Encoder::frames_in_flight`] reports that, and the pipeline drains it on a still screen by sending the last
//! picture again (each repeat costs one encode of an unchanged frame). rav1e cannot change its bitrate in place:
//! a change of more than 10 % drains the context and starts a new one, which begins with a keyframe.

use super::{check_bitrate, check_frame, Backend, EncodeError, Encoder, EncoderConfig, FrameOptions, Packet};
use crate::frame::Frame;
use bytes::Bytes;
use rav1e::prelude::{
    ChromaSampling, Config, Context, EncoderStatus, FrameParameters, FrameTypeOverride, Opaque, Rational,
    SceneDetectionSpeed, SpeedSettings,
};
use std::collections::VecDeque;
use std::time::Duration;

const DEFAULT_SPEED: u8 = 10;
/// rav1e's smallest picture side.
const MIN_SIDE: u32 = 16;

struct FrameMeta {
    timestamp: Duration,
    frame_index: u64,
}

pub(super) struct Rav1eEncoder {
    config: EncoderConfig,
    ctx: Context<u8>,
    pending: VecDeque<Packet>,
    frames_sent: u64,
    in_flight: usize,
    context_bitrate: u32,
}

fn codec_error(what: &str, status: impl std::fmt::Display) -> EncodeError {
    EncodeError::Codec {
        backend: Backend::Rav1e,
        message: format!("{what}: {status}"),
    }
}

fn new_context(config: &EncoderConfig) -> Result<Context<u8>, EncodeError> {
    let speed = config.speed.unwrap_or(DEFAULT_SPEED);
    let mut enc = rav1e::EncoderConfig::with_speed_preset(speed);
    enc.width = config.width as usize;
    enc.height = config.height as usize;
    enc.bit_depth = 8;
    enc.chroma_sampling = ChromaSampling::Cs420;
    enc.time_base = Rational::new(1, u64::from(config.fps));
    enc.low_latency = true;
    enc.min_key_frame_interval = 0;
    enc.max_key_frame_interval = 715_827_882; // rav1e's ceiling: keyframes only on request
    enc.bitrate = config.bitrate_bps.min(i32::MAX as u32) as i32;
    enc.reservoir_frame_delay = Some(12);
    enc.tile_cols = config.threads.next_power_of_two();
    enc.tile_rows = 1;
    enc.speed_settings = SpeedSettings::from_preset(speed);
    enc.speed_settings.rdo_lookahead_frames = 1;
    enc.speed_settings.scene_detection_mode = SceneDetectionSpeed::None;
    Config::new()
        .with_encoder_config(enc)
        .with_threads(config.threads)
        .new_context()
        .map_err(|e| EncodeError::InvalidConfig {
            field: "rav1e",
            reason: e.to_string(),
        })
}

impl Rav1eEncoder {
    pub(super) fn new(config: EncoderConfig) -> Result<Self, EncodeError> {
        for (field, value) in [("width", config.width), ("height", config.height)] {
            if value < MIN_SIDE {
                return Err(EncodeError::InvalidConfig {
                    field,
                    reason: format!("{value} is below rav1e's minimum of {MIN_SIDE} pixels"),
                });
            }
        }
        let ctx = new_context(&config)?;
        Ok(Rav1eEncoder {
            context_bitrate: config.bitrate_bps,
            config,
            ctx,
            pending: VecDeque::new(),
            frames_sent: 0,
            in_flight: 0,
        })
    }

    /// Moves every finished packet from the context into `pending`.
    fn drain_context(&mut self) -> Result<bool, EncodeError> {
        loop {
            match self.ctx.receive_packet() {
                Ok(packet) => {
                    self.in_flight = self.in_flight.saturating_sub(1);
                    let meta = packet
                        .opaque
                        .and_then(|o| o.downcast::<FrameMeta>().ok())
                        .map(|m| *m)
                        .unwrap_or(FrameMeta {
                            timestamp: Duration::ZERO,
                            frame_index: packet.input_frameno,
                        });
                    self.pending.push_back(Packet {
                        data: Bytes::from(packet.data),
                        keyframe: packet.frame_type == rav1e::prelude::FrameType::KEY,
                        timestamp: meta.timestamp,
                        frame_index: meta.frame_index,
                    });
                }
                Err(EncoderStatus::Encoded) => continue,
                Err(EncoderStatus::NeedMoreData) => return Ok(false),
                Err(EncoderStatus::LimitReached) => return Ok(true),
                Err(status) => return Err(codec_error("receive_packet", status)),
            }
        }
    }

    fn restart_with_bitrate(&mut self) -> Result<(), EncodeError> {
        self.ctx.flush();
        while !self.drain_context()? {}
        self.ctx = new_context(&self.config)?;
        self.context_bitrate = self.config.bitrate_bps;
        self.in_flight = 0;
        Ok(())
    }
}

impl Encoder for Rav1eEncoder {
    fn backend(&self) -> Backend {
        Backend::Rav1e
    }

    fn config(&self) -> &EncoderConfig {
        &self.config
    }

    fn send_frame(&mut self, frame: &Frame, options: FrameOptions) -> Result<(), EncodeError> {
        check_frame(frame, &self.config)?;
        let ratio = self.config.bitrate_bps as f64 / self.context_bitrate as f64;
        if !(0.9..=1.1).contains(&ratio) {
            self.restart_with_bitrate()?;
        }
        let mut input = self.ctx.new_frame();
        for (i, plane) in input.planes.iter_mut().enumerate() {
            plane.copy_from_raw_u8(frame.plane(i), frame.stride(i), 1);
        }
        let params = FrameParameters {
            frame_type_override: if options.keyframe {
                FrameTypeOverride::Key
            } else {
                FrameTypeOverride::No
            },
            opaque: Some(Opaque::new(FrameMeta {
                timestamp: frame.timestamp,
                frame_index: self.frames_sent,
            })),
            ..Default::default()
        };
        self.ctx
            .send_frame((input, params))
            .map_err(|s| codec_error("send_frame", s))?;
        self.frames_sent += 1;
        self.in_flight += 1;
        self.drain_context()?;
        Ok(())
    }

    fn receive_packet(&mut self) -> Result<Option<Packet>, EncodeError> {
        Ok(self.pending.pop_front())
    }

    fn set_bitrate(&mut self, bps: u32) -> Result<(), EncodeError> {
        check_bitrate(&self.config, bps)?;
        self.config.bitrate_bps = bps;
        Ok(())
    }

    fn frames_in_flight(&self) -> usize {
        self.in_flight
    }
}
