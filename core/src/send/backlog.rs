//! The longest sender backlog over a host's viewers: how long the media each viewer's congestion window holds
//! back would take to leave at that viewer's estimate. The encode thread reads it before every picture and lets a
//! changed picture wait while it is long (see [`crate::encode::EncodeController::set_send_backlog`]).
//!
//! Why: the rate budget meters the encoder against the pacer's rate, 2.5 times the estimate, so that a keyframe
//! leaves quickly and random loss (which GCC answers with a low estimate) does not cut the frame rate. On a link
//! narrower than that, what the pacer sends waits in front of the congestion window, and a picture encoded behind
//! it waits as long: at a 500 kbit/s cap the window held up to a second of media (p95 0.6–1.3 s). The window's
//! backlog is the wait itself, whatever the estimate's error.

use crate::transport::congestion_window::SharedBacklog;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The backlogs of a host's viewers, each registered while its connection lives.
#[derive(Debug, Default)]
pub(crate) struct ViewerBacklogs {
    backlogs: Mutex<Vec<(u64, SharedBacklog)>>,
    next_id: AtomicU64,
}

impl ViewerBacklogs {
    /// Counts `backlog` until the registration returned is dropped.
    pub(crate) fn register(self: &Arc<Self>, backlog: SharedBacklog) -> BacklogRegistration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.backlogs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((id, backlog));
        BacklogRegistration {
            backlogs: self.clone(),
            id,
        }
    }

    /// The longest backlog of any viewer; zero with none.
    pub(crate) fn longest(&self) -> Duration {
        self.backlogs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(_, backlog)| backlog.get())
            .max()
            .unwrap_or_default()
    }
}

/// A viewer's backlog counted in [`ViewerBacklogs`]; dropping it stops counting it.
#[derive(Debug)]
pub(crate) struct BacklogRegistration {
    backlogs: Arc<ViewerBacklogs>,
    id: u64,
}

impl Drop for BacklogRegistration {
    fn drop(&mut self) {
        self.backlogs
            .backlogs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(id, _)| *id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backlog(micros: u64) -> SharedBacklog {
        let backlog = SharedBacklog::default();
        backlog.0.store(micros, Ordering::Relaxed);
        backlog
    }

    #[test]
    fn the_slowest_viewer_counts_until_it_leaves() {
        let backlogs = Arc::new(ViewerBacklogs::default());
        assert_eq!(backlogs.longest(), Duration::ZERO);
        let _fast = backlogs.register(backlog(5_000));
        let slow = backlogs.register(backlog(400_000));
        assert_eq!(backlogs.longest(), Duration::from_millis(400));
        drop(slow);
        assert_eq!(backlogs.longest(), Duration::from_millis(5));
    }
}
