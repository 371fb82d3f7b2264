// peerdesk web viewer: joins a session by code through the signaling server (protocol v1, see
// core/src/signaling/protocol.rs), answers the host's WebRTC offer, shows the AV1 screen in a <video>, draws the
// remote cursor, and — when the host grants control — sends mouse, wheel and keyboard input, clipboard and chat
// on the control channel (protocol v1, see core/src/control/protocol.rs). No framework, no build step.

import { StampReader } from "./stamp.js";
import { sessionVerificationCode } from "./verification.js";
import { applyBranding } from "./branding.js";

const V = 1;
const $ = (id) => document.getElementById(id);
const state = {
  phase: "idle", // idle → waiting → connecting → connected ⇄ reconnecting → ended
  permissions: { control: false, clipboard: false },
  screen: null,
  lastError: null,
  endedReason: null,
  stats: {},
  pc: null,
  ws: null,
  channel: null,
  host: null,
  code: null,
  // The session's verification code once DTLS is up ("042 917"), to read to the customer.
  verification: null,
  messages: [],
  // "reconnecting" when the path to the host was lost, "reconnected" when it came back: { event, at } each, `at` on
  // performance.now()'s clock (the Rust SDK's ConnectionLost / ConnectionRestored events).
  connectionEvents: [],
  // The host's token from its welcome: after the signaling connection drops, a new one presents it (`resume`) so
  // that the host's later ICE restarts still reach this page.
  resumeToken: null,
  signalingResumes: 0,
  // Glass-to-glass latency read from frame stamps, when the shared screen carries them (test screens, benchmarks):
  // one { at, ms } per presented frame, `at` on performance.now()'s clock.
  latency: { samples: [], stamped: false },
};
window.peerdesk = state; // for tests and debugging

function status(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

const ERRORS = {
  denied: (m) => `The customer declined: ${m}`,
  invalid_code: () => "That code is not valid. Ask the customer to read it again.",
  expired_code: () => "That code has expired. Ask the customer for a new one.",
  rate_limited: () => "Too many attempts. Wait a minute and try again.",
};

function fail(code, message) {
  state.lastError = { code, message };
  state.phase = "ended";
  status((ERRORS[code] || ((m) => `Error: ${m}`))(message), true);
}

function send(message) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify({ v: V, ...message }));
}

function control(message) {
  if (state.channel && state.channel.readyState === "open") state.channel.send(JSON.stringify({ v: V, ...message }));
}

// What the technician asks the customer for, shown to them in plain words; the customer decides.
const ASKS = { control: true, clipboard: false };

// How long a lost path may stay lost before the session ends (the host gives up after as long).
const RECONNECT_WINDOW_MS = 60_000;
// Waits between attempts to reach the signaling server again: doubling from the first, capped at the last.
const RESUME_FIRST_WAIT_MS = 500;
const RESUME_MAX_WAIT_MS = 8_000;
// Candidates held until their description is applied (an ICE restart's can come before its offer); the oldest
// are dropped beyond this.
const MAX_HELD_CANDIDATES = 64;

function join(code, name, account = "", token = "") {
  state.code = code;
  state.joinAsks = { code, name };
  state.phase = "waiting";
  status("Connecting…");
  // With an account of the operator's server, sign in first: the customer's prompt then says who vouches for you.
  connectSignaling(() => (account && token ? send({ type: "sign_in", account, token }) : sendJoin()));
}

function sendJoin() {
  send({ type: "join", code: state.joinAsks.code, name: state.joinAsks.name, asks: ASKS });
}

function connectSignaling(onOpen) {
  const url = new URL("/ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(url);
  state.ws = ws;
  ws.onopen = onOpen;
  ws.onclose = () => onSignalingClosed(ws);
  ws.onmessage = onServerMessage;
}

// Signaling is only needed to connect: once the session is up it goes on peer to peer, and the page reconnects
// with the host's resumption token so that the host's ICE restarts reach it again.
let resumeAttempts = 0;
function onSignalingClosed(ws) {
  if (ws !== state.ws) return;
  if (state.phase === "waiting" || state.phase === "connecting") {
    fail("closed", "the signaling server closed the connection");
    return;
  }
  if ((state.phase === "connected" || state.phase === "reconnecting") && state.resumeToken) {
    const wait = Math.min(RESUME_MAX_WAIT_MS, RESUME_FIRST_WAIT_MS * 2 ** resumeAttempts++);
    setTimeout(() => {
      if (state.phase !== "ended") connectSignaling(() => send({ type: "resume", token: state.resumeToken }));
    }, wait * (0.75 + Math.random() / 2));
  }
}

// Signals are applied one at a time, in the order they came: a candidate must not overtake its offer.
let signals = Promise.resolve();
function onServerMessage(event) {
  let m;
  try { m = JSON.parse(event.data); } catch { return; }
  switch (m.type) {
    case "signed_in":
      status(`Signed in as ${m.account} (verified by ${m.operator}). Asking the customer…`);
      sendJoin();
      break;
    case "join_pending":
      state.host = m.host;
      state.iceServers = m.ice_servers || [];
      status("Waiting for the customer to accept…");
      break;
    case "accepted":
      if (m.ice_servers && m.ice_servers.length) state.iceServers = m.ice_servers;
      state.phase = "connecting";
      status("Accepted. Connecting…");
      break;
    case "resumed":
      // The host presented the same token: its signals come from its new connection.
      state.host = m.peer;
      state.signalingResumes++;
      resumeAttempts = 0;
      break;
    case "signal":
      // Only the host this page joined (or resumed with) may signal it.
      if (m.from !== state.host) { console.warn("a signal from another peer was ignored"); break; }
      signals = signals.then(() => onSignal(m.payload)).catch((e) => console.warn("signal not applied", e));
      break;
    case "peer_left":
      if (state.phase !== "ended") end(`the customer left (${m.reason})`);
      break;
    case "error":
      if (state.phase === "waiting" || state.phase === "connecting") fail(m.code, m.message);
      else console.warn("signaling error", m);
      break;
  }
}

// The certificate fingerprints an SDP names ("sha-256 AB:CD:…"), sorted: an ICE restart must keep the first's.
function fingerprints(sdp) {
  return sdp.split(/\r?\n/).filter((l) => l.startsWith("a=fingerprint:")).map((l) => l.slice(14).trim().toLowerCase()).sort().join(",");
}

// Applies an offer and sends the answer; then adds the candidates that came before it.
async function answer(pc, sdp) {
  await pc.setRemoteDescription({ type: "offer", sdp });
  const local = await pc.createAnswer();
  await pc.setLocalDescription(local);
  send({ type: "signal", to: state.host, payload: { kind: "answer", sdp: local.sdp } });
  const held = state.pendingCandidates || [];
  state.pendingCandidates = [];
  for (const c of held) await pc.addIceCandidate(c).catch(() => {});
}

function holdCandidate(c) {
  const held = (state.pendingCandidates ||= []);
  held.push(c);
  if (held.length > MAX_HELD_CANDIDATES) held.shift();
}

// The path to the host: lost ("disconnected", "failed") → the host restarts ICE over signaling and this page
// answers; back ("connected") → the session goes on. Not back within RECONNECT_WINDOW_MS → the session ends.
let giveUp = null;
function onConnectionState(pc) {
  const s = pc.connectionState;
  if (state.phase === "ended" || pc !== state.pc) return;
  if (s === "failed" && state.phase === "connecting") {
    end("the connection failed");
  } else if ((s === "disconnected" || s === "failed") && state.phase === "connected") {
    state.phase = "reconnecting";
    state.connectionEvents.push({ event: "reconnecting", at: performance.now() });
    status("The connection was lost. Reconnecting…", true);
    giveUp = setTimeout(() => end("the connection was lost and did not come back within a minute"), RECONNECT_WINDOW_MS);
  } else if (s === "connected" && state.phase === "reconnecting") {
    state.phase = "connected";
    state.connectionEvents.push({ event: "reconnected", at: performance.now() });
    clearTimeout(giveUp);
    status("Reconnected.");
  }
}

async function onSignal(payload) {
  if (payload.kind === "offer") {
    if (state.pc) {
      // The host restarts ICE after a lost path: the same session, the same certificate. An offer naming another
      // certificate would be a new DTLS association with whoever holds it, past the verification code: refused.
      if (fingerprints(payload.sdp) !== state.fingerprints) {
        console.warn("an offer with another certificate was refused");
        return;
      }
      await answer(state.pc, payload.sdp);
      return;
    }
    state.fingerprints = fingerprints(payload.sdp);
    // ?relay=1: only through the operator's TURN relay, so the customer's side never learns this machine's addresses.
    const iceTransportPolicy = new URLSearchParams(location.search).get("relay") === "1" ? "relay" : "all";
    const pc = new RTCPeerConnection({ iceTransportPolicy, iceServers: (state.iceServers || []).map((s) => ({ urls: s.urls, username: s.username, credential: s.credential })) });
    state.pc = pc;
    pc.onicecandidate = (e) => {
      if (e.candidate) send({ type: "signal", to: state.host, payload: { kind: "candidate", candidate: e.candidate.candidate, sdp_mid: e.candidate.sdpMid, sdp_mline_index: e.candidate.sdpMLineIndex } });
    };
    pc.ontrack = (e) => {
      const video = $("screen");
      video.srcObject = e.streams[0] || new MediaStream([e.track]);
      video.play().catch(() => {});
      watchStamps(video);
    };
    pc.ondatachannel = (e) => setupChannel(e.channel);
    pc.onconnectionstatechange = () => onConnectionState(pc);
    await answer(pc, payload.sdp);
  } else if (payload.kind === "candidate") {
    const c = { candidate: payload.candidate, sdpMid: payload.sdp_mid, sdpMLineIndex: payload.sdp_mline_index };
    // Refused: it belongs to an ICE restart whose offer has not come yet; added once it has.
    if (state.pc && state.pc.remoteDescription) await state.pc.addIceCandidate(c).catch(() => holdCandidate(c));
    else holdCandidate(c);
  }
}

function setupChannel(channel) {
  state.channel = channel;
  channel.onmessage = (e) => {
    let m;
    try { m = JSON.parse(e.data); } catch { return; }
    state.messages.push(m.type);
    switch (m.type) {
      case "welcome":
        state.phase = "connected";
        state.screen = { width: m.width, height: m.height };
        state.resumeToken = m.resume_token || null;
        setPermissions(m.permissions);
        $("stage").hidden = false;
        $("side").hidden = false;
        status(`Connected to ${m.host_name} (${m.width}×${m.height}).`);
        showVerification();
        break;
      case "permissions":
        setPermissions(m.permissions);
        status(m.permissions.control ? "The customer gave you control." : "The customer took back control: view only.");
        break;
      case "cursor":
        moveCursor(m);
        break;
      case "clipboard":
        $("clipboard").value = m.text;
        break;
      case "chat":
        appendChat(`customer: ${m.text}`);
        break;
      case "error":
        state.lastError = { code: m.code, message: m.message };
        status(m.code === "permission_denied" ? `Not allowed: ${m.message}` : `Refused: ${m.message}`, true);
        break;
      case "end":
        end(m.reason);
        break;
    }
  };
  channel.onclose = () => { if (state.phase !== "ended") end("the connection closed"); };
}

function end(reason) {
  state.phase = "ended";
  clearTimeout(giveUp);
  state.endedReason = reason;
  status(`Session ended: ${reason}`, true);
  $("stage").classList.remove("control");
  if (state.pc) state.pc.close();
  if (state.ws) state.ws.close();
}

// Shows the verification code; the customer's app shows the same six digits only if nobody sits in the middle.
async function showVerification() {
  for (let attempt = 0; attempt < 50 && state.phase === "connected" && !state.verification; attempt++) {
    try {
      state.verification = await sessionVerificationCode(state.pc, state.code);
    } catch (e) {
      console.warn("verification code unavailable", e);
      return;
    }
    if (!state.verification) await new Promise((r) => setTimeout(r, 100));
  }
  if (state.verification) {
    $("verification").textContent = `Verification code ${state.verification}: read it to the customer. Their screen shows the same digits only if nobody is in the middle of the connection.`;
  }
}

function setPermissions(p) {
  state.permissions = p;
  $("permissions").textContent = `You may ${p.control ? "control the screen" : "view only"}${p.clipboard ? " and share the clipboard" : ""}.`;
  $("stage").classList.toggle("control", p.control);
  $("send-clipboard").disabled = !p.clipboard;
}

function moveCursor(m) {
  const cursor = $("cursor");
  const video = $("screen");
  cursor.hidden = !m.visible;
  cursor.style.left = `${m.x * video.clientWidth}px`;
  cursor.style.top = `${m.y * video.clientHeight}px`;
  if (m.image) {
    const { width, height, rgba } = m.image;
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    try {
      const bytes = Uint8ClampedArray.from(atob(rgba), (c) => c.charCodeAt(0));
      canvas.getContext("2d").putImageData(new ImageData(bytes, width, height), 0, 0);
    } catch (e) {
      // A cursor image whose size and pixels disagree (or bad base64): keep the previous image.
      console.warn("bad cursor image ignored", e);
      return;
    }
    cursor.style.backgroundImage = `url(${canvas.toDataURL()})`;
    cursor.style.width = `${width}px`;
    cursor.style.height = `${height}px`;
    cursor.style.marginLeft = `${-m.image.hotspot_x}px`;
    cursor.style.marginTop = `${-m.image.hotspot_y}px`;
  }
}

function appendChat(line) {
  const div = document.createElement("div");
  div.textContent = line;
  $("chat-log").append(div);
}

// Input: only while the host grants control (the host enforces it regardless).
function position(e) {
  const r = $("screen").getBoundingClientRect();
  return { x: Math.min(1, Math.max(0, (e.clientX - r.left) / r.width)), y: Math.min(1, Math.max(0, (e.clientY - r.top) / r.height)) };
}
const BUTTONS = ["left", "middle", "right", "back", "forward"];
let pendingMove = null;
function wireInput() {
  const video = $("screen");
  video.addEventListener("mousemove", (e) => {
    if (!state.permissions.control) return;
    if (!pendingMove) requestAnimationFrame(() => { control({ type: "pointer_move", ...pendingMove }); pendingMove = null; });
    pendingMove = position(e);
  });
  for (const [event, pressed] of [["mousedown", true], ["mouseup", false]]) {
    video.addEventListener(event, (e) => {
      video.focus();
      if (!state.permissions.control) return;
      e.preventDefault();
      control({ type: "pointer_move", ...position(e) });
      control({ type: "pointer_button", button: BUTTONS[e.button] || "left", pressed });
    });
  }
  video.addEventListener("contextmenu", (e) => { if (state.permissions.control) e.preventDefault(); });
  video.addEventListener("wheel", (e) => {
    if (!state.permissions.control) return;
    e.preventDefault();
    const scale = e.deltaMode === 1 ? 1 / 3 : 1 / 100;
    control({ type: "wheel", dx: Math.max(-100, Math.min(100, e.deltaX * scale)), dy: Math.max(-100, Math.min(100, e.deltaY * scale)) });
  }, { passive: false });
  for (const [event, pressed] of [["keydown", true], ["keyup", false]]) {
    video.addEventListener(event, (e) => {
      if (!state.permissions.control || !/^[A-Za-z0-9]{1,32}$/.test(e.code)) return;
      e.preventDefault();
      control({ type: "key", code: e.code, pressed });
    });
  }
}

// Frame stamps: on each presented frame, read the stamp and record capture → presentation. A screen without
// stamps is given up on after a few seconds of frames, so real sessions pay nothing for it.
const MAX_LATENCY_SAMPLES = 40_000;
function watchStamps(video) {
  const reader = new StampReader();
  let unreadable = 0;
  const onFrame = () => {
    if (state.phase === "ended") return;
    const stamp = reader.read(video);
    if (stamp) {
      const ms = (Date.now() - stamp.captureMillis) % 2 ** 32;
      if (ms >= 0 && ms < 60_000) {
        state.latency.stamped = true;
        state.latency.samples.push({ at: performance.now(), ms });
        if (state.latency.samples.length > MAX_LATENCY_SAMPLES) state.latency.samples.splice(0, MAX_LATENCY_SAMPLES / 2);
      }
    } else if (!state.latency.stamped && ++unreadable > 150) {
      return;
    }
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

// Statistics overlay: codec, fps, kbit/s, RTT, frames decoded and latency — glass-to-glass from frame stamps when
// the screen carries them, otherwise the receiving side's share (half the RTT, jitter buffer and decode time).
let lastBytes = 0;
let lastTime = 0;
async function updateStats() {
  if (!state.pc) return;
  const report = await state.pc.getStats();
  let inbound, pair, codecs = {};
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") inbound = s;
    if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s;
    if (s.type === "codec") codecs[s.id] = s.mimeType;
  });
  if (!inbound) return;
  const now = inbound.timestamp;
  const kbps = lastTime ? ((inbound.bytesReceived - lastBytes) * 8) / (now - lastTime) : 0;
  lastBytes = inbound.bytesReceived;
  lastTime = now;
  state.stats = {
    codec: codecs[inbound.codecId] || "",
    framesDecoded: inbound.framesDecoded || 0,
    fps: inbound.framesPerSecond || 0,
    kbps,
    rttMs: pair && pair.currentRoundTripTime !== undefined ? pair.currentRoundTripTime * 1000 : null,
    pliCount: inbound.pliCount || 0,
    jitterMsPerFrame: inbound.jitterBufferEmittedCount ? (inbound.jitterBufferDelay / inbound.jitterBufferEmittedCount) * 1000 : 0,
    decodeMsPerFrame: inbound.framesDecoded ? ((inbound.totalDecodeTime || 0) / inbound.framesDecoded) * 1000 : 0,
  };
  const s = state.stats;
  const recent = state.latency.samples.filter((x) => x.at > performance.now() - 2000).map((x) => x.ms);
  const latency = recent.length
    ? `latency ${median(recent).toFixed(0)} ms glass-to-glass`
    : `latency ≈ ${((s.rttMs || 0) / 2 + s.jitterMsPerFrame + s.decodeMsPerFrame).toFixed(0)} ms receiving`;
  $("overlay").textContent = `${s.codec}  ${s.fps.toFixed(0)} fps  ${s.kbps.toFixed(0)} kbit/s\nRTT ${s.rttMs === null ? "–" : s.rttMs.toFixed(1)} ms  ${latency}  frames ${s.framesDecoded}`;
}
setInterval(updateStats, 1000);

$("join").addEventListener("submit", (e) => {
  e.preventDefault();
  join($("code").value.trim(), $("name").value.trim(), $("account").value.trim(), $("token").value.trim());
  $("token").value = "";
});
$("send-clipboard").addEventListener("click", () => control({ type: "clipboard", text: $("clipboard").value }));
$("chat").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("chat-text").value.trim();
  if (!text) return;
  control({ type: "chat", text });
  appendChat(`you: ${text}`);
  $("chat-text").value = "";
});
$("leave").addEventListener("click", () => {
  control({ type: "leave", reason: "the technician left" });
  end("you left");
});
wireInput();
applyBranding("remote support");

// ?code=...&name=...&autojoin=1 joins at once (links from a ticket system; tests).
const params = new URLSearchParams(location.search);
if (params.get("code")) $("code").value = params.get("code");
if (params.get("name")) $("name").value = params.get("name");
if (params.get("autojoin") === "1" && params.get("code")) join($("code").value, $("name").value);
