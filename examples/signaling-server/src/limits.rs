//! Who a client is, for limits that bound attackers and not users: client addresses behind trusted proxies, keys
//! that group an attacker's addresses (an IPv6 /64 is one subscriber), per-key connection caps, and the join
//! guard that limits code guessing per key and per prefix without ever refusing a valid code. Plain logic, time
//! passed in.

use peerdesk::ratelimit::FailureWindow;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An address block such as `10.0.0.0/8` or `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a CIDR string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an address or address block (a.b.c.d[/n] or an IPv6 address[/n]): {0:?}")]
pub struct CidrError(String);

impl Cidr {
    /// The block of `prefix` leading bits around `addr`.
    pub fn new(addr: IpAddr, prefix: u8) -> Cidr {
        let prefix = prefix.min(if addr.is_ipv4() { 32 } else { 128 });
        Cidr {
            network: mask(addr, prefix),
            prefix,
        }
    }

    /// Whether `addr` is in the block (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        addr.is_ipv4() == self.network.is_ipv4() && mask(addr, self.prefix) == self.network
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let error = || CidrError(s.to_string());
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr = canonical(addr.parse::<IpAddr>().map_err(|_| error())?);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(error)?,
            None => max,
        };
        Ok(Cidr::new(addr, prefix))
    }
}

fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match canonical(addr) {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            IpAddr::V4(Ipv4Addr::from(bits & mask))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix))
            };
            IpAddr::V6(Ipv6Addr::from(bits & mask))
        }
    }
}

/// The unit one attacker is assumed to control cheaply: one IPv4 address, or one IPv6 /64 (what a single
/// subscriber is given). Per-client limits are kept per key.
pub fn client_key(addr: IpAddr) -> Cidr {
    let addr = canonical(addr);
    Cidr::new(addr, if addr.is_ipv4() { 32 } else { 64 })
}

/// The wider block an attacker with many keys still tends to sit in: an IPv4 /24 or an IPv6 /48.
pub fn prefix_key(addr: IpAddr) -> Cidr {
    let addr = canonical(addr);
    Cidr::new(addr, if addr.is_ipv4() { 24 } else { 48 })
}

/// The client's address: the TCP peer, unless that peer is a trusted proxy, in which case the right-most address
/// in `X-Forwarded-For` that is not itself a trusted proxy (the one the last trusted hop saw). A header from an
/// untrusted peer is ignored, so a client cannot pick its own key.
pub fn client_addr(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |addr: IpAddr| trusted.iter().any(|cidr| cidr.contains(addr));
    if !is_trusted(peer) {
        return canonical(peer);
    }
    let Some(header) = forwarded_for else {
        return canonical(peer);
    };
    for hop in header.rsplit(',') {
        let hop = hop.trim();
        // Addresses may carry a port ("1.2.3.4:5678", "[::1]:5678").
        let parsed = hop
            .parse::<IpAddr>()
            .ok()
            .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()));
        match parsed {
            Some(addr) if is_trusted(addr) => continue,
            Some(addr) => return canonical(addr),
            None => break, // garbage from beyond the trusted hops: fall back to the proxy itself
        }
    }
    canonical(peer)
}

/// Open connections per client key, capped. Shared by the accept loop; a [`ConnectionPermit`] gives the slot back
/// when dropped.
#[derive(Debug, Clone)]
pub struct ConnectionLimiter {
    per_key: usize,
    open: Arc<Mutex<HashMap<Cidr, usize>>>,
}

/// One open connection counted against its client key.
#[derive(Debug)]
pub struct ConnectionPermit {
    key: Cidr,
    open: Arc<Mutex<HashMap<Cidr, usize>>>,
}

impl ConnectionLimiter {
    /// At most `per_key` open connections per client key.
    pub fn new(per_key: usize) -> Self {
        ConnectionLimiter {
            per_key,
            open: Arc::default(),
        }
    }

    /// A permit for one more connection from `addr`, or `None` when its key is at the cap.
    pub fn try_acquire(&self, addr: IpAddr) -> Option<ConnectionPermit> {
        let key = client_key(addr);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(key).or_insert(0);
        if *count >= self.per_key {
            return None;
        }
        *count += 1;
        Some(ConnectionPermit {
            key,
            open: self.open.clone(),
        })
    }

    /// Connections open from `addr`'s key.
    pub fn open(&self, addr: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&client_key(addr)).copied().unwrap_or(0)
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// Limits on failed joins (code guesses).
#[derive(Debug, Clone)]
pub struct JoinLimits {
    /// Failed joins per client key (an IPv4 address or an IPv6 /64) per window. Default 10.
    pub per_key: usize,
    /// Failed joins per prefix (an IPv4 /24 or IPv6 /48) per window. Default 100.
    pub per_prefix: usize,
    /// Failed joins from everyone per window above which the server counts as under attack: then each prefix
    /// gets only `per_key` failures per window. A valid code is never refused because of it. Default 1,000.
    pub global: usize,
    /// The sliding window. Default 60 s.
    pub window: Duration,
    /// Most keys and prefixes remembered; beyond it the oldest are forgotten first. Default 100,000.
    pub max_tracked: usize,
}

impl Default for JoinLimits {
    fn default() -> Self {
        JoinLimits {
            per_key: 10,
            per_prefix: 100,
            global: 1_000,
            window: Duration::from_secs(60),
            max_tracked: 100_000,
        }
    }
}

/// Decides whether a join attempt from an address may be checked, and records failures. Valid codes are never
/// refused by what *others* did: only the attempt's own key and prefix can run out of budget.
#[derive(Debug)]
pub struct JoinGuard {
    limits: JoinLimits,
    keys: HashMap<Cidr, FailureWindow>,
    /// Last failure time per tracked key/prefix, oldest first: pruning walks it from the front, so each call
    /// does work proportional to what expired, never to what is tracked.
    order: VecDeque<(Instant, Cidr)>,
    global: FailureWindow,
}

impl JoinGuard {
    /// A guard with these limits.
    pub fn new(limits: JoinLimits) -> Self {
        JoinGuard {
            global: FailureWindow::new(limits.global, limits.window),
            limits,
            keys: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn prune(&mut self, now: Instant) {
        while let Some(&(at, key)) = self.order.front() {
            let expired = now.saturating_duration_since(at) >= self.limits.window;
            let crowded = self.keys.len() > self.limits.max_tracked || self.order.len() > self.limits.max_tracked * 2;
            if !expired && !crowded {
                break;
            }
            self.order.pop_front();
            if let Some(window) = self.keys.get_mut(&key) {
                if expired && window.is_idle(now) || self.keys.len() > self.limits.max_tracked {
                    self.keys.remove(&key);
                }
            }
        }
    }

    fn allows_key(&mut self, key: Cidr, limit: usize, now: Instant) -> bool {
        match self.keys.get_mut(&key) {
            Some(window) => window.failures_in_window(now) < limit,
            None => true,
        }
    }

    /// Whether a join from `addr` may be checked now.
    pub fn allows(&mut self, addr: IpAddr, now: Instant) -> bool {
        self.prune(now);
        let under_attack = !self.global.allows(now);
        let prefix_limit = if under_attack {
            self.limits.per_key
        } else {
            self.limits.per_prefix
        };
        self.allows_key(client_key(addr), self.limits.per_key, now)
            && self.allows_key(prefix_key(addr), prefix_limit, now)
    }

    /// Records a failed join from `addr`.
    pub fn record_failure(&mut self, addr: IpAddr, now: Instant) {
        self.global.record_failure(now);
        let prefix_cap = self.limits.per_prefix.max(self.limits.per_key);
        for (key, cap) in [(client_key(addr), self.limits.per_key), (prefix_key(addr), prefix_cap)] {
            self.keys
                .entry(key)
                .or_insert_with(|| FailureWindow::new(cap, self.limits.window))
                .record_failure(now);
            self.order.push_back((now, key));
        }
        self.prune(now);
    }

    /// Keys and prefixes remembered (bounded by `max_tracked`).
    pub fn tracked(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_parses_and_matches() {
        let v4: Cidr = "10.1.2.0/24".parse().unwrap();
        assert!(v4.contains(ip("10.1.2.200")) && !v4.contains(ip("10.1.3.1")));
        assert!(v4.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped IPv6 is IPv4");
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")) && !v6.contains(ip("2001:db9::1")));
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        for bad in ["", "10.0.0.0/33", "::/129", "host/8", "10.0.0.0/x"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn an_ipv6_slash_64_is_one_client() {
        assert_eq!(
            client_key(ip("2001:db8:1:2::1")),
            client_key(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(client_key(ip("2001:db8:1:2::1")), client_key(ip("2001:db8:1:3::1")));
        assert_ne!(client_key(ip("10.0.0.1")), client_key(ip("10.0.0.2")));
        assert_eq!(prefix_key(ip("10.0.0.1")), prefix_key(ip("10.0.0.250")));
    }

    #[test]
    fn forwarded_for_is_read_only_from_trusted_proxies() {
        let trusted = ["127.0.0.1".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
        // An untrusted peer cannot choose its key.
        assert_eq!(
            client_addr(ip("203.0.113.9"), Some("198.51.100.1"), &trusted),
            ip("203.0.113.9")
        );
        // Behind the proxy: the right-most untrusted hop.
        assert_eq!(
            client_addr(ip("127.0.0.1"), Some("198.51.100.1, 203.0.113.7, 10.0.0.3"), &trusted),
            ip("203.0.113.7")
        );
        assert_eq!(
            client_addr(ip("127.0.0.1"), Some("[2001:db8::1]:443"), &trusted),
            ip("2001:db8::1")
        );
        assert_eq!(client_addr(ip("127.0.0.1"), None, &trusted), ip("127.0.0.1"));
        assert_eq!(client_addr(ip("127.0.0.1"), Some("garbage"), &trusted), ip("127.0.0.1"));
    }

    #[test]
    fn connections_are_capped_per_key_and_given_back() {
        let limiter = ConnectionLimiter::new(2);
        let a = limiter.try_acquire(ip("2001:db8::1")).unwrap();
        let _b = limiter.try_acquire(ip("2001:db8::2")).unwrap();
        assert!(limiter.try_acquire(ip("2001:db8::3")).is_none(), "same /64");
        assert!(limiter.try_acquire(ip("2001:db8:0:1::1")).is_some(), "another /64");
        drop(a);
        let _c = limiter.try_acquire(ip("2001:db8::3")).expect("a slot was given back");
        assert_eq!(limiter.open(ip("2001:db8::9")), 2);
    }

    #[test]
    fn guessing_from_many_addresses_never_locks_out_another_client() {
        let t0 = Instant::now();
        let mut guard = JoinGuard::new(JoinLimits::default());
        // 120 addresses in 12 prefixes, 12 failures each: far past the global threshold.
        for i in 0..1_440u32 {
            let addr = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (i % 120) * 256 + i % 7));
            if guard.allows(addr, t0) {
                guard.record_failure(addr, t0);
            }
        }
        // A technician elsewhere is checked at once.
        assert!(guard.allows(ip("192.0.2.10"), t0));
        // The guessers' own keys are spent.
        assert!(!guard.allows(IpAddr::V4(Ipv4Addr::from(0x0a00_0000)), t0));
    }

    #[test]
    fn under_attack_a_prefix_gets_only_one_key_budget() {
        let t0 = Instant::now();
        let limits = JoinLimits {
            global: 20,
            ..JoinLimits::default()
        };
        let mut guard = JoinGuard::new(limits);
        for i in 0..20u32 {
            guard.record_failure(IpAddr::V4(Ipv4Addr::from(0xc633_6400 + i * 256)), t0);
            // 20 prefixes
        }
        // A fresh address in a prefix that already failed 10 times (10 keys × 1) is slowed now.
        for i in 0..10u32 {
            guard.record_failure(IpAddr::V4(Ipv4Addr::new(203, 0, 113, i as u8)), t0);
        }
        assert!(!guard.allows(ip("203.0.113.200"), t0));
        // Once the window passes, all is forgotten.
        assert!(guard.allows(ip("203.0.113.200"), t0 + Duration::from_secs(61)));
        assert_eq!(guard.tracked(), 0);
    }

    #[test]
    fn remembered_keys_are_bounded() {
        let t0 = Instant::now();
        let mut guard = JoinGuard::new(JoinLimits {
            max_tracked: 100,
            ..JoinLimits::default()
        });
        for i in 0..10_000u32 {
            guard.record_failure(IpAddr::V4(Ipv4Addr::from(i * 977)), t0);
        }
        assert!(guard.tracked() <= 100, "{}", guard.tracked());
    }
}
