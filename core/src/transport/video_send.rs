//! AV1 temporal units → RTP packets on a webrtc-rs track.
//!
//! The crate's AV1 payloader gets the whole temporal unit (it drops temporal delimiters and size fields and sets
//! Z/Y/W/N). Every packet of a frame carries one timestamp from one monotonic 90 kHz clock, stamped when the frame
//! left the encoder; the marker is on the last packet; the playout-delay extension (min = max = 0) is set on
//! every packet and the frame's capture time ([`super::capture_time`]) on the first, each with the ID negotiated
//! for this connection, read from the sender's parameters (webrtc-rs 0.21.1's `write_rtp_with_extensions` uses
//! the IDs known at `add_track` time instead).

use super::capture_time::{self, ABS_CAPTURE_TIME_URI};
use super::peer::{av1_codec, PLAYOUT_DELAY_URI};
use rtc::rtp_transceiver::rtp_sender::RTCRtpHeaderExtensionParameters;
use super::TransportError;
use bytes::Bytes;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp::codec::av1::Av1Payloader;
use rtc::rtp::packetizer::Payloader;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RTCRtpRtxParameters, RtpCodecKind,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::rtp_transceiver::RtpSender;

/// RTP payload size: leaves room for headers, extensions and SRTP within a 1280-byte IPv6 minimum MTU.
pub const RTP_PAYLOAD_MTU: usize = 1150;

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).expect("the operating system's random source failed");
    u32::from_le_bytes(b)
}

/// A video track for one peer connection, with its SSRCs.
pub fn new_video_track() -> (Arc<TrackLocalStaticRTP>, u32) {
    let ssrc = random_u32();
    let rtx_ssrc = random_u32();
    let track = MediaStreamTrack::new(
        "peerdesk-screen".to_owned(),
        "peerdesk-screen-video".to_owned(),
        "screen".to_owned(),
        RtpCodecKind::Video,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                rtx: Some(RTCRtpRtxParameters { ssrc: rtx_ssrc }),
                ..Default::default()
            },
            codec: av1_codec(),
            ..Default::default()
        }],
    );
    (Arc::new(TrackLocalStaticRTP::new(track)), ssrc)
}

/// Sends AV1 temporal units as RTP on one track.
pub struct Av1RtpSender {
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    payload_type: u8,
    playout_delay_id: Option<u8>,
    capture_time_id: Option<u8>,
    sequence: u16,
    payloader: Av1Payloader,
    clock_origin: Instant,
    timestamp_offset: u32,
    last_timestamp: Option<u32>,
    /// Packets sent.
    pub packets_sent: u64,
    /// Payload bytes sent.
    pub bytes_sent: u64,
}

impl std::fmt::Debug for Av1RtpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Av1RtpSender")
            .field("ssrc", &self.ssrc)
            .field("payload_type", &self.payload_type)
            .finish()
    }
}

impl Av1RtpSender {
    /// A sender for `track`, configured from what `sender` negotiated. Call once connected.
    pub async fn negotiated(
        track: Arc<TrackLocalStaticRTP>,
        ssrc: u32,
        sender: &Arc<dyn RtpSender>,
    ) -> Result<Self, TransportError> {
        let parameters = sender.get_parameters().await.map_err(TransportError::webrtc)?;
        let payload_type = parameters
            .rtp_parameters
            .codecs
            .iter()
            .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case("video/AV1"))
            .map(|c| c.payload_type)
            .ok_or(TransportError::NoCodec)?;
        let extensions = &parameters.rtp_parameters.header_extensions;
        let playout_delay_id = negotiated_extension_id(extensions, PLAYOUT_DELAY_URI);
        let capture_time_id = negotiated_extension_id(extensions, ABS_CAPTURE_TIME_URI);
        tracing::debug!(payload_type, ?playout_delay_id, ?capture_time_id, "AV1 sender negotiated");
        Ok(Av1RtpSender {
            track,
            ssrc,
            payload_type,
            playout_delay_id,
            capture_time_id,
            sequence: random_u32() as u16,
            payloader: Av1Payloader::default(),
            clock_origin: Instant::now(),
            timestamp_offset: random_u32(),
            last_timestamp: None,
            packets_sent: 0,
            bytes_sent: 0,
        })
    }

    /// The negotiated payload type.
    pub fn payload_type(&self) -> u8 {
        self.payload_type
    }

    /// Whether the playout-delay extension was negotiated.
    pub fn has_playout_delay(&self) -> bool {
        self.playout_delay_id.is_some()
    }

    /// Whether the capture-time extension was negotiated.
    pub fn has_capture_time(&self) -> bool {
        self.capture_time_id.is_some()
    }

    /// Sends one temporal unit that left the encoder at `encoded_at`, of a picture captured at `captured` (on the
    /// source's clock). Returns the number of packets.
    pub async fn send(
        &mut self,
        temporal_unit: &Bytes,
        encoded_at: Instant,
        captured: Duration,
    ) -> Result<usize, TransportError> {
        let elapsed = encoded_at.saturating_duration_since(self.clock_origin);
        let mut timestamp = self
            .timestamp_offset
            .wrapping_add((elapsed.as_micros() * 9 / 100) as u32);
        // Strictly increasing per frame, even for two frames encoded within one tick of the clock.
        if let Some(last) = self.last_timestamp {
            if timestamp.wrapping_sub(last) == 0 || timestamp.wrapping_sub(last) > u32::MAX / 2 {
                timestamp = last.wrapping_add(1);
            }
        }
        self.last_timestamp = Some(timestamp);
        let payloads = self
            .payloader
            .payload(RTP_PAYLOAD_MTU, temporal_unit)
            .map_err(TransportError::webrtc)?;
        let count = payloads.len();
        for (i, payload) in payloads.into_iter().enumerate() {
            let mut header = rtc::rtp::Header {
                version: 2,
                marker: i + 1 == count,
                payload_type: self.payload_type,
                sequence_number: self.sequence,
                timestamp,
                ssrc: self.ssrc,
                ..Default::default()
            };
            if let Some(id) = self.playout_delay_id {
                // 12 bits minimum, 12 bits maximum delay, both 0: render immediately.
                header
                    .set_extension(id, Bytes::from_static(&[0, 0, 0]))
                    .map_err(TransportError::webrtc)?;
            }
            if let (0, Some(id)) = (i, self.capture_time_id) {
                header
                    .set_extension(id, Bytes::copy_from_slice(&capture_time::encode(captured)))
                    .map_err(TransportError::webrtc)?;
            }
            self.sequence = self.sequence.wrapping_add(1);
            self.bytes_sent += payload.len() as u64;
            let packet = rtc::rtp::Packet { header, payload };
            self.track
                .write_rtp(packet)
                .await
                .map_err(|e| TransportError::WebRtc(e.to_string()))?;
        }
        self.packets_sent += count as u64;
        Ok(count)
    }
}

/// The one-byte-header ID (1–14) negotiated for the extension `uri`, if it was.
pub(crate) fn negotiated_extension_id(extensions: &[RTCRtpHeaderExtensionParameters], uri: &str) -> Option<u8> {
    extensions
        .iter()
        .find(|e| e.uri == uri)
        .and_then(|e| u8::try_from(e.id).ok())
        .filter(|id| (1..=14).contains(id))
}
