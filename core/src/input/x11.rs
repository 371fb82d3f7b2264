//! An [`InputSink`] for X11 through the XTest extension (works under Xvfb).

use super::{InputError, InputEvent, InputSink, MouseButton};
use crate::frame::Rect;
use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::xproto::{self, ConnectionExt as _};
use x11rb::protocol::xtest::{self, ConnectionExt as _};
use x11rb::rust_connection::RustConnection;

/// Injects input into an X display; pointer positions map onto `area` (the captured monitor).
pub struct XTestSink {
    conn: RustConnection,
    root: xproto::Window,
    area: Rect,
    min_keycode: u8,
    keysyms_per_keycode: u8,
    keysyms: Vec<u32>,
    shift_keycode: Option<u8>,
}

impl std::fmt::Debug for XTestSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XTestSink").field("area", &self.area).finish()
    }
}

fn unavailable(e: impl std::fmt::Display) -> InputError {
    InputError::Unavailable(e.to_string())
}

/// The X keysym for a W3C `KeyboardEvent.code`.
pub fn keysym_for_code(code: &str) -> Option<u32> {
    if let Some(letter) = code.strip_prefix("Key") {
        let c = letter.as_bytes();
        if c.len() == 1 && c[0].is_ascii_uppercase() {
            return Some(u32::from(c[0].to_ascii_lowercase()));
        }
    }
    if let Some(digit) = code.strip_prefix("Digit") {
        let c = digit.as_bytes();
        if c.len() == 1 && c[0].is_ascii_digit() {
            return Some(u32::from(c[0]));
        }
    }
    if let Some(n) = code.strip_prefix('F').and_then(|n| n.parse::<u32>().ok()) {
        if (1..=24).contains(&n) {
            return Some(0xffbe + n - 1);
        }
    }
    Some(match code {
        "Enter" | "NumpadEnter" => 0xff0d,
        "Escape" => 0xff1b,
        "Backspace" => 0xff08,
        "Tab" => 0xff09,
        "Space" => 0x20,
        "ArrowLeft" => 0xff51,
        "ArrowUp" => 0xff52,
        "ArrowRight" => 0xff53,
        "ArrowDown" => 0xff54,
        "Home" => 0xff50,
        "End" => 0xff57,
        "PageUp" => 0xff55,
        "PageDown" => 0xff56,
        "Insert" => 0xff63,
        "Delete" => 0xffff,
        "ShiftLeft" => 0xffe1,
        "ShiftRight" => 0xffe2,
        "ControlLeft" => 0xffe3,
        "ControlRight" => 0xffe4,
        "CapsLock" => 0xffe5,
        "AltLeft" => 0xffe9,
        "AltRight" => 0xffea,
        "MetaLeft" => 0xffeb,
        "MetaRight" => 0xffec,
        "Minus" => 0x2d,
        "Equal" => 0x3d,
        "BracketLeft" => 0x5b,
        "BracketRight" => 0x5d,
        "Backslash" => 0x5c,
        "Semicolon" => 0x3b,
        "Quote" => 0x27,
        "Backquote" => 0x60,
        "Comma" => 0x2c,
        "Period" => 0x2e,
        "Slash" => 0x2f,
        _ => return None,
    })
}

/// The X keysym that types `c`.
fn keysym_for_char(c: char) -> u32 {
    match c {
        '\n' => 0xff0d,
        '\t' => 0xff09,
        c if (c as u32) < 0x100 => c as u32,
        c => 0x0100_0000 | c as u32,
    }
}

impl XTestSink {
    /// Opens `display` (or `$DISPLAY`); pointer positions map onto `area`, or the whole screen for `None`.
    pub fn open(display: Option<&str>, area: Option<Rect>) -> Result<Self, InputError> {
        let (conn, screen_num) = RustConnection::connect(display).map_err(unavailable)?;
        if conn
            .extension_information(xtest::X11_EXTENSION_NAME)
            .map_err(unavailable)?
            .is_none()
        {
            return Err(InputError::Unavailable("the X server lacks the XTEST extension".into()));
        }
        conn.xtest_get_version(2, 2)
            .map_err(unavailable)?
            .reply()
            .map_err(unavailable)?;
        let screen = &conn.setup().roots[screen_num];
        let root = screen.root;
        let area = area.unwrap_or(Rect::new(
            0,
            0,
            u32::from(screen.width_in_pixels),
            u32::from(screen.height_in_pixels),
        ));
        let (min, max) = (conn.setup().min_keycode, conn.setup().max_keycode);
        let mapping = conn
            .get_keyboard_mapping(min, max - min + 1)
            .map_err(unavailable)?
            .reply()
            .map_err(unavailable)?;
        let mut sink = XTestSink {
            conn,
            root,
            area,
            min_keycode: min,
            keysyms_per_keycode: mapping.keysyms_per_keycode,
            keysyms: mapping.keysyms,
            shift_keycode: None,
        };
        sink.shift_keycode = sink.keycode_for(0xffe1).map(|(k, _)| k);
        Ok(sink)
    }

    /// The keycode producing `keysym`, and whether Shift is needed.
    fn keycode_for(&self, keysym: u32) -> Option<(u8, bool)> {
        let per = usize::from(self.keysyms_per_keycode.max(1));
        for (i, chunk) in self.keysyms.chunks(per).enumerate() {
            for (column, &sym) in chunk.iter().enumerate().take(2) {
                if sym == keysym {
                    return Some((self.min_keycode + i as u8, column == 1));
                }
            }
        }
        None
    }

    fn fake(&self, kind: u8, detail: u8, x: i16, y: i16) -> Result<(), InputError> {
        self.conn
            .xtest_fake_input(kind, detail, x11rb::CURRENT_TIME, self.root, x, y, 0)
            .map_err(unavailable)?;
        Ok(())
    }

    fn tap_button(&self, button: u8) -> Result<(), InputError> {
        self.fake(xproto::BUTTON_PRESS_EVENT, button, 0, 0)?;
        self.fake(xproto::BUTTON_RELEASE_EVENT, button, 0, 0)
    }

    fn type_keysym(&self, keysym: u32) -> Result<(), InputError> {
        let (keycode, shift) = self
            .keycode_for(keysym)
            .ok_or_else(|| InputError::Unsupported(format!("no key types keysym {keysym:#x} on this keymap")))?;
        let shift = if shift { self.shift_keycode } else { None };
        if let Some(s) = shift {
            self.fake(xproto::KEY_PRESS_EVENT, s, 0, 0)?;
        }
        self.fake(xproto::KEY_PRESS_EVENT, keycode, 0, 0)?;
        self.fake(xproto::KEY_RELEASE_EVENT, keycode, 0, 0)?;
        if let Some(s) = shift {
            self.fake(xproto::KEY_RELEASE_EVENT, s, 0, 0)?;
        }
        Ok(())
    }
}

impl InputSink for XTestSink {
    fn inject(&mut self, event: &InputEvent) -> Result<(), InputError> {
        match event {
            InputEvent::PointerMove { x, y } => {
                let px = self.area.x as f32 + x.clamp(0.0, 1.0) * (self.area.width.saturating_sub(1)) as f32;
                let py = self.area.y as f32 + y.clamp(0.0, 1.0) * (self.area.height.saturating_sub(1)) as f32;
                self.fake(xproto::MOTION_NOTIFY_EVENT, 0, px.round() as i16, py.round() as i16)?;
            }
            InputEvent::PointerButton { button, pressed } => {
                let detail = match button {
                    MouseButton::Left => 1,
                    MouseButton::Middle => 2,
                    MouseButton::Right => 3,
                    MouseButton::Back => 8,
                    MouseButton::Forward => 9,
                };
                let kind = if *pressed {
                    xproto::BUTTON_PRESS_EVENT
                } else {
                    xproto::BUTTON_RELEASE_EVENT
                };
                self.fake(kind, detail, 0, 0)?;
            }
            InputEvent::Wheel { dx, dy } => {
                for (amount, negative, positive) in [(*dy, 4u8, 5u8), (*dx, 6, 7)] {
                    let notches = amount.round() as i32;
                    let button = if notches < 0 { negative } else { positive };
                    for _ in 0..notches.unsigned_abs().min(100) {
                        self.tap_button(button)?;
                    }
                }
            }
            InputEvent::Key { code, pressed } => {
                let keysym =
                    keysym_for_code(code).ok_or_else(|| InputError::Unsupported(format!("unknown key code {code}")))?;
                let (keycode, _) = self
                    .keycode_for(keysym)
                    .ok_or_else(|| InputError::Unsupported(format!("no keycode for {code} on this keymap")))?;
                let kind = if *pressed {
                    xproto::KEY_PRESS_EVENT
                } else {
                    xproto::KEY_RELEASE_EVENT
                };
                self.fake(kind, keycode, 0, 0)?;
            }
            InputEvent::Text { text } => {
                for c in text.chars() {
                    if let Err(e) = self.type_keysym(keysym_for_char(c)) {
                        tracing::debug!("skipping untypeable character: {e}");
                    }
                }
            }
        }
        self.conn.flush().map_err(unavailable)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn w3c_codes_map_to_keysyms() {
        assert_eq!(keysym_for_code("KeyA"), Some(u32::from(b'a')));
        assert_eq!(keysym_for_code("Digit7"), Some(u32::from(b'7')));
        assert_eq!(keysym_for_code("F5"), Some(0xffc2));
        assert_eq!(keysym_for_code("Enter"), Some(0xff0d));
        assert_eq!(keysym_for_code("Keya"), None);
        assert_eq!(keysym_for_code("F99"), None);
        assert_eq!(keysym_for_code("Bogus"), None);
    }
}
