//! The remote cursor on the send side: plain logic, no I/O. The encode thread turns what the screen source reports
//! into a [`CursorUpdate`] for all viewers ([`next_update`]); each viewer's link then sends the image only when
//! it differs from the last one that viewer got ([`ImageSent`]).

use crate::capture::CursorState;
use crate::control::protocol::{CursorImageMessage, MAX_CURSOR_SIDE};
use std::sync::Arc;

/// Where the cursor is, as a share of the screen, with the image that goes with it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CursorUpdate {
    /// Column of the hotspot, 0.0–1.0 of the screen's width.
    pub x: f32,
    /// Row of the hotspot, 0.0–1.0 of the screen's height.
    pub y: f32,
    /// Whether the hotspot is on the shared screen.
    pub visible: bool,
    /// The image, base64 RGBA; `None` when the source never gave one or it is larger than [`MAX_CURSOR_SIDE`].
    pub image: Option<Arc<CursorImageMessage>>,
    /// Changes whenever the image changes.
    pub serial: u64,
}

/// The update for `state` on a `width` × `height` screen after `current`, or `None` when nothing a viewer sees
/// changed. The image is converted (BGRA → RGBA, base64) only when the source reports a new one.
pub(crate) fn next_update(
    state: &CursorState,
    (width, height): (u32, u32),
    current: Option<&CursorUpdate>,
) -> Option<CursorUpdate> {
    let visible = state.x >= 0 && state.y >= 0 && (state.x as u32) < width && (state.y as u32) < height;
    let x = (state.x.max(0) as f32 / width.max(1) as f32).min(1.0);
    let y = (state.y.max(0) as f32 / height.max(1) as f32).min(1.0);
    let image = match (&state.image, current) {
        (Some(img), _) if img.width <= MAX_CURSOR_SIDE && img.height <= MAX_CURSOR_SIDE => {
            let mut rgba = img.pixels.clone();
            for px in rgba.chunks_exact_mut(4) {
                px.swap(0, 2);
            }
            Some(Arc::new(CursorImageMessage {
                width: img.width,
                height: img.height,
                hotspot_x: img.hotspot_x,
                hotspot_y: img.hotspot_y,
                rgba: crate::text::base64_encode(&rgba),
            }))
        }
        (Some(_), _) => None,
        (None, Some(c)) => c.image.clone(),
        (None, None) => None,
    };
    let serial = state
        .image
        .as_ref()
        .map(|i| i.serial)
        .or(current.map(|c| c.serial))
        .unwrap_or(0);
    let update = CursorUpdate {
        x,
        y,
        visible,
        image,
        serial,
    };
    (current != Some(&update)).then_some(update)
}

/// Which cursor image one viewer has: the image goes out with the first update after it changed, positions alone
/// after that.
#[derive(Debug, Default)]
pub(crate) struct ImageSent {
    serial: Option<u64>,
}

impl ImageSent {
    /// The image to send with `update`, if this viewer does not have it yet.
    pub fn image_for(&mut self, update: &CursorUpdate) -> Option<CursorImageMessage> {
        if self.serial == Some(update.serial) {
            return None;
        }
        let image = update.image.as_deref().cloned()?;
        self.serial = Some(update.serial);
        Some(image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::CursorImage;

    fn image(side: u32, serial: u64) -> CursorImage {
        CursorImage {
            width: side,
            height: side,
            hotspot_x: 1,
            hotspot_y: 2,
            // B, G, R, A
            pixels: [10u8, 20, 30, 255].repeat((side * side) as usize),
            serial,
        }
    }

    fn at(x: i32, y: i32, image: Option<CursorImage>) -> CursorState {
        CursorState { x, y, image }
    }

    #[test]
    fn a_move_is_an_update_and_standing_still_is_none() {
        let first = next_update(&at(960, 540, Some(image(16, 1))), (1920, 1080), None).expect("first");
        assert_eq!((first.x, first.y, first.visible, first.serial), (0.5, 0.5, true, 1));
        assert!(
            next_update(&at(960, 540, None), (1920, 1080), Some(&first)).is_none(),
            "nothing changed"
        );
        let moved = next_update(&at(0, 1079, None), (1920, 1080), Some(&first)).expect("moved");
        assert_eq!(moved.x, 0.0);
        assert_eq!(moved.image, first.image, "the image stays with the cursor");
        let off = next_update(&at(-5, 2000, None), (1920, 1080), Some(&moved)).expect("left the screen");
        assert!(!off.visible);
        assert_eq!((off.x, off.y), (0.0, 1.0), "clamped to the screen");
    }

    #[test]
    fn the_image_goes_out_as_rgba_and_an_oversized_one_not_at_all() {
        let update = next_update(&at(1, 1, Some(image(2, 7))), (100, 100), None).unwrap();
        let sent = update.image.as_deref().unwrap();
        assert_eq!((sent.width, sent.hotspot_x, sent.hotspot_y), (2, 1, 2));
        assert_eq!(sent.pixels().unwrap()[..4], [30, 20, 10, 255], "BGRA became RGBA");
        let big = next_update(
            &at(1, 1, Some(image(MAX_CURSOR_SIDE + 1, 8))),
            (100, 100),
            Some(&update),
        )
        .unwrap();
        assert_eq!(big.image, None);
        assert_eq!(big.serial, 8);
    }

    #[test]
    fn each_viewer_gets_each_image_once() {
        let first = next_update(&at(1, 1, Some(image(4, 1))), (100, 100), None).unwrap();
        let moved = next_update(&at(2, 2, None), (100, 100), Some(&first)).unwrap();
        let new_image = next_update(&at(2, 2, Some(image(4, 2))), (100, 100), Some(&moved)).unwrap();
        let mut viewer = ImageSent::default();
        assert!(viewer.image_for(&first).is_some());
        assert!(viewer.image_for(&moved).is_none(), "same image: position only");
        assert!(viewer.image_for(&new_image).is_some());
        let mut late = ImageSent::default();
        assert!(
            late.image_for(&moved).is_some(),
            "a viewer that joins later gets the current image"
        );
    }
}
