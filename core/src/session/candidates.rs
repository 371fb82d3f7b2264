//! ICE candidates from the other side, one policy for host and viewer: plain logic, no I/O.
//!
//! A trickled candidate can only be added once the remote description of its generation is applied (the first
//! offer or answer, or the one of an ICE restart). Until then it is held, in order; when the description is
//! applied, the held candidates go in. A candidate the connection refused although a description was applied came
//! ahead of its restart's description, and is held for the next one. At most [`RemoteCandidates::CAPACITY`] are
//! held; when full, the oldest is dropped (it is the likeliest to belong to a generation that is over) and counted.

use std::collections::VecDeque;
use std::sync::Arc;
use webrtc::peer_connection::{PeerConnection, RTCIceCandidateInit};

/// The other side's candidates that wait for their remote description.
#[derive(Debug)]
pub(crate) struct RemoteCandidates<C> {
    ready: bool,
    held: VecDeque<C>,
    dropped: u64,
}

impl<C> Default for RemoteCandidates<C> {
    fn default() -> Self {
        Self {
            ready: false,
            held: VecDeque::new(),
            dropped: 0,
        }
    }
}

impl<C> RemoteCandidates<C> {
    /// Candidates held at most: more than a host with a few interfaces, a relay and IPv6 trickles in one generation.
    pub const CAPACITY: usize = 64;

    /// For a connection whose remote description is already applied.
    pub fn applied() -> Self {
        Self {
            ready: true,
            ..Self::default()
        }
    }

    /// A candidate from the other side: returned when it can be added now, else held.
    pub fn on_candidate(&mut self, candidate: C) -> Option<C> {
        if self.ready {
            return Some(candidate);
        }
        self.hold(candidate);
        None
    }

    /// The connection refused `candidate` although a description was applied: it belongs to a restart whose
    /// description has not come yet, and is held for it.
    pub fn on_refused(&mut self, candidate: C) {
        self.hold(candidate);
    }

    /// A new generation begins (this side sent an ICE restart): its candidates wait for the other side's answer.
    pub fn on_new_generation(&mut self) {
        self.ready = false;
    }

    /// The remote description was applied: the held candidates, oldest first, to add now.
    pub fn on_description_applied(&mut self) -> impl Iterator<Item = C> + '_ {
        self.ready = true;
        self.held.drain(..)
    }

    /// Candidates dropped because too many were held.
    #[cfg(test)]
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    fn hold(&mut self, candidate: C) {
        if self.held.len() == Self::CAPACITY {
            self.held.pop_front();
            self.dropped += 1;
            tracing::debug!(
                dropped = self.dropped,
                "too many remote ICE candidates held; the oldest dropped"
            );
        }
        self.held.push_back(candidate);
    }
}

/// Adds `candidates` to `connection`, in order; one the connection refuses is logged and skipped.
pub(crate) async fn add_candidates(
    connection: &Arc<dyn PeerConnection>,
    candidates: impl IntoIterator<Item = RTCIceCandidateInit>,
) {
    for candidate in candidates {
        if let Err(e) = connection.add_ice_candidate(candidate).await {
            tracing::debug!("remote candidate refused: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_before_the_description_wait_for_it_in_order() {
        let mut candidates = RemoteCandidates::default();
        assert_eq!(candidates.on_candidate(1), None);
        assert_eq!(candidates.on_candidate(2), None);
        assert_eq!(candidates.on_description_applied().collect::<Vec<_>>(), [1, 2]);
        assert_eq!(candidates.on_candidate(3), Some(3), "after it: at once");
        assert_eq!(candidates.on_description_applied().count(), 0, "nothing held twice");
    }

    #[test]
    fn a_restart_holds_its_candidates_until_the_answer() {
        let mut candidates = RemoteCandidates::default();
        candidates.on_description_applied().for_each(drop);
        candidates.on_new_generation();
        assert_eq!(candidates.on_candidate(7), None);
        assert_eq!(candidates.on_description_applied().collect::<Vec<_>>(), [7]);
    }

    #[test]
    fn a_refused_candidate_waits_for_the_next_description() {
        let mut candidates = RemoteCandidates::applied();
        let early = candidates.on_candidate(9).expect("ready");
        candidates.on_refused(early);
        assert_eq!(candidates.on_description_applied().collect::<Vec<_>>(), [9]);
    }

    #[test]
    fn a_flood_keeps_the_newest_and_counts_the_rest() {
        let mut candidates = RemoteCandidates::default();
        let n = RemoteCandidates::<usize>::CAPACITY + 10;
        for i in 0..n {
            candidates.on_candidate(i);
        }
        assert_eq!(candidates.dropped(), 10);
        let held: Vec<_> = candidates.on_description_applied().collect();
        assert_eq!(held.len(), RemoteCandidates::<usize>::CAPACITY);
        assert_eq!(held[0], 10, "the oldest went");
        assert_eq!(*held.last().unwrap(), n - 1);
    }
}
