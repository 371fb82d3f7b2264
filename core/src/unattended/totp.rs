//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP): HMAC-SHA1, 30-second steps, six digits — what
//! every authenticator app speaks.

use super::UnattendedError;
use ring::hmac;

/// Seconds per TOTP step.
pub const TOTP_STEP_SECS: u64 = 30;
/// Digits in a TOTP code.
pub const TOTP_DIGITS: u32 = 6;
/// Steps accepted either side of the host's clock (one: a code is good for 60–90 s, covering clock drift and
/// the time it takes to type).
pub const TOTP_SKEW_STEPS: u64 = 1;

/// A TOTP shared secret (20 random bytes by default), written in base32 for authenticator apps.
///
/// ```
/// use peerdesk::unattended::TotpSecret;
///
/// // RFC 6238's test secret and vector (time 59 s; the RFC's 8-digit 94287082 ends in these six digits).
/// let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
/// assert_eq!(secret.code_at(59), "287082");
/// assert_eq!(secret.to_base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
/// assert_eq!(TotpSecret::from_base32("gezd gnbv gy3t qojq gezd gnbv gy3t qojq")?, secret);
/// # Ok::<(), peerdesk::unattended::UnattendedError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(…)")
    }
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

impl TotpSecret {
    /// A new secret of 20 bytes (160 bits, RFC 4226's recommendation) from the operating system's random source.
    ///
    /// # Errors
    /// [`UnattendedError::Crypto`] when the random source fails.
    pub fn generate() -> Result<Self, UnattendedError> {
        let mut bytes = vec![0u8; 20];
        getrandom::fill(&mut bytes).map_err(|_| UnattendedError::Crypto("the random source failed"))?;
        Ok(TotpSecret(bytes))
    }

    /// A secret from raw bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        TotpSecret(bytes)
    }

    /// A secret from base32 (RFC 4648, case and spaces ignored, padding optional).
    ///
    /// # Errors
    /// [`UnattendedError::InvalidTotpSecret`] for other characters or fewer than 10 bytes (80 bits).
    pub fn from_base32(text: &str) -> Result<Self, UnattendedError> {
        let mut bits = 0u32;
        let mut count = 0u32;
        let mut bytes = Vec::new();
        for c in text.chars().filter(|c| !c.is_whitespace() && *c != '=') {
            let c = c.to_ascii_uppercase() as u8;
            let value = BASE32
                .iter()
                .position(|&b| b == c)
                .ok_or(UnattendedError::InvalidTotpSecret)? as u32;
            bits = (bits << 5) | value;
            count += 5;
            if count >= 8 {
                count -= 8;
                bytes.push((bits >> count) as u8);
                bits &= (1 << count) - 1;
            }
        }
        if bytes.len() < 10 {
            return Err(UnattendedError::InvalidTotpSecret);
        }
        Ok(TotpSecret(bytes))
    }

    /// The secret in base32 without padding, as authenticator apps take it.
    pub fn to_base32(&self) -> String {
        let mut out = String::new();
        let mut bits = 0u32;
        let mut count = 0u32;
        for &byte in &self.0 {
            bits = (bits << 8) | u32::from(byte);
            count += 8;
            while count >= 5 {
                count -= 5;
                out.push(BASE32[((bits >> count) & 31) as usize] as char);
            }
            bits &= (1 << count) - 1;
        }
        if count > 0 {
            out.push(BASE32[((bits << (5 - count)) & 31) as usize] as char);
        }
        out
    }

    /// The `otpauth://` URI an authenticator app imports (usually as a QR code). `issuer` and `account` are
    /// percent-encoded.
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> String {
        let enc = |s: &str| -> String {
            s.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect()
        };
        format!(
            "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={TOTP_DIGITS}&period={TOTP_STEP_SECS}",
            enc(issuer),
            enc(account),
            self.to_base32(),
            enc(issuer)
        )
    }

    /// The code for the step that contains `unix_secs`.
    pub fn code_at(&self, unix_secs: u64) -> String {
        self.code_for_step(unix_secs / TOTP_STEP_SECS)
    }

    fn code_for_step(&self, step: u64) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &self.0);
        let tag = hmac::sign(&key, &step.to_be_bytes());
        let digest = tag.as_ref();
        let offset = usize::from(digest[digest.len() - 1] & 0x0f);
        let binary = u32::from_be_bytes([
            digest[offset],
            digest[offset + 1],
            digest[offset + 2],
            digest[offset + 3],
        ]) & 0x7fff_ffff;
        format!(
            "{:0width$}",
            binary % 10u32.pow(TOTP_DIGITS),
            width = TOTP_DIGITS as usize
        )
    }

    /// The codes accepted at `unix_secs`: this step's and [`TOTP_SKEW_STEPS`] either side, current first.
    pub fn accepted_codes(&self, unix_secs: u64) -> Vec<String> {
        let step = unix_secs / TOTP_STEP_SECS;
        let mut codes = vec![self.code_for_step(step)];
        for d in 1..=TOTP_SKEW_STEPS {
            codes.push(self.code_for_step(step.saturating_sub(d)));
            codes.push(self.code_for_step(step + d));
        }
        codes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_sha1_vectors_in_six_digits() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        // RFC 6238 appendix B (SHA-1), last six of the eight digits.
        for (time, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
            (20_000_000_000, "353130"),
        ] {
            assert_eq!(secret.code_at(time), code, "time {time}");
        }
        let accepted = secret.accepted_codes(1_111_111_111);
        assert_eq!(accepted.len(), 3);
        assert_eq!(accepted[0], "050471");
    }

    #[test]
    fn base32_round_trips_and_rejects_junk() {
        let secret = TotpSecret::generate().unwrap();
        assert_eq!(TotpSecret::from_base32(&secret.to_base32()).unwrap(), secret);
        assert!(TotpSecret::from_base32("not base32!").is_err());
        assert!(TotpSecret::from_base32("AAAA").is_err());
        let uri = secret.otpauth_uri("peerdesk", "alex@desk 1");
        assert!(
            uri.starts_with("otpauth://totp/peerdesk:alex%40desk%201?secret="),
            "{uri}"
        );
    }
}
