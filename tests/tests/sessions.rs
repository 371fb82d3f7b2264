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
    let source = SyntheticSource::new(SyntheticConfig {
        width: W,
        height: H,
        ..Default::default()
    })
    .unwrap();
    let config = HostConfig::new(&server.url)
        .name("test desk")
        .transport(TransportConfig::loopback())
        .max_bitrate(1_500_000);
    Host::start(config, Box::new(source), input.map(|s| Box::new(s) as _))
        .await
        .unwrap()
}

fn viewer_config(server: &SignalingServer, code: &str) -> ViewerConfig {
    ViewerConfig::new(&server.url, code, "Tech").transport(TransportConfig::loopback())
}

/// Answers every join request of `host` with `consent`, forwarding other events.
fn auto_answer(
    mut host: Host,
    consent: Consent,
) -> (
    tokio::sync::mpsc::UnboundedReceiver<HostEvent>,
    tokio::sync::oneshot::Sender<()>,
    std::sync::Arc<tokio::sync::Mutex<Option<Host>>>,
) {
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
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_receives_the_hosts_frames_in_order_and_intact() {
    let server = SignalingServer::start(&[]);
    let host = start_host(&server, None).await;
    assert_eq!(host.code().len(), 10);
    let code = host.code().to_string();
    let (_events, _stop, _slot) = auto_answer(host, Consent::Allow(Permissions::VIEW_ONLY));
    let started = std::time::Instant::now();
    let viewer = timeout("join", Viewer::join(viewer_config(&server, &code)))
        .await
        .unwrap();
    assert_eq!(viewer.screen_size(), (W, H));
    eprintln!("join returned after {:?}", started.elapsed());
    assert_eq!(viewer.host_name(), "test desk");
    assert_eq!(viewer.permissions(), Permissions::VIEW_ONLY);

    let mut reference = SyntheticDesktop::new(SyntheticConfig {
        width: W,
        height: H,
        ..Default::default()
    })
    .unwrap();
    let mut last_number = None;
    let mut checked = 0;
    let mut first_frame = None;
    while checked < 40 {
        let frame = timeout("a frame", viewer.next_frame())
            .await
            .expect("frames keep coming");
        first_frame.get_or_insert_with(|| started.elapsed());
        let decoded = frame.to_frame().unwrap();
        let stamp = stamp::read_i420(&decoded).expect("frame stamp readable");
        if let Some(last) = last_number {
            assert!(stamp.frame_number > last, "frame {} after {}", stamp.frame_number, last);
        }
        last_number = Some(stamp.frame_number);
        // The decoded frame carries the host's capture time (the synthetic desktop stamps the same clock), not
        // the time it arrived here (which is later by the whole glass-to-glass latency).
        let carried = frame.timestamp.as_millis() as u32;
        assert!(
            carried.abs_diff(stamp.capture_millis) <= 1,
            "frame {}: timestamp {carried} ms, captured at {} ms",
            stamp.frame_number,
            stamp.capture_millis
        );
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

    // A keyframe request (RTCP PLI) from the viewer is answered with a keyframe.
    let keyframes = viewer.stats().keyframes;
    assert!(keyframes >= 1, "the stream starts with a keyframe");
    viewer.request_keyframe();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while viewer.stats().keyframes == keyframes {
        assert!(std::time::Instant::now() < deadline, "no keyframe answered the PLI");
        timeout("a frame", viewer.next_frame())
            .await
            .expect("frames keep coming");
    }
    viewer.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_denied_is_a_typed_error_at_the_viewer() {
    let server = SignalingServer::start(&[]);
    let host = start_host(&server, None).await;
    let code = host.code().to_string();
    let (_events, _stop, _slot) = auto_answer(host, Consent::Deny("not today".into()));
    let err = timeout("join", Viewer::join(viewer_config(&server, &code)))
        .await
        .unwrap_err();
    assert_eq!(err, SessionError::Denied("not today".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_and_expired_codes_are_rejected() {
    let server = SignalingServer::start(&["--code-ttl-secs", "1"]);
    let host = start_host(&server, None).await;
    let code = host.code().to_string();
    let wrong = if code.starts_with('1') {
        code.replacen('1', "2", 1)
    } else {
        format!("1{}", &code[1..])
    };
    let err = timeout("join", Viewer::join(viewer_config(&server, &wrong)))
        .await
        .unwrap_err();
    assert_eq!(err, SessionError::InvalidCode);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let err = timeout("join", Viewer::join(viewer_config(&server, &code)))
        .await
        .unwrap_err();
    assert_eq!(err, SessionError::ExpiredCode);
    drop(host);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessed_code_floods_are_limited() {
    let server = SignalingServer::start(&["--join-failures-per-addr", "5"]);
    let host = start_host(&server, None).await;
    let code = host.code().to_string();
    let mut outcomes = Vec::new();
    for guess in 0..8u64 {
        let guess = format!("{:010}", (guess * 7_919_111) % 10_000_000_000);
        if guess == code {
            continue;
        }
        outcomes.push(
            timeout("guess", Viewer::join(viewer_config(&server, &guess)))
                .await
                .unwrap_err(),
        );
    }
    assert!(
        outcomes[..5].iter().all(|e| *e == SessionError::InvalidCode),
        "{outcomes:?}"
    );
    assert!(
        outcomes[5..].iter().all(|e| matches!(e, SessionError::RateLimited(_))),
        "{outcomes:?}"
    );
    // Even the right code is refused from this address now: guessing cannot continue.
    let err = timeout("join", Viewer::join(viewer_config(&server, &code)))
        .await
        .unwrap_err();
    assert!(matches!(err, SessionError::RateLimited(_)), "{err:?}");
    drop(host);
}

/// Waits for an event matching `pred`, skipping others (cursor updates).
async fn viewer_event(viewer: &mut Viewer, pred: impl Fn(&ViewerEvent) -> bool) -> ViewerEvent {
    loop {
        let event = timeout("viewer event", viewer.next_event())
            .await
            .expect("session alive");
        if pred(&event) {
            return event;
        }
    }
}

async fn host_event(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<HostEvent>,
    pred: impl Fn(&HostEvent) -> bool,
) -> HostEvent {
    loop {
        let event = timeout("host event", events.recv()).await.expect("host alive");
        if pred(&event) {
            return event;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_are_enforced_by_the_host_and_revocable() {
    let server = SignalingServer::start(&[]);
    let sink = RecordingSink::new();
    let mut host = start_host(&server, Some(sink.clone())).await;
    let code = host.code().to_string();
    let join = tokio::spawn({
        let config = viewer_config(&server, &code);
        async move { Viewer::join(config).await }
    });
    let request = match timeout("join request", host.next_event()).await.unwrap() {
        HostEvent::JoinRequest(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(request.name, "Tech");
    let viewer_id = request.viewer.clone();
    request.answer(Consent::Allow(Permissions::VIEW_ONLY));
    let mut viewer = timeout("join", join).await.unwrap().unwrap();
    let (mut events, stop, slot) = auto_answer(host, Consent::Deny("busy".into()));
    host_event(&mut events, |e| matches!(e, HostEvent::ViewerConnected { .. })).await;

    // View only: input and clipboard are refused by the host, nothing reaches the sink.
    viewer.send_input(InputEvent::PointerMove { x: 0.5, y: 0.5 }).unwrap();
    let refused = viewer_event(&mut viewer, |e| matches!(e, ViewerEvent::Refused { .. })).await;
    assert!(matches!(
        refused,
        ViewerEvent::Refused {
            code: ControlErrorCode::PermissionDenied,
            ..
        }
    ));
    viewer.send_clipboard("secret").unwrap();
    viewer_event(&mut viewer, |e| {
        matches!(
            e,
            ViewerEvent::Refused {
                code: ControlErrorCode::PermissionDenied,
                ..
            }
        )
    })
    .await;
    host_event(&mut events, |e| matches!(e, HostEvent::Refused { .. })).await;
    assert!(sink.events().is_empty());

    // Grant control and clipboard: input arrives, clipboard goes both ways.
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let host = slot.lock().await.take().unwrap();
    host.set_permissions(&viewer_id, Permissions::FULL);
    let changed = viewer_event(&mut viewer, |e| matches!(e, ViewerEvent::PermissionsChanged(_))).await;
    assert_eq!(changed, ViewerEvent::PermissionsChanged(Permissions::FULL));
    assert_eq!(viewer.permissions(), Permissions::FULL);
    let (mut events, stop, slot) = auto_answer(host, Consent::Deny("busy".into()));
    viewer.send_input(InputEvent::PointerMove { x: 0.25, y: 0.75 }).unwrap();
    viewer
        .send_input(InputEvent::PointerButton {
            button: MouseButton::Left,
            pressed: true,
        })
        .unwrap();
    viewer.send_clipboard("from the technician").unwrap();
    let clip = host_event(&mut events, |e| matches!(e, HostEvent::Clipboard { .. })).await;
    assert!(matches!(clip, HostEvent::Clipboard { text, .. } if text == "from the technician"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        sink.events(),
        vec![
            InputEvent::PointerMove { x: 0.25, y: 0.75 },
            InputEvent::PointerButton {
                button: MouseButton::Left,
                pressed: true
            }
        ]
    );
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let host = slot.lock().await.take().unwrap();
    host.send_clipboard("from the customer").unwrap();
    let clip = viewer_event(&mut viewer, |e| matches!(e, ViewerEvent::Clipboard(_))).await;
    assert_eq!(clip, ViewerEvent::Clipboard("from the customer".into()));

    // Revoke during the session: the next input is refused.
    host.set_permissions(&viewer_id, Permissions::VIEW_ONLY);
    viewer_event(&mut viewer, |e| {
        matches!(e, ViewerEvent::PermissionsChanged(Permissions::VIEW_ONLY))
    })
    .await;
    viewer
        .send_input(InputEvent::Key {
            code: "KeyA".into(),
            pressed: true,
        })
        .unwrap();
    viewer_event(&mut viewer, |e| {
        matches!(
            e,
            ViewerEvent::Refused {
                code: ControlErrorCode::PermissionDenied,
                ..
            }
        )
    })
    .await;
    // The revoke let go of the button the viewer held (before, it stayed pressed on the customer's desktop),
    // and nothing after the revoke was injected. The release goes through the input thread, which may not have
    // run yet when the refusal arrives (seen on a loaded machine): give it up to 2 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while sink.events().len() < 3 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        sink.events(),
        vec![
            InputEvent::PointerMove { x: 0.25, y: 0.75 },
            InputEvent::PointerButton {
                button: MouseButton::Left,
                pressed: true
            },
            InputEvent::PointerButton {
                button: MouseButton::Left,
                pressed: false
            }
        ]
    );

    // The host ends the session: the viewer is told why and its frames stop.
    host.end("support finished").await;
    let ended = viewer_event(&mut viewer, |e| matches!(e, ViewerEvent::Ended { .. })).await;
    assert_eq!(
        ended,
        ViewerEvent::Ended {
            reason: "support finished".into()
        }
    );
    let mut remaining = 0;
    while timeout("frames end", viewer.next_frame()).await.is_some() {
        remaining += 1;
        assert!(remaining < 10, "frames kept coming after the end");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_viewers_watch_one_host() {
    let server = SignalingServer::start(&[]);
    let host = start_host(&server, None).await;
    let first_code = host.code().to_string();
    let second_code = host.invite().await.unwrap();
    assert_ne!(first_code, second_code);
    let (_events, _stop, _slot) = auto_answer(host, Consent::Allow(Permissions::VIEW_ONLY));
    let (a, b) = tokio::join!(
        Viewer::join(viewer_config(&server, &first_code)),
        Viewer::join(viewer_config(&server, &second_code))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    for viewer in [&a, &b] {
        let mut numbers = Vec::new();
        for _ in 0..10 {
            let frame = timeout("frame", viewer.next_frame()).await.unwrap().to_frame().unwrap();
            numbers.push(stamp::read_i420(&frame).expect("stamp").frame_number);
        }
        assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
    }
    // A code is single use: a third viewer with the first code is refused.
    let err = timeout("join", Viewer::join(viewer_config(&server, &first_code)))
        .await
        .unwrap_err();
    assert_eq!(err, SessionError::InvalidCode);
}

/// Before, the viewer's loop awaited a never-ending future once signaling closed: chat, permission changes and the
/// end of the session stopped arriving (a signaling-server restart froze every technician).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_goes_on_when_the_signaling_server_dies() {
    let mut server = SignalingServer::start(&[]);
    let host = start_host(&server, None).await;
    let code = host.code().to_string();
    let (mut events, stop, slot) = auto_answer(host, Consent::Allow(Permissions::VIEW_ONLY));
    let mut viewer = timeout("join", Viewer::join(viewer_config(&server, &code)))
        .await
        .unwrap();
    host_event(&mut events, |e| matches!(e, HostEvent::ViewerConnected { .. })).await;
    server.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let host = slot.lock().await.take().unwrap();
    host.send_chat("still there?").unwrap();
    let chat = viewer_event(&mut viewer, |e| matches!(e, ViewerEvent::Chat(_))).await;
    assert_eq!(chat, ViewerEvent::Chat("still there?".into()));
    host.end("done").await;
    let ended = viewer_event(&mut viewer, |e| matches!(e, ViewerEvent::Ended { .. })).await;
    assert_eq!(ended, ViewerEvent::Ended { reason: "done".into() });
}

/// Before, a view-only viewer could send chat at the control channel's rate (400/s, burst 800) into an unbounded
/// event queue of an app that reads slowly. Chat and clipboard now have a rate people can read, and the app's
/// queue is bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_flood_from_a_viewer_reaches_the_app_at_a_readable_rate() {
    let server = SignalingServer::start(&[]);
    let mut host = start_host(&server, None).await;
    let code = host.code().to_string();
    let mut events = host.take_events().unwrap();
    let join = tokio::spawn(Viewer::join(viewer_config(&server, &code)));
    loop {
        match timeout("join request", events.recv()).await.unwrap() {
            HostEvent::JoinRequest(request) => {
                request.answer(Consent::Allow(Permissions::VIEW_ONLY));
                break;
            }
            _ => continue,
        }
    }
    let mut viewer = timeout("join", join).await.unwrap().unwrap();
    let started = std::time::Instant::now();
    // The viewer's own command queue holds 1,024; past that its app is told to slow down, and the rest of the
    // flood is not sent.
    for i in 0..2000 {
        match viewer.send_chat(format!("spam {i}")) {
            Ok(()) | Err(SessionError::RateLimited(_)) => {}
            Err(e) => panic!("chat not sent: {e}"),
        }
    }
    viewer_event(&mut viewer, |e| {
        matches!(
            e,
            ViewerEvent::Refused {
                code: ControlErrorCode::RateLimited,
                ..
            }
        )
    })
    .await;
    // The app did not read its events meanwhile; now it does.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seconds = started.elapsed().as_secs_f64();
    let mut chats = 0;
    while let Some(event) = events.try_recv() {
        if matches!(event, HostEvent::Chat { .. }) {
            chats += 1;
        }
    }
    let allowed = 20.0 + 5.0 * seconds;
    assert!(
        chats >= 20 && f64::from(chats) <= allowed + 1.0,
        "{chats} chat events in {seconds:.1} s (at most {allowed:.0} allowed)"
    );
    assert_eq!(events.dropped(), 0, "nothing the app needs was dropped");
    viewer.leave().await;
    host.end("done").await;
}

/// Before, a host whose signaling connection closed never reconnected: after a server restart nobody new could
/// join until the customer restarted sharing. Now it reconnects with a growing wait, registers again and hands
/// out a new code, while the viewer already connected goes on peer to peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_reconnects_after_a_signaling_restart_and_new_viewers_join() {
    let mut server = SignalingServer::start(&[]);
    let addr = server.addr();
    let host = start_host(&server, None).await;
    let code = host.code().to_string();
    let (mut events, stop, slot) = auto_answer(host, Consent::Allow(Permissions::VIEW_ONLY));
    let mut first = timeout("join", Viewer::join(viewer_config(&server, &code)))
        .await
        .unwrap();
    host_event(&mut events, |e| matches!(e, HostEvent::ViewerConnected { .. })).await;
    server.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The same address, a new process: all its state is gone.
    let server = SignalingServer::start(&["--listen", &addr]);
    let restored = host_event(&mut events, |e| matches!(e, HostEvent::SignalingRestored { .. })).await;
    let HostEvent::SignalingRestored { code: new_code } = restored else {
        unreachable!()
    };
    assert_ne!(new_code, code);
    let second = timeout(
        "a join with the new code",
        Viewer::join(viewer_config(&server, &new_code)),
    )
    .await
    .unwrap();
    timeout("a frame for the new viewer", second.next_frame())
        .await
        .expect("frames");
    // The first viewer never noticed.
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let host = slot.lock().await.take().unwrap();
    host.send_chat("still here").unwrap();
    let chat = viewer_event(&mut first, |e| matches!(e, ViewerEvent::Chat(_))).await;
    assert_eq!(chat, ViewerEvent::Chat("still here".into()));
    host.end("done").await;
}
