//! X11 capture under a private Xvfb: pixels the test draws come back exactly, damage covers what changed,
//! a still screen is not grabbed, the cursor and monitors are reported.
use peerdesk::capture::x11::X11Source;
use peerdesk::capture::{CaptureError, ScreenSource};
use peerdesk::frame::Rect;
use peerdesk_e2e::xvfb::Xvfb;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ChangeGCAux, ConnectionExt, CreateGCAux, Rectangle};
use x11rb::rust_connection::RustConnection;

struct Painter {
    conn: RustConnection,
    root: u32,
    gc: u32,
}

impl Painter {
    fn new(display: &str) -> Painter {
        let (conn, screen) = x11rb::connect(Some(display)).unwrap();
        let root = conn.setup().roots[screen].root;
        let gc = conn.generate_id().unwrap();
        conn.create_gc(
            gc,
            root,
            &CreateGCAux::new().subwindow_mode(x11rb::protocol::xproto::SubwindowMode::INCLUDE_INFERIORS),
        )
        .unwrap();
        Painter { conn, root, gc }
    }

    /// Fills a rectangle of the root window with 0xRRGGBB and waits until the server has done it.
    fn fill(&self, rect: Rect, rgb: u32) {
        self.conn
            .change_gc(self.gc, &ChangeGCAux::new().foreground(rgb))
            .unwrap();
        let r = Rectangle {
            x: rect.x as i16,
            y: rect.y as i16,
            width: rect.width as u16,
            height: rect.height as u16,
        };
        self.conn.poly_fill_rectangle(self.root, self.gc, &[r]).unwrap();
        self.conn.get_input_focus().unwrap().reply().unwrap();
    }
}

fn pixel(image: &peerdesk::frame::BgraImage<'_>, x: u32, y: u32) -> [u8; 3] {
    let row = image.row(y);
    let i = x as usize * 4;
    [row[i + 2], row[i + 1], row[i]]
}

#[test]
fn captures_drawn_pixels_and_damage_under_xvfb() {
    let Some(xvfb) = Xvfb::start(640, 480) else {
        return;
    };
    let painter = Painter::new(&xvfb.display);
    painter.fill(Rect::new(0, 0, 640, 480), 0x000000);
    painter.fill(Rect::new(10, 20, 100, 50), 0xff8000);
    painter.fill(Rect::new(300, 200, 40, 40), 0x2040c0);

    let mut source = X11Source::open(Some(&xvfb.display), None).unwrap();
    assert_eq!(source.size(), (640, 480));
    {
        let captured = source
            .capture()
            .unwrap()
            .expect("first capture returns the whole screen");
        assert_eq!(captured.damage, &[Rect::new(0, 0, 640, 480)]);
        assert_eq!(pixel(&captured.image, 10, 20), [0xff, 0x80, 0x00]);
        assert_eq!(pixel(&captured.image, 109, 69), [0xff, 0x80, 0x00]);
        assert_eq!(pixel(&captured.image, 110, 70), [0, 0, 0]);
        assert_eq!(pixel(&captured.image, 320, 220), [0x20, 0x40, 0xc0]);
        // Every pixel outside the two rectangles is black.
        let mut coloured = 0;
        for y in 0..480 {
            for x in 0..640 {
                if pixel(&captured.image, x, y) != [0, 0, 0] {
                    coloured += 1;
                }
            }
        }
        assert_eq!(coloured, 100 * 50 + 40 * 40);
    }

    // Nothing drawn: no grab, no picture.
    assert!(source.capture().unwrap().is_none());

    // A change is reported with damage covering it, and only around it.
    let changed = Rect::new(500, 400, 30, 20);
    painter.fill(changed, 0x00ff00);
    let captured = source.capture().unwrap().expect("damage reported");
    assert_eq!(pixel(&captured.image, 510, 410), [0, 0xff, 0]);
    let bounds = captured.damage.iter().fold(Rect::default(), |acc, r| acc.union(r));
    assert!(
        bounds.contains_rect(&changed),
        "damage {:?} misses {changed:?}",
        captured.damage
    );
    assert!(
        bounds.area() <= changed.area() * 4,
        "damage {:?} far larger than the change",
        captured.damage
    );

    assert!(source.capture().unwrap().is_none());
    source.invalidate();
    let captured = source.capture().unwrap().expect("invalidate forces a full picture");
    assert_eq!(captured.damage, &[Rect::new(0, 0, 640, 480)]);
}

#[test]
fn monitors_cursor_and_monitor_errors() {
    let Some(xvfb) = Xvfb::start(800, 600) else {
        return;
    };
    let mut source = X11Source::open(Some(&xvfb.display), Some(0)).unwrap();
    let monitors = source.monitors();
    assert!(!monitors.is_empty());
    assert_eq!(monitors[0].area, Rect::new(0, 0, 800, 600));
    assert!(matches!(
        X11Source::open(Some(&xvfb.display), Some(7)),
        Err(CaptureError::NoSuchMonitor { index: 7, .. })
    ));
    assert!(matches!(
        X11Source::open(Some(":4242"), None),
        Err(CaptureError::Unavailable(_))
    ));

    let painter = Painter::new(&xvfb.display);
    painter
        .conn
        .warp_pointer(x11rb::NONE, painter.root, 0, 0, 0, 0, 123, 45)
        .unwrap();
    painter.conn.get_input_focus().unwrap().reply().unwrap();
    let first = source.cursor().unwrap().expect("X11 has a cursor");
    assert_eq!((first.x, first.y), (123, 45));
    let image = first.image.expect("first call carries the image");
    assert_eq!(image.pixels.len(), (image.width * image.height * 4) as usize);
    let second = source.cursor().unwrap().unwrap();
    assert!(second.image.is_none(), "unchanged cursor image is not sent again");
}

#[test]
fn waits_for_the_first_change_of_a_still_screen() {
    use std::time::{Duration, Instant};
    let Some(xvfb) = Xvfb::start(320, 240) else {
        return;
    };
    let mut source = X11Source::open(Some(&xvfb.display), None).unwrap();
    assert!(source.capture().unwrap().is_some(), "first capture: the whole screen");
    // A change notice sent before that grab may still be queued; a capture consumes it.
    assert!(source.capture().unwrap().is_none());
    // Nothing drawn: the wait lasts until the deadline and says so.
    assert!(!source
        .wait_for_change(Instant::now() + Duration::from_millis(100))
        .unwrap());
    assert!(source.capture().unwrap().is_none());
    // Something drawn while waiting: the wait ends with it, long before the deadline.
    let display = xvfb.display.clone();
    let drawer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        Painter::new(&display).fill(Rect::new(50, 60, 30, 20), 0xffffff);
    });
    let started = Instant::now();
    assert!(source.wait_for_change(started + Duration::from_secs(30)).unwrap());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "woke by the change, not the deadline"
    );
    drawer.join().unwrap();
    let captured = source.capture().unwrap().expect("the change is captured");
    assert!(captured
        .damage
        .iter()
        .any(|r| r.contains_rect(&Rect::new(50, 60, 30, 20))));
    assert_eq!(pixel(&captured.image, 60, 70), [0xff, 0xff, 0xff]);
}
