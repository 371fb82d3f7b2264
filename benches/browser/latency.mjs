// Browser latency benchmark: glass-to-glass from an X11 screen to the web viewer in Chromium, peerdesk against
// Chromium's own screen share of the same display, in the same run.
//
// A private Xvfb (1080p by default) shows the synthetic desktop drawn by the X painter at 30 fps, each picture
// stamped with the time the painter began drawing it. The same headless Chromium runs the web viewer for both:
//   peerdesk  `peerdesk share` captures the display (X11, DAMAGE, MIT-SHM) and sends AV1 with playout delay 0;
//   chromium  a visible Chromium on the display shares it with getDisplayMedia (host.html, codec=browser: VP8)
//             to the web viewer over an ordinary RTCPeerConnection.
// On every presented frame (requestVideoFrameCallback) the viewer reads the stamp back from the video's pixels;
// latency = presentation time − stamp. Rounds alternate the two so that neither gets a quieter machine.
//
//   node benches/browser/latency.mjs [--seconds 10] [--warmup 3] [--rounds 2] [--size 1920x1080] [--fps 30]
// Needs the workspace's release binaries in $PEERDESK_BIN (scripts/bench-browser.sh builds them and sets it).
import { parseArgs } from "node:util";
import { cpus } from "node:os";
import {
  startServer, launchBrowser, startXvfb, startPainter, measureScreenShare, quantile, stopAll,
} from "../../tests/web/harness.mjs";

const { values: opts } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    warmup: { type: "string", default: "3" },
    rounds: { type: "string", default: "2" },
    size: { type: "string", default: "1920x1080" },
    fps: { type: "string", default: "30" },
  },
});
const [width, height] = opts.size.split("x").map(Number);

const results = { peerdesk: [], chromium: [] };
let browser;
try {
  const server = await startServer();
  browser = await launchBrowser();
  const { display } = await startXvfb(width, height, { randr: false });
  await startPainter(display, Number(opts.fps));
  for (let round = 1; round <= Number(opts.rounds); round++) {
    const order = round % 2 ? ["peerdesk", "chromium"] : ["chromium", "peerdesk"];
    for (const mode of order) {
      const r = await measureScreenShare({ mode, server, viewerBrowser: browser, display, size: opts.size, warmup: Number(opts.warmup), seconds: Number(opts.seconds) });
      results[mode].push(r);
      console.error(`round ${round} ${mode}: ${r.codec} p50 ${quantile(r.latencies, 0.5)} ms, p95 ${quantile(r.latencies, 0.95)} ms, ${r.latencies.length} frames, ${r.fps.toFixed(1)} fps, ${r.kbps.toFixed(0)} kbit/s, jitter buffer ${r.jitterMsPerFrame.toFixed(1)} ms/frame`);
    }
  }
} finally {
  if (browser) await browser.close();
  stopAll();
}

const summary = {};
for (const [mode, runs] of Object.entries(results)) {
  const all = runs.flatMap((r) => r.latencies).sort((a, b) => a - b);
  const seconds = runs.length * Number(opts.seconds);
  summary[mode] = {
    codec: runs[0].codec,
    p50: quantile(all, 0.5),
    p95: quantile(all, 0.95),
    frames: all.length,
    fps: runs.reduce((s, r) => s + r.fps, 0) / runs.length,
    kbps: runs.reduce((s, r) => s + r.kbps, 0) / runs.length,
    jitter: runs.reduce((s, r) => s + r.jitterMsPerFrame, 0) / runs.length,
    seconds,
  };
}
const p = summary.peerdesk;
const c = summary.chromium;
console.log(`Browser glass-to-glass, X11 ${opts.size}@${opts.fps} under Xvfb, ${opts.rounds} rounds × ${opts.seconds} s each, ${cpus().length} cores (${cpus()[0].model})`);
console.log("");
console.log("| sender → web viewer | codec | p50 ms | p95 ms | frames | fps | kbit/s | jitter buffer ms/frame |");
console.log("| --- | --- | --- | --- | --- | --- | --- | --- |");
for (const [name, s] of [["peerdesk share (X11 capture)", p], ["Chromium getDisplayMedia", c]]) {
  console.log(`| ${name} | ${s.codec} | ${s.p50} | ${s.p95} | ${s.frames} | ${s.fps.toFixed(1)} | ${s.kbps.toFixed(0)} | ${s.jitter.toFixed(1)} |`);
}
console.log("");
console.log(`peerdesk / Chromium: p50 ${(p.p50 / c.p50).toFixed(2)}×, p95 ${(p.p95 / c.p95).toFixed(2)}×, kbit/s ${(p.kbps / c.kbps).toFixed(2)}×`);
const wins = p.p50 < c.p50 && p.p95 < c.p95 && p.kbps <= c.kbps;
console.log(`target (lower p50 and p95 at no more kbit/s): ${wins ? "met" : "NOT met"}`);
