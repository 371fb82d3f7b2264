//! Technician accounts: API tokens the operator issues, so that a host's consent prompt can say "verified by
//! `<operator>`" and name the account instead of a name the other side typed.
//!
//! The file (`--accounts FILE`, owner-only) holds the operator's name and, per account, the SHA-256 of its token.
//! Tokens are 256 random bits, so a plain hash is enough at rest (a password would need argon2id; a token cannot
//! be guessed from its hash), and checking one costs microseconds — no CPU an attacker could burn. Issue one
//! with `peerdesk-signaling-server --accounts FILE --new-token NAME` (printed once).

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The prefix of every token (makes leaked tokens easy to find with secret scanners).
pub const TOKEN_PREFIX: &str = "pdt_";

/// Why the accounts file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    /// Not readable or writable.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Not an accounts file.
    #[error("not an accounts file: {0}")]
    Invalid(String),
    /// Group or others may read it.
    #[error("others may read it; make it owner-only (chmod 600)")]
    Insecure,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Account {
    name: String,
    token_sha256: String,
}

/// The operator's technician accounts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Accounts {
    operator: String,
    #[serde(default)]
    accounts: Vec<Account>,
}

fn sha256_hex(token: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Accounts {
    /// No accounts yet, for `operator`.
    pub fn new(operator: impl Into<String>) -> Self {
        Accounts {
            operator: operator.into(),
            accounts: Vec::new(),
        }
    }

    /// Reads an accounts file (owner-only).
    ///
    /// # Errors
    /// [`AccountsError`] when it cannot be read, others may read it, or it is not an accounts file.
    pub fn load(path: &Path) -> Result<Self, AccountsError> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if std::fs::metadata(path)?.permissions().mode() & 0o077 != 0 {
                return Err(AccountsError::Insecure);
            }
        }
        let accounts: Accounts =
            serde_json::from_slice(&std::fs::read(path)?).map_err(|e| AccountsError::Invalid(e.to_string()))?;
        let printable = |s: &str| !s.is_empty() && peerdesk::text::printable(s) == s && s.chars().count() <= 64;
        if !printable(&accounts.operator) {
            return Err(AccountsError::Invalid(
                "operator must be 1–64 printable characters".into(),
            ));
        }
        for account in &accounts.accounts {
            if !printable(&account.name) || account.token_sha256.len() != 64 {
                return Err(AccountsError::Invalid(format!("bad entry {:?}", account.name)));
            }
        }
        Ok(accounts)
    }

    /// Issues a new token for `name` (replacing its old one), saves the file owner-only and returns the token.
    ///
    /// # Errors
    /// [`AccountsError`] when the file cannot be written or the name is not 1–64 printable characters.
    pub fn issue(&mut self, name: &str, path: &Path) -> Result<String, AccountsError> {
        if name.is_empty() || peerdesk::text::printable(name) != name || name.chars().count() > 64 {
            return Err(AccountsError::Invalid(
                "an account name is 1–64 printable characters".into(),
            ));
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| AccountsError::Invalid(format!("random source: {e}")))?;
        let token = format!(
            "{TOKEN_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        );
        self.accounts.retain(|a| a.name != name);
        self.accounts.push(Account {
            name: name.to_string(),
            token_sha256: sha256_hex(&token),
        });
        let text = serde_json::to_vec_pretty(self).map_err(|e| AccountsError::Invalid(e.to_string()))?;
        let temp = path.with_extension("tmp");
        let _ = std::fs::remove_file(&temp);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        std::io::Write::write_all(&mut options.open(&temp)?, &text)?;
        std::fs::rename(&temp, path)?;
        Ok(token)
    }

    /// The operator's name, as prompts show it.
    pub fn operator(&self) -> &str {
        &self.operator
    }

    /// Whether `token` is `account`'s (compared in constant time).
    pub fn verify(&self, account: &str, token: &str) -> bool {
        let Some(entry) = self.accounts.iter().find(|a| a.name == account) else {
            // Same work for unknown names.
            let _ = sha256_hex(token);
            return false;
        };
        let digest = sha256_hex(token);
        digest.len() == entry.token_sha256.len()
            && digest
                .bytes()
                .zip(entry.token_sha256.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_token_verifies_for_its_account_only_and_is_stored_hashed() {
        let dir = std::env::temp_dir().join(format!("peerdesk-accounts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("accounts.json");
        let mut accounts = Accounts::new("Example Support");
        let alex = accounts.issue("alex", &path).unwrap();
        let sam = accounts.issue("sam", &path).unwrap();
        assert!(alex.starts_with(TOKEN_PREFIX) && alex.len() > 40);
        let loaded = Accounts::load(&path).unwrap();
        assert!(loaded.verify("alex", &alex));
        assert!(!loaded.verify("alex", &sam));
        assert!(!loaded.verify("nobody", &alex));
        assert!(!std::fs::read_to_string(&path).unwrap().contains(&alex));
        // A new token replaces the old one.
        let mut accounts = loaded;
        let again = accounts.issue("alex", &path).unwrap();
        let loaded = Accounts::load(&path).unwrap();
        assert!(loaded.verify("alex", &again) && !loaded.verify("alex", &alex));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
