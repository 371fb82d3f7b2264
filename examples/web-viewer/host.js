// peerdesk browser host: shares this screen (getDisplayMedia) — or, with ?source=canvas, a test pattern carrying
// the frame stamp — as AV1 to a peerdesk viewer. Speaks the signaling protocol v1 as a host and the control
// protocol v1 (welcome, end). View only: a browser cannot inject input into the desktop.
//
// Options in the query string: source=canvas; codec=av1 (default) or codec=browser (the browser's own first
// choice, VP8 in Chromium: the baseline of the latency benchmark); fps=30; size=WxH (the largest picture to send;
// default: what the browser picks); autostart=1. There is no switch that skips the consent prompt: a crafted link
// must never be able to turn it off.

import { drawStamp } from "./stamp.js";
import { applyBranding, branding } from "./branding.js";

const V = 1;
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const state = { phase: "idle", code: null, viewers: 0, framesDrawn: 0 };
window.peerdesk = state;

function status(text) { $("status").textContent = text; }

function drawTestPattern(ctx, n) {
  const { width: w, height: h } = ctx.canvas;
  ctx.fillStyle = "#1d4f6b";
  ctx.fillRect(0, 0, w, h);
  ctx.fillStyle = "#f0c000";
  ctx.fillRect((n * 4) % w, h / 2, 80, 60);
  drawStamp(ctx, n, Date.now() % 2 ** 32);
}

async function captureStream() {
  if (params.get("source") === "canvas") {
    const canvas = $("canvas");
    canvas.hidden = false;
    const ctx = canvas.getContext("2d");
    let n = 0;
    setInterval(() => { drawTestPattern(ctx, n++); state.framesDrawn = n; }, 1000 / 30);
    return canvas.captureStream(30);
  }
  const video = { frameRate: Number(params.get("fps")) || 30 };
  const size = (params.get("size") || "").match(/^(\d+)x(\d+)$/);
  if (size) Object.assign(video, { width: { max: Number(size[1]) }, height: { max: Number(size[2]) } });
  return navigator.mediaDevices.getDisplayMedia({ video, audio: false });
}

async function start() {
  const stream = await captureStream();
  const [track] = stream.getVideoTracks();
  const url = new URL("/ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(url);
  const send = (m) => ws.send(JSON.stringify({ v: V, ...m }));
  const peers = new Map();
  const admitting = new Set();
  ws.onopen = () => send({ type: "register" });
  ws.onmessage = async (event) => {
    let m;
    try { m = JSON.parse(event.data); } catch { return; }
    if (m.type === "registered") {
      state.code = m.code;
      state.phase = "waiting";
      status(`Your code: ${m.code} — read it to your technician.`);
    } else if (m.type === "join_request") {
      // The name is whatever the viewer typed: strip control, format and bidi-override characters (U+202E can
      // make a name read backwards) and say that nobody vouched for it.
      const clean = (text) => String(text ?? "").replace(/[\p{Cc}\p{Cf}\u2028\u2029]/gu, "").slice(0, 64);
      // A browser host has no device identity: unattended requests are not for it.
      if (m.access) { send({ type: "reject", peer: m.peer, reason: "this host does not offer unattended access" }); return; }
      // The operator's wording, with the name marked verified (by the operator's server, which checked the
      // technician's account) or not, whatever the wording says; and what is asked for, in plain words.
      const who = m.verified ? `${clean(m.verified.account)} (verified by ${clean(m.verified.operator)})` : `"${clean(m.name)}" (name not verified)`;
      const wants = ["see your screen", m.asks?.control && "use your mouse and keyboard", m.asks?.clipboard && "read and write your clipboard"].filter(Boolean);
      const asked = ` (asking to ${wants.join(" and ")})`;
      const wording = branding.consent_text.includes("{name}") ? branding.consent_text : `{name}: ${branding.consent_text}`;
      const ok = confirm(wording.replaceAll("{name}", who) + asked);
      if (!ok) { send({ type: "reject", peer: m.peer, reason: "the customer declined" }); return; }
      send({ type: "accept", peer: m.peer });
      admitting.add(m.peer);
    } else if (m.type === "admitted") {
      // The server confirmed the admission and issued the STUN/TURN servers (TURN credentials are only given
      // for an admitted viewer) for this connection.
      const peer = m.viewer;
      if (!admitting.delete(peer)) return;
      const iceServers = (m.ice_servers || []).map((s) => ({ urls: s.urls, username: s.username, credential: s.credential }));
      const pc = new RTCPeerConnection({ iceServers });
      peers.set(peer, pc);
      const channel = pc.createDataChannel("peerdesk-control", { ordered: true });
      channel.onopen = () => channel.send(JSON.stringify({ v: V, type: "welcome", permissions: { control: false, clipboard: false },
        width: track.getSettings().width || 640, height: track.getSettings().height || 360, host_name: "browser host" }));
      const transceiver = pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
      if (params.get("codec") !== "browser") {
        const av1 = RTCRtpSender.getCapabilities("video").codecs.filter((c) => c.mimeType.toLowerCase() === "video/av1");
        if (av1.length) transceiver.setCodecPreferences(av1);
      }
      pc.onicecandidate = (e) => {
        if (e.candidate) send({ type: "signal", to: peer, payload: { kind: "candidate", candidate: e.candidate.candidate, sdp_mid: e.candidate.sdpMid, sdp_mline_index: e.candidate.sdpMLineIndex } });
      };
      pc.onconnectionstatechange = () => {
        if (pc.connectionState === "connected") { state.viewers++; state.phase = "sharing"; status("A technician is watching. Close this tab to stop."); }
      };
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      send({ type: "signal", to: peer, payload: { kind: "offer", sdp: offer.sdp } });
    } else if (m.type === "signal") {
      const pc = peers.get(m.from);
      if (!pc) return;
      if (m.payload.kind === "answer") await pc.setRemoteDescription({ type: "answer", sdp: m.payload.sdp });
      else if (m.payload.kind === "candidate") await pc.addIceCandidate({ candidate: m.payload.candidate, sdpMid: m.payload.sdp_mid, sdpMLineIndex: m.payload.sdp_mline_index }).catch(() => {});
    }
  };
}

applyBranding("share this screen");
$("start").addEventListener("click", () => start().catch((e) => status(`Could not share: ${e.message}`)));
if (params.get("autostart") === "1") start().catch((e) => status(`Could not share: ${e.message}`));
