//! X11 screen capture: MIT-SHM for the grab, DAMAGE for what changed, XFixes for the cursor, RandR for monitors.
//!
//! Nothing is grabbed while the DAMAGE extension reports no change, so a still screen costs one non-blocking
//! event poll per tick, and [`ScreenSource::wait_for_change`] sleeps on the X connection until the first change, so
//! a screen that starts moving is grabbed at once rather than at the next tick. Works on any X server with these
//! extensions, Xvfb included.

use super::{wall_clock, CaptureError, Captured, CursorImage, CursorState, Monitor, ScreenSource};
use crate::frame::{BgraImage, Rect};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::damage::{self, ConnectionExt as _};
use x11rb::protocol::randr::ConnectionExt as _;
use x11rb::protocol::shm::{self, ConnectionExt as _};
use x11rb::protocol::xfixes::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{self, ConnectionExt as _, ImageFormat};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;

/// After a change, the grab waits until the screen has been quiet this long, so that a redraw made of several
/// requests is captured whole rather than half now and half a frame later...
const QUIET: Duration = Duration::from_millis(2);
/// ...but no longer than this after the first change, so that a screen that never rests is still grabbed.
const SETTLE: Duration = Duration::from_millis(10);
/// More changed rectangles than this in one grab are reported as their bounding box.
const MAX_DAMAGE_RECTS: usize = 64;

/// A shared-memory segment attached to the X server; detached and freed on drop.
struct ShmSegment {
    ptr: *mut u8,
    len: usize,
    seg: shm::Seg,
}

// SAFETY: the segment is plain memory owned by this struct; only `&self`/`&mut self` reach it.
unsafe impl Send for ShmSegment {}

impl ShmSegment {
    fn new(conn: &RustConnection, len: usize) -> Result<Self, CaptureError> {
        // SAFETY: plain System V shared-memory calls; results are checked before use.
        let id = unsafe { libc::shmget(libc::IPC_PRIVATE, len, libc::IPC_CREAT | 0o600) };
        if id < 0 {
            return Err(CaptureError::Unavailable(format!(
                "shmget: {}",
                std::io::Error::last_os_error()
            )));
        }
        // SAFETY: `id` is a fresh segment of `len` bytes.
        let ptr = unsafe { libc::shmat(id, std::ptr::null(), 0) };
        if ptr as isize == -1 {
            // SAFETY: removing the segment we just created.
            unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
            return Err(CaptureError::Unavailable(format!(
                "shmat: {}",
                std::io::Error::last_os_error()
            )));
        }
        let seg = conn.generate_id().map_err(lost)?;
        // read_only must be false: ShmGetImage writes into the segment (BadAccess otherwise).
        let attached = conn
            .shm_attach(seg, id as u32, false)
            .map_err(lost)
            .and_then(|c| c.check().map_err(lost));
        // SAFETY: mark for removal now; it lives until both sides detach.
        unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
        if let Err(e) = attached {
            // SAFETY: detaching our own mapping.
            unsafe { libc::shmdt(ptr) };
            return Err(e);
        }
        Ok(ShmSegment {
            ptr: ptr.cast(),
            len,
            seg,
        })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` bytes for the life of `self`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for ShmSegment {
    fn drop(&mut self) {
        // SAFETY: detaching our own mapping once.
        unsafe { libc::shmdt(self.ptr.cast()) };
    }
}

fn lost(e: impl std::fmt::Display) -> CaptureError {
    CaptureError::ConnectionLost(e.to_string())
}

/// Captures one monitor (or the whole screen) of an X11 display.
pub struct X11Source {
    conn: RustConnection,
    root: xproto::Window,
    area: Rect,
    segment: ShmSegment,
    damage: damage::Damage,
    region: xfixes::Region,
    pending_damage: bool,
    full_damage: bool,
    /// What changed since the last capture, or — when `handed_out` — what the last capture reported.
    damage_rects: Vec<Rect>,
    handed_out: bool,
    monitors: Vec<Monitor>,
    cursor_serial: Option<u32>,
}

impl std::fmt::Debug for X11Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("X11Source")
            .field("area", &self.area)
            .field("monitors", &self.monitors)
            .finish()
    }
}

impl X11Source {
    /// Opens `display` (or `$DISPLAY`) and captures monitor `monitor` (RandR order), or the whole screen for `None`.
    pub fn open(display: Option<&str>, monitor: Option<usize>) -> Result<Self, CaptureError> {
        let (conn, screen_num) =
            RustConnection::connect(display).map_err(|e| CaptureError::Unavailable(e.to_string()))?;
        for (name, ext) in [
            ("MIT-SHM", shm::X11_EXTENSION_NAME),
            ("DAMAGE", damage::X11_EXTENSION_NAME),
            ("XFIXES", xfixes::X11_EXTENSION_NAME),
        ] {
            if conn.extension_information(ext).map_err(lost)?.is_none() {
                return Err(CaptureError::MissingExtension(name));
            }
        }
        conn.xfixes_query_version(5, 0).map_err(lost)?.reply().map_err(lost)?;
        conn.damage_query_version(1, 1).map_err(lost)?.reply().map_err(lost)?;
        conn.shm_query_version().map_err(lost)?.reply().map_err(lost)?;

        let screen = &conn.setup().roots[screen_num];
        let root = screen.root;
        if screen.root_depth != 24 && screen.root_depth != 32 {
            return Err(CaptureError::Unavailable(format!(
                "unsupported root depth {}",
                screen.root_depth
            )));
        }
        let whole = Rect::new(
            0,
            0,
            u32::from(screen.width_in_pixels),
            u32::from(screen.height_in_pixels),
        );
        let monitors = list_monitors(&conn, root, whole)?;
        let area = match monitor {
            None => whole,
            Some(index) => {
                monitors
                    .get(index)
                    .ok_or(CaptureError::NoSuchMonitor {
                        index,
                        count: monitors.len(),
                    })?
                    .area
            }
        };
        let segment = ShmSegment::new(&conn, area.width as usize * area.height as usize * 4)?;

        let damage = conn.generate_id().map_err(lost)?;
        conn.damage_create(damage, root, damage::ReportLevel::NON_EMPTY)
            .map_err(lost)?;
        let region = conn.generate_id().map_err(lost)?;
        conn.xfixes_create_region(region, &[]).map_err(lost)?;
        conn.xfixes_select_cursor_input(root, xfixes::CursorNotifyMask::DISPLAY_CURSOR)
            .map_err(lost)?;
        conn.flush().map_err(lost)?;
        tracing::debug!(?area, monitors = monitors.len(), "X11 capture opened");
        Ok(X11Source {
            conn,
            root,
            area,
            segment,
            damage,
            region,
            pending_damage: true,
            full_damage: true,
            damage_rects: Vec::with_capacity(16),
            handed_out: false,
            monitors,
            cursor_serial: None,
        })
    }

    /// The captured area on the X screen.
    pub fn area(&self) -> Rect {
        self.area
    }

    fn drain_events(&mut self) -> Result<(), CaptureError> {
        while let Some(event) = self.conn.poll_for_event().map_err(lost)? {
            if let Event::DamageNotify(_) = event {
                self.pending_damage = true;
            }
        }
        Ok(())
    }

    /// Waits until DAMAGE sends a change notice, or until `until`; returns whether one came.
    fn wait_for_notice(&mut self, until: Instant) -> Result<bool, CaptureError> {
        loop {
            self.drain_events()?;
            if self.pending_damage {
                return Ok(true);
            }
            let Some(left) = until.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
                return Ok(false);
            };
            let mut fd = libc::pollfd {
                fd: self.conn.stream().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let timeout_ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd for the X connection's socket, which outlives the call.
            let ready = unsafe { libc::poll(&mut fd, 1, timeout_ms) };
            if ready < 0 {
                let error = std::io::Error::last_os_error();
                if error.kind() != std::io::ErrorKind::Interrupted {
                    return Err(lost(error));
                }
            }
        }
    }

    /// Whether anything changed that the last capture did not report.
    fn has_changes(&self) -> bool {
        self.pending_damage || self.full_damage || (!self.handed_out && !self.damage_rects.is_empty())
    }

    /// Moves the server's damage region into `damage_rects` (adding to what is there, unless that was handed out)
    /// and empties it, which re-arms DAMAGE's change notice.
    fn take_damage(&mut self) -> Result<(), CaptureError> {
        self.pending_damage = false;
        self.conn
            .damage_subtract(self.damage, x11rb::NONE, self.region)
            .map_err(lost)?;
        let reply = self
            .conn
            .xfixes_fetch_region(self.region)
            .map_err(lost)?
            .reply()
            .map_err(lost)?;
        if self.handed_out {
            self.damage_rects.clear();
            self.handed_out = false;
        }
        for r in reply.rectangles {
            // Translate to the captured area and clip to it.
            let (x0, y0) = (
                i64::from(r.x) - i64::from(self.area.x),
                i64::from(r.y) - i64::from(self.area.y),
            );
            let (x1, y1) = (x0 + i64::from(r.width), y0 + i64::from(r.height));
            let (w, h) = (i64::from(self.area.width), i64::from(self.area.height));
            let (cx0, cy0, cx1, cy1) = (x0.clamp(0, w), y0.clamp(0, h), x1.clamp(0, w), y1.clamp(0, h));
            if cx1 > cx0 && cy1 > cy0 {
                self.damage_rects.push(Rect::new(
                    cx0 as u32,
                    cy0 as u32,
                    (cx1 - cx0) as u32,
                    (cy1 - cy0) as u32,
                ));
            }
        }
        if self.damage_rects.len() > MAX_DAMAGE_RECTS {
            // Many small changes in one grab: report their bounding box instead.
            let bounds = self
                .damage_rects
                .iter()
                .skip(1)
                .fold(self.damage_rects[0], |a, r| a.union(r));
            self.damage_rects.clear();
            self.damage_rects.push(bounds);
        }
        Ok(())
    }
}

fn list_monitors(conn: &RustConnection, root: xproto::Window, whole: Rect) -> Result<Vec<Monitor>, CaptureError> {
    if conn
        .extension_information(x11rb::protocol::randr::X11_EXTENSION_NAME)
        .map_err(lost)?
        .is_none()
    {
        return Ok(vec![Monitor {
            name: "screen".into(),
            area: whole,
            primary: true,
        }]);
    }
    conn.randr_query_version(1, 5).map_err(lost)?.reply().map_err(lost)?;
    let reply = conn
        .randr_get_monitors(root, true)
        .map_err(lost)?
        .reply()
        .map_err(lost)?;
    let mut monitors = Vec::with_capacity(reply.monitors.len());
    for m in reply.monitors {
        let name = conn
            .get_atom_name(m.name)
            .map_err(lost)?
            .reply()
            .map(|r| String::from_utf8_lossy(&r.name).into_owned())
            .unwrap_or_default();
        let area = Rect::new(
            m.x.max(0) as u32,
            m.y.max(0) as u32,
            u32::from(m.width),
            u32::from(m.height),
        )
        .clipped(whole.width, whole.height);
        if !area.is_empty() {
            monitors.push(Monitor {
                name,
                area,
                primary: m.primary,
            });
        }
    }
    if monitors.is_empty() {
        monitors.push(Monitor {
            name: "screen".into(),
            area: whole,
            primary: true,
        });
    }
    Ok(monitors)
}

impl ScreenSource for X11Source {
    fn size(&self) -> (u32, u32) {
        (self.area.width, self.area.height)
    }

    fn capture(&mut self) -> Result<Option<Captured<'_>>, CaptureError> {
        self.drain_events()?;
        if self.pending_damage || self.full_damage {
            self.take_damage()?;
        }
        if self.handed_out {
            return Ok(None); // nothing new since the last capture
        }
        if self.full_damage {
            self.full_damage = false;
            self.damage_rects.clear();
            self.damage_rects
                .push(Rect::new(0, 0, self.area.width, self.area.height));
        }
        if self.damage_rects.is_empty() {
            return Ok(None);
        }
        let a = self.area;
        self.conn
            .shm_get_image(
                self.root,
                a.x as i16,
                a.y as i16,
                a.width as u16,
                a.height as u16,
                !0,
                ImageFormat::Z_PIXMAP.into(),
                self.segment.seg,
                0,
            )
            .map_err(lost)?
            .reply()
            .map_err(lost)?;
        let timestamp = wall_clock();
        let image = BgraImage::new(self.segment.bytes(), a.width, a.height, a.width as usize * 4)?;
        self.handed_out = true;
        Ok(Some(Captured {
            image,
            damage: &self.damage_rects,
            timestamp,
        }))
    }

    fn invalidate(&mut self) {
        self.full_damage = true;
    }

    fn wait_for_change(&mut self, deadline: Instant) -> Result<bool, CaptureError> {
        if !self.has_changes() && !self.wait_for_notice(deadline)? {
            return Ok(false);
        }
        // Let the redraw finish: take what changed so far (re-arming the notice) and wait while more keeps coming.
        let settle_until = (Instant::now() + SETTLE).min(deadline);
        loop {
            if self.pending_damage {
                self.take_damage()?;
            }
            if Instant::now() >= settle_until || !self.wait_for_notice((Instant::now() + QUIET).min(settle_until))? {
                return Ok(true);
            }
        }
    }

    fn cursor(&mut self) -> Result<Option<CursorState>, CaptureError> {
        let reply = self
            .conn
            .xfixes_get_cursor_image()
            .map_err(lost)?
            .reply()
            .map_err(lost)?;
        let x = i32::from(reply.x) - self.area.x as i32;
        let y = i32::from(reply.y) - self.area.y as i32;
        let image = if self.cursor_serial != Some(reply.cursor_serial) {
            self.cursor_serial = Some(reply.cursor_serial);
            let mut pixels = Vec::with_capacity(reply.cursor_image.len() * 4);
            for argb in &reply.cursor_image {
                // XFixes gives premultiplied ARGB in a u32; un-premultiply into BGRA bytes.
                let [b, g, r, a] = argb.to_le_bytes();
                let unmul = |c: u8| {
                    if a == 0 {
                        0
                    } else {
                        ((u16::from(c) * 255 + u16::from(a) / 2) / u16::from(a)).min(255) as u8
                    }
                };
                pixels.extend_from_slice(&[unmul(b), unmul(g), unmul(r), a]);
            }
            Some(CursorImage {
                width: u32::from(reply.width),
                height: u32::from(reply.height),
                hotspot_x: u32::from(reply.xhot),
                hotspot_y: u32::from(reply.yhot),
                pixels,
                serial: u64::from(reply.cursor_serial),
            })
        } else {
            None
        };
        Ok(Some(CursorState { x, y, image }))
    }

    fn monitors(&self) -> Vec<Monitor> {
        self.monitors.clone()
    }
}

impl Drop for X11Source {
    fn drop(&mut self) {
        let _ = self.conn.shm_detach(self.segment.seg);
        let _ = self.conn.damage_destroy(self.damage);
        let _ = self.conn.xfixes_destroy_region(self.region);
        let _ = self.conn.flush();
    }
}
