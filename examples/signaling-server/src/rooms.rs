//! Room state: which codes are live, which host owns them, which viewer is waiting for or admitted to which host.
//!
//! Behind the [`RoomStore`] trait so that several server nodes can share a backend later (a store over Redis or a
//! database implements the same trait); [`MemoryRoomStore`] serves one node. Time is passed in.

use peerdesk::signaling::PeerId;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Why a code could not be claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RedeemError {
    /// Never issued, already used or revoked.
    #[error("no session has this code")]
    Invalid,
    /// Issued, but past its expiry.
    #[error("the code has expired")]
    Expired,
    /// [`MAX_CLAIMS`] viewers already wait for the host's answer on this code.
    #[error("too many viewers are waiting on this code")]
    Busy,
}

/// Viewers that may wait on one code at once. A guesser who hits a live code does not lock the real technician
/// out: both wait, the host sees both requests, and the code is consumed only when the host accepts one.
pub const MAX_CLAIMS: usize = 4;

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
    /// `viewer` asks to join with `code`: returns its host and records the viewer as pending on that code. The
    /// code stays live until the host admits a viewer.
    ///
    /// # Errors
    /// [`RedeemError`] when the code is unknown, expired or has [`MAX_CLAIMS`] viewers waiting.
    fn claim(&self, code: &str, viewer: &PeerId, now: Instant) -> Result<PeerId, RedeemError>;
    /// Records the host's consent and consumes the code the viewer claimed. Returns the other viewers that were
    /// waiting on the same code (now unpaired), or `None` when the viewer was not pending.
    fn admit(&self, host: &PeerId, viewer: &PeerId) -> Option<Vec<PeerId>>;
    /// Records `viewer`'s pending request to `host` without a code (unattended access); `false` when the host
    /// already has too many pending requests.
    fn request(&self, host: &PeerId, viewer: &PeerId) -> bool;
    /// How `host` and `viewer` relate.
    fn relation(&self, host: &PeerId, viewer: &PeerId) -> Relation;
    /// Unpairs the two; a pending viewer's claim on its code is released.
    fn unpair(&self, host: &PeerId, viewer: &PeerId);
    /// Removes a peer: its codes, claims and pairings. Returns the peers it was paired with.
    fn remove_peer(&self, peer: &PeerId) -> Vec<PeerId>;
    /// Live codes `host` holds.
    fn codes_held(&self, host: &PeerId, now: Instant) -> usize;
    /// Number of live codes and pairs, for health reports.
    fn counts(&self, now: Instant) -> (usize, usize);
}

#[derive(Debug)]
struct CodeEntry {
    host: PeerId,
    expires: Instant,
    claims: Vec<PeerId>,
}

#[derive(Debug)]
struct Pair {
    admitted: bool,
    /// The code a pending viewer claimed.
    code: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    codes: HashMap<String, CodeEntry>,
    /// Live codes by expiry: purging walks it from the front, so it costs what expired, not what is live.
    by_expiry: BTreeSet<(Instant, String)>,
    /// Live codes per host.
    held: HashMap<PeerId, HashSet<String>>,
    /// (host, viewer) -> pairing.
    pairs: HashMap<(PeerId, PeerId), Pair>,
    /// Codes expired recently, kept to tell "expired" from "invalid" for a while, oldest first.
    expired: HashMap<String, Instant>,
    expired_order: VecDeque<(Instant, String)>,
}

/// The single-node room store.
#[derive(Debug, Default)]
pub struct MemoryRoomStore {
    state: Mutex<State>,
}

/// Unattended requests one host may have pending at once (each waits for its handshake to start).
const MAX_PENDING_REQUESTS: usize = 16;
/// How long an expired code is remembered as expired (after that it is simply invalid).
const EXPIRED_MEMORY: Duration = Duration::from_secs(3600);
/// Most expired codes remembered; past it the oldest become simply invalid sooner.
const MAX_EXPIRED_REMEMBERED: usize = 100_000;

impl MemoryRoomStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    /// Removes a live code. Viewers still waiting on it lose their request (`drop_claims`) or, when the code
    /// merely expired, stay pending without a code: the host may still answer them.
    fn forget_code(&mut self, code: &str, drop_claims: bool) -> Option<CodeEntry> {
        let entry = self.codes.remove(code)?;
        self.by_expiry.remove(&(entry.expires, code.to_string()));
        if let Some(codes) = self.held.get_mut(&entry.host) {
            codes.remove(code);
            if codes.is_empty() {
                self.held.remove(&entry.host);
            }
        }
        for viewer in &entry.claims {
            let key = (entry.host.clone(), viewer.clone());
            if drop_claims {
                self.pairs.remove(&key);
            } else if let Some(pair) = self.pairs.get_mut(&key) {
                pair.code = None;
            }
        }
        Some(entry)
    }

    fn purge(&mut self, now: Instant) {
        while let Some((expires, code)) = self.by_expiry.first().cloned() {
            if expires > now {
                break;
            }
            self.forget_code(&code, false);
            self.expired.insert(code.clone(), now);
            self.expired_order.push_back((now, code));
        }
        while let Some((at, code)) = self.expired_order.front() {
            if now.saturating_duration_since(*at) < EXPIRED_MEMORY && self.expired_order.len() <= MAX_EXPIRED_REMEMBERED
            {
                break;
            }
            if self.expired.get(code) == Some(at) {
                self.expired.remove(code);
            }
            self.expired_order.pop_front();
        }
    }

    fn release_claim(&mut self, viewer: &PeerId, code: &str) {
        if let Some(entry) = self.codes.get_mut(code) {
            entry.claims.retain(|v| v != viewer);
        }
    }
}

impl RoomStore for MemoryRoomStore {
    fn insert_code(&self, code: &str, host: &PeerId, now: Instant, ttl: Duration) -> bool {
        let mut state = self.lock();
        state.purge(now);
        if state.codes.contains_key(code) || state.expired.contains_key(code) {
            return false;
        }
        let expires = now + ttl;
        state.codes.insert(
            code.to_string(),
            CodeEntry {
                host: host.clone(),
                expires,
                claims: Vec::new(),
            },
        );
        state.by_expiry.insert((expires, code.to_string()));
        state.held.entry(host.clone()).or_default().insert(code.to_string());
        true
    }

    fn claim(&self, code: &str, viewer: &PeerId, now: Instant) -> Result<PeerId, RedeemError> {
        let mut state = self.lock();
        state.purge(now);
        let Some(entry) = state.codes.get_mut(code) else {
            return Err(if state.expired.contains_key(code) {
                RedeemError::Expired
            } else {
                RedeemError::Invalid
            });
        };
        if entry.claims.len() >= MAX_CLAIMS {
            return Err(RedeemError::Busy);
        }
        entry.claims.push(viewer.clone());
        let host = entry.host.clone();
        state.pairs.insert(
            (host.clone(), viewer.clone()),
            Pair {
                admitted: false,
                code: Some(code.to_string()),
            },
        );
        Ok(host)
    }

    fn admit(&self, host: &PeerId, viewer: &PeerId) -> Option<Vec<PeerId>> {
        let mut state = self.lock();
        let pair = state.pairs.get_mut(&(host.clone(), viewer.clone()))?;
        if pair.admitted {
            return None;
        }
        pair.admitted = true;
        let code = pair.code.take();
        let mut others = Vec::new();
        if let Some(code) = code {
            if let Some(entry) = state.codes.get_mut(&code) {
                entry.claims.retain(|v| v != viewer);
                others = entry.claims.clone();
            }
            state.forget_code(&code, true);
        }
        Some(others)
    }

    fn request(&self, host: &PeerId, viewer: &PeerId) -> bool {
        let mut state = self.lock();
        let pending = state
            .pairs
            .iter()
            .filter(|((h, _), pair)| h == host && !pair.admitted && pair.code.is_none())
            .count();
        if pending >= MAX_PENDING_REQUESTS {
            return false;
        }
        state.pairs.insert(
            (host.clone(), viewer.clone()),
            Pair {
                admitted: false,
                code: None,
            },
        );
        true
    }

    fn relation(&self, host: &PeerId, viewer: &PeerId) -> Relation {
        match self.lock().pairs.get(&(host.clone(), viewer.clone())) {
            None => Relation::None,
            Some(Pair { admitted: false, .. }) => Relation::Pending,
            Some(Pair { admitted: true, .. }) => Relation::Admitted,
        }
    }

    fn unpair(&self, host: &PeerId, viewer: &PeerId) {
        let mut state = self.lock();
        if let Some(Pair { code: Some(code), .. }) = state.pairs.remove(&(host.clone(), viewer.clone())) {
            state.release_claim(viewer, &code);
        }
    }

    fn remove_peer(&self, peer: &PeerId) -> Vec<PeerId> {
        let mut state = self.lock();
        let mut others = HashSet::new();
        let mut released = Vec::new();
        state.pairs.retain(|(host, viewer), pair| {
            if host == peer {
                others.insert(viewer.clone());
                false
            } else if viewer == peer {
                others.insert(host.clone());
                if let Some(code) = pair.code.take() {
                    released.push(code);
                }
                false
            } else {
                true
            }
        });
        for code in released {
            state.release_claim(peer, &code);
        }
        let owned = state.held.get(peer).cloned().unwrap_or_default();
        for code in owned {
            state.forget_code(&code, true);
        }
        others.into_iter().collect()
    }

    fn codes_held(&self, host: &PeerId, now: Instant) -> usize {
        let mut state = self.lock();
        state.purge(now);
        state.held.get(host).map_or(0, HashSet::len)
    }

    fn counts(&self, now: Instant) -> (usize, usize) {
        let mut state = self.lock();
        state.purge(now);
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
    fn codes_are_consumed_on_admission_and_expire() {
        let store = MemoryRoomStore::default();
        let t0 = Instant::now();
        let (host, viewer): (PeerId, PeerId) = ("h".into(), "v".into());
        assert!(store.insert_code("123", &host, t0, Duration::from_secs(10)));
        assert!(!store.insert_code("123", &host, t0, Duration::from_secs(10)));
        assert_eq!(store.codes_held(&host, t0), 1);
        assert_eq!(store.claim("123", &viewer, t0), Ok(host.clone()));
        assert_eq!(store.relation(&host, &viewer), Relation::Pending);
        assert_eq!(store.admit(&host, &viewer), Some(vec![]));
        assert_eq!(store.relation(&host, &viewer), Relation::Admitted);
        assert_eq!(store.claim("123", &"w".into(), t0), Err(RedeemError::Invalid));
        assert_eq!(store.codes_held(&host, t0), 0, "a used code is no longer held");
        assert!(store.insert_code("456", &host, t0, Duration::from_secs(10)));
        assert_eq!(
            store.claim("456", &viewer, t0 + Duration::from_secs(11)),
            Err(RedeemError::Expired)
        );
        assert_eq!(store.codes_held(&host, t0 + Duration::from_secs(11)), 0);
        assert_eq!(store.claim("999", &viewer, t0), Err(RedeemError::Invalid));
    }

    #[test]
    fn a_guesser_who_hits_a_code_does_not_take_it_from_the_technician() {
        let store = MemoryRoomStore::default();
        let t0 = Instant::now();
        let host: PeerId = "h".into();
        let (guesser, technician): (PeerId, PeerId) = ("g".into(), "t".into());
        assert!(store.insert_code("123", &host, t0, Duration::from_secs(60)));
        assert_eq!(store.claim("123", &guesser, t0), Ok(host.clone()));
        assert_eq!(store.claim("123", &technician, t0), Ok(host.clone()));
        // The customer declines the guesser: the code still works.
        store.unpair(&host, &guesser);
        assert_eq!(store.relation(&host, &guesser), Relation::None);
        // Admitting the technician consumes the code and voids any other claim.
        assert_eq!(store.claim("123", &"x".into(), t0), Ok(host.clone()));
        assert_eq!(store.admit(&host, &technician), Some(vec!["x".to_string()]));
        assert_eq!(store.relation(&host, &"x".into()), Relation::None);
        // At most MAX_CLAIMS wait at once.
        assert!(store.insert_code("456", &host, t0, Duration::from_secs(60)));
        for i in 0..MAX_CLAIMS {
            assert!(store.claim("456", &format!("v{i}"), t0).is_ok());
        }
        assert_eq!(store.claim("456", &"late".into(), t0), Err(RedeemError::Busy));
        // A waiting viewer that disconnects gives its place back.
        store.remove_peer(&"v0".into());
        assert!(store.claim("456", &"late".into(), t0).is_ok());
    }

    #[test]
    fn pairing_and_removal() {
        let store = MemoryRoomStore::default();
        let t0 = Instant::now();
        let (h, v): (PeerId, PeerId) = ("h".into(), "v".into());
        assert!(store.insert_code("1", &h, t0, Duration::from_secs(60)));
        store.claim("1", &v, t0).unwrap();
        assert_eq!(store.relation(&h, &v), Relation::Pending);
        assert!(store.admit(&h, &v).is_some());
        assert_eq!(store.relation(&h, &v), Relation::Admitted);
        assert_eq!(store.remove_peer(&v), vec![h.clone()]);
        assert_eq!(store.relation(&h, &v), Relation::None);
        assert!(store.admit(&h, &v).is_none());
    }

    #[test]
    fn purging_costs_what_expired_not_what_is_live() {
        let store = MemoryRoomStore::default();
        let t0 = Instant::now();
        let host: PeerId = "h".into();
        for i in 0..5_000 {
            assert!(store.insert_code(&format!("{i:010}"), &host, t0, Duration::from_secs(1)));
        }
        assert_eq!(store.counts(t0), (5_000, 0));
        assert_eq!(store.counts(t0 + Duration::from_secs(2)).0, 0);
        let state = store.lock();
        assert!(state.by_expiry.is_empty() && state.held.is_empty());
        assert_eq!(state.expired.len(), 5_000);
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
