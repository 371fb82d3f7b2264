//! Room state: which codes are live, which host owns them, which viewer is waiting for or admitted to which host.
//!
//! Behind the [`RoomStore`] trait so that several server nodes can share a backend later (a store over Redis or a
//! database implements the same trait); [`MemoryRoomStore`] serves one node. Time is passed in.

use peerdesk::signaling::PeerId;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Why a code could not be redeemed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RedeemError {
    /// Never issued, already used or revoked.
    #[error("no session has this code")]
    Invalid,
    /// Issued, but past its expiry.
    #[error("the code has expired")]
    Expired,
}

/// How two peers relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// Not paired.
    None,
    /// The viewer waits for the host's consent.
    Pending,
    /// The host consented; signaling between them is relayed.
    Admitted,
}

/// Shared room state.
pub trait RoomStore: Send + Sync {
    /// Stores a new code for `host`, valid for `ttl`. Returns false when the code is already taken.
    fn insert_code(&self, code: &str, host: &PeerId, now: Instant, ttl: Duration) -> bool;
    /// Consumes a code (single use), returning its host.
    fn redeem(&self, code: &str, now: Instant) -> Result<PeerId, RedeemError>;
    /// Records that `viewer` waits for `host`'s consent.
    fn set_pending(&self, host: &PeerId, viewer: &PeerId);
    /// Records the host's consent.
    fn admit(&self, host: &PeerId, viewer: &PeerId) -> bool;
    /// How `host` and `viewer` relate.
    fn relation(&self, host: &PeerId, viewer: &PeerId) -> Relation;
    /// Unpairs the two.
    fn unpair(&self, host: &PeerId, viewer: &PeerId);
    /// Removes a peer: its codes and pairings. Returns the peers it was paired with.
    fn remove_peer(&self, peer: &PeerId) -> Vec<PeerId>;
    /// Number of live codes and pairs, for health reports.
    fn counts(&self, now: Instant) -> (usize, usize);
}

#[derive(Debug)]
struct CodeEntry {
    host: PeerId,
    expires: Instant,
}

#[derive(Debug, Default)]
struct State {
    codes: HashMap<String, CodeEntry>,
    /// (host, viewer) -> admitted?
    pairs: HashMap<(PeerId, PeerId), bool>,
    /// Codes expired recently, kept to tell "expired" from "invalid" for a while.
    expired: HashMap<String, Instant>,
}

/// The single-node room store.
#[derive(Debug, Default)]
pub struct MemoryRoomStore {
    state: Mutex<State>,
}

/// How long an expired code is remembered as expired (after that it is simply invalid).
const EXPIRED_MEMORY: Duration = Duration::from_secs(3600);

impl MemoryRoomStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn purge(state: &mut State, now: Instant) {
    let expired: Vec<String> = state
        .codes
        .iter()
        .filter(|(_, e)| e.expires <= now)
        .map(|(c, _)| c.clone())
        .collect();
    for code in expired {
        state.codes.remove(&code);
        state.expired.insert(code, now);
    }
    state
        .expired
        .retain(|_, at| now.saturating_duration_since(*at) < EXPIRED_MEMORY);
}

impl RoomStore for MemoryRoomStore {
    fn insert_code(&self, code: &str, host: &PeerId, now: Instant, ttl: Duration) -> bool {
        let mut state = self.lock();
        purge(&mut state, now);
        if state.codes.contains_key(code) || state.expired.contains_key(code) {
            return false;
        }
        state.codes.insert(
            code.to_string(),
            CodeEntry {
                host: host.clone(),
                expires: now + ttl,
            },
        );
        true
    }

    fn redeem(&self, code: &str, now: Instant) -> Result<PeerId, RedeemError> {
        let mut state = self.lock();
        purge(&mut state, now);
        if let Some(entry) = state.codes.remove(code) {
            return Ok(entry.host);
        }
        if state.expired.contains_key(code) {
            return Err(RedeemError::Expired);
        }
        Err(RedeemError::Invalid)
    }

    fn set_pending(&self, host: &PeerId, viewer: &PeerId) {
        self.lock().pairs.insert((host.clone(), viewer.clone()), false);
    }

    fn admit(&self, host: &PeerId, viewer: &PeerId) -> bool {
        match self.lock().pairs.get_mut(&(host.clone(), viewer.clone())) {
            Some(admitted) => {
                *admitted = true;
                true
            }
            None => false,
        }
    }

    fn relation(&self, host: &PeerId, viewer: &PeerId) -> Relation {
        match self.lock().pairs.get(&(host.clone(), viewer.clone())) {
            None => Relation::None,
            Some(false) => Relation::Pending,
            Some(true) => Relation::Admitted,
        }
    }

    fn unpair(&self, host: &PeerId, viewer: &PeerId) {
        self.lock().pairs.remove(&(host.clone(), viewer.clone()));
    }

    fn remove_peer(&self, peer: &PeerId) -> Vec<PeerId> {
        let mut state = self.lock();
        state.codes.retain(|_, e| &e.host != peer);
        let mut others = HashSet::new();
        state.pairs.retain(|(host, viewer), _| {
            if host == peer {
                others.insert(viewer.clone());
                false
            } else if viewer == peer {
                others.insert(host.clone());
                false
            } else {
                true
            }
        });
        others.into_iter().collect()
    }

    fn counts(&self, now: Instant) -> (usize, usize) {
        let mut state = self.lock();
        purge(&mut state, now);
        (state.codes.len(), state.pairs.len())
    }
}

/// A new session code of `digits` decimal digits from the operating system's CSPRNG, without modulo bias.
pub fn new_code(digits: usize) -> String {
    let mut code = String::with_capacity(digits);
    let mut buf = [0u8; 32];
    while code.len() < digits {
        getrandom::fill(&mut buf).expect("the operating system's random source failed");
        for &b in &buf {
            // 250 = 25 * 10: reject 250..=255 so every digit is equally likely.
            if b < 250 && code.len() < digits {
                code.push(char::from(b'0' + b % 10));
            }
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_single_use_and_expire() {
        let store = MemoryRoomStore::default();
        let t0 = Instant::now();
        let host: PeerId = "h".into();
        assert!(store.insert_code("123", &host, t0, Duration::from_secs(10)));
        assert!(!store.insert_code("123", &host, t0, Duration::from_secs(10)));
        assert_eq!(store.redeem("123", t0), Ok(host.clone()));
        assert_eq!(store.redeem("123", t0), Err(RedeemError::Invalid));
        assert!(store.insert_code("456", &host, t0, Duration::from_secs(10)));
        assert_eq!(
            store.redeem("456", t0 + Duration::from_secs(11)),
            Err(RedeemError::Expired)
        );
        assert_eq!(store.redeem("999", t0), Err(RedeemError::Invalid));
    }

    #[test]
    fn pairing_and_removal() {
        let store = MemoryRoomStore::default();
        let (h, v): (PeerId, PeerId) = ("h".into(), "v".into());
        store.set_pending(&h, &v);
        assert_eq!(store.relation(&h, &v), Relation::Pending);
        assert!(store.admit(&h, &v));
        assert_eq!(store.relation(&h, &v), Relation::Admitted);
        assert_eq!(store.remove_peer(&v), vec![h.clone()]);
        assert_eq!(store.relation(&h, &v), Relation::None);
        assert!(!store.admit(&h, &v));
    }

    #[test]
    fn codes_have_the_asked_length_and_spread_over_all_digits() {
        let mut seen = [0usize; 10];
        for _ in 0..200 {
            let code = new_code(10);
            assert_eq!(code.len(), 10);
            for c in code.bytes() {
                seen[(c - b'0') as usize] += 1;
            }
        }
        // 2000 digits: each digit expected 200 times; a broken generator fails this.
        assert!(seen.iter().all(|&n| (120..=280).contains(&n)), "{seen:?}");
    }
}
