//! A host sharing a real X display (Xvfb) with XTest input: the viewer sees what is drawn there, and its pointer
//! moves and key presses arrive on the display, only while control is granted.

use peerdesk::capture::x11::X11Source;
use peerdesk::control::{ControlErrorCode, InputEvent, Permissions};
use peerdesk::input::x11::XTestSink;
use peerdesk::session::{Consent, Host, HostConfig, HostEvent, Viewer, ViewerConfig, ViewerEvent};
use peerdesk::transport::TransportConfig;
use peerdesk_e2e::xvfb::Xvfb;
use peerdesk_e2e::SignalingServer;
use std::time::Duration;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ChangeGCAux, ConnectionExt, CreateGCAux, CreateWindowAux, EventMask, InputFocus, Rectangle, WindowClass,
};
use x11rb::protocol::Event;

async fn timeout<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_sees_the_x_screen_and_controls_it_through_xtest() {
    let Some(xvfb) = Xvfb::start(800, 600) else {
        return;
    };
    let (conn, screen) = x11rb::connect(Some(&xvfb.display)).unwrap();
    let root = conn.setup().roots[screen].root;
    // A focused window that records key presses, painted a known colour.
    let window = conn.generate_id().unwrap();
    conn.create_window(
        24,
        window,
        root,
        0,
        0,
        800,
        600,
        0,
        WindowClass::INPUT_OUTPUT,
        0,
        &CreateWindowAux::new()
            .background_pixel(0x2060a0)
            .event_mask(EventMask::KEY_PRESS | EventMask::EXPOSURE),
    )
    .unwrap();
    conn.map_window(window).unwrap();
    conn.get_input_focus().unwrap().reply().unwrap();
    conn.set_input_focus(InputFocus::PARENT, window, x11rb::CURRENT_TIME)
        .unwrap();
    let gc = conn.generate_id().unwrap();
    conn.create_gc(gc, window, &CreateGCAux::new()).unwrap();
    conn.change_gc(gc, &ChangeGCAux::new().foreground(0xf0c000)).unwrap();
    conn.poly_fill_rectangle(
        window,
        gc,
        &[Rectangle {
            x: 400,
            y: 300,
            width: 200,
            height: 150,
        }],
    )
    .unwrap();
    conn.get_input_focus().unwrap().reply().unwrap();

    let server = SignalingServer::start(&[]);
    let source = X11Source::open(Some(&xvfb.display), None).unwrap();
    let sink = XTestSink::open(Some(&xvfb.display), None).unwrap();
    let config = HostConfig::new(&server.url).transport(TransportConfig::loopback());
    let mut host = Host::start(config, Box::new(source), Some(Box::new(sink)))
        .await
        .unwrap();
    let code = host.code().to_string();
    let join = tokio::spawn(Viewer::join(
        ViewerConfig::new(&server.url, code, "Tech").transport(TransportConfig::loopback()),
    ));
    let viewer_id = match timeout("request", host.next_event()).await.unwrap() {
        HostEvent::JoinRequest(r) => {
            let id = r.viewer.clone();
            r.answer(Consent::Allow(Permissions::VIEW_ONLY));
            id
        }
        other => panic!("{other:?}"),
    };
    let mut viewer = timeout("join", join).await.unwrap().unwrap();
    assert_eq!(viewer.screen_size(), (800, 600));

    // The picture: the drawn rectangle's colour at its centre, the window's elsewhere.
    let frame = timeout("frame", viewer.next_frame()).await.unwrap();
    let mut rgba = vec![0u8; 800 * 600 * 4];
    frame.write_rgba(&mut rgba, 800 * 4).unwrap();
    let px = |x: usize, y: usize| &rgba[(y * 800 + x) * 4..(y * 800 + x) * 4 + 3];
    let near = |a: &[u8], b: [u8; 3]| a.iter().zip(b).all(|(&p, q)| (p as i32 - q as i32).abs() <= 12);
    assert!(
        near(px(500, 375), [0xf0, 0xc0, 0x00]),
        "rectangle colour {:?}",
        px(500, 375)
    );
    assert!(
        near(px(100, 100), [0x20, 0x60, 0xa0]),
        "window colour {:?}",
        px(100, 100)
    );

    // View only: the pointer does not move.
    let before = conn.query_pointer(root).unwrap().reply().unwrap();
    viewer.send_input(InputEvent::PointerMove { x: 0.9, y: 0.9 }).unwrap();
    loop {
        if let ViewerEvent::Refused { code, .. } = timeout("refusal", viewer.next_event()).await.unwrap() {
            assert_eq!(code, ControlErrorCode::PermissionDenied);
            break;
        }
    }
    let after = conn.query_pointer(root).unwrap().reply().unwrap();
    assert_eq!((before.root_x, before.root_y), (after.root_x, after.root_y));

    // Control granted: pointer and key arrive on the display.
    host.set_permissions(&viewer_id, Permissions::CONTROL);
    loop {
        if let ViewerEvent::PermissionsChanged(p) = timeout("grant", viewer.next_event()).await.unwrap() {
            assert!(p.control);
            break;
        }
    }
    viewer.send_input(InputEvent::PointerMove { x: 0.5, y: 0.25 }).unwrap();
    viewer
        .send_input(InputEvent::Key {
            code: "KeyA".into(),
            pressed: true,
        })
        .unwrap();
    viewer
        .send_input(InputEvent::Key {
            code: "KeyA".into(),
            pressed: false,
        })
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut moved = false;
    while std::time::Instant::now() < deadline && !moved {
        let p = conn.query_pointer(root).unwrap().reply().unwrap();
        moved = (p.root_x - 400).abs() <= 1 && (p.root_y - 150).abs() <= 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(moved, "pointer did not reach (400, 150)");
    let mapping = conn
        .get_keyboard_mapping(
            conn.setup().min_keycode,
            conn.setup().max_keycode - conn.setup().min_keycode + 1,
        )
        .unwrap()
        .reply()
        .unwrap();
    let per = mapping.keysyms_per_keycode as usize;
    let mut pressed = None;
    while std::time::Instant::now() < deadline && pressed.is_none() {
        while let Some(event) = conn.poll_for_event().unwrap() {
            if let Event::KeyPress(k) = event {
                pressed = Some(k.detail);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let keycode = pressed.expect("a key press reached the focused window");
    let keysym = mapping.keysyms[(keycode - conn.setup().min_keycode) as usize * per];
    assert_eq!(keysym, u32::from(b'a'));
    host.end("done").await;
}
