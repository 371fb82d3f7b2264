//! `x11-painter`: plays the synthetic desktop on a real X screen, as a user's moving screen for end-to-end
//! latency benchmarks.
//!
//! It covers the screen with a window and draws picture after picture of the synthetic desktop into it at a fixed
//! rate, sending only the rectangles that changed. Every picture carries a frame stamp whose capture time is the
//! moment the painter started drawing it, so whatever captures this screen (peerdesk's X11 capture, a browser's
//! screen share) can be read back on the far side and timed against the same clock.
//!
//! Prints `painting WxH at N fps on DISPLAY` once the first picture is on screen.

use anyhow::Context;
use clap::Parser;
use peerdesk::capture::synthetic::{SyntheticConfig, SyntheticDesktop};
use peerdesk::capture::wall_clock;
use peerdesk::Rect;
use std::time::{Duration, Instant};
use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::xproto::{ConnectionExt as _, CreateGCAux, CreateWindowAux, ImageFormat, WindowClass};
use x11rb::rust_connection::RustConnection;

#[derive(Parser, Debug)]
#[command(about = "Draw the synthetic desktop, with frame stamps, onto an X screen")]
struct Args {
    /// X display (default: $DISPLAY).
    #[arg(long)]
    display: Option<String>,
    /// Pictures per second.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Stop after this many seconds (default: run until killed).
    #[arg(long)]
    seconds: Option<f64>,
}

/// A window covering the screen, and the means to put BGRA rectangles into it.
struct Canvas {
    conn: RustConnection,
    window: u32,
    gc: u32,
    depth: u8,
    max_request_bytes: usize,
    rows: Vec<u8>,
}

impl Canvas {
    fn open(display: Option<&str>) -> anyhow::Result<(Canvas, u32, u32)> {
        let (conn, screen_index) = x11rb::connect(display).context("connect to the X display")?;
        let screen = conn.setup().roots[screen_index].clone();
        anyhow::ensure!(
            screen.root_depth == 24 || screen.root_depth == 32,
            "the X screen must be 24 or 32 bits deep, not {}",
            screen.root_depth
        );
        let (width, height) = (u32::from(screen.width_in_pixels), u32::from(screen.height_in_pixels));
        let window = conn.generate_id()?;
        conn.create_window(
            screen.root_depth,
            window,
            screen.root,
            0,
            0,
            screen.width_in_pixels,
            screen.height_in_pixels,
            0,
            WindowClass::INPUT_OUTPUT,
            0,
            &CreateWindowAux::new().override_redirect(1).background_pixel(0),
        )?;
        conn.map_window(window)?;
        let gc = conn.generate_id()?;
        conn.create_gc(gc, window, &CreateGCAux::new())?;
        let max_request_bytes = conn.maximum_request_bytes();
        let canvas = Canvas {
            conn,
            window,
            gc,
            depth: screen.root_depth,
            max_request_bytes,
            rows: Vec::new(),
        };
        Ok((canvas, width, height))
    }

    /// Puts `rect` of a BGRA picture (`stride` bytes per row) into the window, in requests under the server's limit.
    fn put(&mut self, pixels: &[u8], stride: usize, rect: Rect) -> anyhow::Result<()> {
        let row_bytes = rect.width as usize * 4;
        let rows_per_request = ((self.max_request_bytes - 64) / row_bytes).max(1);
        let mut y = rect.y;
        while y < rect.bottom() {
            let rows = (rect.bottom() - y).min(rows_per_request as u32);
            self.rows.clear();
            for row in y..y + rows {
                let start = row as usize * stride + rect.x as usize * 4;
                self.rows.extend_from_slice(&pixels[start..start + row_bytes]);
            }
            self.conn.put_image(
                ImageFormat::Z_PIXMAP,
                self.window,
                self.gc,
                rect.width as u16,
                rows as u16,
                rect.x as i16,
                y as i16,
                0,
                self.depth,
                &self.rows,
            )?;
            y += rows;
        }
        Ok(())
    }

    /// Waits until the X server has carried out every request sent so far.
    fn sync(&self) -> anyhow::Result<()> {
        self.conn.get_input_focus()?.reply()?;
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!((1..=240).contains(&args.fps), "--fps must be 1 to 240");
    let display_name = args
        .display
        .clone()
        .or_else(|| std::env::var("DISPLAY").ok())
        .unwrap_or_default();
    let (mut canvas, width, height) = Canvas::open(args.display.as_deref())?;
    let mut desktop = SyntheticDesktop::new(SyntheticConfig {
        fps: args.fps,
        ..SyntheticConfig::with_size(width, height)
    })?;
    let interval = Duration::from_secs(1) / args.fps;
    let started = Instant::now();
    let mut next = started;
    for n in 0u64.. {
        if args.seconds.is_some_and(|s| started.elapsed().as_secs_f64() >= s) {
            break;
        }
        let stamp_millis = wall_clock().as_millis() as u32;
        let frame = desktop.render(n, stamp_millis);
        let (pixels, stride) = (frame.plane(0), frame.stride(0));
        for &rect in &frame.damage {
            canvas.put(pixels, stride, rect)?;
        }
        canvas.sync()?;
        if n == 0 {
            println!("painting {width}x{height} at {} fps on {display_name}", args.fps);
        }
        next += interval;
        match next.checked_duration_since(Instant::now()) {
            Some(wait) => std::thread::sleep(wait),
            None => next = Instant::now(), // fell behind: paint the next picture at once, keep the rate after it
        }
    }
    Ok(())
}
