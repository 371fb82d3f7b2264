// The web viewer in Debian's headless Chromium as one side of a system test (tests/system/web-viewer-network.sh
// runs it inside the technician's network namespace): opens the viewer page of a signaling server at --url on
// --code, waits for stamped frames, stays --seconds while the test impairs the network, and prints one JSON line:
//   join_ms        page open → first stamped frame
//   frames         when each stamped frame was presented (ms since the epoch, the shell's `date` clock)
//   latency        each one's glass-to-glass latency (capture → presented, ms), in the same order
//   events         the page's connection events ("reconnecting", "reconnected") with the same clock
//   phase, ended   the page's session phase at the end, and why it ended if it did
//   resumes        how many times the page paired again with the host on a new signaling connection
//   pair           the ICE candidate pair in use at the end: local type and, for a relay, how the page reaches the
//                  relay ("udp", "tcp", "tls"); the remote type
//   trace          twice a second: ICE state, the pair in use, video bytes, frames and keyframes decoded, PLIs,
//                  NACKs and packets lost (for the log when a check fails)
//
//   node tests/web/netns-viewer.mjs --url http://10.0.0.1:8080 --code 123456789 [--seconds 20] [--relay]
// With --relay the page uses relay-only ICE (?relay=1). Exits non-zero when the page never showed a frame.
import { parseArgs } from "node:util";
import { launchBrowser, openViewer, waitFor } from "./harness.mjs";

const { values: opts } = parseArgs({
  options: {
    url: { type: "string" },
    code: { type: "string" },
    seconds: { type: "string", default: "20" },
    relay: { type: "boolean", default: false },
  },
});
if (!opts.url || !opts.code) throw new Error("--url and --code are required");

const browser = await launchBrowser();
try {
  const opened = Date.now();
  const page = await openViewer(browser, { http: opts.url }, opts.code, { width: 1280, height: 760 }, opts.relay ? "&relay=1" : "");
  await waitFor(page, () => window.peerdesk.latency.samples.length > 0, null, "stamped frames in the viewer", 60_000);
  const joinMs = Date.now() - opened;
  console.error(`first frame after ${joinMs} ms`);
  // Twice a second, what the receiver sees (for the log when a check fails): the pair in use, bytes, frames.
  const trace = [];
  const until = Date.now() + Number(opts.seconds) * 1000;
  while (Date.now() < until) {
    trace.push(await page.evaluate(async () => {
      const report = await window.peerdesk.pc.getStats();
      const row = { at: Date.now(), ice: window.peerdesk.pc.iceConnectionState };
      report.forEach((r) => {
        if (r.type === "transport") row.pair = r.selectedCandidatePairId;
        if (r.type === "inbound-rtp" && r.kind === "video") Object.assign(row, { bytes: r.bytesReceived, decoded: r.framesDecoded, keyframes: r.keyFramesDecoded, plis: r.pliCount, nacks: r.nackCount, lost: r.packetsLost });
      });
      return row;
    }).catch((e) => ({ at: Date.now(), error: String(e) })));
    await page.waitForTimeout(500);
  }
  const result = await page.evaluate(async () => {
    const s = window.peerdesk;
    const epoch = (at) => Math.round(performance.timeOrigin + at);
    let pair = null;
    if (s.pc) {
      const report = await s.pc.getStats();
      const byId = new Map();
      report.forEach((r) => byId.set(r.id, r));
      report.forEach((r) => {
        if (r.type !== "transport" || !r.selectedCandidatePairId) return;
        const selected = byId.get(r.selectedCandidatePairId);
        const local = selected && byId.get(selected.localCandidateId);
        const remote = selected && byId.get(selected.remoteCandidateId);
        if (local && remote) pair = { local: local.candidateType, relay_protocol: local.relayProtocol || null, remote: remote.candidateType };
      });
    }
    return {
      frames: s.latency.samples.map((x) => epoch(x.at)),
      latency: s.latency.samples.map((x) => x.ms),
      events: (s.connectionEvents || []).map((e) => ({ event: e.event, at: epoch(e.at) })),
      phase: s.phase,
      ended: s.endedReason,
      resumes: s.signalingResumes || 0,
      pair,
    };
  });
  console.log(JSON.stringify({ join_ms: joinMs, ...result, trace }));
} finally {
  await browser.close();
}
