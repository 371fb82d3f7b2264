//! Time-limited TURN credentials (the "TURN REST API" of draft-uberti-behave-turn-rest, which coturn implements
//! with `use-auth-secret`): the server and the TURN server share a secret; each credential is a user name
//! `EXPIRY:PEER` (expiry in Unix seconds) and the password `base64(HMAC-SHA1(secret, user name))`. The TURN server
//! checks the HMAC and the expiry without asking anyone, so a credential is worth something only to the peer it
//! was issued to, and only until it expires. Plain logic: the caller passes the time.

use base64::Engine as _;
use peerdesk::signaling::{IceServer, PeerId};
use ring::hmac;
use std::time::Duration;

/// A TURN server that takes REST credentials.
#[derive(Clone)]
pub struct TurnRest {
    /// `turn:` / `turns:` URLs of the TURN server.
    pub urls: Vec<String>,
    /// The shared secret (coturn's `static-auth-secret`).
    key: hmac::Key,
    /// How long a credential stays valid. An allocation cannot be refreshed past it, so it bounds a relayed
    /// session's length.
    pub ttl: Duration,
}

impl std::fmt::Debug for TurnRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("TurnRest")
            .field("urls", &self.urls)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl TurnRest {
    /// A TURN server at `urls` sharing `secret`, credentials valid for `ttl`.
    pub fn new(urls: Vec<String>, secret: &[u8], ttl: Duration) -> TurnRest {
        TurnRest {
            urls,
            key: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret),
            ttl,
        }
    }

    /// The credential for `peer`, issued at `unix_now` (seconds since 1970).
    pub fn credential_for(&self, peer: &PeerId, unix_now: u64) -> IceServer {
        let username = format!("{}:{peer}", unix_now + self.ttl.as_secs());
        let tag = hmac::sign(&self.key, username.as_bytes());
        IceServer {
            urls: self.urls.clone(),
            username,
            credential: base64::engine::general_purpose::STANDARD.encode(tag.as_ref()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checked against Python's `base64.b64encode(hmac.new(b"s3cret", b"1700003600:p7", "sha1").digest())`.
    #[test]
    fn credentials_follow_the_turn_rest_scheme() {
        let turn = TurnRest::new(vec!["turn:127.0.0.1:3478".into()], b"s3cret", Duration::from_secs(3600));
        let server = turn.credential_for(&"p7".to_string(), 1_700_000_000);
        assert_eq!(server.username, "1700003600:p7");
        assert_eq!(server.credential, "EU+LCX4d2lR0UHDA6tMsdwKwRqI=");
        assert_eq!(server.urls, vec!["turn:127.0.0.1:3478".to_string()]);
        let other = turn.credential_for(&"p8".to_string(), 1_700_000_000);
        assert_ne!(other.credential, server.credential, "bound to the peer");
        assert!(!format!("{turn:?}").contains("s3cret"));
    }
}
