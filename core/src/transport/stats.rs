//! Connection statistics.

/// What a session reports about one connection.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct ConnectionStats {
    /// Round-trip time of the selected ICE pair, milliseconds.
    pub rtt_ms: f64,
    /// RTP packets reported lost.
    pub packets_lost: i64,
    /// Video bitrate over the last interval, kbit/s.
    pub bitrate_kbps: f64,
    /// Frames per second over the last interval.
    pub fps: f64,
    /// Frames dropped (not delivered to the app, or not sent to a slow peer).
    pub frames_dropped: u64,
    /// Frames decoded (viewer) or sent (host) in total.
    pub frames: u64,
    /// The congestion controller's target bitrate, bit/s (host side; 0 when unknown).
    pub target_bitrate_bps: f64,
    /// Video payload bytes received (viewer) or sent (host) in total.
    pub bytes: u64,
    /// Keyframes received (viewer).
    pub keyframes: u64,
    /// Sequence numbers asked for again by NACK (viewer); a packet asked for twice counts twice.
    pub packets_nacked: u64,
    /// NACKed packets that came back in time (viewer).
    pub packets_recovered: u64,
    /// Keyframe requests (PLI) sent to the host (viewer).
    pub keyframe_requests: u64,
}

/// Reads RTT, loss and target bitrate from a webrtc-rs stats report into `stats`.
pub fn fill_from_report(report: &webrtc::peer_connection::RTCStatsReport, stats: &mut ConnectionStats) {
    if let Some(pair) = report.candidate_pairs().find(|p| p.current_round_trip_time > 0.0) {
        stats.rtt_ms = pair.current_round_trip_time * 1000.0;
    }
    let mut lost = 0i64;
    for inbound in report.inbound_rtp_streams() {
        lost += inbound.received_rtp_stream_stats.packets_lost;
    }
    if lost > 0 {
        stats.packets_lost = lost;
    }
    for outbound in report.outbound_rtp_streams() {
        if outbound.target_bitrate > 0.0 {
            stats.target_bitrate_bps = outbound.target_bitrate;
        }
    }
}
