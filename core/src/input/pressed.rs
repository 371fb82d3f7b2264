//! Which keys and buttons the viewers' input holds down, so that they can be let go when control ends. Without
//! it a viewer could leave Ctrl, Super or a mouse button held on the customer's desktop by revoking or leaving
//! mid-press (security review M12). Plain logic.

use super::{InputEvent, MouseButton};
use std::collections::BTreeSet;

/// Keys remembered as held at most; a viewer cannot grow it without bound with made-up key codes.
pub const MAX_HELD_KEYS: usize = 64;

/// Keys and buttons currently held by injected input.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PressedInputs {
    keys: BTreeSet<String>,
    buttons: Vec<MouseButton>,
}

impl PressedInputs {
    /// Nothing held.
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes an event that was injected.
    pub fn observe(&mut self, event: &InputEvent) {
        match event {
            InputEvent::Key { code, pressed: true } if self.keys.len() < MAX_HELD_KEYS => {
                self.keys.insert(code.clone());
            }
            InputEvent::Key { code, pressed: false } => {
                self.keys.remove(code);
            }
            InputEvent::PointerButton { button, pressed: true } if !self.buttons.contains(button) => {
                self.buttons.push(*button);
            }
            InputEvent::PointerButton { button, pressed: false } => self.buttons.retain(|b| b != button),
            _ => {}
        }
    }

    /// Whether anything is held.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.buttons.is_empty()
    }

    /// The events that let go of everything held (buttons first, then keys), and forgets them.
    pub fn release_all(&mut self) -> Vec<InputEvent> {
        let buttons = std::mem::take(&mut self.buttons)
            .into_iter()
            .map(|button| InputEvent::PointerButton { button, pressed: false });
        let keys = std::mem::take(&mut self.keys)
            .into_iter()
            .map(|code| InputEvent::Key { code, pressed: false });
        buttons.chain(keys).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: &str, pressed: bool) -> InputEvent {
        InputEvent::Key {
            code: code.into(),
            pressed,
        }
    }

    #[test]
    fn what_is_still_held_is_released_once() {
        let mut held = PressedInputs::new();
        for event in [
            key("ControlLeft", true),
            key("KeyA", true),
            key("KeyA", false),
            InputEvent::PointerButton {
                button: MouseButton::Left,
                pressed: true,
            },
        ] {
            held.observe(&event);
        }
        assert_eq!(
            held.release_all(),
            vec![
                InputEvent::PointerButton {
                    button: MouseButton::Left,
                    pressed: false
                },
                key("ControlLeft", false)
            ]
        );
        assert!(held.is_empty() && held.release_all().is_empty());
    }

    #[test]
    fn made_up_key_codes_cannot_grow_it_without_bound() {
        let mut held = PressedInputs::new();
        for i in 0..10_000 {
            held.observe(&key(&format!("Key{i}"), true));
        }
        assert_eq!(held.release_all().len(), MAX_HELD_KEYS);
    }
}
