//! Host and viewer sessions through a real signaling server process, over real WebRTC on loopback.

use peerdesk::capture::stamp;
use peerdesk::capture::synthetic::{SyntheticConfig, SyntheticDesktop, SyntheticSource};
use peerdesk::control::{ControlErrorCode, InputEvent, MouseButton, Permissions};
use peerdesk::convert::bgra_to_i420;
use peerdesk::frame::{Frame, PixelFormat};
use peerdesk::input::RecordingSink;
use peerdesk::quality::psnr_y;
use peerdesk::session::{Consent, Host, HostConfig, HostEvent, SessionError, Viewer, ViewerConfig, ViewerEvent};
use peerdesk::transport::TransportConfig;
use peerdesk_e2e::SignalingServer;
use std::time::Duration;

const W: u32 = 640;
const H: u32 = 360;

async fn start_host(server: &SignalingServer, input: Option<RecordingSink>) -> Host {
    let source = SyntheticSource::new(SyntheticConfig { width: W, height: H, ..Default::default() }).unwrap();
    let config = HostConfig::new(&server.url).name("test desk").transport(TransportConfig::loopback()).max_bitrate(1_500_000);
    Host::start(config, Box::new(source), input.map(|s| Box::new(s) as _)).await.unwrap()
}

fn viewer_config(server: &SignalingServer, code: &str) -> ViewerConfig {
    ViewerConfig::new(&server.url, code, "Tech").transport(TransportConfig::loopback())
}

/// Answers every join request of `host` with `consent`, forwarding other events.
fn auto_answer(mut host: Host, consent: Consent) -> (tokio::sync::mpsc::UnboundedReceiver<HostEvent>, tokio::sync::oneshot::Sender<()>, std::sync::Arc<tokio::sync::Mutex<Option<Host>>>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let slot = std::sync::Arc::new(tokio::sync::Mutex::new(None));
    let slot2 = slot.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                event = host.next_event() => match event {
                    Some(HostEvent::JoinRequest(request)) => request.answer(consent.clone()),
                    Some(other) => { let _ = tx.send(other); }
                    None => break,
                },
                _ = &mut stop_rx => break,
            }
        }
        *slot2.lock().await = Some(host);
    });
    (rx, stop_tx, slot)
}

async fn timeout<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f).await.unwrap_or_else(|_| panic!("timed out: {what}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_receives_the_hosts_frames_in_order_and_intact() {
    let server = SignalingServer::start(&[]);
    let host = start_host(&server, None).await;
    assert_eq!(host.code().len(), 10);
    let code = host.code().to_string();
    let (_events, _stop, _slot) = auto_answer(host, Consent::Allow(Permissions::VIEW_ONLY));
    let started = std::time::Instant::now();
    let viewer = timeout("join", Viewer::join(viewer_config(&server, &code))).await.unwrap();
    assert_eq!(viewer.screen_size(), (W, H));
    assert_eq!(viewer.host_name(), "test desk");
    assert_eq!(viewer.permissions(), Permissions::VIEW_ONLY);

    let mut reference = SyntheticDesktop::new(SyntheticConfig { width: W, height: H, ..Default::default() }).unwrap();
    let mut last_number = None;
    let mut checked = 0;
    let mut first_frame = None;
    while checked < 40 {
        let frame = timeout("a frame", viewer.next_frame()).await.expect("frames keep coming");
        first_frame.get_or_insert_with(|| started.elapsed());
        let decoded = frame.to_frame().unwrap();
        let stamp = stamp::read_i420(&decoded).expect("frame stamp readable");
        if let Some(last) = last_number {
            assert!(stamp.frame_number > last, "frame {} after {}", stamp.frame_number, last);
        }
        last_number = Some(stamp.frame_number);
        let source = reference.render(u64::from(stamp.frame_number), stamp.capture_millis);
        let mut expected = Frame::new(PixelFormat::I420, W, H).unwrap();
        bgra_to_i420(&source.as_bgra_image().unwrap(), &mut expected, None).unwrap();
        let psnr = psnr_y(&decoded.as_i420_image().unwrap(), &expected.as_i420_image().unwrap()).unwrap();
        assert!(psnr > 35.0, "frame {}: PSNR-Y {psnr:.1} dB", stamp.frame_number);
        checked += 1;
    }
    eprintln!("join to first frame: {:?}", first_frame.unwrap());
    let stats = viewer.stats();
    assert!(stats.frames >= 40);
    viewer.leave().await;
}
