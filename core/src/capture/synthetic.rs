//! A synthetic desktop: a deterministic, moving test screen for demos, tests and benchmarks on machines without a
//! display.
//!
//! It shows a terminal whose log text scrolls, an editor in which text is typed behind a blinking cursor, a
//! picture viewer with colour gradients, a taskbar with a clock, and a frame stamp in the top-left
//! corner. Picture `n` depends only on `n` (and the stamp time), whatever was rendered before, so a test can render
//! the same picture again to compare decoded pixels with. Only what changed is redrawn and reported as damage.

use super::stamp::{self, FrameStamp};
use super::{wall_clock, CaptureError, Captured, ScreenSource};
use crate::frame::{Frame, FrameError, PixelFormat, Rect};
use std::time::{Duration, Instant};

/// What the synthetic desktop shows and how fast it moves.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticConfig {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Pictures per second (sets how far content moves per picture).
    pub fps: u32,
    /// Terminal lines scrolled per second; 0 for a still terminal.
    pub scroll_lines_per_second: u32,
    /// Characters typed per second in the editor; 0 for none.
    pub typing_chars_per_second: u32,
    /// Whether to draw the frame stamp.
    pub stamp: bool,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            width: 1920,
            height: 1080,
            fps: 30,
            scroll_lines_per_second: 15,
            typing_chars_per_second: 12,
            stamp: true,
        }
    }
}

impl SyntheticConfig {
    /// The default desktop at another size.
    pub fn with_size(width: u32, height: u32) -> Self {
        SyntheticConfig {
            width,
            height,
            ..Default::default()
        }
    }
}

const DESKTOP: [u8; 4] = [0x6b, 0x4f, 0x1d, 255]; // BGRA: dark teal-blue
const TITLE: [u8; 4] = [0x55, 0x3a, 0x2a, 255];
const TITLE_TEXT: [u8; 4] = [0xee, 0xee, 0xee, 255];
const TERM_BG: [u8; 4] = [0x1e, 0x1e, 0x1e, 255];
const TERM_FG: [u8; 4] = [0x9c, 0xe0, 0xa8, 255];
const EDIT_BG: [u8; 4] = [0xfa, 0xfa, 0xfa, 255];
const EDIT_FG: [u8; 4] = [0x30, 0x30, 0x30, 255];
const TASKBAR: [u8; 4] = [0x28, 0x22, 0x20, 255];

const WORDS: [&str; 24] = [
    "worker",
    "connected",
    "frame",
    "encoded",
    "bytes",
    "latency",
    "ok",
    "retry",
    "session",
    "viewer",
    "keyframe",
    "bitrate",
    "kbit/s",
    "scroll",
    "render",
    "cache",
    "miss",
    "hit",
    "flush",
    "queue",
    "drop",
    "ice",
    "dtls",
    "rtp",
];
const TYPED_TEXT: &str = "Dear support team, the invoice export button does nothing when I click it. \
    I tried twice after a restart. Could you take a look at my screen? Thanks, Alex.";

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The text of terminal line `index`.
fn log_line(index: u64, out: &mut String) {
    use std::fmt::Write;
    out.clear();
    let h = mix(index);
    let _ = write!(out, "[{:>7}.{:03}] ", index / 4, (h % 1000));
    let words = 3 + (h >> 10) % 6;
    for w in 0..words {
        let word = WORDS[(mix(h ^ w) % WORDS.len() as u64) as usize];
        let _ = write!(out, "{word}");
        if w % 3 == 1 {
            let _ = write!(out, "={}", mix(h + w) % 10_000);
        }
        out.push(' ');
    }
}

#[derive(Debug, Clone, Copy)]
struct Layout {
    scale: u32,
    glyph: u32,
    title_h: u32,
    terminal: Rect,
    term_text: Rect,
    term_rows: u32,
    editor: Rect,
    edit_text: Rect,
    viewer: Rect,
    taskbar: Rect,
    clock: Rect,
}

impl Layout {
    fn new(w: u32, h: u32) -> Layout {
        let scale = (h / 540).max(1);
        let glyph = 8 * scale;
        let title_h = glyph + 4 * scale;
        let top = stamp::stamp_rect(w, h).map_or(0, |r| r.bottom()) + 2 * scale;
        let taskbar_h = (glyph + 6 * scale).min(h / 4);
        let taskbar = Rect::new(0, h.saturating_sub(taskbar_h), w, taskbar_h);
        let body_bottom = taskbar.y.saturating_sub(2 * scale);
        let terminal = Rect::new(w / 50, top, w * 55 / 100, body_bottom.saturating_sub(top));
        let term_text = inner(terminal, title_h, scale);
        let term_rows = term_text.height / glyph;
        let right_x = terminal.right() + w / 50;
        let right_w = w.saturating_sub(right_x + w / 50);
        let editor = Rect::new(right_x, top, right_w, (body_bottom.saturating_sub(top)) / 2);
        let edit_text = inner(editor, title_h, scale);
        let viewer_y = editor.bottom() + 2 * scale;
        let viewer = Rect::new(right_x, viewer_y, right_w, body_bottom.saturating_sub(viewer_y));
        let clock_w = 8 * glyph + 4 * scale;
        let clock = Rect::new(
            w.saturating_sub(clock_w + 2 * scale),
            taskbar.y + 3 * scale,
            clock_w,
            glyph,
        );
        Layout {
            scale,
            glyph,
            title_h,
            terminal,
            term_text,
            term_rows,
            editor,
            edit_text,
            viewer,
            taskbar,
            clock,
        }
    }
}

fn inner(window: Rect, title_h: u32, scale: u32) -> Rect {
    let pad = 2 * scale;
    Rect::new(
        window.x + pad,
        window.y + title_h + pad,
        window.width.saturating_sub(2 * pad),
        window.height.saturating_sub(title_h + 2 * pad),
    )
}

/// The renderer: draws picture `n` of the synthetic desktop into a BGRA frame, redrawing only what changed.
#[derive(Debug, Clone)]
pub struct SyntheticDesktop {
    config: SyntheticConfig,
    layout: Layout,
    canvas: Frame,
    drawn: Option<DrawnState>,
    line: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DrawnState {
    top_line: u64,
    typed: usize,
    cursor_on: bool,
    clock_secs: u64,
}

impl SyntheticDesktop {
    /// A desktop of the configured size.
    pub fn new(config: SyntheticConfig) -> Result<Self, FrameError> {
        let canvas = Frame::new(PixelFormat::Bgra, config.width, config.height)?;
        if config.fps == 0 {
            return Err(FrameError::InvalidSize {
                width: config.width,
                height: config.height,
            });
        }
        let layout = Layout::new(config.width, config.height);
        Ok(SyntheticDesktop {
            config,
            layout,
            canvas,
            drawn: None,
            line: String::with_capacity(256),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SyntheticConfig {
        &self.config
    }

    /// The picture rendered last, with its damage.
    pub fn frame(&self) -> &Frame {
        &self.canvas
    }

    /// Forgets what was drawn, so the next render redraws (and damages) everything.
    pub fn invalidate(&mut self) {
        self.drawn = None;
    }

    fn state_at(&self, n: u64) -> DrawnState {
        let fps = u64::from(self.config.fps);
        let top_line = n * u64::from(self.config.scroll_lines_per_second) / fps;
        let cycle = TYPED_TEXT.len() as u64 + 2 * u64::from(self.config.typing_chars_per_second.max(1));
        let typed = (n * u64::from(self.config.typing_chars_per_second) / fps) % cycle;
        let typed = (typed as usize).min(TYPED_TEXT.len());
        let cursor_on = (n * 2 / fps) % 2 == 0 && self.config.typing_chars_per_second > 0;
        DrawnState {
            top_line,
            typed,
            cursor_on,
            clock_secs: n / fps,
        }
    }

    /// Renders picture `n`, stamped with `stamp_millis` as its capture time. `frame().damage` then holds what
    /// changed since the previous render.
    pub fn render(&mut self, n: u64, stamp_millis: u32) -> &Frame {
        self.canvas.damage.clear();
        let state = self.state_at(n);
        let previous = self.drawn;
        let l = self.layout;
        if previous.is_none() {
            self.draw_static();
            self.canvas.damage.push(self.canvas.bounds());
        }
        if previous.map(|p| p.top_line) != Some(state.top_line) {
            self.draw_terminal(previous.map(|p| p.top_line), state.top_line);
            self.canvas.damage.push(l.term_text);
        }
        if previous.map(|p| (p.typed, p.cursor_on)) != Some((state.typed, state.cursor_on)) {
            self.draw_editor(state.typed, state.cursor_on);
            self.canvas.damage.push(l.edit_text);
        }
        if previous.map(|p| p.clock_secs) != Some(state.clock_secs) {
            self.draw_clock(state.clock_secs);
            self.canvas.damage.push(l.clock);
        }
        if self.config.stamp {
            stamp::draw_bgra(
                &mut self.canvas,
                FrameStamp {
                    frame_number: n as u32,
                    capture_millis: stamp_millis,
                },
            );
        }
        let (w, h) = (self.config.width, self.config.height);
        self.canvas.damage.retain_mut(|r| {
            *r = r.clipped(w, h);
            !r.is_empty()
        });
        self.drawn = Some(state);
        &self.canvas
    }

    fn fill(&mut self, rect: Rect, color: [u8; 4]) {
        let rect = rect.clipped(self.config.width, self.config.height);
        if rect.is_empty() {
            return;
        }
        let stride = self.canvas.stride(0);
        let data = self.canvas.plane_mut(0);
        let first = rect.y as usize * stride + rect.x as usize * 4;
        let row_bytes = rect.width as usize * 4;
        for px in data[first..first + row_bytes].chunks_exact_mut(4) {
            px.copy_from_slice(&color);
        }
        for y in 1..rect.height as usize {
            data.copy_within(first..first + row_bytes, first + y * stride);
        }
    }

    /// Draws `text` at (x, y), clipped to `clip`; returns the x after the last glyph.
    fn text(&mut self, x: u32, y: u32, text: &str, fg: [u8; 4], bg: [u8; 4], clip: Rect) -> u32 {
        let (scale, glyph) = (self.layout.scale as usize, self.layout.glyph);
        let clip = clip.clipped(self.config.width, self.config.height);
        let stride = self.canvas.stride(0);
        let mut cx = x;
        for ch in text.chars() {
            if cx + glyph > clip.right() || y + glyph > clip.bottom() {
                break;
            }
            let bitmap = font8x8::legacy::BASIC_LEGACY
                .get(ch as usize)
                .copied()
                .unwrap_or([0; 8]);
            let data = self.canvas.plane_mut(0);
            for (gy, bits) in bitmap.iter().enumerate() {
                for sy in 0..scale {
                    let row = (y as usize + gy * scale + sy) * stride;
                    for gx in 0..8usize {
                        let color = if bits >> gx & 1 == 1 { fg } else { bg };
                        let start = row + (cx as usize + gx * scale) * 4;
                        for px in data[start..start + scale * 4].chunks_exact_mut(4) {
                            px.copy_from_slice(&color);
                        }
                    }
                }
            }
            cx += glyph;
        }
        cx
    }

    fn window(&mut self, frame: Rect, title: &str, body: [u8; 4]) {
        let l = self.layout;
        self.fill(frame, TITLE);
        self.fill(
            Rect::new(
                frame.x,
                frame.y + l.title_h,
                frame.width,
                frame.height.saturating_sub(l.title_h),
            ),
            body,
        );
        self.text(
            frame.x + 3 * l.scale,
            frame.y + 2 * l.scale,
            title,
            TITLE_TEXT,
            TITLE,
            frame,
        );
    }

    fn draw_static(&mut self) {
        let (w, h) = (self.config.width, self.config.height);
        // Desktop with a gentle vertical gradient.
        let stride = self.canvas.stride(0);
        let data = self.canvas.plane_mut(0);
        for y in 0..h as usize {
            let shade = (y * 40 / h as usize) as u8;
            let color = [
                DESKTOP[0].saturating_sub(shade),
                DESKTOP[1].saturating_sub(shade / 2),
                DESKTOP[2],
                255,
            ];
            for px in data[y * stride..y * stride + w as usize * 4].chunks_exact_mut(4) {
                px.copy_from_slice(&color);
            }
        }
        let l = self.layout;
        self.window(l.terminal, "alex@desk: ~/logs - tail -f service.log", TERM_BG);
        self.window(l.editor, "Support request - Editor", EDIT_BG);
        self.window(l.viewer, "screenshot.png - Viewer", TERM_BG);
        self.draw_picture(inner(l.viewer, l.title_h, l.scale));
        self.fill(l.taskbar, TASKBAR);
        let t = l.taskbar;
        self.text(
            t.x + 4 * l.scale,
            t.y + 3 * l.scale,
            "Start  Files  Terminal  Browser",
            TITLE_TEXT,
            TASKBAR,
            t,
        );
    }

    fn draw_picture(&mut self, area: Rect) {
        let area = area.clipped(self.config.width, self.config.height);
        let stride = self.canvas.stride(0);
        let data = self.canvas.plane_mut(0);
        for y in 0..area.height {
            for x in 0..area.width {
                let (fx, fy) = (x * 255 / area.width.max(1), y * 255 / area.height.max(1));
                let ring = ((x as i64 - area.width as i64 / 2).pow(2) + (y as i64 - area.height as i64 / 2).pow(2))
                    / (area.height as i64 / 6 + 1).pow(2);
                let i = (area.y + y) as usize * stride + (area.x + x) as usize * 4;
                data[i] = (fx as u8).wrapping_add((ring * 40) as u8);
                data[i + 1] = fy as u8;
                data[i + 2] = 255 - fx as u8;
                data[i + 3] = 255;
            }
        }
    }

    fn draw_terminal(&mut self, previous_top: Option<u64>, top: u64) {
        let l = self.layout;
        let rows = u64::from(l.term_rows);
        if rows == 0 {
            return;
        }
        let first_new = match previous_top {
            Some(prev) if prev < top && top - prev < rows => {
                // Scroll the text area up by the number of new lines, then draw only those.
                let shift = ((top - prev) * u64::from(l.glyph)) as usize;
                let stride = self.canvas.stride(0);
                let row_bytes = l.term_text.width as usize * 4;
                let x0 = l.term_text.x as usize * 4;
                let used = (rows * u64::from(l.glyph)) as usize;
                let data = self.canvas.plane_mut(0);
                for y in 0..used - shift {
                    let dst = (l.term_text.y as usize + y) * stride + x0;
                    let src = dst + shift * stride;
                    data.copy_within(src..src + row_bytes, dst);
                }
                rows - (top - prev)
            }
            _ => 0,
        };
        let mut line = std::mem::take(&mut self.line);
        for row in first_new..rows {
            let y = l.term_text.y + row as u32 * l.glyph;
            self.fill(Rect::new(l.term_text.x, y, l.term_text.width, l.glyph), TERM_BG);
            log_line(top + row, &mut line);
            self.text(l.term_text.x, y, &line, TERM_FG, TERM_BG, l.term_text);
        }
        self.line = line;
    }

    fn draw_editor(&mut self, typed: usize, cursor_on: bool) {
        let l = self.layout;
        let area = l.edit_text;
        self.fill(area, EDIT_BG);
        let per_row = (area.width / l.glyph).max(1) as usize;
        let text = &TYPED_TEXT[..typed];
        let mut row = 0u32;
        let mut end_x = area.x;
        for chunk in text.as_bytes().chunks(per_row) {
            let y = area.y + row * l.glyph;
            end_x = self.text(
                area.x,
                y,
                std::str::from_utf8(chunk).unwrap_or(""),
                EDIT_FG,
                EDIT_BG,
                area,
            );
            row += 1;
        }
        if typed % per_row == 0 {
            end_x = area.x;
        } else {
            row = row.saturating_sub(1);
        }
        if cursor_on {
            let y = area.y + row * l.glyph;
            self.fill(
                Rect::new(end_x, y, l.glyph / 2, l.glyph).clipped(area.right(), area.bottom()),
                EDIT_FG,
            );
        }
    }

    fn draw_clock(&mut self, secs: u64) {
        let l = self.layout;
        let text = format!("{:02}:{:02}:{:02}", (9 + secs / 3600) % 24, secs / 60 % 60, secs % 60);
        self.fill(l.clock, TASKBAR);
        self.text(l.clock.x, l.clock.y, &text, TITLE_TEXT, TASKBAR, l.clock);
    }
}

/// A [`ScreenSource`] that plays the synthetic desktop in real time: the picture number follows the wall clock
/// at the configured rate, so a slow consumer skips pictures instead of falling behind.
#[derive(Debug)]
pub struct SyntheticSource {
    desktop: SyntheticDesktop,
    started: Instant,
    last: Option<u64>,
}

impl SyntheticSource {
    /// A source playing the configured desktop from picture 0.
    pub fn new(config: SyntheticConfig) -> Result<Self, FrameError> {
        Ok(SyntheticSource {
            desktop: SyntheticDesktop::new(config)?,
            started: Instant::now(),
            last: None,
        })
    }

    /// The number of the picture the most recent capture returned.
    pub fn last_frame_number(&self) -> Option<u64> {
        self.last
    }
}

impl ScreenSource for SyntheticSource {
    fn size(&self) -> (u32, u32) {
        (self.desktop.config.width, self.desktop.config.height)
    }

    fn capture(&mut self) -> Result<Option<Captured<'_>>, CaptureError> {
        let fps = u128::from(self.desktop.config.fps);
        let n = (self.started.elapsed().as_nanos() * fps / 1_000_000_000) as u64;
        if self.last == Some(n) {
            return Ok(None);
        }
        self.last = Some(n);
        let timestamp: Duration = wall_clock();
        let frame = self.desktop.render(n, timestamp.as_millis() as u32);
        Ok(Some(Captured {
            image: frame.as_bgra_image()?,
            damage: &frame.damage,
            timestamp,
        }))
    }

    fn invalidate(&mut self) {
        self.desktop.invalidate();
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_rendering_equals_fresh_rendering() {
        let config = SyntheticConfig {
            width: 800,
            height: 600,
            ..Default::default()
        };
        let mut running = SyntheticDesktop::new(config.clone()).unwrap();
        for n in [0u64, 1, 2, 3, 5, 8, 13, 40, 41, 100, 300] {
            running.render(n, 42);
            let mut fresh = SyntheticDesktop::new(config.clone()).unwrap();
            fresh.render(n, 42);
            assert!(
                running.frame().as_bytes() == fresh.frame().as_bytes(),
                "picture {n} differs"
            );
        }
    }

    #[test]
    fn damage_covers_every_changed_pixel() {
        let config = SyntheticConfig {
            width: 640,
            height: 480,
            ..Default::default()
        };
        let mut desktop = SyntheticDesktop::new(config).unwrap();
        let mut previous = desktop.render(0, 0).clone();
        for n in 1..70 {
            let frame = desktop.render(n, n as u32 * 33);
            let stride = frame.stride(0);
            for y in 0..frame.height() {
                for x in 0..frame.width() {
                    let i = y as usize * stride + x as usize * 4;
                    if frame.plane(0)[i..i + 4] != previous.plane(0)[i..i + 4] {
                        assert!(
                            frame.damage.iter().any(|r| r.contains(x, y)),
                            "({x},{y}) changed at {n} undamaged"
                        );
                    }
                }
            }
            previous = frame.clone();
        }
    }

    #[test]
    fn still_desktop_reports_only_the_stamp() {
        let config = SyntheticConfig {
            width: 320,
            height: 240,
            scroll_lines_per_second: 0,
            typing_chars_per_second: 0,
            ..Default::default()
        };
        let mut desktop = SyntheticDesktop::new(config).unwrap();
        desktop.render(0, 0);
        let frame = desktop.render(1, 0);
        assert_eq!(frame.damage, vec![stamp::stamp_rect(320, 240).unwrap()]);
    }

    #[test]
    fn tiny_desktops_render() {
        for (w, h) in [(1, 1), (17, 9), (63, 35)] {
            let mut d = SyntheticDesktop::new(SyntheticConfig::with_size(w, h)).unwrap();
            for n in 0..40 {
                d.render(n, 0);
            }
        }
    }
}
