//! One viewer's share of the encoded stream: every frame the encode thread broadcasts goes to this viewer's RTP
//! sender; a viewer that falls behind skips to the next keyframe and asks for one (see [`super::lag`]), so a
//! slow viewer never holds back the others.

use super::encode_loop::{EncoderCommand, EncoderCommands, OutFrame};
use super::lag::{FrameAction, LagRecovery};
use crate::transport::video_send::Av1RtpSender;
use crate::transport::TransportError;
use tokio::sync::broadcast;

/// Sends the frames from `frames` to one viewer until its connection closes or the host stops.
pub(crate) async fn send_video(
    mut sender: Av1RtpSender,
    mut frames: broadcast::Receiver<OutFrame>,
    encoder: EncoderCommands,
) {
    let mut lag = LagRecovery::default();
    loop {
        match frames.recv().await {
            Ok(frame) => {
                if let FrameAction::Skip { request_keyframe } = lag.on_frame(frame.keyframe) {
                    if request_keyframe {
                        encoder.send(EncoderCommand::Keyframe);
                    }
                    continue;
                }
                if let Err(e) = sender.send(&frame.data, frame.encoded_at, frame.captured).await {
                    tracing::debug!("video send failed: {e}");
                    if matches!(e, TransportError::Closed) {
                        break;
                    }
                }
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                // This viewer fell behind and lost frames: only a keyframe repairs its picture (see `lag`).
                tracing::debug!(missed, "viewer lagging; requesting a keyframe");
                lag.on_frames_lost();
                encoder.send(EncoderCommand::Keyframe);
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
}
