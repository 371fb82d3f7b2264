//! Technician accesses: who may connect unattended, with what secret (stored as an argon2id hash), what second
//! factor and what permissions.

use super::{DeviceIdentity, TotpSecret, UnattendedError};
use crate::control::Permissions;
use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// argon2id memory cost in KiB (OWASP's 2023 minimum for argon2id: 19 MiB, 2 passes, 1 lane).
pub const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
/// argon2id passes.
pub const ARGON2_PASSES: u32 = 2;
/// argon2id lanes.
pub const ARGON2_LANES: u32 = 1;
/// The most memory a technician's side spends on a host's parameters (a host cannot make it spend more).
pub const ARGON2_MAX_MEMORY_KIB: u32 = 256 * 1024;
/// The most passes a technician's side runs on a host's parameters.
pub const ARGON2_MAX_PASSES: u32 = 8;
/// The longest access name, in characters.
pub const MAX_ACCESS_NAME_CHARS: usize = 64;
/// The shortest access secret accepted, in characters.
pub const MIN_SECRET_CHARS: usize = 8;

/// The argon2id parameters and salt of one stored secret: the PHC string without the hash,
/// `$argon2id$v=19$m=19456,t=2,p=1$<salt>`. A host sends this to the technician, whose side derives the same
/// 32 bytes from the secret typed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KdfParams {
    memory_kib: u32,
    passes: u32,
    lanes: u32,
    salt: Vec<u8>,
}

impl KdfParams {
    fn new(salt: Vec<u8>) -> Self {
        KdfParams {
            memory_kib: ARGON2_MEMORY_KIB,
            passes: ARGON2_PASSES,
            lanes: ARGON2_LANES,
            salt,
        }
    }

    pub(crate) fn to_phc(&self) -> String {
        format!(
            "$argon2id$v=19$m={},t={},p={}${}",
            self.memory_kib,
            self.passes,
            self.lanes,
            STANDARD_NO_PAD.encode(&self.salt)
        )
    }

    /// Parses parameters; refuses costs beyond what a technician's side is willing to spend.
    pub(crate) fn from_phc(text: &str) -> Result<Self, UnattendedError> {
        let bad = || UnattendedError::Malformed("argon2id parameters");
        let rest = text.strip_prefix("$argon2id$v=19$").ok_or_else(bad)?;
        let (params, salt) = rest.split_once('$').ok_or_else(bad)?;
        let mut values = [None; 3];
        for part in params.split(',') {
            let (key, value) = part.split_once('=').ok_or_else(bad)?;
            let slot = match key {
                "m" => 0,
                "t" => 1,
                "p" => 2,
                _ => return Err(bad()),
            };
            values[slot] = Some(value.parse::<u32>().map_err(|_| bad())?);
        }
        let [Some(memory_kib), Some(passes), Some(lanes)] = values else {
            return Err(bad());
        };
        let salt = STANDARD_NO_PAD.decode(salt).map_err(|_| bad())?;
        if memory_kib > ARGON2_MAX_MEMORY_KIB
            || passes > ARGON2_MAX_PASSES
            || lanes > 4
            || !(8..=64).contains(&salt.len())
        {
            return Err(UnattendedError::Malformed(
                "argon2id parameters beyond the accepted costs",
            ));
        }
        Ok(KdfParams {
            memory_kib,
            passes,
            lanes,
            salt,
        })
    }

    /// The 32 bytes both sides use as the PAKE password.
    pub(crate) fn derive(&self, secret: &str) -> Result<[u8; 32], UnattendedError> {
        let params = Params::new(self.memory_kib, self.passes, self.lanes, Some(32))
            .map_err(|_| UnattendedError::Malformed("argon2id parameters"))?;
        let mut out = [0u8; 32];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(secret.as_bytes(), &self.salt, &mut out)
            .map_err(|_| UnattendedError::Crypto("argon2id failed"))?;
        Ok(out)
    }
}

/// One technician's unattended access to this device.
///
/// The secret is kept only as an argon2id hash (salted, 19 MiB, 2 passes); the technician's side derives the
/// same hash from the typed secret and both run a PAKE on it, so neither the secret nor the hash crosses the
/// network. The hash still lets whoever steals the access file pose as the technician *to this device*, which
/// is why the file is owner-only; it does not reveal the secret itself.
///
/// ```
/// use peerdesk::control::Permissions;
/// use peerdesk::unattended::{AccessPolicy, TechnicianAccess, TotpSecret};
///
/// let access = TechnicianAccess::new("alex", "correct horse battery")?
///     .totp(TotpSecret::generate()?)
///     .permissions(Permissions::CONTROL)
///     .ask_customer(false);
/// let policy = AccessPolicy::new().with(access);
/// assert!(policy.get("alex").is_some());
/// # Ok::<(), peerdesk::unattended::UnattendedError>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
pub struct TechnicianAccess {
    name: String,
    /// `$argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>`.
    secret_hash: String,
    /// Base32 TOTP secret, when a second factor is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    totp: Option<String>,
    permissions: Permissions,
    #[serde(default)]
    ask_customer: bool,
}

impl std::fmt::Debug for TechnicianAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TechnicianAccess")
            .field("name", &self.name)
            .field("totp", &self.totp.is_some())
            .field("permissions", &self.permissions)
            .field("ask_customer", &self.ask_customer)
            .finish_non_exhaustive()
    }
}

impl TechnicianAccess {
    /// An access for `name` (1–64 printable characters) with `secret` (at least [`MIN_SECRET_CHARS`]
    /// characters), hashed here with argon2id and a fresh random salt. Defaults: view only, no TOTP, the customer
    /// is not asked.
    ///
    /// # Errors
    /// [`UnattendedError::InvalidName`] or [`UnattendedError::WeakSecret`] for a bad name or secret,
    /// [`UnattendedError::Crypto`] when the random source fails.
    pub fn new(name: &str, secret: &str) -> Result<Self, UnattendedError> {
        let name = check_name(name)?;
        if secret.chars().count() < MIN_SECRET_CHARS {
            return Err(UnattendedError::WeakSecret);
        }
        let mut salt = vec![0u8; 16];
        getrandom::fill(&mut salt).map_err(|_| UnattendedError::Crypto("the random source failed"))?;
        let kdf = KdfParams::new(salt);
        let hash = kdf.derive(secret)?;
        Ok(TechnicianAccess {
            name,
            secret_hash: format!("{}${}", kdf.to_phc(), STANDARD_NO_PAD.encode(hash)),
            totp: None,
            permissions: Permissions::VIEW_ONLY,
            ask_customer: false,
        })
    }

    /// Requires a TOTP code as a second factor (RFC 6238: SHA-1, 6 digits, 30 s). Default: none.
    #[must_use]
    pub fn totp(mut self, secret: TotpSecret) -> Self {
        self.totp = Some(secret.to_base32());
        self
    }

    /// What this technician may do once authenticated. Default: [`Permissions::VIEW_ONLY`].
    #[must_use]
    pub fn permissions(mut self, permissions: Permissions) -> Self {
        self.permissions = permissions;
        self
    }

    /// Whether the customer is still asked (a join request the app answers) before the technician connects.
    /// Default: `false` (truly unattended).
    #[must_use]
    pub fn ask_customer(mut self, ask: bool) -> Self {
        self.ask_customer = ask;
        self
    }

    /// The technician's access name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The permissions granted.
    pub fn granted(&self) -> Permissions {
        self.permissions
    }

    /// Whether the customer is asked.
    pub fn asks_customer(&self) -> bool {
        self.ask_customer
    }

    /// Whether a TOTP code is required.
    pub fn requires_totp(&self) -> bool {
        self.totp.is_some()
    }

    /// The stored parameters and hash.
    pub(crate) fn stored(&self) -> Result<(KdfParams, [u8; 32]), UnattendedError> {
        let (phc, hash) = self
            .secret_hash
            .rsplit_once('$')
            .ok_or(UnattendedError::Malformed("stored secret hash"))?;
        let kdf = KdfParams::from_phc(phc)?;
        let bytes = STANDARD_NO_PAD
            .decode(hash)
            .map_err(|_| UnattendedError::Malformed("stored secret hash"))?;
        let hash: [u8; 32] = bytes
            .try_into()
            .map_err(|_| UnattendedError::Malformed("stored secret hash"))?;
        Ok((kdf, hash))
    }

    pub(crate) fn totp_secret(&self) -> Result<Option<TotpSecret>, UnattendedError> {
        self.totp.as_deref().map(TotpSecret::from_base32).transpose()
    }
}

fn check_name(name: &str) -> Result<String, UnattendedError> {
    let clean = crate::text::printable(name).trim().to_string();
    if clean.is_empty() || clean != name || clean.chars().count() > MAX_ACCESS_NAME_CHARS {
        return Err(UnattendedError::InvalidName);
    }
    Ok(clean)
}

/// The technician accesses a host accepts unattended, kept in a JSON file only its owner may read.
///
/// ```
/// use peerdesk::unattended::{AccessPolicy, TechnicianAccess};
///
/// let path = std::env::temp_dir().join(format!("peerdesk-policy-doc-{}.json", std::process::id()));
/// AccessPolicy::new().with(TechnicianAccess::new("alex", "correct horse battery")?).save(&path)?;
/// let policy = AccessPolicy::load(&path)?;
/// assert_eq!(policy.names().collect::<Vec<_>>(), ["alex"]);
/// # std::fs::remove_file(&path).ok();
/// # Ok::<(), peerdesk::unattended::UnattendedError>(())
/// ```
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AccessPolicy {
    accesses: Vec<TechnicianAccess>,
}

impl AccessPolicy {
    /// No accesses: every unattended attempt fails.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an access, replacing one of the same name.
    #[must_use]
    pub fn with(mut self, access: TechnicianAccess) -> Self {
        self.insert(access);
        self
    }

    /// Adds an access, replacing one of the same name.
    pub fn insert(&mut self, access: TechnicianAccess) {
        self.accesses.retain(|a| a.name != access.name);
        self.accesses.push(access);
    }

    /// Removes the access `name`; whether there was one.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.accesses.len();
        self.accesses.retain(|a| a.name != name);
        before != self.accesses.len()
    }

    /// The access `name`.
    pub fn get(&self, name: &str) -> Option<&TechnicianAccess> {
        self.accesses.iter().find(|a| a.name == name)
    }

    /// The access names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.accesses.iter().map(|a| a.name.as_str())
    }

    /// Reads a policy file; a missing file is an empty policy.
    ///
    /// # Errors
    /// [`UnattendedError::Io`], [`UnattendedError::InsecureFile`] when others may read it, or
    /// [`UnattendedError::InvalidAccessFile`] when it is not a policy.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, UnattendedError> {
        let path = path.as_ref();
        let bytes = match super::read_private_file(path) {
            Ok(bytes) => bytes,
            Err(UnattendedError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self::new())
            }
            Err(e) => return Err(e),
        };
        let policy: AccessPolicy = serde_json::from_slice(&bytes).map_err(|e| UnattendedError::InvalidAccessFile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        for access in &policy.accesses {
            check_name(&access.name)?;
            access.stored()?;
            access.totp_secret()?;
        }
        Ok(policy)
    }

    /// Writes the policy, owner-only (0600 on Unix), replacing the file.
    ///
    /// # Errors
    /// [`UnattendedError::Io`] when it cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), UnattendedError> {
        let text =
            serde_json::to_vec_pretty(self).map_err(|_| UnattendedError::Crypto("cannot serialise the policy"))?;
        super::write_private_file(path.as_ref(), &text, true)
    }

    /// The access to run a handshake against: the named one, or — so that a guesser cannot tell which names
    /// exist — a decoy with a salt fixed per name and a hash nobody knows.
    pub(crate) fn entry_or_decoy(
        &self,
        name: &str,
        device: &DeviceIdentity,
    ) -> (Option<&TechnicianAccess>, KdfParams, [u8; 32], Option<TotpSecret>) {
        if let Some(access) = self.get(name) {
            if let Ok((kdf, hash)) = access.stored() {
                if let Ok(totp) = access.totp_secret() {
                    return (Some(access), kdf, hash, totp);
                }
            }
        }
        // Ed25519 signatures are deterministic: the same name always gets the same decoy salt.
        let signature = device.sign(&[b"peerdesk decoy salt v1".as_slice(), name.as_bytes()].concat());
        let salt = signature[..16].to_vec();
        let mut hash = [0u8; 32];
        let _ = getrandom::fill(&mut hash);
        (None, KdfParams::new(salt), hash, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_technicians_derivation_meets_the_stored_hash() {
        let access = TechnicianAccess::new("alex", "correct horse battery").unwrap();
        let (kdf, hash) = access.stored().unwrap();
        let sent = KdfParams::from_phc(&kdf.to_phc()).unwrap();
        assert_eq!(sent.derive("correct horse battery").unwrap(), hash);
        assert_ne!(sent.derive("correct horse batterY").unwrap(), hash);
        // The file holds the hash, never the secret.
        let json = serde_json::to_string(&AccessPolicy::new().with(access)).unwrap();
        assert!(!json.contains("correct horse"), "{json}");
        assert!(json.contains("$argon2id$v=19$m=19456,t=2,p=1$"), "{json}");
    }

    #[test]
    fn names_and_secrets_are_checked_and_costs_are_bounded() {
        assert!(matches!(
            TechnicianAccess::new("", "long enough"),
            Err(UnattendedError::InvalidName)
        ));
        assert!(matches!(
            TechnicianAccess::new("a\u{202e}b", "long enough"),
            Err(UnattendedError::InvalidName)
        ));
        assert!(matches!(
            TechnicianAccess::new("alex", "short"),
            Err(UnattendedError::WeakSecret)
        ));
        assert!(KdfParams::from_phc("$argon2id$v=19$m=9999999,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA").is_err());
        assert!(KdfParams::from_phc("$argon2id$v=19$m=19456,t=99,p=1$AAAAAAAAAAAAAAAAAAAAAA").is_err());
        assert!(KdfParams::from_phc("$argon2i$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA").is_err());
        assert!(KdfParams::from_phc("$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA").is_ok());
    }

    #[test]
    fn a_decoy_keeps_its_salt_for_a_name() {
        let device = DeviceIdentity::generate().unwrap();
        let policy = AccessPolicy::new();
        let (found, a, _, _) = policy.entry_or_decoy("mallory", &device);
        let (_, b, _, _) = policy.entry_or_decoy("mallory", &device);
        let (_, c, _, _) = policy.entry_or_decoy("eve", &device);
        assert!(found.is_none());
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
