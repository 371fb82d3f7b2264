//! Device identity: an Ed25519 key a host keeps, and the nine-digit device ID derived from its public key.

use super::UnattendedError;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use std::path::Path;

/// Digits in a device ID.
pub const DEVICE_ID_DIGITS: usize = 9;
/// What a host signs to prove to the signaling server that it holds its device key: this prefix, then the
/// server's one-time nonce.
pub const REGISTRATION_CONTEXT: &[u8] = b"peerdesk device registration v1";

/// A host's long-term identity: an Ed25519 key pair, created once and kept in a file only its owner may read.
///
/// ```
/// use peerdesk::unattended::DeviceIdentity;
///
/// let dir = std::env::temp_dir().join(format!("peerdesk-doc-{}", std::process::id()));
/// let path = dir.join("device.key");
/// let first = DeviceIdentity::load_or_create(&path)?;
/// let again = DeviceIdentity::load_or_create(&path)?;
/// assert_eq!(first.device_id(), again.device_id());
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), peerdesk::unattended::UnattendedError>(())
/// ```
pub struct DeviceIdentity {
    key: Ed25519KeyPair,
}

impl std::fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private key never reaches a log.
        f.debug_struct("DeviceIdentity")
            .field("device_id", &self.device_id())
            .finish_non_exhaustive()
    }
}

impl DeviceIdentity {
    /// A new identity from the operating system's random source, kept in memory only.
    ///
    /// # Errors
    /// [`UnattendedError::Crypto`] when the random source fails.
    pub fn generate() -> Result<Self, UnattendedError> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| UnattendedError::Crypto("cannot generate an Ed25519 key"))?;
        Self::from_pkcs8(pkcs8.as_ref())
    }

    /// The identity in a PKCS#8 (DER) document, such as a file written by
    /// [`load_or_create`](Self::load_or_create) holds.
    ///
    /// # Errors
    /// [`UnattendedError::InvalidKey`] when the bytes are not an Ed25519 PKCS#8 key.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, UnattendedError> {
        let key = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(|_| UnattendedError::InvalidKey)?;
        Ok(DeviceIdentity { key })
    }

    /// Reads the identity kept at `path`, or creates one there on first use. A new file is created with owner-only
    /// permissions (0600 on Unix) and never overwritten; an existing one readable by others is refused.
    ///
    /// # Errors
    /// [`UnattendedError::Io`] when the file cannot be read or created, [`UnattendedError::InsecureFile`] when
    /// others may read it, [`UnattendedError::InvalidKey`] when it holds no Ed25519 key.
    pub fn load_or_create(path: impl AsRef<Path>) -> Result<Self, UnattendedError> {
        let path = path.as_ref();
        match super::read_private_file(path) {
            Ok(bytes) => Self::from_pkcs8(&bytes),
            Err(UnattendedError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                    .map_err(|_| UnattendedError::Crypto("cannot generate an Ed25519 key"))?;
                super::write_private_file(path, pkcs8.as_ref(), false)?;
                tracing::info!(path = %path.display(), "created a device key");
                Self::from_pkcs8(pkcs8.as_ref())
            }
            Err(e) => Err(e),
        }
    }

    /// The public key (32 bytes).
    pub fn public_key(&self) -> [u8; 32] {
        let mut key = [0u8; 32];
        key.copy_from_slice(self.key.public_key().as_ref());
        key
    }

    /// The device ID technicians find this machine by.
    pub fn device_id(&self) -> DeviceId {
        DeviceId::from_public_key(&self.public_key())
    }

    /// Signs `message` (64-byte Ed25519 signature).
    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        let mut signature = [0u8; 64];
        signature.copy_from_slice(self.key.sign(message).as_ref());
        signature
    }

    /// The signature that proves to a signaling server, which sent `nonce`, that this host holds the key.
    pub fn registration_proof(&self, nonce: &[u8]) -> [u8; 64] {
        let mut message = REGISTRATION_CONTEXT.to_vec();
        message.extend_from_slice(nonce);
        self.sign(&message)
    }
}

/// Whether `signature` is `public_key`'s Ed25519 signature of `message`.
pub fn verify_signature(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    public_key.len() == 32
        && UnparsedPublicKey::new(&ED25519, public_key)
            .verify(message, signature)
            .is_ok()
}

/// Whether `signature` proves, for a server that sent `nonce`, that the sender holds `public_key`'s private key.
pub fn verify_registration(public_key: &[u8], nonce: &[u8], signature: &[u8]) -> bool {
    let mut message = REGISTRATION_CONTEXT.to_vec();
    message.extend_from_slice(nonce);
    verify_signature(public_key, &message, signature)
}

/// A device ID: nine decimal digits derived from the device's public key (SHA-256 of `peerdesk device id v1`
/// and the key, the first 8 bytes big-endian, modulo 10⁹). Shown as `"123 456 789"`, accepted with or without
/// spaces.
///
/// Nine digits are easy to read out but do not resist a determined attacker grinding keys (about 10⁹ key
/// generations find a collision): the server lets only the key that registered an ID first use it while that
/// host is connected, and technicians check the device's key signature in every unattended session; an app that
/// remembers [`DeviceIdentity::public_key`] from the first session can pin it.
///
/// ```
/// use peerdesk::unattended::DeviceId;
///
/// let id: DeviceId = "123 456 789".parse()?;
/// assert_eq!(id.as_str(), "123456789");
/// assert_eq!(id.to_string(), "123 456 789");
/// assert!("12345".parse::<DeviceId>().is_err());
/// # Ok::<(), peerdesk::unattended::UnattendedError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(String);

impl DeviceId {
    /// The ID of a public key.
    pub fn from_public_key(public_key: &[u8]) -> Self {
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            &[b"peerdesk device id v1".as_slice(), public_key].concat(),
        );
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest.as_ref()[..8]);
        let number = u64::from_be_bytes(first) % 1_000_000_000;
        DeviceId(format!("{number:0width$}", width = DEVICE_ID_DIGITS))
    }

    /// The digits only, as the signaling protocol carries them.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DeviceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", &self.0[0..3], &self.0[3..6], &self.0[6..9])
    }
}

impl std::str::FromStr for DeviceId {
    type Err = UnattendedError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        if digits.len() == DEVICE_ID_DIGITS && digits.bytes().all(|b| b.is_ascii_digit()) {
            Ok(DeviceId(digits))
        } else {
            Err(UnattendedError::InvalidDeviceId)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_follows_the_key_and_a_proof_verifies_only_for_its_nonce() {
        let a = DeviceIdentity::generate().unwrap();
        let b = DeviceIdentity::generate().unwrap();
        assert_ne!(a.device_id(), b.device_id());
        assert_eq!(a.device_id(), DeviceId::from_public_key(&a.public_key()));
        let proof = a.registration_proof(b"nonce-1");
        assert!(verify_registration(&a.public_key(), b"nonce-1", &proof));
        assert!(!verify_registration(&a.public_key(), b"nonce-2", &proof));
        assert!(!verify_registration(&b.public_key(), b"nonce-1", &proof));
        assert!(!verify_registration(&[0u8; 5], b"nonce-1", &proof));
    }

    #[test]
    fn a_key_file_is_private_and_reloads_to_the_same_identity() {
        let dir = std::env::temp_dir().join(format!("peerdesk-device-{}", std::process::id()));
        let path = dir.join("key");
        let first = DeviceIdentity::load_or_create(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(
                DeviceIdentity::load_or_create(&path),
                Err(UnattendedError::InsecureFile { .. })
            ));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert_eq!(
            DeviceIdentity::load_or_create(&path).unwrap().device_id(),
            first.device_id()
        );
        std::fs::write(&path, b"not a key").unwrap();
        assert!(matches!(
            DeviceIdentity::load_or_create(&path),
            Err(UnattendedError::InvalidKey)
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
