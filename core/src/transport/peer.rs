//! Building a peer connection the way peerdesk needs it, and turning its callbacks into a stream of events.

use super::{TransportConfig, TransportError};
use super::congestion_window::{
    CongestionWindowGate, EncoderTarget, SharedBacklog, SharedEncoderTarget, SharedRoundTrip,
};
use super::estimate::CappedGcc;
use super::retransmission_budget::{BudgetConfig, RetransmissionLimiter, SharedDepartures};
use crate::signaling::IceServer;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::{
    Attribute, CongestionControlBuilder, Interceptor, NackResponderBuilder, PacerBuilder, PacerInterceptor,
    Packet, Registry, Slot, StreamInfo, TaggedPacket, TwccReceiverBuilder, TwccSenderBuilder,
};
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_rtcp_reports, configure_simulcast_extension_headers, configure_twcc_receiver_only,
};
use rtc::peer_connection::configuration::media_engine::{MediaEngine, MIME_TYPE_AV1, MIME_TYPE_RTX};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
    TYPE_RTCP_FB_TRANSPORT_CC,
};
use rtc::sansio::Protocol;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use webrtc::data_channel::DataChannel;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceCandidateInit,
    RTCIceServer, RTCIceTransportPolicy, RTCPeerConnectionIceEvent, RTCPeerConnectionState, SettingEngineBuilder,
};

/// The payload type peerdesk offers AV1 on (Chrome's choice too).
pub const AV1_PAYLOAD_TYPE: u8 = 45;
/// The payload type of AV1's retransmissions (RFC 4588 RTX).
pub const AV1_RTX_PAYLOAD_TYPE: u8 = 46;
/// The AV1 format parameters Chrome offers and expects: main profile, level 5.1, main tier.
pub const AV1_FMTP: &str = "level-idx=5;profile=0;tier=0";
/// The header extension that asks receivers to render at once (min = max = 0 playout delay).
pub const PLAYOUT_DELAY_URI: &str = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay";

/// What a peer connection reports.
#[derive(Clone)]
pub enum PeerEvent {
    /// A local ICE candidate to trickle to the other side.
    LocalCandidate(RTCIceCandidateInit),
    /// The connection state changed.
    State(RTCPeerConnectionState),
    /// The other side opened a data channel.
    DataChannel(Arc<dyn DataChannel>),
    /// The other side's media track arrived.
    Track(Arc<dyn TrackRemote>),
}

impl std::fmt::Debug for PeerEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerEvent::LocalCandidate(c) => write!(f, "LocalCandidate({})", c.candidate),
            PeerEvent::State(s) => write!(f, "State({s})"),
            PeerEvent::DataChannel(_) => f.write_str("DataChannel"),
            PeerEvent::Track(_) => f.write_str("Track"),
        }
    }
}

/// Events waiting for the session, at most. A connection reports a few dozen in its life (candidates, states, one
/// channel, one track); when full, the handler waits for room (backpressure on webrtc-rs's event callbacks rather
/// than losing a state change).
const PEER_EVENT_QUEUE: usize = 256;

struct Handler {
    events: mpsc::Sender<PeerEvent>,
}

impl Handler {
    async fn report(&self, event: PeerEvent) {
        // Fails only when the session has gone: nobody is left to tell.
        let _ = self.events.send(event).await;
    }
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(init) => {
                self.report(PeerEvent::LocalCandidate(init)).await;
            }
            Err(e) => tracing::warn!("cannot serialise a local ICE candidate: {e}"),
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        tracing::debug!(%state, "peer connection state");
        self.report(PeerEvent::State(state)).await;
    }

    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        self.report(PeerEvent::DataChannel(channel)).await;
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        self.report(PeerEvent::Track(track)).await;
    }
}

/// A peer connection with its event stream.
pub struct Peer {
    /// The connection.
    pub connection: Arc<dyn PeerConnection>,
    /// Its events, in order.
    pub events: mpsc::Receiver<PeerEvent>,
    /// The media its congestion window holds back, as time at the estimate (zero without congestion control).
    pub(crate) send_backlog: SharedBacklog,
    /// The bitrate its congestion control wants the encoder at (never set without congestion control).
    pub(crate) encoder_target: SharedEncoderTarget,
}

/// The AV1 codec as peerdesk registers it.
pub fn av1_codec() -> RTCRtpCodec {
    let feedback = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.into(),
        parameter: parameter.into(),
    };
    RTCRtpCodec {
        mime_type: MIME_TYPE_AV1.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: AV1_FMTP.to_owned(),
        rtcp_feedback: vec![feedback("nack", ""), feedback("nack", "pli"), feedback("ccm", "fir")],
    }
}

fn media_engine() -> Result<MediaEngine, TransportError> {
    let mut engine = MediaEngine::default();
    engine
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: av1_codec(),
                payload_type: AV1_PAYLOAD_TYPE,
            },
            RtpCodecKind::Video,
        )
        .map_err(TransportError::webrtc)?;
    engine
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: RTCRtpCodec {
                    mime_type: MIME_TYPE_RTX.to_owned(),
                    clock_rate: 90_000,
                    channels: 0,
                    sdp_fmtp_line: format!("apt={AV1_PAYLOAD_TYPE}"),
                    rtcp_feedback: vec![],
                },
                payload_type: AV1_RTX_PAYLOAD_TYPE,
            },
            RtpCodecKind::Video,
        )
        .map_err(TransportError::webrtc)?;
    engine
        .register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: PLAYOUT_DELAY_URI.to_owned(),
            },
            RtpCodecKind::Video,
            None,
        )
        .map_err(TransportError::webrtc)?;
    engine
        .register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: super::capture_time::ABS_CAPTURE_TIME_URI.to_owned(),
            },
            RtpCodecKind::Video,
            None,
        )
        .map_err(TransportError::webrtc)?;
    Ok(engine)
}

/// An interceptor that hands every packet on the read leg to `on_read` (to look at or annotate) and passes
/// everything through otherwise untouched.
struct OnRead<F> {
    on_read: F,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl<F: FnMut(&mut TaggedPacket)> OnRead<F> {
    fn new(on_read: F) -> Self {
        OnRead {
            on_read,
            read: VecDeque::new(),
            write: VecDeque::new(),
        }
    }
}

impl<F: FnMut(&mut TaggedPacket)> Protocol<TaggedPacket, TaggedPacket, ()> for OnRead<F> {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        (self.on_read)(&mut msg);
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl<F: FnMut(&mut TaggedPacket) + Send + Sync> Interceptor for OnRead<F> {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// Passes keyframe requests (PLI, FIR) up to the application, which answers them with a keyframe. All other
/// RTCP goes on through the chain untouched.
fn forward_keyframe_requests(msg: &mut TaggedPacket) {
    if let Packet::Rtcp(packets) = &msg.message.packet {
        let asks_keyframe = packets.iter().any(|p| {
            let any = p.as_any();
            any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
        });
        if asks_keyframe {
            msg.message.add(Attribute::DeliverToApplication);
        }
    }
}

/// How much faster than the congestion estimate the pacer may send, as in libwebrtc: a keyframe (tens of kB at
/// 1080p) then leaves in a few frame times instead of queueing behind the pacer for a tenth of a second or more,
/// while the encoder still aims at the estimate itself.
pub(crate) const PACING_FACTOR: f64 = 2.5;

/// Scales the congestion estimate ([`Attribute::TargetBitrateChanged`]) on its way up the read leg. Applied by
/// factor [`PACING_FACTOR`] just below the pacer and by its inverse just above, so the pacer alone sees the
/// headroom and the application's statistics keep the estimate.
fn scale_target_bitrate(factor: f64) -> impl FnMut(&mut TaggedPacket) + Send + Sync {
    move |msg| {
        for attribute in &mut msg.message.attributes {
            if let Attribute::TargetBitrateChanged { bits_per_second } = attribute {
                *bits_per_second *= factor;
            }
        }
    }
}

/// Above the pacer: the estimate the application sees is the encoder's target from the congestion window
/// ([`EncoderTarget`], the estimate pushed back while the window is full) where there is one, else the estimate
/// without the pacer's headroom.
fn encoder_target_above_pacer(msg: &mut TaggedPacket) {
    if let Some(&EncoderTarget(bits_per_second)) = msg.message.custom::<EncoderTarget>() {
        msg.message
            .attributes
            .retain(|a| !matches!(a, Attribute::TargetBitrateChanged { .. }));
        msg.message.add(Attribute::TargetBitrateChanged { bits_per_second });
    } else {
        scale_target_bitrate(1.0 / PACING_FACTOR)(msg);
    }
}

/// Send-side congestion control: TWCC feedback for `estimator`, and the pacer. This is rtc's
/// `configure_congestion_control` with one difference, the pacer's starting rate (see [`pacer`]).
fn congestion_control(
    registry: Registry,
    estimator: CappedGcc,
    start_bitrate_bps: u32,
    engine: &mut MediaEngine,
) -> Result<Registry, TransportError> {
    engine.register_feedback(
        RTCPFeedback {
            typ: TYPE_RTCP_FB_TRANSPORT_CC.to_owned(),
            parameter: String::new(),
        },
        RtpCodecKind::Video,
    );
    engine
        .register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: rtc::sdp::extmap::TRANSPORT_CC_URI.to_owned(),
            },
            RtpCodecKind::Video,
            None,
        )
        .map_err(TransportError::webrtc)?;
    Ok(registry
        .with(Slot::CongestionControl, CongestionControlBuilder::new(estimator).build())
        .with(Slot::Pacer, pacer(start_bitrate_bps))
        .with(Slot::TwccSender, TwccSenderBuilder::new().build())
        .with(Slot::TwccReceiver, TwccReceiverBuilder::new().build()))
}

/// The pacer, starting at [`PACING_FACTOR`] times the start bitrate: the pace it gets from every later estimate.
///
/// The congestion controller announces its estimate only when it changes, and the pacer otherwise starts at
/// rtc's default of 1 Mbit/s, without headroom. On a path losing a few per cent of its packets GCC's loss-based
/// half holds the start bitrate (between its 2 % and 10 % thresholds nothing moves), so no change came: the
/// pacer stayed at 1 Mbit/s under an encoder sending about that much, the first keyframe's backlog never
/// drained, and whole sessions ran 0.5–2.5 s behind at full frame rate (`tests/system/lossy-link.sh`).
fn pacer(start_bitrate_bps: u32) -> PacerInterceptor {
    PacerBuilder::new()
        .with_target_bitrate(f64::from(start_bitrate_bps) * PACING_FACTOR)
        .build()
}

/// Time between ICE connectivity checks while connecting: RFC 8445's pacing (Ta = 50 ms) rather than webrtc-rs's
/// 200 ms default, which alone cost ~300 ms of every join (a pair is checked, then nominated, a round each).
const ICE_CHECK_INTERVAL: Duration = Duration::from_millis(50);
/// Unanswered checks before a candidate pair is given up: 40 × 50 ms = 2 s, a little more than webrtc-rs's default
/// window (7 × 200 ms), so that a pair whose remote candidate is still on its way through signaling is not
/// dropped early.
const ICE_MAX_BINDING_REQUESTS: u16 = 40;

/// Whether ICE resolves `.local` (mDNS) candidate names: off when every bind address is loopback or when this
/// machine has no route to the mDNS group (`multicast_routable`, see [`multicast_is_routable`]), on (query only,
/// never announcing our own addresses) otherwise.
///
/// mDNS names stand for addresses on a real link, so a loopback-only session has none to resolve; and the mDNS
/// socket joins the multicast group 224.0.0.251, which fails with ENODEV on a machine without a default route (an
/// offline lab box, a kiosk, a network namespace with only `lo` or only a LAN address) — that used to end every
/// session there before its first packet.
fn multicast_dns_mode(bind_addrs: &[SocketAddr], multicast_routable: bool) -> MulticastDnsMode {
    let loopback_only = !bind_addrs.is_empty() && bind_addrs.iter().all(|addr| addr.ip().is_loopback());
    if loopback_only || !multicast_routable {
        MulticastDnsMode::Disabled
    } else {
        MulticastDnsMode::QueryOnly
    }
}

/// Whether the kernel has a route to the mDNS group: connecting a UDP socket looks the route up and sends
/// nothing. Without one, joining the group fails (ENODEV), and so would the whole peer connection.
fn multicast_is_routable() -> bool {
    let routable = std::net::UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|socket| socket.connect((std::net::Ipv4Addr::new(224, 0, 0, 251), 5353)))
        .is_ok();
    if !routable {
        tracing::debug!("no route to the mDNS group: .local candidates are not resolved");
    }
    routable
}

/// Where the NACK responder sits: wire-ward of the pacer (3_000), above the TWCC sender (2_000) and the congestion
/// controller's history (1_000). Retransmissions then leave at once instead of queueing behind everything the
/// pacer holds — the first keyframe of a session is paced out over a quarter of a second or more, and its lost
/// packets waited behind it (traced: 250–480 ms repairs in the first second at 5 % loss) — and are still
/// numbered and counted by congestion control. libwebrtc's pacer gets the same effect by sending
/// retransmissions ahead of new media. The responder buffers packets as they leave the pacer.
const NACK_RESPONDER_SLOT: Slot = Slot::Custom(2_700);
/// Where the congestion window sits: wire-ward of the transport-wide numbering (2_000), application-ward of
/// congestion control's send history (1_000), which then records when a held packet really left.
const CONGESTION_WINDOW_SLOT: Slot = Slot::Custom(1_500);
/// Where the retransmission limiter sits: wire-ward of the NACK responder, whose retransmissions it meters on
/// their way out, and of the pacer's scaling of the estimate (2_500), so it reads the estimate itself.
const RETRANSMISSION_LIMITER_SLOT: Slot = Slot::Custom(2_400);

/// Builds a peer connection with peerdesk's codecs, interceptors and network settings. `extra_ice_servers` come
/// from the signaling server.
pub async fn new_peer(config: &TransportConfig, extra_ice_servers: &[IceServer]) -> Result<Peer, TransportError> {
    let mut engine = media_engine()?;
    // Retransmissions (RTX) answer the viewer's NACKs. The NACKs themselves come from peerdesk's own receiver
    // (`crate::receive`), not from webrtc-rs' NACK generator: that one sees RTX packets before they are
    // de-encapsulated, so a repaired packet stays "missing" and is asked for again every 100 ms for as long as
    // it stays in its 512-packet window, measured as ~1.6 Mbit/s of retransmissions on a still screen at 5 % loss.
    let registry =
        configure_rtcp_reports(Registry::new().with(NACK_RESPONDER_SLOT, NackResponderBuilder::new().build()));
    let send_backlog = SharedBacklog::default();
    let encoder_target = SharedEncoderTarget::default();
    let registry = if config.congestion_control {
        // Congestion control brings its own TWCC receiver.
        let round_trip = SharedRoundTrip::default();
        let departures = SharedDepartures::default();
        let gcc = CappedGcc::new(
            f64::from(config.start_bitrate_bps),
            f64::from(config.min_bitrate_bps),
            f64::from(config.max_bitrate_bps),
        );
        congestion_control(registry, gcc, config.start_bitrate_bps, &mut engine)?
            .with(
                CONGESTION_WINDOW_SLOT,
                CongestionWindowGate::new(
                    f64::from(config.start_bitrate_bps),
                    round_trip.clone(),
                    send_backlog.clone(),
                    encoder_target.clone(),
                    departures.clone(),
                ),
            )
            .with(
                RETRANSMISSION_LIMITER_SLOT,
                RetransmissionLimiter::new(
                    BudgetConfig {
                        initial_estimate_bps: f64::from(config.start_bitrate_bps),
                        ..BudgetConfig::default()
                    },
                    round_trip,
                    departures,
                ),
            )
            .with(
                Slot::from(Slot::Pacer.slot() - 500),
                OnRead::new(scale_target_bitrate(PACING_FACTOR)),
            )
            .with(
                Slot::from(Slot::Pacer.slot() + 500),
                OnRead::new(encoder_target_above_pacer),
            )
    } else {
        configure_simulcast_extension_headers(&mut engine).map_err(TransportError::webrtc)?;
        configure_twcc_receiver_only(registry, &mut engine).map_err(TransportError::webrtc)?
    };
    let registry = registry.with(Slot::from(14_000), OnRead::new(forward_keyframe_requests));

    let ice_servers: Vec<RTCIceServer> = config
        .ice_servers
        .iter()
        .chain(extra_ice_servers)
        .map(|s| RTCIceServer {
            urls: s.urls.clone(),
            username: s.username.clone(),
            credential: s.credential.clone(),
        })
        .collect();
    let policy = if config.relay_only {
        RTCIceTransportPolicy::Relay
    } else {
        RTCIceTransportPolicy::All
    };
    let rtc_config = RTCConfigurationBuilder::new()
        .with_ice_servers(ice_servers)
        .with_ice_transport_policy(policy)
        .build();
    let (tx, rx) = mpsc::channel(PEER_EVENT_QUEUE);
    let mdns_mode = multicast_dns_mode(&config.bind_addrs, multicast_is_routable());
    let mut settings = SettingEngineBuilder::new()
        .with_ice_connection_attempts(Some(ICE_CHECK_INTERVAL), Some(ICE_MAX_BINDING_REQUESTS))
        .with_multicast_dns_mode(mdns_mode);
    if config.relay_only {
        // ICE waits 2 s before it nominates a relayed pair, to give a direct one the chance to work first (pion's
        // `RelayAcceptanceMinWait`). With relay-only there is no other kind: the wait was 2 s of every join.
        settings = settings.with_relay_acceptance_min_wait(Some(Duration::ZERO));
    }
    let settings = settings.build();
    let connection = PeerConnectionBuilder::new()
        .with_setting_engine(settings)
        .with_configuration(rtc_config)
        .with_media_engine(engine)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(Handler { events: tx }))
        .with_udp_addrs(config.bind_addrs.clone())
        .build()
        .await
        .map_err(TransportError::webrtc)?;
    tracing::debug!(?mdns_mode, "peer connection built");
    Ok(Peer {
        connection: Arc::new(connection),
        events: rx,
        send_backlog,
        encoder_target,
    })
}

/// A candidate the other side trickled over signaling, as webrtc-rs takes it.
pub(crate) fn remote_candidate(
    candidate: String,
    sdp_mid: Option<String>,
    sdp_mline_index: Option<u16>,
) -> webrtc::peer_connection::RTCIceCandidateInit {
    webrtc::peer_connection::RTCIceCandidateInit {
        candidate,
        sdp_mid,
        sdp_mline_index,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::interceptor::AttributedPacket;
    use rtc::rtcp::receiver_report::ReceiverReport;
    use rtc::shared::TransportContext;

    fn carrying(bits_per_second: f64) -> TaggedPacket {
        let mut message = AttributedPacket::new(Packet::Rtcp(vec![Box::new(ReceiverReport::default())]));
        message.add(Attribute::TargetBitrateChanged { bits_per_second });
        TaggedPacket {
            now: Instant::now(),
            transport: TransportContext::default(),
            message,
        }
    }

    fn estimate(packet: &TaggedPacket) -> Option<f64> {
        match packet
            .message
            .get(&Attribute::TargetBitrateChanged { bits_per_second: 0.0 })
        {
            Some(Attribute::TargetBitrateChanged { bits_per_second }) => Some(*bits_per_second),
            _ => None,
        }
    }

    #[test]
    fn loopback_sessions_do_not_use_multicast_dns() {
        let loopback = [SocketAddr::from(([127, 0, 0, 1], 0)), "[::1]:0".parse().unwrap()];
        assert_eq!(multicast_dns_mode(&loopback, true), MulticastDnsMode::Disabled);
        assert_eq!(multicast_dns_mode(&loopback[..1], true), MulticastDnsMode::Disabled);
        let any = [SocketAddr::from(([0, 0, 0, 0], 0))];
        assert_eq!(multicast_dns_mode(&any, true), MulticastDnsMode::QueryOnly);
        let mixed = [loopback[0], SocketAddr::from(([192, 168, 1, 2], 0))];
        assert_eq!(multicast_dns_mode(&mixed, true), MulticastDnsMode::QueryOnly);
        assert_eq!(multicast_dns_mode(&[], true), MulticastDnsMode::QueryOnly);
    }

    #[test]
    fn without_a_route_to_the_mdns_group_multicast_dns_is_off() {
        let any = [SocketAddr::from(([0, 0, 0, 0], 0))];
        assert_eq!(multicast_dns_mode(&any, false), MulticastDnsMode::Disabled);
        assert_eq!(multicast_dns_mode(&[], false), MulticastDnsMode::Disabled);
    }

    #[test]
    fn the_pacer_starts_with_the_headroom_of_the_start_bitrate() {
        // Before any estimate is announced (a 5 % lossy path may never announce one), the pacer must already
        // send faster than the encoder aims, or a keyframe's backlog stays queued for the whole session.
        assert_eq!(pacer(1_000_000).pacer().target_bitrate(), 2_500_000.0);
        assert_eq!(pacer(300_000).pacer().target_bitrate(), 750_000.0);
    }

    #[test]
    fn the_pacer_sees_headroom_and_the_application_the_estimate() {
        let mut below_pacer = OnRead::new(scale_target_bitrate(PACING_FACTOR));
        let mut above_pacer = OnRead::new(encoder_target_above_pacer);
        below_pacer.handle_read(carrying(4_000_000.0)).unwrap();
        let at_pacer = below_pacer.poll_read().unwrap();
        assert_eq!(estimate(&at_pacer), Some(10_000_000.0));
        above_pacer.handle_read(at_pacer).unwrap();
        let at_application = above_pacer.poll_read().unwrap();
        assert!((estimate(&at_application).unwrap() - 4_000_000.0).abs() < 1e-6);
        // Packets without an estimate, and the write leg, pass untouched.
        let mut plain = carrying(1.0);
        plain.message.attributes.clear();
        below_pacer.handle_read(plain).unwrap();
        assert_eq!(estimate(&below_pacer.poll_read().unwrap()), None);
        below_pacer.handle_write(carrying(7.0)).unwrap();
        assert_eq!(estimate(&below_pacer.poll_write().unwrap()), Some(7.0));
        // With the congestion window's pushed-back target on board, the application sees that instead; and a
        // target that moved without a new estimate reaches the application all the same.
        let mut pushed_back = carrying(4_000_000.0);
        pushed_back.message.add(Attribute::Custom(Arc::new(EncoderTarget(1_500_000.0))));
        below_pacer.handle_read(pushed_back).unwrap();
        let at_pacer = below_pacer.poll_read().unwrap();
        assert_eq!(estimate(&at_pacer), Some(10_000_000.0));
        above_pacer.handle_read(at_pacer).unwrap();
        assert_eq!(estimate(&above_pacer.poll_read().unwrap()), Some(1_500_000.0));
        let mut moved_alone = carrying(1.0);
        moved_alone.message.attributes.clear();
        moved_alone.message.add(Attribute::Custom(Arc::new(EncoderTarget(900_000.0))));
        above_pacer.handle_read(moved_alone).unwrap();
        assert_eq!(estimate(&above_pacer.poll_read().unwrap()), Some(900_000.0));
    }
}
