// The session's verification code, derived exactly as the Rust SDK derives it (core/src/session/verification.rs):
// HKDF-SHA256 with salt "peerdesk verification v1" over the host's SHA-256 certificate fingerprint (32 bytes),
// then the viewer's, then the session code's UTF-8 bytes; info "six digits"; 8 bytes read big-endian, modulo
// 10^6, written as two groups of three digits. Equal codes on both screens mean that both DTLS handshakes ended
// at each other, not at a signaling server or relay in the middle.

const encoder = new TextEncoder();

/** "AB:CD:…" (32 bytes) → Uint8Array; throws on anything else. */
export function parseFingerprint(text) {
  const parts = String(text).split(":");
  if (parts.length !== 32 || !parts.every((p) => /^[0-9A-Fa-f]{2}$/.test(p))) throw new Error("malformed certificate fingerprint");
  return Uint8Array.from(parts, (p) => parseInt(p, 16));
}

/** The six-digit code ("042 917") for these fingerprints ("AB:CD:…") and session code. */
export async function verificationCode(hostFingerprint, viewerFingerprint, session) {
  const host = parseFingerprint(hostFingerprint);
  const viewer = parseFingerprint(viewerFingerprint);
  const sessionBytes = encoder.encode(session);
  const ikm = new Uint8Array(64 + sessionBytes.length);
  ikm.set(host, 0);
  ikm.set(viewer, 32);
  ikm.set(sessionBytes, 64);
  const key = await crypto.subtle.importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits(
    { name: "HKDF", hash: "SHA-256", salt: encoder.encode("peerdesk verification v1"), info: encoder.encode("six digits") },
    key,
    64,
  );
  const number = Number(new DataView(bits).getBigUint64(0) % 1_000_000n);
  const pad = (n) => String(n).padStart(3, "0");
  return `${pad(Math.floor(number / 1000))} ${pad(number % 1000)}`;
}

/**
 * The one SHA-256 fingerprint a session description binds its DTLS handshake to ("AB:CD:…"), as the Rust SDK
 * reads it: every a=fingerprint line counts, repeats of one value are one; none, several or another hash throw.
 */
export function sdpFingerprint(sdp) {
  const values = new Set();
  for (const line of String(sdp).split(/\r?\n/)) {
    const m = line.match(/^a=fingerprint:(\S+) (\S+)\s*$/);
    if (!m) continue;
    if (m[1].toLowerCase() !== "sha-256") throw new Error(`unsupported fingerprint hash ${m[1]}`);
    values.add(m[2].toUpperCase());
  }
  if (values.size !== 1) throw new Error(`${values.size} certificate fingerprints in the description; exactly one is accepted`);
  const [value] = values;
  parseFingerprint(value);
  return value;
}

/**
 * The code of a connected RTCPeerConnection in which this page is the viewer. The fingerprints are those of the
 * certificates the DTLS handshake used: this page's own from Chromium's certificate stats, the host's from its
 * certificate stats when Chromium reports them (it does not for every peer) and otherwise from the remote
 * description — which the handshake checked the host's certificate against before it could connect. Null until
 * DTLS is up.
 */
export async function sessionVerificationCode(pc, session) {
  const report = await pc.getStats();
  const certificates = new Map();
  let transport = null;
  report.forEach((s) => {
    if (s.type === "certificate") certificates.set(s.id, s);
    if (s.type === "transport" && s.dtlsState === "connected") transport = s;
  });
  if (!transport) return null;
  const local = certificates.get(transport.localCertificateId);
  if (!local || local.fingerprintAlgorithm !== "sha-256") return null;
  const remote = certificates.get(transport.remoteCertificateId);
  const hostFingerprint = remote && remote.fingerprintAlgorithm === "sha-256"
    ? remote.fingerprint
    : sdpFingerprint(pc.currentRemoteDescription && pc.currentRemoteDescription.sdp);
  return verificationCode(hostFingerprint, local.fingerprint, session);
}
