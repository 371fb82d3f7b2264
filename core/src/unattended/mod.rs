//! Unattended access: a device identity, technician accesses with secrets that never cross the network, an
//! optional TOTP second factor, and the backoff that makes guessing slow.
//!
//! A host that offers unattended access keeps an Ed25519 [`DeviceIdentity`]; its [`DeviceId`] (nine digits) is
//! registered with the signaling server (which checks a signature over a one-time nonce) and is how a technician
//! finds the machine. The host app sets an [`AccessPolicy`]: one [`TechnicianAccess`] per technician, with the
//! secret stored as an argon2id hash, an optional [`TotpSecret`], the permissions granted and whether the customer
//! is still asked.
//!
//! A technician joins by device ID, access name and secret ([`crate::session::ViewerConfig::for_device`]). Both
//! sides then run SPAKE2 on the argon2id hash over the signaling relay, bound to both DTLS certificate
//! fingerprints (see the `handshake` notes below): neither the signaling server nor a relay learns the secret or
//! its hash, and a server that puts itself in the middle is detected by both sides.
//!
//! Failed attempts back off exponentially (1 s, 2 s, 4 s, … up to an hour) per device on the host — whoever
//! tries — and per device and client address on the server; the host app gets
//! [`crate::session::HostEvent::AccessFailures`] after [`UnattendedConfig::alert_after`] failures in a row.
//!
//! ```
//! use peerdesk::control::Permissions;
//! use peerdesk::session::HostConfig;
//! use peerdesk::unattended::{AccessPolicy, DeviceIdentity, TechnicianAccess, UnattendedConfig};
//!
//! let identity = DeviceIdentity::generate()?;
//! println!("device ID: {}", identity.device_id());
//! let policy = AccessPolicy::new()
//!     .with(TechnicianAccess::new("alex", "correct horse battery")?.permissions(Permissions::CONTROL));
//! let config = HostConfig::new("wss://support.example/ws").unattended(UnattendedConfig::new(identity, policy));
//! # Ok::<(), peerdesk::unattended::UnattendedError>(())
//! ```

mod access;
mod device;
pub(crate) mod handshake;
mod totp;

pub use access::{
    AccessPolicy, TechnicianAccess, ARGON2_LANES, ARGON2_MAX_MEMORY_KIB, ARGON2_MAX_PASSES, ARGON2_MEMORY_KIB,
    ARGON2_PASSES, MAX_ACCESS_NAME_CHARS, MIN_SECRET_CHARS,
};
pub use device::{
    verify_registration, verify_signature, DeviceId, DeviceIdentity, DEVICE_ID_DIGITS, REGISTRATION_CONTEXT,
};
pub use totp::{TotpSecret, TOTP_DIGITS, TOTP_SKEW_STEPS, TOTP_STEP_SECS};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The wait after the first failed unattended attempt; it doubles with each failure in a row.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between failed unattended attempts on the host.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// Errors of unattended access.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnattendedError {
    /// A key or policy file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file's path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A key or policy file others may read (its mode has group or other bits).
    #[error("{path} may be read by other users; make it owner-only (chmod 600)")]
    InsecureFile {
        /// The file's path.
        path: PathBuf,
    },
    /// Not an Ed25519 PKCS#8 key.
    #[error("not an Ed25519 device key")]
    InvalidKey,
    /// Not nine digits.
    #[error("a device ID is nine digits")]
    InvalidDeviceId,
    /// Not a base32 TOTP secret of at least 80 bits.
    #[error("a TOTP secret is base32, at least 16 characters")]
    InvalidTotpSecret,
    /// An access name that is empty, too long or has control characters.
    #[error("an access name is 1 to {MAX_ACCESS_NAME_CHARS} printable characters")]
    InvalidName,
    /// A secret shorter than [`MIN_SECRET_CHARS`].
    #[error("an access secret has at least {MIN_SECRET_CHARS} characters")]
    WeakSecret,
    /// A policy file that is not a policy.
    #[error("{path} is not an access policy: {message}")]
    InvalidAccessFile {
        /// The file's path.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// A handshake message or stored value that cannot be read.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// The operating system's random source or a primitive failed.
    #[error("cryptography failed: {0}")]
    Crypto(&'static str),
    /// The technician did not prove the secret (and code): wrong secret, wrong or missing TOTP code, an unknown
    /// access name, or fingerprints that differ between the two sides.
    #[error("authentication failed")]
    AuthenticationFailed,
    /// The host did not prove itself to the technician.
    #[error("the host did not authenticate: {0}")]
    HostNotAuthenticated(&'static str),
}

impl PartialEq for UnattendedError {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

/// A host's unattended settings: its identity, the accesses it accepts, and when to tell the app about failures.
///
/// ```
/// use peerdesk::unattended::{AccessPolicy, DeviceIdentity, UnattendedConfig};
///
/// let config = UnattendedConfig::new(DeviceIdentity::generate()?, AccessPolicy::new()).alert_after(5);
/// assert_eq!(config.device_id().as_str().len(), 9);
/// # Ok::<(), peerdesk::unattended::UnattendedError>(())
/// ```
#[derive(Debug, Clone)]
pub struct UnattendedConfig {
    pub(crate) identity: Arc<DeviceIdentity>,
    pub(crate) policy: AccessPolicy,
    pub(crate) alert_after: u32,
}

impl UnattendedConfig {
    /// Unattended access for `identity` under `policy`. Default: the app hears of failures after 3 in a row.
    pub fn new(identity: DeviceIdentity, policy: AccessPolicy) -> Self {
        UnattendedConfig {
            identity: Arc::new(identity),
            policy,
            alert_after: 3,
        }
    }

    /// Failed attempts in a row (1 or more) after which the app gets
    /// [`crate::session::HostEvent::AccessFailures`], and again at every further failure. Default: 3.
    #[must_use]
    pub fn alert_after(mut self, failures: u32) -> Self {
        self.alert_after = failures.max(1);
        self
    }

    /// The device ID the host registers.
    pub fn device_id(&self) -> DeviceId {
        self.identity.device_id()
    }
}

/// Reads a file that must be owner-only.
fn read_private_file(path: &Path) -> Result<Vec<u8>, UnattendedError> {
    let io = |source| UnattendedError::Io {
        path: path.to_path_buf(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if metadata.permissions().mode() & 0o077 != 0 {
            return Err(UnattendedError::InsecureFile {
                path: path.to_path_buf(),
            });
        }
    }
    let _ = metadata;
    std::fs::read(path).map_err(io)
}

/// Writes a file owner-only (created with mode 0600; with `replace`, through a temporary file renamed over it).
fn write_private_file(path: &Path, bytes: &[u8], replace: bool) -> Result<(), UnattendedError> {
    use std::io::Write as _;
    let io = |source| UnattendedError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let target = if replace {
        path.with_extension(format!("tmp{}", std::process::id()))
    } else {
        path.to_path_buf()
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    if replace {
        let _ = std::fs::remove_file(&target);
    }
    let mut file = options.open(&target).map_err(io)?;
    file.write_all(bytes).and_then(|_| file.sync_all()).map_err(io)?;
    if replace {
        std::fs::rename(&target, path).map_err(io)?;
    }
    Ok(())
}
