//! The unattended handshake: SPAKE2 on the argon2id hash of the technician's secret, key confirmation bound to
//! both DTLS certificate fingerprints (and the TOTP code), and the device's signature over the same transcript.
//!
//! Three messages ride on the signaling relay next to the SDP:
//!
//! 1. host → technician, after its offer: `auth` — the argon2id parameters and salt, and the host's SPAKE2
//!    message (role A, identities `peerdesk device <id>` and `peerdesk technician <name>`);
//! 2. technician → host, before its answer: `auth_confirm` — its SPAKE2 message (role B) and a MAC, under a key
//!    derived from the SPAKE2 key, over the transcript (device ID, access name, parameters, both SPAKE2 messages,
//!    the host's fingerprint from the offer, its own from the answer) and the TOTP code;
//! 3. host → technician: `auth_proof` — the host's MAC over the same transcript, its device public key and its
//!    signature of the transcript. The host applies the answer (so ICE and DTLS can start) only after checking
//!    the technician's MAC.
//!
//! What it gives: the server and any relay see two SPAKE2 messages and MACs, from which neither the secret nor
//! its hash can be computed, even offline. Someone who does not know the secret gets one guess per attempt (and
//! the backoff decides how many attempts). A server that swaps fingerprints to sit in the middle makes the two
//! transcripts differ, so both MACs fail: the host refuses the technician and the technician refuses the host.

use super::{DeviceId, DeviceIdentity, TotpSecret, UnattendedError};
use crate::session::Fingerprint;
use ring::{hkdf, hmac};
use spake2::{Ed25519Group, Identity, Password, Spake2};

const CONTEXT: &[u8] = b"peerdesk unattended v1";
const PROOF_CONTEXT: &[u8] = b"peerdesk device proof v1";

/// What the host sends first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    /// argon2id parameters and salt (PHC form, no hash).
    pub kdf: String,
    /// The host's SPAKE2 message.
    pub spake: Vec<u8>,
}

/// What the technician answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Confirm {
    pub spake: Vec<u8>,
    pub mac: Vec<u8>,
}

/// What the host proves last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Proof {
    pub mac: Vec<u8>,
    pub public_key: Vec<u8>,
    pub signature: Vec<u8>,
}

fn identities(device: &DeviceId, access: &str) -> (Identity, Identity) {
    (
        Identity::new(format!("peerdesk device {}", device.as_str()).as_bytes()),
        Identity::new(format!("peerdesk technician {access}").as_bytes()),
    )
}

/// Length-prefixed fields, so that no two different transcripts encode the same.
struct Transcript(Vec<u8>);

impl Transcript {
    fn new(device: &DeviceId, access: &str, kdf: &str) -> Self {
        let mut t = Transcript(Vec::with_capacity(512));
        t.push(CONTEXT);
        t.push(device.as_str().as_bytes());
        t.push(access.as_bytes());
        t.push(kdf.as_bytes());
        t
    }

    fn push(&mut self, field: &[u8]) {
        self.0.extend_from_slice(&(field.len() as u32).to_be_bytes());
        self.0.extend_from_slice(field);
    }

    fn complete(mut self, host_spake: &[u8], viewer_spake: &[u8], host: &Fingerprint, viewer: &Fingerprint) -> Vec<u8> {
        self.push(host_spake);
        self.push(viewer_spake);
        self.push(host);
        self.push(viewer);
        self.0
    }
}

struct OutLen;

impl hkdf::KeyType for OutLen {
    fn len(&self) -> usize {
        32
    }
}

fn confirmation_key(spake_key: &[u8]) -> hmac::Key {
    let mut okm = [0u8; 32];
    hkdf::Salt::new(hkdf::HKDF_SHA256, CONTEXT)
        .extract(spake_key)
        .expand(&[b"confirmation"], OutLen)
        .and_then(|expanded| expanded.fill(&mut okm))
        .expect("32 bytes is within HKDF-SHA256's output limit");
    hmac::Key::new(hmac::HMAC_SHA256, &okm)
}

fn technician_message(transcript: &[u8], totp_code: &str) -> Vec<u8> {
    [b"technician".as_slice(), transcript, totp_code.as_bytes()].concat()
}

fn device_message(transcript: &[u8]) -> Vec<u8> {
    [b"device".as_slice(), transcript].concat()
}

/// The host's half.
pub(crate) struct HostHandshake {
    spake: Spake2<Ed25519Group>,
    transcript: Transcript,
    host_spake: Vec<u8>,
    totp: Option<TotpSecret>,
}

impl HostHandshake {
    /// Starts with the stored hash of the access's secret.
    pub(crate) fn start(
        device: &DeviceId,
        access: &str,
        kdf: &super::access::KdfParams,
        hash: &[u8; 32],
        totp: Option<TotpSecret>,
    ) -> (Self, Challenge) {
        let (id_a, id_b) = identities(device, access);
        let (spake, host_spake) = Spake2::<Ed25519Group>::start_a(&Password::new(hash), &id_a, &id_b);
        let kdf = kdf.to_phc();
        let handshake = HostHandshake {
            spake,
            transcript: Transcript::new(device, access, &kdf),
            host_spake: host_spake.clone(),
            totp,
        };
        (handshake, Challenge { kdf, spake: host_spake })
    }

    /// Checks the technician's confirmation against this side's view of the two fingerprints (its own, and the
    /// one in the technician's answer) and, with TOTP, the codes valid at `unix_secs`; returns the proof to send.
    ///
    /// # Errors
    /// [`UnattendedError::AuthenticationFailed`] for a wrong secret, a wrong or missing TOTP code, or different
    /// fingerprints (someone in the middle); [`UnattendedError::Malformed`] for a broken message.
    pub(crate) fn finish(
        self,
        identity: &DeviceIdentity,
        confirm: &Confirm,
        host: &Fingerprint,
        viewer: &Fingerprint,
        unix_secs: u64,
    ) -> Result<Proof, UnattendedError> {
        let key = self
            .spake
            .finish(&confirm.spake)
            .map_err(|_| UnattendedError::Malformed("SPAKE2 message"))?;
        let key = confirmation_key(&key);
        let transcript = self.transcript.complete(&self.host_spake, &confirm.spake, host, viewer);
        let codes = match &self.totp {
            Some(totp) => totp.accepted_codes(unix_secs),
            None => vec![String::new()],
        };
        let accepted = codes
            .iter()
            .any(|code| hmac::verify(&key, &technician_message(&transcript, code), &confirm.mac).is_ok());
        if !accepted {
            return Err(UnattendedError::AuthenticationFailed);
        }
        let mac = hmac::sign(&key, &device_message(&transcript)).as_ref().to_vec();
        let signature = identity.sign(&[PROOF_CONTEXT, &transcript].concat()).to_vec();
        Ok(Proof {
            mac,
            public_key: identity.public_key().to_vec(),
            signature,
        })
    }
}

/// What the technician's side expects of the host's proof.
pub(crate) struct Expectation {
    key: hmac::Key,
    transcript: Vec<u8>,
    device: DeviceId,
}

/// The technician's half: derives the secret's hash with the host's parameters, answers the challenge.
///
/// # Errors
/// [`UnattendedError::Malformed`] for a broken challenge or parameters beyond the accepted costs.
#[allow(clippy::too_many_arguments)]
pub(crate) fn technician_answer(
    device: &DeviceId,
    access: &str,
    secret: &str,
    totp_code: Option<&str>,
    challenge: &Challenge,
    host: &Fingerprint,
    viewer: &Fingerprint,
) -> Result<(Confirm, Expectation), UnattendedError> {
    let kdf = super::access::KdfParams::from_phc(&challenge.kdf)?;
    let hash = kdf.derive(secret)?;
    let (id_a, id_b) = identities(device, access);
    let (spake, viewer_spake) = Spake2::<Ed25519Group>::start_b(&Password::new(hash), &id_a, &id_b);
    let key = spake
        .finish(&challenge.spake)
        .map_err(|_| UnattendedError::Malformed("SPAKE2 message"))?;
    let key = confirmation_key(&key);
    let transcript =
        Transcript::new(device, access, &challenge.kdf).complete(&challenge.spake, &viewer_spake, host, viewer);
    let code: String = totp_code.unwrap_or("").chars().filter(|c| c.is_ascii_digit()).collect();
    let mac = hmac::sign(&key, &technician_message(&transcript, &code))
        .as_ref()
        .to_vec();
    Ok((
        Confirm {
            spake: viewer_spake,
            mac,
        },
        Expectation {
            key,
            transcript,
            device: device.clone(),
        },
    ))
}

impl Expectation {
    /// Checks the host's proof: it knew the secret's hash, saw the same fingerprints, and holds the key whose
    /// device ID was asked for. Returns the device's public key.
    ///
    /// # Errors
    /// [`UnattendedError::HostNotAuthenticated`] when any of the three fails.
    pub(crate) fn check(&self, proof: &Proof) -> Result<[u8; 32], UnattendedError> {
        hmac::verify(&self.key, &device_message(&self.transcript), &proof.mac).map_err(|_| {
            UnattendedError::HostNotAuthenticated(
                "its confirmation does not match (wrong secret, or someone in the middle)",
            )
        })?;
        let public_key: [u8; 32] = proof
            .public_key
            .as_slice()
            .try_into()
            .map_err(|_| UnattendedError::HostNotAuthenticated("no device key"))?;
        if DeviceId::from_public_key(&public_key) != self.device {
            return Err(UnattendedError::HostNotAuthenticated(
                "its key is not the asked device's",
            ));
        }
        if !super::device::verify_signature(
            &public_key,
            &[PROOF_CONTEXT, &self.transcript].concat(),
            &proof.signature,
        ) {
            return Err(UnattendedError::HostNotAuthenticated("its device signature is invalid"));
        }
        Ok(public_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unattended::{AccessPolicy, TechnicianAccess};

    struct Run {
        host: Result<Proof, UnattendedError>,
        technician: Option<Result<[u8; 32], UnattendedError>>,
    }

    fn run(policy: &AccessPolicy, name: &str, secret: &str, code: Option<&str>, swap: bool, now: u64) -> Run {
        let device = DeviceIdentity::generate().unwrap();
        let (_, kdf, hash, totp) = policy.entry_or_decoy(name, &device);
        let (host, challenge) = HostHandshake::start(&device.device_id(), name, &kdf, &hash, totp);
        let (host_fp, viewer_fp) = ([1u8; 32], [2u8; 32]);
        // A server in the middle hands each side its own certificate instead of the other's.
        let (seen_by_viewer, seen_by_host) = if swap {
            ([9u8; 32], [8u8; 32])
        } else {
            (host_fp, viewer_fp)
        };
        let (confirm, expectation) = technician_answer(
            &device.device_id(),
            name,
            secret,
            code,
            &challenge,
            &seen_by_viewer,
            &viewer_fp,
        )
        .unwrap();
        let host = host.finish(&device, &confirm, &host_fp, &seen_by_host, now);
        let technician = host.as_ref().ok().map(|proof| expectation.check(proof));
        Run { host, technician }
    }

    #[test]
    fn the_right_secret_and_code_authenticate_both_sides() {
        let totp = TotpSecret::generate().unwrap();
        let now = 1_800_000_000;
        let policy = AccessPolicy::new().with(
            TechnicianAccess::new("alex", "correct horse")
                .unwrap()
                .totp(totp.clone()),
        );
        let ok = run(
            &policy,
            "alex",
            "correct horse",
            Some(&totp.code_at(now - 30)),
            false,
            now,
        );
        assert!(ok.host.is_ok());
        assert!(matches!(ok.technician, Some(Ok(_))));

        for (secret, code) in [
            ("correct horsE", totp.code_at(now)),
            ("correct horse", totp.code_at(now - 120)),
        ] {
            let failed = run(&policy, "alex", secret, Some(&code), false, now);
            assert_eq!(failed.host.err(), Some(UnattendedError::AuthenticationFailed));
        }
        let no_code = run(&policy, "alex", "correct horse", None, false, now);
        assert_eq!(no_code.host.err(), Some(UnattendedError::AuthenticationFailed));
        // An unknown name fails the same way, after the same exchange.
        let unknown = run(&policy, "bob", "correct horse", None, false, now);
        assert_eq!(unknown.host.err(), Some(UnattendedError::AuthenticationFailed));
    }

    #[test]
    fn swapped_fingerprints_fail_even_with_the_right_secret() {
        let policy = AccessPolicy::new().with(TechnicianAccess::new("alex", "correct horse").unwrap());
        let swapped = run(&policy, "alex", "correct horse", None, true, 0);
        assert_eq!(swapped.host.err(), Some(UnattendedError::AuthenticationFailed));
    }

    #[test]
    fn a_proof_from_another_device_or_transcript_is_refused() {
        let policy = AccessPolicy::new().with(TechnicianAccess::new("alex", "correct horse").unwrap());
        let device = DeviceIdentity::generate().unwrap();
        let other = DeviceIdentity::generate().unwrap();
        let (_, kdf, hash, totp) = policy.entry_or_decoy("alex", &device);
        let (host, challenge) = HostHandshake::start(&device.device_id(), "alex", &kdf, &hash, totp);
        let (confirm, expectation) = technician_answer(
            &device.device_id(),
            "alex",
            "correct horse",
            None,
            &challenge,
            &[1; 32],
            &[2; 32],
        )
        .unwrap();
        let proof = host.finish(&device, &confirm, &[1; 32], &[2; 32], 0).unwrap();
        let mut forged = proof.clone();
        forged.public_key = other.public_key().to_vec();
        assert!(matches!(
            expectation.check(&forged),
            Err(UnattendedError::HostNotAuthenticated(_))
        ));
        let mut bad_signature = proof.clone();
        bad_signature.signature[0] ^= 1;
        assert!(matches!(
            expectation.check(&bad_signature),
            Err(UnattendedError::HostNotAuthenticated(_))
        ));
        assert_eq!(expectation.check(&proof).unwrap(), device.public_key());
    }
}
