//! The edge of the receive side: one task reads the video track's RTP packets into a [`VideoReceiver`] and sends
//! its NACKs and keyframe requests as RTCP; one thread decodes. Decisions live in [`VideoReceiver`]; this module
//! only moves packets, bytes and time.

use super::assembler::AssembledFrame;
use super::video::{ReceiveOutput, VideoReceiver};
use crate::capture::wall_clock;
use crate::decode::{DecodedFrame, Decoder, DecoderConfig};
use crate::session::FrameQueue;
use crate::transport::capture_time::{self, CaptureTimes};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{nack_pairs_from_sequence_numbers, TransportLayerNack};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

/// Assembled frames waiting for the decoder thread: one second at 30 fps. A repaired packet releases every
/// frame held behind it at once, up to [`LossConfig::max_wait`](super::loss::LossConfig::max_wait) (1 s) of
/// them, and dropping one of those breaks the reference chain of all that follow (measured: with a queue of 8,
/// a burst after a repair at 5 % loss dropped 6 frames and cost a keyframe). When it is full all the same, the
/// newest frame is dropped (and counted) and a keyframe is asked for.
const DECODE_QUEUE: usize = 32;

/// How long the loop sleeps when the receiver has no deadline: only a packet or a wake-up has work for it.
const IDLE: Duration = Duration::from_secs(3600);

/// Counters and signals shared between the RTP task, the decode thread and the viewer's API.
#[derive(Debug, Default)]
pub(crate) struct VideoShared {
    /// RTP payload bytes received, retransmissions included.
    pub bytes: AtomicU64,
    /// Frames decoded.
    pub frames: AtomicU64,
    /// Keyframes received.
    pub keyframes: AtomicU64,
    /// Assembled frames dropped because the decoder fell behind.
    pub frames_dropped: AtomicU64,
    /// Sequence numbers put into NACKs (a packet asked for twice counts twice).
    pub packets_nacked: AtomicU64,
    /// NACKed packets that came back.
    pub packets_recovered: AtomicU64,
    /// Keyframe requests (PLI) sent.
    pub keyframe_requests: AtomicU64,
    /// Set by the app or the decode thread; the RTP task turns it into a keyframe request.
    keyframe_wanted: AtomicBool,
    /// Wakes the RTP task for `keyframe_wanted` without waiting for the next packet (a still screen sends none).
    wake: Notify,
}

impl VideoShared {
    /// Asks for a keyframe at the next moment the request policy allows.
    pub fn request_keyframe(&self) {
        self.keyframe_wanted.store(true, Ordering::Relaxed);
        // A stored permit when the task is busy: the request is never lost.
        self.wake.notify_one();
    }
}

/// Starts the RTP task and the decode thread for `track`. Both end when the track ends; the frame queue is then
/// closed.
pub(crate) fn spawn(
    track: Arc<dyn TrackRemote>,
    frames: Arc<FrameQueue<DecodedFrame>>,
    shared: Arc<VideoShared>,
    decoder_config: DecoderConfig,
    capture_time_id: Option<u8>,
) {
    let (to_decoder, from_network) = std::sync::mpsc::sync_channel::<ToDecode>(DECODE_QUEUE);
    {
        let shared = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("peerdesk-decode".into())
            .spawn(move || decode_thread(from_network, frames, shared, decoder_config));
        if let Err(e) = spawned {
            tracing::error!("decode thread not started: {e}");
            return;
        }
    }
    tokio::spawn(rtp_task(track, to_decoder, shared, capture_time_id));
}

/// An assembled frame and the host's capture time of its picture, when the host sent one.
type ToDecode = (AssembledFrame, Option<Duration>);

fn decode_thread(
    from_network: std::sync::mpsc::Receiver<ToDecode>,
    frames: Arc<FrameQueue<DecodedFrame>>,
    shared: Arc<VideoShared>,
    decoder_config: DecoderConfig,
) {
    let mut decoder = match Decoder::new(decoder_config) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!("decoder unavailable: {e}");
            frames.close();
            return;
        }
    };
    while let Ok((frame, captured)) = from_network.recv() {
        match decoder.decode(frame.data, captured.unwrap_or_else(wall_clock)) {
            Ok(Some(picture)) => {
                shared.frames.fetch_add(1, Ordering::Relaxed);
                frames.push(picture);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!("undecodable frame: {e}");
                shared.request_keyframe();
            }
        }
    }
    frames.close();
}

async fn rtp_task(
    track: Arc<dyn TrackRemote>,
    to_decoder: std::sync::mpsc::SyncSender<ToDecode>,
    shared: Arc<VideoShared>,
    capture_time_id: Option<u8>,
) {
    let mut capture_times = CaptureTimes::default();
    // The media stream's SSRC, learnt with the first packet: the track may not know it yet when this task
    // starts, and a NACK naming the wrong one is ignored by the sender.
    let mut media_ssrc: Option<u32> = None;
    let mut receiver = VideoReceiver::default();
    loop {
        let deadline = receiver.poll_timeout().unwrap_or_else(|| Instant::now() + IDLE);
        tokio::select! {
            event = track.poll() => match event {
                Some(TrackRemoteEvent::OnRtpPacket(packet)) => {
                    shared.bytes.fetch_add(packet.payload.len() as u64, Ordering::Relaxed);
                    let h = &packet.header;
                    if media_ssrc.is_none() {
                        media_ssrc = Some(track.ssrcs().await.first().copied().unwrap_or(h.ssrc));
                    }
                    if media_ssrc != Some(h.ssrc) {
                        // A retransmission webrtc-rs could not map back to the stream: its sequence numbers and
                        // payload (which starts with the original sequence number) are not the stream's.
                        tracing::debug!(ssrc = h.ssrc, payload_type = h.payload_type, "RTP packet of another stream ignored");
                        continue;
                    }
                    if let Some(captured) = capture_time_id.and_then(|id| h.get_extension(id)).and_then(|e| capture_time::decode(&e)) {
                        capture_times.insert(h.timestamp, captured);
                    }
                    receiver.on_packet(Instant::now(), h.sequence_number, h.timestamp, h.marker, packet.payload);
                }
                Some(TrackRemoteEvent::OnEnded) | None => break,
                Some(_) => continue,
            },
            _ = tokio::time::sleep_until(deadline.into()) => receiver.on_timeout(Instant::now()),
            _ = shared.wake.notified() => {}
        }
        if shared.keyframe_wanted.swap(false, Ordering::Relaxed) {
            receiver.request_keyframe(Instant::now());
        }
        while let Some(output) = receiver.poll_output() {
            match output {
                ReceiveOutput::Frame(frame) => {
                    let keyframe = frame.keyframe;
                    let captured = capture_times.get(frame.rtp_timestamp);
                    match to_decoder.try_send((frame, captured)) {
                        Ok(()) => {
                            if keyframe {
                                shared.keyframes.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(std::sync::mpsc::TrySendError::Full(_)) => {
                            shared.frames_dropped.fetch_add(1, Ordering::Relaxed);
                            receiver.request_keyframe(Instant::now());
                        }
                        Err(std::sync::mpsc::TrySendError::Disconnected(_)) => return,
                    }
                }
                ReceiveOutput::Nack(sequence_numbers) => {
                    let Some(media_ssrc) = media_ssrc else { continue };
                    let nack = TransportLayerNack {
                        sender_ssrc: 0,
                        media_ssrc,
                        nacks: nack_pairs_from_sequence_numbers(&sequence_numbers),
                    };
                    if let Err(e) = track.write_rtcp(vec![Box::new(nack)]).await {
                        tracing::debug!("NACK not sent: {e}");
                    }
                }
                ReceiveOutput::KeyframeRequest => {
                    let pli = PictureLossIndication {
                        sender_ssrc: 0,
                        media_ssrc: media_ssrc.unwrap_or(0),
                    };
                    if let Err(e) = track.write_rtcp(vec![Box::new(pli)]).await {
                        tracing::debug!("keyframe request not sent: {e}");
                    }
                }
            }
        }
        let counts = receiver.counts();
        shared.packets_nacked.store(counts.loss.nacked, Ordering::Relaxed);
        shared.packets_recovered.store(counts.loss.recovered, Ordering::Relaxed);
        shared
            .keyframe_requests
            .store(counts.keyframe_requests, Ordering::Relaxed);
    }
}
