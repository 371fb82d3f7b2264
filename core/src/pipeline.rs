//! The sending half of the data path in one place: captured picture → convert → decide → encode → packets.
//!
//! [`EncodePipeline`] is what the demo, the benchmarks and the session host drive once per capture tick. It keeps
//! one I420 buffer that it updates with only the damaged rows, lets the [`EncodeController`] decide, applies the
//! controller's adaptation (frame-rate cut, half-size encode for a slow encoder or a low bitrate), drains
//! rav1e's frame delay on still screens, and recreates the encoder when the picture size changes.

use crate::capture::Captured;
use crate::convert::{self, ConvertError};
use crate::encode::{
    new_encoder, Backend, ControllerConfig, Decision, EncodeController, EncodeError, Encoder, EncoderConfig,
    FrameOptions, Packet,
};
use crate::frame::{Frame, PixelFormat};
use std::time::{Duration, Instant};

/// Errors from the encode pipeline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// Conversion failed.
    #[error(transparent)]
    Convert(#[from] ConvertError),
    /// Encoding failed.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// What one tick did, for statistics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TickReport {
    /// The controller's decision.
    pub decision: Decision,
    /// Time spent converting to I420.
    pub convert_time: Duration,
    /// Time spent in the encoder (including drain repeats).
    pub encode_time: Duration,
    /// Pictures sent again only to drain the encoder's delay.
    pub drain_repeats: u32,
}

/// Capture → convert → encode, driven once per tick.
pub struct EncodePipeline {
    backend: Backend,
    config: EncoderConfig,
    encoder: Option<Box<dyn Encoder>>,
    encoder_downscaled: bool,
    controller: EncodeController,
    i420: Frame,
    half: Frame,
    have_picture: bool,
    frames_sent: u64,
    last_real_index: Option<u64>,
    last_output_index: Option<u64>,
}

impl std::fmt::Debug for EncodePipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodePipeline")
            .field("backend", &self.backend)
            .field("config", &self.config)
            .finish()
    }
}

impl EncodePipeline {
    /// A pipeline for pictures of `config`'s size (it follows size changes of the source).
    pub fn new(backend: Backend, config: EncoderConfig, controller: ControllerConfig) -> Result<Self, PipelineError> {
        config.validate()?;
        let mut controller = EncodeController::new(controller);
        controller.set_target_bitrate(config.bitrate_bps);
        controller.set_picture_size(config.width, config.height);
        Ok(EncodePipeline {
            backend,
            i420: Frame::new(PixelFormat::I420, config.width, config.height).map_err(EncodeError::from)?,
            half: Frame::new(PixelFormat::I420, 2, 2).map_err(EncodeError::from)?,
            config,
            encoder: None,
            encoder_downscaled: false,
            controller,
            have_picture: false,
            frames_sent: 0,
            last_real_index: None,
            last_output_index: None,
        })
    }

    /// The encoder backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The most recent full-size I420 picture.
    pub fn current_picture(&self) -> &Frame {
        &self.i420
    }

    /// The controller, for its adaptation state.
    pub fn controller(&self) -> &EncodeController {
        &self.controller
    }

    /// Asks for a keyframe on the next tick.
    pub fn request_keyframe(&mut self) {
        self.controller.request_keyframe();
    }

    /// Changes the target bitrate.
    pub fn set_bitrate(&mut self, bps: u32) -> Result<(), PipelineError> {
        EncoderConfig {
            bitrate_bps: bps,
            ..self.config.clone()
        }
        .validate()?;
        self.config.bitrate_bps = bps;
        self.controller.set_target_bitrate(bps);
        if let Some(encoder) = self.encoder.as_mut() {
            encoder.set_bitrate(bps)?;
        }
        Ok(())
    }

    /// Notes how long the slowest viewer's sender queue is (see [`EncodeController::set_send_backlog`]).
    pub fn set_send_backlog(&mut self, backlog: Duration) {
        self.controller.set_send_backlog(backlog);
    }

    /// Frames the encoder holds that have not come out yet.
    pub fn frames_in_flight(&self) -> usize {
        self.encoder.as_ref().map_or(0, |e| e.frames_in_flight())
    }

    /// Runs one tick at time `now`: converts `captured` (if the source had a new picture), decides, encodes,
    /// and appends finished packets to `out`.
    pub fn tick(
        &mut self,
        now: Duration,
        captured: Option<Captured<'_>>,
        out: &mut Vec<Packet>,
    ) -> Result<TickReport, PipelineError> {
        let mut report = TickReport {
            decision: Decision::Skip,
            convert_time: Duration::ZERO,
            encode_time: Duration::ZERO,
            drain_repeats: 0,
        };
        let mut changed = false;
        if let Some(captured) = captured {
            let started = Instant::now();
            let resized = captured.image.width() != self.i420.width() || captured.image.height() != self.i420.height();
            let damage = if resized || !self.have_picture {
                None
            } else {
                Some(captured.damage)
            };
            convert::bgra_to_i420(&captured.image, &mut self.i420, damage)?;
            self.i420.timestamp = captured.timestamp;
            report.convert_time = started.elapsed();
            self.have_picture = true;
            changed = true;
            if resized {
                self.config.width = captured.image.width();
                self.config.height = captured.image.height();
                self.controller.set_picture_size(self.config.width, self.config.height);
                self.encoder = None;
                self.controller.request_keyframe();
            }
        }
        if !self.have_picture {
            return Ok(report);
        }
        let decision = self.controller.tick(now, changed);
        report.decision = decision;
        let started = Instant::now();
        let before = out.len();
        let options = match decision {
            Decision::Skip => {
                report.drain_repeats = self.drain(out)?;
                report.encode_time = started.elapsed();
                self.record_sent(now, &out[before..]);
                return Ok(report);
            }
            Decision::Encode { keyframe } => FrameOptions {
                keyframe,
                ..FrameOptions::default()
            },
            Decision::Refresh => FrameOptions {
                refresh: true,
                ..FrameOptions::default()
            },
            Decision::KeepAlive => FrameOptions {
                keep_alive: true,
                ..FrameOptions::default()
            },
        };
        self.encode_current(options, out)?;
        self.record_sent(now, &out[before..]);
        if matches!(decision, Decision::Encode { .. }) {
            self.last_real_index = Some(self.frames_sent - 1);
        }
        report.encode_time = started.elapsed();
        // Keyframes are slow by nature; only the steady state says whether the encoder keeps up.
        if matches!(decision, Decision::Encode { keyframe: true }) {
            return Ok(report);
        }
        if let Some(adaptation) = self.controller.record_encode_time(report.encode_time) {
            if adaptation.downscale != self.encoder_downscaled {
                self.encoder = None;
            }
        }
        Ok(report)
    }

    fn record_sent(&mut self, now: Duration, packets: &[Packet]) {
        let bytes = packets.iter().map(|p| p.data.len()).sum();
        if bytes > 0 {
            self.controller.record_sent(now, bytes);
        }
    }

    fn ensure_encoder(&mut self) -> Result<(), PipelineError> {
        let downscale = self.controller.adaptation().downscale;
        if self.encoder.is_none() || self.encoder_downscaled != downscale {
            let (w, h) = if downscale {
                (self.config.width.div_ceil(2), self.config.height.div_ceil(2))
            } else {
                (self.config.width, self.config.height)
            };
            let config = EncoderConfig {
                width: w,
                height: h,
                ..self.config.clone()
            };
            self.encoder = Some(new_encoder(self.backend, &config)?);
            self.encoder_downscaled = downscale;
            self.frames_sent = 0;
            self.last_real_index = None;
            self.last_output_index = None;
        }
        Ok(())
    }

    fn encode_current(&mut self, mut options: FrameOptions, out: &mut Vec<Packet>) -> Result<(), PipelineError> {
        let fresh = self.encoder.is_none() || self.encoder_downscaled != self.controller.adaptation().downscale;
        self.ensure_encoder()?;
        if fresh {
            options.keyframe = true;
        }
        let encoder = self.encoder.as_mut().expect("encoder exists after ensure_encoder");
        if self.encoder_downscaled {
            convert::downscale_i420_half(&self.i420.as_i420_image().map_err(EncodeError::from)?, &mut self.half)?;
            self.half.timestamp = self.i420.timestamp;
            encoder.send_frame(&self.half, options)?;
        } else {
            encoder.send_frame(&self.i420, options)?;
        }
        self.frames_sent += 1;
        while let Some(packet) = encoder.receive_packet()? {
            self.last_output_index = Some(packet.frame_index);
            out.push(packet);
        }
        Ok(())
    }

    /// On a still tick, pushes the last real picture out of a delaying encoder (rav1e) by sending the current
    /// picture again until the packet of the last real picture has come out.
    fn drain(&mut self, out: &mut Vec<Packet>) -> Result<u32, PipelineError> {
        let mut repeats = 0;
        while let Some(real) = self.last_real_index {
            if self.last_output_index.is_some_and(|o| o >= real) || self.frames_in_flight() == 0 {
                break;
            }
            self.encode_current(FrameOptions::default(), out)?;
            repeats += 1;
            if repeats > 16 {
                break;
            }
        }
        Ok(repeats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::synthetic::{SyntheticConfig, SyntheticDesktop};
    use crate::frame::Rect;

    fn captured(frame: &Frame) -> Captured<'_> {
        Captured {
            image: frame.as_bgra_image().unwrap(),
            damage: &frame.damage,
            timestamp: frame.timestamp,
        }
    }

    #[test]
    fn still_screen_costs_no_encode_for_every_backend() {
        for backend in Backend::available() {
            let config = EncoderConfig::new(320, 240);
            let controller = ControllerConfig {
                refresh_after: None,
                keep_alive: None,
                ..Default::default()
            };
            let mut pipeline = EncodePipeline::new(backend, config, controller).unwrap();
            let mut desktop = SyntheticDesktop::new(SyntheticConfig::with_size(320, 240)).unwrap();
            let mut out = Vec::new();
            let first = desktop.render(0, 0).clone();
            let r = pipeline.tick(Duration::ZERO, Some(captured(&first)), &mut out).unwrap();
            assert_eq!(r.decision, Decision::Encode { keyframe: true });
            // Drain whatever delay the backend has, then nothing more happens.
            for t in 1..5 {
                pipeline.tick(Duration::from_millis(t * 33), None, &mut out).unwrap();
            }
            assert!(out.iter().any(|p| p.keyframe), "{backend}: keyframe out after drain");
            let before = out.len();
            for t in 5..40 {
                let r = pipeline.tick(Duration::from_millis(t * 33), None, &mut out).unwrap();
                assert_eq!(r.decision, Decision::Skip);
                assert_eq!(r.drain_repeats, 0, "{backend}");
            }
            assert_eq!(out.len(), before, "{backend}: a still screen produced packets");
        }
    }

    #[test]
    fn damage_outside_stamp_is_converted_partially_and_correctly() {
        let config = EncoderConfig::new(64, 64);
        let mut pipeline =
            EncodePipeline::new(Backend::default_interactive(), config, ControllerConfig::default()).unwrap();
        let mut frame = Frame::new(PixelFormat::Bgra, 64, 64).unwrap();
        let mut out = Vec::new();
        pipeline.tick(Duration::ZERO, Some(captured(&frame)), &mut out).unwrap();
        for b in &mut frame.plane_mut(0)[10 * 256..12 * 256] {
            *b = 200;
        }
        frame.damage = vec![Rect::new(0, 10, 64, 2)];
        pipeline
            .tick(Duration::from_millis(33), Some(captured(&frame)), &mut out)
            .unwrap();
        let mut expected = Frame::new(PixelFormat::I420, 64, 64).unwrap();
        convert::bgra_to_i420(&frame.as_bgra_image().unwrap(), &mut expected, None).unwrap();
        assert_eq!(pipeline.current_picture().as_bytes(), expected.as_bytes());
    }
}
