//! A viewer whose link fell behind the host's encoder: plain logic, no I/O.
//!
//! The encoder's frames go to every viewer through one bounded queue (16 frames); a viewer whose sending falls
//! further behind loses the oldest. Every frame after the lost ones refers to a picture that viewer never got, so
//! sending them only spends its bandwidth on frames it cannot decode. [`LagRecovery`] asks for a keyframe at once
//! and skips frames until one comes; if none comes within [`LagRecovery::REREQUEST_AFTER`] skipped frames (a
//! request the encoder coalesced or lost), it asks again.

/// What to do with the next frame for one viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameAction {
    /// Send it.
    Send,
    /// Skip it (it refers to frames this viewer lacks); `request_keyframe` when the request is repeated.
    Skip {
        /// Ask the encoder for a keyframe again.
        request_keyframe: bool,
    },
}

/// One viewer's recovery from lost frames.
#[derive(Debug, Default)]
pub(crate) struct LagRecovery {
    awaiting_keyframe: bool,
    skipped: u32,
}

impl LagRecovery {
    /// Frames skipped before the keyframe request is repeated: one second at 30 fps.
    pub const REREQUEST_AFTER: u32 = 30;

    /// The viewer lost frames; the caller asks the encoder for a keyframe (the encoder coalesces requests).
    pub fn on_frames_lost(&mut self) {
        self.awaiting_keyframe = true;
        self.skipped = 0;
    }

    /// The next frame for this viewer, a keyframe or not.
    pub fn on_frame(&mut self, keyframe: bool) -> FrameAction {
        if !self.awaiting_keyframe || keyframe {
            self.awaiting_keyframe = false;
            return FrameAction::Send;
        }
        self.skipped += 1;
        FrameAction::Skip {
            request_keyframe: self.skipped % Self::REREQUEST_AFTER == 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_flow_until_some_are_lost_then_wait_for_a_keyframe() {
        let mut lag = LagRecovery::default();
        assert_eq!(lag.on_frame(false), FrameAction::Send);
        lag.on_frames_lost();
        assert_eq!(
            lag.on_frame(false),
            FrameAction::Skip {
                request_keyframe: false
            }
        );
        assert_eq!(
            lag.on_frame(true),
            FrameAction::Send,
            "the keyframe repairs the picture"
        );
        assert_eq!(
            lag.on_frame(false),
            FrameAction::Send,
            "and what follows is decodable again"
        );
    }

    #[test]
    fn a_keyframe_that_does_not_come_is_asked_for_again_each_second() {
        let mut lag = LagRecovery::default();
        lag.on_frames_lost();
        let requests: Vec<u32> = (1..=90)
            .filter(|_| lag.on_frame(false) == FrameAction::Skip { request_keyframe: true })
            .collect();
        assert_eq!(requests.len(), 3, "after 30, 60 and 90 skipped frames");
    }

    #[test]
    fn a_second_loss_while_waiting_starts_the_count_again() {
        let mut lag = LagRecovery::default();
        lag.on_frames_lost();
        for _ in 0..29 {
            lag.on_frame(false);
        }
        lag.on_frames_lost();
        assert_eq!(
            lag.on_frame(false),
            FrameAction::Skip {
                request_keyframe: false
            }
        );
    }
}
