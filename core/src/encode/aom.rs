//! The libaom realtime backend: the one safe wrapper around libaom's encoder FFI.
//!
//! Settings follow Chrome Remote Desktop's and WebRTC's realtime screen profile: `AOM_USAGE_REALTIME`, cpu-used
//! 10, screen-content tune with palette, CBR, no lag, no automatic keyframes, cyclic-refresh AQ, row-mt and one
//! tile column per thread. A quality refresh lowers the quantiser ceiling for one frame.

use super::{check_bitrate, check_frame, Backend, EncodeError, Encoder, EncoderConfig, FrameOptions, Packet};
use crate::frame::Frame;
use bytes::Bytes;
use libaom_sys as ffi;
use std::collections::VecDeque;
use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::raw::c_int;

/// Quantiser ceiling during normal frames (libaom's 0–63 scale).
const MAX_QUANTIZER: u32 = 56;
/// Quantiser ceiling for a quality-refresh frame.
const REFRESH_MAX_QUANTIZER: u32 = 20;
/// Quantiser floor of normal and refresh frames.
const MIN_QUANTIZER: u32 = 2;

/// Realtime speed when the config names none: the fastest, as measured in the codec benchmark.
const DEFAULT_SPEED: u8 = 10;

/// The quantiser range (floor, ceiling) a frame is encoded with. A keep-alive is held at the ceiling: with the
/// whole range open, libaom's CBR rate control spent a quiet second's unused budget refining the unchanged
/// picture (keep-alives of 1–4 KB seen at 5 % loss, a still screen at 20–40 kbit/s), where repeating it costs
/// ~50 bytes.
fn quantizers(options: FrameOptions) -> (u32, u32) {
    if options.keep_alive && !options.keyframe {
        (MAX_QUANTIZER, MAX_QUANTIZER)
    } else if options.refresh {
        (MIN_QUANTIZER, REFRESH_MAX_QUANTIZER)
    } else {
        (MIN_QUANTIZER, MAX_QUANTIZER)
    }
}

/// The longest gap between two frames libaom's rate control is told of, in frame intervals at the configured rate.
const MAX_FRAME_GAP_INTERVALS: u64 = 2;

/// The presentation times libaom's rate control sees: the frames' own times, with every gap shortened to at most
/// [`MAX_FRAME_GAP_INTERVALS`] frame intervals. libaom takes its frame rate from the gaps and gives each frame
/// the target bitrate over that rate: a frame after a 600 ms wait (the sender's queue was long) got the budget of
/// 600 ms, and was 30–50 kB at 960×540 on a 500 kbit/s link (measured), so the wait made the next one longer. A
/// frame after a wait now gets at most two intervals' budget; the change it carries is refined by the next ones.
#[derive(Debug, Default)]
struct RateControlClock {
    /// The last frame's own time and the time libaom was given for it, in 90 kHz ticks.
    last: Option<(u64, u64)>,
}

impl RateControlClock {
    /// The time to give libaom for a frame at `timestamp` (90 kHz ticks) at `fps`.
    fn pts(&mut self, timestamp: u64, fps: u32) -> u64 {
        let interval = 90_000 / u64::from(fps.max(1));
        let pts = match self.last {
            None => timestamp,
            Some((last_timestamp, last_pts)) => {
                let gap = timestamp
                    .saturating_sub(last_timestamp)
                    .clamp(1, interval * MAX_FRAME_GAP_INTERVALS);
                last_pts + gap
            }
        };
        self.last = Some((timestamp, pts));
        pts
    }
}

pub(super) struct AomEncoder {
    ctx: Box<ffi::aom_codec_ctx_t>,
    cfg: Box<ffi::aom_codec_enc_cfg_t>,
    config: EncoderConfig,
    image: Box<ffi::aom_image_t>,
    pending: VecDeque<Packet>,
    frames_sent: u64,
    clock: RateControlClock,
    /// The quantiser range the encoder is configured with, (floor, ceiling).
    quantizers: (u32, u32),
}

// SAFETY: the libaom context is used from one thread at a time (`&mut self`) and owns no thread-bound state.
unsafe impl Send for AomEncoder {}

fn error_message(ctx: &ffi::aom_codec_ctx_t, what: &str) -> EncodeError {
    // SAFETY: libaom returns static or context-owned NUL-terminated strings, or NULL.
    let text = |p: *const std::os::raw::c_char| {
        if p.is_null() {
            String::new()
        } else {
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    };
    let error = text(unsafe { ffi::aom_codec_error(ctx) });
    let detail = text(unsafe { ffi::aom_codec_error_detail(ctx) });
    EncodeError::Codec {
        backend: Backend::Aom,
        message: format!("{what}: {error} {detail}").trim().to_string(),
    }
}

impl AomEncoder {
    pub(super) fn new(config: EncoderConfig) -> Result<Self, EncodeError> {
        // SAFETY: config_default fills the whole struct; we only read it after it returned OK.
        let mut cfg: Box<ffi::aom_codec_enc_cfg_t> = Box::new(unsafe { MaybeUninit::zeroed().assume_init() });
        let iface = unsafe { ffi::aom_codec_av1_cx() };
        let res = unsafe { ffi::aom_codec_enc_config_default(iface, cfg.as_mut(), ffi::AOM_USAGE_REALTIME) };
        if res != ffi::AOM_CODEC_OK {
            return Err(EncodeError::Codec {
                backend: Backend::Aom,
                message: format!("config_default failed ({res})"),
            });
        }
        cfg.g_w = config.width;
        cfg.g_h = config.height;
        cfg.g_threads = config.threads as u32;
        cfg.g_profile = 0;
        cfg.g_timebase = ffi::aom_rational { num: 1, den: 90_000 };
        cfg.g_lag_in_frames = 0;
        cfg.g_error_resilient = 0;
        cfg.rc_end_usage = ffi::AOM_CBR;
        cfg.rc_target_bitrate = (config.bitrate_bps / 1000).max(1);
        cfg.rc_min_quantizer = MIN_QUANTIZER;
        cfg.rc_max_quantizer = MAX_QUANTIZER;
        cfg.rc_undershoot_pct = 50;
        cfg.rc_overshoot_pct = 50;
        // The rate control's buffer, in ms of the target: how far a burst of frames may run over it. libwebrtc
        // uses 1,000/600/600; half that keeps the bursts a narrow link must queue shorter (measured at a 1 Mbit/s
        // cap, 1080p: half-seconds at 1.1-1.2 Mbit/s under an 800 kbit/s target, and p95 after 5 s 155-183 ms;
        // with 500/300/300, 59-129 ms).
        cfg.rc_buf_sz = 500;
        cfg.rc_buf_initial_sz = 300;
        cfg.rc_buf_optimal_sz = 300;
        cfg.rc_dropframe_thresh = 0;
        cfg.rc_resize_mode = 0;
        cfg.kf_mode = ffi::AOM_KF_DISABLED;
        cfg.kf_min_dist = 0;
        cfg.kf_max_dist = u32::MAX >> 1;

        // SAFETY: a zeroed context is the documented initial state for enc_init.
        let mut ctx: Box<ffi::aom_codec_ctx_t> = Box::new(unsafe { MaybeUninit::zeroed().assume_init() });
        let res = unsafe {
            ffi::aom_codec_enc_init_ver(
                ctx.as_mut(),
                iface,
                cfg.as_ref(),
                0,
                ffi::AOM_ENCODER_ABI_VERSION as c_int,
            )
        };
        if res != ffi::AOM_CODEC_OK {
            return Err(error_message(&ctx, "init"));
        }
        let tile_columns_log2 = match config.threads {
            0 | 1 => 0,
            2..=3 => 1,
            4..=7 => 2,
            _ => 3,
        };
        let speed = c_int::from(config.speed.unwrap_or(DEFAULT_SPEED));
        let controls: &[(u32, c_int)] = &[
            (ffi::AOME_SET_CPUUSED, speed),
            (
                ffi::AV1E_SET_TUNE_CONTENT,
                if config.screen_content {
                    ffi::AOM_CONTENT_SCREEN as c_int
                } else {
                    0
                },
            ),
            (ffi::AV1E_SET_ENABLE_PALETTE, c_int::from(config.screen_content)),
            (ffi::AV1E_SET_AQ_MODE, 3),
            (ffi::AV1E_SET_ROW_MT, 1),
            (ffi::AV1E_SET_TILE_COLUMNS, tile_columns_log2),
            (ffi::AV1E_SET_ENABLE_TPL_MODEL, 0),
            (ffi::AV1E_SET_DELTAQ_MODE, 0),
            (ffi::AV1E_SET_ENABLE_ORDER_HINT, 0),
            (ffi::AV1E_SET_ENABLE_GLOBAL_MOTION, 0),
            (ffi::AV1E_SET_ENABLE_WARPED_MOTION, 0),
            (ffi::AV1E_SET_ENABLE_OBMC, 0),
            (ffi::AV1E_SET_COEFF_COST_UPD_FREQ, 3),
            (ffi::AV1E_SET_MODE_COST_UPD_FREQ, 3),
            (ffi::AV1E_SET_MV_COST_UPD_FREQ, 3),
            (ffi::AOME_SET_MAX_INTRA_BITRATE_PCT, 300),
        ];
        let mut encoder = AomEncoder {
            ctx,
            cfg,
            image: Box::new(unsafe { MaybeUninit::zeroed().assume_init() }),
            config,
            pending: VecDeque::with_capacity(2),
            frames_sent: 0,
            clock: RateControlClock::default(),
            quantizers: (MIN_QUANTIZER, MAX_QUANTIZER),
        };
        for &(id, value) in controls {
            // SAFETY: every control above takes an int.
            let res = unsafe { ffi::aom_codec_control(encoder.ctx.as_mut(), id as c_int, value) };
            if res != ffi::AOM_CODEC_OK {
                return Err(error_message(&encoder.ctx, &format!("control {id}")));
            }
        }
        tracing::debug!(
            width = encoder.config.width,
            height = encoder.config.height,
            speed,
            "libaom encoder ready"
        );
        Ok(encoder)
    }

    fn apply_config(&mut self) -> Result<(), EncodeError> {
        // SAFETY: ctx is initialised; cfg is a complete configuration.
        let res = unsafe { ffi::aom_codec_enc_config_set(self.ctx.as_mut(), self.cfg.as_ref()) };
        if res != ffi::AOM_CODEC_OK {
            return Err(error_message(&self.ctx, "config_set"));
        }
        Ok(())
    }
}

impl Encoder for AomEncoder {
    fn backend(&self) -> Backend {
        Backend::Aom
    }

    fn config(&self) -> &EncoderConfig {
        &self.config
    }

    fn send_frame(&mut self, frame: &Frame, options: FrameOptions) -> Result<(), EncodeError> {
        check_frame(frame, &self.config)?;
        let quantizers = quantizers(options);
        if quantizers != self.quantizers {
            (self.cfg.rc_min_quantizer, self.cfg.rc_max_quantizer) = quantizers;
            self.apply_config()?;
            self.quantizers = quantizers;
        }
        let (w, h) = (frame.width(), frame.height());
        // SAFETY: wrap a descriptor (no allocation, data pointer replaced below) and point its planes at the
        // frame, which outlives the encode call; libaom only reads input planes.
        unsafe {
            ffi::aom_img_wrap(
                self.image.as_mut(),
                ffi::AOM_IMG_FMT_I420,
                w,
                h,
                1,
                frame.plane(0).as_ptr() as *mut u8,
            );
        }
        for i in 0..3 {
            self.image.planes[i] = frame.plane(i).as_ptr() as *mut u8;
            self.image.stride[i] = frame.stride(i) as c_int;
        }
        let timestamp = u64::try_from(frame.timestamp.as_nanos() * 9 / 100_000).unwrap_or(u64::MAX / 2);
        let pts = i64::try_from(self.clock.pts(timestamp, self.config.fps)).unwrap_or(i64::MAX);
        let duration = (90_000 / self.config.fps.max(1)) as std::os::raw::c_ulong;
        let flags = if options.keyframe {
            ffi::AOM_EFLAG_FORCE_KF as ffi::aom_enc_frame_flags_t
        } else {
            0
        };
        // SAFETY: ctx initialised, image describes valid planes of the configured size.
        let res = unsafe { ffi::aom_codec_encode(self.ctx.as_mut(), self.image.as_ref(), pts, duration, flags) };
        if res != ffi::AOM_CODEC_OK {
            return Err(error_message(&self.ctx, "encode"));
        }
        let frame_index = self.frames_sent;
        self.frames_sent += 1;
        let mut iter: ffi::aom_codec_iter_t = std::ptr::null();
        let mut data = Vec::new();
        let mut keyframe = false;
        loop {
            // SAFETY: iterating the encoder's packet list; each packet is valid until the next libaom call.
            let pkt = unsafe { ffi::aom_codec_get_cx_data(self.ctx.as_mut(), &mut iter) };
            if pkt.is_null() {
                break;
            }
            let pkt = unsafe { &*pkt };
            if pkt.kind != ffi::AOM_CODEC_CX_FRAME_PKT {
                continue;
            }
            // SAFETY: kind says the union holds a frame; buf/sz describe libaom's output buffer.
            let f = unsafe { pkt.data.frame };
            if f.sz > 0 && !f.buf.is_null() {
                data.extend_from_slice(unsafe { std::slice::from_raw_parts(f.buf as *const u8, f.sz) });
            }
            keyframe |= f.flags & ffi::AOM_FRAME_IS_KEY != 0;
        }
        if !data.is_empty() {
            self.pending.push_back(Packet {
                data: Bytes::from(data),
                keyframe,
                timestamp: frame.timestamp,
                frame_index,
            });
        }
        Ok(())
    }

    fn receive_packet(&mut self) -> Result<Option<Packet>, EncodeError> {
        Ok(self.pending.pop_front())
    }

    fn set_bitrate(&mut self, bps: u32) -> Result<(), EncodeError> {
        check_bitrate(&self.config, bps)?;
        self.cfg.rc_target_bitrate = (bps / 1000).max(1);
        self.apply_config()?;
        self.config.bitrate_bps = bps;
        Ok(())
    }

    fn frames_in_flight(&self) -> usize {
        0
    }
}

impl Drop for AomEncoder {
    fn drop(&mut self) {
        // SAFETY: ctx was initialised in `new` and is destroyed once.
        unsafe { ffi::aom_codec_destroy(self.ctx.as_mut()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_control_sees_gaps_of_two_intervals_at_most() {
        let mut clock = RateControlClock::default();
        // 30 fps: 3,000 ticks of 90 kHz a frame.
        assert_eq!(clock.pts(90_000, 30), 90_000);
        assert_eq!(clock.pts(93_000, 30), 93_000);
        // A frame 600 ms later is told of as two intervals later, and the next one follows it at its own gap.
        assert_eq!(clock.pts(93_000 + 54_000, 30), 99_000);
        assert_eq!(clock.pts(93_000 + 57_000, 30), 102_000);
        // Time never stands still or runs back for libaom, whatever the frames say.
        assert_eq!(clock.pts(150_000, 30), 102_001);
        assert_eq!(clock.pts(10, 30), 102_002);
    }
}
