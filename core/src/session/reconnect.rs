//! When to restart ICE after the path between host and viewer broke: plain logic with time passed in.
//!
//! A path breaks for a moment (Wi-Fi hiccup), for long (a tunnel, a router reboot) or for good on its old
//! addresses (Wi-Fi to mobile). ICE notices: "disconnected" after 5 s without answers, "failed" after 25 s, and
//! from "failed" webrtc-rs never comes back by itself. The host (the side that makes offers) then restarts ICE:
//! a new offer with new ICE credentials over signaling, so both sides gather and check candidate pairs again,
//! on whatever addresses they have now. The DTLS association, the media streams and the control channel carry
//! on unchanged once a pair works.
//!
//! The policy: restart when the connection has been disconnected for [`RESTART_AFTER_DISCONNECTED`] or failed;
//! restart again every [`RESTART_RETRY`] while it is not back; give up [`RECONNECT_WINDOW`] after it was lost.

use std::time::{Duration, Instant};

/// How long a "disconnected" connection may stay so before ICE is restarted.
pub const RESTART_AFTER_DISCONNECTED: Duration = Duration::from_secs(2);
/// How long one restart may try before the next one (ICE checks a pair for about 2 s).
pub const RESTART_RETRY: Duration = Duration::from_secs(4);
/// How long after the connection was lost the session is given up.
pub const RECONNECT_WINDOW: Duration = Duration::from_secs(60);

/// The connection's state as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathState {
    /// Media and data flow.
    Connected,
    /// No answers for a few seconds; may come back by itself.
    Disconnected,
    /// ICE gave up on every pair.
    Failed,
}

/// What the driver should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReconnectAction {
    /// Nothing until the next deadline.
    Wait,
    /// Send an ICE-restart offer.
    RestartIce,
    /// The path did not come back within the window: end the session.
    GiveUp,
}

/// What the app is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathChange {
    /// The connection was lost; the session tries to get it back.
    Lost,
    /// It is back.
    Restored,
}

/// One connection's reconnection state.
#[derive(Debug, Clone, Default)]
pub(crate) struct Reconnector {
    /// When the connection was lost (disconnected or failed), while it is.
    lost_at: Option<Instant>,
    /// When the last restart was sent, while the connection is lost.
    restarted_at: Option<Instant>,
    /// Failed (not merely disconnected).
    failed: bool,
    /// Restarts sent in all.
    restarts: u64,
}

impl Reconnector {
    /// The connection's state changed; returns what the app should hear of it.
    pub(crate) fn on_state(&mut self, state: PathState, now: Instant) -> Option<PathChange> {
        match state {
            PathState::Connected => {
                self.failed = false;
                self.restarted_at = None;
                self.lost_at.take().map(|_| PathChange::Restored)
            }
            PathState::Disconnected | PathState::Failed => {
                self.failed |= state == PathState::Failed;
                if self.lost_at.is_none() {
                    self.lost_at = Some(now);
                    return Some(PathChange::Lost);
                }
                None
            }
        }
    }

    /// What to do at `now`. Call it at [`Reconnector::deadline`] and after every state change.
    pub(crate) fn poll(&mut self, now: Instant) -> ReconnectAction {
        let Some(lost_at) = self.lost_at else {
            return ReconnectAction::Wait;
        };
        if now.duration_since(lost_at) >= RECONNECT_WINDOW {
            return ReconnectAction::GiveUp;
        }
        let due = match self.restarted_at {
            Some(at) => now.duration_since(at) >= RESTART_RETRY,
            None => self.failed || now.duration_since(lost_at) >= RESTART_AFTER_DISCONNECTED,
        };
        if due {
            self.restarted_at = Some(now);
            self.restarts += 1;
            ReconnectAction::RestartIce
        } else {
            ReconnectAction::Wait
        }
    }

    /// When [`Reconnector::poll`] next has something to do; `None` while connected.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let lost_at = self.lost_at?;
        let next = match self.restarted_at {
            Some(at) => at + RESTART_RETRY,
            None if self.failed => lost_at,
            None => lost_at + RESTART_AFTER_DISCONNECTED,
        };
        Some(next.min(lost_at + RECONNECT_WINDOW))
    }

    /// Restarts sent so far.
    pub(crate) fn restarts(&self) -> u64 {
        self.restarts
    }
}

/// The viewer's side: it cannot restart ICE (the host makes the offers), so it only waits for the host's
/// restart and gives up when none brought the connection back within the window.
#[derive(Debug, Clone, Default)]
pub(crate) struct LossTimer {
    lost_at: Option<Instant>,
}

impl LossTimer {
    /// The connection's state changed; returns what the app should hear of it.
    pub(crate) fn on_state(&mut self, state: PathState, now: Instant) -> Option<PathChange> {
        match (state, self.lost_at) {
            (PathState::Connected, Some(_)) => {
                self.lost_at = None;
                Some(PathChange::Restored)
            }
            (PathState::Disconnected | PathState::Failed, None) => {
                self.lost_at = Some(now);
                Some(PathChange::Lost)
            }
            _ => None,
        }
    }

    /// When the session is given up unless the connection is back.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.lost_at.map(|at| at + RECONNECT_WINDOW)
    }
}

/// Waits between attempts to reach the signaling server again: 1 s, doubling to at most 30 s, for as long as the
/// host shares. Plain logic with time passed in.
#[derive(Debug, Clone, Default)]
pub(crate) struct Backoff {
    failures: u32,
}

/// The first wait before reconnecting to the signaling server.
pub const SIGNALING_RETRY_FIRST: Duration = Duration::from_secs(1);
/// The longest wait between attempts.
pub const SIGNALING_RETRY_MAX: Duration = Duration::from_secs(30);

impl Backoff {
    /// When to try next after a failure (or the loss of the connection) at `now`.
    pub(crate) fn next_attempt(&mut self, now: Instant) -> Instant {
        let wait = SIGNALING_RETRY_FIRST
            .saturating_mul(1 << self.failures.min(5))
            .min(SIGNALING_RETRY_MAX);
        self.failures = self.failures.saturating_add(1);
        now + wait
    }

    /// The connection is back: the next loss starts from the first wait again.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

/// A peer connection's state, as far as the session's state machines care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectionState {
    Connected,
    Disconnected,
    Failed,
    Closed,
    /// New, connecting: nothing to decide.
    Other,
}

impl From<webrtc::peer_connection::RTCPeerConnectionState> for ConnectionState {
    fn from(state: webrtc::peer_connection::RTCPeerConnectionState) -> Self {
        use webrtc::peer_connection::RTCPeerConnectionState as Rtc;
        match state {
            Rtc::Connected => ConnectionState::Connected,
            Rtc::Disconnected => ConnectionState::Disconnected,
            Rtc::Failed => ConnectionState::Failed,
            Rtc::Closed => ConnectionState::Closed,
            _ => ConnectionState::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn signaling_retries_back_off_to_thirty_seconds_and_reset() {
        let t0 = Instant::now();
        let mut backoff = Backoff::default();
        let waits: Vec<u64> = (0..8).map(|_| (backoff.next_attempt(t0) - t0).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 30, 30, 30]);
        backoff.reset();
        assert_eq!(backoff.next_attempt(t0) - t0, SIGNALING_RETRY_FIRST);
    }

    use super::*;

    #[test]
    fn a_short_disconnection_restarts_once_it_lasts() {
        let t0 = Instant::now();
        let mut r = Reconnector::default();
        assert_eq!(r.poll(t0), ReconnectAction::Wait);
        assert_eq!(r.deadline(), None);
        assert_eq!(r.on_state(PathState::Disconnected, t0), Some(PathChange::Lost));
        assert_eq!(r.poll(t0 + Duration::from_secs(1)), ReconnectAction::Wait);
        assert_eq!(r.deadline(), Some(t0 + RESTART_AFTER_DISCONNECTED));
        // It comes back by itself before the restart: nothing sent.
        assert_eq!(
            r.on_state(PathState::Connected, t0 + Duration::from_millis(1500)),
            Some(PathChange::Restored)
        );
        assert_eq!(r.poll(t0 + Duration::from_secs(3)), ReconnectAction::Wait);
        assert_eq!(r.restarts(), 0);
    }

    #[test]
    fn a_failure_restarts_at_once_then_retries_until_the_window_closes() {
        let t0 = Instant::now();
        let mut r = Reconnector::default();
        r.on_state(PathState::Disconnected, t0);
        assert_eq!(r.poll(t0 + RESTART_AFTER_DISCONNECTED), ReconnectAction::RestartIce);
        assert_eq!(
            r.poll(t0 + RESTART_AFTER_DISCONNECTED),
            ReconnectAction::Wait,
            "one restart per retry interval"
        );
        let failed = t0 + Duration::from_secs(25);
        assert_eq!(
            r.on_state(PathState::Failed, failed),
            None,
            "already lost: one Lost event"
        );
        let mut restarts = 1;
        let mut now = failed;
        loop {
            match r.poll(now) {
                ReconnectAction::RestartIce => restarts += 1,
                ReconnectAction::GiveUp => break,
                ReconnectAction::Wait => {}
            }
            now = r.deadline().unwrap();
        }
        assert!(now >= t0 + RECONNECT_WINDOW);
        // At 2 s, then (polled first at 25 s) at 25, 29, ..., 57 s: a restart every RESTART_RETRY until the window.
        assert_eq!(restarts, 1 + 9, "a restart every {RESTART_RETRY:?}");
    }

    #[test]
    fn failing_straight_away_restarts_without_waiting() {
        let t0 = Instant::now();
        let mut r = Reconnector::default();
        r.on_state(PathState::Failed, t0);
        assert_eq!(r.deadline(), Some(t0));
        assert_eq!(r.poll(t0), ReconnectAction::RestartIce);
        assert_eq!(
            r.on_state(PathState::Connected, t0 + Duration::from_secs(1)),
            Some(PathChange::Restored)
        );
        assert_eq!(r.deadline(), None);
    }

    #[test]
    fn the_viewer_gives_up_only_after_the_window() {
        let t0 = Instant::now();
        let mut timer = LossTimer::default();
        assert_eq!(timer.on_state(PathState::Failed, t0), Some(PathChange::Lost));
        assert_eq!(timer.on_state(PathState::Disconnected, t0), None);
        assert_eq!(timer.deadline(), Some(t0 + RECONNECT_WINDOW));
        assert_eq!(timer.on_state(PathState::Connected, t0), Some(PathChange::Restored));
        assert_eq!(timer.deadline(), None);
    }
}
