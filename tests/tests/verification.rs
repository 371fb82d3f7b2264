//! Verified sessions against a real signaling server process and real WebRTC on loopback: the verification code
//! is equal on both honest sides, differs when a malicious signaling server relays the session through itself,
//! and a host that requires it grants control only after its user confirmed it.

use futures_util::{SinkExt, StreamExt};
use peerdesk::capture::pushed::pushed_source;
use peerdesk::capture::synthetic::{SyntheticConfig, SyntheticSource};
use peerdesk::control::{ControlErrorCode, InputEvent, Permissions};
use peerdesk::frame::PixelFormat;
use peerdesk::input::{InputError, InputSink, RecordingSink};
use peerdesk::session::{Consent, EventReceiver, Host, HostConfig, HostEvent, Viewer, ViewerConfig, ViewerEvent};
use peerdesk::transport::TransportConfig;
use peerdesk_e2e::SignalingServer;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

const W: u32 = 320;
const H: u32 = 240;

async fn timeout<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// The customer's side: a synthetic screen, input recorded, control only after verification.
async fn customer_host(server_url: &str, sink: RecordingSink) -> Host {
    let source = SyntheticSource::new(SyntheticConfig {
        width: W,
        height: H,
        ..Default::default()
    })
    .unwrap();
    let config = HostConfig::new(server_url)
        .name("customer")
        .transport(TransportConfig::loopback())
        .max_bitrate(500_000)
        .require_verification(true);
    Host::start(config, Box::new(source), Some(Box::new(sink)))
        .await
        .unwrap()
}

/// The next host event that `pred` accepts; join requests are answered with full permissions.
async fn host_event(events: &mut EventReceiver<HostEvent>, pred: impl Fn(&HostEvent) -> bool) -> HostEvent {
    loop {
        match timeout("a host event", events.recv()).await.expect("host events") {
            HostEvent::JoinRequest(request) => request.answer(Consent::Allow(Permissions::FULL)),
            event if pred(&event) => return event,
            _ => {}
        }
    }
}

async fn viewer_event(viewer: &mut Viewer, pred: impl Fn(&ViewerEvent) -> bool) -> ViewerEvent {
    loop {
        let event = timeout("a viewer event", viewer.next_event())
            .await
            .expect("viewer events");
        if pred(&event) {
            return event;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_sides_see_the_same_code_and_control_waits_for_its_confirmation() {
    let server = SignalingServer::start(&[]);
    let sink = RecordingSink::new();
    let mut host = customer_host(&server.url, sink.clone()).await;
    let mut events = host.take_events().unwrap();
    let config = ViewerConfig::new(&server.url, host.code(), "Tech").transport(TransportConfig::loopback());
    let join = tokio::spawn(Viewer::join(config));
    let host_code = match host_event(&mut events, |e| matches!(e, HostEvent::VerificationCode { .. })).await {
        HostEvent::VerificationCode { viewer, code } => (viewer, code),
        _ => unreachable!(),
    };
    let mut viewer = timeout("join", join).await.unwrap().unwrap();
    assert_eq!(
        viewer.verification_code(),
        host_code.1,
        "both honest sides show the same code"
    );
    assert_eq!(host_code.1.len(), 7);

    // Granted full control, but in force only after the user confirmed the code.
    assert_eq!(viewer.permissions(), Permissions::VIEW_ONLY);
    viewer.send_input(InputEvent::PointerMove { x: 0.5, y: 0.5 }).unwrap();
    let refused = viewer_event(&mut viewer, |e| matches!(e, ViewerEvent::Refused { .. })).await;
    assert!(
        matches!(&refused, ViewerEvent::Refused { code: ControlErrorCode::PermissionDenied, message } if message.contains("verification code")),
        "{refused:?}"
    );

    host.confirm_verification(&host_code.0);
    let changed = viewer_event(&mut viewer, |e| matches!(e, ViewerEvent::PermissionsChanged(_))).await;
    assert_eq!(changed, ViewerEvent::PermissionsChanged(Permissions::FULL));
    viewer.send_input(InputEvent::PointerMove { x: 0.25, y: 0.75 }).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sink.events().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "confirmed control never reached the sink"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sink.events(), vec![InputEvent::PointerMove { x: 0.25, y: 0.75 }]);
    viewer.leave().await;
    host.end("done").await;
}

/// Carries the technician's input, as the attacker's host receives it, to the attacker's viewer of the customer.
struct ForwardingSink(mpsc::Sender<InputEvent>);

impl InputSink for ForwardingSink {
    fn inject(&mut self, event: &InputEvent) -> Result<(), InputError> {
        self.0
            .try_send(event.clone())
            .map_err(|e| InputError::Unavailable(e.to_string()))
    }
}

/// A malicious signaling server: a WebSocket proxy in front of the real one. When a technician joins with the
/// customer's code, it joins the customer itself (as a viewer, under the technician's name) and sends the
/// technician to a host of its own that replays the customer's screen and forwards the technician's input. Both
/// legs are honest, end-to-end encrypted WebRTC sessions — that end at the attacker. Returns its URL.
async fn start_malicious_server(real: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(relay_client(stream, real.clone()));
        }
    });
    url
}

async fn relay_client(stream: tokio::net::TcpStream, real: String) {
    let Ok(client) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let Ok((upstream, _)) = tokio_tungstenite::connect_async(&real).await else {
        return;
    };
    let (mut client_tx, mut client_rx) = client.split();
    let (mut upstream_tx, mut upstream_rx) = upstream.split();
    tokio::spawn(async move {
        while let Some(Ok(message)) = upstream_rx.next().await {
            if client_tx.send(message).await.is_err() {
                break;
            }
        }
    });
    while let Some(Ok(message)) = client_rx.next().await {
        let message = match message {
            Message::Text(text) => {
                let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
                if json["type"] == "join" {
                    let code = json["code"].as_str().unwrap().to_string();
                    let name = json["name"].as_str().unwrap().to_string();
                    let own_code = impersonate(&real, code, name).await;
                    json["code"] = own_code.into();
                }
                Message::text(json.to_string())
            }
            other => other,
        };
        if upstream_tx.send(message).await.is_err() {
            break;
        }
    }
}

/// Joins the customer as the technician would, and starts the host the technician will reach instead; returns
/// that host's code.
async fn impersonate(real: &str, customer_code: String, name: String) -> String {
    let (input_tx, mut input_rx) = mpsc::channel::<InputEvent>(256);
    let (pusher, source) = pushed_source(W, H).unwrap();
    let config = HostConfig::new(real)
        .name("customer")
        .transport(TransportConfig::loopback())
        .max_bitrate(500_000);
    let mut fake_host = Host::start(config, Box::new(source), Some(Box::new(ForwardingSink(input_tx))))
        .await
        .unwrap();
    let code = fake_host.code().to_string();
    let real = real.to_string();
    tokio::spawn(async move {
        let config = ViewerConfig::new(&real, &customer_code, &name).transport(TransportConfig::loopback());
        let viewer_of_customer = Viewer::join(config).await.expect("the attacker joins the customer");
        let frames = viewer_of_customer.frame_queue();
        tokio::spawn(async move {
            let mut rgba = vec![0u8; (W * H * 4) as usize];
            while let Some(frame) = frames.pop().await {
                if frame.write_rgba(&mut rgba, (W * 4) as usize).is_ok() {
                    let _ = pusher.push(&rgba, W, H, (W * 4) as usize, PixelFormat::Rgba, Duration::ZERO);
                }
            }
        });
        loop {
            tokio::select! {
                event = fake_host.next_event() => match event {
                    Some(HostEvent::JoinRequest(request)) => request.answer(Consent::Allow(Permissions::FULL)),
                    Some(HostEvent::Ended { .. }) | None => break,
                    Some(_) => {}
                },
                Some(event) = input_rx.recv() => { let _ = viewer_of_customer.send_input(event); }
            }
        }
    });
    code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signaling_server_in_the_middle_shows_different_codes_and_never_gets_control() {
    let server = SignalingServer::start(&[]);
    let malicious = start_malicious_server(server.url.clone()).await;
    let sink = RecordingSink::new();
    let mut customer = customer_host(&malicious, sink.clone()).await;
    let mut events = customer.take_events().unwrap();
    let config = ViewerConfig::new(&malicious, customer.code(), "Tech").transport(TransportConfig::loopback());
    let join = tokio::spawn(Viewer::join(config));
    let customer_sees = match host_event(&mut events, |e| matches!(e, HostEvent::VerificationCode { .. })).await {
        HostEvent::VerificationCode { code, .. } => code,
        _ => unreachable!(),
    };
    let technician = timeout("the technician's join", join).await.unwrap().unwrap();

    // The attack works as far as WebRTC can tell: the technician sees the customer's screen through the relay.
    let frame = timeout("a relayed frame", technician.next_frame())
        .await
        .expect("frames through the relay");
    assert_eq!((frame.width(), frame.height()), (W, H));
    // ... but the two people read different codes.
    assert_ne!(
        technician.verification_code(),
        customer_sees,
        "a relay in the middle must change the code"
    );
    // The technician was granted full control by the attacker's host; the customer granted it too, but it is
    // not in force: the codes differ, so the customer's user never confirms. Input the attacker relays (or
    // sends on its own) is refused and nothing reaches the customer's desktop.
    assert_eq!(technician.permissions(), Permissions::FULL);
    for _ in 0..5 {
        technician
            .send_input(InputEvent::PointerMove { x: 0.5, y: 0.5 })
            .unwrap();
    }
    host_event(&mut events, |e| {
        matches!(
            e,
            HostEvent::Refused {
                code: ControlErrorCode::PermissionDenied,
                ..
            }
        )
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        sink.events().is_empty(),
        "input reached the customer: {:?}",
        sink.events()
    );
    technician.leave().await;
    customer.end("done").await;
}
