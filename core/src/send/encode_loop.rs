//! The send side's one thread: paces grabs from the screen source (at most `fps` a second, each as soon as the
//! screen changes), runs the encode pipeline, and hands every encoded frame to the fan-out; it also turns the
//! source's cursor into updates for the viewers. It takes commands (keyframe, bitrate, stop) between frames.

use super::backlog::ViewerBacklogs;
use super::cursor::{next_update, CursorUpdate};
use crate::capture::ScreenSource;
use crate::encode::Decision;
use crate::pipeline::EncodePipeline;
use crate::ratelimit::TokenBucket;
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, watch};

/// A frame ready to packetize.
#[derive(Debug, Clone)]
pub(crate) struct OutFrame {
    pub(crate) data: Bytes,
    pub(crate) encoded_at: Instant,
    /// When its picture was captured, on the source's clock: travels to the viewer's decoded frame.
    pub(crate) captured: Duration,
    pub(crate) keyframe: bool,
}

/// What the encode thread is asked to do between frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EncoderCommand {
    Keyframe,
    Bitrate(u32),
    Stop,
}

/// Commands waiting for the encode thread, at most. It drains them before every frame, so a full queue means a
/// flood: a further keyframe request or bitrate change is dropped (one already queued does the same job, and the
/// next estimate brings the bitrate again); [`EncoderCommands::stop`] waits for room.
pub(crate) const ENCODER_QUEUE: usize = 64;

/// The sending side of the encode thread's command queue.
#[derive(Debug, Clone)]
pub(crate) struct EncoderCommands(std::sync::mpsc::SyncSender<EncoderCommand>);

impl EncoderCommands {
    /// A new queue of [`ENCODER_QUEUE`] commands.
    pub(crate) fn new() -> (Self, std::sync::mpsc::Receiver<EncoderCommand>) {
        let (tx, rx) = std::sync::mpsc::sync_channel(ENCODER_QUEUE);
        (EncoderCommands(tx), rx)
    }

    /// Queues `command`, or drops it when the queue is full (see [`ENCODER_QUEUE`]) or the thread has ended.
    pub(crate) fn send(&self, command: EncoderCommand) {
        if let Err(std::sync::mpsc::TrySendError::Full(command)) = self.0.try_send(command) {
            tracing::debug!(?command, "encoder command queue full; command dropped");
        }
    }

    /// Stops the thread, waiting for room in the queue.
    pub(crate) fn stop(&self) {
        let _ = self.0.send(EncoderCommand::Stop);
    }
}

/// What the send side counts, for the host's stats, and the viewers' backlogs it reads.
#[derive(Debug, Default)]
pub(crate) struct SendCounters {
    /// The media each viewer's congestion window holds back: changed pictures wait while it is long.
    pub(crate) backlogs: Arc<ViewerBacklogs>,
    /// Viewers whose video runs: with none, nothing is captured or encoded.
    pub(crate) watchers: AtomicUsize,
    pub(crate) frames: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) target_bitrate: AtomicU64,
    pub(crate) encode_time_us: AtomicU64,
    pub(crate) keyframes: AtomicU64,
}

/// The encode thread: runs until [`EncoderCommand::Stop`], the command queue's sender is gone, or the source ends.
pub(crate) fn encode_thread(
    mut source: Box<dyn ScreenSource>,
    mut pipeline: EncodePipeline,
    fps: u32,
    commands: std::sync::mpsc::Receiver<EncoderCommand>,
    frames: broadcast::Sender<OutFrame>,
    cursor: watch::Sender<Option<CursorUpdate>>,
    counters: Arc<SendCounters>,
) {
    let interval = Duration::from_secs_f64(1.0 / f64::from(fps.max(1)));
    let started = Instant::now();
    let mut next_tick = Instant::now();
    let mut packets = Vec::new();
    let mut encode_times: VecDeque<u64> = VecDeque::with_capacity(32);
    let mut tick = 0u64;
    // Two grabs of burst: a screen that changes at `fps` is grabbed right after each change, whatever the phase.
    let mut grabs = TokenBucket::new(2.0, f64::from(fps.max(1)), started);
    let (width, height) = source.size();
    loop {
        loop {
            match commands.try_recv() {
                Ok(EncoderCommand::Keyframe) => pipeline.request_keyframe(),
                Ok(EncoderCommand::Bitrate(bps)) => {
                    if let Err(e) = pipeline.set_bitrate(bps) {
                        tracing::warn!("bitrate change refused: {e}");
                    }
                }
                Ok(EncoderCommand::Stop) | Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
            }
        }
        if counters.watchers.load(Ordering::Relaxed) == 0 {
            crate::capture::sleep_until(next_tick);
            next_tick = Instant::now() + interval;
            continue; // nobody watches: no capture, no encode
        }
        // At most `fps` grabs a second on average, each as soon as the screen changes (sources that can tell wake
        // us), else at the next tick (sources that cannot; the controller's timed work on a still screen). Waking
        // on change keeps the grab just behind the application's drawing instead of up to an interval later.
        crate::capture::sleep_until(grabs.available_at(Instant::now()));
        let changed = match source.wait_for_change(next_tick) {
            Ok(changed) => changed,
            Err(e) if e.is_final() => {
                tracing::info!("screen source ended ({e}); stopping capture");
                return;
            }
            Err(e) => {
                tracing::warn!("waiting for screen changes failed: {e}");
                crate::capture::sleep_until(next_tick);
                false
            }
        };
        let now = Instant::now();
        if changed {
            next_tick = now + interval;
        }
        while next_tick <= now {
            next_tick += interval;
        }
        tick += 1;
        let captured = match source.capture() {
            Ok(c) => c,
            Err(e) if e.is_final() => {
                tracing::info!("screen source ended ({e}); stopping capture");
                return;
            }
            Err(e) => {
                tracing::warn!("capture failed: {e}");
                None
            }
        };
        if changed || captured.is_some() {
            grabs.try_take(now);
        }
        pipeline.set_send_backlog(counters.backlogs.longest());
        let report = match pipeline.tick(started.elapsed(), captured, &mut packets) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("encode failed: {e}");
                pipeline.request_keyframe();
                continue;
            }
        };
        if report.decision != Decision::Skip {
            encode_times.push_back(report.encode_time.as_micros() as u64);
            if encode_times.len() > 30 {
                encode_times.pop_front();
            }
            let mean = encode_times.iter().sum::<u64>() / encode_times.len() as u64;
            counters.encode_time_us.store(mean, Ordering::Relaxed);
        }
        let encoded_at = Instant::now();
        if !packets.is_empty() {
            tracing::trace!(
                decision = ?report.decision,
                drain_repeats = report.drain_repeats,
                bytes = packets.iter().map(|p| p.data.len()).sum::<usize>(),
                "encoded"
            );
        }
        for packet in packets.drain(..) {
            counters.frames.fetch_add(1, Ordering::Relaxed);
            counters.bytes.fetch_add(packet.data.len() as u64, Ordering::Relaxed);
            if packet.keyframe {
                counters.keyframes.fetch_add(1, Ordering::Relaxed);
            }
            let _ = frames.send(OutFrame {
                data: packet.data,
                encoded_at,
                captured: packet.timestamp,
                keyframe: packet.keyframe,
            });
        }
        if tick % 2 == 0 {
            if let Ok(Some(state)) = source.cursor() {
                cursor.send_if_modified(|current| match next_update(&state, (width, height), current.as_ref()) {
                    Some(update) => {
                        *current = Some(update);
                        true
                    }
                    None => false,
                });
            }
        }
    }
}
