//! The host's audit trail: what happened in a session, as JSON lines in which each record carries the hash of the
//! one before, so that an edited, inserted or deleted line is caught ([`verify`]).
//!
//! A record is one JSON object per line with these fields, in this order:
//!
//! - `seq`: 0, 1, 2, … within the file;
//! - `at_ms`: wall-clock time, milliseconds since 1970;
//! - `session`: the host's peer id on the signaling server, which the server's own log names too;
//! - `event` and the event's fields (see [`AuditEvent`]): never the text of chat or clipboard, only its size and
//!   SHA-256;
//! - `prev`: the `hash` of the record before (64 zeros for the first);
//! - `hash`: SHA-256, in hex, of the line up to and excluding `,"hash":…`.
//!
//! The chain proves that the records between the first and the last are as written; whoever can rewrite the file
//! can also rewrite its tail consistently, so keep the last hash somewhere else too (print it, send it to a log
//! collector): `peerdesk audit verify FILE` prints it.
//!
//! ```
//! use peerdesk::audit::{verify, AuditChain, AuditEvent};
//!
//! let mut chain = AuditChain::new("host-1");
//! let mut file = String::new();
//! file += &chain.record(1_764_770_000_000, &AuditEvent::SessionStarted { host_name: "desk".into() });
//! file += &chain.record(1_764_770_000_500, &AuditEvent::Ended { reason: "done".into() });
//! let summary = verify(file.as_bytes()).unwrap();
//! assert_eq!(summary.records, 2);
//! assert!(verify(file.replace("done", "dome").as_bytes()).is_err());
//! ```

use ring::digest;
use serde::Serialize;
use std::io::BufRead;

/// The `prev` of a file's first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What is recorded. Text from the other side (names, reasons) is recorded as it came, JSON-escaped; chat and
/// clipboard contents never are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditEvent {
    /// The host started sharing.
    SessionStarted {
        /// The name shown to viewers.
        host_name: String,
    },
    /// A viewer asked to join.
    JoinRequest {
        /// The viewer's peer id.
        viewer: String,
        /// The name it gave (unverified).
        name: String,
    },
    /// The host's user answered.
    Consent {
        /// The viewer's id, unique within this host's session.
        viewer: String,
        /// Admitted or not.
        allowed: bool,
        /// Permissions granted (`view`, `control`, `clipboard`), empty when denied.
        permissions: Vec<&'static str>,
    },
    /// An unattended technician proved an access (`ok`), or failed to (wrong secret or code, unknown name, or
    /// someone in the middle).
    UnattendedAccess {
        /// The viewer's id, unique within this host's session.
        viewer: String,
        /// The access name claimed.
        access: String,
        /// Whether the handshake succeeded.
        ok: bool,
    },
    /// A viewer's connection is up; `code` is the verification code both sides were shown.
    Connected {
        /// The viewer's id, unique within this host's session.
        viewer: String,
        /// The verification code.
        verification_code: String,
    },
    /// The host's user confirmed the verification code.
    VerificationConfirmed {
        /// The viewer's id, unique within this host's session.
        viewer: String,
    },
    /// The host changed a viewer's permissions.
    PermissionsChanged {
        /// The viewer's id, unique within this host's session.
        viewer: String,
        /// Now in force.
        permissions: Vec<&'static str>,
    },
    /// Input events a viewer had injected during the last minute (or part of one, at its end).
    Input {
        /// The viewer's id, unique within this host's session.
        viewer: String,
        /// Events injected.
        events: u64,
    },
    /// Clipboard text went across.
    Clipboard {
        /// The viewer it came from or went to (`*` for every viewer holding the permission).
        viewer: String,
        /// `to_host` or `to_viewer`.
        direction: &'static str,
        /// Size in bytes.
        bytes: usize,
        /// SHA-256 of the text, hex.
        sha256: String,
    },
    /// A chat line went across.
    Chat {
        /// The viewer it came from or went to (`*` for all).
        viewer: String,
        /// `to_host` or `to_viewer`.
        direction: &'static str,
        /// Size in bytes.
        bytes: usize,
        /// SHA-256 of the text, hex.
        sha256: String,
    },
    /// A viewer's connection was lost or came back.
    Reconnect {
        /// The viewer's id, unique within this host's session.
        viewer: String,
        /// `lost` or `restored`.
        state: &'static str,
    },
    /// A viewer left.
    Left {
        /// The viewer's id, unique within this host's session.
        viewer: String,
        /// Why, in words for people; from the other side, so escape it before printing it to a terminal.
        reason: String,
    },
    /// The session ended.
    Ended {
        /// Why, in words for people; from the other side, so escape it before printing it to a terminal.
        reason: String,
    },
}

impl AuditEvent {
    /// A clipboard or chat event for `text`, with its size and hash.
    pub(crate) fn text(kind: TextKind, viewer: &str, direction: &'static str, text: &str) -> AuditEvent {
        let sha256 = hex(digest::digest(&digest::SHA256, text.as_bytes()).as_ref());
        let (viewer, bytes) = (viewer.to_string(), text.len());
        match kind {
            TextKind::Clipboard => AuditEvent::Clipboard {
                viewer,
                direction,
                bytes,
                sha256,
            },
            TextKind::Chat => AuditEvent::Chat {
                viewer,
                direction,
                bytes,
                sha256,
            },
        }
    }
}

/// Which kind of text [`AuditEvent::text`] records.
#[derive(Debug, Clone, Copy)]
pub(crate) enum TextKind {
    Clipboard,
    Chat,
}

/// Permission names for a record.
pub(crate) fn permission_names(p: crate::control::Permissions) -> Vec<&'static str> {
    let mut names = vec!["view"];
    if p.control {
        names.push("control");
    }
    if p.clipboard {
        names.push("clipboard");
    }
    names
}

/// Builds the chained lines. Plain logic: the caller passes the time and writes the lines.
#[derive(Debug, Clone)]
pub struct AuditChain {
    session: String,
    seq: u64,
    prev: String,
}

#[derive(Serialize)]
struct Head<'a> {
    seq: u64,
    at_ms: u64,
    session: &'a str,
}

impl AuditChain {
    /// A new file's chain for the session `session` (the host's peer id).
    pub fn new(session: impl Into<String>) -> Self {
        AuditChain {
            session: session.into(),
            seq: 0,
            prev: GENESIS.to_string(),
        }
    }

    /// The record of `event` at `at_ms`, as one line ending in `\n`.
    pub fn record(&mut self, at_ms: u64, event: &AuditEvent) -> String {
        let head = serde_json::to_string(&Head {
            seq: self.seq,
            at_ms,
            session: &self.session,
        })
        .expect("plain fields serialise");
        let body = serde_json::to_string(event).expect("plain fields serialise");
        // {"seq":…,"session":"…"} + {"event":…} → {"seq":…,"session":"…","event":…,"prev":"…"}
        let unsigned = format!(
            "{},{},\"prev\":\"{}\"",
            &head[..head.len() - 1],
            &body[1..body.len() - 1],
            self.prev
        );
        let hash = hex(digest::digest(&digest::SHA256, unsigned.as_bytes()).as_ref());
        self.seq += 1;
        self.prev = hash.clone();
        format!("{unsigned},\"hash\":\"{hash}\"}}\n")
    }

    /// The hash of the last record (the [`GENESIS`] before the first).
    pub fn head(&self) -> &str {
        &self.prev
    }
}

/// A file that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditSummary {
    /// Records in the file.
    pub records: u64,
    /// The last record's hash: compare it with a copy kept elsewhere to catch a rewritten tail.
    pub head: String,
}

/// Why a file did not verify.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The file could not be read.
    #[error("cannot read the audit file: {0}")]
    Io(#[from] std::io::Error),
    /// A record is not what was written, or not where it was written.
    #[error("line {line}: {reason}")]
    Tampered {
        /// 1-based line number of the first bad record.
        line: u64,
        /// What does not match.
        reason: String,
    },
}

/// Checks every record's hash, its link to the record before and its sequence number.
///
/// # Errors
///
/// [`AuditError::Tampered`] names the first line that does not hold; [`AuditError::Io`] if reading fails.
pub fn verify(reader: impl std::io::Read) -> Result<AuditSummary, AuditError> {
    let mut prev = GENESIS.to_string();
    let mut records = 0u64;
    for (index, line) in std::io::BufReader::new(reader).lines().enumerate() {
        let line = line?;
        let number = index as u64 + 1;
        let bad = |reason: &str| AuditError::Tampered {
            line: number,
            reason: reason.to_string(),
        };
        let (unsigned, hash) = line
            .strip_suffix("\"}")
            .and_then(|rest| rest.rsplit_once(",\"hash\":\""))
            .ok_or_else(|| bad("no hash at the end"))?;
        if hex(digest::digest(&digest::SHA256, unsigned.as_bytes()).as_ref()) != hash {
            return Err(bad("its hash does not match its contents (edited)"));
        }
        let value: serde_json::Value =
            serde_json::from_str(&format!("{unsigned}}}")).map_err(|_| bad("not a JSON record"))?;
        if value["prev"].as_str() != Some(prev.as_str()) {
            return Err(bad(
                "it does not follow the record before (inserted, deleted or reordered)",
            ));
        }
        if value["seq"].as_u64() != Some(records) {
            return Err(bad("its sequence number is out of order"));
        }
        prev = hash.to_string();
        records += 1;
    }
    Ok(AuditSummary { records, head: prev })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Appends records to a file as the session goes (the edge around [`AuditChain`]). A write that fails is logged;
/// the session goes on.
pub(crate) struct AuditFile {
    chain: AuditChain,
    file: std::fs::File,
    path: std::path::PathBuf,
}

impl AuditFile {
    /// Creates (or truncates) `path` with owner-only permissions, for the session `session`.
    pub(crate) fn create(path: &std::path::Path, session: &str) -> std::io::Result<AuditFile> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        Ok(AuditFile {
            chain: AuditChain::new(session),
            file: options.open(path)?,
            path: path.to_path_buf(),
        })
    }

    /// Appends the record of `event`, now.
    pub(crate) fn write(&mut self, event: &AuditEvent) {
        use std::io::Write as _;
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let line = self.chain.record(at_ms, event);
        if let Err(e) = self.file.write_all(line.as_bytes()) {
            tracing::warn!(path = %self.path.display(), "audit record not written: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> String {
        let mut chain = AuditChain::new("p1");
        let mut file = String::new();
        let events = [
            AuditEvent::SessionStarted {
                host_name: "desk \"one\"".into(),
            },
            AuditEvent::JoinRequest {
                viewer: "p2".into(),
                name: "Tech\nforged line".into(),
            },
            AuditEvent::Consent {
                viewer: "p2".into(),
                allowed: true,
                permissions: vec!["view", "control"],
            },
            AuditEvent::text(TextKind::Chat, "p2", "to_host", "secret words"),
            AuditEvent::Ended { reason: "done".into() },
        ];
        for (i, event) in events.iter().enumerate() {
            file += &chain.record(1_000 + i as u64, event);
        }
        file
    }

    #[test]
    fn an_untouched_file_verifies_and_names_its_head() {
        let file = sample();
        let summary = verify(file.as_bytes()).unwrap();
        assert_eq!(summary.records, 5);
        let last: serde_json::Value = serde_json::from_str(file.lines().last().unwrap()).unwrap();
        assert_eq!(summary.head, last["hash"].as_str().unwrap());
        assert_eq!(file.lines().count(), 5, "a newline in a field cannot forge a line");
        assert!(!file.contains("secret words"), "chat text is never recorded");
        assert!(file.contains(&hex(digest::digest(&digest::SHA256, b"secret words").as_ref())));
    }

    fn tampered_line(file: &str) -> u64 {
        match verify(file.as_bytes()) {
            Err(AuditError::Tampered { line, .. }) => line,
            other => panic!("tampering not caught: {other:?}"),
        }
    }

    #[test]
    fn edits_insertions_deletions_and_reordering_are_caught() {
        let file = sample();
        let lines: Vec<&str> = file.lines().collect();
        // An edited field.
        assert_eq!(
            tampered_line(&file.replacen("\"allowed\":true", "\"allowed\":false", 1)),
            3
        );
        // An edited record with its own hash recomputed: the next record's link breaks.
        let hash_of = |line: &str| line.rsplit_once("\"hash\":\"").unwrap().1[..64].to_string();
        let mut chain = AuditChain {
            session: "p1".into(),
            seq: 1,
            prev: hash_of(lines[0]),
        };
        let boss = AuditEvent::JoinRequest {
            viewer: "p2".into(),
            name: "Boss".into(),
        };
        let rewritten = format!(
            "{}\n{}{}\n",
            lines[0],
            chain.record(1_001, &boss),
            lines[2..].join("\n")
        );
        assert_eq!(tampered_line(&rewritten), 3);
        // A deleted record.
        let deleted: String = lines
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 2)
            .map(|(_, l)| format!("{l}\n"))
            .collect();
        assert_eq!(tampered_line(&deleted), 3);
        // Two records swapped.
        let swapped = format!("{}\n{}\n{}\n{}\n{}\n", lines[0], lines[2], lines[1], lines[3], lines[4]);
        assert_eq!(tampered_line(&swapped), 2);
        // Garbage.
        assert_eq!(tampered_line("not json\n"), 1);
    }
}
