//! Verified sessions: a short code both people read out, derived from the two DTLS certificate fingerprints.
//!
//! WebRTC encrypts media and data end to end with DTLS, but each side learns the other's certificate fingerprint
//! from the signaling server. A server (or anyone able to rewrite signaling) can hand each side a fingerprint of
//! its own and sit in the middle of an "end-to-end encrypted" session. The verification code closes that gap:
//! both sides derive six digits from the fingerprints *their* DTLS handshake is bound to. With nobody in the
//! middle, both see the same code; with a relay in the middle, each side's handshake ends at the relay, the
//! fingerprint pairs differ and so do the codes (a 1 in 10⁶ chance of a match for an attacker who cannot choose
//! certificates freely — and each guess costs a whole new session the two people watch).
//!
//! The derivation is HKDF-SHA256 (RFC 5869):
//!
//! - salt: the ASCII bytes `peerdesk verification v1`;
//! - input key material: the host's SHA-256 fingerprint (32 bytes), then the viewer's (32 bytes), then the
//!   session code's UTF-8 bytes;
//! - info: the ASCII bytes `six digits`; 8 bytes of output, read as a big-endian integer, modulo 10⁶, written as
//!   two groups of three digits (`"042 917"`).
//!
//! The web viewer computes the same with WebCrypto from the certificate fingerprints Chromium reports.
//!
//! ```
//! use peerdesk::session::verification_code;
//!
//! let host = [0x11; 32];
//! let viewer = [0x22; 32];
//! let code = verification_code(&host, &viewer, "1234567890");
//! assert_eq!(code.len(), 7);
//! assert_ne!(code, verification_code(&[0x33; 32], &viewer, "1234567890"));
//! ```

use ring::hkdf;

/// The HKDF salt, fixed per version of the derivation.
const SALT: &[u8] = b"peerdesk verification v1";
/// The HKDF info for the six-digit code.
const INFO: &[u8] = b"six digits";

/// A certificate fingerprint as WebRTC's SDP carries it: SHA-256 of the DTLS certificate.
pub type Fingerprint = [u8; 32];

/// Why a session description's fingerprint could not be used for verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerificationError {
    /// The description names no `a=fingerprint`.
    #[error("the session description has no certificate fingerprint")]
    Missing,
    /// It names more than one certificate: which one the handshake will accept is then not one fixed value, so a
    /// code derived from one of them would prove nothing.
    #[error("the session description names {0} different certificate fingerprints; exactly one is accepted")]
    Ambiguous(usize),
    /// A hash other than SHA-256 (the only one peerdesk's DTLS accepts).
    #[error("unsupported fingerprint hash `{0}`; only sha-256 is accepted")]
    UnsupportedHash(String),
    /// Not 32 colon-separated hexadecimal bytes.
    #[error("malformed certificate fingerprint")]
    Malformed,
}

/// The verification code of a session: six digits in two groups (`"042 917"`), equal on both sides exactly when
/// their DTLS handshakes ended at each other. `session` is the session code the viewer joined with.
pub fn verification_code(host: &Fingerprint, viewer: &Fingerprint, session: &str) -> String {
    let mut ikm = Vec::with_capacity(64 + session.len());
    ikm.extend_from_slice(host);
    ikm.extend_from_slice(viewer);
    ikm.extend_from_slice(session.as_bytes());
    let mut okm = [0u8; 8];
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(&ikm);
    prk.expand(&[INFO], Eight)
        .and_then(|expanded| expanded.fill(&mut okm))
        .expect("8 bytes is far below HKDF-SHA256's output limit");
    let number = u64::from_be_bytes(okm) % 1_000_000;
    format!("{:03} {:03}", number / 1000, number % 1000)
}

/// The output length HKDF is asked for.
struct Eight;

impl hkdf::KeyType for Eight {
    fn len(&self) -> usize {
        8
    }
}

/// The one SHA-256 certificate fingerprint a session description binds its DTLS handshake to.
///
/// Every `a=fingerprint:` line counts, at session and media level; repeats of the same value are one.
///
/// # Errors
///
/// [`VerificationError`] when there is none, more than one distinct value, another hash, or a malformed value.
pub fn sdp_fingerprint(sdp: &str) -> Result<Fingerprint, VerificationError> {
    let mut found: Option<Fingerprint> = None;
    let mut distinct = 0usize;
    for line in sdp.lines() {
        let Some(rest) = line.trim_end().strip_prefix("a=fingerprint:") else {
            continue;
        };
        let (hash, value) = rest.split_once(' ').ok_or(VerificationError::Malformed)?;
        if !hash.eq_ignore_ascii_case("sha-256") {
            return Err(VerificationError::UnsupportedHash(
                crate::text::printable(hash).into_owned(),
            ));
        }
        let parsed = parse_fingerprint(value.trim())?;
        if found != Some(parsed) {
            distinct += 1;
            if found.is_none() {
                found = Some(parsed);
            }
        }
    }
    match (found, distinct) {
        (None, _) => Err(VerificationError::Missing),
        (Some(fingerprint), 1) => Ok(fingerprint),
        (Some(_), n) => Err(VerificationError::Ambiguous(n)),
    }
}

/// Parses `AB:CD:…` (32 bytes, either case).
///
/// # Errors
///
/// [`VerificationError::Malformed`] for anything else.
pub fn parse_fingerprint(text: &str) -> Result<Fingerprint, VerificationError> {
    let mut out = [0u8; 32];
    let mut parts = text.split(':');
    for byte in &mut out {
        let part = parts.next().ok_or(VerificationError::Malformed)?;
        if part.len() != 2 {
            return Err(VerificationError::Malformed);
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| VerificationError::Malformed)?;
    }
    if parts.next().is_some() {
        return Err(VerificationError::Malformed);
    }
    Ok(out)
}

/// Whether a viewer's granted permissions are in force yet: with verification required, a viewer may watch at
/// once but gets control and the clipboard only after the host's user confirmed the code.
pub(crate) fn permissions_in_force(
    granted: crate::control::Permissions,
    verification_required: bool,
    confirmed: bool,
) -> crate::control::Permissions {
    if verification_required && !confirmed {
        crate::control::Permissions::VIEW_ONLY
    } else {
        granted
    }
}

/// A session description naming one SHA-256 certificate fingerprint of 32 `byte`s, for tests.
#[cfg(test)]
pub(crate) fn sdp_with_fingerprint(byte: u8) -> String {
    let value: Vec<String> = (0..32).map(|_| format!("{byte:02X}")).collect();
    format!("v=0\r\na=fingerprint:sha-256 {}\r\n", value.join(":"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::Permissions;

    const A: &str = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";
    const B: &str = "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";

    #[test]
    fn the_code_is_six_digits_and_depends_on_every_input() {
        let a = parse_fingerprint(A).unwrap();
        let b = parse_fingerprint(B).unwrap();
        let code = verification_code(&a, &b, "1234567890");
        assert_eq!(code.len(), 7);
        assert!(code[..3].bytes().all(|c| c.is_ascii_digit()) && &code[3..4] == " ");
        assert_eq!(code, verification_code(&a, &b, "1234567890"), "deterministic");
        assert_ne!(code, verification_code(&b, &a, "1234567890"), "roles matter");
        assert_ne!(code, verification_code(&a, &b, "1234567891"), "the session matters");
    }

    /// The same vector is checked by the web viewer's test (tests/web), so the two implementations agree.
    #[test]
    fn known_vector() {
        let a = parse_fingerprint(A).unwrap();
        let b = parse_fingerprint(B).unwrap();
        assert_eq!(verification_code(&a, &b, "1234567890"), KNOWN_VECTOR);
    }
    /// Checked independently with Python's `hmac` (RFC 5869 by hand) when this was written.
    const KNOWN_VECTOR: &str = "825 223";

    #[test]
    fn fingerprints_are_read_from_every_level_and_must_agree() {
        let sdp = format!(
            "v=0\r\na=fingerprint:sha-256 {A}\r\nm=video 9\r\na=fingerprint:sha-256 {}\r\n",
            A.to_lowercase()
        );
        assert_eq!(sdp_fingerprint(&sdp).unwrap(), parse_fingerprint(A).unwrap());
        let two = format!("v=0\r\na=fingerprint:sha-256 {A}\r\nm=video 9\r\na=fingerprint:sha-256 {B}\r\n");
        assert_eq!(sdp_fingerprint(&two), Err(VerificationError::Ambiguous(2)));
        assert_eq!(sdp_fingerprint("v=0\r\n"), Err(VerificationError::Missing));
        let sha1 = "a=fingerprint:sha-1 AB:CD\r\n";
        assert!(matches!(sdp_fingerprint(sha1), Err(VerificationError::UnsupportedHash(h)) if h == "sha-1"));
        for bad in ["AB", "AB:CD:", &A[..A.len() - 1], &format!("{A}:00"), "zz:", ""] {
            assert_eq!(parse_fingerprint(bad), Err(VerificationError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn control_waits_for_confirmation_only_when_required() {
        assert_eq!(permissions_in_force(Permissions::FULL, false, false), Permissions::FULL);
        assert_eq!(
            permissions_in_force(Permissions::FULL, true, false),
            Permissions::VIEW_ONLY
        );
        assert_eq!(permissions_in_force(Permissions::FULL, true, true), Permissions::FULL);
    }
}
