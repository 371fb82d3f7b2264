//! Pictures pushed in by the host app: how iOS ReplayKit, Android MediaProjection or any custom capture feeds
//! peerdesk.
//!
//! [`pushed_source`] returns a [`FramePusher`], which the app calls from its own capture thread, and a
//! [`PushedSource`], which the pipeline captures from. Only the newest picture is kept: pushing faster than the
//! pipeline consumes replaces the waiting picture (and counts it in [`FramePusher::replaced`]). The source compares
//! each picture with the previous one row by row, so an unchanged picture costs no encode.

use super::{CaptureError, Captured, ScreenSource};
use crate::frame::{validate_size, BgraImage, Frame, FrameError, PixelFormat, Rect};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Slot {
    picture: Frame,
    fresh: bool,
    replaced: u64,
    closed: bool,
}

#[derive(Debug)]
struct Shared {
    slot: Mutex<Slot>,
    /// Signalled when a picture is pushed or the stream is closed.
    pushed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        // A poisoned lock only means a pusher panicked mid-copy; the picture is still a valid buffer.
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The host app's handle for pushing pictures. Cheap to clone; usable from any thread.
#[derive(Debug, Clone)]
pub struct FramePusher {
    shared: Arc<Shared>,
}

/// The [`ScreenSource`] side of pushed pictures.
#[derive(Debug)]
pub struct PushedSource {
    shared: Arc<Shared>,
    current: Frame,
    previous: Frame,
    damage: Vec<Rect>,
    has_previous: bool,
}

/// A connected pusher and source, with an initial picture size.
pub fn pushed_source(width: u32, height: u32) -> Result<(FramePusher, PushedSource), FrameError> {
    validate_size(width, height)?;
    let blank = Frame::new(PixelFormat::Bgra, width, height)?;
    let shared = Arc::new(Shared {
        slot: Mutex::new(Slot {
            picture: blank.clone(),
            fresh: false,
            replaced: 0,
            closed: false,
        }),
        pushed: Condvar::new(),
    });
    let source = PushedSource {
        shared: shared.clone(),
        current: blank.clone(),
        previous: blank,
        damage: Vec::new(),
        has_previous: false,
    };
    Ok((FramePusher { shared }, source))
}

impl FramePusher {
    /// Copies a picture in (`stride` bytes a row, BGRA or RGBA), replacing any picture not yet captured.
    /// The size may change from one picture to the next. Wrong sizes, strides or formats are refused with an
    /// error and leave the waiting picture as it was.
    pub fn push(
        &self,
        data: &[u8],
        width: u32,
        height: u32,
        stride: usize,
        format: PixelFormat,
        timestamp: Duration,
    ) -> Result<(), CaptureError> {
        if !matches!(format, PixelFormat::Bgra | PixelFormat::Rgba) {
            return Err(FrameError::WrongFormat {
                expected: PixelFormat::Bgra,
                actual: format,
            }
            .into());
        }
        let image = BgraImage::new(data, width, height, stride)?;
        let mut slot = self.shared.lock();
        if slot.closed {
            return Err(CaptureError::Closed);
        }
        if slot.fresh {
            slot.replaced += 1;
        }
        slot.picture.copy_from_bgra(&image)?;
        if format == PixelFormat::Rgba {
            for px in slot.picture.plane_mut(0).chunks_exact_mut(4) {
                px.swap(0, 2);
            }
        }
        slot.picture.timestamp = timestamp;
        slot.fresh = true;
        drop(slot);
        self.shared.pushed.notify_all();
        Ok(())
    }

    /// How many pictures were replaced before the pipeline captured them.
    pub fn replaced(&self) -> u64 {
        self.shared.lock().replaced
    }

    /// Ends the stream: later pushes fail with [`CaptureError::Closed`], and so does capture once drained.
    pub fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.pushed.notify_all();
    }
}

/// Appends full-width bands of the rows where `a` and `b` differ.
fn changed_rows(a: &Frame, b: &Frame, out: &mut Vec<Rect>) {
    let (stride, row_bytes) = (a.stride(0), a.width() as usize * 4);
    let (pa, pb) = (a.plane(0), b.plane(0));
    let mut band_start: Option<u32> = None;
    for y in 0..a.height() {
        let i = y as usize * stride;
        let differs = pa[i..i + row_bytes] != pb[i..i + row_bytes];
        match (differs, band_start) {
            (true, None) => band_start = Some(y),
            (false, Some(start)) => {
                out.push(Rect::new(0, start, a.width(), y - start));
                band_start = None;
            }
            _ => {}
        }
    }
    if let Some(start) = band_start {
        out.push(Rect::new(0, start, a.width(), a.height() - start));
    }
}

impl ScreenSource for PushedSource {
    fn size(&self) -> (u32, u32) {
        (self.current.width(), self.current.height())
    }

    fn capture(&mut self) -> Result<Option<Captured<'_>>, CaptureError> {
        {
            let mut slot = self.shared.lock();
            if !slot.fresh {
                return if slot.closed {
                    Err(CaptureError::Closed)
                } else {
                    Ok(None)
                };
            }
            slot.fresh = false;
            // The newest picture moves out; the slot keeps the oldest buffer for the next push to reuse.
            std::mem::swap(&mut slot.picture, &mut self.previous);
        }
        std::mem::swap(&mut self.current, &mut self.previous);
        self.damage.clear();
        let same_shape = self.current.width() == self.previous.width()
            && self.current.height() == self.previous.height()
            && self.current.format() == self.previous.format();
        if self.has_previous && same_shape {
            changed_rows(&self.current, &self.previous, &mut self.damage);
            if self.damage.is_empty() {
                return Ok(None);
            }
        } else {
            self.damage.push(self.current.bounds());
        }
        self.has_previous = true;
        Ok(Some(Captured {
            image: self.current.as_bgra_image()?,
            damage: &self.damage,
            timestamp: self.current.timestamp,
        }))
    }

    fn wait_for_change(&mut self, deadline: Instant) -> Result<bool, CaptureError> {
        let mut slot = self.shared.lock();
        loop {
            if slot.fresh || slot.closed {
                return Ok(slot.fresh);
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
                return Ok(false);
            };
            slot = match self.shared.pushed.wait_timeout(slot, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    fn invalidate(&mut self) {
        // The next pushed picture is reported whole; the current one is re-offered as new.
        self.has_previous = false;
        let mut slot = self.shared.lock();
        if !slot.fresh {
            slot.picture.clone_from(&self.current);
            slot.fresh = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(w: u32, h: u32, value: u8) -> Vec<u8> {
        vec![value; (w * h * 4) as usize]
    }

    #[test]
    fn waiting_ends_with_a_push_or_at_the_deadline() {
        use std::time::Instant;
        let (pusher, mut source) = pushed_source(4, 2).unwrap();
        assert!(!source
            .wait_for_change(Instant::now() + Duration::from_millis(50))
            .unwrap());
        let from_app = pusher.clone();
        let app = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            let data = picture(4, 2, 9);
            from_app
                .push(&data, 4, 2, 16, PixelFormat::Bgra, Duration::ZERO)
                .unwrap();
        });
        let started = Instant::now();
        assert!(source.wait_for_change(started + Duration::from_secs(30)).unwrap());
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "woke by the push, not the deadline"
        );
        app.join().unwrap();
        assert!(source.capture().unwrap().is_some());
        // Closing wakes a waiter too, with nothing new.
        pusher.close();
        assert!(!source
            .wait_for_change(Instant::now() + Duration::from_secs(30))
            .unwrap());
    }

    #[test]
    fn newest_picture_wins_and_replacements_are_counted() {
        let (pusher, mut source) = pushed_source(4, 4).unwrap();
        assert!(source.capture().unwrap().is_none());
        pusher
            .push(&picture(4, 4, 1), 4, 4, 16, PixelFormat::Bgra, Duration::from_millis(1))
            .unwrap();
        pusher
            .push(&picture(4, 4, 2), 4, 4, 16, PixelFormat::Bgra, Duration::from_millis(2))
            .unwrap();
        assert_eq!(pusher.replaced(), 1);
        let captured = source.capture().unwrap().unwrap();
        assert_eq!(captured.image.row(0)[0], 2);
        assert_eq!(captured.timestamp, Duration::from_millis(2));
        assert_eq!(captured.damage, &[Rect::new(0, 0, 4, 4)]);
    }

    #[test]
    fn identical_picture_is_no_change_and_damage_is_row_exact() {
        let (pusher, mut source) = pushed_source(4, 4).unwrap();
        let mut data = picture(4, 4, 9);
        pusher.push(&data, 4, 4, 16, PixelFormat::Bgra, Duration::ZERO).unwrap();
        source.capture().unwrap().unwrap();
        pusher.push(&data, 4, 4, 16, PixelFormat::Bgra, Duration::ZERO).unwrap();
        assert!(source.capture().unwrap().is_none());
        data[2 * 16 + 5] = 0;
        pusher.push(&data, 4, 4, 16, PixelFormat::Bgra, Duration::ZERO).unwrap();
        assert_eq!(source.capture().unwrap().unwrap().damage, &[Rect::new(0, 2, 4, 1)]);
    }

    #[test]
    fn rgba_is_swizzled_and_bad_input_is_refused() {
        let (pusher, mut source) = pushed_source(2, 1).unwrap();
        let rgba = [10, 20, 30, 255, 40, 50, 60, 255];
        pusher.push(&rgba, 2, 1, 8, PixelFormat::Rgba, Duration::ZERO).unwrap();
        assert_eq!(
            source.capture().unwrap().unwrap().image.row(0),
            &[30, 20, 10, 255, 60, 50, 40, 255]
        );
        let short = pusher
            .push(&rgba[..7], 2, 1, 8, PixelFormat::Bgra, Duration::ZERO)
            .unwrap_err();
        assert!(matches!(short, CaptureError::Frame(FrameError::BufferTooShort { .. })));
        let zero = pusher
            .push(&rgba, 0, 1, 8, PixelFormat::Bgra, Duration::ZERO)
            .unwrap_err();
        assert!(matches!(zero, CaptureError::Frame(FrameError::InvalidSize { .. })));
        let yuv = pusher
            .push(&rgba, 2, 1, 8, PixelFormat::I420, Duration::ZERO)
            .unwrap_err();
        assert!(matches!(yuv, CaptureError::Frame(FrameError::WrongFormat { .. })));
        // Nothing was lost: no fresh picture waits.
        assert!(source.capture().unwrap().is_none());
    }

    #[test]
    fn size_changes_damage_everything_and_close_ends() {
        let (pusher, mut source) = pushed_source(2, 2).unwrap();
        pusher
            .push(&picture(2, 2, 1), 2, 2, 8, PixelFormat::Bgra, Duration::ZERO)
            .unwrap();
        source.capture().unwrap().unwrap();
        pusher
            .push(&picture(3, 2, 1), 3, 2, 12, PixelFormat::Bgra, Duration::ZERO)
            .unwrap();
        assert_eq!(source.capture().unwrap().unwrap().damage, &[Rect::new(0, 0, 3, 2)]);
        assert_eq!(source.size(), (3, 2));
        pusher.close();
        assert_eq!(source.capture().unwrap_err(), CaptureError::Closed);
        assert_eq!(
            pusher
                .push(&picture(2, 2, 1), 2, 2, 8, PixelFormat::Bgra, Duration::ZERO)
                .unwrap_err(),
            CaptureError::Closed
        );
    }
}
